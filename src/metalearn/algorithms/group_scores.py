"""Evaluation records aggregated: over all episodes (validation), and per group (meta-test).

Each evaluation episode's record (`algorithms.evaluation.episode_record`) holds its score,
before adapting too where that exists; here they become means with 95% intervals, logged as
`val/<metric>` and `test/<group>/<metric>`, and the meta-test rows the registry keeps (with
`<metric>@<steps>` rows where the meta-test scored several step counts: `algorithms.step_scores`).
"""
from __future__ import annotations

import logging
from collections import defaultdict

import torch.distributed as dist

from metalearn.algorithms.step_scores import step_results
from metalearn.intervals import mean_ci95

log = logging.getLogger(__name__)


def gather_lists(values: list) -> list:
    """All processes' lists joined (the list itself on one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, values)
    return [v for part in out for v in part]


def validation_metrics(records: list[dict], metric: str) -> dict[str, float]:
    """`val/<metric>` and its interval over all episodes, before adapting where scored, and
    the share of episodes that adapted where eval_adapt_check decided (`val/adapted`)."""
    value, ci = mean_ci95([s["value"] for s in records])
    metrics = {f"val/{metric}": value, f"val/{metric}_ci95": ci}
    if records[0]["value_pre"] is not None:
        metrics[f"val/{metric}_pre"] = mean_ci95([s["value_pre"] for s in records])[0]
    if "adapted" in records[0]:  # eval_adapt_check: the share of episodes that adapted
        metrics["val/adapted"] = sum(s["adapted"] for s in records) / len(records)
    return metrics


def group_results(records: list[dict], metric: str) -> tuple[list[dict], dict[str, float]]:
    """Per group: mean and 95% interval over its episodes (over the query examples of a group
    scored by one fixed episode), as result rows and `test/...` metrics; `test/<metric>` over
    all episodes."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for s in records:
        by_group[s["group"]].append(s)
    results, metrics = [], {}
    for group in sorted(by_group):
        rows = by_group[group]
        value, ci = mean_ci95([r["value"] for r in rows])
        if len(rows) == 1:  # one fixed episode (ARSC): the interval over its query examples
            ci = rows[0]["ci95_examples"]
        pre = (None if rows[0]["value_pre"] is None
               else mean_ci95([r["value_pre"] for r in rows])[0])
        results.append({"group": group, "metric": metric, "value": value, "ci95": ci,
                        "value_pre": pre, "episodes": len(rows),
                        "shots": rows[0]["shots"], "queries": rows[0]["queries"]})
        metrics.update({f"test/{group}/{metric}": value, f"test/{group}/{metric}_ci95": ci})
        if pre is not None:
            metrics[f"test/{group}/{metric}_pre"] = pre
        if "adapted" in rows[0]:  # eval_adapt_check: the share of episodes that adapted
            adapted = [r["adapted"] for r in rows]
            metrics[f"test/{group}/adapted"] = sum(adapted) / len(adapted)
            results[-1]["adapted"] = int(sum(adapted))
    if records:
        value, ci = mean_ci95([s["value"] for s in records])
        metrics.update({f"test/{metric}": value, f"test/{metric}_ci95": ci})
    if records and "steps" in records[0]:  # algorithm.eval_score_steps: `<metric>@<steps>` too
        more, step_metrics = step_results(records, metric)
        results += more
        metrics.update(step_metrics)
    return results, metrics


def log_group_results(results: list[dict], metric: str) -> None:
    """One meta-test line per result row (a group's `metric`, and its `<metric>@<steps>`
    where scored): score, interval, before adapting, episodes, adapted."""
    for r in results:
        pre = "" if r["value_pre"] is None else f" (before adapting {r['value_pre']:.4f})"
        adapted = f", adapted in {r['adapted']}" if "adapted" in r else ""
        log.info("meta-test %-22s %s %.4f ± %.4f%s, %d episodes%s",
                 r["group"], r.get("metric", metric), r["value"], r["ci95"], pre, r["episodes"], adapted)
