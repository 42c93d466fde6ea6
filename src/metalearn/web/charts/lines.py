"""Line charts drawn on the server as SVG: metric curves over steps, one polyline per series."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from metalearn.web.charts.axes import (
    GRID,
    Scale,
    colour,
    empty_chart,
    finite,
    fmt,
    legend_head,
    nice_ticks,
    text,
    x_axis,
    x_ticks,
    y_axis,
)
from metalearn.web.charts.axes import x_label as horizontal_label

# The plot area's margins in pixels; its top is TOP plus the legend's height plus GAP.
LEFT, RIGHT, BOTTOM, TOP, GAP = 60, 16, 40, 28, 6
DASH = "6 4"


@dataclass(frozen=True)
class Series:
    """One curve: its name (in the legend), its (x, y) points, and whether it is drawn dashed."""

    name: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


def _kept(series: Series) -> list[tuple[float, float]]:
    """The series' points whose x and y are both finite numbers (None and NaN are skipped)."""
    return [(float(x), float(y)) for x, y in series.points if finite(x) and finite(y)]


def _swatch(index: int, dashed: bool) -> Markup:
    dash = f' stroke-dasharray="{DASH}"' if dashed else ""
    return Markup(f'<line x1="0" x2="16" y1="0" y2="0" stroke="{colour(index)}" stroke-width="2"{dash}/>')


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str, metric: str = "",
               element_id: str | None = None, width: int = 560, height: int = 300) -> Markup:
    """An <svg class="chart"> of the series over a shared pair of axes with round ticks, a
    legend naming each series, and a title; a series with a single point is drawn as a dot.
    Every text is escaped, so names may come from users."""
    drawn = [(i, s, pts) for i, s in enumerate(series) if (pts := _kept(s))]
    if not drawn:
        return empty_chart(title=title, metric=metric, element_id=element_id, width=width)
    names = [s.name for _, s, _ in drawn]
    bottom, right = height - BOTTOM, width - RIGHT
    head, below = legend_head(names, [_swatch(i, s.dashed) for i, s, _ in drawn], width=width, height=height,
                              title=title, metric=metric, element_id=element_id, left=LEFT, right=right, top=TOP)
    top = below + GAP
    xs = [x for _, _, pts in drawn for x, _ in pts]
    ys = [y for _, _, pts in drawn for _, y in pts]
    ticks = nice_ticks(min(xs), max(xs), max(2, int((right - LEFT) / 90)))
    sx = Scale(ticks[0], ticks[-1], LEFT, right)
    axis = y_axis(ys, top=top, bottom=bottom, left=LEFT, right=right, label=y_label)
    sy = axis.scale
    parts = [head, axis.grid, x_ticks(ticks, sx, bottom=bottom, step=ticks[1] - ticks[0]),
             x_axis(left=LEFT, right=right, y=bottom),
             f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{fmt(top)}" y2="{fmt(bottom)}" stroke="{GRID}"/>',
             horizontal_label(x_label, left=LEFT, right=right, y=height - 6), axis.name]
    for i, s, pts in drawn:
        tip = f"<title>{text(s.name)}</title>"
        if len(pts) == 1:
            x, y = pts[0]
            parts.append(f'<circle class="point" data-series="{text(s.name)}" cx="{fmt(sx(x))}" '
                         f'cy="{fmt(sy(y))}" r="3.5" fill="{colour(i)}">{tip}</circle>')
            continue
        dash = f' stroke-dasharray="{DASH}"' if s.dashed else ""
        coords = " ".join(f"{fmt(sx(x))},{fmt(sy(y))}" for x, y in pts)
        parts.append(f'<polyline class="series{" dashed" if s.dashed else ""}" data-series="{text(s.name)}" '
                     f'points="{coords}" fill="none" stroke="{colour(i)}" stroke-width="1.8"{dash} '
                     f'stroke-linejoin="round">{tip}</polyline>')
    parts.append("</svg>")
    return Markup("".join(parts))
