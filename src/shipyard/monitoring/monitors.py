"""Monitors: `shipyard monitor run NAME` reads the window of the prediction log that monitor.NAME declares,
compares it with the model version's training data (data and prediction drift), scores it on the feedback
received (performance, concept drift), measures its health, stores the report with its lineage, and turns
the results into alerts."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from shipyard.context import Context
from shipyard.errors import NotFoundError, did_you_mean
from shipyard.store import lineage
from shipyard.store.db import now_ms
from shipyard.store.tables import monitor_reports

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.models.records import ModelVersion
    from shipyard.monitoring.alerts import Finding, Notification
    from shipyard.monitoring.windows import Window
    from shipyard.policy.monitor import MonitorSpec

log = logging.getLogger("shipyard.monitoring")
MONITOR_REPORT = lineage.register_kind("monitor_report", "a monitor's report over a window of the prediction log")
#: How many earlier reports of a monitor late feedback may still update.
LATE_LABEL_REPORTS = 50


@dataclass
class MonitorRun:
    report: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    updated_reports: list[int] = field(default_factory=list)  # earlier reports late feedback changed

    @property
    def id(self) -> int:
        return int(self.report["id"])

    @property
    def firing(self) -> list[Finding]:
        return [f for f in self.findings if f.breached]


def monitor_spec(ctx: Context, name: str) -> MonitorSpec:
    """monitor.NAME of shipyard.yaml; NotFoundError naming the declared monitors otherwise."""
    from shipyard.policy.monitor import declared_monitors
    from shipyard.policy.monitor import monitor_spec as spec_of

    document = ctx.policy.document()
    spec = spec_of(document, name)
    if spec is None:
        known = declared_monitors(document)
        raise NotFoundError(f"No monitor '{name}' in shipyard.yaml.{did_you_mean(name, known)} "
                            + (f"Monitors: {', '.join(known)}." if known else
                               "Declare one under monitor: (see docs/monitoring.md)."), monitor=name)
    return spec


def target_version(ctx: Context, spec: MonitorSpec) -> ModelVersion:
    """The model version a monitor watches: the deployment's primary route, or the model reference."""
    from shipyard.deployments.revisions import get_deployment
    from shipyard.models.registry import get_model_version

    if spec.deployment is not None:
        routes = get_deployment(ctx, spec.deployment).routes
        route = next((r for r in routes if r.role == spec.route or (r.role == "variant" and r.label == spec.route)),
                     None)
        if route is None and spec.route == "primary" and routes and routes[0].role == "variant":
            route = routes[0]  # an A/B deployment has no primary: its first variant
        if route is None:
            serving = ", ".join(f"{r.role if r.role != 'variant' else r.label} {r.model}/{r.version}" for r in routes)
            raise NotFoundError(f"Deployment '{spec.deployment}' has no {spec.route} route now"
                                + (f" (it routes: {serving})" if serving else " (it routes to no model)")
                                + "; set the monitor's route to one it has, or deploy one "
                                  f"(`shipyard deploy create {spec.deployment} --model MODEL`).",
                                deployment=spec.deployment)
        return get_model_version(ctx, f"{route.model}/{route.version}")
    assert spec.model is not None
    return get_model_version(ctx, spec.model)


def run_monitor(ctx: Context, name: str, *, until: float | None = None) -> MonitorRun:
    """Compute monitor NAME's report now (or over the window ending at `until`), store it and judge its alerts."""
    from shipyard.monitoring.windows import read_window

    spec = monitor_spec(ctx, name)
    version = target_version(ctx, spec)
    inputs = [c["name"] for c in (version.signature or {}).get("inputs") or []]
    names = list(dict.fromkeys([*inputs, *(spec.drift.columns or [])])) or None  # None: every logged input
    window = read_window(ctx, version.model, version.version, deployment=spec.deployment, last=spec.window.last,
                         rows=spec.window.rows, until=until, features=names,
                         probabilities=spec.performance is not None)
    report = build_report(ctx, name, spec, version, window)
    findings = judge(spec, report)
    report["findings"] = [f.to_dict() for f in findings]
    report["status"] = status(report, findings)
    report_id = store_report(ctx, name, spec, version, window, report)
    run = MonitorRun(report, findings)
    run.updated_reports = refresh_late_labels(ctx, name, spec, before=report_id)
    from shipyard.monitoring.alerts import evaluate

    run.notifications = evaluate(ctx, name, spec, report_id, findings)
    return run


def build_report(ctx: Context, name: str, spec: MonitorSpec, version: ModelVersion, window: Window) -> dict[str, Any]:
    from shipyard.monitoring.health import health

    notes: list[str] = []
    report: dict[str, Any] = {
        "monitor": name, "created": None,
        "target": {"deployment": spec.deployment, "model": version.model, "version": version.version},
        "window": window.to_dict(), "reference": None, "data_drift": None, "prediction_drift": None,
        "distributions": {}, "performance": None,
        "health": health(window, failures_logged=spec.deployment is not None).to_dict(), "notes": notes,
    }

    if spec.health is not None:
        report["health"]["limits"] = spec.health.model_dump(exclude={"severity"}, exclude_none=True)
    served = len(window.served)
    if window.rows == 0:
        notes.append("insufficient data: the window holds no prediction")
    elif served < spec.min_rows:
        notes.append(f"insufficient data: {served} answered rows in the window, {spec.min_rows} needed for drift "
                     f"(monitor.{name}.min_rows)")
    reference = spec.reference or version.dataset_version
    if reference is None:
        notes.append(f"no reference: {version.version_id} names no training dataset; set monitor.{name}.reference "
                     "to a dataset version")
    elif served >= spec.min_rows:
        drift_section(ctx, spec, version, window, reference, report)
    if spec.performance is not None:
        report["performance"] = performance_section(ctx, spec, version, window)
    if spec.deployment is None and spec.health is not None and spec.health.max_error_rate is not None:
        notes.append("error rate not measured: failed requests are logged for deployments only (watch the "
                     "deployment, `deployment: NAME`, to judge it)")
    return report


def drift_section(ctx: Context, spec: MonitorSpec, version: ModelVersion, window: Window, reference: str,
                  report: dict[str, Any]) -> None:
    """Data drift of the features and drift of the predictions, with the distributions the report draws."""
    from shipyard.data.versions import get_version
    from shipyard.monitoring.drift import sketch_drift
    from shipyard.monitoring.reference import distribution, reference_predictions, reference_sketch
    from shipyard.monitoring.sketch import NOT_COMPARED, ReferenceSketch

    notes = report["notes"]
    wanted = list(spec.drift.columns or window.features)
    schema = get_version(ctx, reference).table_schema or []
    available = {str(c["name"]) for c in schema}
    absent = [c for c in wanted if available and c not in available]
    if absent:
        notes.append(f"not in the reference {reference}, so not compared: {', '.join(absent)} (set "
                     f"monitor.{report['monitor']}.reference or drift.columns)")
    columns = [c for c in wanted if c not in absent]
    sketch = reference_sketch(ctx, reference, columns=columns)
    current = window.inputs()
    methods = _small_window(sketch, len(current), _without(spec.drift.methods), columns)
    drift = sketch_drift(sketch, current, columns=columns, methods=methods,
                         thresholds=_without(spec.drift.thresholds), correction=spec.drift.correction,
                         share=spec.drift.share)
    report["reference"] = {"dataset": reference, "rows": sketch.rows, "source": sketch.source}
    report["data_drift"] = drift.to_dict()
    for column in columns:
        if column in current.columns and sketch.columns[column].kind not in NOT_COMPARED:
            report["distributions"][column] = distribution(sketch.columns[column], current[column])
    if not spec.drift.predictions:
        return
    predicted = reference_predictions(ctx, version, reference)
    if predicted is None:
        notes.append(f"prediction drift not judged: {reference} lacks some of {version.version_id}'s inputs, so "
                     "its predictions on the reference cannot be made")
        return
    values = _scalar_predictions(window.predictions())
    baseline = ReferenceSketch({"prediction": predicted}, predicted.count + predicted.nulls, "data", reference)
    result = sketch_drift(baseline, values.to_frame("prediction"),
                          methods=_small_window(baseline, len(values), _only(spec.drift.methods), ["prediction"]),
                          thresholds=_only(spec.drift.thresholds))
    report["prediction_drift"] = result.columns[0].to_dict()
    report["distributions"]["prediction"] = distribution(predicted, values)


def _small_window(sketch: Any, rows: int, methods: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """A window of at most 1,000 rows is judged by the statistical tests, whatever the reference's size: the
    distances' fixed threshold is calibrated for large samples, and on a few hundred rows unshifted data alone
    reaches it. Methods the monitor names are kept."""
    from shipyard.monitoring.drift import default_method
    from shipyard.monitoring.sketch import NOT_COMPARED, SMALL_REFERENCE

    if rows > SMALL_REFERENCE:
        return methods
    chosen = dict(methods)
    for column in columns:
        kind = sketch.columns[column].kind
        if column not in chosen and kind not in NOT_COMPARED:
            chosen[column] = default_method(kind, min(rows, sketch.columns[column].count))
    return chosen


def _without(given: dict[str, Any], name: str = "prediction") -> dict[str, Any]:
    return {k: v for k, v in given.items() if k != name}


def _only(given: dict[str, Any], name: str = "prediction") -> dict[str, Any]:
    return {name: given[name]} if name in given else {}


def _scalar_predictions(values: pd.Series) -> pd.Series:
    """Predictions as one value per row (a model answering lists per row is compared on its first value)."""
    if len(values) and isinstance(values.iloc[0], list | tuple):
        return values.map(lambda v: v[0] if len(v) else None)
    return values


def performance_section(ctx: Context, spec: MonitorSpec, version: ModelVersion, window: Window) -> dict[str, Any]:
    """Metrics on the window's rows that have feedback, with confidence intervals and concept-drift detections."""
    from shipyard.monitoring.performance import detect_drift, error_stream, performance
    from shipyard.serving.feedback import labelled

    assert spec.performance is not None
    joined = labelled(ctx, window.frame, version.model)
    task = version.details.get("task")
    classes = version.details.get("classes")
    result = performance(joined, task if task in ("classification", "regression") else None, classes=classes)
    section = result.to_dict()
    section["window_rows"] = len(window.served)
    stream = error_stream(joined, result.task, classes) if result.task is not None and len(joined) else None
    if stream is not None and len(stream) >= spec.performance.min_labelled:
        detectors = [d for d in spec.performance.detectors if not (d == "ddm" and result.task == "regression")]
        detections = detect_drift(stream["error"].to_numpy(), detectors=detectors,
                                  timestamps=stream["timestamp"].tolist(), request_ids=stream["request_id"].tolist())
        section["detections"] = [d.to_dict() for d in detections]
    else:
        section["detections"] = []
    return section


def judge(spec: MonitorSpec, report: dict[str, Any]) -> list[Finding]:
    """The report against the monitor's limits: one finding per rule (breached None: not judged this time)."""
    from shipyard.monitoring.judging import findings

    return findings(spec, report)


def status(report: dict[str, Any], found: list[Finding]) -> str:
    """alert when a rule is breached; insufficient data when neither drift nor performance could be judged."""
    if any(f.breached for f in found):
        return "alert"
    judged = {f.rule for f in found if f.breached is not None}
    if not judged & {"data_drift", "prediction_drift", "performance", "concept_drift"}:
        return "insufficient data"
    return "ok"


def store_report(ctx: Context, name: str, spec: MonitorSpec, version: ModelVersion, window: Window,
                 report: dict[str, Any]) -> int:
    """Store the report, with lineage edges from what it judged: the deployment revision, the model version and
    the reference dataset version (the window's bounds are in the report)."""
    from shipyard.data.versions import DATASET_VERSION
    from shipyard.models.registry import MODEL_VERSION

    created = now_ms()
    report["created"] = _iso_ms(created)
    drift = report["data_drift"]
    row = {"monitor": name, "model": version.model, "version": version.version, "deployment": spec.deployment,
           "window_start": _ms(window.start), "window_end": _ms(window.end), "rows": window.rows,
           "reference": (report["reference"] or {}).get("dataset"), "status": report["status"],
           "drift_share": drift["drift_share"] if drift else None, "created": created, "created_by": ctx.actor}
    payload = {"model_version": version.version_id, "status": report["status"], "rows": window.rows}
    with ctx.store.mutation(ctx.actor, "monitor.run", "monitor", name, payload) as conn:
        inserted = conn.execute(monitor_reports.insert().values(**row, report="{}")).inserted_primary_key
        assert inserted is not None
        report_id = inserted[0]
        report["id"] = int(report_id)
        conn.execute(monitor_reports.update().where(monitor_reports.c.id == report_id)
                     .values(report=json.dumps(report, default=str)))
        node = lineage.Node(MONITOR_REPORT, str(report_id))
        edges = [(lineage.Node(MODEL_VERSION, version.version_id), node, "input")]
        if row["reference"]:
            edges.append((lineage.Node(DATASET_VERSION, row["reference"]), node, "input"))
        if spec.deployment is not None:
            from shipyard.deployments.revisions import DEPLOYMENT_REVISION, find_deployment

            current = find_deployment(conn, spec.deployment).current
            edges.append((lineage.Node(DEPLOYMENT_REVISION, current.id), node, "input"))
        lineage.add_edges(conn, edges)
        payload["report"] = int(report_id)
    return int(report_id)


def refresh_late_labels(ctx: Context, name: str, spec: MonitorSpec, *, before: int) -> list[int]:
    """Recompute the performance of earlier reports whose windows received feedback after they were computed."""
    from shipyard.models.registry import get_model_version
    from shipyard.monitoring.windows import read_window
    from shipyard.serving.feedback import feedback_since

    if spec.performance is None:
        return []
    c = monitor_reports.c
    with ctx.store.read() as conn:
        rows = conn.execute(select(c.id, c.model, c.version, c.window_start, c.window_end, c.created, c.updated,
                                   c.report).where(c.monitor == name, c.id < before, c.window_start.is_not(None))
                            .order_by(c.id.desc()).limit(LATE_LABEL_REPORTS)).all()
    updated = []
    for row in rows:
        if row.window_start is None or row.window_end is None:
            continue
        since = row.updated or row.created
        if not feedback_since(ctx, row.model, since):
            continue
        version = get_model_version(ctx, f"{row.model}/{row.version}")
        previous = json.loads(row.report)
        asked = previous.get("window") or {}
        if asked.get("kind") == "count":  # the same rows: the newest N up to the window's last one
            window = read_window(ctx, row.model, row.version, deployment=spec.deployment, rows=int(asked["size"]),
                                 until=row.window_end / 1000 + 0.001, features=None)
        else:
            window = read_window(ctx, row.model, row.version, deployment=spec.deployment,
                                 last=(row.window_end - row.window_start) / 1000 + 0.002,
                                 until=row.window_end / 1000 + 0.001, features=None)
        section = performance_section(ctx, spec, version, window)
        if previous.get("performance") == section:
            continue
        previous["performance"] = section
        found = judge(spec, previous)  # the report's own verdict follows its new numbers; alerts follow the newest
        previous["findings"] = [f.to_dict() for f in found]
        previous["status"] = status(previous, found)
        stamp = now_ms()
        previous["updated"] = _iso_ms(stamp)
        with ctx.store.mutation(ctx.actor, "monitor.report.update", "monitor_report", str(row.id),
                                {"reason": "late feedback", "labelled": section.get("labelled"),
                                 "status": previous["status"]}) as conn:
            conn.execute(monitor_reports.update().where(c.id == row.id)
                         .values(report=json.dumps(previous, default=str), updated=stamp, status=previous["status"]))
        updated.append(int(row.id))
    return updated


def reports(ctx: Context, name: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The monitor's stored reports, newest first."""
    c = monitor_reports.c
    with ctx.store.read() as conn:
        rows = conn.execute(select(c.report).where(c.monitor == name).order_by(c.id.desc()).limit(limit)).all()
    return [json.loads(r.report) for r in rows]


def get_report(ctx: Context, name: str, report_id: int | None = None) -> dict[str, Any]:
    c = monitor_reports.c
    query = select(c.report).where(c.monitor == name)
    query = query.where(c.id == report_id) if report_id is not None else query.order_by(c.id.desc()).limit(1)
    with ctx.store.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        if report_id is None:
            monitor_spec(ctx, name)  # not declared either: say so, with the declared ones
        which = f"report {report_id} of monitor '{name}'" if report_id is not None else f"report of monitor '{name}'"
        raise NotFoundError(f"No {which}; `shipyard monitor run {name}` computes one.", monitor=name)
    return dict(json.loads(row.report))


def latest_reports(ctx: Context) -> list[dict[str, Any]]:
    """The newest report of every monitor that has one."""
    from sqlalchemy import func

    c = monitor_reports.c
    newest = select(func.max(c.id)).group_by(c.monitor).scalar_subquery()
    with ctx.store.read() as conn:
        rows = conn.execute(select(c.report).where(c.id.in_(newest)).order_by(c.monitor)).all()
    return [json.loads(r.report) for r in rows]


def history(ctx: Context, name: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Summaries of the monitor's reports, oldest first: the scores over windows the HTML report draws."""
    out = []
    for report in reversed(reports(ctx, name, limit=limit)):
        drift = report.get("data_drift") or {}
        prediction = report.get("prediction_drift") or {}
        metrics = (report.get("performance") or {}).get("metrics") or {}
        out.append({"id": report.get("id"), "created": report.get("created"),
                    "window_end": (report.get("window") or {}).get("end"), "drift_share": drift.get("drift_share"),
                    "scores": {c["column"]: c["score"] for c in drift.get("columns", [])},
                    "prediction_score": prediction.get("score"),
                    "metrics": {k: v.get("value") for k, v in metrics.items() if isinstance(v, dict)},
                    "status": report.get("status")})
    return out


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _iso_ms(ms: int) -> str:
    from shipyard.monitoring.windows import iso

    return iso(ms / 1000) or ""



def covering_monitors(ctx: Context, version: ModelVersion) -> list[tuple[str, MonitorSpec]]:
    """The declared monitors that watch `version` now: through the deployment route they name, or by model
    reference."""
    from shipyard.errors import ShipyardError
    from shipyard.policy.monitor import declared_monitors

    found = []
    for name in declared_monitors(ctx.policy.document()):
        spec = monitor_spec(ctx, name)
        try:
            watches = target_version(ctx, spec).version_id == version.version_id
        except ShipyardError:  # a deployment not created yet, an alias not set: it watches nothing now
            watches = False
        if watches:
            found.append((name, spec))
    return found


def last_report_for(ctx: Context, name: str, model: str, version: int) -> dict[str, Any] | None:
    """The monitor's newest report on that model version that judged its drift (its id, created and status)."""
    c = monitor_reports.c
    with ctx.store.read() as conn:
        row = conn.execute(select(c.id, c.created, c.status).where(
            c.monitor == name, c.model == model, c.version == version, c.drift_share.is_not(None))
            .order_by(c.id.desc()).limit(1)).first()
    return None if row is None else {"id": int(row.id), "created": _iso_ms(row.created), "status": row.status}
