"""Drift references from dataset versions: equal to the drift on the data where the sketch keeps every value or
count, within the stated tolerance where it keeps quantiles, taken from the profile without reading the table,
read once otherwise, and bad requests refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import shipyard
from shipyard.context import Context, open_context
from shipyard.errors import ValidationError
from shipyard.monitoring import reference as reference_module
from shipyard.monitoring.drift import dataset_drift, sketch_drift
from shipyard.monitoring.reference import distribution, reference_sketch
from shipyard.monitoring.sketch import ReferenceSketch, sketch_series
from shipyard.store.blobs import BlobStore


def mixed(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": rng.normal(100 + shift * 10, 10, n),
        "count": rng.integers(0, 4, n),  # numbers with four values: categorical
        "region": rng.choice(["n", "s", "e", "w"], n, p=[0.4 - shift / 10, 0.3, 0.2, 0.1 + shift / 10]),
        "member": rng.choice([True, False], n),
        "channel": rng.choice(["web", "shop"], n),
        "flat": np.full(n, 7.0),
        "empty": pd.Series([None] * n, dtype="float64"),
    })


def sketch_of(frame: pd.DataFrame) -> ReferenceSketch:
    return ReferenceSketch({str(c): sketch_series(frame[c]) for c in frame.columns}, len(frame), "data")


def assert_same(found: Any, expected: Any, tolerance: float = 1e-9) -> None:
    assert found.to_dict().keys() == expected.to_dict().keys()
    for got, want in zip(found.columns, expected.columns, strict=True):
        assert (got.column, got.kind, got.method, got.drifted, got.note, got.reference_rows, got.current_rows) == \
            (want.column, want.kind, want.method, want.drifted, want.note, want.reference_rows, want.current_rows)
        if want.score is None:
            assert got.score is None
        else:
            assert got.score == pytest.approx(want.score, abs=tolerance), got.column
    assert (found.drifted, found.drifted_columns, found.checked) == (expected.drifted, expected.drifted_columns,
                                                                      expected.checked)


@pytest.mark.parametrize(("rows", "shift"), [(800, 0.0), (800, 1.0), (5000, 0.0), (5000, 1.0)])
def test_a_reference_sketch_with_every_value_scores_exactly_as_its_data(rows: int, shift: float) -> None:
    """At most 1,000 rows: the tests; up to 12,000 the sketch still keeps every value, so distances are exact."""
    reference, current = mixed(rows, 1), mixed(700, 2, shift)
    sketch = sketch_of(reference)
    assert sketch.columns["amount"].values is not None and sketch.columns["amount"].quantiles is None
    assert_same(sketch_drift(sketch, current), dataset_drift(reference, current))
    assert_same(sketch_drift(sketch, current, correction="bh"), dataset_drift(reference, current, correction="bh"))
    methods = {"amount": "psi", "count": "wasserstein", "region": "hellinger", "member": "jensenshannon"}
    assert_same(sketch_drift(sketch, current, methods=methods), dataset_drift(reference, current, methods=methods))
    methods = {"amount": "hellinger", "count": "chisquare", "region": "psi", "channel": "chisquare"}
    assert_same(sketch_drift(sketch, current, methods=methods, share=0.2),
                dataset_drift(reference, current, methods=methods, share=0.2))


@pytest.mark.parametrize("name", ["normal", "lognormal", "bimodal"])
def test_a_large_reference_keeps_quantiles_within_the_stated_tolerance(name: str) -> None:
    def draw(n: int, seed: int, shift: float) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if name == "normal":
            return rng.normal(shift, 1, n)
        if name == "lognormal":
            return rng.lognormal(shift, 1, n)
        return np.where(rng.random(n) < 0.3, rng.normal(-3, 0.5, n), rng.normal(2 + shift, 1, n))

    reference = pd.DataFrame({"x": draw(100_000, 1, 0.0)})
    sketch = sketch_of(reference)
    column = sketch.columns["x"]
    assert column.values is None and column.quantiles is not None and len(column.quantiles) == 12_000
    assert (column.quantiles[:1000] == np.sort(reference["x"])[:1000]).all()  # the tails are kept exactly
    assert column.std == np.std(reference["x"].to_numpy())  # exact, not from the quantiles
    for shift in (0.0, 0.05, 0.3):
        current = pd.DataFrame({"x": draw(50_000, 2, shift)})
        exact, found = dataset_drift(reference, current), sketch_drift(sketch, current)
        assert abs(found.columns[0].score - exact.columns[0].score) < 1e-4  # type: ignore[operator]
        assert found.drifted == exact.drifted
        for method in ("psi", "hellinger"):  # the deciles are kept exactly
            assert_same(sketch_drift(sketch, current, methods={"x": method}),
                        dataset_drift(reference, current, methods={"x": method}))


def test_sketches_survive_bytes_and_refuse_what_they_cannot_do() -> None:
    reference = mixed(20_000, 1)  # more than 12,000 rows: quantiles
    sketch = sketch_of(reference)
    again = ReferenceSketch.from_bytes(sketch.to_bytes())
    assert list(again.columns) == list(sketch.columns) and again.rows == 20_000
    current = mixed(500, 3)
    assert_same(sketch_drift(again, current), sketch_drift(sketch, current), tolerance=0.0)
    # KS against weighted quantiles: the statistic of their distribution function, scipy's asymptotic p-value
    approximate = sketch_drift(sketch, current, methods={"amount": "ks"}).column("amount").p_value
    exact = stats.ks_2samp(reference["amount"], current["amount"], method="asymp").pvalue
    assert approximate == pytest.approx(exact, rel=0.05, abs=1e-6)
    with pytest.raises(ValidationError, match="'amount' keeps quantiles, not the counts of its 20000 distinct"):
        sketch_drift(sketch, current, methods={"amount": "chisquare"})
    with pytest.raises(ValidationError, match="'nope' is not in the reference sketch; it has amount"):
        sketch_drift(sketch, current, columns=["nope"])
    with pytest.raises(ValidationError, match="not a reference sketch"):
        ReferenceSketch.from_bytes(b"not a sketch")


def test_columns_that_cannot_be_judged_say_why_against_a_sketch() -> None:
    reference = mixed(2000, 1)
    current = mixed(600, 2).drop(columns=["channel"])
    current["region"] = ["n", "zzz"] * 300  # a category the reference never had
    current["amount"] = [*np.arange(3.0), *[None] * 597]
    report = sketch_drift(sketch_of(reference), current)
    assert_same(report, dataset_drift(reference, current), tolerance=1e-9)
    assert report.column("channel").note == "missing from the current data"
    assert report.column("empty").note == "insufficient data: 0 non-null values in the reference, 5 needed"
    assert report.column("amount").note == "insufficient data: 3 non-null values in the current data, 5 needed"
    assert report.column("region").drifted is True and report.column("flat").drifted is False


def reads(ctx: Context, monkeypatch: pytest.MonkeyPatch, digest: str) -> list[str]:
    """Every opening of the table's blob, whatever reads it."""
    opened: list[str] = []
    original = BlobStore.open

    def counting(self: BlobStore, wanted: str) -> Any:
        if wanted == digest:
            opened.append(wanted)
        return original(self, wanted)

    monkeypatch.setattr(BlobStore, "open", counting)
    return opened


def test_the_reference_is_read_once_then_found(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference, current = mixed(20_000, 1), mixed(3000, 2, shift=1.0)
    version = shipyard.data.add("loans", reference, workspace=workspace).version
    expected = dataset_drift(shipyard.data.load("loans@1", workspace=workspace), current)
    ctx = open_context()
    opened = reads(ctx, monkeypatch, str(version.table_digest))
    first = reference_sketch(ctx, "loans@1")
    assert (first.source, len(opened)) == ("data", 1)
    assert first.read_columns == ["amount", "count", "flat", "empty"]  # the others come from the profile
    second = reference_sketch(ctx, "loans@1")
    part = reference_sketch(ctx, "loans@1", columns=["empty", "amount"])  # a stored sketch holds them
    assert (second.source, part.source, len(opened)) == ("sketch", "sketch", 1)
    assert list(part.columns) == ["empty", "amount"]
    assert_same(sketch_drift(second, current), expected, tolerance=1e-4)
    assert sketch_drift(second, current, columns=["region", "member", "channel", "count"]).to_dict() == \
        sketch_drift(first, current, columns=["region", "member", "channel", "count"]).to_dict()
    kept = shipyard.audit_log(action="monitor.reference.sketch")  # one sketch stored, in the store
    assert len(kept) == 1
    assert kept[0].payload["digest"] == reference_module._stored_sketch(ctx, str(version.table_digest), ["amount"])
    ctx.blobs.delete(reference_module._stored_sketch(ctx, str(version.table_digest), ["amount"]) or "")
    assert reference_sketch(ctx, "loans@1").source == "data" and len(opened) == 2  # collected: built again


def test_categories_with_complete_profile_counts_read_nothing(workspace: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    reference = mixed(5000, 1)[["region", "member", "channel"]]
    reference.loc[::7, "region"] = None
    version = shipyard.data.add("plain", reference, workspace=workspace).version
    ctx = open_context()
    opened = reads(ctx, monkeypatch, str(version.table_digest))
    sketch = reference_sketch(ctx, "plain@1")
    assert (sketch.source, sketch.read_columns, opened) == ("profile", [], [])
    assert sketch.columns["region"].nulls == len(reference.iloc[::7])
    current = mixed(4000, 2, shift=1.0)
    assert_same(sketch_drift(sketch, current), dataset_drift(reference, current))
    small = reference.iloc[:600]  # at most 1,000 rows: the tests, also exact from the profile
    shipyard.data.add("small", small, workspace=workspace)
    assert_same(sketch_drift(reference_sketch(ctx, "small@1"), current), dataset_drift(small, current))
    many = pd.DataFrame({"code": [f"c{i % 30}" for i in range(3000)]})  # 30 categories, the profile keeps 20
    shipyard.data.add("many", many, workspace=workspace)
    assert reference_sketch(ctx, "many@1").source == "data"


def test_bad_references_are_refused_by_name(workspace: Path, tmp_path: Path) -> None:
    shipyard.data.add("loans", mixed(100, 1), workspace=workspace)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    shipyard.data.add("docs", folder, workspace=workspace)
    ctx = open_context()
    with pytest.raises(ValidationError, match="Column 'income' is not in loans@1; it has amount, count"):
        reference_sketch(ctx, "loans@1", columns=["income"])
    with pytest.raises(ValidationError, match="docs@1 is a set of files, not a table"):
        reference_sketch(ctx, "docs@1")


def test_distributions_for_the_charts() -> None:
    reference = pd.DataFrame({"x": np.random.default_rng(1).normal(0, 1, 50_000),
                              "code": [f"c{i % 25}" for i in range(50_000)]})
    sketch = sketch_of(reference)
    current = pd.Series(np.random.default_rng(2).normal(1, 1, 2000))
    chart = distribution(sketch.columns["x"], current, bins=10)
    edges = np.array(chart["edges"])
    assert chart["kind"] == "numeric" and len(edges) == 11
    assert edges[0] == min(reference["x"].min(), current.min()) and edges[-1] == max(reference["x"].max(),
                                                                                      current.max())
    exact = np.histogram(reference["x"], edges)[0] / 50_000
    assert np.abs(np.array(chart["reference"]) - exact).max() < 2e-4  # a quantile is a 10,000th of the middle
    assert chart["current"] == pytest.approx(list(np.histogram(current, edges)[0] / 2000))
    codes = distribution(sketch.columns["code"], pd.Series(["c0", "c0", "new", None]))
    assert codes["categories"][:2] == ["c0", "c1"] and codes["categories"][-1] == "other"
    assert len(codes["categories"]) == 21 and sum(codes["reference"]) == pytest.approx(1.0)
    assert codes["current"][0] == pytest.approx(2 / 3) and codes["current"][-1] == pytest.approx(1 / 3)
    flat = distribution(sketch_series(pd.Series([5.0] * 10 + [6, 7, 8, 9, 10])), pd.Series([], dtype=float))
    assert sum(flat["reference"]) == pytest.approx(1.0) and flat["current"] == [0.0] * 20
    with pytest.raises(ValidationError, match="'x' is numeric in the reference but"):
        distribution(sketch.columns["x"], pd.Series(["a", "b"], name="x"))
