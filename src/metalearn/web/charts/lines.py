"""Line charts drawn on the server as SVG: metric curves over steps, one polyline per series."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from metalearn.web.charts.axes import (
    GRID,
    INK,
    Scale,
    colour,
    empty_chart,
    finite,
    fmt,
    grid_lines,
    legend,
    nice_ticks,
    open_svg,
    short,
    text,
    tick_label,
)
from metalearn.web.charts.axes import y_label as vertical_label

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
    keys, key_h = legend(names, left=LEFT, top=TOP, width=width - LEFT - RIGHT,
                         swatches=[_swatch(i, s.dashed) for i, s, _ in drawn])
    top, bottom, right = TOP + key_h + GAP, height - BOTTOM, width - RIGHT
    xs = [x for _, _, pts in drawn for x, _ in pts]
    ys = [y for _, _, pts in drawn for _, y in pts]
    x_ticks = nice_ticks(min(xs), max(xs), max(2, int((right - LEFT) / 90)))
    y_ticks = nice_ticks(min(ys), max(ys), max(2, int((bottom - top) / 45)))
    sx = Scale(x_ticks[0], x_ticks[-1], LEFT, right)
    sy = Scale(y_ticks[0], y_ticks[-1], bottom, top)
    x_step, y_step = x_ticks[1] - x_ticks[0], y_ticks[1] - y_ticks[0]
    parts = [open_svg(width=width, height=height, title=title, metric=metric, element_id=element_id),
             f'<text class="chart-title" x="12" y="18" font-weight="600">{text(short(title, 80))}</text>',
             keys, grid_lines(y_ticks, sy, x0=LEFT, x1=right, step=y_step)]
    for v in x_ticks:
        x = fmt(sx(v))
        parts.append(f'<line class="tick" x1="{x}" x2="{x}" y1="{fmt(bottom)}" y2="{fmt(bottom + 4)}" '
                     f'stroke="{INK}"/><text class="tick" x="{x}" y="{fmt(bottom + 15)}" '
                     f'text-anchor="middle">{text(tick_label(v, x_step))}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{fmt(right)}" y1="{fmt(bottom)}" y2="{fmt(bottom)}" '
                 f'stroke="{INK}"/><line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{fmt(top)}" '
                 f'y2="{fmt(bottom)}" stroke="{GRID}"/>')
    parts.append(f'<text class="axis-label" x="{fmt((LEFT + right) / 2)}" y="{fmt(height - 6)}" '
                 f'text-anchor="middle">{text(short(x_label, 60))}</text>')
    if y_label:
        parts.append(vertical_label(y_label, x=14, y=(top + bottom) / 2))
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
