"""Means and their 95% confidence intervals: over episodes, over a few seeds, and of an accuracy
over n examples (meta-test scores, the objectives, the results tables)."""
from __future__ import annotations

import math
from collections.abc import Sequence


def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error s / sqrt(n) (0.0 for one value, NaN for none)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% interval (1.96 * s / sqrt(n))."""
    mean, sem = mean_sem(values)
    return mean, 1.96 * sem


# Student t 0.975 quantiles for 1..10 degrees of freedom: with 2 or 3 seeds the normal 1.96
# would understate the interval 2-6 times (t = 12.71 for 2 seeds, 4.30 for 3).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t975(df: int) -> float:
    """Student t 0.975 quantile: the table up to 10 degrees of freedom, then the Cornish-Fisher
    expansion around the normal 1.96 (within 1e-4 of the exact quantile from 10 on)."""
    if df < 1:
        raise ValueError(f"a t quantile needs at least 1 degree of freedom, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def seeds_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean over a few runs (seeds) and the half-width of its Student t 95% interval."""
    mean, sem = mean_sem(values)
    if len(values) < 2:
        return mean, sem
    return mean, sem * t975(len(values) - 1)


def binomial_ci95(acc: float, n: int) -> float:
    """Half-width of the normal-approximation 95% interval of an accuracy over n examples.

    For a task scored by one fixed episode (ARSC: one support file, one query file) there is no
    spread over episodes; the interval then comes from the n query examples themselves.
    """
    if n <= 0:
        return float("nan")
    return 1.96 * math.sqrt(acc * (1.0 - acc) / n)
