"""The fairness gate: per-group rates and the disparity metrics, computed as fairlearn defines them.

Selection rate is the share of rows predicted positive; TPR and FPR are taken from each group's rows, a rate
with an empty denominator counting as 0 (as scikit-learn's normalised confusion matrix does). Differences are
the largest minus the smallest group value; the ratio is the smallest over the largest.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from shipyard.errors import ConfigError, ValidationError
from shipyard.gates.evaluation import class_labels, positive_class
from shipyard.gates.results import Check, GateResult, format_number
from shipyard.policy.gates import Bound, GateSpec

_EPSILON = 1e-12


class GroupMetrics(TypedDict):
    selection_rate: float
    tpr: float
    fpr: float
    accuracy: float
    count: int


def group_metrics(y_true: Any, y_pred: Any, groups: Any, positive_label: Any = None) -> dict[Any, GroupMetrics]:
    """Selection rate, TPR, FPR, accuracy and row count of each group (groups in order of first appearance).

    `positive_label` defaults to 1 for 0/1 and -1/1 labels, else to the larger of two labels.
    """
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    keys = np.asarray(groups, dtype=object)
    if not len(truth) == len(predicted) == len(keys):
        raise ValidationError(
            f"y_true, y_pred and groups must have one value per row; got {len(truth)}, {len(predicted)} and "
            f"{len(keys)}."
        )
    if len(truth) == 0:
        raise ValidationError("No rows to compute fairness metrics on.")
    positive = _positive(truth, predicted, positive_label)
    actual = _is(truth, positive)
    chosen = _is(predicted, positive)
    codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    result: dict[Any, GroupMetrics] = {}
    for code, group in enumerate(uniques):
        rows = codes == code
        a, c = actual[rows], chosen[rows]
        positives, negatives = int(a.sum()), int((~a).sum())
        result[_python(group)] = GroupMetrics(
            selection_rate=float(c.mean()),
            tpr=int((a & c).sum()) / positives if positives else 0.0,
            fpr=int((~a & c).sum()) / negatives if negatives else 0.0,
            accuracy=float(np.mean(truth[rows] == predicted[rows])),
            count=int(rows.sum()),
        )
    return result


def demographic_parity_difference(y_true: Any, y_pred: Any, groups: Any, positive_label: Any = None) -> float:
    """The largest minus the smallest group selection rate."""
    rates = [m["selection_rate"] for m in group_metrics(y_true, y_pred, groups, positive_label).values()]
    return max(rates) - min(rates)


def demographic_parity_ratio(y_true: Any, y_pred: Any, groups: Any, positive_label: Any = None) -> float:
    """The smallest over the largest group selection rate; NaN when no group has a positive prediction."""
    rates = [m["selection_rate"] for m in group_metrics(y_true, y_pred, groups, positive_label).values()]
    return _ratio(rates)


def equalized_odds_difference(y_true: Any, y_pred: Any, groups: Any, positive_label: Any = None) -> float:
    """The larger of the TPR difference and the FPR difference between groups."""
    by_group = group_metrics(y_true, y_pred, groups, positive_label)
    return max(_spread([m["tpr"] for m in by_group.values()]), _spread([m["fpr"] for m in by_group.values()]))


def fairness_gate(spec: GateSpec, y_true: Any, y_pred: Any, groups: Any) -> GateResult:
    """Check the disparity limits of `spec.fairness` with `groups` the values of its sensitive column."""
    fairness = spec.fairness
    if fairness is None:
        raise ConfigError(f"{spec.path} has no fairness section; add one or skip the fairness gate.")
    label = fairness.positive_label if fairness.positive_label is not None else spec.positive_label
    try:
        by_group = group_metrics(y_true, y_pred, groups, label)
    except ValidationError as exc:
        return GateResult.from_checks("fairness", [Check(name="groups", status="FAIL", message=str(exc))])
    if len(by_group) < 2:
        only = next(iter(by_group))
        return GateResult.from_checks("fairness", [Check(
            name="groups", status="FAIL", observed=1,
            message=f"the sensitive column '{fairness.sensitive}' holds the single group {only!r} in the evaluation "
                    "data, so there is nothing to compare; evaluate on data with every group",
        )])
    selection = {g: m["selection_rate"] for g, m in by_group.items()}
    tpr = {g: m["tpr"] for g, m in by_group.items()}
    fpr = {g: m["fpr"] for g, m in by_group.items()}
    values = {
        "demographic_parity_difference": _spread(list(selection.values())),
        "demographic_parity_ratio": _ratio(list(selection.values())),
        "equalized_odds_difference": max(_spread(list(tpr.values())), _spread(list(fpr.values()))),
    }
    explain = {
        "demographic_parity_difference": _extremes("selection rate", selection),
        "demographic_parity_ratio": _extremes("selection rate", selection),
        "equalized_odds_difference": f"TPR difference {format_number(_spread(list(tpr.values())))}, "
                                     f"{_extremes('TPR', tpr)}; FPR difference "
                                     f"{format_number(_spread(list(fpr.values())))}, {_extremes('FPR', fpr)}",
    }
    checks = []
    for name, value in values.items():
        bound: Bound | None = getattr(fairness, name)
        if bound is not None:
            checks.extend(_bound_checks(name, value, bound, explain[name]))
    metrics: dict[str, Any] = {
        **values, "sensitive": fairness.sensitive, "by_group": {str(g): dict(m) for g, m in by_group.items()},
    }
    return GateResult.from_checks("fairness", checks, metrics)


def _bound_checks(name: str, value: float, bound: Bound, why: str) -> list[Check]:
    checks = []
    for side, limit in (("min", bound.min), ("max", bound.max)):
        if limit is None:
            continue
        if not math.isfinite(value):
            checks.append(Check(name=f"{name}.{side}", status="FAIL", observed=value, threshold=limit,
                                message=f"{name} is undefined: no group has a positive prediction"))
            continue
        ok = value >= limit - _EPSILON if side == "min" else value <= limit + _EPSILON
        sign = (">=" if ok else "<") if side == "min" else ("<=" if ok else ">")
        word = "minimum" if side == "min" else "maximum"
        checks.append(Check(
            name=f"{name}.{side}", status="PASS" if ok else "FAIL", observed=value, threshold=limit,
            message=f"{name} {format_number(value)} {sign} {word} {format_number(limit)} ({why})",
        ))
    return checks


def _positive(truth: np.ndarray, predicted: np.ndarray, positive_label: Any) -> Any:
    labels = class_labels(truth, predicted)
    if positive_label is None and (set(labels) <= {0, 1} or set(labels) <= {-1, 1}):
        return 1  # as fairlearn and scikit-learn default
    if positive_label is None and len(labels) > 2:
        raise ValidationError(
            f"Fairness metrics need a positive label when there are more than two labels ({labels!r}); set "
            "fairness.positive_label."
        )
    return positive_class(labels, positive_label)


def _is(values: np.ndarray, label: Any) -> np.ndarray:
    same = values == label
    if np.shape(same) != values.shape:  # numpy declined to compare element-wise (text against a number)
        same = np.array([value == label for value in values], dtype=bool)
    return np.asarray(same, dtype=bool)


def _spread(values: list[float]) -> float:
    return max(values) - min(values)


def _ratio(values: list[float]) -> float:
    top = max(values)
    return min(values) / top if top > 0 else math.nan


def _extremes(what: str, by_group: dict[Any, float]) -> str:
    high = max(by_group, key=lambda g: by_group[g])
    low = min(by_group, key=lambda g: by_group[g])
    return (f"{what} {format_number(by_group[high])} for group {high!r} vs {format_number(by_group[low])} "
            f"for group {low!r}")


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
