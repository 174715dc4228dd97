"""Rendering model cards for people: Markdown, and a self-contained HTML page with inline SVG plots."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from typing import Any

from shipyard.data.report import CSS, CURRENT_COLOUR, format_value

GROUP_RATES = ("selection_rate", "tpr", "fpr")
_RATE_COLOURS = (CURRENT_COLOUR, "#dd6b20", "#38a169")

def bars_svg(bars: list[tuple[str, float, str]]) -> str:
    """Horizontal bars, one (label, value, colour) a row, the value written after each."""
    width, label_width, row = 340, 140, 18
    height = row * len(bars) + 4
    scale = (width - label_width - 50) / (max([v for _, v, _ in bars] + [0.0]) or 1.0)
    items = []
    for i, (label, value, colour) in enumerate(bars):
        y, short = i * row + 2, label if len(label) <= 24 else label[:23] + "…"
        size = max(value, 0.0) * scale
        items.append(f'<text x="{label_width - 4}" y="{y + 11}" text-anchor="end">{escape(short)}'
                     f'<title>{escape(label)}</title></text>'
                     f'<rect x="{label_width}" y="{y + 2}" width="{size:.1f}" height="12" fill="{colour}"/>'
                     f'<text x="{label_width + size + 3:.1f}" y="{y + 12}">{escape(format_value(value))}</text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="metrics by slice">{"".join(items)}</svg>')


def groups_svg(groups: dict[str, dict[str, Any]]) -> str:
    """Grouped vertical bars on a 0-1 scale: selection rate, TPR and FPR of each group."""
    bar, gap, top, plot = 14, 18, 18, 110
    width = max(320, 40 + len(groups) * (bar * len(GROUP_RATES) + gap))
    height = top + plot + 18
    items = [f'<rect x="{x}" y="2" width="10" height="10" fill="{colour}"/><text x="{x + 14}" y="11">{name}</text>'
             for x, name, colour in zip((40, 135, 180), ("selection rate", "TPR", "FPR"), _RATE_COLOURS, strict=True)]
    items += [f'<text x="30" y="{top + plot * (1 - t) + 4:.1f}" text-anchor="end">{t:g}</text>'
              f'<line x1="34" x2="{width}" y1="{top + plot * (1 - t):.1f}" y2="{top + plot * (1 - t):.1f}" '
              'stroke="#e4e7eb"/>' for t in (0.0, 0.5, 1.0)]
    for g, (group, rates) in enumerate(groups.items()):
        x0 = 40 + g * (bar * len(GROUP_RATES) + gap)
        for r, (name, colour) in enumerate(zip(GROUP_RATES, _RATE_COLOURS, strict=True)):
            value = float(rates.get(name) or 0.0)
            size = min(max(value, 0.0), 1.0) * plot
            items.append(f'<rect x="{x0 + r * bar}" y="{top + plot - size:.1f}" width="{bar - 2}" '
                         f'height="{size:.1f}" fill="{colour}"><title>{escape(str(group))} {name}: '
                         f'{escape(format_value(value))}</title></rect>')
        short = str(group) if len(str(group)) <= 8 else str(group)[:7] + "…"
        items.append(f'<text x="{x0 + bar * len(GROUP_RATES) / 2:.1f}" y="{height - 4}" text-anchor="middle">'
                     f'{escape(short)}<title>{escape(str(group))}</title></text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="fairness by group">{"".join(items)}</svg>')


def matrix_svg(labels: list[str], matrix: list[list[int]]) -> str:
    """Rows are the actual class, columns the predicted one; darker cells hold more rows."""
    cell, left, top = 44, 80, 34
    size = cell * len(labels)
    width, height = left + size + 4, top + size + 4
    most = max((v for row in matrix for v in row), default=0) or 1
    items = [f'<text x="{left + size / 2:.0f}" y="10" text-anchor="middle">predicted</text>',
             f'<text x="4" y="{top + size / 2:.0f}">actual</text>']
    for i, label in enumerate(labels):
        short = escape(label if len(label) <= 6 else label[:5] + "…")
        items.append(f'<text x="{left + i * cell + cell / 2:.0f}" y="{top - 6}" text-anchor="middle">{short}</text>'
                     f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4:.0f}" text-anchor="end">{short}</text>')
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            share = count / most
            light = ' style="fill:#fff"' if share > 0.5 else ""
            items.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{CURRENT_COLOUR}" fill-opacity="{0.08 + 0.92 * share:.2f}"><title>actual {escape(labels[i])}, '
                f'predicted {escape(labels[j])}: {count:,}</title></rect>'
                f'<text x="{left + j * cell + cell / 2 - 1:.0f}" y="{top + i * cell + cell / 2 + 3:.0f}" '
                f'text-anchor="middle"{light}>{count:,}</text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="confusion matrix">{"".join(items)}</svg>')


# -- small helpers -----------------------------------------------------------------------------



# -- rendering ---------------------------------------------------------------------------------


@dataclass
class _Section:
    """A part of the card for people: a table (with headers) or a bulleted list (the rows' first cells)."""

    heading: str
    rows: list[tuple[Any, ...]]
    headers: tuple[str, ...] = ()
    plots: list[dict[str, Any]] = field(default_factory=list)
    anchor: str = ""


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown (the plots are in the HTML page); no raw HTML tag can open from card text."""
    title, overview, ready = _headline(card)
    lines = [f"# {_md(title)}", "", _md(overview), "", f"**{ready}**"]
    for section in _sections(card):
        lines += ["", f"## {section.heading}", ""]
        if section.plots:
            lines += [f"Plots in card.html: {_md(', '.join(str(p.get('name')) for p in section.plots))}.", ""]
        if section.headers:
            lines += ["| " + " | ".join(_md(h) for h in section.headers) + " |", "|" + "---|" * len(section.headers)]
            lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in section.rows]
        else:
            lines += [f"- {_md(row[0])}" for row in section.rows]
    return "\n".join(lines) + "\n"


def render_html(card: dict[str, Any]) -> str:
    """A standalone page (inline CSS and SVG, no scripts, fonts or links); all card text is escaped."""
    title, overview, ready = _headline(card)
    badge = "pass" if card.get("promotion", {}).get("allowed") else "fail"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{escape(title)}</title><style>{CSS}{_EXTRA_CSS}</style></head><body>",
             f"<h1>{escape(title)}</h1>", f'<p><span class="status {badge}">{escape(ready)}</span></p>',
             f"<p>{escape(overview)}</p>"]
    for section in _sections(card):
        anchor = f' id="{escape(section.anchor)}"' if section.anchor else ""
        parts.append(f"<h2{anchor}>{escape(section.heading)}</h2>")
        if section.headers:
            head = "".join(f"<th>{escape(h)}</th>" for h in section.headers) if any(section.headers) else ""
            body = "".join("<tr>" + "".join(_cell(h, c) for h, c in zip(section.headers, row, strict=True))
                           + "</tr>" for row in section.rows)
            parts.append(f"<table>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>")
        elif section.rows:
            parts.append("<ul>" + "".join(f"<li>{escape(_text(row[0]))}</li>" for row in section.rows) + "</ul>")
        if section.plots:
            parts.append('<div class="cols">' + "".join(
                f'<div class="card"><h3>{escape(str(p.get("name", "")))}</h3>{_svg(p.get("image"))}</div>'
                for p in section.plots) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


_EXTRA_CSS = ".warn{background:#b7791f}.none{background:#718096}.cols .card svg{max-width:100%;height:auto}"
_STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "WAIVED": "warn", "NO_BASELINE": "warn"}
# Card text inside the SVG is escaped, so any "<" starts markup: refuse elements and attributes that run or load.
_UNSAFE_SVG = re.compile(r"<(?:script|foreignobject|image|use|a|iframe|style)\b|<[^>]*\s(?:on\w+|[\w:]*href)\s*=",
                         re.IGNORECASE)


def _headline(card: dict[str, Any]) -> tuple[str, str, str]:
    details = card.get("model_details", {})
    title = f"Model card: {details.get('name')} version {details.get('version', {}).get('name')}"
    ready = "Ready to promote" if card.get("promotion", {}).get("allowed") else "Not ready to promote"
    return title, str(details.get("overview", "")), ready


def _sections(card: dict[str, Any]) -> list[_Section]:
    details, params = card.get("model_details", {}), card.get("model_parameters", {})
    analysis, considerations = card.get("quantitative_analysis", {}), card.get("considerations", {})
    lineage, history = card.get("lineage", {}), card.get("reviews", {}).get("history", [])
    version, environment = details.get("version", {}), details.get("environment") or {}
    owners = ", ".join(str(o.get("name", "")) for o in details.get("owners", []))
    graphics = analysis.get("graphics", {})
    dirty = {True: "yes", False: "no"}.get(lineage.get("git_dirty"), "unknown")

    def bullets(key: str) -> list[tuple[Any, ...]]:
        return [(item,) for item in considerations.get(key, [])]

    return [
        _Section("Model details", [
            ("path", details.get("path")), ("version", version.get("name")), ("date", version.get("date")),
            ("aliases", ", ".join(version.get("aliases", [])) or "none"), ("status", version.get("status")),
            ("owners", owners or f"Not documented: add governance.{details.get('name')}.owners to shipyard.yaml."),
            ("licenses", ", ".join(map(str, details.get("licenses", []))) or "Not documented."),
            ("architecture", params.get("model_architecture")), ("task", params.get("task")),
            ("flavor", details.get("flavor")), ("artifact digest", details.get("artifact_digest")),
            ("registered by", details.get("registered_by")), ("registered at", details.get("registered_at")),
            ("python", environment.get("python")),
            ("packages", ", ".join(f"{k} {v}" for k, v in (environment.get("packages") or {}).items())),
            ("input", params.get("input_format")), ("output", params.get("output_format")),
        ], ("", "")),
        _Section("Intended use", bullets("use_cases")),
        _Section("Limitations", bullets("limitations")),
        _Section("Users", bullets("users")),
        _Section("Data", [(part, d.get("name") or d.get("note"), d.get("row_count"),
                           d.get("note") if d.get("name") else "", d.get("link"))
                          for part, d in params.get("data", {}).items()], ("", "Dataset", "Rows", "Note", "Lineage")),
        _Section("Evaluation", [(note,) for note in [analysis.get("data"), graphics.get("description"),
                                                     *analysis.get("notes", [])] if note],
                 plots=list(graphics.get("collection", []))),
        _Section("Performance metrics", [(m.get("type"), m.get("slice"), m.get("value"), m.get("gate"),
                                          m.get("dataset"))
                                         for m in analysis.get("performance_metrics", [])],
                 ("Metric", "Slice", "Value", "Gate", "Data")) if analysis.get("performance_metrics") else
        _Section("Performance metrics", [("None recorded.",)]),
        _Section("Gates", [(g, e.get("status"), e.get("summary"), e.get("waived_by") or "",
                            e.get("waiver_reason") or "") for g, e in card.get("gates", {}).items()],
                 ("Gate", "Status", "Summary", "Waived by", "Reason"))
        if card.get("gates") else _Section("Gates", [("No gates are declared in shipyard.yaml.",)]),
        _Section("Ethical considerations", [(r.get("name"), r.get("mitigation_strategy"))
                                            for r in considerations.get("ethical_considerations", [])],
                 ("Consideration", "Mitigation")),
        _Section("Tradeoffs", bullets("tradeoffs")),
        _Section("Reviews", [(r.get("kind"), r.get("status"), r.get("requested_by"), r.get("decided_by"),
                              r.get("notes")) for r in history],
                 ("Kind", "Status", "Requested by", "Decided by", "Notes"))
        if history else _Section("Reviews", [("None recorded.",)]),
        _Section("Lineage", [("run", lineage.get("run_id")), ("git commit", lineage.get("git_commit")),
                             ("uncommitted changes", dirty), ("training data", lineage.get("training_dataset")),
                             *((e.get("relation"), f"{e.get('source')} → {e.get('target')}")
                               for e in lineage.get("upstream", []))], ("", ""), anchor="lineage"),
        _Section("Promotion", [(p,) for p in card.get("promotion", {}).get("problems", [])]
                 or [("Every configured gate and required review allows it.",)]),
    ]


def _cell(header: str, value: Any) -> str:
    if header == "Status" and isinstance(value, str):
        return f'<td><span class="status {_STATUS_CLASS.get(value, "none")}">{escape(value)}</span></td>'
    number = ' class="num"' if isinstance(value, int | float) and not isinstance(value, bool) else ""
    return f"<td{number}>{escape(_text(value))}</td>"


def _text(value: Any) -> str:
    return "–" if value is None else value if isinstance(value, str) else format_value(value)


def _svg(image: Any) -> str:
    """An image as build_card draws it (inline SVG); anything else, or SVG that could load or run something,
    is shown as a note instead."""
    if isinstance(image, str) and image.startswith("<svg ") and image.endswith("</svg>"):
        if not _UNSAFE_SVG.search(image):
            return image
    return '<p class="meta">This image is not an inline SVG drawn by Shipyard, so it is not shown.</p>'


def _md(value: Any) -> str:
    """Text for a Markdown line or table cell: no raw HTML tag can open, pipes and newlines are neutralised."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", _text(value)).replace("|", "\\|").replace("\n", " ")
