"""Promotion: a version takes a serving alias only when every configured gate passed (or has no
baseline yet, or was waived by a named person) and every required review is approved."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.context import Context
from shipyard.errors import GateFailed
from shipyard.models.gating import latest_gates
from shipyard.models.policy import configured_gates, gate_spec, governance
from shipyard.models.records import AliasMove
from shipyard.models.registry import _move_alias, get_model_version
from shipyard.models.refs import check_alias
from shipyard.models.reviews import latest_review

ACCEPTED = ("PASS", "NO_BASELINE", "WAIVED")


@dataclass
class Readiness:
    """Whether a version may take a serving alias, and what stands in the way."""

    version_id: str
    gates: dict[str, str] = field(default_factory=dict)  # gate → status, or "NOT RUN"
    reviews: dict[str, str] = field(default_factory=dict)  # kind → status, or "NOT REQUESTED"
    problems: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "allowed": self.allowed}


def check_promotion(ctx: Context, ref: str) -> Readiness:
    version = get_model_version(ctx, ref)
    state = Readiness(version.version_id)
    if version.status == "archived":
        state.problems.append(f"{version.version_id} is archived")
    stored = latest_gates(ctx, version.version_id)
    for gate in configured_gates(gate_spec(ctx, version.model)):
        result = stored.get(gate)
        state.gates[gate] = result.status if result else "NOT RUN"
        if result is None:
            state.problems.append(f"gate '{gate}' has not run (run `shipyard models gate {version.version_id}`)")
        elif result.status not in ACCEPTED:
            failed = [c for c in result.result.get("checks", []) if c.get("status") == "FAIL"]
            detail = "; ".join(c.get("message", c.get("name", "")) for c in failed[:5])
            state.problems.append(f"gate '{gate}' FAILED: {detail}")
    for kind in governance(ctx, version.model).reviews:
        review = latest_review(ctx, version.version_id, kind)
        state.reviews[kind] = review.status if review else "NOT REQUESTED"
        if review is None or review.status != "approved":
            state.problems.append(
                f"the required {kind} review is {'not requested' if review is None else review.status}"
            )
    return state


def promote(ctx: Context, ref: str, alias: str = "champion", *, reason: str | None = None) -> AliasMove:
    """Move `alias` to the version if its gates and reviews allow; otherwise raise GateFailed listing
    every failing gate with its numbers."""
    version = get_model_version(ctx, ref)
    check_alias(alias)
    state = check_promotion(ctx, version.version_id)
    if not state.allowed:
        raise GateFailed(
            f"Refusing to promote {version.version_id} to '{alias}':\n  - " + "\n  - ".join(state.problems)
            + "\nFix the model or data and run the gates again, or waive a gate with "
            f"`shipyard models waive {version.version_id} --gate NAME --reason \"…\"`."
        )
    return _move_alias(ctx, version.model, alias, version.version, reason=reason or "promoted: gates passed")
