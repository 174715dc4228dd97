"""The offline evaluation gate: metrics of a version on held-out data, value thresholds, change against the champion.

scikit-learn computes the metrics; it is imported on first use.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.errors import ConfigError, ValidationError
from shipyard.gates.baseline import BaselineScore, beat_check
from shipyard.gates.results import Check, GateResult, format_number
from shipyard.policy.gates import CLASSIFICATION_METRICS, REGRESSION_METRICS, GateSpec, Task, higher_is_better

#: At most this many distinct integer values make a target a classification target (see infer_task).
MAX_INFERRED_CLASSES = 20
#: Slack for comparing a metric with a threshold written in decimal (0.8 - 0.79 is 0.010000000000000009).
_EPSILON = 1e-12


def infer_task(y_true: Any) -> Task:
    """classification for booleans, text and at most 20 distinct whole numbers; regression otherwise."""
    values = np.asarray(y_true)
    kind = values.dtype.kind
    if kind == "b" or kind not in "iuf":
        return "classification"
    if kind == "f":
        values = values[np.isfinite(values)]
        if not np.all(values == np.round(values)):
            return "regression"
    return "classification" if len(np.unique(values)) <= MAX_INFERRED_CLASSES else "regression"


def class_labels(y_true: Any, y_pred: Any) -> list[Any]:
    """The sorted labels seen in `y_true` and `y_pred`, as plain Python values."""
    seen = np.unique(np.concatenate([np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()]))
    return [_python(label) for label in seen]


def positive_class(classes: Sequence[Any], positive_label: Any = None) -> Any:
    """The positive class: `positive_label` matched among `classes` (also by its text), else the last class.

    With fewer than two classes seen (a slice, a constant model) a given `positive_label` is taken as is.
    """
    known = [_python(label) for label in classes]
    if positive_label is None:
        if not known:
            raise ValidationError("No labels to choose a positive class from: the data is empty.")
        return known[-1]
    for label in known:
        if label == positive_label and isinstance(label, bool) == isinstance(positive_label, bool):
            return label
    for label in known:
        if str(label) == str(positive_label):
            return label
    if len(known) < 2:
        return positive_label
    raise ValidationError(
        f"positive_label {positive_label!r} is not among the labels {known!r}. Set positive_label to one of them."
    )


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def positive_proba(y_proba: Any, classes: Sequence[Any], positive: Any) -> npt.NDArray[np.float64]:
    """P(positive) per row: `y_proba` itself when 1-D, else its column for `positive` (columns follow `classes`)."""
    proba = np.asarray(y_proba, dtype=float)
    if proba.ndim == 1:
        return proba
    if proba.shape[1] != len(classes):
        raise ValidationError(
            f"The probabilities have {proba.shape[1]} columns but there are {len(classes)} classes "
            f"{list(classes)!r}. Pass classes= in the order of the model's probability columns (its classes_)."
        )
    return proba[:, [_python(label) for label in classes].index(positive)]


def compute_metrics(
    task: Task,
    y_true: Any,
    y_pred: Any,
    y_proba: Any = None,
    positive_label: Any = None,
    *,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """The metrics of `task` on these predictions.

    Classification: accuracy, precision, recall, f1 (binary: of the positive class, by default the larger label;
    multiclass: weighted by support), and with `y_proba` roc_auc (multiclass: one-vs-rest, weighted) and
    log_loss. `y_proba` is P(positive) (1-D, binary only) or one column per class in the order of `classes`
    (default: the sorted labels seen). roc_auc is left out when y_true holds a single class.
    Regression: rmse, mae, r2.
    """
    from sklearn import metrics as skm

    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    if len(truth) != len(predicted):
        raise ValidationError(f"y_true has {len(truth)} rows but y_pred has {len(predicted)}; they must match.")
    if len(truth) == 0:
        raise ValidationError("No rows to compute metrics on.")
    if task == "regression":
        return {
            "rmse": float(skm.root_mean_squared_error(truth, predicted)),
            "mae": float(skm.mean_absolute_error(truth, predicted)),
            "r2": float(skm.r2_score(truth, predicted)) if len(truth) > 1 else math.nan,
        }
    labels = list(classes) if classes is not None else class_labels(truth, predicted)
    try:
        return _classification(skm, truth, predicted, y_proba, positive_label, labels)
    except ValueError as exc:  # labels and probabilities that do not fit together
        raise ValidationError(f"Cannot compute classification metrics: {exc}") from None


def _classification(
    skm: Any, truth: npt.NDArray[Any], predicted: npt.NDArray[Any], y_proba: Any, positive_label: Any,
    labels: list[Any],
) -> dict[str, float]:
    binary = len(labels) <= 2
    result = {"accuracy": float(skm.accuracy_score(truth, predicted))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined precision of an empty class counts as 0, as zero_division says
        if binary:
            positive = positive_class(labels, positive_label)
            hits_true, hits_pred = truth == positive, predicted == positive
            for name, score in (("precision", skm.precision_score), ("recall", skm.recall_score),
                                ("f1", skm.f1_score)):
                result[name] = float(score(hits_true, hits_pred, zero_division=0))
        else:
            for name, score in (("precision", skm.precision_score), ("recall", skm.recall_score),
                                ("f1", skm.f1_score)):
                result[name] = float(score(truth, predicted, labels=labels, average="weighted", zero_division=0))
        if y_proba is None:
            return result
        if binary:
            p = positive_proba(y_proba, labels, positive)
            if len(np.unique(hits_true)) == 2:
                result["roc_auc"] = float(skm.roc_auc_score(hits_true, p))
            result["log_loss"] = float(skm.log_loss(hits_true.astype(int), p, labels=[0, 1]))
        else:
            proba = np.asarray(y_proba, dtype=float)
            if proba.ndim != 2 or proba.shape[1] != len(labels):
                raise ValidationError(
                    f"The probabilities have shape {proba.shape} but there are {len(labels)} classes {labels!r}. "
                    "Pass one column per class and classes= in the order of those columns (the model's classes_)."
                )
            order = sorted(range(len(labels)), key=lambda i: labels[i])  # scikit-learn wants sorted labels
            ordered, proba = [labels[i] for i in order], proba[:, order]
            if len(np.unique(truth)) > 1:
                auc = float(skm.roc_auc_score(truth, proba, multi_class="ovr", average="weighted", labels=ordered))
                if math.isfinite(auc):
                    result["roc_auc"] = auc
            result["log_loss"] = float(skm.log_loss(truth, proba, labels=ordered))
    return result


def prediction_evidence(task: Task, truth: Any, predicted: Any) -> dict[str, Any]:
    """What a report plots of predictions on the evaluation data: the confusion matrix of a classifier,
    the histogram of residuals (actual - predicted) of a regressor; and the number of rows."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if task == "regression":
        residuals = truth.astype(float) - predicted.astype(float)
        counts, edges = np.histogram(residuals[np.isfinite(residuals)], bins=20)
        return {"rows": int(len(truth)), "residuals": {"edges": edges.tolist(), "counts": counts.tolist()}}
    from sklearn.metrics import confusion_matrix

    labels = class_labels(truth, predicted)
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return {"rows": int(len(truth)), "confusion_matrix": {"labels": [str(x) for x in labels],
                                                           "matrix": matrix.tolist()}}


def evaluate_gate(
    spec: GateSpec, metrics: Mapping[str, float], champion_metrics: Mapping[str, float] | None,
    baseline: BaselineScore | None = None,
) -> GateResult:
    """Check `metrics` against the value thresholds, given the champion's metrics the change limits, and
    given the trivial baseline's score (when the spec asks to beat it) that the version beats it.

    Without a champion (`champion_metrics` None) or a champion lacking the metric, a change limit is a
    NO_BASELINE check. A relative change is (new - old) / |old|.
    """
    evaluation = spec.evaluation
    if evaluation is None:
        raise ConfigError(f"{spec.path} has no evaluation section; add one or skip the evaluation gate.")
    checks: list[Check] = []
    for metric, bound in evaluation.thresholds.items():
        value = metrics.get(metric)
        for side, limit in (("min", bound.min), ("max", bound.max)):
            if limit is None:
                continue
            name = f"thresholds.{metric}.{side}"
            if value is None or not math.isfinite(value):
                checks.append(Check(name=name, status="FAIL", observed=value, threshold=limit,
                                    message=_missing(metric, value, metrics)))
            elif side == "min":
                ok = value >= limit - _EPSILON
                checks.append(Check(
                    name=name, status="PASS" if ok else "FAIL", observed=value, threshold=limit,
                    message=f"{metric} {format_number(value)} {'>=' if ok else '<'} minimum {format_number(limit)}",
                ))
            else:
                ok = value <= limit + _EPSILON
                checks.append(Check(
                    name=name, status="PASS" if ok else "FAIL", observed=value, threshold=limit,
                    message=f"{metric} {format_number(value)} {'<=' if ok else '>'} maximum {format_number(limit)}",
                ))
    for metric, change in evaluation.against_champion.items():
        checks.append(_change_check(metric, change.limit, change.relative, metrics, champion_metrics))
    if baseline is not None:
        checks += [beat_check(metric, metrics, baseline) for metric in evaluation.baseline_metrics(baseline.task)]
    result = GateResult.from_checks("evaluation", checks, dict(metrics))
    if baseline is not None:
        result.evidence["baseline"] = baseline.evidence()
    return result


def _missing(metric: str, value: float | None, metrics: Mapping[str, float]) -> str:
    if value is not None:
        return f"{metric} is {value} for this version, so it cannot meet a threshold"
    why = ""
    if metric == "roc_auc":
        why = " (it needs predicted probabilities and both classes among the true labels)"
    elif metric == "log_loss":
        why = " (it needs predicted probabilities)"
    elif metric in REGRESSION_METRICS and any(m in CLASSIFICATION_METRICS for m in metrics):
        why = " (it is a regression metric and this version was evaluated as a classifier)"
    elif metric in CLASSIFICATION_METRICS and any(m in REGRESSION_METRICS for m in metrics):
        why = " (it is a classification metric and this version was evaluated as a regressor)"
    computed = ", ".join(sorted(metrics)) or "none"
    return f"{metric} was not computed for this version{why}; computed: {computed}"


def _change_check(
    metric: str, limit: float, relative: bool, metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
) -> Check:
    higher = higher_is_better(metric)
    worse = "drop" if higher else "rise"
    name = f"against_champion.{metric}.max_{worse}"
    allowed = f"{limit:.1%}" if relative else format_number(limit)
    new = metrics.get(metric)
    old = None if champion_metrics is None else champion_metrics.get(metric)
    if champion_metrics is None or old is None or not math.isfinite(old):
        why = "there is no champion" if champion_metrics is None else f"the champion has no {metric} metric"
        return Check(name=name, status="NO_BASELINE", observed=new, threshold=limit,
                     message=f"{metric}: {why} to compare with; the allowed {worse} of {allowed} was not checked",
                     details={"relative": relative})
    if new is None or not math.isfinite(new):
        return Check(name=name, status="FAIL", observed=new, threshold=limit, message=_missing(metric, new, metrics),
                     details={"champion": old, "relative": relative})
    delta = new - old
    if relative:
        delta = 0.0 if delta == 0 else (delta / abs(old) if old != 0 else math.copysign(math.inf, delta))
    worsening = -delta if higher else delta  # > 0 when the version is worse than the champion
    ok = worsening <= limit + _EPSILON
    moved = "rose" if delta > 0 else "fell" if delta < 0 else "did not change"
    amount = "" if delta == 0 else " " + (f"{abs(delta):.1%}" if relative else format_number(abs(delta)))
    verdict = f"within the allowed {worse} of {allowed}" if ok else f"more than the allowed {worse} of {allowed}"
    if worsening <= 0:
        verdict = "no worse than the champion"
    return Check(
        name=name, status="PASS" if ok else "FAIL", observed=new, threshold=limit,
        message=(f"{metric} {format_number(new)} {moved}{amount} from the champion's {format_number(old)}: "
                 f"{verdict}"),
        details={"champion": old, "change": delta, "relative": relative},
    )
