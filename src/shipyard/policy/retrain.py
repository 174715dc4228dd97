"""The `retrain:` section of shipyard.yaml (retrain.DEPLOYMENT): which alerts of which monitor start a retraining
cycle for a deployment, the data it trains on, how often it may run, and whether a person approves the rollout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipyard.policy.deploy import Seconds
from shipyard.policy.monitor import RULES
from shipyard.policy.named import load_named, named, named_spec

if TYPE_CHECKING:
    from shipyard.policy.document import Document

PLURAL = "deployment names to their retraining policy"
#: The rules that start a cycle by default: the model's inputs or its results moved.
DEFAULT_TRIGGERS = ("data_drift", "prediction_drift", "performance", "concept_drift")


class RetrainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monitor: str | None = None  # whose alerts start a cycle (default: the monitor named like the deployment)
    triggers: list[str] = Field(default_factory=lambda: list(DEFAULT_TRIGGERS), min_length=1)  # alert rules
    # latest: the newest version of the standard pipeline's dataset
    data: Literal["latest"] = "latest"
    cooldown: Seconds = 6 * 3600.0  # after a cycle ends, the next waits at least this long
    max_per_day: int = Field(default=3, ge=1)
    approval: bool = False  # a person approves (`shipyard review approve`) before the canary starts
    canary_timeout: Seconds = 3600.0  # a canary the analysis has not decided by then is rolled back

    @model_validator(mode="after")
    def _rules(self) -> RetrainSpec:
        unknown = [r for r in self.triggers if r not in RULES]
        if unknown:
            raise ValueError(f"unknown alert rule {unknown[0]!r} in triggers; the rules are {', '.join(RULES)}")
        return self


def load_retrain_spec(data: Any, name: str, *, source: str = "shipyard.yaml",
                      document: Document | None = None) -> RetrainSpec:
    """Validate the mapping under `retrain.<name>`; errors name the key path, the value and a fix."""
    return load_named(RetrainSpec, "retrain", data, name, "retraining policy", source=source, document=document)


def retrain_spec(document: Document, name: str) -> RetrainSpec | None:
    """retrain.NAME of the document, validated once per change of the file; None when it declares none."""
    return named_spec(RetrainSpec, document, "retrain", name, "retraining policy", PLURAL)


def declared_retraining(document: Document) -> list[str]:
    return sorted(str(k) for k in named(document, "retrain", PLURAL))
