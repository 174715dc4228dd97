"""Promotion: a version takes a serving alias only when every configured gate passed (or has no
baseline yet, or was waived by a named person) against the current champion and the current gate
policy, and every required review is approved. A model without gates.NAME in shipyard.yaml is refused
unless the caller says so (`--no-gates`) or the file declares it has none (`gates.NAME: {}`). The check
and the move commit in one transaction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection

from shipyard.context import Context
from shipyard.errors import GateFailed, ValidationError
from shipyard.gates.gating import champion_version, stored_gates
from shipyard.models.records import AliasMove
from shipyard.models.refs import check_alias
from shipyard.models.registry import find_version, get_model_version, move_alias
from shipyard.models.reviews import find_review

ACCEPTED = ("PASS", "NO_BASELINE", "WAIVED")


@dataclass
class Readiness:
    """Whether a version may take a serving alias, and what stands in the way."""

    version_id: str
    gates: dict[str, str] = field(default_factory=dict)  # gate → status, or "NOT RUN" / "STALE"
    reviews: dict[str, str] = field(default_factory=dict)  # kind → status, or "NOT REQUESTED"
    problems: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "allowed": self.allowed}


def check_promotion(ctx: Context, ref: str) -> Readiness:
    with ctx.store.read() as conn:
        return promotion_state(conn, ctx, ref)


def promotion_state(conn: Connection, ctx: Context, ref: str, *, no_gates: bool = False) -> Readiness:
    """What stands between a version and a serving alias, read on the caller's connection. `no_gates`:
    the caller accepts that the model has no gates configured."""
    version = find_version(conn, ref)
    vid = version.version_id
    state = Readiness(vid)
    if version.status == "archived":
        state.problems.append(f"{vid} is archived")
    stored = stored_gates(conn, vid)
    spec = ctx.policy.gates(version.model)
    if spec is None and not no_gates:
        state.problems.append(
            f"no gates are configured for '{version.model}': declare them under gates.{version.model} in "
            f"shipyard.yaml, declare `gates: {{{version.model}: {{}}}}` if it needs none, or promote with --no-gates"
        )
    digest = ctx.policy.gates_digest(version.model)
    champion = champion_version(conn, version.model)
    compares = spec is not None and spec.evaluation is not None and bool(spec.evaluation.against_champion)
    rerun = f"re-run the gates (`shipyard models gate {vid}`)"
    for gate in ctx.policy.configured_gates(version.model):
        result = stored.get(gate)
        state.gates[gate] = result.status if result else "NOT RUN"
        if result is None:
            state.problems.append(f"gate '{gate}' has not run ({rerun[3:]})")
        elif result.policy_digest != digest:
            state.gates[gate] = "STALE"
            state.problems.append(f"gate '{gate}' was judged by another gate policy than gates.{version.model} in "
                                  f"shipyard.yaml declares now: {rerun}")
        elif gate == "evaluation" and compares and champion not in (result.baseline_version, version.version):
            state.gates[gate] = "STALE"
            before = f"{version.model}/{result.baseline_version}" if result.baseline_version else "no champion"
            now = f"{version.model}/{champion}" if champion else "there is none"
            state.problems.append(f"gate 'evaluation' compared it with {before}, but the champion is now {now}: "
                                  f"{rerun}")
        elif result.status not in ACCEPTED:
            failed = [c for c in result.result.get("checks", []) if c.get("status") == "FAIL"]
            detail = "; ".join(c.get("message", c.get("name", "")) for c in failed[:5])
            state.problems.append(f"gate '{gate}' FAILED: {detail}")
    for kind in ctx.policy.governance(version.model).reviews:
        review = find_review(conn, vid, kind)
        state.reviews[kind] = review.status if review else "NOT REQUESTED"
        if review is None or review.status != "approved":
            state.problems.append(
                f"the required {kind} review is {'not requested' if review is None else review.status}"
                + (f" (`shipyard review request {vid} --kind {kind}`)" if review is None else "")
            )
    return state


def promote(ctx: Context, ref: str, alias: str = "champion", *, reason: str | None = None,
            no_gates: bool = False) -> AliasMove:
    """Move `alias` to the version if its gates and reviews allow; otherwise raise GateFailed listing
    every failing gate with its numbers. The check and the move are one transaction: an archive, a
    rejected review or new gate results cannot slip in between.

    `no_gates` promotes a model that has no gates configured; it never skips gates that are."""
    version = get_model_version(ctx, ref)
    check_alias(alias)
    configured = ctx.policy.configured_gates(version.model)
    if no_gates and configured:
        raise ValidationError(
            f"--no-gates is for a model without gates, but gates.{version.model} in shipyard.yaml configures "
            f"{', '.join(configured)}. Run them (`shipyard models gate {version.version_id}`) and promote without "
            f"--no-gates, or waive a failed gate (`shipyard models waive {version.version_id} --gate NAME "
            "--reason \"…\"`).", version=version.version_id, gates=configured,
        )
    payload: dict[str, Any] = {"alias": alias, "to_version": version.version}
    if no_gates:
        payload["no_gates"] = True
    with ctx.store.mutation(ctx.actor, "model.alias_set", "model", version.model, payload) as conn:
        state = promotion_state(conn, ctx, version.version_id, no_gates=no_gates)
        if not state.allowed:
            hint = ("\nFix the model or data and run the gates again, or waive a gate with "
                    f"`shipyard models waive {version.version_id} --gate NAME --reason \"…\"`.") if state.gates else ""
            raise GateFailed(
                f"Refusing to promote {version.version_id} to '{alias}':\n  - " + "\n  - ".join(state.problems) + hint,
                version=version.version_id, alias=alias, problems=state.problems,
            )
        waived = sum(1 for status in state.gates.values() if status == "WAIVED")
        if not state.gates:
            why = reason or ("promoted without gates (--no-gates)" if no_gates
                             else f"promoted: gates.{version.model} declares no gates")
        else:
            why = reason or ("promoted: gates passed" + (f", {waived} waived" if waived else ""))
        payload["reason"] = why
        return move_alias(conn, ctx.actor, version.model, alias, version.version, reason=why, payload=payload)
