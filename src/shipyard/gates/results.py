"""What a gate produces: named checks with the numbers behind them, combined into one status."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np

GateName = Literal["evaluation", "behavioural", "fairness", "infrastructure"]
Status = Literal["PASS", "FAIL", "NO_BASELINE", "WAIVED"]
CheckStatus = Literal["PASS", "FAIL", "NO_BASELINE"]


@dataclass(frozen=True, kw_only=True)
class Check:
    """One comparison: what was observed, the threshold (or expected value), and a message naming both."""

    name: str
    status: CheckStatus
    message: str
    observed: Any = None
    threshold: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "status": self.status, "message": self.message,
            "observed": plain(self.observed), "threshold": plain(self.threshold), "details": plain(self.details),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(
            name=data["name"], status=data["status"], message=data["message"], observed=data.get("observed"),
            threshold=data.get("threshold"), details=dict(data.get("details") or {}),
        )


def combine(checks: Iterable[Check]) -> Status:
    """Any FAIL → FAIL; else any NO_BASELINE (every other check passed) → NO_BASELINE; else PASS."""
    statuses = {check.status for check in checks}
    if "FAIL" in statuses:
        return "FAIL"
    return "NO_BASELINE" if "NO_BASELINE" in statuses else "PASS"


@dataclass
class GateResult:
    """The outcome of one gate for one model version. WAIVED is only ever set by the registry."""

    gate: GateName
    status: Status
    checks: list[Check] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    # What a report would plot, kept with the result (a confusion matrix, a histogram of residuals), so
    # that a model card shows the evidence the gate saw instead of predicting again.
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_checks(cls, gate: GateName, checks: list[Check], metrics: dict[str, Any] | None = None) -> GateResult:
        return cls(gate=gate, status=combine(checks), checks=checks, metrics=dict(metrics or {}))

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "FAIL"]

    def summary(self) -> str:
        """One line for people: the status and the messages of the checks that did not pass."""
        unmet = [check.message for check in self.checks if check.status != "PASS"]
        counted = f"{len(self.checks) - len(unmet)} of {len(self.checks)} checks passed"
        return f"{self.gate} gate {self.status} ({counted})" + (": " + "; ".join(unmet) if unmet else "")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: numpy scalars become numbers, NaN and infinities become None."""
        return {
            "gate": self.gate, "status": self.status, "checks": [check.to_dict() for check in self.checks],
            "metrics": plain(self.metrics), "evidence": plain(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        return cls(
            gate=cast(GateName, data["gate"]), status=cast(Status, data["status"]),
            checks=[Check.from_dict(item) for item in data.get("checks", [])], metrics=dict(data.get("metrics") or {}),
            evidence=dict(data.get("evidence") or {}),
        )


def plain(value: Any) -> Any:
    """`value` with JSON types only (numpy scalars and arrays converted, non-finite floats as None)."""
    if isinstance(value, dict):
        return {str(plain(key)): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def format_number(value: Any) -> str:
    """A number as messages show it: four significant digits, no exponent for everyday magnitudes."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.3g}"
