"""The lifecycle sections of shipyard.yaml: data, features, model (or a sweep), evaluation and promotion,
from which the standard training pipeline is generated."""

from __future__ import annotations

import importlib
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
    categorical: list[str] = Field(default_factory=list)  # one-hot encoded
    scale: bool = False  # standardise numeric columns
    function: str | None = None  # module:function(frame) -> frame, applied before the rest


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
    _check_estimator(lifecycle, source)
    return lifecycle


def _check_estimator(spec: LifecycleSpec, source: str) -> None:
    module_name, _, attr = spec.model.estimator.rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else None
    except ImportError:
        module = None
    if module is None or not hasattr(module, attr):
        known = [n for n in dir(module) if not n.startswith("_")] if module else []
        raise ConfigError(
            f"{source}: model.estimator = {spec.model.estimator!r} cannot be imported.{did_you_mean(attr, known)} "
            "Give a dotted path such as sklearn.ensemble.RandomForestClassifier."
        )


def check_columns(spec: LifecycleSpec, columns: list[str], dataset: str, source: str = "shipyard.yaml") -> None:
    """Every column the spec names must be in the data."""
    named = [("data.target", spec.data.target)]
    named += [(f"features.drop[{i}]", c) for i, c in enumerate(spec.features.drop)]
    named += [(f"features.categorical[{i}]", c) for i, c in enumerate(spec.features.categorical)]
    for key, column in named:
        if column not in columns:
            raise ConfigError(
                f"{source}: {key}: column '{column}' is not in dataset '{dataset}'.{did_you_mean(column, columns)} "
                f"Columns: {', '.join(columns[:30])}."
            )
