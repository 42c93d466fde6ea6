"""experiments/bench/job_breakdown.py: its job estimate adds up, and its check of the trunk
cache on real records fails when cached records differ."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

from bench.job_breakdown import estimate, same_records, spread  # noqa: E402

from metalearn.models.trunk_cache import TrunkCache  # noqa: E402
from tests.models.test_trunk_cache import classifier, episode, learner  # noqa: E402


def test_spread_takes_the_ends_and_evenly_between():
    assert spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert spread([1, 2], 5) == [1, 2]
    assert spread(list(range(5)), 1) == [0]


def test_the_estimate_multiplies_each_part_by_the_jobs_counts():
    counts = {"steps": 150, "checks": 2, "val_episodes": 54, "test_episodes": 90, "tasks_per_step": 8}
    job = estimate(None, counts, {"step_s": 6.0, "trunk_s": 2.5},
                   {"episode_s": 3.0, "trunk_s": 0.3, "lookup_s": 0.01},
                   {"episode_s": 3.5, "trunk_s": 0.3, "lookup_s": 0.01})
    parts = job["parts"]
    assert parts["meta-training"]["total_s"] == 900.0 and parts["meta-training"]["trunk_s"] == 375.0
    assert parts["meta-validation check"]["total_s"] == 2 * 54 * 3.0
    assert parts["meta-test"]["total_s"] == 90 * 3.5
    assert job["total_s"] == 900.0 + 324.0 + 315.0
    # the second check reads the 54 episodes' trunk outputs instead of running the trunk
    assert abs(job["cache_saves_s"] - 54 * 0.29) < 1e-9
    assert job["cached_total_s"] == job["total_s"] - job["cache_saves_s"]


def test_the_records_check_passes_for_the_cache_and_fails_for_a_wrong_one(monkeypatch):
    episodes = [episode(1), episode(2)]
    m = learner(classifier("auto"))
    m.eval()
    assert same_records(m, episodes) is True
    kept = TrunkCache.features

    def off_by_a_little(self, trunk, x):
        out = kept(self, trunk, x)
        return {**out, "hidden": out["hidden"].flip(0)} if self.hits else out  # rows swapped

    monkeypatch.setattr(TrunkCache, "features", off_by_a_little)
    assert same_records(m, episodes) is False
    assert torch.is_grad_enabled()


def test_the_threads_bench_sums_the_meta_batch_and_measures_the_gradients_apart():
    from bench.threads import relative_difference, step_gradients

    m = learner(classifier(False))
    m.train()
    m.score_before_adapting = False
    episodes = [episode(1), episode(2)]
    params = m.meta_parameters()
    one, two = (m.task_gradient(ep, params)[0] for ep in episodes)
    total = step_gradients(m, episodes)
    assert total.keys() == one.keys()
    for name, g in total.items():
        torch.testing.assert_close(g, one[name] + two[name], rtol=0, atol=0)
    assert relative_difference(total, total) == 0.0
    a = {"w": torch.tensor([3.0, 0.0]), "b": torch.tensor([4.0])}
    b = {"w": torch.tensor([3.0, 1.0]), "b": torch.tensor([4.0])}
    assert relative_difference(a, b) == 0.2  # |(0, 1, 0)| / |(3, 0, 4)|


def test_the_flop_count_is_a_linear_layers_by_hand():
    from bench.flops import count_flops as flops

    layer = torch.nn.Linear(6, 4)
    x = torch.randn(5, 6, requires_grad=True)
    assert flops(lambda: layer(x)) == 2 * 5 * 6 * 4
    # backward: the input's and the weight's gradients, one product each
    assert flops(lambda: layer(x).sum().backward()) == 3 * 2 * 5 * 6 * 4


def test_the_floor_divides_the_jobs_flops_less_the_cached_trunk_by_the_cores_rate():
    from bench.job_flops import floor

    counts = {"steps": 150, "checks": 2, "val_episodes": 54, "test_episodes": 90, "tasks_per_step": 8}
    job = floor(counts, {"step": 4e11, "val_episode": 3e11, "test_episode": 2e11},
                rate=1e11, cores=2, cached_trunk_flops=1e10)
    assert job["parts"] == {"meta-training": 150 * 4e11, "meta-validation check": 2 * 54 * 3e11,
                            "meta-test": 90 * 2e11}
    assert job["cache_spares"] == 54 * 1e10  # the second check only
    assert job["total"] == 150 * 4e11 + 108 * 3e11 + 90 * 2e11 - 54 * 1e10
    assert job["floor_s"] == job["total"] / 2e11
