"""Model performance on feedback: metrics with confidence intervals from the joined predictions and true values,
and concept-drift detectors (river's Page-Hinkley, ADWIN and DDM) run over the stream of errors.

Intervals: accuracy's is the Wilson score interval; every other metric's is a percentile bootstrap over the
labelled rows (RESAMPLES resamples drawn with a fixed seed, so the same data gives the same interval), computed
as weighted sums over a matrix of resample counts so that it stays fast at 100,000 rows. With fewer than MIN_ROWS
labelled rows the metrics are given but the bootstrap intervals are not (a note says so); Wilson's interval,
valid for small samples, is kept."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from numbers import Real
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TASKS = ("classification", "regression")
MIN_ROWS = 10  # labelled rows below which the bootstrap intervals are left out
RESAMPLES = 200
SEED = 0
REGRESSION_MIN_DISTINCT = 21  # numeric predictions with more distinct values than 20 are a regression's
_CHUNK_CELLS = 2_500_000  # resample counts held at once (rows x resamples), to bound memory
_BAD = object()  # a label that cannot be compared with the predictions
DETECTORS = ("page_hinkley", "adwin", "ddm")
#: river's defaults but for DDM's warm start (30 there): at a low error rate a first stretch without errors sets
#: its minimum near zero, after which a few errors are "drift". Of 200 steady streams of 4,000 rows at 5 % errors,
#: 103 alarmed with 30, 43 with 300 (and 12 with 1,000, at the cost of seeing nothing in the first 1,000 rows).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {"ddm": {"warm_start": 300}}
#: Metrics of a (resamples x rows) matrix of row weights, one value per resample.
Kernel = Callable[["np.ndarray"], dict[str, "np.ndarray"]]


@dataclass
class Metric:
    value: float | None
    low: float | None = None
    high: float | None = None
    method: str | None = None  # wilson | bootstrap, when an interval is given
    note: str | None = None


@dataclass
class PerformanceReport:
    task: str | None
    task_inferred: bool
    confidence: float
    rows: int  # rows of the joined frame
    labelled: int = 0  # rows compared: a prediction and a usable label
    missing_labels: int = 0  # null labels, skipped
    unusable: int = 0  # labels that cannot be coerced to the predictions' type
    no_prediction: int = 0  # rows without a prediction (failed requests)
    classes: list[Any] | None = None
    positive: Any = None
    metrics: dict[str, Metric] = field(default_factory=dict)
    label_mismatch: dict[str, Any] | None = None  # {"rows", "example", "expected"} when labels had the wrong type
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        return "; ".join(self.notes) or None

    def __getitem__(self, name: str) -> Metric:
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["note"] = self.note
        return out


@dataclass
class Detection:
    detector: str
    index: int | None = None  # position of the first detection in the stream ordered by time
    timestamp: Any = None
    request_id: str | None = None
    count: int = 0  # detections over the whole stream (each detector starts afresh after one)
    note: str | None = None

    @property
    def detected(self) -> bool:
        return self.count > 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if hasattr(self.timestamp, "isoformat"):
            out["timestamp"] = self.timestamp.isoformat()
        return out


# -- labels --------------------------------------------------------------------------------------------
def infer_task(predictions: pd.Series) -> tuple[str, str]:
    """regression for numeric predictions with a fraction or more than 20 distinct values, else
    classification; and the reason."""
    import numpy as np
    import pandas as pd

    values = predictions.dropna().infer_objects()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(float)
        distinct = len(np.unique(numbers))
        if distinct >= REGRESSION_MIN_DISTINCT or not np.all(numbers == np.round(numbers)):
            return "regression", f"numeric predictions with {distinct} distinct values"
        return "classification", f"numeric predictions with only {distinct} distinct whole values"
    return "classification", f"{values.dtype} predictions"


def _kind(predictions: pd.Series) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(predictions):
        return "boolean"
    return "number" if pd.api.types.is_numeric_dtype(predictions) else "string"


def _coerce(value: Any, kind: str) -> Any:
    if isinstance(value, (list, dict, tuple, set)):
        return _BAD
    if kind == "number":
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return _BAD
            return number if math.isfinite(number) else _BAD
        return float(value) if isinstance(value, Real) else _BAD
    if kind == "boolean":
        if isinstance(value, str):
            value = {"true": True, "false": False, "1": True, "0": False}.get(value.strip().lower(), _BAD)
        return bool(value) if value in (0, 1) and value is not _BAD else _BAD
    if isinstance(value, Real) and float(value).is_integer():
        return str(int(float(value)))
    return str(value) if isinstance(value, (str, Real)) else _BAD


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value, so that reports show 0, not np.int64(0), and stay plain JSON."""
    return value.item() if hasattr(value, "item") and not hasattr(value, "__len__") else value


def labelled(joined: pd.DataFrame, task: str, classes: Sequence[Any] | None = None
             ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows whose label can be compared with their prediction, labels coerced to the predictions' type
    (columns prediction, label, and the others of `joined`), and the counts of the rows left out. With the
    model's `classes`, a classification label that is none of them cannot be compared either."""
    import numpy as np
    import pandas as pd

    for column in ("prediction", "feedback"):
        if column not in joined.columns:
            raise ValidationError(f"The joined frame has no {column!r} column (it has {', '.join(map(str, joined))}); "
                                  "pass the frame joined_feedback() returns.", column=column)
    has_prediction = joined["prediction"].notna().to_numpy()
    has_label = joined["feedback"].notna().to_numpy()  # lists count as given: pandas tests scalars only
    rows = joined[has_prediction & has_label]
    predictions = rows["prediction"].infer_objects()
    kind = "number" if task == "regression" else _kind(predictions)
    if kind == "string":
        predictions = predictions.map(lambda v: _coerce(v, "string"))
    labels = rows["feedback"].infer_objects()
    if kind == "number" and _kind(labels) == "number" or kind == "boolean" and _kind(labels) == "boolean":
        coerced = labels
    else:
        coerced = labels.map(lambda v: _coerce(v, kind))
    bad = coerced.map(lambda v: v is _BAD).to_numpy(bool).copy()
    expected = f"{kind} (like the predictions: {predictions.dtype}, e.g. {_plain(predictions.iloc[0])!r})" \
        if len(predictions) else kind
    if classes is not None and task == "classification" and kind in ("string", "number"):
        known = {_coerce(c, kind) for c in classes}
        bad |= ~coerced.map(lambda v: v in known).to_numpy(bool)
        expected = f"one of the model's classes: {', '.join(map(str, classes))}"
    counts: dict[str, Any] = {"missing_labels": int((~has_label & has_prediction).sum()),
                              "no_prediction": int((~has_prediction).sum()), "unusable": int(bad.sum())}
    if bad.any():
        counts["label_mismatch"] = {"rows": int(bad.sum()), "example": _plain(labels[bad].iloc[0]),
                                    "expected": expected}
    good = rows[~bad].assign(prediction=predictions[~bad], label=coerced[~bad])
    label = good["label"].infer_objects()
    if kind == "number" and pd.api.types.is_integer_dtype(predictions.infer_objects()) and len(label):
        numbers = label.to_numpy(float)
        label = pd.Series(numbers.astype(np.int64), index=label.index) if np.all(numbers % 1 == 0) else label
    if kind == "number" and len(good) and not pd.api.types.is_numeric_dtype(good["prediction"].infer_objects()):
        counts["unusable"] += len(good)
        example = _plain(good["prediction"].iloc[0])
        counts["label_mismatch"] = {"rows": len(good), "example": example,
                                    "expected": "numeric predictions for a regression"}
        good = good.iloc[:0]
    return good.assign(prediction=good["prediction"].infer_objects(), label=label), counts


# -- performance ---------------------------------------------------------------------------------------
def performance(joined: pd.DataFrame, task: str | None = None, *, classes: Sequence[Any] | None = None,
                confidence: float = 0.95, positive: Any = None, resamples: int = RESAMPLES,
                seed: int = SEED) -> PerformanceReport:
    """Metrics of the model on the rows of `joined` that have a usable label (see the module docstring for the
    intervals). Classification: accuracy, precision, recall, f1 (binary: of the positive class, `positive` or
    the second of the sorted classes; multiclass: macro averages over the classes seen in labels or predictions)
    and roc_auc when there are probabilities (in `classes` order, default: the sorted classes). Regression:
    rmse, mae, r2. Data that cannot be judged gives notes, not errors."""
    import numpy as np

    if task is not None and task not in TASKS:
        raise ValidationError(f"Unknown task {task!r}; use classification, regression or None to infer it.",
                              task=task)
    if not 0 < confidence < 1:
        raise ValidationError(f"confidence {confidence!r} must be between 0 and 1, e.g. 0.95.", confidence=confidence)
    report = PerformanceReport(task, False, confidence, len(joined))
    if task is None and joined.get("prediction") is not None and joined["prediction"].notna().any():
        report.task, why = infer_task(joined["prediction"])
        report.task_inferred = True
        report.notes.append(f"task inferred: {report.task} ({why})")
    rows, counts = labelled(joined, report.task or "classification", classes)
    report.labelled = len(rows)
    report.missing_labels, report.unusable, report.no_prediction = (
        counts["missing_labels"], counts["unusable"], counts["no_prediction"])
    if "label_mismatch" in counts:
        mismatch = report.label_mismatch = counts["label_mismatch"]
        report.notes.append(f"label-type mismatch: {mismatch['rows']} label(s) cannot be compared with the "
                            f"predictions, e.g. {mismatch['example']!r}; expected {mismatch['expected']}")
    if report.labelled == 0 or report.task is None:
        report.notes.append("insufficient data: no labelled rows with a prediction")
        return report
    small = report.labelled < MIN_ROWS
    if small:
        report.notes.append(f"confidence intervals omitted: {report.labelled} labelled rows, {MIN_ROWS} needed "
                            "for a bootstrap (accuracy keeps its Wilson interval)")
    if report.task == "regression":
        kernels = [_regression(rows["label"].to_numpy(float), rows["prediction"].to_numpy(float))]
    else:
        kernels = _classification(rows, report, classes, positive)
    values = {k: v for kernel in kernels for k, v in kernel(np.ones((1, report.labelled))).items()}
    resampled = {} if small else _bootstrap(kernels, report.labelled, resamples, seed)
    alpha = 1 - confidence
    for name, value in values.items():
        metric = report.metrics[name] = Metric(None if math.isnan(value[0]) else float(value[0]))
        sample = resampled.get(name, np.array([]))
        sample = sample[~np.isnan(sample)]
        if len(sample) and metric.value is not None:
            low, high = np.percentile(sample, [100 * alpha / 2, 100 * (1 - alpha / 2)])
            metric.low, metric.high, metric.method = float(low), float(high), "bootstrap"
    if report.metrics.get("r2", Metric(0.0)).value is None:
        report.metrics["r2"].note = "undefined: every label is the same value"
    if report.task == "classification":
        accuracy = float(np.mean(rows["label"].to_numpy() == rows["prediction"].to_numpy()))
        low, high = wilson(accuracy, report.labelled, confidence)
        report.metrics = {"accuracy": Metric(accuracy, low, high, "wilson"), **report.metrics}
    return report


def wilson(share: float, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion `share` observed over `n` trials."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    spread = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return centre - spread, centre + spread


def _bootstrap(kernels: Sequence[Kernel], n: int, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Each kernel over `resamples` resamples: a (resamples x n) matrix of how often each row was drawn, made
    in chunks to bound memory, so each kernel is a few weighted sums instead of a Python loop."""
    import numpy as np

    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // n)
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, resamples, step):
        b = min(step, resamples - start)
        drawn = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        weights = np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n).astype(float)
        for kernel in kernels:
            for name, values in kernel(weights).items():
                out.setdefault(name, []).append(values)
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _regression(truth: np.ndarray, predicted: np.ndarray) -> Kernel:
    import numpy as np

    error, centred = predicted - truth, truth - truth.mean()  # centring keeps the sum of squares exact
    columns = np.column_stack([error * error, np.abs(error), centred, centred * centred])

    def kernel(weights: np.ndarray) -> dict[str, np.ndarray]:
        sums, total = weights @ columns, weights.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # constant labels: r2 undefined (nan)
            r2 = np.where(sums[:, 3] > 0, 1 - sums[:, 0] / (sums[:, 3] - sums[:, 2] ** 2 / total), np.nan)
        return {"rmse": np.sqrt(sums[:, 0] / total), "mae": sums[:, 1] / total, "r2": r2}
    return kernel


def _classification(rows: pd.DataFrame, report: PerformanceReport, classes: Sequence[Any] | None,
                    positive: Any) -> list[Kernel]:
    import numpy as np

    truth, predicted = rows["label"].to_numpy(), rows["prediction"].to_numpy()
    seen = sorted(set(truth.tolist()) | set(predicted.tolist()))
    model_classes = [_plain(c) for c in classes] if classes is not None else None
    positive = _plain(positive)
    if positive is not None and model_classes is not None and positive not in model_classes:
        raise ValidationError(f"positive class {positive!r} is not one of the classes "
                              f"{', '.join(map(repr, model_classes))}; give one of them.", positive=positive)
    universe = sorted(set(model_classes or seen) | ({positive} if positive is not None else set()))
    report.classes = model_classes or universe
    outside = sorted(set(seen) - set(universe))
    if outside:
        report.notes.append(f"values outside the model's classes: {', '.join(map(repr, outside[:5]))}")
    index = {value: i for i, value in enumerate(seen)}
    t, p = np.array([index[v] for v in truth.tolist()]), np.array([index[v] for v in predicted.tolist()])
    kernels: list[Kernel] = []
    if len(universe) <= 2 and not outside:
        if len(universe) < 2 and positive is None:
            report.notes.append(f"precision, recall and f1 undefined: only the class {universe[0]!r} was seen; give "
                                "`positive` or `classes`")
            return kernels
        report.positive = positive if positive is not None else universe[1]
        chosen = [index[report.positive]] if report.positive in index else []
    else:
        chosen = list(range(len(seen)))  # macro over the classes seen, as sklearn does
    columns = np.column_stack([(t == c) & (p == c) for c in chosen] + [p == c for c in chosen]
                              + [t == c for c in chosen]).astype(float) if chosen else np.zeros((len(t), 3))
    k = max(len(chosen), 1)

    def scores(weights: np.ndarray) -> dict[str, np.ndarray]:
        sums = weights @ columns
        tp, pred, true = sums[:, :k], sums[:, k:2 * k], sums[:, 2 * k:]
        with np.errstate(divide="ignore", invalid="ignore"):  # an empty class scores 0, as sklearn's default
            return {"precision": np.nan_to_num(tp / pred).mean(axis=1),
                    "recall": np.nan_to_num(tp / true).mean(axis=1),
                    "f1": np.nan_to_num(2 * tp / (pred + true)).mean(axis=1)}

    auc = _auc_kernel(rows, report, seen, t)
    return [scores] + ([auc] if auc is not None else [])


def _auc_kernel(rows: pd.DataFrame, report: PerformanceReport, seen: list[Any],
                t: np.ndarray) -> Kernel | None:
    """ROC AUC: binary, of the positive class's probability; multiclass, the macro mean of one-vs-rest AUCs."""
    import numpy as np

    if "probabilities" not in rows.columns or rows["probabilities"].isna().all():
        return None
    order = list(report.classes or [])
    given = rows["probabilities"].notna().to_numpy()
    widths = {len(v) for v in rows["probabilities"][given]}
    if widths != {len(order)}:
        report.notes.append(f"roc_auc skipped: probabilities have {sorted(widths)} columns where the classes are "
                            f"{order}; pass `classes` in the model's order")
        return None
    labels = {seen[i] for i in np.unique(t[given])}
    missing = [c for c in order if c not in labels]
    if missing or labels - set(order):
        what = f"class {missing[0]!r} is missing from the labels" if missing else "labels outside the classes"
        report.notes.append(f"roc_auc skipped: {what}")
        return None
    if given.sum() < len(rows):
        report.notes.append(f"roc_auc over the {int(given.sum())} of {len(rows)} rows that have probabilities")
    probabilities = np.vstack(rows["probabilities"][given].tolist()).astype(float)
    truth = np.array(seen, dtype=object)[t[given]]
    targets = [report.positive] if len(order) == 2 and report.positive is not None else order
    all_given = bool(given.all())
    aucs = [_weighted_auc(probabilities[:, order.index(c)], truth == c) for c in targets]

    def kernel(weights: np.ndarray) -> dict[str, np.ndarray]:
        rated = weights if all_given else weights[:, given]
        return {"roc_auc": np.mean([auc(rated) for auc in aucs], axis=0)}
    return kernel


def _weighted_auc(scores: np.ndarray, positive: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """ROC AUC in its Mann-Whitney form (a tied negative counts one half) with a weight per row, for each row
    of a weights matrix. Each positive beats the negatives ranked below it: the sorting and searching are done
    once here, so a resample costs a cumulative sum and two gathers."""
    import numpy as np

    hit = positive.astype(bool)
    negatives, positives = np.flatnonzero(~hit), np.flatnonzero(hit)
    order = negatives[np.argsort(scores[negatives], kind="stable")]
    ranked = scores[order]
    below = np.searchsorted(ranked, scores[positives], side="left")  # negatives strictly below
    upto = np.searchsorted(ranked, scores[positives], side="right")  # ... and tied with it

    def auc(weights: np.ndarray) -> np.ndarray:
        beaten = np.zeros((len(weights), len(order) + 1))
        np.cumsum(weights[:, order], axis=1, out=beaten[:, 1:])
        wins = (weights[:, positives] * (beaten[:, below] + beaten[:, upto])).sum(axis=1) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            return wins / (weights[:, positives].sum(axis=1) * beaten[:, -1])
    return auc


# -- concept drift -------------------------------------------------------------------------------------
def error_stream(joined: pd.DataFrame, task: str | None = None, classes: Sequence[Any] | None = None
                 ) -> pd.DataFrame:
    """timestamp, request_id and error (1/0 misclassified for classification, absolute error for regression)
    of the labelled rows (whose label is one of `classes` when given), in time order."""
    import numpy as np

    if task is not None and task not in TASKS:
        raise ValidationError(f"Unknown task {task!r}; use classification, regression or None to infer it.",
                              task=task)
    task = task or (infer_task(joined["prediction"])[0] if "prediction" in joined else "classification")
    rows, _ = labelled(joined, task, classes)
    if not {"timestamp", "request_id"} <= set(rows.columns):
        raise ValidationError("The joined frame needs 'timestamp' and 'request_id' columns for an error stream; pass "
                              "the frame joined_feedback() returns.")
    if task == "regression":
        error = np.abs(rows["prediction"].to_numpy(float) - rows["label"].to_numpy(float))
    else:
        error = (rows["prediction"].to_numpy() != rows["label"].to_numpy()).astype(np.int64)
    stream = rows[["timestamp", "request_id"]].assign(error=error)
    return stream.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _detector_class(name: str) -> type:
    from river import drift

    return {"page_hinkley": drift.PageHinkley, "adwin": drift.ADWIN, "ddm": drift.binary.DDM}[name]


def detect_drift(errors: Sequence[float] | np.ndarray, *, detectors: Sequence[str] = DETECTORS,
                 timestamps: Sequence[Any] | None = None, request_ids: Sequence[str] | None = None,
                 params: Mapping[str, Mapping[str, Any]] | None = None) -> list[Detection]:
    """Run each detector over the error stream (ordered by `timestamps` when given); one Detection per detector.
    DDM needs a 0/1 stream: on any other it is skipped with a note. `params` sets a detector's river parameters,
    e.g. {"adwin": {"delta": 0.01}}, over DEFAULT_PARAMS."""
    import numpy as np
    import pandas as pd

    unknown = [d for d in [*detectors, *(params or {})] if d not in DETECTORS]
    if unknown:
        raise ValidationError(f"Unknown drift detector {unknown[0]!r}; the detectors are {', '.join(DETECTORS)}.",
                              detector=unknown[0])
    values = np.asarray(errors, dtype=float).ravel()
    if not np.all(np.isfinite(values)):
        where = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValidationError(f"errors[{where}] is {values[where]}; drop the rows without a usable label first.")
    for name, given in (("timestamps", timestamps), ("request_ids", request_ids)):
        if given is not None and len(given) != len(values):
            raise ValidationError(f"{name} has {len(given)} values for {len(values)} errors; give one per error.")
    ids = list(request_ids) if request_ids is not None else None
    order = np.arange(len(values))
    times = None
    if timestamps is not None:
        times = pd.Series(pd.to_datetime(list(timestamps), utc=True))
        order = np.argsort(times.to_numpy(dtype="datetime64[ns]"), kind="stable")
    stream = values[order].tolist()
    found = []
    for name in detectors:
        result = Detection(name)
        found.append(result)
        if name == "ddm" and not np.all(np.isin(values, (0.0, 1.0))):
            result.note = "skipped: DDM needs a 0/1 stream (misclassified or not), not absolute errors"
            continue
        detector = _make(name, {**DEFAULT_PARAMS.get(name, {}), **(params or {}).get(name, {})})
        for position, x in enumerate(stream):
            detector.update(x)
            if detector.drift_detected:
                result.count += 1
                if result.index is None:
                    result.index = position
        if result.index is not None:
            original = int(order[result.index])
            result.timestamp = times.iloc[original] if times is not None else None
            result.request_id = str(ids[original]) if ids is not None else None
    return found


def _make(name: str, settings: dict[str, Any]) -> Any:
    cls = _detector_class(name)
    known = [p for p in inspect.signature(cls).parameters if p != "self"]
    extra = [k for k in settings if k not in known]
    if extra:
        raise ValidationError(f"{name} has no parameter {extra[0]!r}; its parameters are {', '.join(known)}.",
                              detector=name, parameter=extra[0])
    try:
        return cls(**settings)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"Bad parameters {settings} for {name}: {exc}", detector=name) from None
