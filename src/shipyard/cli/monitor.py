"""`shipyard monitor compare|run|report|list|alerts|ack|silence|unsilence|silences|export`: drift between two
tables, and the monitors of shipyard.yaml with their reports and alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from shipyard.cli.output import console, print_json, table, write_file
from shipyard.cli.workspace import context

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context

app = typer.Typer(help="Monitoring: drift between data, monitors over the prediction log, their reports and "
                       "alerts.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
MonitorName = Annotated[str, typer.Argument(help="A monitor declared under monitor: in shipyard.yaml.")]
#: `monitor run` exits with this when the report broke a rule (an alert fires), like `monitor compare` on drift.
EXIT_ALERT = 3


@app.command("compare")
def compare(
    reference: Annotated[str, typer.Argument(help="The reference: a dataset version (credit@1) or a table file.")],
    current: Annotated[str, typer.Argument(help="The current data: a dataset version (credit@2) or a table file.")],
    column: Annotated[Optional[list[str]], typer.Option(
        "--column", "-c", help="Compare only these columns (repeatable); default: the reference's.")] = None,
    method: Annotated[Optional[list[str]], typer.Option(
        "--method", help="COLUMN=METHOD (ks, chisquare, ztest, wasserstein, jensenshannon, psi, hellinger); "
                         "repeatable.")] = None,
    correction: Annotated[Optional[str], typer.Option(
        "--correction", help="Adjust the tests' p-values across columns: bonferroni or bh.")] = None,
    share: Annotated[float, typer.Option("--share", help="Share of drifted columns that makes the table drift.")]
    = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Compare two tables column by column with the test or distance each column's type and the reference's
    size call for. Exit code 3 when the table drifted."""
    from shipyard.errors import ValidationError
    from shipyard.monitoring.drift import dataset_drift

    methods: dict[str, str] = {}
    for given in method or []:
        name, sep, chosen = given.partition("=")
        if not sep or not name or not chosen:
            raise ValidationError(f"--method {given!r} is not COLUMN=METHOD, e.g. --method income=psi.",
                                  method=given)
        methods[name] = chosen
    ctx = context()
    report = dataset_drift(_table(ctx, reference), _table(ctx, current), columns=column, methods=methods,
                           correction=correction, share=share)
    if as_json:
        print_json({"reference": reference, "current": current, **report.to_dict()})
    else:
        fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
        rows = [[c.column, c.kind, c.method, fmt(c.score), ("p < " if c.is_test else "≥ ") + f"{c.threshold:g}",
                 {True: "DRIFT", False: "ok", None: "-"}[c.drifted], c.note or ""] for c in report.columns]
        console().print(table(f"{current} against {reference}",
                              ["column", "kind", "method", "score", "drift when", "", "note"], rows))
        verdict = {True: "DRIFTED", False: "no drift", None: "nothing could be judged"}[report.drifted]
        console().print(f"  {verdict}: {len(report.drifted_columns)} of {report.checked} columns drifted"
                        + (f" ({', '.join(report.drifted_columns)})" if report.drifted_columns else "")
                        + (f"; p-values corrected ({correction})" if correction else ""))
    if report.drifted:
        raise typer.Exit(3)


def _table(ctx: Context, ref: str) -> pd.DataFrame:
    """A dataset version (NAME@V) or a table file, as a DataFrame."""
    from pathlib import Path

    from shipyard.data.formats import read_table

    if "@" in ref and not Path(ref).exists():
        import shipyard

        return shipyard.data.load(ref, workspace=ctx.workspace.root)
    return read_table(Path(ref)).to_pandas()


@app.command("run")
def run(name: MonitorName, as_json: JsonFlag = False) -> None:
    """Compute the monitor's report now over its window of the prediction log, store it and judge its alerts.
    Exit code 3 when a rule is breached."""
    from shipyard.monitoring.monitors import run_monitor

    result = run_monitor(context(), name)
    if as_json:
        print_json({**result.report, "notifications": [n.to_dict() for n in result.notifications],
                    "updated_reports": result.updated_reports})
    else:
        _print_report(result.report)
        for note in result.notifications:
            sent = ", ".join(d.sink + ("" if d.ok else f" (failed: {d.error})") for d in note.deliveries)
            state = "silenced" if note.suppressed_by is not None else sent or "no sink"
            console().print(f"  {note.status} {note.alert.rule} alert #{note.alert.id}: {state}")
        if result.updated_reports:
            console().print(f"  late feedback updated the performance of reports "
                            f"{', '.join(map(str, result.updated_reports))}")
    if result.firing:
        raise typer.Exit(EXIT_ALERT)


@app.command("report")
def report(
    name: MonitorName,
    report_id: Annotated[Optional[int], typer.Option("--id", help="A stored report's id (default: the newest).")]
    = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or html.")] = "table",
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
    = None,
) -> None:
    """A stored report: a table, JSON, or a self-contained HTML page with each column's distributions and the
    history of its scores."""
    from shipyard.errors import ValidationError
    from shipyard.monitoring.monitors import get_report, history

    if fmt not in ("table", "json", "html"):
        raise ValidationError(f"Unknown format {fmt!r}; use table, json or html.", format=fmt)
    ctx = context()
    found = get_report(ctx, name, report_id)
    found["alerts"] = _alert_states(ctx, name, found)
    if fmt == "html":
        from shipyard.monitoring.html import render_report_html

        page = render_report_html(found, history(ctx, name))
        if output is None:
            console().file.write(page)
        else:
            console().print(f"Wrote {write_file(output, page)}")
    elif fmt == "json":
        if output is None:
            print_json(found)
        else:
            import json

            console().print(f"Wrote {write_file(output, json.dumps(found, indent=2, default=str))}")
    else:
        _print_report(found)


@app.command("list")
def list_monitors(as_json: JsonFlag = False) -> None:
    """The monitors shipyard.yaml declares, what they watch, and their newest report."""
    from shipyard.monitoring.alerts import alerts
    from shipyard.monitoring.monitors import latest_reports, monitor_spec
    from shipyard.policy.monitor import declared_monitors

    ctx = context()
    newest = {r["monitor"]: r for r in latest_reports(ctx)}
    firing = alerts(ctx, state="firing")
    rows: list[dict[str, Any]] = []
    for name in declared_monitors(ctx.policy.document()):
        spec = monitor_spec(ctx, name)
        last = newest.get(name) or {}
        rows.append({"monitor": name, "deployment": spec.deployment, "model": spec.model,
                     "window": spec.window.model_dump(exclude_none=True), "last_report": last.get("id"),
                     "last_run": last.get("created"), "status": last.get("status"),
                     "firing": sorted(a.rule for a in firing if a.monitor == name)})
    if as_json:
        print_json(rows)
        return
    console().print(table("Monitors", ["monitor", "watches", "window", "last report", "status", "firing"], [
        [r["monitor"], f"deployment {r['deployment']}" if r["deployment"] else f"model {r['model']}",
         _window(r["window"]), f"#{r['last_report']} {r['last_run']}"
         if r["last_report"] else "-", r["status"] or "-", ", ".join(r["firing"]) or "-"] for r in rows]))


@app.command("alerts")
def list_alerts(
    monitor: Annotated[Optional[str], typer.Option("--monitor", "-m", help="Only this monitor's alerts.")] = None,
    state: Annotated[Optional[str], typer.Option("--state", help="firing or resolved.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Alerts, newest first: each an episode of a rule breached, from firing to resolved."""
    from shipyard.monitoring.alerts import alerts

    found = alerts(context(), monitor, state)
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    console().print(table("Alerts", ["id", "monitor", "rule", "severity", "state", "since", "acknowledged", "message"],
                          [[a.id, a.monitor, a.rule, a.severity, a.state, a.to_dict()["started"],
                            a.acknowledged_by or "-", a.message] for a in found]))


@app.command("ack")
def ack(alert_id: Annotated[int, typer.Argument(help="The alert's id (shipyard monitor alerts).")]) -> None:
    """Acknowledge a firing alert: it is not sent again while it keeps firing."""
    from shipyard.monitoring.alerts import acknowledge

    alert = acknowledge(context(), alert_id)
    console().print(f"Alert #{alert.id} ({alert.monitor} {alert.rule}) acknowledged by {alert.acknowledged_by}.")


@app.command("silence")
def silence(
    name: MonitorName,
    duration: Annotated[str, typer.Option("--for", help="How long: 300, 90s, 30m, 8h.")],
    rule: Annotated[Optional[str], typer.Option("--rule", help="Only this rule's alerts (default: all).")] = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why: kept in the audit trail.")] = None,
) -> None:
    """Keep a monitor's alerts (or one rule's) from being sent for a while; they still change state."""
    from shipyard.monitoring.alerts import silence as run
    from shipyard.monitoring.monitors import monitor_spec
    from shipyard.policy.deploy import duration_seconds

    seconds = duration_seconds(duration, "--for")
    ctx = context()
    monitor_spec(ctx, name)  # a declared monitor (did-you-mean otherwise)
    silence_id = run(ctx, name, rule=rule, seconds=seconds, reason=reason)
    console().print(f"Silence #{silence_id}: {name} {rule or 'all rules'} for {duration}.")


@app.command("unsilence")
def unsilence(silence_id: Annotated[int, typer.Argument(help="The silence's id (shipyard monitor silences).")]) \
        -> None:
    """End a silence now."""
    from shipyard.monitoring.alerts import unsilence as run

    ended = run(context(), silence_id)
    console().print(f"Silence #{ended.id} of {ended.monitor} ended.")


@app.command("silences")
def list_silences(
    monitor: Annotated[Optional[str], typer.Option("--monitor", "-m", help="Only this monitor's silences.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Ended silences too.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Silences in force (or all of them)."""
    from shipyard.monitoring.alerts import silences

    found = silences(context(), monitor, active_only=not everything)
    if as_json:
        print_json([s.to_dict() for s in found])
        return
    console().print(table("Silences", ["id", "monitor", "rule", "until", "by", "reason"],
                          [[s.id, s.monitor, s.rule or "all", s.to_dict()["until"], s.created_by, s.reason or ""]
                           for s in found]))


@app.command("export")
def export(output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="Write to this file (e.g. for node_exporter's textfile collector).")] = None) -> None:
    """The newest report of every monitor and the alerts' states as Prometheus gauges (text exposition format)."""
    from shipyard.monitoring.alerts import alerts
    from shipyard.monitoring.monitors import latest_reports
    from shipyard.monitoring.prometheus import exposition

    from shipyard.policy.monitor import declared_monitors

    ctx = context()
    declared = set(declared_monitors(ctx.policy.document()))  # a monitor taken out of shipyard.yaml is not exported
    latest: dict[tuple[str, str], Any] = {}
    for alert in reversed(alerts(ctx)):  # oldest first, so each rule ends with its newest episode
        if alert.monitor in declared:
            latest[(alert.monitor, alert.rule)] = alert
    reports = [r for r in latest_reports(ctx) if r["monitor"] in declared]
    text = exposition(reports, [a.to_dict() for a in latest.values()]).decode()
    if output is None:
        console().file.write(text)
    else:
        console().print(f"Wrote {write_file(output, text)}")


def _window(window: dict[str, Any]) -> str:
    if "rows" in window:
        return f"newest {window['rows']} rows"
    seconds = float(window["last"])
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"last {int(seconds // size)}{unit}"
    return f"last {seconds:g}s"


def _alert_states(ctx: Context, name: str, found: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's findings with the state of their alert now (firing, resolved), for the report's readers."""
    from shipyard.monitoring.alerts import alerts

    current = {a.rule: a for a in reversed(alerts(ctx, name))}
    out = []
    for finding in found.get("findings") or []:
        alert = current.get(finding["rule"])
        if finding["breached"] or (alert is not None and alert.last_report == found.get("id")):
            out.append({**finding, "state": alert.state if alert is not None else "firing",
                        "alert_id": alert.id if alert is not None else None})
    return out


def _print_report(found: dict[str, Any]) -> None:
    fmt = lambda v: "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    target, window = found["target"], found["window"]
    out = console()
    watched = f"deployment {target['deployment']} → " if target.get("deployment") else ""
    out.print(f"Monitor {found['monitor']} report #{found.get('id')} ({found.get('created')}): "
              f"{watched}{target['model']}/{target['version']}; {found['status'].upper()}")
    out.print(f"  window: {window['rows']} rows, {window['requests']} requests, {window['start'] or '-'} to "
              f"{window['end'] or '-'}; reference: {(found.get('reference') or {}).get('dataset') or '-'}")
    drift = found.get("data_drift")
    if drift:
        rows = [[c["column"], c["kind"], c["method"], fmt(c["score"]),
                 ("p < " if c["method"] in ("ks", "chisquare", "ztest") else "≥ ") + f"{c['threshold']:g}",
                 {True: "DRIFT", False: "ok", None: "-"}[c["drifted"]], c.get("note") or ""]
                for c in drift["columns"] + ([found["prediction_drift"]] if found.get("prediction_drift") else [])]
        out.print(table("Drift", ["column", "kind", "method", "score", "drift when", "", "note"], rows))
    perf = found.get("performance")
    if perf:
        metrics = perf.get("metrics") or {}
        out.print(f"  performance on {perf.get('labelled', 0)} labelled rows: " + (", ".join(
            f"{k} {fmt(v.get('value'))} [{fmt(v.get('low'))}, {fmt(v.get('high'))}]" for k, v in metrics.items())
            or perf.get("note") or "-"))
        for d in [d for d in perf.get("detections") or [] if d.get("index") is not None]:
            out.print(f"  concept drift: {d['detector']} detected a change at row {d['index']} ({d.get('timestamp')})")
    health = found.get("health") or {}
    out.print(f"  health: {health.get('requests', 0)} requests, {fmt(health.get('throughput_rps'))} req/s, "
              f"p50 {fmt(health.get('p50_ms'))} ms, p99 {fmt(health.get('p99_ms'))} ms, "
              f"error rate {fmt(health.get('error_rate'))}")
    for note in found.get("notes") or []:
        out.print(f"  note: {note}")
    for finding in found.get("findings") or []:
        if finding["breached"]:
            out.print(f"  ALERT {finding['rule']} ({finding['severity']}): {finding['message']}")
