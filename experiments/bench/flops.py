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

from bench.device import synchronize, to


def count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 2,
                   device: str = "cpu") -> float:
    """Median seconds of one call: CPU time on the CPU (see bench.timing for why), wall time
    after the queued work has finished on a GPU."""
    gpu = torch.device(device).type == "cuda"
    clock = time.perf_counter if gpu else time.process_time
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize()
        t = clock()
        fn()
        synchronize()
        times.append(clock() - t)
    return statistics.median(times)


def matmul_gflops(n: int, repeats: int, device: str = "cpu",
                  dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """A square matmul: what this machine's BLAS (or the GPU's) reaches on what it has."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
    flops = count_flops(lambda: a @ b)
    seconds = median_seconds(lambda: a @ b, repeats, device=device)
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "gflop": flops / 1e9,
            "ms": 1e3 * seconds, "gflops": flops / seconds / 1e9}


def inner_step_gflops(learner, episode, repeats: int, device: str = "cpu") -> dict[str, float]:
    """One first-order inner step of `learner` on `episode`'s support set (trunk run once)."""
    learner.model.to(device)
    episode = to(episode, device)
    xs = learner.model.features(episode.support_x)
    params = learner.meta_parameters()

    def step():
        return learner.adapt_support(params, xs, episode.support_y, 1, first_order=True)

    flops = count_flops(step)
    seconds = median_seconds(step, repeats, device=device)
    return {"gflop": flops / 1e9, "ms": 1e3 * seconds, "gflops": flops / seconds / 1e9,
            "support_examples": int(len(episode.support_y))}
