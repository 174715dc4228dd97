"""The `monitor:` section of shipyard.yaml (monitor.NAME): what a monitor watches (a deployment or a model),
over which window of the prediction log, against which reference, with which limits, and where its alerts go."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from shipyard.policy.deploy import Seconds
from shipyard.policy.named import load_named, named, named_spec

if TYPE_CHECKING:
    from shipyard.policy.document import Document

PLURAL = "monitor names to their settings"
Severity = Literal["info", "warning", "critical"]
DriftMethod = Literal["ks", "chisquare", "ztest", "wasserstein", "jensenshannon", "psi", "hellinger"]
Detector = Literal["page_hinkley", "adwin", "ddm"]
DETECTORS: tuple[Detector, ...] = ("page_hinkley", "adwin", "ddm")
#: The rules a monitor's report is judged by, each an alert of its own.
RULES = ("data_drift", "prediction_drift", "performance", "concept_drift", "latency", "error_rate", "throughput",
         "no_data", "retrain_failed")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WindowSpec(_Spec):
    """The span of the prediction log a run looks at: the last `last` seconds, or the last `rows` rows."""

    last: Seconds | None = None
    rows: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one(self) -> WindowSpec:
        if (self.last is None) == (self.rows is None):
            raise ValueError("give one of last (a duration such as 1h) or rows (a count such as 5000)")
        if self.last is not None and self.last <= 0:
            raise ValueError("last must be a duration above 0, e.g. 1h")
        return self


class DriftSpec(_Spec):
    share: float = Field(default=0.5, gt=0, le=1)  # the share of drifted columns that makes the table drift
    correction: Literal["bonferroni", "bh"] | None = None
    methods: dict[str, DriftMethod] = Field(default_factory=dict)
    thresholds: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    columns: list[str] | None = None  # default: the model's input features
    predictions: bool = True  # compare the distribution of predictions too (prediction drift)
    severity: Severity = "warning"


#: The metrics a performance limit may name: the classification ones, then the regression ones.
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
Metric = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "rmse", "mae", "r2"]


class PerformanceSpec(_Spec):
    metric: Metric | None = None  # default: accuracy (classification) or rmse (regression)
    min: float | None = None  # alert below this (metrics where higher is better)
    max: float | None = None  # alert above this (errors: rmse, mae)
    min_labelled: int = Field(default=30, ge=1)  # fewer labelled rows: insufficient data, no verdict
    detectors: list[Detector] = Field(default_factory=lambda: list(DETECTORS))
    agreement: int = Field(default=2, ge=1)  # detectors that must see a change before concept drift alerts
    severity: Severity = "critical"

    @model_validator(mode="after")
    def _one_limit(self) -> PerformanceSpec:
        if self.min is not None and self.max is not None:
            raise ValueError("give one of min (alert below it: accuracy, f1, r2, ...) or max (alert above it: "
                             "rmse, mae)")
        lower_is_better = self.metric in ("rmse", "mae")
        if self.metric is not None and self.min is not None and lower_is_better:
            raise ValueError(f"{self.metric} is an error, lower is better: give max, not min")
        if self.metric is not None and self.max is not None and not lower_is_better:
            raise ValueError(f"{self.metric} is better higher: give min, not max")
        return self


class HealthSpec(_Spec):
    max_p99_ms: float | None = Field(default=None, gt=0)
    max_p50_ms: float | None = Field(default=None, gt=0)
    max_error_rate: float | None = Field(default=0.01, ge=0, le=1)
    min_throughput_rps: float | None = Field(default=None, ge=0)
    severity: Severity = "warning"


def _sink(value: Any) -> Any:
    if value == "log":
        return {"log": True}
    if not isinstance(value, dict):
        raise ValueError("expected log, {webhook: URL} or {slack: URL}")
    return value


class SinkSpec(_Spec):
    """Where alerts are sent: `log`, `{webhook: URL}` (a JSON POST) or `{slack: URL}` (Slack's payload)."""

    log: bool = False
    webhook: str | None = Field(default=None, pattern=r"^https?://\S+$")
    slack: str | None = Field(default=None, pattern=r"^https?://\S+$")
    timeout: Seconds = 5.0

    @model_validator(mode="after")
    def _one(self) -> SinkSpec:
        if sum((self.log, self.webhook is not None, self.slack is not None)) != 1:
            raise ValueError("give exactly one of log, webhook (an http(s) URL) or slack (an http(s) URL)")
        return self

    @property
    def kind(self) -> str:
        return "log" if self.log else "webhook" if self.webhook is not None else "slack"


Sink = Annotated[SinkSpec, BeforeValidator(_sink)]


class MonitorSpec(_Spec):
    deployment: str | None = None
    # which of the deployment's routes is watched: its primary, its canary or its shadow, or an A/B variant by
    # label; the route's version now, and only the requests that route answered
    route: str = Field(default="primary", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    model: str | None = None  # NAME/V or NAME@ALIAS (resolved when the monitor runs)
    window: WindowSpec = Field(default_factory=lambda: WindowSpec(last=3600.0))
    min_rows: int = Field(default=30, ge=1)  # fewer rows in the window: insufficient data, no drift verdict
    reference: str | None = None  # a dataset version; default: the model version's training data
    drift: DriftSpec = Field(default_factory=DriftSpec)
    performance: PerformanceSpec | None = Field(default_factory=PerformanceSpec)
    health: HealthSpec | None = Field(default_factory=HealthSpec)
    sinks: list[Sink] = Field(default_factory=lambda: [SinkSpec(log=True)])
    repeat: Seconds = 4 * 3600.0  # a firing alert is sent again after this long unless acknowledged

    @model_validator(mode="after")
    def _target(self) -> MonitorSpec:
        if (self.deployment is None) == (self.model is None):
            raise ValueError("give one of deployment (a deployment's name) or model (e.g. credit@champion)")
        if self.model is not None and self.route != "primary":
            raise ValueError("route picks one of a deployment's routes: give deployment, not model")
        return self


def load_monitor_spec(data: Any, name: str, *, source: str = "shipyard.yaml",
                      document: Document | None = None) -> MonitorSpec:
    """Validate the mapping under `monitor.<name>`; errors name the key path, the value and a fix."""
    return load_named(MonitorSpec, "monitor", data, name, "monitor settings", source=source, document=document)


def monitor_spec(document: Document, name: str) -> MonitorSpec | None:
    """monitor.NAME of the document, validated once per change of the file; None when it declares none."""
    return named_spec(MonitorSpec, document, "monitor", name, "monitor settings", PLURAL)


def declared_monitors(document: Document) -> list[str]:
    return sorted(str(k) for k in named(document, "monitor", PLURAL))
