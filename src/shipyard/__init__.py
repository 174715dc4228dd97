"""Shipyard: carry a model from raw data to a monitored production service.

The public Python API. Heavy dependencies load only when a call needs them."""

from shipyard import data, deployments, features, models, monitoring, serving
from shipyard._version import __version__
from shipyard.config import init_workspace
from shipyard.errors import (
    BackendError,
    ConfigError,
    ConflictError,
    FilterSyntaxError,
    GateFailed,
    IntegrityError,
    NotFoundError,
    ShipyardError,
    ValidationError,
    WorkspaceNotFoundError,
)
from shipyard.pipelines.steps import pipeline, step
from shipyard.governance.api import audit_head, audit_log, verify_audit
from shipyard.tracking.api import (
    delete_run,
    download_artifact,
    get_metric_history,
    get_run,
    search_runs,
)
from shipyard.tracking.fluent import (
    Run,
    active_run,
    end_run,
    log_artifact,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    set_tags,
    start_run,
)

__all__ = [
    "BackendError",
    "ConfigError",
    "ConflictError",
    "FilterSyntaxError",
    "GateFailed",
    "IntegrityError",
    "NotFoundError",
    "Run",
    "ShipyardError",
    "ValidationError",
    "WorkspaceNotFoundError",
    "__version__",
    "active_run",
    "audit_head",
    "audit_log",
    "data",
    "delete_run",
    "deployments",
    "download_artifact",
    "end_run",
    "features",
    "get_metric_history",
    "get_run",
    "init_workspace",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "models",
    "monitoring",
    "pipeline",
    "search_runs",
    "serving",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "verify_audit",
]
