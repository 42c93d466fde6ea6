"""Summaries of per-episode scores: mean and 95% confidence interval."""
from __future__ import annotations

import math
from typing import Sequence


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% interval (1.96 * s / sqrt(n))."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def binomial_ci95(acc: float, n: int) -> float:
    """Half-width of the normal-approximation 95% interval of an accuracy over n examples.

    For a task scored by one fixed episode (ARSC: one support file, one query file) there is no
    spread over episodes; the interval then comes from the n query examples themselves.
    """
    if n <= 0:
        return float("nan")
    return 1.96 * math.sqrt(acc * (1.0 - acc) / n)
