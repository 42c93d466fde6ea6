"""A meta-batch's tasks adapted at once: `torch.func.vmap` over stacked episodes.

With `algorithm.vmap_tasks=true`, a gradient learner stacks its meta-batch's support and query
tensors ([T, S, ...] and [T, Q, ...]) and runs its own per-task math (`task_forward`) once
under `vmap`, with the meta-parameters shared by every task; the meta-gradient is then one
backward pass over the summed query losses (or, for Reptile, the summed weight differences).
The numbers are the task loop's up to float rounding (tests/algorithms/test_vmap_tasks.py).

What it needs, checked before any compute with errors naming the key: tensor inputs of the
same shape in every task (not token batches padded per episode), and a model without
running statistics or dropout (vmap would have to update shared buffers, or draw random
masks the loop would not).
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn
from torch.func import vmap

from metalearn.algorithms.inner_loop import Params
from metalearn.data.episode import Episode
from metalearn.models.norm import EpisodeBatchNorm2d, support_statistics

if TYPE_CHECKING:
    from metalearn.algorithms.gradient import GradientLearner, TaskForward

KEY = "algorithm.vmap_tasks=true"


def require_batchable_model(top: nn.Module) -> None:
    """Refuse a model whose layers vmap cannot run as the task loop does."""
    for name, m in top.named_modules():
        norm = isinstance(m, nn.modules.batchnorm._NormBase) and not isinstance(
            m, EpisodeBatchNorm2d)
        if norm and m.track_running_stats:
            raise ValueError(
                f"{KEY}: layer {name or type(top).__name__} ({type(m).__name__}) keeps running "
                "statistics, which tasks adapted at once would update together; use "
                "EpisodeBatchNorm2d (batch statistics, as Conv4) or algorithm.vmap_tasks=false")
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            raise ValueError(
                f"{KEY}: layer {name} ({type(m).__name__}, p={m.p}) draws random masks, which "
                "would differ from the task loop's; set its p to 0 or algorithm.vmap_tasks=false")


def stack(values: list, what: str) -> torch.Tensor:
    """One tensor [T, ...] from the tasks' tensors, or a clear error why they cannot stack."""
    first = values[0]
    if not isinstance(first, torch.Tensor):
        raise ValueError(
            f"{KEY} stacks the tasks' {what} into one tensor, but they are "
            f"{type(first).__name__} (a token batch padded per episode, as text models take); "
            "set algorithm.vmap_tasks=false")
    shapes = sorted({tuple(v.shape) for v in values})
    if len(shapes) > 1:
        raise ValueError(
            f"{KEY} needs the same {what} shape in every task of a meta-batch, got {shapes}; "
            "give every task the same data.shots / data.queries (and ways), or set "
            "algorithm.vmap_tasks=false")
    return torch.stack(values)


class Tasks(NamedTuple):
    """A meta-batch's episodes stacked: support [T, S, ...] and query [T, Q, ...] rows."""

    xs: torch.Tensor
    ys: torch.Tensor
    xq: torch.Tensor
    yq: torch.Tensor


def stack_tasks(learner: GradientLearner, episodes: list[Episode]) -> Tasks:
    """The episodes' trunk features and targets, stacked (or a clear error why they cannot)."""
    features = learner.model.features
    return Tasks(stack([features(ep.support_x) for ep in episodes], "support inputs"),
                 stack([ep.support_y for ep in episodes], "support targets"),
                 stack([features(ep.query_x) for ep in episodes], "query inputs"),
                 stack([ep.query_y for ep in episodes], "query targets"))


def batched_forward(learner: GradientLearner, tasks: Tasks, params: Params) -> TaskForward:
    """`learner.task_forward` of every task at once (outputs carry a leading task dimension)."""
    task = partial(learner.task_forward, functional=True)
    # Batch statistics by explicit mean/variance (what support_statistics switches on) rather
    # than F.batch_norm, whose second derivative under vmap is wrong in torch 2.13 (measured:
    # 1% off the loop's MAML meta-gradient on a conv + batch norm; the explicit form is exact).
    with support_statistics(learner.model.top, tasks.xs.shape[1]):
        return vmap(task, in_dims=(None, 0, 0, 0, 0))(params, *tasks)


def batched_task_gradient(learner: GradientLearner, episodes: list[Episode], params: Params
                          ) -> tuple[Params, list[dict[str, float]]]:
    """The meta-batch's tasks adapted at once: the sum of their meta-gradients, and each
    task's scores (what `learner.task_gradient` gives task by task, up to float rounding)."""
    tasks = stack_tasks(learner, episodes)
    forward = batched_forward(learner, tasks, params)
    grads = learner.meta_gradient(forward, params, batched=True)
    out_pre = None
    if learner.score_before_adapting:
        with support_statistics(learner.model.top, tasks.xs.shape[1]):
            out_pre = vmap(learner.outputs_before_adapting, in_dims=(None, 0, 0))(
                params, tasks.xs, tasks.xq)
    with torch.no_grad():
        per_score = vmap(learner.score_tensors, in_dims=(0, None if out_pre is None else 0, 0, 0))(
            tasks.yq, out_pre, forward.out.detach(), forward.support_losses)
    values = {k: v.tolist() for k, v in per_score.items()}  # one sync per score, not per task
    return grads, [{k: v[t] for k, v in values.items()} for t in range(len(episodes))]
