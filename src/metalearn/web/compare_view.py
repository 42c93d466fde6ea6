"""What the compare page shows of 2 to 12 attempts side by side: the config keys whose values
differ, each metric's final value, the curves of the metrics they share, and their meta-test
scores per held-out group."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from metalearn.flat_config import flatten
from metalearn.registry import report
from metalearn.registry.store import Store
from metalearn.web.metric_values import CI, PRE, is_acc, score, thinned_metrics

MIN_IDS, MAX_IDS = 2, 12
MAX_POINTS = 400  # points a curve keeps per attempt (every k-th step, the last always): a chart is ~500 px wide
OPEN_CHARTS = 4  # curve charts shown open; the rest are folded


class CompareError(ValueError):
    """The ids asked for cannot be compared (the message says why)."""


@dataclass
class Column:
    """One compared attempt: its row (no config), its legend label, its final metric values and
    its meta-test score (as text: accuracy in percent, as on the run page)."""

    attempt: dict[str, Any]
    label: str
    finals: dict[str, float | None]
    score: float | None
    score_ci95: float | None
    score_name: str

    @property
    def percent(self) -> bool:
        """Whether the meta-test score is shown in percent (an accuracy)."""
        return is_acc(self.score_name)

    @property
    def shown_score(self) -> str:
        return score(self.score, self.score_name)

    @property
    def shown_score_ci95(self) -> str:
        return score(self.score_ci95, self.score_name, 2)


@dataclass
class MetricRow:
    """A metric's final value in each attempt, their intervals where logged, and which
    attempt did best (where the metric is the shared objective's); as text, accuracy in percent."""

    name: str
    values: list[float | None]
    ci95: list[float | None]
    best: int | None

    @property
    def percent(self) -> bool:
        """Whether the values are shown in percent (an accuracy)."""
        return is_acc(self.name)

    @property
    def shown(self) -> list[str]:
        return [score(v, self.name) for v in self.values]

    @property
    def shown_ci95(self) -> list[str]:
        return [score(c, self.name, 2) for c in self.ci95]


@dataclass
class Comparison:
    """The attempts in the order asked and what the page draws of them."""

    columns: list[Column]
    config_diff: dict[str, list[str]]  # dotted key -> each attempt's value as text
    equal_keys: int  # config keys with the same value in every attempt (not shown)
    metric_rows: list[MetricRow]
    curves: dict[str, list[list[tuple[int, float | None]]]]  # shared metric -> each attempt's (step, value)
    test_groups: dict[str, list[str]]  # test metric (acc, mse) -> its groups
    test_values: dict[str, dict[str, list[tuple[float | None, float | None]]]]  # metric -> group -> per attempt


def parse_ids(raw: Sequence[str]) -> list[int]:
    """The attempt ids asked for (each once, in order); CompareError names a bad one."""
    ids: list[int] = []
    for value in raw:
        text = value.strip()
        if not text.isdigit() or len(text) > 12:
            raise CompareError(f"ids: {value[:40]!r} is not an attempt id (a whole number)")
        if int(text) not in ids:
            ids.append(int(text))
    if len(ids) > MAX_IDS:
        raise CompareError(f"ids: {len(ids)} attempts asked for; the page compares at most {MAX_IDS}")
    return ids


def comparison(store: Store, ids: Sequence[int]) -> Comparison:
    """The attempts with these ids compared (NotFound names an unknown id)."""
    attempts = [store.get_attempt(i) for i in ids]
    summaries = [store.metric_summary(i) for i in ids]
    results = [store.test_results(i) for i in ids]
    diff = report.config_diff([a["config"] for a in attempts])
    keys = set().union(*(_flat_keys(a["config"]) for a in attempts))
    labels = labels_of(attempts)
    columns = []
    for attempt, summary, label in zip(attempts, summaries, labels, strict=True):
        metric, _mode = report.objective_of(attempt["config"])
        tested, ci = summary.get(f"test/{metric}", {}), summary.get(f"test/{metric}{CI}", {})
        columns.append(Column({k: v for k, v in attempt.items() if k != "config"}, label,
                              {n: s["last"] for n, s in summary.items()}, tested.get("last"), ci.get("last"),
                              f"test/{metric}"))
    names = sorted({n for s in summaries for n in s if not n.endswith(CI)}, key=_metric_order)
    objectives = {report.objective_of(a["config"]) for a in attempts}
    objective = objectives.pop() if len(objectives) == 1 else None
    metric_rows = []
    for n in names:
        values = [c.finals.get(n) for c in columns]
        metric_rows.append(MetricRow(n, values, [c.finals.get(n + CI) for c in columns], _best(n, values, objective)))
    shared = [n for n in names if _charted(n, names) and sum(n in s for s in summaries) >= 2]
    thinned = [thinned_metrics(store, i, [n for n in shared if n in s], max_points=MAX_POINTS)
               for i, s in zip(ids, summaries, strict=True)]
    curves = {n: [c.get(n, []) for c in thinned] for n in shared}
    groups, values = _test_table(results)
    return Comparison(columns, {k: [shown(v) for v in vs] for k, vs in diff.items()}, len(keys) - len(diff),
                      metric_rows, curves, groups, values)


def labels_of(attempts: Sequence[dict[str, Any]]) -> list[str]:
    """A readable legend label per attempt: `#12 maml_omniglot (seed 1)`, with the algorithm,
    kind or trial where those differ between the attempts (and the seed where it is known)."""
    def seed(a: dict[str, Any]) -> Any:
        return (a.get("config") or {}).get("seed") if isinstance(a.get("config"), dict) else None

    differs = {field: len({repr(a.get(field)) for a in attempts}) > 1 for field in ("algorithm", "kind", "trial")}
    out = []
    for a in attempts:
        extras = []
        name = a.get("experiment") or a.get("name") or "attempt"
        if differs["algorithm"] and a.get("algorithm") and str(a["algorithm"]) not in str(name):
            extras.append(str(a["algorithm"]))
        if differs["kind"]:
            extras.append(str(a.get("kind")))
        if differs["trial"] and a.get("trial") is not None:
            extras.append(f"trial {a['trial']}")
        if seed(a) is not None:
            extras.append(f"seed {seed(a)}")
        out.append(f"#{a['id']} {name}" + (f" ({', '.join(extras)})" if extras else ""))
    return out


def shown(value: Any) -> str:
    """A config value as text: strings as they are, other values as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _flat_keys(config: Any) -> set[str]:
    return set(flatten(config or {}))


def _best(name: str, values: Sequence[float | None], objective: tuple[str, str] | None) -> int | None:
    """The index of the best value of an objective metric (`val/acc`, `test/<group>/mse`) when
    the attempts share that objective and at least two have a value; else None."""
    if objective is None or name.rsplit("/", 1)[-1] != objective[0]:
        return None
    known = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(known) < 2:
        return None
    return (max(known) if objective[1] == "max" else min(known))[1]


def _metric_order(name: str) -> tuple[int, str]:
    """Metrics in reading order: validation, training, meta-test, the rest; by name within."""
    prefix = name.split("/", 1)[0]
    return ({"val": 0, "train": 1, "test": 2}.get(prefix, 3), name)


def _charted(name: str, names: Sequence[str]) -> bool:
    """Whether a metric gets a curve: not an interval (drawn as whiskers), not the before-adapting
    twin of a metric that is logged too (its final value is in the table; the chart keeps one
    curve per attempt), not a meta-test score (one value: the bars draw those)."""
    twin = name.endswith(PRE) and name[: -len(PRE)] in names
    return not name.endswith(CI) and not twin and not name.startswith("test/")


def _test_table(results: Sequence[list[dict[str, Any]]]
                ) -> tuple[dict[str, list[str]], dict[str, dict[str, list[tuple[float | None, float | None]]]]]:
    """Per test metric: its groups (in the order first met), and per group each attempt's
    (value, ci95), (None, None) where an attempt has no such result."""
    groups: dict[str, list[str]] = {}
    for rows in results:
        for r in rows:
            names = groups.setdefault(r["metric"], [])
            if r["group"] not in names:
                names.append(r["group"])
    by_key = [{(r["metric"], r["group"]): (r["value"], r["ci95"]) for r in rows} for rows in results]
    values = {m: {g: [k.get((m, g), (None, None)) for k in by_key] for g in gs} for m, gs in groups.items()}
    return groups, values
