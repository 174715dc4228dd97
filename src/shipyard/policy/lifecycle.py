"""The lifecycle sections of shipyard.yaml: data, features, model (or a sweep), evaluation and promotion,
from which the standard training pipeline is generated."""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from shipyard.errors import ConfigError, did_you_mean
from shipyard.policy.errors import translate

if TYPE_CHECKING:
    from shipyard.policy.document import Document


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Split(_Spec):
    test_size: float = Field(default=0.2, gt=0, lt=1)
    random_state: int = 42
    stratify: bool = True
    holdout: str | None = None  # a dataset version to evaluate on instead of a random split


class DataSpec(_Spec):
    dataset: str  # NAME, NAME@latest or NAME@V
    target: str
    split: Split = Field(default_factory=Split)
    schema_file: str | None = Field(default=None, alias="schema")  # validate against it before training


class FeaturesSpec(_Spec):
    drop: list[str] = Field(default_factory=list)
    # One-hot encoded (their max_categories most frequent values; the rest, and values never seen in
    # training, are grouped as infrequent); a missing value is a value of its own.
    categorical: list[str] = Field(default_factory=list)
    datetime: list[str] = Field(default_factory=list)  # timestamps and dates: year, month, day, weekday, hour
    max_categories: int = Field(default=20, ge=2)
    impute: bool = True  # missing numbers (and date parts) become the median of the training rows
    scale: bool = False  # standardise numeric columns
    function: str | None = None  # module:function(frame) -> frame, applied to each part of the split
    # Features of registered feature views joined point-in-time onto data.dataset (the label data):
    # VIEW:FEATURE, VIEW@V:FEATURE (a pinned version), VIEW:a,b or VIEW:* (every feature of the view).
    views: list[str] = Field(default_factory=list)
    timestamp: str | None = None  # the label data's time column for that join (default event_timestamp)
    training_set: str | None = None  # the dataset the joined rows are versioned as (default DATASET-training)


class SweepSpec(_Spec):
    method: Literal["grid", "random"] = "grid"
    params: dict[str, list[Any]] = Field(min_length=1)
    samples: int = Field(default=5, ge=1)
    random_state: int = 0


class ModelSpec(_Spec):
    name: str
    estimator: str  # a dotted path, e.g. sklearn.ensemble.RandomForestClassifier
    params: dict[str, Any] = Field(default_factory=dict)
    sweep: SweepSpec | None = None


Metric = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2"]


def _default_metrics() -> list[Metric]:
    return ["accuracy"]


class EvaluationSpec(_Spec):
    metrics: list[Metric] = Field(default_factory=_default_metrics)
    primary: str | None = None  # the metric a sweep selects on (default: the first)

    @model_validator(mode="after")
    def _primary_is_listed(self) -> EvaluationSpec:
        if self.primary is not None and self.primary not in self.metrics:
            raise ValueError(f"primary metric '{self.primary}' is not among metrics {self.metrics}")
        return self


class PromoteSpec(_Spec):
    enabled: bool = True  # challenger when a champion exists, champion when none does


class LifecycleSpec(_Spec):
    data: DataSpec
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    model: ModelSpec
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    promote: PromoteSpec = Field(default_factory=PromoteSpec)


SECTIONS = ("data", "features", "model", "evaluation", "promote")


def load_lifecycle(spec: dict[str, Any], *, source: str = "shipyard.yaml",
                   document: Document | None = None) -> LifecycleSpec:
    """Validate the lifecycle sections; errors name the key path, the value and a fix."""
    data = {k: v for k, v in spec.items() if k in SECTIONS}
    if "data" not in data or "model" not in data:
        missing = [s for s in ("data", "model") if s not in data]
        raise ConfigError(
            f"{source} has no {' or '.join(missing)} section, so there is no pipeline to run. "
            "Create a starter spec with `shipyard init --from DATA.csv --target COLUMN`."
        )
    try:
        lifecycle = LifecycleSpec.model_validate(data)
    except PydanticValidationError as exc:
        raise translate(exc, LifecycleSpec, document=document, source=source) from None
    estimator = estimator_class(lifecycle.model.estimator, source)
    _check_params(lifecycle, estimator, source)
    _check_features(lifecycle, source)
    return lifecycle


def estimator_class(path: str, source: str = "shipyard.yaml") -> Any:
    """The class (or factory) a dotted path names; ConfigError (with the closest name) when it cannot be imported."""
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else None
    except ImportError:
        module = None
    found = getattr(module, attr, None) if module is not None else None
    if not callable(found):
        known = [n for n in dir(module) if not n.startswith("_")] if module else []
        raise ConfigError(
            f"{source}: model.estimator = {path!r} cannot be imported.{did_you_mean(attr, known)} "
            "Give a dotted path such as sklearn.ensemble.RandomForestClassifier."
        )
    return found


def estimator_parameters(estimator: Any) -> dict[str, Any] | None:
    """The parameters the estimator's constructor declares, with their defaults (inspect.Parameter.empty
    when it has none); None when it takes any keyword."""
    try:
        signature = inspect.signature(estimator)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return {name: p.default for name, p in signature.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def parameter_problem(estimator: Any, name: str, value: Any) -> str | None:
    """Why `value` is not a valid `name` for the estimator, by the constraints scikit-learn estimators declare
    for each parameter; None when it is valid or the estimator declares no constraint for it."""
    constraints = getattr(estimator, "_parameter_constraints", None)
    if not isinstance(constraints, dict) or name not in constraints:
        return None
    try:
        from sklearn.utils._param_validation import validate_parameter_constraints
    except ImportError:
        return None
    try:
        validate_parameter_constraints({name: constraints[name]}, {name: value},
                                       caller_name=getattr(estimator, "__name__", str(estimator)))
    except (TypeError, ValueError) as exc:  # scikit-learn's InvalidParameterError is both
        return str(exc)
    return None


def _check_params(spec: LifecycleSpec, estimator: Any, source: str) -> None:
    """Every parameter of model.params and model.sweep.params is one the estimator takes, with a valid value,
    and every parameter it requires has one."""
    declared = estimator_parameters(estimator)
    named = [(f"model.params.{k}", k, [v]) for k, v in spec.model.params.items()]
    if spec.model.sweep is not None:
        named += [(f"model.sweep.params.{k}", k, list(v)) for k, v in spec.model.sweep.params.items()]
    title = getattr(estimator, "__name__", spec.model.estimator)
    for key, name, values in named:
        if declared is not None and name not in declared:
            raise ConfigError(
                f"{source}: {key}: {title} has no parameter '{name}'.{did_you_mean(name, list(declared))} "
                f"Parameters: {', '.join(declared)}."
            )
        for i, value in enumerate(values):
            problem = parameter_problem(estimator, name, value)
            if problem is not None:
                where = key if key.startswith("model.params") else f"{key}[{i}]"
                raise ConfigError(f"{source}: {where} = {value!r}: {problem}")
    given = {name for _, name, _ in named}
    required = [name for name, default in (declared or {}).items() if default is inspect.Parameter.empty]
    for name in required:
        if name not in given:
            raise ConfigError(f"{source}: model.params: {title} needs a value for '{name}'; add it to model.params.")


def _check_features(spec: LifecycleSpec, source: str) -> None:
    """A column has one role: dropped, categorical or datetime (the target none of them); each feature view
    reference reads VIEW:FEATURE, and the join's settings come with views to join."""
    _check_views(spec, source)
    roles: dict[str, str] = {}
    for role in ("drop", "categorical", "datetime"):
        for i, column in enumerate(getattr(spec.features, role)):
            key = f"features.{role}[{i}]"
            if column == spec.data.target:
                raise ConfigError(f"{source}: {key}: '{column}' is the target (data.target); it is not a feature. "
                                  f"Remove it from features.{role}.")
            if column in roles:
                raise ConfigError(f"{source}: {key}: column '{column}' is also in {roles[column]}; give each column "
                                  "one role.")
            roles[column] = key


def check_columns(spec: LifecycleSpec, columns: list[str], dataset: str, source: str = "shipyard.yaml",
                  kinds: dict[str, str] | None = None) -> None:
    """Every column the spec names must be in the data; given the columns' kinds (from the data's profile:
    numeric, boolean, categorical, text, timestamp), every other column must be one a model can take as a number."""
    named = [("data.target", spec.data.target)]
    for role in ("drop", "categorical", "datetime"):
        named += [(f"features.{role}[{i}]", c) for i, c in enumerate(getattr(spec.features, role))]
    for key, column in named:
        if column not in columns:
            raise ConfigError(
                f"{source}: {key}: column '{column}' is not in dataset '{dataset}'.{did_you_mean(column, columns)} "
                f"Columns: {', '.join(columns[:30])}."
            )
    if kinds is None or spec.features.function:  # a feature function may turn any column into numbers
        return
    placed = {spec.data.target, *spec.features.drop, *spec.features.categorical, *spec.features.datetime}
    for column in columns:
        kind = kinds.get(column, "numeric")
        if column in placed or kind in ("numeric", "boolean"):
            continue
        roles = {"timestamp": "features.datetime, or to ", "categorical": "features.categorical, or to ",
                 "text": "features.categorical, or to "}.get(kind, "")
        raise ConfigError(
            f"{source}: column '{column}' of dataset '{dataset}' holds {kind} values, which the model cannot take as "
            f"numbers: add it to {roles}features.drop."
        )


def _check_views(spec: LifecycleSpec, source: str) -> None:
    features = spec.features
    for i, ref in enumerate(features.views):
        view, sep, names = ref.partition(":")
        if not sep or not view.strip() or not all(n.strip() for n in names.split(",")):
            raise ConfigError(f"{source}: features.views[{i}] = {ref!r}: expected VIEW:FEATURE, e.g. "
                              "'customer_stats:spend_30d' (VIEW@2:FEATURE for a version, VIEW:a,b for several, "
                              "VIEW:* for all of a view's features).")
    if features.views and spec.data.split.holdout:
        raise ConfigError(f"{source}: data.split.holdout: with features.views the model trains on the training set "
                          "joined from the label data, and evaluates on rows held out of it; a holdout dataset has no "
                          "features joined. Remove data.split.holdout (split.test_size sets how many rows are held "
                          "out).")
    if not features.views:
        for key in ("timestamp", "training_set"):
            if getattr(features, key) is not None:
                raise ConfigError(f"{source}: features.{key} is set, but features.views names no feature view to "
                                  f"join: add features.views, or remove features.{key}.")
    if features.timestamp is not None and features.timestamp == spec.data.target:
        raise ConfigError(f"{source}: features.timestamp: '{features.timestamp}' is the target (data.target); name "
                          "the column that holds each row's time.")
