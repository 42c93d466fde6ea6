"""Confidence intervals: Student t over a few seeds, its quantiles past the table."""
from __future__ import annotations

import pytest

from metalearn.intervals import seeds_ci95, t975


def test_interval_over_a_few_seeds_uses_student_t():
    mean, half = seeds_ci95([0.7, 0.8, 0.9])  # s = 0.1, n = 3, t(0.975, 2) = 4.303
    assert mean == pytest.approx(0.8)
    assert half == pytest.approx(4.303 * 0.1 / 3 ** 0.5, rel=1e-4)
    assert seeds_ci95([0.5]) == (0.5, 0.0)


def test_interval_over_many_seeds_keeps_student_t_past_the_table():
    # Quantiles from statistical tables: t(0.975, 20) = 2.0860, t(0.975, 30) = 2.0423.
    assert t975(20) == pytest.approx(2.0860, abs=2e-4)
    assert t975(30) == pytest.approx(2.0423, abs=2e-4)
    values = [0.0, 1.0] * 10 + [0.5]  # 21 runs: df = 20
    mean, half = seeds_ci95(values)
    s = (sum((v - 0.5) ** 2 for v in values) / 20) ** 0.5
    assert half == pytest.approx(2.0860 * s / 21 ** 0.5, rel=1e-4)
    with pytest.raises(ValueError, match="degree of freedom"):
        t975(0)
