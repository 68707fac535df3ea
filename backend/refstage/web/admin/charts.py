"""Inline SVG charts, rendered on the server: no JavaScript, no CDN, readable by screen readers
(role="img" with a title and a description listing every value, and the same numbers in a table
next to each chart). Text is 14 px in a 720-unit-wide view box, so it stays legible when the chart
is scaled to a phone; every chart has a labelled value axis with gridlines, and a legend when it
shows more than one series."""

from __future__ import annotations

import math
from typing import Sequence

from markupsafe import Markup, escape

WIDTH = 720
PLOT_H = 220
TOP = 34
LEFT = 64
RIGHT = 16
FONT = 14
INK, MUTED, GRID = "#1b1b1b", "#4a4a4a", "#d9d9d9"
PALETTE = ("#0b5cab", "#b35900", "#2e7d32", "#6a1b9a")


def _fmt(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _nice_ticks(peak: float, count: int = 4, whole: bool = False) -> list[float]:
    """Round tick values from 0 to at least `peak` (1, 2, 2.5 or 5 times a power of ten); counts
    (`whole`) never get fractional ticks."""
    if peak <= 0:
        return [0.0, 1.0]
    raw = peak / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    ticks, v = [], 0.0
    while v < peak + step * 0.999:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _frame(chart_id: str, title: str, summary: str, height: int) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{cid}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="{cid}-t {cid}-d" font-family="system-ui, sans-serif">',
        f'<title id="{cid}-t">{escape(title)}</title>',
        f'<desc id="{cid}-d">{escape(summary)}</desc>',
    ]


def _value_axis(parts: list[str], ticks: list[float], unit: str, axis_title: str) -> float:
    top = ticks[-1] or 1.0
    for t in ticks:
        y = TOP + PLOT_H - (t / top) * PLOT_H
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y + 5:.1f}" text-anchor="end" font-size="{FONT}" fill="{MUTED}">'
                     f'{escape(_fmt(t) + unit)}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + PLOT_H}" stroke="{MUTED}" stroke-width="1"/>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP + PLOT_H}" x2="{WIDTH - RIGHT}" y2="{TOP + PLOT_H}" stroke="{MUTED}" stroke-width="1"/>')
    if axis_title:
        parts.append(f'<text x="{LEFT}" y="{TOP - 14}" font-size="{FONT}" fill="{MUTED}">{escape(axis_title)}</text>')
    return top


def _category_labels(parts: list[str], labels: Sequence[str], slot: float) -> int:
    """Labels under the bars; slanted when they would collide. Returns the height they take."""
    n = len(labels)
    limit = max(int(slot / 8), 4)
    slanted = any(len(lb) > limit for lb in labels) and n > 3
    for i, label in enumerate(labels):
        cx = LEFT + i * slot + slot / 2
        y = TOP + PLOT_H + 20
        text = escape(_short(label, 18 if slanted else limit))
        if slanted:
            parts.append(f'<text x="{cx:.1f}" y="{y:.1f}" text-anchor="end" font-size="{FONT}" fill="{INK}" '
                         f'transform="rotate(-35 {cx:.1f} {y:.1f})">{text}</text>')
        else:
            parts.append(f'<text x="{cx:.1f}" y="{y:.1f}" text-anchor="middle" font-size="{FONT}" fill="{INK}">{text}</text>')
    return 100 if slanted else 34


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], *, unit: str = "",
              chart_id: str = "chart", color: str = PALETTE[0], axis_title: str = "") -> Markup:
    """Vertical bars with a value axis; `None` is an empty slot labelled "n/a"."""
    return grouped_bar_chart(title, labels, [(axis_title or title, list(values), color)], unit=unit, chart_id=chart_id,
                             axis_title=axis_title, legend=False)


def grouped_bar_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None], str]], *,
                      unit: str = "", chart_id: str = "chart", axis_title: str = "", legend: bool = True) -> Markup:
    """Bars for one or more series per category (e.g. referred and qualified per week), with a legend."""
    n = max(len(labels), 1)
    nums = [v for _, vals, _ in series for v in vals if v is not None]
    ticks = _nice_ticks(max(nums) if nums else 0, whole=all(float(v).is_integer() for v in nums))
    slot = (WIDTH - LEFT - RIGHT) / n
    group_w = min(slot * 0.75, 90 * len(series))
    bar_w = max(group_w / max(len(series), 1), 3)
    summary = "; ".join(
        f"{name}: " + (", ".join(f"{lb} {'n/a' if v is None else _fmt(v) + unit}" for lb, v in zip(labels, vals)) or "no data")
        for name, vals, _ in series)
    label_h = 100 if any(len(lb) > max(int(slot / 8), 4) for lb in labels) and n > 3 else 34
    legend_h = 30 if legend and len(series) > 1 else 0
    height = TOP + PLOT_H + label_h + legend_h
    parts = _frame(chart_id, title, summary, height)
    top = _value_axis(parts, ticks, unit, axis_title)
    if not labels:
        parts.append(f'<text x="{WIDTH / 2}" y="{TOP + PLOT_H / 2}" text-anchor="middle" font-size="{FONT}" fill="{MUTED}">'
                     'No data for this filter</text>')
    for i in range(len(labels)):
        x0 = LEFT + i * slot + (slot - group_w) / 2
        for j, (name, vals, color) in enumerate(series):
            value = vals[i] if i < len(vals) else None
            x = x0 + j * bar_w
            if value is None:
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{TOP + PLOT_H - 6}" text-anchor="middle" font-size="{FONT - 2}" '
                             f'fill="{MUTED}">n/a</text>')
                continue
            h = (value / top) * PLOT_H if top else 0
            y = TOP + PLOT_H - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{escape(color)}" '
                         f'data-value="{escape(str(value))}"><title>{escape(labels[i])}, {escape(name)}: '
                         f'{escape(_fmt(value) + unit)}</title></rect>')
            if len(labels) * len(series) <= 16:
                parts.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{y - 5:.1f}" text-anchor="middle" font-size="{FONT - 1}" '
                             f'fill="{INK}">{escape(_fmt(value) + unit)}</text>')
    _category_labels(parts, labels, slot)
    if legend_h:
        x = LEFT
        y = height - 10
        for name, _, color in series:
            parts.append(f'<rect x="{x}" y="{y - 12}" width="14" height="14" fill="{escape(color)}"/>')
            parts.append(f'<text x="{x + 20}" y="{y}" font-size="{FONT}" fill="{INK}">{escape(name)}</text>')
            x += 40 + 9 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def funnel_chart(title: str, steps: Sequence[tuple[str, int]], *, chart_id: str = "funnel") -> Markup:
    """Horizontal bars, one per stage, each with its count and its share of the stage before."""
    row_h, label_w = 44, 190
    height = TOP + row_h * max(len(steps), 1)
    peak = max((n for _, n in steps), default=0) or 1
    summary = ", ".join(f"{label}: {n}" for label, n in steps) or "no data"
    parts = _frame(chart_id, title, summary, height)
    span = WIDTH - label_w - RIGHT - 150
    prev: int | None = None
    for i, (label, n) in enumerate(steps):
        y = TOP + i * row_h
        w = max((n / peak) * span, 2)
        share = f"  ({round(100 * n / prev)} %)" if prev else ""
        parts.append(f'<text x="{label_w - 10}" y="{y + 24}" text-anchor="end" font-size="{FONT}" fill="{INK}">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 6}" width="{w:.1f}" height="{row_h - 14}" fill="{PALETTE[0]}" rx="3">'
                     f'<title>{escape(label)}: {n}</title></rect>')
        parts.append(f'<text x="{label_w + w + 8:.1f}" y="{y + 24}" font-size="{FONT}" fill="{INK}">'
                     f'<tspan font-weight="700">{n:,}</tspan><tspan fill="{MUTED}">{escape(share)}</tspan></text>')
        prev = n
    parts.append("</svg>")
    return Markup("".join(parts))
