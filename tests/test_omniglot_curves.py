"""experiments/omniglot_curves.py: whether a validation curve was still rising when training stopped."""
from __future__ import annotations

import sys

from tests.test_results import _tables_module


def curves():
    _tables_module()  # puts experiments/ on the path and imports omniglot_curves through tables
    return sys.modules["omniglot_curves"]


def test_the_slope_reads_the_last_third_of_the_checks_in_points_per_thousand_steps():
    oc = curves()
    # flat for 2,000 steps, then +3 points per 1,000 steps: only the last third is read
    points = {s: 90.0 if s <= 2000 else 90.0 + 3 * (s - 2000) / 1000 for s in range(100, 3001, 100)}
    b, ci = oc.slope(points)
    assert abs(b - 3.0) < 1e-9 and ci < 1e-6
    assert oc.verdict(b, ci) == "yes"


def test_a_curve_that_wobbles_around_a_level_is_not_rising():
    oc = curves()
    points = {s: 95.0 + (1.0 if (s // 100) % 2 else -1.0) for s in range(100, 3001, 100)}
    b, ci = oc.slope(points)
    assert abs(b) < ci
    assert oc.verdict(b, ci) == "no: flat within its interval"
    falling = {s: 95.0 - s / 1000 for s in range(100, 3001, 100)}
    assert oc.verdict(*oc.slope(falling)) == "no: falling"
