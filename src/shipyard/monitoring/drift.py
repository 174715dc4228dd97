"""The drift engine: one test per column, chosen by the column's type and the reference's size, and a verdict
for the table.

Defaults, as practitioners expect them:

- reference of at most 1,000 rows: the two-sample Kolmogorov–Smirnov test for numeric columns with more than
  5 distinct values, chi-squared (on the table of reference and current counts) for categorical and
  low-cardinality columns, the two-proportion Z-test for binary ones; drift when p < 0.05;
- a larger reference: the Wasserstein distance divided by the reference's standard deviation for numeric
  columns, the Jensen–Shannon distance (natural logarithm, as scipy computes it) for the others; drift when
  the distance is at least 0.1.

`psi` (population stability index over the reference's deciles or categories; drift at 0.1) and `hellinger`
(drift at 0.1) are there on request, as is any method for any column. The table drifts when at least `share`
(half) of its checked columns drift. P-values can be corrected across columns, Bonferroni or
Benjamini–Hochberg, before they are compared with 0.05.

A column that cannot be judged is not given a verdict: fewer than MIN_ROWS values on either side, every value
null, or missing from the current data each say so in `note`.

`sketch_drift` judges against a ReferenceSketch (shipyard.monitoring.reference) by the same code: only the
reference side's parts come from the sketch. Its scores equal the data's where the sketch keeps every value
(up to 12,000 rows) or every count, and for the deciles (psi, hellinger) always; beyond, the Wasserstein
distance against the kept quantiles is within 1e-3 reference standard deviations of the exact one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import ValidationError
from shipyard.monitoring.sketch import (
    NOT_COMPARED,
    NUMERIC_MIN_DISTINCT,
    SMALL_REFERENCE,
    ReferenceSide,
    ReferenceSketch,
    is_numeric,
    is_temporal,
    kind_from,
    string_counts,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Rows of a numeric column looked at first to tell its kind.
KIND_SAMPLE = 2_000
Method = Literal["ks", "chisquare", "ztest", "wasserstein", "jensenshannon", "psi", "hellinger"]
METHODS: tuple[str, ...] = ("ks", "chisquare", "ztest", "wasserstein", "jensenshannon", "psi", "hellinger")
P_VALUE_METHODS = frozenset({"ks", "chisquare", "ztest"})
#: Drift when a p-value is below this, or a distance at least this.
DEFAULT_THRESHOLDS: dict[str, float] = {"ks": 0.05, "chisquare": 0.05, "ztest": 0.05, "wasserstein": 0.1,
                                        "jensenshannon": 0.1, "psi": 0.1, "hellinger": 0.1}
MIN_ROWS = 5
Correction = Literal["bonferroni", "bh"]


@dataclass
class ColumnDrift:
    column: str
    kind: str  # numeric | categorical | binary
    method: str
    score: float | None  # the p-value (tests) or the distance
    threshold: float
    drifted: bool | None  # None: not judged (see note)
    reference_rows: int
    current_rows: int
    p_value: float | None = None  # tests: the p-value before any correction
    adjusted_p: float | None = None  # after the correction across columns, when one was asked for
    note: str | None = None

    @property
    def is_test(self) -> bool:
        return self.method in P_VALUE_METHODS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftReport:
    columns: list[ColumnDrift]
    share: float  # the share of drifted columns that makes the table drift
    correction: str | None = None
    drifted_columns: list[str] = field(default_factory=list)
    checked: int = 0
    drifted: bool | None = None  # None when no column could be judged

    @property
    def drift_share(self) -> float | None:
        return len(self.drifted_columns) / self.checked if self.checked else None

    def column(self, name: str) -> ColumnDrift:
        return next(c for c in self.columns if c.column == name)

    def to_dict(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "drift_share": self.drift_share, "share": self.share,
                "correction": self.correction, "checked": self.checked, "drifted_columns": self.drifted_columns,
                "columns": [c.to_dict() for c in self.columns]}


def column_kind(values: pd.Series) -> str:
    """numeric (a number with more than 5 distinct values), binary (two values), categorical, timestamp or
    identifier (see sketch.kind_from)."""
    present = values.dropna()
    return kind_from(int(present.nunique()), is_numeric(present), len(present), is_temporal(present))


def default_method(kind: str, reference_rows: int) -> str:
    if reference_rows <= SMALL_REFERENCE:
        return {"numeric": "ks", "binary": "ztest"}.get(kind, "chisquare")
    return "wasserstein" if kind == "numeric" else "jensenshannon"


class SeriesSide:
    """The reference side from the data itself: every score exact, each part computed once, when needed."""

    def __init__(self, values: pd.Series) -> None:
        self.series = values.dropna()
        self.count = len(self.series)
        self.numeric = is_numeric(self.series)

    @cached_property
    def distinct(self) -> int:
        return int(self.series.nunique())

    @cached_property
    def kind(self) -> str:
        if not self.count:
            return "categorical"
        if self.numeric and self.count > KIND_SAMPLE:
            # More than 5 distinct values among the first rows already make a numeric column: no need to count
            # every distinct value of a million (the verdict of kind_from is the same).
            if self.series.iloc[:KIND_SAMPLE].nunique() >= NUMERIC_MIN_DISTINCT:
                return "numeric"
        return kind_from(self.distinct, self.numeric, self.count, is_temporal(self.series))

    def exact_values(self) -> np.ndarray:
        return self.series.to_numpy(float)

    def atoms(self) -> np.ndarray:
        import numpy as np

        return np.sort(self.series.to_numpy(float))

    def weights(self) -> None:
        return None

    def spread(self) -> float:
        import numpy as np

        return float(np.std(self.series.to_numpy(float)))

    def category_counts(self) -> pd.Series:
        return string_counts(self.series)[0]

    def deciles(self) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        x = self.series.to_numpy(float)
        edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)[1:-1]))
        return edges, np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)


def column_drift(reference: pd.Series, current: pd.Series, *, method: str | None = None,
                 threshold: float | None = None, name: str | None = None) -> ColumnDrift:
    """Compare one column's current values with its reference values."""
    column = str(name if name is not None else reference.name)
    return _judge(column, SeriesSide(reference), current, method, threshold)


def dataset_drift(reference: pd.DataFrame, current: pd.DataFrame, *, columns: list[str] | None = None,
                  methods: Mapping[str, str] | None = None, thresholds: Mapping[str, float] | None = None,
                  correction: str | None = None, share: float = 0.5) -> DriftReport:
    """Every column of `columns` (default: the reference's), then the table's verdict."""
    names = [str(c) for c in (columns if columns is not None else reference.columns)]
    _check(names, methods, correction, share)
    for name in names:
        if name not in reference.columns:
            raise ValidationError(f"Column '{name}' is not in the reference data; it has "
                                  f"{', '.join(map(str, reference.columns))}.", column=name)
    return _table({name: SeriesSide(reference[name]) for name in names}, current, methods, thresholds,
                  correction, share)


def sketch_drift(reference: ReferenceSketch, current: pd.DataFrame, *, columns: list[str] | None = None,
                 methods: Mapping[str, str] | None = None, thresholds: Mapping[str, float] | None = None,
                 correction: str | None = None, share: float = 0.5) -> DriftReport:
    """dataset_drift with a reference sketch in place of the reference data: the same rules and results
    (equal where the sketch keeps every value or every count; see sketch.QUANTILES otherwise). A large
    reference keeps no KS sample, nor counts for numbers with over 1,000 distinct values: those methods say so."""
    names = [str(c) for c in (columns if columns is not None else reference.columns)]
    _check(names, methods, correction, share)
    for name in names:
        if name not in reference.columns:
            raise ValidationError(f"Column '{name}' is not in the reference sketch; it has "
                                  f"{', '.join(reference.columns)}. Sketch the reference with that column.",
                                  column=name)
    return _table({name: reference.columns[name] for name in names}, current, methods, thresholds, correction,
                  share)


def _check(names: list[str], methods: Mapping[str, str] | None, correction: str | None, share: float) -> None:
    if correction not in (None, "bonferroni", "bh"):
        raise ValidationError(f"Unknown correction {correction!r}; use bonferroni, bh (Benjamini-Hochberg) or none.",
                              correction=correction)
    if not 0 < share <= 1:
        raise ValidationError(f"share {share!r} must be above 0 and at most 1: the share of drifted columns that "
                              "makes the table drift.", share=share)
    unknown = sorted(set(methods or {}) - set(names))
    if unknown:
        raise ValidationError(f"Methods are given for {', '.join(repr(u) for u in unknown)}, which are not compared; "
                              f"the columns are {', '.join(names)}.")


def _table(sides: Mapping[str, ReferenceSide], current: pd.DataFrame, methods: Mapping[str, str] | None,
           thresholds: Mapping[str, float] | None, correction: str | None, share: float) -> DriftReport:
    methods, thresholds = dict(methods or {}), dict(thresholds or {})
    results = []
    for name, side in sides.items():
        if name not in current.columns:
            method = _method(name, methods.get(name)) or default_method(side.kind, side.count)
            results.append(ColumnDrift(name, side.kind, method, None, thresholds.get(name, DEFAULT_THRESHOLDS[method]),
                                       None, side.count, 0, note="missing from the current data"))
            continue
        results.append(_judge(name, side, current[name], methods.get(name), thresholds.get(name)))
    if correction is not None:
        _correct(results, correction)
    report = DriftReport(results, share, correction)
    judged = [c for c in results if c.drifted is not None]
    report.checked = len(judged)
    report.drifted_columns = [c.column for c in judged if c.drifted]
    if judged:
        report.drifted = len(report.drifted_columns) / len(judged) >= share
    return report


def _method(column: str, method: str | None) -> str | None:
    if method is not None and method not in METHODS:
        raise ValidationError(f"Unknown drift method {method!r} for column '{column}'; use one of "
                              f"{', '.join(METHODS)}.", column=column, method=method)
    return method


def _judge(column: str, ref: ReferenceSide, current: pd.Series, method: str | None,
           threshold: float | None) -> ColumnDrift:
    """One column against its reference side: the one code path of column_drift, dataset_drift and sketch_drift."""
    cur = current.dropna()
    chosen = _method(column, method) or default_method(ref.kind, ref.count)
    limit = threshold if threshold is not None else DEFAULT_THRESHOLDS[chosen]
    result = ColumnDrift(column, ref.kind, chosen, None, limit, None, ref.count, len(cur))
    if ref.kind in NOT_COMPARED and method is None:
        result.note = NOT_COMPARED[ref.kind]
        return result
    if ref.count < MIN_ROWS or len(cur) < MIN_ROWS:
        side = "reference" if ref.count < MIN_ROWS else "current data"
        result.note = (f"insufficient data: {min(ref.count, len(cur))} non-null values in the {side}, "
                       f"{MIN_ROWS} needed")
        return result
    if chosen in ("ks", "wasserstein") and not (ref.numeric and is_numeric(cur)):
        raise ValidationError(f"Column '{column}' is not numeric on both sides, so '{chosen}' cannot compare it; "
                              "use chisquare, jensenshannon, psi or hellinger.", column=column, method=chosen)
    score = _SCORES[chosen](ref, cur, column)
    result.score = score
    if chosen in P_VALUE_METHODS:
        result.p_value = score
        result.drifted = bool(score < limit)
    else:
        result.drifted = bool(score >= limit)
    return result


def _correct(results: list[ColumnDrift], correction: str) -> None:
    """Adjust the p-values of the tested columns for the number of tests, then judge again."""
    import numpy as np
    from scipy.stats import false_discovery_control

    tested = [c for c in results if c.is_test and c.p_value is not None]
    if not tested:
        return
    raw = np.array([c.p_value for c in tested], dtype=float)
    adjusted = np.minimum(raw * len(raw), 1.0) if correction == "bonferroni" else false_discovery_control(raw)
    for result, value in zip(tested, adjusted, strict=True):
        result.adjusted_p = float(value)
        result.score = float(value)
        result.drifted = bool(value < result.threshold)


# -- the scores: the reference side (data or sketch) against the current non-null values ------------------

def _not_kept(column: str, method: str, what: str) -> ValidationError:
    return ValidationError(f"The reference sketch of column '{column}' keeps {what}, which '{method}' cannot use "
                           "exactly; use wasserstein, psi or hellinger for it, or compare with the reference data "
                           "(dataset_drift).", column=column, method=method)


def ks(ref: ReferenceSide, cur: pd.Series, column: str = "") -> float:
    """scipy's two-sample KS test on the exact reference; against a reference kept as weighted quantiles, the
    statistic from its weighted distribution function and scipy's asymptotic p-value (ks_2samp's `asymp`)."""
    import numpy as np
    from scipy.stats import ks_2samp, kstwo

    values = ref.exact_values()
    if values is not None:
        return float(ks_2samp(values, cur.to_numpy(float)).pvalue)
    atoms, weights = ref.atoms(), ref.weights()
    if weights is None:
        raise _not_kept(column, "ks", "neither every value nor weighted quantiles")
    x = np.sort(cur.to_numpy(float))
    grid = np.concatenate([atoms, x])
    below = np.concatenate([[0.0], np.cumsum(weights)])
    statistic = float(np.max(np.abs(below[np.searchsorted(atoms, grid, side="right")]
                                    - np.searchsorted(x, grid, side="right") / len(x))))
    n, m = ref.count, len(x)
    return float(np.clip(kstwo.sf(statistic, np.round(n * m / (n + m))), 0, 1))


def counts(ref: ReferenceSide, cur: pd.Series, column: str = "", method: str = "chisquare",
           ) -> tuple[np.ndarray, np.ndarray]:
    """Counts per category over the union of both sides' categories (unseen ones count 0 on the other side)."""
    import numpy as np

    left = ref.category_counts()
    if left is None:
        raise _not_kept(column, method, f"quantiles, not the counts of its {ref.distinct} distinct values")
    right = string_counts(cur)[0]
    categories = sorted(set(left.index) | set(right.index))
    return (left.reindex(categories, fill_value=0).to_numpy(dtype=np.float64),
            right.reindex(categories, fill_value=0).to_numpy(dtype=np.float64))


def chisquare(ref: ReferenceSide, cur: pd.Series, column: str = "") -> float:
    """Pearson's chi-squared test of independence on the 2 x k table of counts (scipy's chi2_contingency,
    without the continuity correction); one category on both sides cannot differ: p = 1."""
    import numpy as np
    from scipy.stats import chi2_contingency

    left, right = counts(ref, cur, column, "chisquare")
    if len(left) < 2:
        return 1.0
    return float(chi2_contingency(np.vstack([left, right]), correction=False).pvalue)


def ztest(ref: ReferenceSide, cur: pd.Series, column: str = "") -> float:
    """The pooled two-proportion Z-test on the share of the first value (in sorted order), two-sided."""
    from scipy.stats import norm

    left, right = counts(ref, cur, column, "ztest")
    n1, n2 = left.sum(), right.sum()
    p1, p2 = left[0] / n1, right[0] / n2
    pooled = (left[0] + right[0]) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0 if p1 == p2 else 0.0
    return float(2 * norm.sf(abs(p1 - p2) / spread))


def wasserstein(ref: ReferenceSide, cur: pd.Series, column: str = "") -> float:
    """The Wasserstein (earth mover's) distance divided by the reference's standard deviation (population);
    a constant reference is not divided. A sketch's points stand for the reference by their weights."""
    import numpy as np

    spread = ref.spread()
    distance = earth_movers(ref.atoms(), np.sort(cur.to_numpy(float)), ref.weights())
    return distance / spread if spread > 0 else distance


def earth_movers(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The Wasserstein-1 distance between two sorted samples (a's points weighted by `weights`, summing to 1),
    the integral of |F_a - F_b|: scipy's wasserstein_distance without its three sorts of the pooled values."""
    import numpy as np

    at = np.searchsorted(b, a, side="right") + np.arange(len(a))  # where a's values fall in the merged order
    merged = np.insert(b, at - np.arange(len(a)), a)
    from_a = np.zeros(len(merged), dtype=np.int64)
    from_a[at] = 1
    count_a = np.cumsum(from_a)[:-1]  # values <= merged[k] from each side; exact where merged steps up
    below_b = (np.arange(1, len(merged)) - count_a) / len(b)
    if weights is None:
        below_a = count_a / len(a)
    else:
        mass = np.zeros(len(merged))
        mass[at] = weights
        below_a = np.cumsum(mass)[:-1]
    return float(np.sum(np.abs(below_a - below_b) * np.diff(merged)))


def jensenshannon(ref: ReferenceSide, cur: pd.Series, column: str = "") -> float:
    from scipy.spatial.distance import jensenshannon as js

    left, right = counts(ref, cur, column, "jensenshannon")
    return float(js(left / left.sum(), right / right.sum()))


def _binned(ref: ReferenceSide, cur: pd.Series, column: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Shares per bin: the reference's deciles for numeric columns (the outermost bins open), else categories."""
    import numpy as np

    if ref.numeric and is_numeric(cur) and ref.distinct >= NUMERIC_MIN_DISTINCT:
        edges, left = ref.deciles()
        right = np.bincount(np.searchsorted(edges, cur.to_numpy(float), side="right"), minlength=len(edges) + 1)
    else:
        left, right = counts(ref, cur, column, method)
    return left / left.sum(), right / right.sum()


def psi(ref: ReferenceSide, cur: pd.Series, column: str = "") -> float:
    """Population stability index; empty bins are given a share of 0.0001 so that it stays finite."""
    import numpy as np

    expected, actual = (np.maximum(x, 1e-4) for x in _binned(ref, cur, column, "psi"))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def hellinger(ref: ReferenceSide, cur: pd.Series, column: str = "") -> float:
    import numpy as np

    expected, actual = _binned(ref, cur, column, "hellinger")
    return float(np.sqrt(0.5 * np.sum((np.sqrt(expected) - np.sqrt(actual)) ** 2)))


_SCORES = {"ks": ks, "chisquare": chisquare, "ztest": ztest, "wasserstein": wasserstein,
           "jensenshannon": jensenshannon, "psi": psi, "hellinger": hellinger}
