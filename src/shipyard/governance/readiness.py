"""The production-readiness checklist, computed from evidence in the store — never ticked by hand.

Seven items: data, code, model, pipeline, deployment, monitoring, governance. Each is PASS, FAIL or
NOT YET (its building block does not exist yet), with the evidence found or what is missing."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shipyard.context import Context
from shipyard.store.audit import list_events
from shipyard.store.lineage import Node, neighbours

ItemStatus = Literal["PASS", "FAIL", "NOT YET"]
PASS: ItemStatus = "PASS"
FAIL: ItemStatus = "FAIL"
NOT_YET: ItemStatus = "NOT YET"


@dataclass
class Item:
    name: str
    question: str
    status: ItemStatus
    evidence: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class ReadinessReport:
    version_id: str
    items: list[Item]

    @property
    def ready(self) -> bool:
        return all(i.status == PASS for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "ready": self.ready, "items": [asdict(i) for i in self.items]}


def _item(name: str, question: str, evidence: list[str], missing: list[str]) -> Item:
    return Item(name, question, PASS if not missing else FAIL, evidence, missing)


def evaluate(ctx: Context, ref: str) -> ReadinessReport:
    from shipyard.data.checks import latest_validation
    from shipyard.governance.audit import verify_audit
    from shipyard.gates.promotion import check_promotion
    from shipyard.models.registry import get_model_version
    from shipyard.tracking.runs import get_run

    version = get_model_version(ctx, ref)
    vid = version.version_id
    items: list[Item] = []

    # Data: the training data is a versioned dataset, validated against its contract.
    evidence, missing = [], []
    if version.dataset_version:
        evidence.append(f"trained on dataset version {version.dataset_version}")
        check = latest_validation(ctx, version.dataset_version)
        if check is None:
            missing.append(f"{version.dataset_version} was never validated (`shipyard data validate {version.dataset_version}`)")
        elif not check["ok"]:
            missing.append(f"the latest validation of {version.dataset_version} found {check['errors']} error(s)")
        else:
            evidence.append(f"{version.dataset_version} validated: {check['errors']} errors, {check['warnings']} warnings")
    else:
        missing.append("no training dataset version is linked (log_input the data in the training run)")
    items.append(_item("data", "Is the training data versioned and validated?", evidence, missing))

    # Code: the run recorded a commit of a clean tree.
    evidence, missing = [], []
    run = get_run(ctx, version.run_id) if version.run_id else None
    if run is None:
        missing.append("the version was registered outside a run, so no code version is recorded")
    elif not run.git_commit:
        missing.append(f"run {run.run_id[:8]} ran outside a git checkout: no commit recorded")
    else:
        evidence.append(f"run {run.run_id[:8]} at commit {run.git_commit[:12]}")
        if run.git_dirty:
            missing.append("the working tree had uncommitted changes when it ran")
        else:
            evidence.append("working tree clean")
    items.append(_item("code", "Is the code that trained it committed and recorded?", evidence, missing))

    # Model: registered with metrics, signature and environment; gates not failing.
    evidence, missing = [f"registered as {vid} ({version.flavor})"], []
    (evidence if version.metrics else missing).append(
        f"{len(version.metrics)} metrics recorded" if version.metrics else "no metrics recorded with the version")
    (evidence if version.signature else missing).append(
        "input signature recorded" if version.signature else "no input signature (log_model with input_example)")
    packages = version.environment.get("packages") or {}
    (evidence if packages else missing).append(
        f"environment recorded ({len(packages)} packages)" if packages else "no environment recorded")
    promotion = check_promotion(ctx, vid)
    if promotion.gates:
        evidence.append("gates: " + ", ".join(f"{g} {s}" for g, s in promotion.gates.items()))
    missing += [p for p in promotion.problems if p.startswith("gate")]
    items.append(_item("model", "Is the model registered with its metrics, metadata and gate results?", evidence, missing))

    evidence, missing = [], []
    if run is not None and run.tags.get("shipyard.pipeline"):
        evidence.append(f"registered by step {run.name} of pipeline {run.tags['shipyard.pipeline']} "
                        f"(run {run.parent_id[:8] if run.parent_id else run.run_id[:8]})")
        evidence.append("its steps are content-addressed and cached, so a re-run reproduces it")
    else:
        missing.append("it was not produced by a pipeline run (`shipyard run` trains through the standard pipeline)")
    items.append(_item("pipeline", "Was it produced reproducibly by a pipeline run?", evidence, missing))
    evidence, missing = _deployment(ctx, version.model, version.version)
    items.append(_item("deployment", "Is a deployment strategy defined, with a rollback target?", evidence, missing))
    evidence, missing = _monitoring(ctx, version)
    items.append(_item("monitoring", "Are drift and performance alerts configured?", evidence, missing))

    # Governance: a model card, lineage back to run and data, an intact audit chain, reviews.
    evidence, missing = [], []
    with ctx.store.read() as conn:
        card = list_events(conn, action="model.card", object_id=vid, limit=1)
        edges = [node.kind for node, _ in neighbours(conn, Node("model_version", vid), upstream=True)]
    (evidence if card else missing).append(
        "model card generated" if card else f"no model card (`shipyard models card {vid}`)")
    if "run" in edges and "dataset_version" in edges:
        evidence.append("lineage links it to its run and its training data")
    else:
        missing.append("lineage does not link it to both a run and a dataset version")
    chain = verify_audit(ctx)
    (evidence if chain.ok else missing).append(
        f"audit chain verified ({chain.events_checked} events)" if chain.ok
        else f"audit chain broken at event {chain.broken_seq}: {chain.reason}")
    for kind, status in promotion.reviews.items():
        (evidence if status == "approved" else missing).append(f"{kind} review {status}")
    items.append(_item("governance", "Is it documented, traceable and reviewed?", evidence, missing))
    return ReadinessReport(vid, items)


def _monitoring(ctx: Context, version: Any) -> tuple[list[str], list[str]]:
    """A monitor declared in shipyard.yaml watches the version with drift (against a reference) and performance
    limits, its alerts go to a webhook or Slack (not only the log), and it has run on this version."""
    from shipyard.monitoring.monitors import covering_monitors, last_report_for

    monitors = covering_monitors(ctx, version)
    if not monitors:
        return [], [f"no monitor watches {version.version_id} (declare one under monitor: in shipyard.yaml, for a "
                    "deployment serving it or for the model)"]
    best: tuple[list[str], list[str]] | None = None
    for name, spec in monitors:
        evidence, missing = [f"monitor {name} watches it"], list[str]()
        reference = spec.reference or version.dataset_version
        (evidence if reference else missing).append(
            f"data and prediction drift against {reference}" if reference else
            f"monitor {name} has no drift reference (set monitor.{name}.reference or link the training data)")
        perf = spec.performance
        if perf is not None and (perf.min is not None or perf.max is not None):
            evidence.append(f"performance limit on {perf.metric or 'the default metric'} "
                            f"({'min ' + str(perf.min) if perf.min is not None else 'max ' + str(perf.max)}) "
                            f"and detectors {', '.join(perf.detectors) or 'none'}")
        else:
            missing.append(f"monitor {name} sets no performance limit (monitor.{name}.performance.min or .max)")
        routed = [s.kind for s in spec.sinks if s.kind != "log"]
        (evidence if routed else missing).append(
            f"alerts go to {', '.join(routed)}" if routed else
            f"monitor {name} sends alerts only to the log (add a webhook or slack sink)")
        last = last_report_for(ctx, name, version.model, version.version)
        (evidence if last else missing).append(
            f"report #{last['id']} at {last['created']}: {last['status']}" if last else
            f"monitor {name} has no report on {version.version_id} that judged drift or performance "
            f"(`shipyard monitor run {name}` once traffic and feedback came in)")
        if best is None or len(missing) < len(best[1]):
            best = (evidence, missing)
    assert best is not None
    return best


def _deployment(ctx: Context, model: str, number: int) -> tuple[list[str], list[str]]:
    """A deployment serves the version, shipyard.yaml declares its strategy (deploy.NAME), and it has an
    earlier revision to roll back to."""
    from shipyard.deployments.revisions import find_revision, routed_to
    from shipyard.policy.deploy import deployment_spec

    vid = f"{model}/{number}"
    with ctx.store.read() as conn:
        serving = [(name, revision, route) for name, revision, route in routed_to(conn, model, number) if route.answers]
        targets = {}
        for name, revision, _ in serving:
            current = find_revision(conn, name, revision)
            base = (current.restores if current is not None and current.restores else revision) - 1
            target = find_revision(conn, name, base) if base >= 1 else None
            targets[name] = target if target is not None and target.strategy != "deleted" else None
    if not serving:
        return [], [f"no deployment serves {vid} (`shipyard deploy create NAME --model {vid}`, or a canary of it)"]
    evidence, missing = [], []
    document = ctx.policy.document()
    for name, revision, route in serving:
        evidence.append(f"deployment '{name}' revision {revision} serves it as {route.label} ({route.weight}%)")
        spec = deployment_spec(document, name)
        if spec is None:
            missing.append(f"{document.name} declares no strategy for deployment '{name}' (add deploy.{name} with "
                           "its strategy, canary steps and analysis limits)")
        else:
            evidence.append(f"deploy.{name} declares strategy {spec.strategy}"
                            + (f", steps {spec.steps}" if spec.strategy == "canary" else ""))
        target = targets[name]
        if target is None:
            missing.append(f"deployment '{name}' has no rollback target: revision {revision} is its first")
        else:
            shown = ", ".join(f"{r.label} {r.version_id}" for r in target.routes)
            evidence.append(f"rollback target of '{name}': revision {target.revision} ({shown})")
    return evidence, missing


_STYLE = {PASS: "#1a7f37", FAIL: "#cf222e", NOT_YET: "#6e7781"}


def render_html(report: ReadinessReport) -> str:
    rows = []
    for item in report.items:
        notes = "".join(f"<li>{html.escape(e)}</li>" for e in item.evidence)
        notes += "".join(f"<li class='missing'>{html.escape(m)}</li>" for m in item.missing)
        rows.append(
            f"<tr><td><b>{html.escape(item.name)}</b><br><span class='q'>{html.escape(item.question)}</span></td>"
            f"<td><span class='badge' style='background:{_STYLE[item.status]}'>{html.escape(item.status)}</span></td>"
            f"<td><ul>{notes}</ul></td></tr>"
        )
    verdict = "Ready for production" if report.ready else "Not ready for production"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Readiness of {html.escape(report.version_id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328}}table{{border-collapse:collapse;width:100%}}
td{{border-top:1px solid #d0d7de;padding:.6rem;vertical-align:top}}.q{{color:#57606a;font-size:.9em}}
.badge{{color:#fff;padding:.15rem .5rem;border-radius:4px;font-weight:600;white-space:nowrap}}
.missing{{color:#cf222e}}ul{{margin:0;padding-left:1.2rem}}</style></head><body>
<h1>Production readiness of {html.escape(report.version_id)}</h1><p><b>{verdict}</b>: computed from the evidence in
the Shipyard store; items whose building block does not exist yet say NOT YET.</p>
<table>{''.join(rows)}</table></body></html>
"""
