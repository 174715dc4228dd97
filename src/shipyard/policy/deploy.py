"""The `deploy:` section of shipyard.yaml (deploy.NAME): what a deployment serves, its strategy, and for a
canary the steps and the limits an automated analysis judges each step by."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from shipyard.policy.named import load_named, named, named_spec

if TYPE_CHECKING:
    from shipyard.policy.document import Document

Strategy = Literal["single", "canary", "shadow", "ab"]
PLURAL = "deployment names to their settings"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, None: 1}
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def _seconds(value: Any) -> Any:
    """A duration: seconds as a number, or a string such as 90s, 5m or 1h."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 300, 90s, 5m or 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("expected a duration of 0 seconds or more")
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("expected a duration such as 300, 90s, 5m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def duration_seconds(value: Any, what: str = "duration") -> float:
    """A duration given on the command line (300, 90s, 5m, 1h) in seconds; ValidationError otherwise."""
    from shipyard.errors import ValidationError

    try:
        return float(_seconds(value))
    except ValueError as exc:
        raise ValidationError(f"Invalid {what} {value!r}: {exc}.", value=value) from None


def _sticky_key(value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or not _KEY.match(value)):
        raise ValueError("expected a header or input field name: letters, digits, '_', '-' or '.'")
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]
StickyKey = Annotated[str | None, BeforeValidator(_sticky_key)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalysisSpec(_Spec):
    """Limits comparing the canary with the primary over one step; a limit left out is not checked."""

    # canary error rate minus primary error rate (0.01: one percentage point more errors)
    max_error_rate_increase: float | None = Field(default=0.01, ge=0, le=1)
    # canary p99 latency divided by the primary's
    max_p99_latency_ratio: float | None = Field(default=1.5, gt=0)
    # how far the canary's predictions may be distributed differently from the primary's
    max_prediction_shift: float | None = Field(default=0.2, ge=0)
    shift_statistic: Literal["psi", "ks"] = "psi"
    # canary performance on feedback minus the primary's (higher is better): -0.01 tolerates one point worse
    min_feedback_delta: float | None = None


class VariantSpec(_Spec):
    model: str
    weight: int = Field(ge=1, le=99)


class DeploymentSpec(_Spec):
    model: str | None = None  # NAME/V or NAME@ALIAS (resolved to a version when applied)
    strategy: Strategy = "single"
    sticky_by: StickyKey = None
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [10, 50, 100], min_length=1)
    min_requests: int = Field(default=100, ge=1)  # per step, on each of primary and canary
    duration: Seconds = 300.0  # per step, at least
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    variants: dict[str, VariantSpec] = Field(default_factory=dict)  # strategy ab: label → model and weight

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentSpec:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps {self.steps} must increase, e.g. [10, 50, 100]")
        if self.steps[-1] != 100:
            raise ValueError(f"steps {self.steps} must end at 100 (the step that promotes the canary)")
        if self.strategy == "ab":
            if self.model is not None:
                raise ValueError("strategy ab takes variants (label: {model, weight}), not model")
            if len(self.variants) < 2:
                raise ValueError("strategy ab needs at least two variants, e.g. a: {model: credit/3, weight: 50}")
            total = sum(v.weight for v in self.variants.values())
            if total != 100:
                raise ValueError(f"the variants' weights sum to {total}; they must sum to 100")
        else:
            if self.model is None:
                raise ValueError(f"strategy {self.strategy} needs model (e.g. credit@champion)")
            if self.variants:
                raise ValueError(f"variants are for strategy ab, not {self.strategy}")
        return self


def load_deployment_spec(data: Any, name: str, *, source: str = "shipyard.yaml",
                         document: Document | None = None) -> DeploymentSpec:
    """Validate the mapping under `deploy.<name>`; errors name the key path, the value and a fix."""
    return load_named(DeploymentSpec, "deploy", data, name, "deployment settings", source=source, document=document)


def deployment_spec(document: Document, name: str) -> DeploymentSpec | None:
    """deploy.NAME of the document, validated once per change of the file; None when it declares none."""
    return named_spec(DeploymentSpec, document, "deploy", name, "deployment settings", PLURAL)


def declared_deployments(document: Document) -> list[str]:
    return sorted(str(k) for k in named(document, "deploy", PLURAL))
