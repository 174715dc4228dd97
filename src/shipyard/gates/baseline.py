"""The trivial baseline a model must beat (`beat_baseline` in the evaluation gate): always the most frequent
class, or always the mean, of the rows the model trained on, scored on the same evaluation rows as the model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import ValidationError
from shipyard.gates.results import Check, format_number
from shipyard.policy.gates import Task, higher_is_better

_EPSILON = 1e-12


@dataclass(frozen=True)
class Baseline:
    """A constant predictor fitted on training targets: the majority class with the class shares, or the mean."""

    task: Task
    rows: int  # the training rows it was fitted on
    constant: Any  # the majority class, or the mean
    classes: list[Any] = field(default_factory=list)  # classification: the labels seen, sorted
    shares: list[float] = field(default_factory=list)  # ... and the share of each (the predicted probabilities)

    def describe(self) -> str:
        if self.task == "classification":
            return (f"always predicting {self.constant!r}, the most frequent class of the {self.rows} "
                    "training rows")
        return f"always predicting {format_number(self.constant)}, the mean of the {self.rows} training rows"


@dataclass(frozen=True)
class BaselineScore:
    """The baseline's metrics on the evaluation rows, or why there is no baseline to compare with."""

    task: Task
    baseline: Baseline | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    problem: str | None = None

    def evidence(self) -> dict[str, Any]:
        if self.baseline is None:
            return {"problem": self.problem}
        return {"description": self.baseline.describe(), "rows": self.baseline.rows,
                "constant": _python(self.baseline.constant), "metrics": dict(self.metrics)}


def fit_baseline(task: Task, y_train: Any) -> Baseline:
    """The majority class (ties: the smallest label) or the mean of the non-missing training targets."""
    import pandas as pd

    values = pd.Series(np.asarray(y_train, dtype=object) if task == "classification" else np.asarray(y_train))
    values = values[values.notna()]
    if values.empty:
        raise ValidationError("There are no training rows with a target value to fit the trivial baseline on.")
    if task == "regression":
        return Baseline(task, len(values), float(values.astype(float).mean()))
    counts = values.map(_python).value_counts()
    classes = sorted(counts.index.tolist(), key=lambda label: (str(type(label)), label))
    majority = max(classes, key=lambda label: (counts[label], -classes.index(label)))
    total = float(counts.sum())
    return Baseline(task, len(values), majority, classes, [float(counts[c]) / total for c in classes])


def score_baseline(baseline: Baseline, y_true: Any, *, positive_label: Any = None,
                   classes: list[Any] | None = None) -> dict[str, float]:
    """The baseline's metrics on the evaluation targets (probabilities: the training class shares)."""
    from shipyard.gates.evaluation import class_labels, compute_metrics

    truth = np.asarray(y_true)
    if baseline.task == "regression":
        return compute_metrics("regression", truth, np.full(len(truth), baseline.constant))
    labels = class_labels(np.asarray([*(classes or []), *baseline.classes], dtype=object), truth)
    shares = dict(zip(baseline.classes, baseline.shares, strict=True))
    proba = np.tile([shares.get(label, 0.0) for label in labels], (len(truth), 1))
    predicted = np.full(len(truth), baseline.constant, dtype=truth.dtype if truth.dtype.kind != "U" else object)
    return compute_metrics("classification", truth, predicted, proba, positive_label, classes=labels)


def beat_check(metric: str, metrics: Mapping[str, float], score: BaselineScore) -> Check:
    """PASS when the version's metric is strictly better than the baseline's; the message gives both numbers."""
    name = f"beat_baseline.{metric}"
    value = metrics.get(metric)
    if score.baseline is None:
        return Check(name=name, status="FAIL", observed=value,
                     message=f"{metric}: there is no trivial baseline to compare with: {score.problem}")
    old = score.metrics.get(metric)
    what = score.baseline.describe()
    details = {"baseline": old, "baseline_rows": score.baseline.rows, "constant": _python(score.baseline.constant)}
    if old is None or not math.isfinite(old):
        return Check(name=name, status="FAIL", observed=value, details=details,
                     message=f"{metric} was not computed for the trivial baseline ({what}); compare on another metric")
    if value is None or not math.isfinite(value):
        computed = ", ".join(sorted(metrics)) or "none"
        return Check(name=name, status="FAIL", observed=value, threshold=old, details=details,
                     message=f"{metric} was not computed for this version (computed: {computed}), so it cannot be "
                             f"compared with the trivial baseline's {format_number(old)}")
    better = value > old + _EPSILON if higher_is_better(metric) else value < old - _EPSILON
    if better:
        message = f"{metric} {format_number(value)} beats the trivial baseline's {format_number(old)} ({what})"
    else:
        message = (f"{metric} {format_number(value)} does not beat the trivial baseline's {format_number(old)} "
                   f"({what}): the model is no better than a constant")
    return Check(name=name, status="PASS" if better else "FAIL", observed=value, threshold=old, message=message,
                 details=details)


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
