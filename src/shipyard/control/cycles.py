"""Retraining cycles: the recorded states of one retrain of a deployment, from the alerts that started it to the
champion kept or replaced. Every change of state is a compare-and-set (the state it leaves must be the one
expected), fenced by the controller's lease when one is given, audited with its evidence, and linked in the
lineage (monitor report → cycle → training run, challenger, deployment revision)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from shipyard.errors import ConflictError, NotFoundError, ValidationError
from shipyard.monitoring.monitors import MONITOR_REPORT
from shipyard.store import lineage
from shipyard.store.db import now_ms
from shipyard.store.tables import retrain_cycles

if TYPE_CHECKING:
    from shipyard.context import Context
    from shipyard.store.leases import Lease

RETRAIN_CYCLE = lineage.register_kind("retrain_cycle", "a retraining cycle of a deployment")
#: Where each state may go next; the last three end a cycle.
TRANSITIONS: dict[str, frozenset[str]] = {
    "triggered": frozenset({"training", "failed"}),
    "training": frozenset({"registered", "failed"}),
    "registered": frozenset({"gated", "failed"}),
    "gated": frozenset({"awaiting_approval", "canary", "failed"}),
    "awaiting_approval": frozenset({"canary", "failed"}),
    "canary": frozenset({"promoted", "rolled_back", "failed"}),
}
TERMINAL = frozenset({"promoted", "rolled_back", "failed"})
STATES = (*TRANSITIONS, *sorted(TERMINAL))


@dataclass
class Cycle:
    id: int
    deployment: str
    monitor: str
    state: str
    trigger: dict[str, Any]
    champion: str | None
    challenger: str | None
    run_id: str | None
    evidence: dict[str, Any] = field(default_factory=dict)  # state → what it was decided on
    reason: str | None = None
    created: int = 0
    created_by: str = ""
    updated: int = 0
    ended: int | None = None

    @property
    def open(self) -> bool:
        return self.state not in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        from shipyard.monitoring.windows import iso

        out = dict(self.__dict__)
        for key in ("created", "updated", "ended"):
            out[key] = iso(out[key] / 1000) if out[key] is not None else None
        return out

    @classmethod
    def from_row(cls, row: Any) -> Cycle:
        return cls(int(row.id), row.deployment, row.monitor, row.state, json.loads(row.trigger), row.champion,
                   row.challenger, row.run_id, json.loads(row.evidence), row.reason, int(row.created),
                   row.created_by, int(row.updated), None if row.ended is None else int(row.ended))


def start_cycle(ctx: Context, deployment: str, monitor: str, trigger: dict[str, Any], champion: str | None, *,
                lease: Lease | None = None, now: int | None = None) -> Cycle:
    """Record a new cycle in state `triggered`; ConflictError when the deployment has one open already."""
    at = now_ms() if now is None else now
    payload: dict[str, Any] = {"monitor": monitor, "trigger": trigger, "champion": champion}
    with ctx.store.mutation(ctx.actor, "retrain.triggered", "deployment", deployment, payload) as conn:
        _fence(conn, lease, at)
        running = _open(conn, deployment)
        if running is not None:
            raise ConflictError(f"Deployment '{deployment}' has retraining cycle {running.id} open ({running.state}); "
                                "it ends before another starts.", deployment=deployment, cycle=running.id)
        inserted = conn.execute(retrain_cycles.insert().values(
            deployment=deployment, monitor=monitor, state="triggered", trigger=json.dumps(trigger, default=str),
            champion=champion, evidence=json.dumps({"triggered": trigger}, default=str), created=at,
            created_by=ctx.actor, updated=at)).inserted_primary_key
        assert inserted is not None
        cycle_id = int(inserted[0])
        payload["cycle"] = cycle_id
        report = trigger.get("report")
        if report is not None:
            lineage.add_edges(conn, [(lineage.Node(MONITOR_REPORT, str(report)),
                                      lineage.Node(RETRAIN_CYCLE, str(cycle_id)), "input")])
        return _get(conn, cycle_id)


def advance(ctx: Context, cycle_id: int, state: str, evidence: dict[str, Any], *, expect: str,
            challenger: str | None = None, run_id: str | None = None, reason: str | None = None,
            outputs: list[lineage.Node] | None = None, lease: Lease | None = None, now: int | None = None) -> Cycle:
    """Move cycle `cycle_id` from `expect` to `state` with the evidence it was decided on. ConflictError when it
    is no longer in `expect` (another controller moved it, or a restart replays a step) or the lease is lost."""
    if state not in STATES:
        raise ValidationError(f"Unknown cycle state {state!r}; the states are {', '.join(STATES)}.", state=state)
    at = now_ms() if now is None else now
    payload: dict[str, Any] = {"cycle": cycle_id, "from": expect, "evidence": evidence}
    with ctx.store.mutation(ctx.actor, f"retrain.{state}", "retrain_cycle", str(cycle_id), payload) as conn:
        _fence(conn, lease, at)
        cycle = _get(conn, cycle_id)
        if cycle.state != expect:
            raise ConflictError(f"Retraining cycle {cycle_id} is {cycle.state}, not {expect}; nothing was changed.",
                                cycle=cycle_id, state=cycle.state)
        if state not in TRANSITIONS.get(expect, frozenset()):
            raise ConflictError(f"Retraining cycle {cycle_id} cannot go from {expect} to {state}; from {expect} it "
                                f"goes to {', '.join(sorted(TRANSITIONS.get(expect, ()))) or 'nothing (it ended)'}.",
                                cycle=cycle_id, state=expect)
        values: dict[str, Any] = {"state": state, "updated": at,
                                  "evidence": json.dumps({**cycle.evidence, state: evidence}, default=str)}
        if challenger is not None:
            values["challenger"] = challenger
        if run_id is not None:
            values["run_id"] = run_id
        if reason is not None:
            values["reason"] = reason
        if state in TERMINAL:
            values["ended"] = at
        conn.execute(retrain_cycles.update().where(retrain_cycles.c.id == cycle_id).values(**values))
        node = lineage.Node(RETRAIN_CYCLE, str(cycle_id))
        lineage.add_edges(conn, [(node, out, "output") for out in outputs or []])
        return _get(conn, cycle_id)


def get_cycle(ctx: Context, cycle_id: int) -> Cycle:
    with ctx.store.read() as conn:
        return _get(conn, cycle_id)


def open_cycle(ctx: Context, deployment: str) -> Cycle | None:
    with ctx.store.read() as conn:
        return _open(conn, deployment)


def cycles(ctx: Context, deployment: str | None = None, *, limit: int = 100) -> list[Cycle]:
    """Cycles, newest first."""
    query = select(retrain_cycles)
    if deployment is not None:
        query = query.where(retrain_cycles.c.deployment == deployment)
    with ctx.store.read() as conn:
        return [Cycle.from_row(r) for r in conn.execute(query.order_by(retrain_cycles.c.id.desc()).limit(limit))]


def started_since(ctx: Context, deployment: str, since_ms: int) -> int:
    """How many cycles of the deployment started at or after `since_ms` (the daily limit counts them)."""
    c = retrain_cycles.c
    with ctx.store.read() as conn:
        return int(conn.execute(select(func.count()).where(c.deployment == deployment, c.created >= since_ms))
                   .scalar_one())


def last_ended(ctx: Context, deployment: str) -> Cycle | None:
    """The deployment's most recently ended cycle (the cooldown runs from its end)."""
    c = retrain_cycles.c
    with ctx.store.read() as conn:
        row = conn.execute(select(retrain_cycles).where(c.deployment == deployment, c.ended.is_not(None))
                           .order_by(c.ended.desc(), c.id.desc()).limit(1)).first()
    return None if row is None else Cycle.from_row(row)


def _get(conn: Connection, cycle_id: int) -> Cycle:
    row = conn.execute(select(retrain_cycles).where(retrain_cycles.c.id == cycle_id)).first()
    if row is None:
        raise NotFoundError(f"No retraining cycle {cycle_id}; `shipyard watch history` lists them.", cycle=cycle_id)
    return Cycle.from_row(row)


def _open(conn: Connection, deployment: str) -> Cycle | None:
    c = retrain_cycles.c
    row = conn.execute(select(retrain_cycles).where(c.deployment == deployment, c.state.not_in(TERMINAL))
                       .order_by(c.id.desc()).limit(1)).first()
    return None if row is None else Cycle.from_row(row)


def _fence(conn: Connection, lease: Lease | None, at: int) -> None:
    from shipyard.store.leases import held

    if lease is not None and not held(conn, lease, now=at):
        raise ConflictError(f"The controller's lease '{lease.name}' (token {lease.token}) is no longer held by "
                            f"{lease.holder}; another controller acts now, so this one changes nothing.",
                            lease=lease.name)
