"""Inline SVG bar charts, rendered on the server: no JavaScript, no CDN, readable by screen readers
(role="img" with a title and description, and the same numbers in a table next to the chart)."""

from __future__ import annotations

from typing import Sequence

from markupsafe import Markup, escape

WIDTH, BAR_AREA_H, LABEL_H, TOP = 640, 180, 60, 20


def _fmt(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}"


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], *, unit: str = "",
              chart_id: str = "chart", color: str = "#0b5cab") -> Markup:
    """A vertical bar chart. `None` values are drawn as an empty slot and labelled "n/a"."""
    n = max(len(values), 1)
    nums = [v for v in values if v is not None]
    peak = max(nums) if nums and max(nums) > 0 else 1.0
    slot = (WIDTH - 40) / n
    bar_w = max(min(slot * 0.7, 60), 4)
    height = TOP + BAR_AREA_H + LABEL_H
    summary = ", ".join(f"{label}: {'n/a' if v is None else _fmt(v) + unit}" for label, v in zip(labels, values)) or "no data"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d">',
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-d">{escape(summary)}</desc>',
        f'<line x1="30" y1="{TOP + BAR_AREA_H}" x2="{WIDTH - 10}" y2="{TOP + BAR_AREA_H}" stroke="#555" stroke-width="1"/>',
    ]
    if not values:
        parts.append(f'<text x="{WIDTH / 2}" y="{TOP + BAR_AREA_H / 2}" text-anchor="middle" fill="#333">No data for this filter</text>')
    for i, (label, value) in enumerate(zip(labels, values)):
        x = 30 + i * slot + (slot - bar_w) / 2
        cx = x + bar_w / 2
        if value is not None:
            h = (value / peak) * BAR_AREA_H if peak else 0
            y = TOP + BAR_AREA_H - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{escape(color)}" '
                         f'data-value="{escape(str(value))}"><title>{escape(label)}: {escape(_fmt(value) + unit)}</title></rect>')
            parts.append(f'<text x="{cx:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="12" fill="#222">{escape(_fmt(value) + unit)}</text>')
        else:
            parts.append(f'<text x="{cx:.1f}" y="{TOP + BAR_AREA_H - 4}" text-anchor="middle" font-size="12" fill="#333">n/a</text>')
        short = label if len(label) <= 14 else label[:13] + "…"
        parts.append(f'<text x="{cx:.1f}" y="{TOP + BAR_AREA_H + 16}" text-anchor="middle" font-size="11" fill="#222">{escape(short)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
