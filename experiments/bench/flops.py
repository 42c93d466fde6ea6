"""Achieved GFLOP/s of the inner step, against a plain matmul on the same machine.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions and
attention, forward and backward; elementwise work such as batch norm, ReLU and the SGD
update is not counted, so the figure slightly understates the work done). One inner step is
what `adapt` does once: the support-set forward, the gradient, the fast-weight update.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Median CPU seconds of one call (CPU time: see bench.timing for why)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def matmul_gflops(n: int, repeats: int) -> dict[str, float]:
    """A square fp32 matmul: what this machine's BLAS reaches on the threads it has."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    flops = count_flops(lambda: a @ b)
    seconds = median_seconds(lambda: a @ b, repeats)
    return {"n": n, "gflop": flops / 1e9, "ms": 1e3 * seconds, "gflops": flops / seconds / 1e9}


def inner_step_gflops(learner, episode, repeats: int) -> dict[str, float]:
    """One first-order inner step of `learner` on `episode`'s support set (trunk run once)."""
    xs = learner.model.features(episode.support_x)
    params = learner.meta_parameters()

    def step():
        return learner.adapt_support(params, xs, episode.support_y, 1, first_order=True)

    flops = count_flops(step)
    seconds = median_seconds(step, repeats)
    return {"gflop": flops / 1e9, "ms": 1e3 * seconds, "gflops": flops / seconds / 1e9,
            "support_examples": int(len(episode.support_y))}
