"""The retraining controller: for each deployment with a `retrain:` policy, run its monitor, and when the alerts
the policy names fire (outside its cooldown and daily limit), drive one cycle — train on the new data, register a
challenger, require its gates, then (after approval, when the policy asks for it) a canary decided by the
deployment's automated analysis — recording every state with its evidence. One controller acts at a time: each
step is fenced by the deployment's lease in the store (`controller:DEPLOYMENT`), so several controllers can share
the deployments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.control.cycles import Cycle, advance, last_ended, open_cycle, start_cycle, started_since
from shipyard.errors import ShipyardError
from shipyard.store.db import now_ms

if TYPE_CHECKING:
    from shipyard.context import Context
    from shipyard.policy.retrain import RetrainSpec
    from shipyard.store.leases import Lease

LEASE = "controller"
LEASE_SECONDS = 120.0
DAY_MS = 86_400_000

Report = Callable[[str], None]


@dataclass
class Decision:
    """Whether a deployment's policy starts a cycle now, and why (or why not)."""

    deployment: str
    start: bool
    reason: str
    trigger: dict[str, Any] | None = None


def due(ctx: Context, deployment: str, spec: RetrainSpec, *, now: int | None = None) -> Decision:
    """The policy against the state of things: an open cycle, the cooldown after the last one, the daily limit,
    then the firing alerts of the monitor whose rules the policy names."""
    from shipyard.monitoring.alerts import alerts

    at = now_ms() if now is None else now
    monitor = spec.monitor or deployment
    running = open_cycle(ctx, deployment)
    if running is not None:
        return Decision(deployment, False, f"cycle {running.id} is open ({running.state})")
    ended = last_ended(ctx, deployment)
    if ended is not None and ended.ended is not None and at - ended.ended < spec.cooldown * 1000:
        left = (spec.cooldown * 1000 - (at - ended.ended)) / 1000
        return Decision(deployment, False, f"cooling down after cycle {ended.id} ({ended.state}) for {left:.0f} s more")
    started = started_since(ctx, deployment, at - DAY_MS)
    if started >= spec.max_per_day:
        return Decision(deployment, False, f"{started} cycles started in the last 24 hours, the limit is "
                                           f"{spec.max_per_day} (retrain.{deployment}.max_per_day)")
    firing = [a for a in alerts(ctx, monitor, "firing") if a.rule in spec.triggers]
    if not firing:
        return Decision(deployment, False, f"no alert of monitor {monitor} among {', '.join(spec.triggers)} is firing")
    trigger = {"monitor": monitor, "report": max(a.last_report for a in firing),
               "alerts": [{"id": a.id, "rule": a.rule, "message": a.message} for a in firing]}
    return Decision(deployment, True, "firing: " + ", ".join(a.rule for a in firing), trigger)


def drive(ctx: Context, cycle: Cycle, spec: RetrainSpec, lease: Lease, *, report: Report = print) -> Cycle:
    """Take `cycle` from its state as far as it can go now: to its end, or to a state that waits (for an
    approval, or for the canary's evidence)."""
    was_open = cycle.open
    while cycle.open:
        step = _STEPS.get(cycle.state)
        if step is None:
            break
        moved = step(ctx, cycle, spec, lease, report)
        if moved.id == cycle.id and moved.state == cycle.state:
            break  # waiting (for an approval, or the canary's evidence)
        cycle = moved
    if was_open and not cycle.open:
        announce(ctx, cycle)
    return cycle


def announce(ctx: Context, cycle: Cycle) -> None:
    """A failed cycle is an alert of its monitor (`retrain_failed`, critical, sent to its sinks) rather than a
    reason to retrain again at once; a cycle that ends otherwise resolves it."""
    from shipyard.monitoring.alerts import Finding, evaluate
    from shipyard.monitoring.monitors import monitor_spec

    report_id = cycle.trigger.get("report")
    if report_id is None:
        return
    failed = cycle.state == "failed"
    message = (f"retraining cycle {cycle.id} of {cycle.deployment} failed: {cycle.reason}" if failed else
               f"retraining cycle {cycle.id} of {cycle.deployment} ended {cycle.state}")
    evaluate(ctx, cycle.monitor, monitor_spec(ctx, cycle.monitor), int(report_id),
             [Finding("retrain_failed", "critical", failed, None, None, message)])


def _train(ctx: Context, cycle: Cycle, spec: RetrainSpec, lease: Lease, report: Report) -> Cycle:
    """Record the data the cycle trains on: the dataset (its newest version when the pipeline runs), or with
    `data: feedback` a version of it built now from the deployment's labelled requests up to the cycle's start
    (built again after a restart, the same rows make no second version)."""
    from shipyard.pipelines.lifecycle import lifecycle_spec

    data = lifecycle_spec(ctx).data.dataset
    if spec.data == "latest":
        report(f"cycle {cycle.id}: training on {data} (standard pipeline, not promoted)")
        return advance(ctx, cycle.id, "training", {"data": data}, expect="triggered", lease=lease)
    from shipyard.data.versions import DATASET_VERSION
    from shipyard.serving.feedback_data import build_feedback_version
    from shipyard.store.lineage import Node

    error = (f"deployment '{cycle.deployment}' served no model when the cycle began, so none of its requests "
             "has feedback") if cycle.champion is None else None
    if cycle.champion is not None:
        try:
            built = build_feedback_version(ctx, cycle.deployment, cycle.champion.split("/")[0], spec.feedback_data,
                                           until_ms=cycle.created, note=f"retraining cycle {cycle.id}",
                                           where=f"retrain.{cycle.deployment}.feedback")
        except ShipyardError as exc:
            error = exc.message
    if error is not None:
        report(f"cycle {cycle.id}: no training data from feedback: {error}")
        return advance(ctx, cycle.id, "failed", {"data": "feedback", "error": error}, expect="triggered",
                       lease=lease, reason=f"no training data from feedback: {error}")
    report(f"cycle {cycle.id}: training on {built.version}, {'built' if built.created else 'already built'} from "
           f"{built.feedback_rows} labelled rows (standard pipeline, not promoted)")
    return advance(ctx, cycle.id, "training", {"data": built.version, "feedback": built.to_dict()},
                   expect="triggered", lease=lease, outputs=[Node(DATASET_VERSION, built.version)])


def _register(ctx: Context, cycle: Cycle, spec: RetrainSpec, lease: Lease, report: Report) -> Cycle:
    """Run the standard pipeline on the data `training` recorded (again, after a restart: its cache makes the
    steps that finished free), then record the challenger it registered and gated."""
    from shipyard.pipelines.lifecycle import run_standard
    from shipyard.store.lineage import Node

    try:
        result = run_standard(ctx, promote=False, data=(cycle.evidence.get("training") or {}).get("data"))
        outcome = result.output("gate_and_promote")
    except ShipyardError as exc:
        report(f"cycle {cycle.id}: training failed: {exc.message}")
        return advance(ctx, cycle.id, "failed", {"error": exc.message}, expect="training", lease=lease,
                       reason=f"training failed: {exc.message}")
    challenger = str(outcome["version"])
    evidence = {"run": result.run_id, "version": challenger, "gates": outcome.get("gates") or {}}
    if challenger == cycle.champion:
        return advance(ctx, cycle.id, "failed", evidence, expect="training", lease=lease, run_id=result.run_id,
                       reason=f"the pipeline produced {challenger}, the version serving already: no new data?")
    report(f"cycle {cycle.id}: registered {challenger} (run {result.run_id[:8]})")
    return advance(ctx, cycle.id, "registered", evidence, expect="training", challenger=challenger,
                   run_id=result.run_id, outputs=[Node("run", result.run_id), Node("model_version", challenger)],
                   lease=lease)


def _gate(ctx: Context, cycle: Cycle, spec: RetrainSpec, lease: Lease, report: Report) -> Cycle:
    """Nothing is rolled out that did not pass its gates (against the champion as baseline, as they declare)."""
    from shipyard.gates.promotion import check_promotion

    assert cycle.challenger is not None
    state = check_promotion(ctx, cycle.challenger)
    evidence = {"gates": state.gates, "problems": [p for p in state.problems if p.startswith("gate")]}
    if evidence["problems"] or not state.gates:
        why = "; ".join(evidence["problems"]) or f"no gates are configured for {cycle.challenger.split('/')[0]}"
        report(f"cycle {cycle.id}: {cycle.challenger} is not rolled out: {why}")
        return advance(ctx, cycle.id, "failed", evidence, expect="registered", lease=lease,
                       reason=f"gates: {why}")
    report(f"cycle {cycle.id}: gates passed: " + ", ".join(f"{g} {s}" for g, s in state.gates.items()))
    return advance(ctx, cycle.id, "gated", evidence, expect="registered", lease=lease)


def _approve_or_roll_out(ctx: Context, cycle: Cycle, spec: RetrainSpec, lease: Lease, report: Report) -> Cycle:
    if spec.approval:
        from shipyard.models.reviews import latest_review, request_review

        # A review requested already — before a restart, or by another deployment's cycle rolling out the same
        # challenger (deployments that retrained together share the pipeline's) — is waited for, not asked again.
        review = latest_review(ctx, str(cycle.challenger), "rollout")
        if review is None or review.status != "requested":
            review = request_review(ctx, str(cycle.challenger), "rollout",
                                    notes=f"retraining cycle {cycle.id} of deployment {cycle.deployment}")
        report(f"cycle {cycle.id}: waiting for `shipyard review approve {cycle.challenger} --kind rollout`")
        return advance(ctx, cycle.id, "awaiting_approval", {"review": review.kind, "requested_by": review.requested_by},
                       expect="gated", lease=lease)
    return _roll_out(ctx, cycle, lease, report, expect="gated")


def _approved(ctx: Context, cycle: Cycle, spec: RetrainSpec, lease: Lease, report: Report) -> Cycle:
    from shipyard.models.reviews import latest_review

    found = latest_review(ctx, str(cycle.challenger), "rollout")
    status = found.status if found is not None else "requested"
    if status == "rejected":
        return advance(ctx, cycle.id, "failed", {"review": status}, expect="awaiting_approval", lease=lease,
                       reason="the rollout was rejected in review")
    if status != "approved":
        return cycle  # still waiting
    return _roll_out(ctx, cycle, lease, report, expect="awaiting_approval")


def _roll_out(ctx: Context, cycle: Cycle, lease: Lease, report: Report, *, expect: str) -> Cycle:
    """The challenger as the deployment's canary at its analysis policy's first step; later passes judge it."""
    from shipyard.deployments.analysis import analysis_policy
    from shipyard.policy.deploy import deployment_spec
    from shipyard.serving.canary import start_canary

    challenger = cycle.challenger
    assert challenger is not None
    declared = deployment_spec(ctx.policy.document(), cycle.deployment)  # routed by its key, when it has one
    revision = start_canary(ctx, cycle.deployment, challenger, analysis_policy(ctx, cycle.deployment),
                            sticky_by=declared.sticky_by if declared is not None else None, report=report)
    return advance(ctx, cycle.id, "canary", {"model": challenger, "revision": revision.revision}, expect=expect,
                   lease=lease)


def _canary(ctx: Context, cycle: Cycle, spec: RetrainSpec, lease: Lease, report: Report) -> Cycle:
    """One look at the canary, by the deployment's automated analysis: it waits for evidence (the cycle stays
    here until the next pass), advances a step, or ends promoted or rolled back. What the deployment serves is
    read afresh each time, so a controller that restarts (or takes over) mid-canary carries on where the last
    one stopped; a canary changed by hand (promoted, rolled back) is recorded as it ended."""
    from shipyard.deployments.analysis import analysis_policy
    from shipyard.deployments.revisions import DEPLOYMENT_REVISION, get_deployment
    from shipyard.serving.canary import canary_step
    from shipyard.store.lineage import Node

    current = get_deployment(ctx, cycle.deployment).current
    canary = current.canary
    decision = None
    if canary is not None and canary.version_id == cycle.challenger:
        over = (now_ms() - cycle.updated) / 1000 > spec.canary_timeout  # updated: when the canary began
        current, decision = canary_step(
            ctx, cycle.deployment, analysis_policy(ctx, cycle.deployment), current,
            (now_ms() - current.created) / 1000, report=lambda line: report(f"cycle {cycle.id}: {line}"),
            timed_out=f"no decision within retrain.{cycle.deployment}.canary_timeout ({spec.canary_timeout:.0f} s)"
            if over else None)
        if decision in ("wait", "advance"):
            return cycle
    primary = current.primary
    promoted = primary is not None and primary.version_id == cycle.challenger and current.canary is None
    if decision is None and current.canary is None and current.revision > cycle.evidence["canary"]["revision"]:
        # the analysis ended the canary and the controller stopped before it recorded so: that is no change by hand
        made = (current.analysis or {}).get("decision")
        kept = primary is not None and primary.version_id == cycle.champion
        decision = made if made == "promote" and promoted or made == "rollback" and kept else None
    evidence = {"revision": current.revision, "analysis": current.analysis,
                **({} if decision else {"settled": "the deployment was changed outside the cycle"})}
    if promoted:
        evidence["champion"] = _crown(ctx, cycle, report)
    return advance(ctx, cycle.id, "promoted" if promoted else "rolled_back", evidence, expect="canary",
                   reason=None if promoted else f"the canary analysis rolled {cycle.challenger} back; "
                                                f"{cycle.champion} keeps serving" if decision else
                   f"the canary of {cycle.challenger} was ended outside the cycle; "
                   f"{primary.version_id if primary else 'nothing'} serves",
                   outputs=[Node(DEPLOYMENT_REVISION, current.id)], lease=lease)


def _crown(ctx: Context, cycle: Cycle, report: Report) -> str:
    """The registry follows the deployment: the promoted challenger becomes the model's champion (through the
    gated promotion, so its gates and reviews are checked again), and what happened is kept as evidence."""
    from shipyard.errors import GateFailed
    from shipyard.gates.promotion import promote
    from shipyard.models.registry import get_model_version

    challenger = str(cycle.challenger)
    model = challenger.split("/")[0]
    try:
        if get_model_version(ctx, f"{model}@champion").version_id == challenger:
            return f"{challenger} is {model}@champion"
    except ShipyardError:
        pass  # no champion yet
    try:
        promote(ctx, challenger, reason=f"retraining cycle {cycle.id}: gates passed and the canary of "
                                        f"{cycle.deployment} promoted it")
    except GateFailed as exc:
        report(f"cycle {cycle.id}: {challenger} serves, but {model}@champion stays: {exc.message}")
        return f"{model}@champion not moved: {exc.message}"
    return f"{challenger} is {model}@champion"


_STEPS: dict[str, Callable[..., Cycle]] = {"triggered": _train, "training": _register, "registered": _gate,
                                           "gated": _approve_or_roll_out, "awaiting_approval": _approved,
                                           "canary": _canary}


def begin(ctx: Context, decision: Decision, lease: Lease) -> Cycle:
    """Start the cycle a decision calls for, naming the version the deployment serves now as the champion."""
    from shipyard.deployments.revisions import get_deployment

    assert decision.trigger is not None
    primary = get_deployment(ctx, decision.deployment).current.primary
    champion = f"{primary.model}/{primary.version}" if primary is not None else None
    return start_cycle(ctx, decision.deployment, decision.trigger["monitor"], decision.trigger, champion,
                       lease=lease)


@dataclass
class Outcome:
    """What one pass did for one deployment."""

    deployment: str
    decision: str  # why a cycle started, or why not
    cycle: Cycle | None = None
    error: str | None = None
    held_elsewhere: bool = False  # another controller holds the deployment's lease

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "decision": self.decision, "error": self.error,
                "held_elsewhere": self.held_elsewhere,
                "cycle": self.cycle.to_dict() if self.cycle is not None else None}


def lease_name(deployment: str) -> str:
    """The lease a controller holds while it acts for `deployment`."""
    return f"{LEASE}:{deployment}"


def watch_once(ctx: Context, *, holder: str | None = None, report: Report = print,
               release: bool = True, only: list[str] | None = None) -> list[Outcome]:
    """One pass over every deployment with a `retrain:` policy: under that deployment's lease, run its monitor,
    then resume its open cycle or start one when due. A deployment whose lease another controller holds is
    left to it; several controllers against one store share the deployments this way, each acted on by one
    at a time. No step blocks the pass (a canary is looked at once per pass), and a failure in one deployment
    is reported with it and does not stop the others. The leases taken are given up when the pass ends, not
    after each deployment, so a controller passing behind this one leaves the deployments acted on to it rather
    than running their monitors again; with `release=False` they stay with `holder` until they expire (a
    watching loop keeps them from pass to pass; `release_all` gives them up when it ends). `only` limits the
    pass to those deployments."""
    from shipyard.monitoring.monitors import run_monitor
    from shipyard.policy.retrain import declared_retraining, retrain_spec
    from shipyard.store import leases

    me = holder or leases.holder_id()
    outcomes: list[Outcome] = []
    document = ctx.policy.document()
    taken: list[Lease] = []
    try:
        for name in declared_retraining(document):
            if only is not None and name not in only:
                continue
            spec = retrain_spec(document, name)
            assert spec is not None
            outcome = Outcome(name, "")
            outcomes.append(outcome)
            lease = leases.acquire(ctx.store, ctx.actor, lease_name(name), me, LEASE_SECONDS)
            if lease is None:
                held = leases.current(ctx.store, lease_name(name))
                outcome.decision = f"another controller acts for it ({held.holder if held else 'unknown'})"
                outcome.held_elsewhere = True
                continue
            taken.append(lease)
            try:
                with leases.kept(ctx.store, lease, LEASE_SECONDS):
                    cycle = open_cycle(ctx, name)
                    if cycle is None:
                        run_monitor(ctx, spec.monitor or name)
                        decision = due(ctx, name, spec)
                        outcome.decision = decision.reason
                        if decision.start:
                            report(f"{name}: retraining ({decision.reason})")
                            cycle = begin(ctx, decision, lease)
                    else:
                        outcome.decision = f"resuming cycle {cycle.id} ({cycle.state})"
                    if cycle is not None:
                        outcome.cycle = drive(ctx, cycle, spec, lease, report=report)
            except ShipyardError as exc:
                outcome.error = exc.message
                report(f"{name}: {exc.message}")
    finally:
        for lease in taken if release else []:
            leases.release(ctx.store, ctx.actor, lease)
    return outcomes


def release_all(ctx: Context, holder: str) -> None:
    """Give up the deployments' leases `holder` still has (a watching loop that ends)."""
    from shipyard.policy.retrain import declared_retraining
    from shipyard.store import leases

    for name in declared_retraining(ctx.policy.document()):
        held = leases.current(ctx.store, lease_name(name))
        if held is not None and held.holder == holder and held.expires > now_ms():
            leases.release(ctx.store, ctx.actor, held)
