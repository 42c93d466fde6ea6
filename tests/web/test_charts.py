"""The server-drawn SVG charts: escaped text, points where the arithmetic puts them, missing
values skipped, empty input, bars and whiskers counted."""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from metalearn.web.charts import BarSeries, Series, interval_bars, line_chart
from metalearn.web.charts.axes import nice_ticks, tick_label
from metalearn.web.charts.lines import BOTTOM, GAP, LEFT, RIGHT, TOP

NS = {"s": "http://www.w3.org/2000/svg"}
HOSTILE = "<img src=x onerror=alert(1)>"


def parse(svg: str) -> ET.Element:
    """The chart as XML: a name that was not escaped would not parse (or would add elements)."""
    return ET.fromstring(str(svg))


def test_line_chart_escapes_every_text():
    svg = str(line_chart([Series(HOSTILE, [(0, 1), (1, 2)]), Series("\x1b[31mred", [(0, 2)], dashed=True)],
                         title=HOSTILE, x_label=HOSTILE, y_label=HOSTILE, metric='a"b<c>'))
    assert "<img" not in svg and "\x1b" not in svg
    assert "&lt;img src=x onerror=alert(1)&gt;" in svg
    assert "\\x1b[31mred" in svg  # the control character written out
    root = parse(svg)
    assert root.get("data-metric") == 'a"b<c>'
    assert root.find("s:title", NS).text == HOSTILE
    assert not root.findall(".//s:img", NS) and " style=" not in svg and "<script" not in svg


def test_bar_chart_escapes_every_text():
    svg = str(interval_bars([HOSTILE, "g"], [BarSeries(HOSTILE, [0.5, 0.4], [0.1, None])], title=HOSTILE,
                            y_label=HOSTILE, element_id='x"><script>'))
    assert "<img" not in svg and "<script" not in svg and " style=" not in svg
    root = parse(svg)
    assert root.get("id") == 'x"><script>'
    assert [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")].count(HOSTILE) >= 3


def test_points_land_where_computed_by_hand():
    width, height = 560, 300
    svg = line_chart([Series("a", [(0, 0), (5, 0.5), (10, 1)])], title="t", x_label="step", y_label="v",
                     metric="val/acc", element_id="c", width=width, height=height)
    root = parse(svg)
    assert root.get("class") == "chart" and root.get("data-metric") == "val/acc" and root.get("role") == "img"
    (line,) = root.findall("s:polyline", NS)
    # Ticks 0..10 and 0..1 span the plot exactly; one legend row (16 px) sits above it.
    top, bottom, right = TOP + 16 + GAP, height - BOTTOM, width - RIGHT
    expected = [(LEFT, bottom), ((LEFT + right) / 2, (top + bottom) / 2), (right, top)]
    got = [float(v) for p in line.get("points").split() for v in p.split(",")]
    assert got == pytest.approx([v for point in expected for v in point])
    assert (LEFT, bottom, right, top) == (60, 260, 544, 50)  # the same sums done by hand


def test_nan_and_none_points_are_skipped_and_one_point_is_a_dot():
    svg = line_chart([Series("a", [(0, 1.0), (1, math.nan), (2, None), (None, 3.0), (3, math.inf), (4, 2.0)]),
                      Series("b", [(1, 1.5), (2, math.nan)], dashed=True)],
                     title="t", x_label="x", y_label="y")
    root = parse(svg)
    (line,) = root.findall("s:polyline", NS)
    assert len(line.get("points").split()) == 2
    (dot,) = root.findall("s:circle", NS)
    assert dot.get("data-series") == "b"
    assert "nan" not in str(svg).lower().replace("dominant", "")


def test_dashed_series_and_legend():
    root = parse(line_chart([Series("after", [(0, 1), (1, 2)]), Series("before", [(0, 0), (1, 1)], dashed=True)],
                            title="t", x_label="x", y_label="y"))
    solid, dashed = root.findall("s:polyline", NS)
    assert solid.get("stroke-dasharray") is None and dashed.get("stroke-dasharray")
    assert solid.get("stroke") != dashed.get("stroke")
    legend = [g.find("s:text", NS).text for g in root.findall("s:g", NS) if g.get("class") == "legend-item"]
    assert legend == ["after", "before"]


@pytest.mark.parametrize("series", [[], [Series("a", [])], [Series("a", [(0, math.nan), (1, None)])]])
def test_no_data_draws_a_small_chart_saying_so(series):
    root = parse(line_chart(series, title="val/acc", x_label="x", y_label="y", metric="val/acc"))
    assert root.get("data-metric") == "val/acc" and "chart" in root.get("class").split()
    assert not root.findall("s:polyline", NS) and not root.findall("s:circle", NS)
    assert "no data yet" in ET.tostring(root, encoding="unicode")


def test_bars_and_whiskers_counted():
    groups = ["g1", "g2", "g3"]
    series = [BarSeries("a", [0.5, 0.6, None], [0.1, None, None]),
              BarSeries("b", [0.4, 0.7, 0.8], [0.05, 0.02, 0.03])]
    root = parse(interval_bars(groups, series, title="test", y_label="acc", element_id="test-chart"))
    assert root.get("id") == "test-chart"
    bars = [r for r in root.findall("s:rect", NS) if r.get("class") == "bar"]
    whiskers = [p for p in root.findall("s:path", NS) if p.get("class") == "whisker"]
    assert len(bars) == 5 and len(whiskers) == 4
    labels = [t for t in root.findall("s:text", NS) if t.get("class") == "group-label"]
    assert ["".join(t.itertext()) for t in labels] == ["g1g1", "g2g2", "g3g3"]  # tooltip + label
    assert not any(t.get("transform") for t in labels)


def test_bar_height_matches_its_value():
    root = parse(interval_bars(["g"], [BarSeries("a", [0.5], [0.25])], title="t", y_label="y"))
    bar = next(r for r in root.findall("s:rect", NS) if r.get("class") == "bar")
    whisker = next(p for p in root.findall("s:path", NS) if p.get("class") == "whisker")
    # Ticks 0..0.8 (the whisker reaches 0.75); the bar rises 0.5/0.8 of the plot.
    low, high = (float(v) for v in re.match(r"M\S+ (\S+)V(\S+)M", whisker.get("d")).groups())
    bottom = float(bar.get("y")) + float(bar.get("height"))
    plot = (bottom - float(bar.get("y"))) / 0.5 * 0.8
    assert float(bar.get("height")) == pytest.approx(plot * 0.5 / 0.8)
    # Coordinates are written to two decimals.
    assert (low, high) == pytest.approx((bottom - plot * 0.25 / 0.8, bottom - plot * 0.75 / 0.8), abs=0.006)


def test_long_group_names_turn():
    root = parse(interval_bars(["a rather long held-out domain name"] * 4, [BarSeries("a", [1, 2, 3, 4],
                                                                                      [None] * 4)],
                               title="t", y_label="y"))
    labels = [t for t in root.findall("s:text", NS) if t.get("class") == "group-label"]
    assert all(t.get("transform", "").startswith("rotate(-") for t in labels)


def test_bars_refuse_lengths_that_do_not_match_the_groups():
    with pytest.raises(ValueError, match="series 'a' has 1 values"):
        interval_bars(["g1", "g2"], [BarSeries("a", [0.5], [0.1])], title="t", y_label="y")


def test_bars_without_values_say_no_data():
    root = parse(interval_bars(["g"], [BarSeries("a", [None], [None])], title="t", y_label="y", element_id="c"))
    assert root.get("id") == "c" and "no data yet" in ET.tostring(root, encoding="unicode")
    assert "no data yet" in str(interval_bars([], [], title="t", y_label="y"))


@pytest.mark.parametrize(("lo", "hi", "ticks"), [
    (0, 10, [0, 2, 4, 6, 8, 10]), (0.13, 0.87, [0, 0.2, 0.4, 0.6, 0.8, 1]),
    (5, 5, [4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]), (-3, 7, [-4, -2, 0, 2, 4, 6, 8])])
def test_nice_ticks(lo, hi, ticks):
    assert nice_ticks(lo, hi, 5) == pytest.approx(ticks)


def test_tick_labels():
    assert [tick_label(v, 0.25) for v in (0, 0.25, 0.5)] == ["0", "0.25", "0.50"]
    assert tick_label(20000, 5000) == "20k" and tick_label(3, 1) == "3" and tick_label(0.2, 0.2) == "0.2"
