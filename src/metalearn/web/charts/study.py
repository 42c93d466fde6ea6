"""A study's charts drawn on the server as SVG: the optimisation history (each trial's value and
the best so far) and parallel coordinates (one axis per parameter plus the value, one line per
trial coloured by its value). Every text is escaped; styling is by presentation attributes and
classes only (the pages' CSP forbids inline styles)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from metalearn.web.charts.axes import (
    CHAR_W,
    GRID,
    INK,
    MUTED,
    Scale,
    chart_head,
    empty_chart,
    finite,
    fmt,
    nice_ticks,
    short,
    text,
    tick_label,
    x_axis,
    x_label,
    x_ticks,
    y_axis,
)

LEFT, RIGHT, TOP, BOTTOM = 60, 16, 44, 40
TRIAL_COLOUR, BEST_COLOUR = "#0072b2", "#d55e00"
# Viridis at five stops: worst value (0) to best (1); readable by the colour-blind and in grey.
RAMP = ((0.0, (253, 231, 37)), (0.25, (94, 201, 98)), (0.5, (33, 145, 140)), (0.75, (59, 82, 139)),
        (1.0, (68, 1, 84)))
LOG_SPAN = 100.0  # a positive numeric axis whose values span more than two decades is drawn in log scale


@dataclass(frozen=True)
class TrialPoint:
    """One trial for the charts: its number, value (None: not finished well) and parameters."""

    number: int
    value: float | None
    params: Mapping[str, Any]


def best_so_far(values: Sequence[float], *, maximize: bool) -> list[float]:
    """The running best of values in order: a running maximum, or minimum."""
    out: list[float] = []
    for v in values:
        out.append(v if not out else (max(out[-1], v) if maximize else min(out[-1], v)))
    return out


def ramp(t: float) -> str:
    """The colour of t in [0, 1] (0 worst, 1 best) on the RAMP, as #rrggbb."""
    t = min(1.0, max(0.0, t))
    for (t0, c0), (t1, c1) in zip(RAMP, RAMP[1:], strict=False):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return "#" + "".join(f"{round(a + (b - a) * f):02x}" for a, b in zip(c0, c1, strict=True))
    return "#" + "".join(f"{c:02x}" for c in RAMP[-1][1])


def history_chart(trials: Sequence[TrialPoint], *, metric: str, maximize: bool, element_id: str = "history",
                  width: int = 640, height: int = 300) -> Markup:
    """Each finished trial's value as a dot over its number, and the best value so far as a step
    line (a running maximum when maximize, else a running minimum)."""
    done = sorted((t for t in trials if finite(t.value)), key=lambda t: t.number)
    title = f"Optimisation history: {metric} ({'maximised' if maximize else 'minimised'})"
    if not done:
        return empty_chart(title=title, metric=metric, element_id=element_id, width=width)
    right, bottom = width - RIGHT, height - BOTTOM
    numbers = [t.number for t in done]
    values = [float(t.value) for t in done]  # type: ignore[arg-type]
    ticks = _integer_ticks(min(numbers), max(numbers), max(2, int((right - LEFT) / 60)))
    sx = Scale(ticks[0], ticks[-1], LEFT + 8, right - 8)
    axis = y_axis(values, top=TOP, bottom=bottom, left=LEFT, right=right, label=metric)
    sy = axis.scale
    x_step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    parts = [chart_head(width=width, height=height, title=title, metric=metric, element_id=element_id,
                        extra_class="history", title_chars=90),
             _history_key(), axis.grid, x_ticks(ticks, sx, bottom=bottom, step=x_step),
             x_axis(left=LEFT, right=right, y=bottom), x_label("trial", left=LEFT, right=right, y=height - 6),
             axis.name]
    best = best_so_far(values, maximize=maximize)
    steps: list[str] = []
    for i, (n, b) in enumerate(zip(numbers, best, strict=True)):
        if i:
            steps.append(f"{fmt(sx(n))},{fmt(sy(best[i - 1]))}")
        steps.append(f"{fmt(sx(n))},{fmt(sy(b))}")
    parts.append(f'<polyline class="best-so-far" points="{" ".join(steps)}" fill="none" stroke="{BEST_COLOUR}" '
                 f'stroke-width="2" stroke-linejoin="round"><title>best so far</title></polyline>')
    for t, v in zip(done, values, strict=True):
        parts.append(f'<circle class="trial" data-trial="{t.number}" data-value="{v!r}" cx="{fmt(sx(t.number))}" '
                     f'cy="{fmt(sy(v))}" r="4" fill="{TRIAL_COLOUR}" fill-opacity="0.8">'
                     f"<title>{text(f'trial {t.number}: {v:.6g}')}</title></circle>")
    parts.append("</svg>")
    return Markup("".join(parts))


def _history_key() -> str:
    """The history's legend: a dot for a trial, a line for the best so far."""
    return (f'<g class="legend-item" transform="translate({LEFT} 32)"><circle cx="8" cy="0" r="4" '
            f'fill="{TRIAL_COLOUR}"/><text x="18" y="4">trial value</text></g>'
            f'<g class="legend-item" transform="translate({LEFT + 110} 32)"><line x1="0" x2="16" y1="0" y2="0" '
            f'stroke="{BEST_COLOUR}" stroke-width="2"/><text x="22" y="4">best so far</text></g>')


def _integer_ticks(lo: int, hi: int, count: int) -> list[float]:
    """Round ticks over trial numbers, whole numbers only."""
    if lo == hi:
        return [lo - 1, lo, lo + 1]
    ticks = nice_ticks(lo, hi, count)
    if ticks[1] - ticks[0] < 1:
        return [float(v) for v in range(lo, hi + 1)]
    return ticks


@dataclass(frozen=True)
class Axis:
    """One vertical axis: what it maps (a parameter or the value) and how."""

    name: str
    kind: str  # linear | log | category
    lo: float = 0.0
    hi: float = 1.0
    categories: tuple[str, ...] = ()
    integer: bool = False  # whole numbers only: whole ticks

    def position(self, value: Any) -> float:
        """Where value lies on the axis, 0 (bottom) to 1 (top)."""
        if self.kind == "category":
            index = self.categories.index(_category(value))
            return 0.5 if len(self.categories) == 1 else index / (len(self.categories) - 1)
        v = math.log10(float(value)) if self.kind == "log" else float(value)
        return 0.5 if self.hi == self.lo else (v - self.lo) / (self.hi - self.lo)

    def ticks(self) -> list[tuple[float, str]]:
        """(position, label) of each tick."""
        if self.kind == "category":
            return [(self.position(c), c) for c in self.categories]
        if self.kind == "log":
            decades = range(math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9) + 1)
            return [(self.position(10.0 ** d), f"1e{d}") for d in decades]
        values = nice_ticks(self.lo, self.hi, 4)
        if self.integer and values[1] - values[0] < 1:
            values = [float(v) for v in range(math.ceil(self.lo), math.floor(self.hi) + 1)]
        step = values[1] - values[0] if len(values) > 1 else 1.0
        return [(self.position(v), tick_label(v, step)) for v in values if self.lo - 1e-12 <= v <= self.hi + 1e-12]


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _category(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def axis_for(name: str, values: Sequence[Any]) -> Axis:
    """An axis fitting values: numbers on a linear scale, or a log one where all are positive
    and span more than two decades; anything else as evenly spaced categories, in the order they
    first appear."""
    if values and all(_numeric(v) for v in values):
        lo, hi = min(values), max(values)
        if lo > 0 and hi / lo > LOG_SPAN:
            return Axis(name, "log", math.log10(lo), math.log10(hi))
        return Axis(name, "linear", float(lo), float(hi), integer=all(isinstance(v, int) for v in values))
    return Axis(name, "category", categories=tuple(dict.fromkeys(_category(v) for v in values)))


def parallel_chart(trials: Sequence[TrialPoint], params: Sequence[str], *, metric: str, maximize: bool,
                   element_id: str = "parallel", width: int = 760, height: int = 340) -> Markup:
    """Parallel coordinates: one axis per parameter and a last one for the value; each finished
    trial that has every parameter is a polyline across them, coloured by its value (dark the
    best, light the worst) and drawn best on top."""
    title = f"Parameters and {metric} of each finished trial"
    drawn = [t for t in trials if finite(t.value) and all(p in t.params for p in params)]
    if not drawn:
        return empty_chart(title=title, metric=metric, element_id=element_id, width=width)
    axes = [axis_for(p, [t.params[p] for t in drawn]) for p in params]
    axes.append(axis_for(metric, [float(t.value) for t in drawn]))  # type: ignore[arg-type]
    value_axis = axes[-1]
    left, right, top, bottom = 70.0, width - 70.0, 62.0, height - 44.0
    gap = (right - left) / max(1, len(axes) - 1)
    xs = [left + i * gap for i in range(len(axes))] if len(axes) > 1 else [(left + right) / 2]
    y = Scale(0.0, 1.0, bottom, top)
    parts = [chart_head(width=width, height=height, title=title, metric=metric, element_id=element_id,
                        extra_class="parallel", title_chars=100)]

    def goodness(t: TrialPoint) -> float:
        p = value_axis.position(float(t.value))  # type: ignore[arg-type]
        return p if maximize else 1.0 - p

    for t in sorted(drawn, key=goodness):
        coords = " ".join(f"{fmt(x)},{fmt(y(a.position(v)))}" for x, a, v in
                          zip(xs, axes, [*(t.params[p] for p in params), t.value], strict=True))
        tip = f"trial {t.number}: {float(t.value):.6g}; " + ", ".join(  # type: ignore[arg-type]
            f"{p}={_category(t.params[p])}" for p in params)
        parts.append(f'<polyline class="trial-line" data-trial="{t.number}" points="{coords}" fill="none" '
                     f'stroke="{ramp(goodness(t))}" stroke-width="1.8" stroke-opacity="0.85" '
                     f'stroke-linejoin="round"><title>{text(tip)}</title></polyline>')
    label_chars = max(6, int(gap / CHAR_W) - 1)
    for i, (x, a) in enumerate(zip(xs, axes, strict=True)):
        parts.append(f'<line class="axis" x1="{fmt(x)}" x2="{fmt(x)}" y1="{fmt(top)}" y2="{fmt(bottom)}" '
                     f'stroke="{INK}"/>')
        for pos, label in a.ticks():
            ty = fmt(y(pos))
            parts.append(f'<line class="tick" x1="{fmt(x - 3)}" x2="{fmt(x)}" y1="{ty}" y2="{ty}" stroke="{INK}"/>'
                         f'<text class="tick" x="{fmt(x - 5)}" y="{ty}" text-anchor="end" dominant-baseline="middle" '
                         f'paint-order="stroke" stroke="#fff" stroke-width="3">{text(short(label, 12))}</text>')
        name = a.name if i < len(axes) - 1 else f"{a.name} ({'max' if maximize else 'min'})"
        shown = short(name if len(name) <= label_chars else name.rsplit(".", 1)[-1], label_chars)
        scale = " · log" if a.kind == "log" else ""
        ly = top - 14 - (12 if i % 2 else 0)  # alternate rows, so neighbours' names do not collide
        parts.append(f'<text class="axis-label" x="{fmt(x)}" y="{fmt(ly)}" text-anchor="middle">'
                     f"<title>{text(name + scale)}</title>{text(shown)}</text>")
    parts.append(_colour_key(value_axis, maximize=maximize, x=left, y=height - 22, width=min(200.0, right - left)))
    parts.append(f'<text class="note" x="{fmt(right)}" y="{fmt(height - 10)}" text-anchor="end" fill="{MUTED}">'
                 f"{len(drawn)} trial{'s' if len(drawn) != 1 else ''}</text></svg>")
    return Markup("".join(parts))


def _colour_key(axis: Axis, *, maximize: bool, x: float, y: float, width: float) -> str:
    """A bar of the value colours, worst to best, with the values at its ends."""
    worst, best = (axis.lo, axis.hi) if maximize else (axis.hi, axis.lo)
    if axis.kind == "log":
        worst, best = 10.0 ** worst, 10.0 ** best
    cells = 20
    w = width / cells
    rects = "".join(f'<rect x="{fmt(x + i * w)}" y="{fmt(y)}" width="{fmt(w + 0.5)}" height="8" '
                    f'fill="{ramp(i / (cells - 1))}"/>' for i in range(cells))
    return (f'<g class="colour-key">{rects}'
            f'<text x="{fmt(x - 4)}" y="{fmt(y + 7)}" text-anchor="end">{text(f"{worst:.4g}")}</text>'
            f'<text x="{fmt(x + width + 4)}" y="{fmt(y + 7)}">{text(f"{best:.4g} (best)")}</text>'
            f'<rect x="{fmt(x)}" y="{fmt(y)}" width="{fmt(width)}" height="8" fill="none" stroke="{GRID}"/></g>')
