"""Inline SVG charts for monitoring reports: a column's reference and current distributions, and a score's
history against its threshold. Every label is escaped; nothing is loaded or run."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from shipyard.data.report import CURRENT_COLOUR, REFERENCE_COLOUR, format_value

DRIFT_COLOUR = "#c53030"
MAX_CATEGORIES = 20  # more bars than this stop being readable; the rest are counted beneath the chart
_WIDTH = 340
_P_FLOOR = 1e-16  # p-values below this are drawn on the chart's floor (scipy's p-values underflow to 0)


def number(value: Any) -> float | None:
    """A finite number, or None for anything else (None, text, NaN, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def distribution_svg(distribution: dict[str, Any]) -> str:
    """Reference and current shares side by side: vertical bars over numeric bins, horizontal ones per
    category; a note instead of a chart when the distribution's lists do not fit together."""
    kind = distribution.get("kind")
    reference, current = distribution.get("reference") or [], distribution.get("current") or []
    if kind == "numeric":
        edges = distribution.get("edges") or []
        if not reference or len(edges) != len(reference) + 1 or len(current) != len(reference):
            return _note(f"The distribution cannot be drawn: {len(edges)} bin edges for {len(reference)} "
                         f"reference and {len(current)} current shares.")
        return _bins_svg([_edge(e) for e in edges], reference, current)
    if kind == "categorical":
        categories = [str(c) for c in distribution.get("categories") or []]
        if not categories or len(reference) != len(categories) or len(current) != len(categories):
            return _note(f"The distribution cannot be drawn: {len(categories)} categories for {len(reference)} "
                         f"reference and {len(current)} current shares.")
        return _categories_svg(categories, reference, current)
    return _note(f"The distribution cannot be drawn: its kind is {kind!r}, not numeric or categorical.")


def _legend(y: int) -> str:
    return (f'<rect x="4" y="{y}" width="10" height="10" fill="{REFERENCE_COLOUR}"/>'
            f'<text x="18" y="{y + 9}">reference</text>'
            f'<rect x="80" y="{y}" width="10" height="10" fill="{CURRENT_COLOUR}"/>'
            f'<text x="94" y="{y + 9}">current</text>')


def _svg(width: int, height: int, label: str, items: list[str]) -> str:
    return (f'<svg width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">{"".join(items)}</svg>')


def _bins_svg(edges: list[str], reference: list[Any], current: list[Any]) -> str:
    """One pair of bars a bin, the bins drawn equally wide: the outermost ones may be open."""
    top, plot, left = 16, 100, 4
    height = top + plot + 16
    pairs = [(number(r) or 0.0, number(c) or 0.0) for r, c in zip(reference, current, strict=True)]
    most = max((max(p) for p in pairs), default=0.0) or 1.0
    slot = (_WIDTH - 2 * left) / len(pairs)
    bar = max(slot / 2 - 1, 0.5)
    items = [_legend(2)]
    for i, (ref, cur) in enumerate(pairs):
        x = left + i * slot
        tip = f"{edges[i]} to {edges[i + 1]}: reference {ref:.1%}, current {cur:.1%}"
        for offset, share, colour in ((0.0, ref, REFERENCE_COLOUR), (bar, cur, CURRENT_COLOUR)):
            size = share / most * plot
            items.append(f'<rect x="{x + offset:.1f}" y="{top + plot - size:.1f}" width="{bar:.1f}" '
                         f'height="{size:.1f}" fill="{colour}"><title>{escape(tip)}</title></rect>')
    items.append(f'<text x="{left}" y="{height - 3}">{escape(edges[0])}</text>'
                 f'<text x="{_WIDTH - left}" y="{height - 3}" text-anchor="end">{escape(edges[-1])}</text>')
    return _svg(_WIDTH, height, "reference and current distribution by bin", items)


def _categories_svg(categories: list[str], reference: list[Any], current: list[Any]) -> str:
    """A row a category: the current share's bar over the reference's, each share written after its bar."""
    shown = categories[:MAX_CATEGORIES]
    row, label_width, top = 22, 110, 16
    height = top + row * len(shown) + (14 if len(categories) > len(shown) else 2)
    pairs = [(number(r) or 0.0, number(c) or 0.0) for r, c in zip(reference, current, strict=True)]
    most = max((max(p) for p in pairs), default=0.0) or 1.0
    scale = (_WIDTH - label_width - 44) / most
    items = [_legend(2)]
    for i, category in enumerate(shown):
        y, (ref, cur) = top + i * row, pairs[i]
        short = category if len(category) <= 16 else category[:15] + "…"
        items.append(f'<text x="{label_width - 4}" y="{y + 12}" text-anchor="end">{escape(short)}'
                     f'<title>{escape(category)}</title></text>')
        for dy, size, share, colour, name in ((0, 9, ref, REFERENCE_COLOUR, "reference"),
                                              (10, 9, cur, CURRENT_COLOUR, "current")):
            items.append(f'<rect x="{label_width}" y="{y + dy}" width="{share * scale:.1f}" height="{size}" '
                         f'fill="{colour}"><title>{escape(category)}: {name} {share:.1%}</title></rect>'
                         f'<text x="{label_width + share * scale + 3:.1f}" y="{y + dy + 8}">{share:.1%}</text>')
    if len(categories) > len(shown):
        items.append(f'<text x="4" y="{height - 3}">and {len(categories) - len(shown)} more categories</text>')
    return _svg(_WIDTH, height, "reference and current share by category", items)


def history_svg(points: list[tuple[str, float | None]], threshold: float | None, *, p_values: bool) -> str:
    """A score over successive reports (label, score), oldest first, with the threshold as a dashed line.
    P-values are drawn on a log scale, where a drift is a plunge rather than a speck near zero."""
    values = [(label, v) for label, v in points if v is not None]
    if not values:
        return _note("No earlier scores to draw.")
    limit = number(threshold)
    if p_values:
        def scaled(v: float) -> float:
            return math.log10(max(v, _P_FLOOR))
        lowest = min([scaled(v) for _, v in values] + ([scaled(limit)] if limit else []))
        low, high = float(min(-2, math.floor(lowest))), 0.0
        axis = ("1", f"1e{int(low)}")
    else:
        def scaled(v: float) -> float:
            return v
        low, high = 0.0, max(max(v for _, v in values), limit or 0.0) * 1.15 or 1.0
        axis = (f"{high:.2g}", "0")
    left, top, plot, width = 40, 6, 70, _WIDTH
    height = top + plot + 16

    def x(i: int) -> float:
        return left + (width - left - 8) * (i / (len(values) - 1) if len(values) > 1 else 0.5)

    def y(v: float) -> float:
        return top + plot * (high - scaled(v)) / ((high - low) or 1.0)

    items = [f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{axis[0]}</text>'
             f'<text x="{left - 4}" y="{top + plot}" text-anchor="end">{axis[1]}</text>'
             f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot}" stroke="#cbd2d9"/>']
    if limit is not None:
        items.append(f'<line x1="{left}" x2="{width - 4}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" '
                     f'stroke="{DRIFT_COLOUR}" stroke-dasharray="4 3"><title>threshold '
                     f'{escape(format_value(limit))}</title></line>')
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(values))
    items.append(f'<polyline points="{line}" fill="none" stroke="{CURRENT_COLOUR}" stroke-width="1.5"/>')
    for i, (label, v) in enumerate(values):
        beyond = limit is not None and (v < limit if p_values else v >= limit)
        items.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" '
                     f'fill="{DRIFT_COLOUR if beyond else CURRENT_COLOUR}"><title>{escape(label)}: '
                     f'{escape(format_value(v))}</title></circle>')
    items.append(f'<text x="{left}" y="{height - 3}">{escape(values[0][0])}</text>'
                 f'<text x="{width - 4}" y="{height - 3}" text-anchor="end">{escape(values[-1][0])}</text>')
    return _svg(width, height, "score over earlier reports", items)


def _edge(value: Any) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return format_value(value)


def _note(text: str) -> str:
    return f'<p class="meta">{escape(text)}</p>'
