"""What the charts share: nice tick values, a linear scale, tick labels, the palette, the
legend, escaped text, the frame (the svg tag and title, the axes with their ticks and names),
and the small chart shown before there is anything to draw."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from metalearn.visible import visible

# Colour-blind-friendly (Okabe-Ito, then Tableau): series i always gets PALETTE[i % len].
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#000000",
           "#4e79a7", "#f28e2b", "#59a14f", "#e15759")
INK, GRID, MUTED = "#1d2330", "#e3e6eb", "#6b7280"
CHAR_W = 6.5  # rough width of one 11 px character, for wrapping and rotating labels
LEGEND_ROW = 16
MAX_LABEL = 40  # characters of a name shown in a legend or under an axis; the rest in a tooltip


def text(value: object) -> Markup:
    """value as SVG/HTML text: control characters written out, then escaped."""
    return escape(visible(str(value)))


def short(value: object, limit: int = MAX_LABEL) -> str:
    """value cut to limit characters (an ellipsis marks the cut)."""
    s = str(value)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def finite(value: float | None) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About count round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) whose first
    is <= lo and last >= hi; an empty span is widened around its value."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"ticks need finite bounds, not {lo!r}..{hi!r}")
    if lo > hi:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float, step: float) -> str:
    """A tick's text: as many decimals as the step needs, thousands as k, millions as M."""
    if value == 0:
        return "0"
    big = abs(value)
    if big >= 1e6 and step >= 1e5:
        return f"{value / 1e6:g}M"
    if big >= 1e4 and step >= 1e3:
        return f"{value / 1e3:g}k"
    if step >= 1:
        return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (0 if _round_step(step) else 1)
    return f"{value:.{decimals}f}"


def _round_step(step: float) -> bool:
    """Whether the step's mantissa needs one digit (1, 2, 5) rather than two (2.5)."""
    mantissa = step / 10.0 ** math.floor(math.log10(step) + 1e-9)
    return abs(mantissa - round(mantissa)) < 1e-6


@dataclass(frozen=True)
class Scale:
    """Linear map from the domain [lo, hi] to pixels [start, end] (end < start for a y axis)."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return (self.start + self.end) / 2
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def fmt(value: float) -> str:
    """A pixel coordinate in the SVG (two decimals, no trailing zeros)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def legend(names: Sequence[str], *, left: float, top: float, width: float,
           swatches: Sequence[Markup]) -> tuple[Markup, float]:
    """Legend entries laid out in rows from (left, top) within width: each a swatch (drawn by
    the caller around the origin, 0..16 wide, centred on y=0) and its name; returns the SVG and
    the height used."""
    parts: list[str] = []
    x, y = left, top
    for name, swatch in zip(names, swatches, strict=True):
        label = short(name)
        w = 22 + CHAR_W * len(label) + 14
        if x > left and x + w > left + width:
            x, y = left, y + LEGEND_ROW
        parts.append(f'<g class="legend-item" transform="translate({fmt(x)} {fmt(y + LEGEND_ROW / 2)})">'
                     f'<title>{text(name)}</title>{swatch}'
                     f'<text x="22" y="0" dominant-baseline="middle">{text(label)}</text></g>')
        x += w
    height = (y - top + LEGEND_ROW) if names else 0.0
    return Markup("".join(parts)), height


def open_svg(*, width: int, height: int, title: str, metric: str, element_id: str | None,
             extra_class: str = "") -> str:
    """The <svg> start tag and its accessible <title>."""
    ident = f' id="{escape(element_id)}"' if element_id else ""
    cls = f"chart {extra_class}".strip()
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}"{ident} data-metric="{text(metric)}" '
            f'role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f"<title>{text(title)}</title>")


def empty_chart(*, title: str, metric: str, element_id: str | None, width: int) -> Markup:
    """A small chart saying there is no data yet (nothing logged, or every value missing)."""
    height = 60
    return Markup(open_svg(width=width, height=height, title=title, metric=metric, element_id=element_id,
                           extra_class="empty")
                  + f'<text x="12" y="22" font-weight="600">{text(short(title, 80))}</text>'
                  + f'<text x="12" y="44" fill="{MUTED}" class="no-data">no data yet</text></svg>')


def _per_tick(values: Iterable[float], scale: Scale, step: float, draw: Callable[[str, Markup], str]) -> str:
    """draw(position in pixels, label) for each tick value, joined."""
    return "".join(draw(fmt(scale(v)), text(tick_label(v, step))) for v in values)


def grid_lines(values: Iterable[float], scale: Scale, *, x0: float, x1: float, step: float) -> str:
    """Horizontal grid lines and their labels left of x0 for each y tick value."""
    return _per_tick(values, scale, step, lambda y, label: (
        f'<line class="gridline" x1="{fmt(x0)}" x2="{fmt(x1)}" y1="{y}" y2="{y}" stroke="{GRID}"/>'
        f'<text class="tick" x="{fmt(x0 - 6)}" y="{y}" text-anchor="end" dominant-baseline="middle">{label}</text>'))


def y_label(label: str, *, x: float, y: float) -> str:
    """The y axis' name, rotated, centred at (x, y)."""
    return (f'<text class="axis-label" x="{fmt(x)}" y="{fmt(y)}" text-anchor="middle" '
            f'transform="rotate(-90 {fmt(x)} {fmt(y)})">{text(short(label, 60))}</text>')


def chart_head(*, width: int, height: int, title: str, metric: str, element_id: str | None,
               extra_class: str = "", title_chars: int = 80) -> str:
    """The <svg> start tag, its accessible <title>, and the title shown at the top left."""
    return (open_svg(width=width, height=height, title=title, metric=metric, element_id=element_id,
                     extra_class=extra_class)
            + f'<text class="chart-title" x="12" y="18" font-weight="600">{text(short(title, title_chars))}</text>')


def legend_head(names: Sequence[str], swatches: Sequence[Markup], *, width: int, height: int, title: str,
                metric: str, element_id: str | None, extra_class: str = "", left: float, right: float,
                top: float) -> tuple[str, float]:
    """The start of a chart with a legend under its title: chart_head, then the legend laid out
    from (left, top) to right (see legend); returns the SVG and the y where the legend ends."""
    keys, height_used = legend(names, left=left, top=top, width=right - left, swatches=swatches)
    return (chart_head(width=width, height=height, title=title, metric=metric, element_id=element_id,
                       extra_class=extra_class) + str(keys), top + height_used)


@dataclass(frozen=True)
class YAxis:
    """A chart's y axis: its scale, its grid lines with their tick labels, and its name rotated
    at the left edge (empty without a name)."""

    scale: Scale
    grid: str
    name: str


def y_axis(values: Sequence[float], *, top: float, bottom: float, left: float, right: float,
           label: str) -> YAxis:
    """A y axis with round ticks (one per about 45 px) spanning values, between top and bottom."""
    ticks = nice_ticks(min(values), max(values), max(2, int((bottom - top) / 45)))
    scale = Scale(ticks[0], ticks[-1], bottom, top)
    return YAxis(scale, grid_lines(ticks, scale, x0=left, x1=right, step=ticks[1] - ticks[0]),
                 y_label(label, x=14, y=(top + bottom) / 2) if label else "")


def x_ticks(values: Iterable[float], scale: Scale, *, bottom: float, step: float) -> str:
    """Tick marks under the x axis (at y=bottom) and their labels below them."""
    return _per_tick(values, scale, step, lambda x, label: (
        f'<line class="tick" x1="{x}" x2="{x}" y1="{fmt(bottom)}" y2="{fmt(bottom + 4)}" stroke="{INK}"/>'
        f'<text class="tick" x="{x}" y="{fmt(bottom + 15)}" text-anchor="middle">{label}</text>'))


def x_axis(*, left: float, right: float, y: float) -> str:
    """The x axis' line from left to right at y."""
    return f'<line class="axis" x1="{fmt(left)}" x2="{fmt(right)}" y1="{fmt(y)}" y2="{fmt(y)}" stroke="{INK}"/>'


def x_label(label: str, *, left: float, right: float, y: float) -> str:
    """The x axis' name, centred between left and right, its baseline at y."""
    return (f'<text class="axis-label" x="{fmt((left + right) / 2)}" y="{fmt(y)}" '
            f'text-anchor="middle">{text(short(label, 60))}</text>')
