"""Retraining cycles as recorded states: one open cycle per deployment, compare-and-set transitions along the
allowed paths only, fenced by the controller's lease, audited with their evidence and linked in the lineage."""

from __future__ import annotations

from pathlib import Path

import pytest

import shipyard
from shipyard.context import open_context
from shipyard.control import cycles
from shipyard.errors import ConflictError, NotFoundError, ValidationError
from shipyard.store import leases
from shipyard.store.lineage import Node, neighbours

T = 1_900_000_000_000


def test_a_cycle_goes_from_trigger_to_promotion_one_checked_step_at_a_time(backend_workspace: Path) -> None:
    ctx = open_context()
    lease = leases.acquire(ctx.store, "c", "controller", "host:1:a", 60, now=T)
    assert lease is not None
    cycle = cycles.start_cycle(ctx, "credit-api", "credit-api", {"report": 7, "alerts": [3]}, "credit/1",
                               lease=lease, now=T + 1)
    assert (cycle.state, cycle.open, cycle.champion) == ("triggered", True, "credit/1")
    with pytest.raises(ConflictError, match=f"Deployment 'credit-api' has retraining cycle {cycle.id} open"):
        cycles.start_cycle(ctx, "credit-api", "credit-api", {}, "credit/1", lease=lease, now=T + 2)
    steps = [("training", "triggered", {"data": "credit@2"}), ("registered", "training", {"version": "credit/2"}),
             ("gated", "registered", {"gates": {"evaluation": "PASS"}}), ("canary", "gated", {"revision": 5}),
             ("promoted", "canary", {"decision": "promote"})]
    for state, expect, evidence in steps:
        cycle = cycles.advance(ctx, cycle.id, state, evidence, expect=expect, lease=lease, now=T + 10,
                               challenger="credit/2" if state == "registered" else None)
    assert (cycle.state, cycle.open, cycle.challenger, cycle.ended) == ("promoted", False, "credit/2", T + 10)
    assert list(cycle.evidence) == ["triggered", "training", "registered", "gated", "canary", "promoted"]
    assert cycles.open_cycle(ctx, "credit-api") is None and cycles.last_ended(ctx, "credit-api").id == cycle.id
    assert cycles.started_since(ctx, "credit-api", T) == 1 and cycles.started_since(ctx, "credit-api", T + 2) == 0
    actions = [e.action for e in shipyard.audit_log(object_id=str(cycle.id), newest_first=False)]
    assert actions == ["retrain.training", "retrain.registered", "retrain.gated", "retrain.canary",
                       "retrain.promoted"]
    with ctx.store.read() as conn:
        upstream = {(n.kind, n.id) for n, _ in neighbours(conn, Node("retrain_cycle", str(cycle.id)), upstream=True)}
    assert upstream == {("monitor_report", "7")}


def test_replayed_steps_wrong_paths_and_a_lost_lease_change_nothing(workspace: Path) -> None:
    ctx = open_context()
    lease = leases.acquire(ctx.store, "c", "controller", "host:1:a", 60, now=T)
    assert lease is not None
    cycle = cycles.start_cycle(ctx, "web", "web", {}, None, lease=lease, now=T)
    cycles.advance(ctx, cycle.id, "training", {}, expect="triggered", lease=lease, now=T + 1)
    head = shipyard.audit_head()
    with pytest.raises(ConflictError, match=f"Retraining cycle {cycle.id} is training, not triggered"):
        cycles.advance(ctx, cycle.id, "training", {}, expect="triggered", lease=lease, now=T + 2)  # a replay
    with pytest.raises(ConflictError, match="cannot go from training to promoted; from training it goes to "
                                            "failed, registered"):
        cycles.advance(ctx, cycle.id, "promoted", {}, expect="training", lease=lease, now=T + 2)
    assert shipyard.audit_head() == head  # refused steps write nothing
    taker = leases.acquire(ctx.store, "d", "controller", "host:2:b", 60, now=T + 61_000)  # the lease ran out
    assert taker is not None
    head = shipyard.audit_head()
    with pytest.raises(ConflictError, match="lease 'controller' \\(token 1\\) is no longer held by host:1:a"):
        cycles.advance(ctx, cycle.id, "registered", {}, expect="training", lease=lease, now=T + 61_001)
    assert shipyard.audit_head() == head and cycles.get_cycle(ctx, cycle.id).state == "training"
    failed = cycles.advance(ctx, cycle.id, "failed", {"error": "training failed"}, expect="training", lease=taker,
                            reason="the pipeline's train step failed", now=T + 61_002)
    assert (failed.state, failed.reason) == ("failed", "the pipeline's train step failed")
    with pytest.raises(ValidationError, match="Unknown cycle state 'done'"):
        cycles.advance(ctx, cycle.id, "done", {}, expect="failed")
    with pytest.raises(NotFoundError, match="No retraining cycle 999"):
        cycles.get_cycle(ctx, 999)
    again = cycles.start_cycle(ctx, "web", "web", {}, None, lease=taker, now=T + 61_003)  # the last one ended
    assert [c.id for c in cycles.cycles(ctx, "web")] == [again.id, cycle.id]
