"""The validation report as one self-contained HTML page: anomalies by severity, column stats and charts."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from shipyard.data.validation import Anomaly, ValidationReport

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
 color:#1f2933;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:2rem 0 .6rem}h3{font-size:1rem;margin:0 0 .4rem}
.status{display:inline-block;padding:.15rem .6rem;border-radius:4px;font-weight:600;color:#fff}
.pass{background:#2f855a}.fail{background:#c53030}
table{border-collapse:collapse;width:100%;margin:.3rem 0}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{background:#f5f7fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.sev{font-weight:600;text-transform:uppercase;font-size:.75rem}.error{color:#c53030}.warning{color:#b7791f}
.cols{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1rem}
.card{border:1px solid #e4e7eb;border-radius:6px;padding:.8rem}
.card.has-error{border-color:#c53030}.card.has-warning{border-color:#d69e2e}
.meta{color:#616e7c;font-size:.85rem}.legend span{margin-right:1rem}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.card table td,.card table th{padding:.15rem .4rem;font-size:.85rem}
svg text{font-size:10px;fill:#616e7c}
"""

CURRENT_COLOUR = "#3182ce"
REFERENCE_COLOUR = "#a0aec0"
_WIDTH, _HEIGHT = 320, 110


def render_html(
    report: ValidationReport,
    *,
    title: str,
    profile: dict[str, Any] | None = None,
    reference_profile: dict[str, Any] | None = None,
) -> str:
    """A standalone page (inline CSS and SVG, no scripts, fonts or links); all data text is escaped."""
    errors, warnings = report.errors, report.warnings
    if report.ok:
        status = '<span class="status pass">Passed</span>'
    else:
        status = '<span class="status fail">Failed</span>'
    counts = f"{len(errors)} error{'s' * (len(errors) != 1)}, {len(warnings)} warning{'s' * (len(warnings) != 1)}"
    rows = f" · {profile['row_count']:,} rows" if profile else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p>{status} <span class="meta">{counts}{rows}</span></p>',
        "<h2>Anomalies</h2>",
        _anomalies(errors, warnings),
    ]
    if profile:
        parts.append("<h2>Columns</h2>")
        if reference_profile:
            parts.append(
                f'<p class="legend meta"><span><i class="swatch" style="background:{CURRENT_COLOUR}"></i>current</span>'
                f'<span><i class="swatch" style="background:{REFERENCE_COLOUR}"></i>reference</span></p>'
            )
        parts.append('<div class="cols">')
        by_column: dict[str, list[Anomaly]] = {}
        for anomaly in report.anomalies:
            if anomaly.column is not None:
                by_column.setdefault(anomaly.column, []).append(anomaly)
        references = (reference_profile or {}).get("columns", {})
        for name, stats in profile["columns"].items():
            parts.append(_column_card(name, stats, references.get(name), by_column.get(name, [])))
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _anomalies(errors: list[Anomaly], warnings: list[Anomaly]) -> str:
    if not errors and not warnings:
        return "<p>None: the data meets its schema.</p>"
    rows = []
    for anomaly in [*errors, *warnings]:
        rows.append(
            f'<tr><td class="sev {anomaly.severity}">{escape(anomaly.severity)}</td>'
            f"<td>{escape(anomaly.kind)}</td><td>{escape(anomaly.column or '')}</td>"
            f"<td>{escape(anomaly.message)}</td></tr>"
        )
    return ("<table><thead><tr><th>Severity</th><th>Kind</th><th>Column</th><th>Message</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _column_card(name: str, stats: dict[str, Any], reference: dict[str, Any] | None,
                 anomalies: list[Anomaly]) -> str:
    severities = {a.severity for a in anomalies}
    mark = " has-error" if "error" in severities else " has-warning" if severities else ""
    kind = stats["kind"]
    distinct = format_value(stats["distinct_count"])
    if stats.get("distinct_approx"):
        distinct = "≈" + distinct
    cells = [("nulls", format_value(stats["null_count"])), ("distinct", distinct)]
    if kind in ("numeric", "timestamp"):
        shown = _iso if kind == "timestamp" else format_value
        cells += [("min", shown(stats.get("min"))), ("max", shown(stats.get("max"))),
                  ("mean", shown(stats.get("mean")))]
        if kind == "numeric":
            quantiles = stats.get("quantiles") or {}
            cells += [("std", format_value(stats.get("std"))), ("median", format_value(quantiles.get("0.5"))),
                      ("p1 / p99", f"{format_value(quantiles.get('0.01'))} / {format_value(quantiles.get('0.99'))}")]
            if stats.get("nan_count") or stats.get("inf_count"):
                cells.append(("NaN / inf", f"{format_value(stats['nan_count'])} / {format_value(stats['inf_count'])}"))
    table = "".join(f"<tr><th>{escape(k)}</th><td class=\"num\">{escape(v)}</td></tr>" for k, v in cells)
    chart = ""
    if kind == "numeric" and (stats.get("histogram") or {}).get("counts"):
        ref_hist = (reference or {}).get("histogram") if (reference or {}).get("kind") == "numeric" else None
        chart = histogram_svg(stats["histogram"], ref_hist or None)
    elif kind in ("categorical", "boolean", "text") and stats.get("top"):
        chart = bars_svg(stats, reference if (reference or {}).get("top") else None)
    notes = "".join(f'<li class="{a.severity}">{escape(a.message)}</li>' for a in anomalies)
    return (
        f'<div class="card{mark}"><h3>{escape(name)}</h3>'
        f'<div class="meta">{escape(kind)} · {escape(stats["arrow_type"])}</div>'
        f"{f'<ul>{notes}</ul>' if notes else ''}<table>{table}</table>{chart}</div>"
    )


def histogram_svg(current: dict[str, Any], reference: dict[str, Any] | None) -> str:
    """Densities over a shared x axis, so histograms with different edges overlay fairly."""
    series = [(reference, REFERENCE_COLOUR, 0.55)] if reference and reference.get("counts") else []
    series.append((current, CURRENT_COLOUR, 0.6))
    low = min(h["edges"][0] for h, _, _ in series)
    high = max(h["edges"][-1] for h, _, _ in series)
    span = (high - low) or 1.0
    bars = []
    densities = [_densities(h) for h, _, _ in series]
    top = max((max(d) for d in densities if d), default=0.0) or 1.0
    plot = _HEIGHT - 14
    for (hist, colour, opacity), dens in zip(series, densities, strict=True):
        edges = hist["edges"]
        for i, density in enumerate(dens):
            x = (edges[i] - low) / span * _WIDTH
            width = max((edges[i + 1] - edges[i]) / span * _WIDTH - 0.5, 0.5)
            height = density / top * plot
            bars.append(
                f'<rect x="{x:.1f}" y="{plot - height:.1f}" width="{width:.1f}" height="{height:.1f}" '
                f'fill="{colour}" fill-opacity="{opacity}"><title>{escape(format_value(edges[i]))} to '
                f"{escape(format_value(edges[i + 1]))}: {hist['counts'][i]:,}</title></rect>"
            )
    labels = (
        f'<text x="0" y="{_HEIGHT - 2}">{escape(format_value(low))}</text>'
        f'<text x="{_WIDTH}" y="{_HEIGHT - 2}" text-anchor="end">{escape(format_value(high))}</text>'
    )
    return (f'<svg width="{_WIDTH}" height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
            f'aria-label="histogram">{"".join(bars)}{labels}</svg>')


def _densities(hist: dict[str, Any]) -> list[float]:
    edges, counts = hist["edges"], hist["counts"]
    total = sum(counts) or 1
    return [c / total / ((edges[i + 1] - edges[i]) or 1.0) for i, c in enumerate(counts)]


def bars_svg(current: dict[str, Any], reference: dict[str, Any] | None, limit: int = 10) -> str:
    """Horizontal bars of the top values' shares, the reference's share drawn beneath each."""
    def shares(stats: dict[str, Any]) -> dict[str, float]:
        total = sum(item["count"] for item in stats["top"]) + stats.get("other_count", 0)
        return {item["value"]: item["count"] / (total or 1) for item in stats["top"]}

    now = shares(current)
    before = shares(reference) if reference else {}
    labels = list(now)[:limit]
    labels += [v for v in before if v not in now][: max(0, limit - len(labels))]
    row = 22 if reference else 14
    height = row * len(labels) + 4
    label_width = 110
    scale = (_WIDTH - label_width - 44) / (max([*now.values(), *before.values(), 0.0]) or 1.0)
    items = []
    for i, label in enumerate(labels):
        y = i * row + 2
        short = label if len(label) <= 16 else label[:15] + "…"
        items.append(f'<text x="{label_width - 4}" y="{y + 10}" text-anchor="end">{escape(short)}'
                     f"<title>{escape(label)}</title></text>")
        share = now.get(label, 0.0)
        items.append(f'<rect x="{label_width}" y="{y}" width="{share * scale:.1f}" height="10" fill="{CURRENT_COLOUR}"/>'
                     f'<text x="{label_width + share * scale + 3:.1f}" y="{y + 9}">{share:.1%}</text>')
        if reference:
            ref = before.get(label, 0.0)
            items.append(f'<rect x="{label_width}" y="{y + 11}" width="{ref * scale:.1f}" height="7" '
                         f'fill="{REFERENCE_COLOUR}"><title>reference {ref:.1%}</title></rect>')
    return (f'<svg width="{_WIDTH}" height="{height}" viewBox="0 0 {_WIDTH} {height}" role="img" '
            f'aria-label="top values">{"".join(items)}</svg>')


def format_value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        size = abs(value)
        if size >= 1e15 or 0 < size < 1e-3:
            return f"{value:.3e}"
        return f"{value:,.0f}" if size >= 1000 else f"{value:.4g}"
    return str(value)


def _iso(seconds: Any) -> str:
    if seconds is None:
        return "–"
    return dt.datetime.fromtimestamp(float(seconds), tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
