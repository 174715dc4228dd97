"""The `retrain:` section of shipyard.yaml (retrain.DEPLOYMENT): which alerts of which monitor start a retraining
cycle for a deployment, the data it trains on (the dataset's newest version, or a version built from the
deployment's labelled requests), how often it may run, and whether a person approves the rollout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shipyard.policy.deploy import Seconds
from shipyard.policy.monitor import RULES
from shipyard.policy.named import load_named, named, named_spec

if TYPE_CHECKING:
    from shipyard.policy.document import Document

PLURAL = "deployment names to their retraining policy"
#: The rules that start a cycle by default: the model's inputs or its results moved.
DEFAULT_TRIGGERS = ("data_drift", "prediction_drift", "performance", "concept_drift")


class FeedbackSpec(BaseModel):
    """How `data: feedback` builds the version a cycle trains on from the deployment's labelled requests."""

    model_config = ConfigDict(extra="forbid")

    window: Seconds | None = None  # requests that arrived this long before the cycle began (default: all logged)
    min_rows: int = Field(default=100, ge=1)  # fewer labelled rows fail the cycle
    # latest: the rows of the dataset's newest version not itself built from feedback, then the labelled rows;
    # none: the labelled rows alone
    combine: Literal["latest", "none"] = "latest"

    @field_validator("window")
    @classmethod
    def _window(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("expected a positive duration such as 12h or 168h (or no window: every logged request)")
        return value


class RetrainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monitor: str | None = None  # whose alerts start a cycle (default: the monitor named like the deployment)
    triggers: list[str] = Field(default_factory=lambda: list(DEFAULT_TRIGGERS), min_length=1)  # alert rules
    # latest: the newest version of the standard pipeline's dataset; feedback: a new version of it built from
    # the deployment's logged requests joined with their feedback (settings under `feedback`)
    data: Literal["latest", "feedback"] = "latest"
    feedback: FeedbackSpec | None = None
    cooldown: Seconds = 6 * 3600.0  # after a cycle ends, the next waits at least this long
    max_per_day: int = Field(default=3, ge=1)
    approval: bool = False  # a person approves (`shipyard review approve`) before the canary starts
    canary_timeout: Seconds = 3600.0  # a canary the analysis has not decided by then is rolled back

    @model_validator(mode="after")
    def _rules(self) -> RetrainSpec:
        unknown = [r for r in self.triggers if r not in RULES]
        if unknown:
            raise ValueError(f"unknown alert rule {unknown[0]!r} in triggers; the rules are {', '.join(RULES)}")
        if self.feedback is not None and self.data != "feedback":
            raise ValueError(f"feedback settings apply to data: feedback, but data is {self.data!r}; set data: "
                             "feedback to train on the labelled requests, or remove the feedback settings")
        return self

    @property
    def feedback_data(self) -> FeedbackSpec:
        """The settings of `data: feedback` (their defaults when none are given)."""
        return self.feedback or FeedbackSpec()


def load_retrain_spec(data: Any, name: str, *, source: str = "shipyard.yaml",
                      document: Document | None = None) -> RetrainSpec:
    """Validate the mapping under `retrain.<name>`; errors name the key path, the value and a fix."""
    return load_named(RetrainSpec, "retrain", data, name, "retraining policy", source=source, document=document)


def retrain_spec(document: Document, name: str) -> RetrainSpec | None:
    """retrain.NAME of the document, validated once per change of the file; None when it declares none."""
    return named_spec(RetrainSpec, document, "retrain", name, "retraining policy", PLURAL)


def declared_retraining(document: Document) -> list[str]:
    return sorted(str(k) for k in named(document, "retrain", PLURAL))
