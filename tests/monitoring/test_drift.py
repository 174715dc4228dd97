"""The drift engine: scores equal scipy's on the same samples, methods chosen by type and reference size, a planted
shift found and an unshifted sample passed at the stated rate, corrections across columns, and columns that
cannot be judged said so."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from shipyard.errors import ValidationError
from shipyard.monitoring.drift import column_drift, dataset_drift

rng = np.random.default_rng(0)


def numeric(n: int, shift: float = 0.0, seed: int = 0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(10 + shift, 2, n))


def categories(n: int, weights: tuple[float, ...] = (0.5, 0.3, 0.2), seed: int = 0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).choice(["a", "b", "c"], n, p=weights))


def test_small_reference_numbers_equal_scipy() -> None:
    ref, cur = numeric(500, seed=1), numeric(400, shift=0.3, seed=2)
    found = column_drift(ref, cur)
    assert (found.kind, found.method, found.threshold) == ("numeric", "ks", 0.05)
    assert found.score == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=1e-9)

    ref_c, cur_c = categories(800, seed=1), categories(600, (0.4, 0.3, 0.3), seed=2)
    found = column_drift(ref_c, cur_c)
    table = np.array([ref_c.value_counts().sort_index(), cur_c.value_counts().sort_index()])
    assert (found.kind, found.method) == ("categorical", "chisquare")
    assert found.score == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, abs=1e-9)

    ref_b = pd.Series(np.random.default_rng(3).choice(["no", "yes"], 900, p=[0.7, 0.3]))
    cur_b = pd.Series(np.random.default_rng(4).choice(["no", "yes"], 700, p=[0.6, 0.4]))
    found = column_drift(ref_b, cur_b)
    p1, p2 = (ref_b == "no").mean(), (cur_b == "no").mean()
    pooled = ((ref_b == "no").sum() + (cur_b == "no").sum()) / (len(ref_b) + len(cur_b))
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / len(ref_b) + 1 / len(cur_b)))
    assert (found.kind, found.method) == ("binary", "ztest")
    assert found.score == pytest.approx(2 * stats.norm.sf(abs(z)), abs=1e-9)
    assert found.drifted is True  # 70 % against 60 % over hundreds of rows


def test_large_reference_distances_equal_scipy() -> None:
    ref, cur = numeric(5000, seed=1), numeric(3000, shift=0.5, seed=2)
    found = column_drift(ref, cur)
    assert (found.method, found.threshold) == ("wasserstein", 0.1)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref.to_numpy())
    assert found.score == pytest.approx(expected, abs=1e-9) and found.drifted is True  # 0.5 / 2 = 0.25

    ref_c, cur_c = categories(5000, seed=1), categories(3000, (0.45, 0.3, 0.25), seed=2)
    found = column_drift(ref_c, cur_c)
    left = ref_c.value_counts().sort_index().to_numpy(float)
    right = cur_c.value_counts().sort_index().to_numpy(float)
    assert found.method == "jensenshannon"
    assert found.score == pytest.approx(jensenshannon(left / left.sum(), right / right.sum()), abs=1e-9)


def test_methods_on_request_psi_and_hellinger() -> None:
    ref, cur = numeric(2000, seed=1), numeric(2000, shift=1.0, seed=2)
    psi = column_drift(ref, cur, method="psi")
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    e = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10) / len(ref)
    a = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10) / len(cur)
    assert psi.score == pytest.approx(float(np.sum((a - e) * np.log(a / e))), abs=1e-9) and psi.drifted
    hellinger = column_drift(ref, cur, method="hellinger", threshold=0.5)
    assert hellinger.score == pytest.approx(float(np.sqrt(0.5 * np.sum((np.sqrt(e) - np.sqrt(a)) ** 2))), abs=1e-9)
    assert hellinger.drifted is False  # the threshold given was used
    with pytest.raises(ValidationError, match="Unknown drift method 'energy'"):
        column_drift(ref, cur, method="energy")
    with pytest.raises(ValidationError, match="not numeric on both sides"):
        column_drift(categories(100), categories(100), method="ks")


@pytest.mark.parametrize(("make", "size"), [(lambda n, s, seed: numeric(n, s, seed), 500),
                                            (lambda n, s, seed: numeric(n, s, seed), 5000)])
def test_a_planted_shift_is_found_and_no_shift_passes_at_the_stated_rate(make, size) -> None:  # type: ignore[no-untyped-def]
    draws = 200
    false_alarms = sum(bool(column_drift(make(size, 0.0, 2 * i), make(size, 0.0, 2 * i + 1)).drifted)
                       for i in range(draws))
    found = sum(bool(column_drift(make(size, 0.0, 2 * i), make(size, 1.0, 2 * i + 1)).drifted)
                for i in range(50))
    if size <= 1000:  # a test at 0.05: about 10 of 200; 22 is beyond 3.3 standard deviations
        assert false_alarms <= 22
    else:  # a distance of 0.1 standard deviations: same-distribution samples of 5,000 stay far below it
        assert false_alarms == 0
    assert found == 50  # half a standard deviation of shift, found every time


def test_the_table_verdict_corrections_and_overrides() -> None:
    n = 400
    reference = pd.DataFrame({f"x{i}": numeric(n, seed=i) for i in range(6)} | {"cat": categories(n, seed=9)})
    current = pd.DataFrame({f"x{i}": numeric(n, shift=1.0 if i < 3 else 0.0, seed=100 + i) for i in range(6)}
                           | {"cat": categories(n, seed=99)})
    report = dataset_drift(reference, current)
    assert set(report.drifted_columns) >= {"x0", "x1", "x2"} and report.checked == 7
    assert report.drifted is (report.drift_share >= 0.5)
    raw = {c.column: c.p_value for c in report.columns}
    bonferroni = dataset_drift(reference, current, correction="bonferroni")
    for column in bonferroni.columns:
        assert column.adjusted_p == pytest.approx(min(1.0, raw[column.column] * 7), abs=1e-12)
    bh = dataset_drift(reference, current, correction="bh")
    expected = stats.false_discovery_control([raw[c.column] for c in bh.columns])
    assert [c.adjusted_p for c in bh.columns] == pytest.approx(list(expected), abs=1e-12)
    chosen = dataset_drift(reference, current, methods={"x0": "psi"}, thresholds={"x0": 10.0}, share=0.1)
    assert chosen.column("x0").method == "psi" and chosen.column("x0").drifted is False and chosen.drifted
    with pytest.raises(ValidationError, match="'nope'"):
        dataset_drift(reference, current, methods={"nope": "ks"})
    with pytest.raises(ValidationError, match="correction 'holm'"):
        dataset_drift(reference, current, correction="holm")


def test_columns_that_cannot_be_judged_say_why() -> None:
    reference = pd.DataFrame({"a": numeric(300), "empty": [None] * 300, "gone": categories(300),
                              "flat": [1.0] * 300, "c": categories(300)})
    current = pd.DataFrame({"a": [*numeric(3, seed=5), *[None] * 87], "empty": [None] * 90, "flat": [1.0] * 90,
                            "c": ["a", "b", "zzz"] * 30})
    report = dataset_drift(reference, current)
    assert report.column("a").drifted is None and "insufficient data: 3 non-null values in the current data" \
        in (report.column("a").note or "")
    assert report.column("empty").drifted is None and "insufficient data" in (report.column("empty").note or "")
    assert report.column("gone").note == "missing from the current data"
    assert report.column("flat").drifted is False  # constant on both sides, the same constant
    unseen = report.column("c")  # a category the reference never had: counted, not a crash
    assert unseen.drifted is True and unseen.score is not None and unseen.score < 1e-6
    assert report.checked == 2 and report.to_dict()["columns"][0]["column"] == "a"


def test_timestamps_identifiers_and_free_text_are_not_compared_unless_asked() -> None:
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"at": pd.date_range("2026-01-01", periods=3000, freq="h"),
                              "customer": [f"c{i}" for i in range(3000)],
                              "comment": [f"note number {i} about the loan" for i in range(3000)],
                              "channel": rng.choice(["web", "branch", "phone"], 3000)})
    current = pd.DataFrame({"at": pd.date_range("2026-06-01", periods=600, freq="h"),
                            "customer": [f"n{i}" for i in range(600)],
                            "comment": [f"another remark {i}" for i in range(600)],
                            "channel": rng.choice(["web", "branch", "phone"], 600)})
    report = dataset_drift(reference, current)
    kinds = {c.column: (c.kind, c.drifted) for c in report.columns}
    assert kinds == {"at": ("timestamp", None), "customer": ("identifier", None), "comment": ("identifier", None),
                     "channel": ("categorical", False)}
    assert "time moves on" in report.column("at").note and "identifier or free text" in report.column("customer").note
    assert report.checked == 1 and report.drifted is False  # the unique values do not make a fake verdict
    asked = dataset_drift(reference, current, methods={"customer": "jensenshannon"})
    assert asked.column("customer").drifted is True  # on request, compared like any category
    few = pd.DataFrame({"region": [f"r{i % 30}" for i in range(40)]})  # 30 categories in 40 rows: too few to say
    assert column_drift(few["region"], few["region"]).kind == "categorical"
