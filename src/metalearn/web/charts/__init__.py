"""Charts drawn on the server as SVG (no script library): line charts of metric curves and
grouped bars with 95% interval whiskers. Each returns markupsafe.Markup with every text inside
escaped, styled by SVG presentation attributes and classes (the pages' CSP forbids inline styles)."""
from metalearn.web.charts.bars import BarSeries, interval_bars
from metalearn.web.charts.lines import Series, line_chart

__all__ = ["BarSeries", "Series", "interval_bars", "line_chart"]
