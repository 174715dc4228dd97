"""Table profiles checked against pandas and numpy on bundled scikit-learn data and a generated table."""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn import datasets

from shipyard.data.profile import QUANTILES, profile_summary, profile_table

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
ROWS = 200_000
REGIONS = ["north", "south", "east", "west"]


@cache
def generated_table(seed: int = 7, rows: int = ROWS) -> pa.Table:
    """Customers: a unique key, ints, a float with nulls, a categorical, a timestamp, a bool, free text."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, rows)
    ratio = rng.normal(0, 1, rows)
    ratio[rng.choice(rows, 30, replace=False)] = np.nan
    ratio[rng.choice(rows, 5, replace=False)] = np.inf
    region = np.array(REGIONS, dtype=object)[rng.choice(4, rows, p=[0.4, 0.3, 0.2, 0.1])]
    region[rng.random(rows) < 0.01] = None
    signup = int(NOW.timestamp()) - rng.integers(0, 20 * 86_400, rows)
    return pa.table({
        "customer_id": pa.array(np.arange(1, rows + 1) * 7, pa.int64()),
        "age": pa.array(rng.integers(18, 100, rows), pa.int64()),
        "income": pa.array(income, mask=rng.random(rows) < 0.02),
        "ratio": pa.array(ratio),  # keeps NaN as NaN, not null
        "region": pa.array(region, pa.string()),
        "signup": pa.array(signup * 1_000_000, pa.timestamp("us", tz="UTC")),
        "active": pa.array(rng.random(rows) < 0.3),
        "note": pa.array([f"note {i}" for i in rng.integers(0, 50_000, rows)]),
    })


def sklearn_frame(name: str) -> pd.DataFrame:
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame
    if hasattr(bunch, "target_names") and name != "diabetes":
        frame["label"] = np.asarray(bunch.target_names)[frame["target"]]
    return frame


def check_numeric(stats: dict[str, Any], series: pd.Series) -> None:
    values = series.dropna().to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    assert stats["kind"] == "numeric"
    assert stats["min"] == pytest.approx(values.min())
    assert stats["max"] == pytest.approx(values.max())
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert stats["std"] == pytest.approx(pd.Series(values).std(), rel=1e-9)  # ddof=1, as pandas
    expected = pd.Series(values).quantile(list(QUANTILES))
    for q in QUANTILES:
        assert stats["quantiles"][str(q)] == pytest.approx(expected[q], rel=1e-9, abs=1e-12)
    hist = stats["histogram"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    assert sum(hist["counts"]) == len(values)
    assert hist["counts"] == np.histogram(values, bins=np.asarray(hist["edges"]))[0].tolist()


@pytest.mark.parametrize("name", ["breast_cancer", "diabetes", "iris", "wine"])
def test_profile_matches_pandas_on_sklearn_data(name: str) -> None:
    frame = sklearn_frame(name)
    profile = profile_table(pa.Table.from_pandas(frame, preserve_index=False))
    assert profile["row_count"] == len(frame)
    assert list(profile["columns"]) == list(frame.columns)
    for column, series in frame.items():
        stats = profile["columns"][column]
        assert stats["null_count"] == 0
        assert stats["distinct_count"] == series.nunique()
        assert stats["distinct_approx"] is False
        if column == "label":
            assert stats["kind"] == "categorical"
            expected = series.value_counts()
            assert {t["value"]: t["count"] for t in stats["top"]} == expected.to_dict()
            assert stats["other_count"] == 0
        else:
            check_numeric(stats, series)
    json.dumps(profile, allow_nan=False)


@pytest.fixture(scope="module")
def generated() -> tuple[pa.Table, dict[str, Any]]:
    table = generated_table()
    return table, profile_table(table, top_k=3)


def test_generated_numeric_columns(generated: tuple[pa.Table, dict[str, Any]]) -> None:
    table, profile = generated
    frame = table.to_pandas()
    cols = profile["columns"]
    assert cols["income"]["null_count"] == frame["income"].isna().sum() > 0
    check_numeric(cols["income"], frame["income"])
    check_numeric(cols["age"], frame["age"])
    assert cols["age"]["min"] == 18 and isinstance(cols["age"]["min"], int)
    ratio = table.column("ratio").to_numpy()
    assert (cols["ratio"]["null_count"], cols["ratio"]["nan_count"], cols["ratio"]["inf_count"]) == (0, 30, 5)
    check_numeric(cols["ratio"], pd.Series(ratio))
    assert sum(cols["ratio"]["histogram"]["counts"]) == ROWS - 35


def test_distinct_counts_exact_when_small_estimated_when_large(
    generated: tuple[pa.Table, dict[str, Any]],
) -> None:
    table, profile = generated
    cols = profile["columns"]
    assert (cols["age"]["distinct_count"], cols["age"]["distinct_approx"]) == (82, False)  # few values: recounted
    for name in ("customer_id", "income", "signup"):
        truth = pc_distinct(table.column(name))
        assert cols[name]["distinct_approx"] is True
        assert cols[name]["distinct_count"] == pytest.approx(truth, rel=0.05)
    small = profile_table(table.slice(0, 50_000))["columns"]["income"]
    assert small["distinct_approx"] is False
    assert small["distinct_count"] == table.column("income").slice(0, 50_000).drop_null().to_pandas().nunique()


def pc_distinct(column: pa.ChunkedArray) -> int:
    return int(column.drop_null().to_pandas().nunique())


def test_generated_categorical_boolean_text_and_timestamp(generated: tuple[pa.Table, dict[str, Any]]) -> None:
    table, profile = generated
    frame = table.to_pandas()
    cols = profile["columns"]
    region = cols["region"]
    counts = frame["region"].value_counts()
    assert region["kind"] == "categorical"
    assert region["null_count"] == frame["region"].isna().sum()
    assert [(t["value"], t["count"]) for t in region["top"]] == list(counts.items())[:3]
    assert region["other_count"] == counts.iloc[3:].sum()

    active = cols["active"]
    assert active["kind"] == "boolean"
    assert {t["value"]: t["count"] for t in active["top"]} == {
        "true": int(frame["active"].sum()), "false": int((~frame["active"]).sum())}

    note = cols["note"]
    assert note["kind"] == "text"
    assert note["distinct_count"] == frame["note"].nunique()
    assert [t["count"] for t in note["top"]] == frame["note"].value_counts().iloc[:3].tolist()

    signup = cols["signup"]
    seconds = (frame["signup"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    assert signup["kind"] == "timestamp"
    assert signup["min"] == pytest.approx(seconds.min()) and signup["max"] == pytest.approx(seconds.max())
    assert signup["quantiles"]["0.5"] == pytest.approx(seconds.median())
    assert "histogram" not in signup


def test_edge_cases_stay_json_safe() -> None:
    table = pa.table({
        "all_nan": pa.array([np.nan, np.nan]),
        "all_null": pa.array([None, None], pa.float64()),
        "only_inf": pa.array([np.inf, -np.inf]),
        "one_value": pa.array([3.0, 3.0]),
        "nothing": pa.array([None, None], pa.null()),
        "day": pa.array([dt.date(2024, 1, 1), None]),
        "money": pa.array([1, 2], pa.decimal128(5, 2)),
        "cat": pa.array(["a", "b"]).dictionary_encode(),
        "huge": pa.array([-(2**63), 2**63 - 1], pa.int64()),
        "items": pa.array([[1], [2, 3]]),
    })
    profile = profile_table(table)
    json.dumps(profile, allow_nan=False)
    cols = profile["columns"]
    assert cols["all_nan"]["nan_count"] == 2 and cols["all_nan"]["mean"] is None
    assert cols["all_null"]["null_count"] == 2 and cols["all_null"]["min"] is None
    assert cols["only_inf"]["inf_count"] == 2 and cols["only_inf"]["histogram"]["counts"] == []
    assert cols["one_value"]["histogram"]["edges"][0] == 2.5 and cols["one_value"]["std"] == 0.0
    assert cols["day"]["kind"] == "timestamp"
    assert cols["day"]["min"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    assert cols["money"]["mean"] == 1.5
    assert cols["cat"]["kind"] == "categorical"
    assert (cols["huge"]["min"], cols["huge"]["max"]) == (-(2**63), 2**63 - 1)  # exact ints
    assert cols["items"]["kind"] == "text"
    empty = profile_table(table.slice(0, 0))
    json.dumps(empty, allow_nan=False)
    assert empty["row_count"] == 0


def test_top_k_breaks_ties_by_first_appearance() -> None:
    table = pa.table({"c": ["b", "a", "c", "a", "b", "d"]})
    stats = profile_table(table, top_k=2)["columns"]["c"]
    assert stats["top"] == [{"value": "b", "count": 2}, {"value": "a", "count": 2}]
    assert stats["other_count"] == 2


def test_profile_summary_rows(generated: tuple[pa.Table, dict[str, Any]]) -> None:
    _, profile = generated
    rows = {row["name"]: row for row in profile_summary(profile)}
    assert set(rows["age"]) == {"name", "kind", "nulls", "distinct", "min", "max", "mean"}
    assert (rows["age"]["kind"], rows["age"]["min"], rows["age"]["max"]) == ("numeric", 18, 99)
    assert rows["region"]["min"] is None
    assert rows["signup"]["max"].endswith("Z") and rows["signup"]["max"].startswith("2025-")
