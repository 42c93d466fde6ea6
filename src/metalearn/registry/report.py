"""Views of attempts shared by the CLI, the API and the results tables and notebook:
JSON-safe records, exports, comparisons, the benchmark an experiment belongs to."""
from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from metalearn.flat_config import flatten
from metalearn.registry import schema
from metalearn.registry.errors import RegistryError
from metalearn.registry.store import Store

MISSING = "<missing>"
BENCHMARKS = ("amazon", "arsc", "omniglot", "sinusoid")  # the order results tables are printed in


def benchmark(experiment: str) -> str:
    """The benchmark of an experiment name: the first known one in it (`reptile_omniglot_lake`
    -> omniglot), else its last part (`reptile_sinusoid` -> sinusoid)."""
    parts = experiment.split("_")
    return next((p for p in parts if p in BENCHMARKS), parts[-1])


def jsonable(value: Any) -> Any:
    """Plain JSON data: UTC times as ISO strings with Z, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def config_diff(configs: Sequence[Any]) -> dict[str, list[Any]]:
    """The dotted keys whose values differ between configs, with each config's value."""
    flat = [flatten(c or {}) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    diff = {}
    for key in keys:
        values = [f.get(key, MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            diff[key] = values
    return diff


def follow(store: Store, attempt_id: int, *, name: str | None = None,
           after_step: int | None = None, limit: int = 10_000) -> dict[str, Any]:
    """A page of new metric rows; pass last_step back as after_step to get each row once.

    While the attempt is active its newest step may still be getting rows (a step's metrics
    can land in two batches), so that step is held back until a later step appears or the
    attempt ends. A page cut by limit ends on a whole step.
    """
    row = store.get_attempt(attempt_id)
    active = row["status"] not in schema.TERMINAL
    newest = store.last_step(attempt_id, name) if active else None
    rows = store.metrics(attempt_id, name=name, after_step=after_step, before_step=newest,
                         limit=limit + 1)
    if len(rows) > limit:
        rows = rows[:limit]
        cut = rows[-1]["step"]
        if rows[0]["step"] != cut:  # drop the partial last step; it comes whole next time
            rows = [r for r in rows if r["step"] != cut]
    return jsonable({
        "id": attempt_id,
        "status": row["status"],
        "metrics": rows,
        "last_step": rows[-1]["step"] if rows else after_step,
    })


def show(store: Store, attempt_id: int) -> dict[str, Any]:
    """An attempt with its config, a summary of each metric and its test results."""
    return jsonable({
        **store.get_attempt(attempt_id),
        "metrics": store.metric_summary(attempt_id),
        "test_results": store.test_results(attempt_id),
    })


def export(store: Store, attempt_id: int) -> dict[str, Any]:
    """Everything recorded for an attempt, every metric row included."""
    series: dict[str, list[list[Any]]] = {}
    for row in store.metrics(attempt_id):
        series.setdefault(row["name"], []).append([row["step"], row["value"], row["time"]])
    return jsonable({
        "attempt": store.get_attempt(attempt_id),
        "metrics": series,
        "test_results": store.test_results(attempt_id),
    })


def compare(store: Store, attempt_ids: Sequence[int]) -> dict[str, Any]:
    """Config differences and test metrics of attempts side by side (lists in id order)."""
    attempts = [store.get_attempt(i) for i in attempt_ids]
    summaries = [store.metric_summary(i) for i in attempt_ids]
    names = sorted({n for s in summaries for n in s if n.startswith("test/")})
    results = [{(r["group"], r["metric"]): r for r in store.test_results(i)} for i in attempt_ids]
    keys = sorted({k for r in results for k in r})
    fields = ("value", "ci95", "episodes", "shots", "queries")
    return jsonable({
        "ids": list(attempt_ids),
        "attempts": [{k: a[k] for k in ("id", "name", "experiment", "algorithm", "status")} for a in attempts],
        "overrides": [a["overrides"] or [] for a in attempts],
        "config_diff": config_diff([a["config"] for a in attempts]),
        "test_metrics": {n: [s.get(n, {}).get("last") for s in summaries] for n in names},
        # group -> metric -> one entry per attempt (None where it has no such result)
        "test_results": {
            group: {metric: [{f: r[group, metric][f] for f in fields} if (group, metric) in r
                             else None for r in results]
                    for g, metric in keys if g == group}
            for group in dict.fromkeys(g for g, _ in keys)
        },
    })


def objective_of(config: Any) -> tuple[str, str]:
    """(metric, mode) of the objective an attempt's config names; attempts from before
    objectives existed were all classification: ("acc", "max")."""
    objective = (config or {}).get("objective") if isinstance(config, dict) else None
    if isinstance(objective, dict) and objective.get("metric") and objective.get("mode"):
        return str(objective["metric"]), str(objective["mode"])
    return "acc", "max"


def ranking(store: Store, metric: str | None = None, mode: str | None = None,
            **filters: Any) -> tuple[str, str]:
    """The metric and direction to rank attempts by: as given, else from the objective of the
    attempts the filters select (`test/mse`, min, for regression; `test/acc`, max, for
    classification). Attempts of different objectives cannot be ranked together."""
    if metric is not None and mode is not None:
        return metric, mode
    objectives = {objective_of(a["config"])
                  for a in store.list_attempts(with_config=True, **filters)}
    if metric is None:
        if len(objectives) > 1:
            mixed = ", ".join(sorted(f"{m} ({d})" for m, d in objectives))
            raise RegistryError(f"these attempts have different objectives: {mixed}; narrow them "
                                "with --experiment / --algorithm, or name --metric and --mode")
        own, own_mode = objectives.pop() if objectives else ("acc", "max")
        return f"test/{own}", mode or own_mode
    modes = {d for m, d in objectives if metric.rsplit("/", 1)[-1].startswith(m)}
    return metric, modes.pop() if len(modes) == 1 else "max"

