"""The least time a job's arithmetic can take: its FLOPs over the cores' matrix-multiply rate.

A job whose time is nearly all matrix multiplies (MiniLM's layers: 80% of a meta-training
step's CPU time in `addmm`/`mm` on the EPYC) cannot run faster than its FLOPs divided by the
rate the cores multiply matrices at, whatever is taken out around them. `job_breakdown.py
--flops` counts each part's FLOPs (`bench.flops.count_flops`: matmuls, attention; not the
elementwise work, so the floor is low, never high) and times one thread's matrix multiply on
the job's own shapes.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import torch


def gemm_rate(rows: int, inner: int, cols: int, *, rounds: int = 5, repeats: int = 20) -> float:
    """FLOPs per second of `[rows, inner] @ [inner, cols]` in float32 on this process's threads:
    the median of `rounds` timings of `repeats` products each."""
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    for _ in range(3):  # the first products pick kernels and touch the memory
        a @ b
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        rates.append(2 * rows * inner * cols * repeats / (time.perf_counter() - start))
    return statistics.median(rates)


def floor(counts: dict[str, int], unit_flops: dict[str, float], *, rate: float, cores: int,
          cached_trunk_flops: float = 0.0) -> dict[str, Any]:
    """The job's FLOPs (each part's per-unit FLOPs times its count, less what the trunk cache
    spares: `cached_trunk_flops`, the trunk's FLOPs on one meta-validation episode, for every
    check after the first) and the seconds they take at `rate` FLOP/s on each of `cores`."""
    parts = {
        "meta-training": counts["steps"] * unit_flops["step"],
        "meta-validation check": counts["checks"] * counts["val_episodes"] * unit_flops["val_episode"],
        "meta-test": counts["test_episodes"] * unit_flops["test_episode"],
    }
    spared = max(counts["checks"] - 1, 0) * counts["val_episodes"] * cached_trunk_flops
    total = sum(parts.values()) - spared
    return {"parts": parts, "cache_spares": spared, "total": total, "rate_per_core": rate,
            "cores": cores, "floor_s": total / (rate * cores)}
