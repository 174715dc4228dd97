"""The per-model `gates:` section of shipyard.yaml: pydantic models, and errors that name the key path."""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator
from pydantic import ValidationError as PydanticValidationError

from shipyard.errors import ConfigError, did_you_mean

Task = Literal["classification", "regression"]
MetricName = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2"]
Output = Literal["label", "proba"]

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2")
METRICS: tuple[str, ...] = get_args(MetricName)
#: Metrics where a smaller value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
#: Metrics that need predicted probabilities.
PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss"})
GATES: tuple[str, ...] = ("evaluation", "behavioural", "fairness", "infrastructure")


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def task_of(metric: str) -> Task:
    return "regression" if metric in REGRESSION_METRICS else "classification"


def _number(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def _scalar(value: Any) -> Any:
    if isinstance(value, dict | list | tuple | set):
        raise ValueError("expected a single value (a number, a string or a boolean)")
    return value


Number = Annotated[int | float, BeforeValidator(_number)]  # ints stay ints, as written
Scalar = Annotated[Any, BeforeValidator(_scalar)]  # a label or a cell value, of whatever type the data has


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Bound(_Spec):
    """A value threshold: the metric must be at least `min` and at most `max`."""

    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ChangeBound(_Spec):
    """How far a metric may worsen against the champion: max_drop (higher is better) or max_rise (lower is better).

    Absolute by default; with relative: true the change is (new - old) / |old|.
    """

    max_drop: Number | None = Field(default=None, ge=0)
    max_rise: Number | None = Field(default=None, ge=0)
    relative: bool = False

    @model_validator(mode="after")
    def _one_limit(self) -> ChangeBound:
        if (self.max_drop is None) == (self.max_rise is None):
            raise ValueError("give exactly one of max_drop (higher-is-better metrics) or max_rise (lower-is-better)")
        return self

    @property
    def limit(self) -> float:
        return float(self.max_drop if self.max_drop is not None else self.max_rise or 0.0)


class EvaluationSpec(_Spec):
    dataset: str
    target: str
    task: Task | None = None
    positive_label: Scalar | None = None
    thresholds: dict[MetricName, Bound] = Field(default_factory=dict)
    against_champion: dict[MetricName, ChangeBound] = Field(default_factory=dict)


class Perturbation(_Spec):
    """Change one column of every row: set it to a value, or add to / multiply a number."""

    column: str
    set: Scalar | None = None
    add: Number | None = None
    multiply: Number | None = None

    @model_validator(mode="after")
    def _one_change(self) -> Perturbation:
        given = [name for name in ("set", "add", "multiply") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of set, add or multiply (got {', '.join(given) or 'none'})")
        return self

    def describe(self) -> str:
        if self.set is not None:
            return f"setting {self.column} to {self.set!r}"
        if self.add is not None:
            return f"adding {self.add} to {self.column}"
        return f"multiplying {self.column} by {self.multiply}"


class Case(_Spec):
    """Minimum functionality: this input must give this output (within tolerance for regression)."""

    input: dict[str, Scalar] = Field(min_length=1)
    expected: Scalar
    tolerance: Number = Field(default=0.0, ge=0)


class Invariance(Perturbation):
    """The perturbation must not change the output of more than max_changed_fraction of the rows.

    A row changes when its label differs (class labels), or when its output moves by more than `tolerance`
    (output: proba, or the value predicted by a regression model).
    """

    output: Output = "label"
    tolerance: Number = Field(default=0.0, ge=0)
    max_changed_fraction: Number = Field(default=0.0, ge=0, le=1)


class Directional(Perturbation):
    """The perturbation must move the mean output in `direction`.

    The output is P(positive) (proba), the share of rows predicted positive (label, classification) or the
    prediction (regression). Default: proba for classifiers with probabilities, else label.
    """

    direction: Literal["increase", "decrease"]
    output: Output | None = None
    max_wrong_fraction: Number | None = Field(default=None, ge=0, le=1)


class Condition(_Spec):
    """A row filter on one column; all given parts must hold (min and max are inclusive)."""

    min: Number | None = None
    max: Number | None = None
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)

    @model_validator(mode="after")
    def _something(self) -> Condition:
        if self.min is None and self.max is None and self.equals is None and self.in_ is None:
            raise ValueError("give min, max, equals or in")
        return self

    def describe(self, column: str) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{column} >= {self.min}")
        if self.max is not None:
            parts.append(f"{column} <= {self.max}")
        if self.equals is not None:
            parts.append(f"{column} == {self.equals!r}")
        if self.in_ is not None:
            parts.append(f"{column} in {self.in_!r}")
        return " and ".join(parts)


class Slice(_Spec):
    """A metric on the rows matching every condition in `where` must stay within min/max."""

    name: str | None = None
    where: dict[str, Condition] = Field(min_length=1)
    metric: MetricName
    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Slice:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both for the slice's metric")
        return self

    @property
    def label(self) -> str:
        return self.name or self.condition

    @property
    def condition(self) -> str:
        return " and ".join(cond.describe(column) for column, cond in self.where.items())


class BehaviouralSpec(_Spec):
    cases: list[Case] = Field(default_factory=list)
    invariance: list[Invariance] = Field(default_factory=list)
    directional: list[Directional] = Field(default_factory=list)
    slices: list[Slice] = Field(default_factory=list)


class FairnessSpec(_Spec):
    sensitive: str
    positive_label: Scalar | None = None
    demographic_parity_difference: Bound | None = None
    demographic_parity_ratio: Bound | None = None
    equalized_odds_difference: Bound | None = None


class InfrastructureSpec(_Spec):
    latency_p50_ms: Number | None = Field(default=None, gt=0)
    latency_p99_ms: Number | None = Field(default=None, gt=0)
    throughput_rows_per_s: Number | None = Field(default=None, gt=0)
    peak_memory_mb: Number | None = Field(default=None, gt=0)


class GateSpec(_Spec):
    """The gates of one model; a missing section means that gate is not configured."""

    evaluation: EvaluationSpec | None = None
    behavioural: BehaviouralSpec | None = None
    fairness: FairnessSpec | None = None
    infrastructure: InfrastructureSpec | None = None
    _model: str = PrivateAttr(default="")

    @property
    def model(self) -> str:
        return self._model

    @property
    def path(self) -> str:
        """The key path of this spec in shipyard.yaml, for messages."""
        return f"gates.{self._model}" if self._model else "gates"

    @property
    def configured(self) -> list[str]:
        """The gates with a section, in the order they run."""
        return [gate for gate in GATES if getattr(self, gate) is not None]

    @property
    def task(self) -> Task | None:
        """The declared task, else the one implied by the metrics named; None when the caller must infer it."""
        if self.evaluation is not None and self.evaluation.task is not None:
            return self.evaluation.task
        named = {task_of(metric) for _, metric in _metrics_named(self)}
        return named.pop() if len(named) == 1 else None

    @property
    def positive_label(self) -> Any:
        return self.evaluation.positive_label if self.evaluation is not None else None


def load_gate_spec(data: dict[str, Any] | None, *, source: str, model: str) -> GateSpec:
    """Validate the mapping under `gates.<model>` of `source`; errors name the key path, the value and a fix."""
    prefix = f"gates.{model}"
    if data is None:  # `credit:` with every gate commented out
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: {prefix} must be a mapping of gates ({', '.join(GATES)}); got {type(data).__name__} "
            f"{data!r}."
        )
    try:
        spec = GateSpec.model_validate(data)
    except PydanticValidationError as exc:
        errors = exc.errors()
        misspelt = {  # `sensitve: sex` also makes `sensitive` missing; the typo's line says all there is to say
            (*err["loc"][:-1], _closest(str(err["loc"][-1]), _keys_of(_strip(_annotation_at(err["loc"][:-1])))))
            for err in errors if err["type"] == "extra_forbidden"
        }
        lines = dict.fromkeys(  # unique, in order
            _describe(err, source, prefix) for err in errors
            if not (err["type"] == "missing" and tuple(err["loc"]) in misspelt)
        )
        raise ConfigError("\n".join(lines)) from None
    spec._model = model
    problems = list(_cross_check(spec, prefix))
    if problems:
        raise ConfigError("\n".join(f"{source}: {problem}" for problem in problems))
    return spec


def check_columns(spec: GateSpec, columns: list[str], dataset: str) -> None:
    """Raise ConfigError when a gate names a column that is not among `columns` (those of the evaluation data,
    target included), naming the key path, `dataset` (for the message, e.g. 'credit@2') and the closest column."""
    known = set(columns)
    shown = ", ".join(columns[:30]) + (f", … ({len(columns)} in all)" if len(columns) > 30 else "")
    problems = [
        f"{path}: column '{column}' is not in dataset '{dataset}'.{did_you_mean(column, columns)} Columns: {shown}."
        for path, column in _columns_named(spec)
        if column not in known
    ]
    if problems:
        raise ConfigError("\n".join(problems))


def _columns_named(spec: GateSpec) -> Iterator[tuple[str, str]]:
    prefix = spec.path
    if spec.evaluation is not None:
        yield f"{prefix}.evaluation.target", spec.evaluation.target
    if spec.behavioural is not None:
        b = spec.behavioural
        for i, case in enumerate(b.cases):
            for column in case.input:
                yield f"{prefix}.behavioural.cases[{i}].input.{column}", column
        for kind, perturbations in (("invariance", b.invariance), ("directional", b.directional)):
            for i, perturbation in enumerate(perturbations):
                yield f"{prefix}.behavioural.{kind}[{i}].column", perturbation.column
        for i, piece in enumerate(b.slices):
            for column in piece.where:
                yield f"{prefix}.behavioural.slices[{i}].where.{column}", column
    if spec.fairness is not None:
        yield f"{prefix}.fairness.sensitive", spec.fairness.sensitive


def _metrics_named(spec: GateSpec) -> Iterator[tuple[str, str]]:
    """(key path below the model, metric) for every metric the spec names."""
    if spec.evaluation is not None:
        for metric in spec.evaluation.thresholds:
            yield f"evaluation.thresholds.{metric}", metric
        for metric in spec.evaluation.against_champion:
            yield f"evaluation.against_champion.{metric}", metric
    if spec.behavioural is not None:
        for i, piece in enumerate(spec.behavioural.slices):
            yield f"behavioural.slices[{i}].metric", piece.metric


def _cross_check(spec: GateSpec, prefix: str) -> Iterator[str]:
    """Rules that span keys: metrics fit the task, change limits fit the metric, sections have their data."""
    named = list(_metrics_named(spec))
    declared = spec.evaluation.task if spec.evaluation is not None else None
    if declared is None:
        tasks = {task_of(metric) for _, metric in named}
        if len(tasks) > 1:
            listing = ", ".join(f"{path} ({task_of(metric)})" for path, metric in named)
            yield (f"{prefix}: the gates mix classification and regression metrics: {listing}. Set "
                   f"{prefix}.evaluation.task and keep the metrics of that task.")
    else:
        allowed = CLASSIFICATION_METRICS if declared == "classification" else REGRESSION_METRICS
        for path, metric in named:
            if metric not in allowed:
                yield (f"{prefix}.{path}: '{metric}' is not a {declared} metric. {declared.capitalize()} "
                       f"metrics: {', '.join(allowed)}.")
    if spec.evaluation is not None:
        for metric, change in spec.evaluation.against_champion.items():
            path = f"{prefix}.evaluation.against_champion.{metric}"
            if higher_is_better(metric) and change.max_rise is not None:
                yield f"{path}.max_rise: {metric} is higher-is-better, so limit its fall with max_drop."
            if not higher_is_better(metric) and change.max_drop is not None:
                yield f"{path}.max_drop: {metric} is lower-is-better, so limit its rise with max_rise."
    for gate in ("behavioural", "fairness"):
        if getattr(spec, gate) is not None and spec.evaluation is None:
            yield (f"{prefix}.{gate} runs on the evaluation data: add {prefix}.evaluation with dataset and "
                   "target.")
    if declared == "regression" and spec.behavioural is not None:
        outputs: dict[str, list[Output | None]] = {
            "invariance": [item.output for item in spec.behavioural.invariance],
            "directional": [item.output for item in spec.behavioural.directional],
        }
        for kind, chosen in outputs.items():
            for i, output in enumerate(chosen):
                if output == "proba":
                    yield (f"{prefix}.behavioural.{kind}[{i}].output = 'proba': a regression model has no "
                           "probabilities; use output: label (the predicted value).")


# ---- error messages ---------------------------------------------------------------------------------

def _describe(err: Any, source: str, prefix: str) -> str:
    loc = tuple(err["loc"])
    value = err.get("input")
    if loc and loc[-1] == "[key]":  # a mapping key failed, e.g. thresholds.roc_acu
        return _unknown_key(source, prefix, loc[:-1], value=None)
    if err["type"] == "extra_forbidden":
        return _unknown_key(source, prefix, loc, value=value)
    path = _path(prefix, loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    shown = "" if isinstance(value, dict) else f" = {value!r}"
    fix = ""
    if err["type"] == "literal_error" and isinstance(value, str):
        fix = did_you_mean(value, [str(option) for option in get_args(_strip(_annotation_at(loc)))])
    return f"{source}: {path}{shown}: {message}.{fix}"


def _unknown_key(source: str, prefix: str, loc: tuple[Any, ...], *, value: Any) -> str:
    key = str(loc[-1])
    parent = _strip(_annotation_at(loc[:-1]))
    known = _keys_of(parent)
    what = "metric" if get_origin(parent) is dict and get_args(parent)[0] == MetricName else "key"
    shown = f" (value {value!r})" if value is not None and not isinstance(value, dict) else ""
    return (f"{source}: unknown {what} {_path(prefix, loc)}{shown}.{did_you_mean(key, known)} "
            f"Known {what}s there: {', '.join(known)}.")


def _closest(key: str, known: list[str]) -> str | None:
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _strip(annotation: Any) -> Any:
    """The annotation without Optional and Annotated wrappers."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _annotation_at(loc: tuple[Any, ...]) -> Any:
    """The type annotation at a pydantic error location below GateSpec, or None when it cannot be followed."""
    annotation: Any = GateSpec
    for part in loc:
        annotation = _strip(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = next((f for name, f in annotation.model_fields.items() if part in (name, f.alias)), None)
            if field is None:
                return None
            hints = typing.get_type_hints(annotation, include_extras=True)
            annotation = next(hints[name] for name, f in annotation.model_fields.items() if f is field)
        elif origin is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return annotation


def _keys_of(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or name for name, f in annotation.model_fields.items()]
    if get_origin(annotation) is dict:
        return [str(key) for key in get_args(_strip(get_args(annotation)[0]))]
    return []
