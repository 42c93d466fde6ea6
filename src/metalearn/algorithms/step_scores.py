"""Meta-test scores after several numbers of adaptation steps (`algorithm.eval_score_steps`).

Finn et al. (2017) report a held-out task's score after 0, 1 and 10 steps. With
`algorithm.eval_score_steps: [0, 1, 10]` the meta-test adapts each episode once, for the most
steps asked (or `eval_inner_steps`, if more), and scores its query set after each listed count
on the way (0: the meta-weights, before adapting). Each count becomes test results named
`<metric>@<steps>` (`acc@1`, `mse@10`) per group, with their intervals, episodes, shots and
queries, logged as `test/<group>/<metric>@<steps>`; the plain `<metric>` stays the score after
`eval_inner_steps`, so every table reads a run as before. Validation keeps its one score.

One adaptation serves every count because evaluation adapts first order: each inner step starts
from the previous step's weights cut from the graph, so going on from the weights after k steps
is taking steps k+1, ... of the same run (tests/algorithms/test_step_counts.py checks each count
against a meta-test run with that many steps). The test-time check that may decline to adapt
(`eval_adapt_check`) decides for one number of steps, so the two are not combined.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from metalearn.algorithms.evaluation import episode_record, predictions_with, require_gradients
from metalearn.algorithms.inner_loop import Params
from metalearn.data.episode import Episode
from metalearn.intervals import mean_ci95

if TYPE_CHECKING:
    from metalearn.algorithms.episodic import EpisodicModule
    from metalearn.algorithms.evaluation import Adapt

KEY = "algorithm.eval_score_steps"
# The adaptation runs to the largest count and each count scores the query set once more: a
# thousand steps is a meta-test hours long on a text model, more likely a typo than a wish.
MAX_STEPS = 1000
MAX_COUNTS = 16


def score_steps(value: Any, *, adapt_check: bool = False) -> tuple[int, ...] | None:
    """`algorithm.eval_score_steps` checked: None (one score, at eval_inner_steps), or its
    distinct step counts in increasing order; a clear error naming the key otherwise."""
    if value is None:
        return None
    example = f"e.g. {KEY}=[0,1,10], or null for the one score after eval_inner_steps"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{KEY} must be a list of step counts ({example}); got {value!r}")
    counts = list(value)
    if not counts or len(counts) > MAX_COUNTS:
        raise ValueError(f"{KEY} must list 1 to {MAX_COUNTS} step counts ({example}); got {len(counts)}")
    for count in counts:
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_STEPS:
            raise ValueError(f"{KEY} must hold whole numbers of steps from 0 (before adapting) "
                             f"to {MAX_STEPS} ({example}); got {count!r} in {counts}")
    if len(set(counts)) != len(counts):
        raise ValueError(f"{KEY} lists a step count twice: {counts}")
    if adapt_check:
        raise ValueError(f"{KEY} scores every count along one adaptation, but "
                         "algorithm.eval_adapt_check decides whether to adapt for one number of "
                         "steps: set algorithm.eval_adapt_check=false to score several counts")
    return tuple(sorted(counts))


def refuse_score_steps(value: Any, algorithm: str) -> None:
    """The error for `algorithm.eval_score_steps` on an algorithm that adapts nothing at test time."""
    if value is not None:
        raise ValueError(f"{KEY}: {algorithm} takes no adaptation steps at meta-test time, so it "
                         f"has one score; leave {KEY} null (got {value!r})")


def adapted_along(adapt: Adapt, params: Params, xs: Any, ys: torch.Tensor,
                  counts: Sequence[int]) -> dict[int, Params]:
    """The weights after each of `counts` steps, in one adaptation: each count's weights go on
    from the previous count's (0: `params` themselves, `adapt` not called)."""
    weights, fast, done = {}, params, 0
    for count in sorted(counts):
        if count > done:
            fast, _ = adapt(fast, xs, ys, count - done)
            done = count
        weights[count] = fast
    return weights


def step_record(learner: EpisodicModule, ep: Episode, adapt: Adapt, steps: int,
                counts: Sequence[int]) -> dict[str, Any]:
    """A meta-test episode's record (as `evaluation.episode_record`: its score after `steps`,
    before adapting too) with, under `steps`, each of `counts`' score and the interval over
    its query examples."""
    require_gradients()
    params = learner.meta_parameters()
    xs = learner.model.features(ep.support_x)
    wanted = sorted({0, steps, *counts})
    with torch.enable_grad():
        weights = adapted_along(adapt, params, xs, ep.support_y, wanted)
    preds = dict(zip(wanted, predictions_with(learner, ep, xs, [weights[c] for c in wanted]), strict=True))
    objective = learner.objective
    record = episode_record(objective, ep, preds[steps], preds[0])
    record["steps"] = {}
    for count in counts:
        rows = objective.example_scores(preds[count], ep.query_y)
        record["steps"][count] = (rows.mean().item(), objective.episode_ci95(rows))
    return record


def step_results(records: list[dict], metric: str) -> tuple[list[dict], dict[str, float]]:
    """Per group and step count: `<metric>@<steps>` result rows (mean and 95% interval over the
    group's episodes; over the query examples of a group scored by one episode) and their
    `test/<group>/<metric>@<steps>` metrics; `test/<metric>@<steps>` over all episodes."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_group[r["group"]].append(r)
    counts = sorted(records[0]["steps"]) if records else []
    results, metrics = [], {}
    for group in sorted(by_group):
        rows = by_group[group]
        for count in counts:
            name = f"{metric}@{count}"
            value, ci = mean_ci95([r["steps"][count][0] for r in rows])
            if len(rows) == 1:
                ci = rows[0]["steps"][count][1]
            results.append({"group": group, "metric": name, "value": value, "ci95": ci,
                            "value_pre": None, "episodes": len(rows),
                            "shots": rows[0]["shots"], "queries": rows[0]["queries"]})
            metrics.update({f"test/{group}/{name}": value, f"test/{group}/{name}_ci95": ci})
    for count in counts:
        value, ci = mean_ci95([r["steps"][count][0] for r in records])
        metrics.update({f"test/{metric}@{count}": value, f"test/{metric}@{count}_ci95": ci})
    return results, metrics
