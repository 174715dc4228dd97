"""The per-model `gates:` section of shipyard.yaml (gates.NAME): what each gate checks, and its thresholds."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator
from pydantic import ValidationError as PydanticValidationError

from shipyard.errors import ConfigError, did_you_mean
from shipyard.policy.errors import KEY_WORDS, require_mapping, translate

if TYPE_CHECKING:
    from shipyard.policy.document import Document

Task = Literal["classification", "regression"]
MetricName = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2"]
Output = Literal["label", "proba"]

KEY_WORDS[MetricName] = "metric"

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


def _metrics_or_flag(value: Any) -> Any:
    """beat_baseline: true, false, one metric or a list of metrics."""
    if isinstance(value, bool):
        return value
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ValueError("expected true, false, a metric or a list of metrics")
    for name in names:
        if name not in METRICS:
            raise ValueError(f"{name!r} is not a metric.{did_you_mean(str(name), list(METRICS))} Metrics: "
                             f"{', '.join(METRICS)}")
    return [str(name) for name in names]


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


#: `evaluation.dataset: split`: the rows the standard pipeline held out of the version's training data.
SPLIT = "split"
#: The metric `beat_baseline: true` compares, by task.
BASELINE_METRIC: dict[Task, str] = {"classification": "accuracy", "regression": "rmse"}


class EvaluationSpec(_Spec):
    dataset: str = SPLIT  # a dataset version, or `split`: the held-out part of the standard pipeline's split
    target: str
    task: Task | None = None
    positive_label: Scalar | None = None
    thresholds: dict[MetricName, Bound] = Field(default_factory=dict)
    against_champion: dict[MetricName, ChangeBound] = Field(default_factory=dict)
    # Beat a trivial baseline (the majority class, or the mean) fitted on the training rows: true compares
    # accuracy (classification) or rmse (regression); a list names the metrics.
    beat_baseline: Annotated[bool | list[str], BeforeValidator(_metrics_or_flag)] = False

    def baseline_metrics(self, task: Task) -> list[str]:
        """The metrics on which the version must beat the trivial baseline (none when it need not)."""
        if self.beat_baseline is True:
            return [BASELINE_METRIC[task]]
        return list(self.beat_baseline or [])


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


def load_gate_spec(data: Any, *, source: str = "shipyard.yaml", model: str,
                   document: Document | None = None) -> GateSpec:
    """Validate the mapping under `gates.<model>`; errors name the key path, the value and a fix."""
    prefix = f"gates.{model}"
    data = require_mapping(data, prefix, f"gates ({', '.join(GATES)})", document)
    try:
        spec = GateSpec.model_validate(data)
    except PydanticValidationError as exc:
        raise translate(exc, GateSpec, prefix=("gates", model), document=document, source=source) from None
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
        if isinstance(spec.evaluation.beat_baseline, list):
            for i, name in enumerate(spec.evaluation.beat_baseline):
                yield f"evaluation.beat_baseline[{i}]", name
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
