"""What the page of one attempt shows, gathered from the registry and the log files: its row
and its links, its curves (a metric and its before-adapting twin on one chart), its meta-test
results per group, and the tail of its log.

Log files are read only where the server keeps logs (the runner's log folder and the log root
checkpoints come from); an attempt's output folder counts only when it lies under one of them,
and only regular files directly in it (no links followed), a bounded number of bytes."""
from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from metalearn.api.runner import Runner
from metalearn.registry import schema
from metalearn.registry.store import Store
from metalearn.web.charts import BarSeries, Series, interval_bars, line_chart
from metalearn.web.metric_values import CI, PRE, axis_name, drawn, is_acc, score, thinned_metrics

LIVE = (schema.QUEUED, *schema.ACTIVE)  # statuses whose page still changes
LOG_LINES, LOG_BYTES = 200, 256 * 1024
CONFIG_TREE_LOG = "config_tree.log"  # the composed config an attempt prints at its start, not a log
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_SECTION = {"train": 0, "val": 1, "test": 3}  # curve order: train/, val/, the rest, test/


def is_live(status: str) -> bool:
    """Whether an attempt of this status may still change (its page then polls for updates)."""
    return status in LIVE


def study_link(study: str) -> str:
    return "/studies/" + quote(study, safe="")


# ---- curves ----------------------------------------------------------------------------------
def curve_groups(names: Iterable[str]) -> list[tuple[str, str | None]]:
    """(metric, its `_pre` twin or None) for every metric but `_ci95` intervals and twins whose
    metric is logged too; train/ first, then val/, others, test/ last, by name within each."""
    kept = {n for n in names if not n.endswith(CI)}
    groups = [(n, n + PRE if n + PRE in kept else None) for n in kept
              if not (n.endswith(PRE) and n[: -len(PRE)] in kept)]
    return sorted(groups, key=lambda g: (_SECTION.get(g[0].split("/", 1)[0] if "/" in g[0] else "", 2), g[0]))


@dataclass(frozen=True)
class Curves:
    """The charts of an attempt's metrics: training and validation (and others), and the
    meta-test ones (test/..., usually one step each, also in the meta-test table)."""

    main: list[Markup]
    test: list[Markup]


def curve_charts(store: Store, attempt_id: int) -> Curves:
    """One line chart per metric (its before-adapting twin dashed on the same chart)."""
    series = thinned_metrics(store, attempt_id)
    curves = Curves([], [])
    for name, twin in curve_groups(series):
        lines = [Series(name, series[name])]
        if twin:
            lines.append(Series(f"{twin} (before adapting)", series[twin], dashed=True))
        chart = line_chart(lines, title=name, x_label="step", y_label=name.rsplit("/", 1)[-1], metric=name,
                           width=520, height=280)
        (curves.test if name.startswith("test/") else curves.main).append(chart)
    return curves


def metric_rows(store: Store, attempt_id: int) -> list[dict[str, Any]]:
    """Each metric's last, lowest and highest value (accuracy in percent) and its row count."""
    out = []
    for name, s in store.metric_summary(attempt_id).items():
        leaf = name.rsplit("/", 1)[-1]
        out.append({"name": name, "percent": is_acc(leaf), "last": score(s["last"], leaf),
                    "min": score(s["min"], leaf), "max": score(s["max"], leaf), "count": s["count"],
                    "last_step": s["last_step"]})
    return out


# ---- meta-test ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetaTestView:
    """Meta-test results as table rows and charts (the first one is svg#test-chart)."""

    rows: list[dict[str, Any]]
    charts: list[Markup]


def _steps(metric: str) -> float:
    """The adaptation steps a metric like `mse@10` names (for ordering; none: first)."""
    _, sep, tail = metric.partition("@")
    try:
        return float(tail) if sep else -1.0
    except ValueError:
        return math.inf


def meta_test_view(results: Sequence[dict[str, Any]], objective: str) -> MetaTestView:
    """Rows of the test table, and one chart per metric family (`mse`, `mse@0`, `mse@10` are
    one family: a bar each per group, by steps); the objective's family comes first."""
    rows = [{**r, "shown": score(r["value"], r["metric"]), "shown_ci": score(r["ci95"], r["metric"], 2),
             "percent": is_acc(r["metric"])} for r in results]
    groups = list(dict.fromkeys(r["group"] for r in results))
    families: dict[str, list[str]] = {}
    for metric in dict.fromkeys(r["metric"] for r in results):
        families.setdefault(metric.split("@", 1)[0], []).append(metric)
    order = sorted(families, key=lambda f: (f != objective, f))
    cells = {(r["group"], r["metric"]): r for r in results}
    charts = []
    for k, family in enumerate(order):
        series = []
        for metric in sorted(families[family], key=lambda m: (_steps(m), m)):
            found = [cells.get((g, metric)) for g in groups]
            series.append(BarSeries(metric, [drawn(c and c["value"], family) for c in found],
                                    [drawn(c and c["ci95"], family) for c in found]))
        charts.append(interval_bars(groups, series, title=f"meta-test {family} per group (95% interval)",
                                    y_label=axis_name(family),
                                    element_id="test-chart" if k == 0 else f"test-chart-{k + 1}"))
    return MetaTestView(rows, charts)


# ---- the attempt and its relatives ---------------------------------------------------------------
def children(store: Store, attempt_id: int, objective: str) -> list[dict[str, Any]]:
    """Attempts started from this one (meta-tests of its checkpoint), newest first, with their
    overall meta-test score."""
    rows = store.list_attempts(parent_id=attempt_id)
    ids = [r["id"] for r in rows]
    name = f"test/{objective}"
    values = store.final_values(name, ids) if ids else {}
    cis = store.final_values(name + CI, ids) if ids else {}
    return [{**r, "score": score(values.get(r["id"]), objective), "score_ci": score(cis.get(r["id"]), objective, 2),
             "percent": is_acc(objective)} for r in rows]


# ---- the log -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogTail:
    """The last lines of an attempt's log and the file they come from (None: no log found)."""

    path: Path | None
    text: str


def log_roots(runner: Runner) -> list[Path]:
    """The folders the server keeps logs in: the runner's own and the log root."""
    return [runner.log_dir.resolve(), runner.check.log_root.resolve()]


def log_files(row: dict[str, Any], runner: Runner) -> list[Path]:
    """Log files of the attempt, best first: the one the server wrote when it started the
    attempt (newest), then *.log files in its output folder when that lies under a log root."""
    roots = log_roots(runner)
    found = sorted(runner.log_dir.glob(f"*_attempt-{int(row['id'])}.log"), reverse=True)
    out_dir = row.get("output_dir")
    if out_dir:
        folder = Path(out_dir)
        folder = (folder if folder.is_absolute() else runner.check.log_root.parent / folder).resolve()
        if any(folder.is_relative_to(root) for root in roots) and folder.is_dir():
            found += sorted(folder.glob("*.log"), key=_log_rank)
    return [p for p in found if not p.is_symlink() and any(p.resolve().is_relative_to(r) for r in roots)]


def _log_rank(path: Path) -> tuple[bool, float]:
    """Hydra's job log (written to as the run goes) before the printed config tree, newest first."""
    try:
        modified = path.lstat().st_mtime
    except OSError:
        modified = 0.0
    return path.name == CONFIG_TREE_LOG, -modified


def read_tail(path: Path, *, lines: int = LOG_LINES, limit: int = LOG_BYTES) -> str:
    """The last lines of a regular file (never through a link), from at most its last limit
    bytes; terminal colours removed and a carriage-returned line shown as it ends."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        start = max(0, info.st_size - limit)
        f.seek(start)
        data = f.read(limit)
    text = _ANSI.sub("", data.decode("utf-8", errors="replace"))
    kept = text.split("\n")
    if start:  # the first line was cut
        kept = kept[1:]
    kept = [line.rstrip("\r").rsplit("\r", 1)[-1].rstrip() for line in kept]
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept[-lines:])


def log_tail(row: dict[str, Any], runner: Runner) -> LogTail:
    """The tail of the attempt's first readable log file."""
    for path in log_files(row, runner):
        try:
            return LogTail(path, read_tail(path))
        except OSError:
            continue
    return LogTail(None, "")


# ---- the config ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """One key of a config: a branch with children, or a leaf with its value as text."""

    key: str
    children: list[Node] | None = None
    value: str = ""


def config_tree(config: Any) -> list[Node]:
    """A nested config (the resolved one an attempt recorded) as nodes for a collapsible tree;
    leaves written as YAML would (null, true, a list in brackets)."""
    if not isinstance(config, dict):
        return [] if config is None else [Node("(value)", value=_leaf(config))]
    return [Node(str(k), children=config_tree(v)) if isinstance(v, dict) and v else Node(str(k), value=_leaf(v))
            for k, v in config.items()]


def _leaf(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def command_text(command: Any) -> str:
    """The command an attempt records (a list of words) as one line."""
    if isinstance(command, (list, tuple)):
        return " ".join(str(word) for word in command)
    return "" if command is None else str(command)
