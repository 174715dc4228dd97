"""A stored monitoring report as one self-contained HTML page: inline CSS and SVG, no scripts, fonts or links,
so it opens offline; every value taken from the report is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from shipyard.data.report import CSS, format_value
from shipyard.monitoring.charts import distribution_svg, history_svg, number
from shipyard.monitoring.drift import P_VALUE_METHODS

NOT_MEASURED = "not measured"
METHOD_NAMES = {"ks": "Kolmogorov–Smirnov test", "chisquare": "chi-squared test", "ztest": "two-proportion Z-test",
                "wasserstein": "Wasserstein distance ÷ the reference's standard deviation",
                "jensenshannon": "Jensen–Shannon distance", "psi": "population stability index",
                "hellinger": "Hellinger distance"}
_STATUS_CLASS = {"ok": "pass", "alert": "fail"}
_SEVERITY_CLASS = {"critical": "error", "warning": "warning"}
_EXTRA_CSS = (".none{background:#718096}.card.drifted{border-color:#c53030}h4{font-size:.85rem;margin:.6rem 0 .2rem;"
              "font-weight:600;color:#3e4c59}.cols .card svg{max-width:100%;height:auto}.firing{font-weight:600}")
_HEALTH = (("requests", "requests", None), ("throughput_rps", "throughput (requests a second)", None),
           ("p50_ms", "median latency (ms)", None), ("p99_ms", "99th percentile latency (ms)", "max_p99_ms"),
           ("error_rate", "error rate", "max_error_rate"))


class _Raw(str):
    """Markup built here from escaped parts, passed into a table as it is."""


def render_report_html(report: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The page for `report`; `history` holds earlier reports' summaries, oldest first, for the score charts
    (a summary with the report's own id is left out: the report is drawn as the last point)."""
    monitor = str(report.get("monitor") or "unnamed monitor")
    earlier = [h for h in history if report.get("id") is None or h.get("id") != report.get("id")]
    status = str(report.get("status") or "unknown")
    title = f"Monitoring report: {monitor}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{escape(title)}</title><style>{CSS}{_EXTRA_CSS}</style></head><body>",
             f"<h1>{escape(title)}</h1>",
             f'<p><span class="status {_STATUS_CLASS.get(status, "none")}">{escape(status)}</span> '
             f'<span class="meta">report {escape(_text(report.get("id")))} · created '
             f'{escape(_text(report.get("created")))}</span></p>',
             _table(("", ""), _overview(report)), _notes(report.get("notes")),
             "<h2>Alerts</h2>", _alerts(report.get("alerts")),
             "<h2>Health</h2>", _health(report.get("health")),
             "<h2>Performance</h2>", _performance(report.get("performance"), report, earlier),
             "<h2>Data drift</h2>", _data_drift(report, earlier),
             "<h2>Prediction drift</h2>", _prediction_drift(report, earlier),
             "</body></html>"]
    return "\n".join(parts)


# -- the header ------------------------------------------------------------------------------------


def _overview(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    target, window, reference = (report.get(key) or {} for key in ("target", "window", "reference"))
    aimed = [f"deployment {target['deployment']}"] if target.get("deployment") else []
    if target.get("model"):
        version = target.get("version")
        aimed.append(f"model {target['model']}" + (f" version {version}" if version is not None else ""))
    span = ""
    if window.get("start") or window.get("end"):
        span = f"{_text(window.get('start'))} to {_text(window.get('end'))}"
    size = window.get("size")
    shape = {"time": f"the last {size}", "count": f"the last {_text(size)} requests"}.get(
        str(window.get("kind")), "") if size is not None else ""
    sized = [f"{_text(window[k])} {k}" for k in ("rows", "requests") if window.get(k) is not None]
    source = {"profile": "its stored profile", "sketch": "its sketches", "data": "its rows"}.get(
        str(reference.get("source")), str(reference.get("source") or ""))
    referred = [str(reference.get("dataset") or "")] + (
        [f"{_text(reference['rows'])} rows"] if reference.get("rows") is not None else []) + (
        [f"compared from {source}"] if source else [])
    return [("target", " · ".join(aimed) or NOT_MEASURED),
            ("window", " · ".join(p for p in (span, shape, *sized) if p) or NOT_MEASURED),
            ("reference", " · ".join(p for p in referred if p) or NOT_MEASURED)]


def _notes(notes: Any) -> str:
    if not notes:
        return ""
    if isinstance(notes, str):  # one note stored bare rather than as a list of one
        notes = [notes]
    return "<ul>" + "".join(f"<li>{escape(_text(note))}</li>" for note in notes) + "</ul>"


# -- alerts, health and performance ----------------------------------------------------------------


def _alerts(alerts: Any) -> str:
    if alerts is None:
        return _missing("Alert rules were " + NOT_MEASURED + ".")
    if not alerts:
        return "<p>None: no alert rule fired.</p>"
    rows = []
    for alert in alerts:
        severity, state = str(alert.get("severity") or ""), str(alert.get("state") or "")
        rows.append((_Raw(f'<span class="sev {_SEVERITY_CLASS.get(severity, "")}">{escape(severity)}</span>'),
                     alert.get("rule"),
                     _Raw(f'<span class="{"firing" if state == "firing" else ""}">{escape(state)}</span>'),
                     alert.get("value"), alert.get("threshold"), alert.get("message")))
    return _table(("Severity", "Rule", "State", "Value", "Threshold", "Message"), rows)


def _health(health: Any) -> str:
    if not health:
        return _missing("Serving health was " + NOT_MEASURED + ".")
    limits = health.get("limits") or {}
    rows = []
    for key, name, limit_key in _HEALTH:
        value, limit = health.get(key), limits.get(limit_key) if limit_key else None
        shown = _percent(value) if key == "error_rate" else _text(value)
        measured, most = number(value), number(limit)
        bound = "" if limit is None else _percent(limit) if key == "error_rate" else _text(limit)
        within = "" if measured is None or most is None else "within" if measured <= most else "above the limit"
        rows.append((name, shown, bound, within))
    return _table(("Measure", "Value", "Limit", ""), rows)


def _performance(performance: Any, report: dict[str, Any], earlier: list[dict[str, Any]]) -> str:
    if not performance:
        return _missing("Performance was " + NOT_MEASURED + ": no labels were joined to the predictions.")
    facts = [str(performance.get("task") or "")]
    if performance.get("labelled") is not None:
        facts.append(f"{_text(performance['labelled'])} labelled rows")
    parts = [f'<p class="meta">{escape(" · ".join(f for f in facts if f))}</p>']
    if performance.get("note"):
        parts.append(f"<p>{escape(_text(performance['note']))}</p>")
    metrics = performance.get("metrics") or {}
    if metrics:
        rows = [(name, (m or {}).get("value"), _interval(m or {})) for name, m in metrics.items()]
        parts.append(_table(("Metric", "Value", "Confidence interval"), rows))
        cards = []
        for name, m in metrics.items():
            points = [(_when(h), number((h.get("metrics") or {}).get(name))) for h in earlier]
            points.append((_when(report) + " (this report)", number((m or {}).get("value"))))
            cards.append(f'<div class="card"><h3>{escape(str(name))}</h3><h4>Over earlier reports</h4>'
                         f"{history_svg(points, None, p_values=False)}</div>")
        parts.append('<div class="cols">' + "".join(cards) + "</div>")
    else:
        parts.append(_missing("Metrics were " + NOT_MEASURED + "."))
    detections = performance.get("detections")
    parts.append("<h3>Change detections</h3>")
    if not detections:
        parts.append("<p>None: the detectors saw no change in the labelled stream.</p>"
                     if detections is not None else _missing("Change detection was " + NOT_MEASURED + "."))
    else:
        parts.append(_table(("Detector", "Index", "Time", "Request", "Count"),
                            [(d.get("detector"), d.get("index"), d.get("timestamp"), d.get("request_id"),
                              d.get("count")) for d in detections]))
    return "\n".join(parts)


def _interval(metric: dict[str, Any]) -> str:
    low, high = metric.get("low"), metric.get("high")
    return "" if low is None and high is None else f"{_text(low)} – {_text(high)}"


# -- drift -----------------------------------------------------------------------------------------


def _data_drift(report: dict[str, Any], earlier: list[dict[str, Any]]) -> str:
    drift = report.get("data_drift")
    if not drift:
        return _missing("Data drift was " + NOT_MEASURED + ".")
    columns = [c for c in drift.get("columns") or [] if isinstance(c, dict)]
    checked, drifted = drift.get("checked") or 0, drift.get("drifted_columns") or []
    share = number(drift.get("share"))
    if drift.get("drifted") is None:
        summary = f"The table was not judged: none of its {len(columns)} compared columns could be."
    else:
        summary = ("The table drifted" if drift["drifted"] else "The table did not drift") + (
            f": {len(drifted)} of {checked} judged columns drifted"
            + (f" ({drift['drift_share']:.0%})" if number(drift.get("drift_share")) is not None else "")
            + (f"; it drifts when {share:.0%} do" if share is not None else "")
            + (f"; p-values corrected ({drift['correction']})" if drift.get("correction") else "") + ".")
    if not columns:
        return f"<p>{escape(summary)}</p>" + _missing("No column was compared.")
    distributions = report.get("distributions") or {}
    cards = [_column_card(c, distributions.get(c.get("column")), [
        (_when(h), number((h.get("scores") or {}).get(c.get("column")))) for h in earlier
    ] + [(_when(report) + " (this report)", number(c.get("score")))]) for c in columns]
    return "\n".join([f"<p>{escape(summary)}</p>", _drift_table(columns),
                      '<div class="cols">' + "".join(cards) + "</div>"])


def _prediction_drift(report: dict[str, Any], earlier: list[dict[str, Any]]) -> str:
    drift = report.get("prediction_drift")
    if not isinstance(drift, dict):
        return _missing("Prediction drift was " + NOT_MEASURED + ".")
    points = [(_when(h), number(h.get("prediction_score"))) for h in earlier]
    points.append((_when(report) + " (this report)", number(drift.get("score"))))
    card = _column_card(drift, (report.get("distributions") or {}).get("prediction"), points)
    return _drift_table([drift]) + f'\n<div class="cols">{card}</div>'


def _drift_table(columns: list[dict[str, Any]]) -> str:
    rows = [(c.get("column"), c.get("kind"), c.get("method"), _Raw(escape(_score(c))),
             _Raw(escape(threshold_text(c))), _Raw(_verdict(c.get("drifted"))), c.get("note") or "")
            for c in columns]
    return _table(("Column", "Kind", "Method", "Score", "Threshold", "Verdict", "Note"), rows)


def _column_card(column: dict[str, Any], distribution: Any, points: list[tuple[str, float | None]]) -> str:
    method = str(column.get("method") or "")
    tested = method in P_VALUE_METHODS
    facts = [str(column.get("kind") or ""), METHOD_NAMES.get(method, method),
             f"score {_score(column)}", f"drift when {threshold_text(column)}"]
    chart = (distribution_svg(distribution) if isinstance(distribution, dict)
             else _missing("The distributions were " + NOT_MEASURED + "."))
    counts = f"{_text(column.get('reference_rows'))} reference rows · {_text(column.get('current_rows'))} current"
    note = f'<p class="meta">{escape(_text(column["note"]))}</p>' if column.get("note") else ""
    mark = " drifted" if column.get("drifted") is True else ""
    return (f'<div class="card{mark}"><h3>{escape(_text(column.get("column")))} {_verdict(column.get("drifted"))}'
            f'</h3><p class="meta">{escape(" · ".join(f for f in facts if f))}</p>'
            f'<p class="meta">{escape(counts)}</p>{note}<h4>Distributions</h4>{chart}'
            f"<h4>{'p-value (log scale)' if tested else 'Distance'} over earlier reports</h4>"
            f"{history_svg(points, number(column.get('threshold')), p_values=tested)}</div>")


def threshold_text(column: dict[str, Any]) -> str:
    """How the column's threshold reads: "p < 0.05" for a test, "≥ 0.1" for a distance."""
    threshold = column.get("threshold")
    if threshold is None:
        return NOT_MEASURED
    return f"p < {_text(threshold)}" if column.get("method") in P_VALUE_METHODS else f"≥ {_text(threshold)}"


def _score(column: dict[str, Any]) -> str:
    score = column.get("score")
    if score is None:
        return "–"
    if column.get("adjusted_p") is not None and column.get("p_value") is not None:
        return f"{_text(score)} (before correction {_text(column['p_value'])})"
    return _text(score)


def _verdict(drifted: Any) -> str:
    if drifted is True:
        return '<span class="sev error">drift</span>'
    return "no drift" if drifted is False else '<span class="meta">not judged</span>'


# -- small pieces ----------------------------------------------------------------------------------


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers) if any(headers) else ""
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, _Raw):
        return f"<td>{value}</td>"
    numeric = ' class="num"' if number(value) is not None else ""
    return f"<td{numeric}>{escape(_text(value))}</td>"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else format_value(value)


def _percent(value: Any) -> str:
    share = number(value)
    return _text(value) if share is None else f"{share:.2%}"


def _when(summary: dict[str, Any]) -> str:
    """A report's time as a chart label: its creation, else its window's end, to the minute."""
    when = summary.get("created") or summary.get("window_end") or (summary.get("window") or {}).get("end")
    return str(when)[:16].replace("T", " ") if when else f"report {_text(summary.get('id'))}"


def _missing(text: str) -> str:
    return f'<p class="meta">{escape(text)}</p>'
