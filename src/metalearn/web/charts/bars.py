"""Grouped bar charts with 95% interval whiskers, drawn on the server as SVG: meta-test scores
per held-out group, one bar per series (attempt, metric) within each group."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from metalearn.web.charts.axes import (
    CHAR_W,
    INK,
    colour,
    empty_chart,
    finite,
    fmt,
    legend_head,
    short,
    text,
    x_axis,
    y_axis,
)

LEFT, RIGHT, TOP, GAP = 60, 16, 28, 6
ROTATE = 35  # degrees group labels turn when they do not fit under their group
ROTATED_MAX = 24  # characters of a rotated group label (the full name in its tooltip)
MIN_PLOT = 80  # pixels the plot keeps however long the labels


@dataclass(frozen=True)
class BarSeries:
    """One bar per group: its values and their 95% half-intervals (None: not measured)."""

    name: str
    values: Sequence[float | None]
    ci95: Sequence[float | None]


def _number(value: float) -> str:
    return f"{value:.4g}"


def _swatch(index: int) -> Markup:
    return Markup(f'<rect x="2" y="-5" width="12" height="10" fill="{colour(index)}"/>')


def interval_bars(groups: Sequence[str], series: Sequence[BarSeries], *, title: str, y_label: str,
                  element_id: str | None = None, width: int = 640, height: int = 320) -> Markup:
    """An <svg class="chart"> with, in each group, one bar per series and a whisker for its 95%
    interval; group names under the axis (turned when long), a legend and a title. Every text
    is escaped, so names may come from users."""
    for s in series:
        if len(s.values) != len(groups) or len(s.ci95) != len(groups):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values and {len(s.ci95)} intervals "
                             f"for {len(groups)} groups")
    cells = [(v, c) for s in series for v, c in zip(s.values, s.ci95, strict=True) if finite(v)]
    if not groups or not cells:
        return empty_chart(title=title, metric="", element_id=element_id, width=width)
    right = width - RIGHT
    head, below = legend_head([s.name for s in series], [_swatch(i) for i in range(len(series))], width=width,
                              height=height, title=title, metric="", element_id=element_id, extra_class="bars",
                              left=LEFT, right=right, top=TOP)
    top = below + GAP
    group_w = (right - LEFT) / len(groups)
    rotated = any(CHAR_W * len(short(g)) > group_w - 4 for g in groups)
    labels = [short(g, ROTATED_MAX if rotated else 40) for g in groups]
    longest = max(len(label) for label in labels)
    below = 20 + (CHAR_W * longest * math.sin(math.radians(ROTATE)) if rotated else 0)
    bottom = max(top + MIN_PLOT, height - below)
    ends = [0.0]
    for v, c in cells:
        ends += [v - c, v + c] if finite(c) else [v]
    axis = y_axis(ends, top=top, bottom=bottom, left=LEFT, right=right, label=y_label)
    sy = axis.scale
    parts = [head, axis.grid, axis.name]
    inner = group_w * 0.8
    bar_w = inner / max(1, len(series))
    zero = sy(0.0)
    for g, (group, label) in enumerate(zip(groups, labels, strict=True)):
        x0 = LEFT + g * group_w + (group_w - inner) / 2
        for i, s in enumerate(series):
            value, ci = s.values[g], s.ci95[g]
            if not finite(value):
                continue
            x, y = x0 + i * bar_w, sy(value)
            tip = f"{group} · {s.name}: {_number(value)}" + (f" ± {_number(ci)}" if finite(ci) else "")
            parts.append(f'<rect class="bar" x="{fmt(x + 1)}" y="{fmt(min(y, zero))}" '
                         f'width="{fmt(max(1.0, bar_w - 2))}" height="{fmt(abs(zero - y))}" '
                         f'fill="{colour(i)}"><title>{text(tip)}</title></rect>')
            if finite(ci):
                cx, lo, hi, cap = x + bar_w / 2, sy(value - ci), sy(value + ci), min(5.0, bar_w / 4)
                parts.append(f'<path class="whisker" d="M{fmt(cx)} {fmt(lo)}V{fmt(hi)}M{fmt(cx - cap)} {fmt(lo)}'
                             f'H{fmt(cx + cap)}M{fmt(cx - cap)} {fmt(hi)}H{fmt(cx + cap)}" stroke="{INK}" '
                             f'stroke-width="1.2" fill="none"/>')
        cx, ly = LEFT + (g + 0.5) * group_w, bottom + 14
        turn = f' transform="rotate(-{ROTATE} {fmt(cx)} {fmt(ly)})"' if rotated else ""
        anchor = "end" if rotated else "middle"
        parts.append(f'<text class="group-label" x="{fmt(cx)}" y="{fmt(ly)}" text-anchor="{anchor}"{turn}>'
                     f'<title>{text(group)}</title>{text(label)}</text>')
    parts.append(x_axis(left=LEFT, right=right, y=zero) + "</svg>")
    return Markup("".join(parts))
