"""The retraining controller's cycle on a real workspace: the standard pipeline trains the champion, a drifted
stream fires the monitor's alerts, the policy decides to retrain, the pipeline trains a challenger on the new
data version, its gates are required, the rollout waits for approval, and a canary that sees no traffic is
rolled back with the champion still serving; then the cooldown holds the next cycle. A challenger that fails its
gates is never rolled out."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import shipyard
from shipyard.context import Context, open_context
from shipyard.control import controller, cycles
from shipyard.store import leases
from shipyard.synthetic import credit

from tests.control.lifecycle import FEATURES, lifecycle
from tests.templates import copy_into, prepare

SPEC = """
monitor:
  credit-api: {deployment: credit-api, window: {last: 1h}, performance: null, health: null}
retrain:
  credit-api: {cooldown: 1h, approval: true}
deploy:
  credit-api:
    model: credit@champion
    strategy: canary
    steps: [50, 100]
    min_requests: 5
    duration: 0s
    sticky_by: X-Customer
    analysis: {max_p99_latency_ratio: null, max_prediction_shift: null}
"""


def setup(workspace: Path, minimum: float) -> Context:
    shipyard.data.add("credit", credit(3000, seed=0))
    (workspace / "shipyard.yaml").write_text((workspace / "shipyard.yaml").read_text() + lifecycle(minimum) + SPEC)
    ctx = open_context()
    from shipyard.pipelines.lifecycle import run_standard

    run_standard(ctx, promote=True)
    shipyard.deployments.create("credit-api", "credit@champion")
    shifted = credit(800, seed=4, population_shift=1.0)
    log(ctx, shifted)
    shipyard.data.add("credit", credit(3000, seed=7, population_shift=1.0))  # the new data to retrain on
    from shipyard.monitoring.monitors import run_monitor

    assert "data_drift" in {f.rule for f in run_monitor(ctx, "credit-api").firing}
    return ctx


def log(ctx: Context, frame: object, *, route: str = "primary", model: str = "credit/1", ago: float = 100) -> None:
    """What the deployment's servers would log for `frame`, answered by `model` on `route`, ten rows a request."""
    from shipyard.models.loading import load_model
    from shipyard.serving.batches import build_batches, store_batch
    from shipyard.serving.predlog import Prediction

    inputs = frame[FEATURES].reset_index(drop=True)  # type: ignore[index]
    predicted = load_model(ctx, model).predict(inputs)
    version = int(model.split("/")[1])
    entries = [Prediction(f"{route}{time.time()}{i}", time.time() - ago + i / 1000,
                          "credit", version, "predict", inputs.iloc[i:i + 10], predicted[i:i + 10], None, 2.0,
                          deployment="credit-api", deployment_route=route)
               for i in range(0, len(inputs), 10)]
    for batch in build_batches(entries):
        store_batch(ctx, batch)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(tmp_path_factory.mktemp("controller") / "ws", lambda workspace: setup(workspace, minimum=0.5))


@pytest.fixture
def drifted(workspace: Path, template: Path) -> Context:
    """The workspace of setup() (a copy of one built once for the module: the logged traffic is minutes old)."""
    copy_into(template, workspace, lambda workspace: setup(workspace, minimum=0.5))
    return open_context()


def test_a_drifted_stream_retrains_gates_waits_for_approval_and_rolls_back_an_unproven_canary(
        workspace: Path, drifted: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = drifted
    spec = ctx.policy.document()
    from shipyard.policy.retrain import retrain_spec

    policy = retrain_spec(spec, "credit-api")
    assert policy is not None
    decision = controller.due(ctx, "credit-api", policy)
    assert decision.start and "data_drift" in decision.reason
    lease = leases.acquire(ctx.store, ctx.actor, controller.LEASE, "test:1", 600)
    assert lease is not None
    said: list[str] = []
    cycle = controller.drive(ctx, controller.begin(ctx, decision, lease), policy, lease, report=said.append)
    assert (cycle.state, cycle.champion, cycle.challenger) == ("awaiting_approval", "credit/1", "credit/2")
    assert cycle.evidence["training"] == {"data": "credit"} and cycle.evidence["gated"]["gates"] == {
        "evaluation": "PASS"}
    assert controller.due(ctx, "credit-api", policy).reason == f"cycle {cycle.id} is open (awaiting_approval)"
    assert controller.drive(ctx, cycle, policy, lease, report=said.append).state == "awaiting_approval"
    from shipyard.models.reviews import decide_review

    monkeypatch.setenv("SHIPYARD_USER", "reviewer")  # another person approves the rollout
    decide_review(open_context(), "credit/2", "rollout", approve=True)
    monkeypatch.setenv("SHIPYARD_USER", ctx.actor)
    cycle = controller.drive(ctx, cycle, policy, lease, report=said.append)
    assert cycle.state == "canary"  # no traffic reaches it: the analysis waits, the pass goes on
    current = shipyard.deployments.status("credit-api").current
    assert current.canary is not None and (current.canary.version_id, current.canary.weight) == ("credit/2", 50)
    assert current.sticky_by == "X-Customer"  # routed as the deployment declares
    assert controller.drive(ctx, cycle, policy, lease, report=said.append).state == "canary"
    path = workspace / "shipyard.yaml"
    path.write_text(path.read_text().replace("{cooldown: 1h, approval: true}",
                                             "{cooldown: 1h, approval: true, canary_timeout: 0s}"))
    policy = retrain_spec(ctx.policy.document(), "credit-api")
    assert policy is not None
    cycle = controller.drive(ctx, cycle, policy, lease, report=said.append)  # unproven past its timeout
    assert cycle.state == "rolled_back" and "credit/1 keeps serving" in (cycle.reason or "")
    assert "canary_timeout" in cycle.evidence["rolled_back"]["analysis"]["reasons"][0]
    primary = shipyard.deployments.status("credit-api").current.primary
    assert primary is not None and (primary.model, primary.version) == ("credit", 1)
    assert list(cycle.evidence) == ["triggered", "training", "registered", "gated", "awaiting_approval", "canary",
                                    "rolled_back"]
    after = controller.due(ctx, "credit-api", policy)
    assert not after.start and after.reason.startswith(f"cooling down after cycle {cycle.id} (rolled_back)")
    actions = [e.action for e in shipyard.audit_log(object_id=str(cycle.id), newest_first=False)]
    assert actions == ["retrain.training", "retrain.registered", "retrain.gated", "retrain.awaiting_approval",
                       "retrain.canary", "retrain.rolled_back"]


def test_a_challenger_that_fails_its_gates_is_never_rolled_out(workspace: Path, drifted: Context) -> None:
    ctx = drifted
    path = workspace / "shipyard.yaml"
    path.write_text(path.read_text().replace("accuracy: {min: 0.5}", "accuracy: {min: 0.99}"))
    from shipyard.policy.retrain import retrain_spec

    policy = retrain_spec(ctx.policy.document(), "credit-api")
    assert policy is not None
    lease = leases.acquire(ctx.store, ctx.actor, controller.LEASE, "test:1", 600)
    assert lease is not None
    decision = controller.due(ctx, "credit-api", policy)
    cycle = controller.drive(ctx, controller.begin(ctx, decision, lease), policy, lease, report=lambda _: None)
    assert cycle.state == "failed" and cycle.reason is not None and cycle.reason.startswith("gates: gate 'evaluation'")
    firing = shipyard.monitoring.list_alerts(monitor="credit-api", state="firing")
    [alert] = [a for a in firing if a.rule == "retrain_failed"]  # a failing retrain alerts, it does not loop
    assert alert.severity == "critical" and f"retraining cycle {cycle.id} of credit-api failed: gates" in alert.message
    assert shipyard.deployments.status("credit-api").current.strategy == "single"  # no canary was started
    assert [c.state for c in cycles.cycles(ctx, "credit-api")] == ["failed"]
    assert np.isfinite(cycles.last_ended(ctx, "credit-api").ended or np.nan)
    with pytest.raises(Exception, match="lease 'controller'"):
        other = leases.Lease(controller.LEASE, "test:2", lease.token + 1, lease.expires)
        cycles.start_cycle(ctx, "credit-api", "credit-api", {}, None, lease=other)


def test_watch_acts_for_a_deployment_under_its_lease_and_leaves_one_held_elsewhere(drifted: Context) -> None:
    ctx = drifted
    name = controller.lease_name("credit-api")
    other = leases.acquire(ctx.store, ctx.actor, name, "elsewhere:9:z", 600)
    assert other is not None
    said: list[str] = []
    [outcome] = controller.watch_once(ctx, holder="here:1:a", report=said.append)  # it leaves it, acting on nothing
    assert outcome.held_elsewhere and outcome.decision == "another controller acts for it (elsewhere:9:z)"
    assert cycles.cycles(ctx) == [] and said == []
    leases.release(ctx.store, ctx.actor, other)
    [outcome] = controller.watch_once(ctx, holder="here:1:a", report=said.append)
    assert outcome.error is None and outcome.cycle is not None and outcome.cycle.state == "awaiting_approval"
    [again] = controller.watch_once(ctx, holder="here:1:a", report=said.append)  # the open cycle is resumed
    assert again.decision == f"resuming cycle {outcome.cycle.id} (awaiting_approval)"
    held = leases.current(ctx.store, name)
    assert held is not None and held.expires == 0  # released after each pass
    kept = controller.watch_once(ctx, holder="here:1:a", report=said.append, release=False)
    held = leases.current(ctx.store, name)
    assert kept[0].cycle is not None and held is not None and held.holder == "here:1:a" and held.expires > 0
    [waits] = controller.watch_once(ctx, holder="there:2:b", report=said.append)  # kept from pass to pass
    assert waits.held_elsewhere
    controller.release_all(ctx, "here:1:a")
    assert not controller.watch_once(ctx, holder="there:2:b", report=said.append)[0].held_elsewhere


@pytest.mark.parametrize("cut", ["during the canary", "after the promotion", "by hand"])
def test_a_canary_left_by_a_stopped_controller_is_carried_on_by_the_next(workspace: Path, drifted: Context,
                                                                        cut: str) -> None:
    from shipyard.deployments.strategies import canary as start
    from shipyard.deployments.strategies import rollback
    from shipyard.policy.retrain import retrain_spec

    ctx = drifted
    path = workspace / "shipyard.yaml"
    path.write_text(path.read_text().replace("{cooldown: 1h, approval: true}", "{cooldown: 1h}"))
    policy = retrain_spec(ctx.policy.document(), "credit-api")
    assert policy is not None
    lease = leases.acquire(ctx.store, ctx.actor, controller.lease_name("credit-api"), "first:1:a", 600)
    assert lease is not None
    cycle = controller.drive(ctx, controller.begin(ctx, controller.due(ctx, "credit-api", policy), lease), policy,
                             lease, report=lambda _: None)
    assert cycle.state == "canary"  # the first controller stops here: the record says where
    if cut == "after the promotion":  # the analysis promoted it, then the controller stopped before recording it
        start(ctx, "credit-api", "credit/2", 100)
    elif cut == "by hand":
        rollback(ctx, "credit-api", reason="an operator")
    log(ctx, credit(800, seed=5, population_shift=1.0), route="canary", model="credit/2", ago=0)
    log(ctx, credit(800, seed=6, population_shift=1.0), route="primary", model="credit/1", ago=0)
    taker = leases.acquire(ctx.store, ctx.actor, lease.name, "second:2:b", 600,
                           now=lease.expires + 1)  # the first stopped renewing: the second takes over
    assert taker is not None
    settled = controller.drive(ctx, cycle, policy, taker, report=lambda _: None)
    assert not settled.open
    now = shipyard.deployments.status("credit-api").current
    assert now.strategy == "single" and now.primary is not None
    if cut == "by hand":
        assert settled.state == "rolled_back" and "ended outside the cycle" in (settled.reason or "")
        assert now.primary.version_id == "credit/1"
        assert shipyard.models.get("models:/credit@champion").version_id == "credit/1"
    else:  # carried on: the traffic logged meanwhile is judged, and the canary promoted
        assert settled.state == "promoted" and now.primary.version_id == "credit/2"
        assert shipyard.models.get("models:/credit@champion").version_id == "credit/2"  # the registry follows
        assert settled.evidence["promoted"]["champion"] == "credit/2 is credit@champion"
