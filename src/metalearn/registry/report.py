"""Views of attempts shared by the CLI, the API and the results tables and notebook:
JSON-safe records, exports, comparisons, the benchmark an experiment belongs to."""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Sequence

from metalearn.registry import schema
from metalearn.registry.store import Store

MISSING = "<missing>"
BENCHMARKS = ("amazon", "arsc", "omniglot")  # the order results tables are printed in


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


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted.key: leaf value}; lists stay whole."""
    if not isinstance(config, dict):
        return {prefix: config} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


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
    results = [{r["domain"]: r for r in store.test_results(i)} for i in attempt_ids]
    domains = sorted({d for r in results for d in r})
    return jsonable({
        "ids": list(attempt_ids),
        "attempts": [{k: a[k] for k in ("id", "name", "experiment", "algorithm", "status")} for a in attempts],
        "overrides": [a["overrides"] or [] for a in attempts],
        "config_diff": config_diff([a["config"] for a in attempts]),
        "test_metrics": {n: [s.get(n, {}).get("last") for s in summaries] for n in names},
        "test_results": {
            d: [{k: r[d][k] for k in ("acc", "ci95", "episodes", "shots", "queries")} if d in r else None
                for r in results]
            for d in domains
        },
    })
