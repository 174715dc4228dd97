"""Schema contracts, validation anomalies (one crafted bad version per kind) and the HTML report."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy.spatial.distance import jensenshannon
from sklearn import datasets

from shipyard.data.profile import profile_table
from shipyard.data.report import render_html
from shipyard.data.schema import ANOMALY_KINDS, Schema, infer_schema, load_schema
from shipyard.data.validation import ValidationReport, js_distance, linf_distance, validate_table
from shipyard.errors import ValidationError
from tests.data.test_profile import NOW, generated_table

KEY = ["customer_id"]


@pytest.fixture(scope="module")
def base() -> tuple[pa.Table, dict[str, Any], Schema]:
    table = generated_table()
    profile = profile_table(table)
    return table, profile, infer_schema(table, profile, key=KEY, now=NOW)


def check(table: pa.Table, schema: Schema, reference: dict[str, Any], **kwargs: Any) -> ValidationReport:
    kwargs.setdefault("previous_row_count", reference["row_count"])
    kwargs.setdefault("now", NOW)
    return validate_table(table, profile_table(table), schema, reference_profile=reference, **kwargs)


def replace(table: pa.Table, name: str, values: Any) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, values)


def edit(table: pa.Table, name: str, rows: np.ndarray | list[int], value: Any) -> pa.Table:
    """Set `name` to `value` at `rows`."""
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[rows] = True
    column = table.column(name)
    return replace(table, name, pc.if_else(pa.array(mask), pa.scalar(value, column.type), column))


def test_inferred_schema(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    _, _, schema = base
    cols = schema.columns
    # observed 18..99, widened by a tenth of the span on each side
    assert (cols["age"].type, cols["age"].nullable, cols["age"].min, cols["age"].max) == ("int64", False, 9, 108)
    assert cols["income"].nullable and cols["income"].max_null_fraction == 0.05  # 2% observed, doubled
    assert cols["region"].categories == sorted(["north", "south", "east", "west"])
    assert cols["signup"].type == "timestamp" and cols["signup"].freshness_days == 30
    assert cols["ratio"].allow_non_finite
    assert cols["note"].categories is None and cols["active"].type == "bool"
    assert schema.key == KEY
    ids = cols["customer_id"]  # an identifier: new rows bring new ids, so no range is inferred for it
    assert ids.type == "int64" and not ids.nullable and (ids.min, ids.max) == (None, None)
    assert infer_schema(*base[:2], now=NOW).columns["customer_id"].max is not None  # not declared a key
    assert schema.row_count is not None and (schema.row_count.min, schema.row_count.max) == (100_000, 300_000)


def test_inferred_freshness_skips_historical_data(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, _ = base
    later = infer_schema(table, profile, now=NOW + dt.timedelta(days=365))
    assert later.columns["signup"].freshness_days is None


def test_infer_schema_rejects_unknown_key(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, _ = base
    with pytest.raises(ValidationError, match="Key column 'customer_di' is not in the table. Did you mean 'custome"):
        infer_schema(table, profile, key=["customer_di"])


def test_schema_yaml_round_trip(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    _, _, schema = base
    schema = schema.model_copy(update={"severity": {"skew": "error"}})
    text = schema.to_yaml()
    assert text.startswith("# Data contract")
    assert "  age: {type: int64, nullable: false, min: 9, max: 108}" in text
    loaded = load_schema(text)
    assert loaded == schema
    assert loaded.to_yaml() == text


def test_schema_from_handwritten_yaml() -> None:
    schema = load_schema(
        "columns:\n"
        "  age: {type: int64, nullable: false, min: 18, max: 99}\n"
        "  income: {type: float64, nullable: true, max_null_fraction: 0.05, min: 0.0}\n"
        "  region: {type: string, categories: [north, south, east, west]}\n"
        "  signup: {type: 'timestamp[us, tz=UTC]', freshness_days: 30}\n"
        "  notes:\n"
        "key: customer_id\n"
        "row_count: {min: 800, max: 1200, max_change_fraction: 0.5}\n"
        "skew: {numeric_js_max: 0.1, categorical_linf_max: null}\n"
        "severity: {skew: error}\n"
    )
    assert schema.columns["income"].type == "double"
    assert schema.columns["signup"].type == "timestamp"
    assert schema.columns["notes"].type is None
    assert schema.key == ["customer_id"]
    assert schema.skew.categorical_linf_max is None
    assert schema.severity_of("skew") == "error" and schema.severity_of("stale_data") == "warning"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("columns:\n  age: {type: int64, nullabel: false}\n",
         "schema.yaml: unknown key columns.age.nullabel (value False). Did you mean 'nullable'?"),
        ("colums:\n  age: {type: int64}\n",
         "unknown key colums (value {'age': {'type': 'int64'}}). Did you mean 'columns'?"),
        ("columns:\n  age: {type: int46}\n", "columns.age.type = 'int46': unknown type. Did you mean 'int64'?"),
        ("columns:\n  age: {nullable: maybe}\n", "columns.age.nullable = 'maybe': Input should be a valid boolean"),
        ("columns:\n  age: {min: ten}\n", "columns.age.min = 'ten': expected a finite number"),
        ("columns:\n  age: {min: 5, max: 1}\n", "columns.age: min 5 is greater than max 1"),
        ("columns:\n  age: {type: string, min: 1}\n", "min and max apply to numeric columns, not string"),
        ("row_count: {min: 10, maximum: 20}\n", "unknown key row_count.maximum (value 20). Did you mean 'max'?"),
        ("skew: {numeric_js_max: 2}\n", "skew.numeric_js_max = 2: Input should be less than or equal to 1"),
        ("severity: {skwe: error}\n", "unknown key severity.skwe. Did you mean 'skew'?"),
        ("severity: {skew: eror}\n",
         "severity.skew = 'eror': Input should be 'error' or 'warning'. Did you mean 'error'?"),
        ("columns:\n  answer: {categories: [yes, no]}\n", "True was read as a YAML boolean; quote"),
        ("- columns\n", "must hold a mapping with 'columns'"),
    ],
)
def test_schema_errors_name_the_key_value_and_fix(text: str, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load_schema(text, source="credit/schema.yaml")
    message = str(caught.value).replace("credit/schema.yaml", "schema.yaml")
    assert expected in message
    assert "credit/schema.yaml" in str(caught.value)


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ValidationError, match=r"schema.yaml is not valid YAML at line 3, column 15: mapping values"):
        load_schema("columns:\n  age: {type: int64}\n  region: type: string\n")
    with pytest.raises(ValidationError, match=r"while parsing a flow mapping at line 3\)"):
        load_schema("columns:\n  age: {type: int64}\n  region: {type: string\n")


def test_clean_versions_have_no_anomalies(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, schema = base
    same = validate_table(table, profile, schema, reference_profile=profile,
                          previous_row_count=table.num_rows, now=NOW)
    assert same.anomalies == [] and same.ok
    subset = table.take(np.random.default_rng(1).choice(table.num_rows, 180_000, replace=False))
    report = check(subset, schema, profile)
    assert report.anomalies == [], report.summary_rows()


Craft = Callable[[pa.Table, Schema], tuple[pa.Table, Schema, dict[str, Any]]]
ROWS = np.arange(100, 112)  # 12 rows to spoil


def _same_schema(change: Callable[[pa.Table], pa.Table]) -> Craft:
    return lambda table, schema: (change(table), schema, {})


def _lower_half(table: pa.Table) -> pa.Table:
    income = table.column("income").to_numpy(zero_copy_only=False)
    low = np.where(income <= np.nanmedian(income), income, income / 4)  # squeezed, still in range
    return replace(table, "income", pa.array(low, mask=np.isnan(income)))


BAD_VERSIONS: dict[str, Craft] = {
    "missing_column": _same_schema(lambda t: t.drop_columns(["age"])),
    "new_column": _same_schema(lambda t: t.append_column("extra", pa.array(np.zeros(t.num_rows)))),
    "type_change": _same_schema(lambda t: replace(t, "age", t.column("age").cast(pa.string()))),
    "excess_nulls": _same_schema(lambda t: replace(
        t, "income", pc.if_else(pa.array(np.arange(t.num_rows) % 5 == 0), None, t.column("income")))),
    "excess_nulls_not_nullable": _same_schema(lambda t: edit(t, "age", ROWS, None)),
    "out_of_range": _same_schema(lambda t: edit(t, "age", ROWS, 5)),
    "non_finite": _same_schema(lambda t: edit(t, "income", ROWS, float("inf"))),
    "unseen_category": _same_schema(lambda t: edit(t, "region", ROWS, "nrth")),
    "duplicate_key": _same_schema(lambda t: edit(t, "customer_id", ROWS, 7)),
    "row_count_out_of_bounds": lambda t, s: (
        t.take(np.sort(np.random.default_rng(2).choice(t.num_rows, 50_000, replace=False))), s,
        {"previous_row_count": None}),
    "row_count_change": lambda t, s: (t, s, {"previous_row_count": 3 * t.num_rows}),
    "stale_data": lambda t, s: (t, s, {"now": NOW + dt.timedelta(days=45)}),
    "skew_numeric": _same_schema(_lower_half),
    "skew_categorical": _same_schema(lambda t: edit(t, "region", np.arange(0, t.num_rows, 2), "west")),
}


@pytest.mark.parametrize("case", BAD_VERSIONS)
def test_each_bad_version_raises_its_anomaly(case: str, base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, schema = base
    bad, schema, kwargs = BAD_VERSIONS[case](table, schema)
    report = check(bad, schema, profile, **kwargs)
    kind = next(k for k in ANOMALY_KINDS if case.startswith(k))
    assert [a.kind for a in report.anomalies] == [kind], report.summary_rows()
    (anomaly,) = report.anomalies
    assert anomaly.severity == schema.severity_of(kind)
    assert report.ok is (anomaly.severity == "warning")
    if anomaly.column is not None:
        assert f"'{anomaly.column}'" in anomaly.message
    json.dumps(report.to_dict(), allow_nan=False)


def test_every_kind_has_a_bad_version() -> None:
    assert {next(k for k in ANOMALY_KINDS if case.startswith(k)) for case in BAD_VERSIONS} == set(ANOMALY_KINDS)


def test_messages_name_the_observed_and_expected_values(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, schema = base
    bad = edit(edit(table, "age", ROWS, 3), "age", [5], 150)
    messages = {a.message for a in check(bad, schema, profile).anomalies}
    assert messages == {
        "Column 'age': 12 values below the minimum 9 (lowest 3).",
        "Column 'age': 1 values above the maximum 108 (highest 150).",
    }
    typed = check(replace(table, "region", pa.array(np.zeros(table.num_rows))), schema, profile)
    assert typed.errors[0].message == "Column 'region' has type double; the schema expects string."
    renamed = check(table.rename_columns([c if c != "income" else "incomes" for c in table.column_names]),
                    schema, profile)
    assert "Column 'income' (double) is missing from the table. Did you mean 'incomes'?" in [
        a.message for a in renamed.anomalies]


def test_safe_widening_passes_and_narrowing_fails(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, schema = base
    wider = replace(table, "age", table.column("age").cast(pa.float64()))
    assert check(wider, schema, profile).anomalies == []
    narrow = schema.model_copy(deep=True)
    narrow.columns["age"].type = "int32"
    assert check(table, narrow, profile).anomalies == []  # int32 -> int64
    narrower = replace(table, "income", table.column("income").cast(pa.float32()))
    assert [a.kind for a in check(narrower, schema, profile).anomalies] == ["type_change"]


def test_severity_override(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, schema = base
    strict = load_schema(schema.to_yaml() + "severity: {skew: error, missing_column: warning}\n")
    report = check(_lower_half(table).drop_columns(["age"]), strict, profile)
    assert {(a.kind, a.severity) for a in report.anomalies} == {("skew", "error"), ("missing_column", "warning")}
    assert not report.ok and report.errors[0].kind == "skew"


def test_js_distance_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        p, q = rng.integers(0, 50, 20), rng.integers(0, 50, 20)
        assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([3, 1], [6, 2]) == pytest.approx(0.0, abs=1e-7)


def test_numeric_skew_uses_reference_edges(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, schema = base
    bad = _lower_half(table)
    (anomaly,) = check(bad, schema, profile).anomalies
    hist = profile["columns"]["income"]["histogram"]
    edges = np.asarray(hist["edges"])
    values = bad.column("income").drop_null().to_numpy()
    current = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]
    assert anomaly.details["distance"] == pytest.approx(jensenshannon(hist["counts"], current, base=2))
    assert anomaly.details["threshold"] == 0.1


def test_key_columns_have_no_skew(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, schema = base
    ids = table.column("customer_id")
    newer = table.filter(pc.greater(ids, pc.approximate_median(ids)))  # new customers, the same population
    report = check(newer, schema, profile, previous_row_count=newer.num_rows)
    assert report.anomalies == [], report.summary_rows()


def test_categorical_skew_is_the_largest_frequency_gap(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, schema = base
    bad = BAD_VERSIONS["skew_categorical"](table, schema)[0]
    (anomaly,) = check(bad, schema, profile).anomalies
    before = table.column("region").to_pandas().value_counts(normalize=True)
    after = bad.column("region").to_pandas().value_counts(normalize=True)
    expected = max(abs(before[r] - after[r]) for r in before.index)  # all four regions are in the top
    assert anomaly.details["distance"] == pytest.approx(expected)
    assert anomaly.details["category"] == "west"
    assert linf_distance([1, 1, 2], [2, 1, 1]) == (pytest.approx(0.25), 0)


def test_breast_cancer_contract() -> None:
    frame = datasets.load_breast_cancer(as_frame=True).frame
    table = pa.Table.from_pandas(frame, preserve_index=False)
    profile = profile_table(table)
    schema = infer_schema(table, profile)
    assert validate_table(table, profile, schema, reference_profile=profile).anomalies == []
    frame["mean radius"] *= 1.5
    scaled = pa.Table.from_pandas(frame, preserve_index=False)
    report = validate_table(scaled, profile_table(scaled), schema, reference_profile=profile)
    assert {(a.kind, a.column) for a in report.anomalies} == {("out_of_range", "mean radius"), ("skew", "mean radius")}


def test_html_report_lists_anomalies_and_escapes(base: tuple[pa.Table, dict[str, Any], Schema]) -> None:
    table, profile, schema = base
    hostile = "<script>alert(1)</script>"
    bad = edit(table, "age", ROWS, 5).append_column(hostile, pa.array(np.ones(table.num_rows)))
    bad = edit(bad, "region", ROWS, "<b>nrth</b>")
    bad_profile = profile_table(bad)
    report = validate_table(bad, bad_profile, schema, reference_profile=profile, now=NOW)
    page = render_html(report, title="credit & <v2>", profile=bad_profile, reference_profile=profile)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "credit &amp; &lt;v2&gt;" in page
    for anomaly in report.anomalies:
        assert anomaly.kind in page
    assert "values below the minimum 9 (lowest 5)." in page
    assert page.index("out_of_range") < page.index("new_column")  # errors before warnings
    assert not re.search(r"https?:", page)
    assert page.count("<svg") >= len(profile["columns"])
    clean = render_html(validate_table(table, profile, schema, now=NOW), title="clean")
    assert "Passed" in clean and "None: the data meets its schema." in clean
