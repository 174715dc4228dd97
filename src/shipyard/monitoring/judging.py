"""A monitor's report against its limits: one finding per alert rule. A rule that could not be judged this
time (too few rows, no labels, no limit set) is not breached nor cleared: its alert keeps its state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.monitoring.alerts import Finding

from shipyard.policy.monitor import CLASSIFICATION_METRICS, REGRESSION_METRICS

if TYPE_CHECKING:
    from shipyard.policy.monitor import MonitorSpec



def findings(spec: MonitorSpec, report: dict[str, Any]) -> list[Finding]:
    out = [_no_data(spec, report), *_drift(spec, report)]
    if spec.performance is not None:
        out += _performance(spec, report)
    if spec.health is not None:
        out += _health(spec, report)
    return out


def _no_data(spec: MonitorSpec, report: dict[str, Any]) -> Finding:
    rows = report["window"]["rows"]
    severity = spec.health.severity if spec.health is not None else "warning"
    return Finding("no_data", severity, rows == 0, float(rows), 0.0,
                   "the window holds no prediction" if rows == 0 else f"{rows} rows in the window")


def _drift(spec: MonitorSpec, report: dict[str, Any]) -> list[Finding]:
    severity = spec.drift.severity
    data = report.get("data_drift")
    if data is None:
        out = [Finding("data_drift", severity, None, None, spec.drift.share, _why_not(report, "data drift"))]
    else:
        drifted = data["drifted_columns"]
        # A feature the traffic no longer carries (missing, or all null where the reference had values) is an
        # anomaly of its own: it breaches the rule whatever the share of drifted columns.
        absent = [c["column"] for c in data["columns"] if c["reference_rows"] and not c["current_rows"]]
        message = (f"{len(drifted)} of {data['checked']} columns drifted"
                   + (f": {', '.join(drifted)}" if drifted else "")
                   + (f"; absent from the traffic: {', '.join(absent)}" if absent else ""))
        breached = True if absent else data["drifted"]
        out = [Finding("data_drift", severity, breached, data["drift_share"], spec.drift.share, message)]
    prediction = report.get("prediction_drift")
    if prediction is None:
        out.append(Finding("prediction_drift", severity, None, None, None, _why_not(report, "prediction drift")))
    else:
        shown = "p" if prediction["method"] in ("ks", "chisquare", "ztest") else prediction["method"]
        message = (f"predictions {'drifted' if prediction['drifted'] else 'did not drift'} "
                   f"({shown} = {_fmt(prediction['score'])}, threshold {_fmt(prediction['threshold'])})"
                   if prediction["drifted"] is not None else f"prediction drift not judged: {prediction['note']}")
        out.append(Finding("prediction_drift", severity, prediction["drifted"], prediction["score"],
                           prediction["threshold"], message))
    return out


def _performance(spec: MonitorSpec, report: dict[str, Any]) -> list[Finding]:
    assert spec.performance is not None
    limits = spec.performance
    section = report.get("performance") or {}
    labelled = int(section.get("labelled") or 0)
    task = section.get("task")
    metric = limits.metric or ("rmse" if task == "regression" else "accuracy")
    enough = labelled >= limits.min_labelled
    value = ((section.get("metrics") or {}).get(metric) or {}).get("value") if enough else None
    bound = limits.min if limits.min is not None else limits.max
    if not enough:
        perf = Finding("performance", limits.severity, None, None, bound,
                       f"insufficient data: {labelled} labelled rows in the window, {limits.min_labelled} needed")
    elif value is None:
        wrong_task = task is not None and metric in (REGRESSION_METRICS if task == "classification"
                                                     else CLASSIFICATION_METRICS)
        perf = Finding("performance", limits.severity, None, None, bound, f"{metric} not judged: " + (
            f"it is not a {task} metric; choose one of "
            f"{', '.join(CLASSIFICATION_METRICS if task == 'classification' else REGRESSION_METRICS)}"
            if wrong_task else section.get("note") or f"no {metric} in the report"))
    elif bound is None:
        perf = Finding("performance", limits.severity, None, float(value), None,
                       f"{metric} = {_fmt(value)} (no limit set: performance.min or performance.max)")
    else:
        breached = value < limits.min if limits.min is not None else value > bound
        metrics = section["metrics"][metric]
        perf = Finding("performance", limits.severity, bool(breached), float(value), float(bound),
                       f"{metric} = {_fmt(value)} [{_fmt(metrics.get('low'))}, {_fmt(metrics.get('high'))}] on "
                       f"{labelled} labelled rows; {'minimum' if limits.min is not None else 'maximum'} "
                       f"{_fmt(bound)}")
    detections = [d for d in section.get("detections") or [] if d.get("index") is not None]
    ran = [d for d in section.get("detections") or [] if not d.get("note")]
    needed = max(1, min(limits.agreement, len(ran)))
    if not enough or not ran:
        concept = Finding("concept_drift", limits.severity, None, None, float(needed),
                          "insufficient data for the concept-drift detectors" if not enough else
                          "no concept-drift detector could run")
    else:
        where = "; ".join(f"{d['detector']} at row {d['index']}" + (f" ({d['timestamp']})" if d.get("timestamp")
                                                                      else "") for d in detections)
        concept = Finding("concept_drift", limits.severity, len(detections) >= needed, float(len(detections)),
                          float(needed), (f"change in the error stream: {where}" if detections else
                                          "no change detected in the error stream")
                          + f" ({len(detections)} of {len(ran)} detectors; {needed} must agree)")
    return [perf, concept]


def _health(spec: MonitorSpec, report: dict[str, Any]) -> list[Finding]:
    assert spec.health is not None
    limits, health, severity = spec.health, report.get("health") or {}, spec.health.severity
    requests = health.get("requests") or 0
    out = []
    for measure, limit in (("p99_ms", limits.max_p99_ms), ("p50_ms", limits.max_p50_ms)):
        if limit is not None:
            value = health.get(measure)
            breached = None if value is None else value > limit
            out.append(Finding("latency", severity, breached, value, limit,
                               f"{measure[:3]} latency {_fmt(value)} ms, limit {_fmt(limit)} ms"
                               if value is not None else "no request to measure latency on"))
            if breached:
                break  # one latency alert: the first limit broken
    ceiling = limits.max_error_rate
    if ceiling is not None:
        rate = health.get("error_rate")
        out.append(Finding("error_rate", severity, None if not requests or rate is None else bool(rate > ceiling),
                           rate, ceiling,
                           f"{health.get('errors', 0)} of {requests} requests failed" if requests else
                           "no request in the window"))
    floor = limits.min_throughput_rps
    if floor is not None:
        rps = health.get("throughput_rps")
        out.append(Finding("throughput", severity, None if rps is None else bool(rps < floor), rps, floor, f"{_fmt(rps)} requests per second, at least "
                                                      f"{_fmt(floor)} expected"))
    return _one_per_rule(out)


def _one_per_rule(found: list[Finding]) -> list[Finding]:
    """Latency may be checked at two percentiles; the rule's finding is the breached one, else the first."""
    chosen: dict[str, Finding] = {}
    for finding in found:
        if finding.rule not in chosen or (finding.breached and not chosen[finding.rule].breached):
            chosen[finding.rule] = finding
    return list(chosen.values())


def _why_not(report: dict[str, Any], what: str) -> str:
    notes = report.get("notes") or []
    return f"{what} not judged: {notes[0]}" if notes else f"{what} not judged"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
