"""The behavioural gate: minimum-functionality cases, invariance and directional perturbations, and slices.

Perturbations apply to every row of the evaluation frame. A predict function that raises fails the
check it was called for (or the whole gate, when the unchanged frame cannot be predicted), never the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from shipyard.errors import ConfigError, ShipyardError
from shipyard.gates.evaluation import class_labels, compute_metrics, infer_task, positive_class, positive_proba
from shipyard.gates.results import Check, GateResult, format_number
from shipyard.policy.gates import (
    PROBABILITY_METRICS,
    Case,
    Directional,
    GateSpec,
    Invariance,
    Perturbation,
    Slice,
    Task,
)

Predict = Callable[[pd.DataFrame], Any]
PredictProba = Callable[[pd.DataFrame], Any] | None

_EPSILON = 1e-12


class _CheckFailed(Exception):
    """A check cannot be computed (the model raised, the data does not fit); the message says why."""


def behavioural_gate(
    spec: GateSpec,
    predict: Predict,
    predict_proba: PredictProba,
    frame: pd.DataFrame,
    y_true: Any,
    *,
    task: Task | None = None,
    classes: Sequence[Any] | None = None,
) -> GateResult:
    """Run the behavioural checks of `spec` on `frame` (the evaluation features) with true labels `y_true`.

    `predict(df)` returns labels (or values, for regression); `predict_proba(df)` returns P(positive) or one
    column per class in the order of `classes` (default: the sorted labels seen), or None. The task is the
    spec's, else `task`, else inferred from `y_true`. P(positive) uses evaluation.positive_label (default: the
    last class).
    """
    behavioural = spec.behavioural
    if behavioural is None:
        raise ConfigError(f"{spec.path} has no behavioural section; add one or skip the behavioural gate.")
    runner = _Runner(spec, predict, predict_proba, frame, y_true, task, classes)
    try:
        runner.start()
    except _CheckFailed as exc:
        return GateResult.from_checks("behavioural", [Check(name="predict", status="FAIL", message=str(exc))])
    checks: list[Check] = []
    if behavioural.cases:
        checks.extend(runner.cases(behavioural.cases))
    for i, invariance in enumerate(behavioural.invariance):
        checks.append(runner.guard(f"invariance[{i}] {invariance.column}", runner.invariance, invariance))
    for i, directional in enumerate(behavioural.directional):
        checks.append(runner.guard(f"directional[{i}] {directional.column}", runner.directional, directional))
    for i, piece in enumerate(behavioural.slices):
        name = f"slices[{i}]" + (f" {piece.name}" if piece.name else "")
        checks.append(runner.guard(name, runner.slice, piece))
    return GateResult.from_checks("behavioural", checks, runner.metrics)


class _Runner:
    """The state shared by the checks: the frame, its baseline predictions and the label conventions."""

    def __init__(
        self, spec: GateSpec, predict: Predict, predict_proba: PredictProba, frame: pd.DataFrame, y_true: Any,
        task: Task | None, classes: Sequence[Any] | None,
    ) -> None:
        self.predict_fn, self.proba_fn = predict, predict_proba
        self.frame = frame
        self.y_true = np.asarray(y_true)
        self.task: Task = spec.task or task or infer_task(self.y_true)
        self.positive_label = spec.positive_label
        self.given_classes = list(classes) if classes is not None else None
        self.classes: list[Any] = []
        self.metrics: dict[str, Any] = {}
        self._proba: npt.NDArray[np.float64] | None = None
        self._raw_proba: Any = None
        self.labels: npt.NDArray[Any] = np.empty(0)

    def start(self) -> None:
        if len(self.y_true) != len(self.frame):
            raise _CheckFailed(f"y_true has {len(self.y_true)} rows but the frame has {len(self.frame)}")
        self.labels = self.predict(self.frame, "the evaluation data")
        if self.task == "classification":
            self.classes = self.given_classes or class_labels(self.y_true, self.labels)

    # ---- calling the model ------------------------------------------------------------------------

    def predict(self, frame: pd.DataFrame, what: str) -> npt.NDArray[Any]:
        try:
            out = np.asarray(self.predict_fn(frame))
        except Exception as exc:  # noqa: BLE001 - any failure of the model fails the check, with its message
            raise _CheckFailed(f"predict raised {type(exc).__name__} on {what}: {exc}") from exc
        out = out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out
        if out.ndim != 1 or len(out) != len(frame):
            raise _CheckFailed(f"predict returned shape {out.shape} for {len(frame)} rows of {what}; "
                               "expected one prediction per row")
        return out

    def proba(self, frame: pd.DataFrame, what: str) -> npt.NDArray[np.float64]:
        """P(positive) per row of `frame`."""
        if self.task != "classification":
            raise _CheckFailed("output: proba needs a classifier; a regression model has no probabilities")
        if self.proba_fn is None:
            raise _CheckFailed("output: proba needs predicted probabilities, and the model has no predict_proba")
        if len(self.classes) > 2 and self.positive_label is None:
            raise _CheckFailed(f"P(positive) of a multiclass model ({len(self.classes)} classes) needs "
                               "evaluation.positive_label")
        try:
            raw = self.proba_fn(frame)
        except Exception as exc:  # noqa: BLE001
            raise _CheckFailed(f"predict_proba raised {type(exc).__name__} on {what}: {exc}") from exc
        if raw is None:
            raise _CheckFailed("output: proba needs predicted probabilities, and predict_proba returned none")
        try:
            p = positive_proba(raw, self.classes, self.positive())
        except ShipyardError as exc:
            raise _CheckFailed(str(exc)) from exc
        if len(p) != len(frame):
            raise _CheckFailed(f"predict_proba returned {len(p)} rows for {len(frame)} rows of {what}")
        return p

    def baseline_proba(self) -> npt.NDArray[np.float64]:
        if self._proba is None:
            self._proba = self.proba(self.frame, "the evaluation data")
        return self._proba

    def full_proba(self) -> Any:
        """The raw probabilities of the evaluation data (for roc_auc and log_loss of slices), or None."""
        if self.proba_fn is None:
            return None
        if self._raw_proba is None:
            try:
                self._raw_proba = self.proba_fn(self.frame)
            except Exception as exc:  # noqa: BLE001
                raise _CheckFailed(
                    f"predict_proba raised {type(exc).__name__} on the evaluation data: {exc}"
                ) from exc
        return self._raw_proba

    def positive(self) -> Any:
        try:
            return positive_class(self.classes, self.positive_label)
        except ShipyardError as exc:
            raise _CheckFailed(str(exc)) from exc

    def guard(self, name: str, run: Callable[[Any], Check], item: Any) -> Check:
        try:
            check = run(item)
        except _CheckFailed as exc:
            return Check(name=name, status="FAIL", message=f"{name}: {exc}")
        return Check(name=name, status=check.status, message=f"{name}: {check.message}", observed=check.observed,
                     threshold=check.threshold, details=check.details)

    # ---- the checks ---------------------------------------------------------------------------------

    def cases(self, cases: list[Case]) -> list[Check]:
        names = [f"cases[{i}]" for i in range(len(cases))]
        unknown = {column for case in cases for column in case.input if column not in self.frame.columns}
        if unknown:
            return [Check(name=name, status="FAIL", message=f"{name}: column(s) {', '.join(sorted(unknown))} "
                          "are not in the evaluation data") for name in names]
        rows = self._case_rows(cases)
        try:
            predicted = self.predict(rows, "the cases")
        except _CheckFailed as exc:
            return [Check(name=name, status="FAIL", message=f"{name}: {exc}") for name in names]
        checks = []
        for name, case, value in zip(names, cases, predicted, strict=True):
            value = _python(value)
            if self.task == "regression" and not _is_number(case.expected):
                ok, said = False, f"expected {case.expected!r}, but a regression model predicts numbers"
            elif self.task == "regression":
                ok = abs(float(value) - float(case.expected)) <= case.tolerance + _EPSILON
                shown = format_number(case.expected) + (f" ± {format_number(case.tolerance)}" if case.tolerance else "")
                said = f"predicted {format_number(value)}, expected {shown}"
            else:
                ok = _same_label(value, case.expected)
                said = f"predicted {value!r}, expected {case.expected!r}"
            checks.append(Check(
                name=name, status="PASS" if ok else "FAIL", observed=value, threshold=case.expected,
                message=f"{name}: {said} for {_brief(case.input)}",
                details={"input": case.input, "filled_columns": len(self.frame.columns) - len(case.input)},
            ))
        return checks

    def _case_rows(self, cases: list[Case]) -> pd.DataFrame:
        """One row per case; columns a case leaves out take the evaluation data's median (numbers) or mode."""
        fill: dict[Any, Any] = {}
        for column in self.frame.columns:
            values = self.frame[column]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                fill[column] = values.median()
            else:
                modes = values.mode(dropna=True)
                fill[column] = modes.iloc[0] if len(modes) else None
        rows = pd.DataFrame([{column: case.input.get(column, fill[column]) for column in self.frame.columns}
                             for case in cases], columns=self.frame.columns)
        for column in self.frame.columns:  # keep the dtypes the model was trained on, where the values allow
            try:
                rows[column] = rows[column].astype(self.frame[column].dtype)
            except (TypeError, ValueError):
                pass
        return rows

    def invariance(self, spec: Invariance) -> Check:
        changed_frame = _perturb(self.frame, spec)
        what = f"the data after {spec.describe()}"
        if spec.output == "proba":
            before, after = self.baseline_proba(), self.proba(changed_frame, what)
            changed = np.abs(after - before) > spec.tolerance + _EPSILON
            unit = f"P({self.positive()!r})"
        elif self.task == "regression":
            before, after = self.labels.astype(float), self.predict(changed_frame, what).astype(float)
            changed = np.abs(after - before) > spec.tolerance + _EPSILON
            unit = "prediction"
        else:
            before, after = self.labels, self.predict(changed_frame, what)
            changed = ~_equal(before, after)
            unit = "predicted label"
        count, rows = int(changed.sum()), len(changed)
        fraction = count / rows if rows else 0.0
        ok = fraction <= spec.max_changed_fraction + _EPSILON
        beyond = ""
        if spec.tolerance and unit != "predicted label":
            beyond = f" by more than {format_number(spec.tolerance)}"
        details: dict[str, Any] = {"changed_count": count, "changed_fraction": fraction, "rows": rows}
        if count:
            where = int(np.flatnonzero(changed)[0])
            example = self.frame.index[where]
            example = _python(example)
            details.update(example_row=example, example_before=_python(before[where]),
                           example_after=_python(after[where]))
            message = (f"{spec.describe()} changed the {unit}{beyond} of {count:,} of {rows:,} rows ({fraction:.1%}; "
                       f"allowed {spec.max_changed_fraction:.1%}); e.g. row {example!r}: "
                       f"{_show(before[where])} → {_show(after[where])}")
        else:
            message = f"{spec.describe()} changed no {unit}{beyond} in {rows:,} rows"
        return Check(name="invariance", status="PASS" if ok else "FAIL", observed=fraction,
                     threshold=spec.max_changed_fraction, message=message, details=details)

    def directional(self, spec: Directional) -> Check:
        changed_frame = _perturb(self.frame, spec)
        what = f"the data after {spec.describe()}"
        output = spec.output
        if output is None:
            output = "proba" if self.task == "classification" and self.proba_fn is not None else "label"
        if output == "proba":
            before, after = self.baseline_proba(), self.proba(changed_frame, what)
            unit = f"P({self.positive()!r})"
        elif self.task == "regression":
            before, after = self.labels.astype(float), self.predict(changed_frame, what).astype(float)
            unit = "prediction"
        else:
            positive = self.positive()
            before = _equal(self.labels, np.full(len(self.labels), positive, dtype=object)).astype(float)
            after_labels = self.predict(changed_frame, what)
            after = _equal(after_labels, np.full(len(after_labels), positive, dtype=object)).astype(float)
            unit = f"share predicted {positive!r}"
        mean_before, mean_after = float(np.mean(before)), float(np.mean(after))
        sign = 1.0 if spec.direction == "increase" else -1.0
        wrong = sign * (after - before) < -_EPSILON
        wrong_count, rows = int(wrong.sum()), len(wrong)
        wrong_fraction = wrong_count / rows if rows else 0.0
        moved = sign * (mean_after - mean_before) > _EPSILON
        limit = spec.max_wrong_fraction
        ok = moved and (limit is None or wrong_fraction <= limit + _EPSILON)
        went = ("did not move" if abs(mean_after - mean_before) <= _EPSILON
                else "increased" if mean_after > mean_before else "decreased")
        verdict = "as expected" if moved else f"expected to {spec.direction}"
        message = (f"{spec.describe()} moved the mean {unit} from {format_number(mean_before)} to "
                   f"{format_number(mean_after)}: it {went}, {verdict}; {wrong_count:,} of {rows:,} rows "
                   f"({wrong_fraction:.1%}) moved the other way")
        if limit is not None:
            message += f" (allowed {limit:.1%})"
        return Check(
            name="directional", status="PASS" if ok else "FAIL", observed=mean_after - mean_before,
            threshold=spec.direction, message=message,
            details={"mean_before": mean_before, "mean_after": mean_after, "wrong_count": wrong_count,
                     "wrong_fraction": wrong_fraction, "rows": rows, "output": output},
        )

    def slice(self, spec: Slice) -> Check:
        mask = np.ones(len(self.frame), dtype=bool)
        for column, condition in spec.where.items():
            if column not in self.frame.columns:
                raise _CheckFailed(f"column '{column}' is not in the evaluation data")
            values = self.frame[column]
            try:
                if condition.min is not None:
                    mask &= (values >= condition.min).to_numpy(dtype=bool)
                if condition.max is not None:
                    mask &= (values <= condition.max).to_numpy(dtype=bool)
            except TypeError:
                raise _CheckFailed(f"column '{column}' holds {values.dtype} values, which min and max cannot "
                                   "compare; use equals or in") from None
            if condition.equals is not None:
                mask &= _equal(values.to_numpy(), np.full(len(values), condition.equals, dtype=object))
            if condition.in_ is not None:
                mask &= values.isin(condition.in_).to_numpy(dtype=bool)
        rows = int(mask.sum())
        threshold = {"min": spec.min, "max": spec.max}
        if rows == 0:
            return Check(name="slice", status="FAIL", threshold=threshold, details={"rows": 0},
                         message=f"no row of {len(mask):,} matches {spec.condition}; check the where: conditions")
        proba = None
        if spec.metric in PROBABILITY_METRICS:
            raw = self.full_proba()
            if raw is None:
                raise _CheckFailed(f"{spec.metric} needs predicted probabilities, and the model has none")
            proba = np.asarray(raw, dtype=float)[mask]
        try:
            values = compute_metrics(self.task, self.y_true[mask], self.labels[mask], proba, self.positive_label,
                                     classes=self.classes or None)
        except ShipyardError as exc:
            raise _CheckFailed(str(exc)) from exc
        value = values.get(spec.metric)
        where = f"the {rows:,} rows where {spec.condition}"
        if value is None or not np.isfinite(value):
            return Check(name="slice", status="FAIL", observed=value, threshold=threshold, details={"rows": rows},
                         message=f"{spec.metric} is undefined on {where} (it needs both classes among their true "
                                 "labels)")
        self.metrics[f"slices.{spec.label}.{spec.metric}"] = value
        self.metrics[f"slices.{spec.label}.rows"] = rows
        ok, verdicts = True, []
        if spec.min is not None:
            above = value >= spec.min - _EPSILON
            ok &= above
            verdicts.append(f"{'>=' if above else '<'} minimum {format_number(spec.min)}")
        if spec.max is not None:
            below = value <= spec.max + _EPSILON
            ok &= below
            verdicts.append(f"{'<=' if below else '>'} maximum {format_number(spec.max)}")
        return Check(name="slice", status="PASS" if ok else "FAIL", observed=value, threshold=threshold,
                     message=f"{spec.metric} {format_number(value)} {' and '.join(verdicts)} on {where}",
                     details={"rows": rows, "metric": spec.metric})


def _perturb(frame: pd.DataFrame, spec: Perturbation) -> pd.DataFrame:
    if spec.column not in frame.columns:
        raise _CheckFailed(f"column '{spec.column}' is not in the evaluation data")
    changed = frame.copy()
    column = frame[spec.column]
    if spec.set is not None:
        changed[spec.column] = pd.Series([spec.set] * len(frame), index=frame.index)
        try:
            changed[spec.column] = changed[spec.column].astype(column.dtype)
        except (TypeError, ValueError):
            pass  # a value outside the column's type (a new category): the model sees it as given
        return changed
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise _CheckFailed(f"column '{spec.column}' holds {column.dtype} values; add and multiply need numbers "
                           "(use set: for other values)")
    changed[spec.column] = column + spec.add if spec.add is not None else column * spec.multiply
    return changed


def _equal(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Element-wise label equality that survives mixed types (1 vs '1' are different; NaN equals NaN)."""
    try:
        same = np.asarray(a == b, dtype=bool)
        if same.shape == a.shape:
            both_nan = pd.isna(a) & pd.isna(b)
            return np.asarray(same | both_nan, dtype=bool)
    except (TypeError, ValueError):
        pass
    return np.array([x == y for x, y in zip(a, b, strict=True)], dtype=bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _same_label(value: Any, expected: Any) -> bool:
    return bool(value == expected) or str(value) == str(expected)


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _show(value: Any) -> str:
    value = _python(value)
    return format_number(value) if isinstance(value, float) else repr(value)


def _brief(values: dict[str, Any]) -> str:
    shown = ", ".join(f"{column}: {value!r}" for column, value in list(values.items())[:4])
    return "{" + shown + (f", … ({len(values)} columns)" if len(values) > 4 else "") + "}"
