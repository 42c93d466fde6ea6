"""Sinusoid tasks (Finn et al. 2017, section 5.1): the ranges, the curve, fixed evaluation tasks."""
from __future__ import annotations

import math

import pytest
import torch

from metalearn.data.sinusoid import SinusoidEpisodes


def data(**kw) -> SinusoidEpisodes:
    dm = SinusoidEpisodes(**{"shots": 5, "queries": 20, "val_episodes": 3, "test_episodes": 200,
                             "seed": 7, **kw})
    dm.setup("fit")
    return dm


def test_tasks_follow_the_papers_ranges_and_curve():
    dm = data()
    tasks = dm.test_specs
    amplitudes, phases = [t.amplitude for t in tasks], [t.phase for t in tasks]
    xs = [x for t in tasks for x in t.support + t.query]
    assert 0.1 <= min(amplitudes) < 0.5 and 4.5 < max(amplitudes) <= 5.0
    assert 0.0 <= min(phases) < 0.2 and math.pi - 0.2 < max(phases) <= math.pi
    assert -5.0 <= min(xs) < -4.8 and 4.8 < max(xs) <= 5.0
    ep = dm.build(tasks[0])
    assert ep.support_x.shape == ep.support_y.shape == (5, 1)
    assert ep.query_x.shape == ep.query_y.shape == (20, 1) and ep.ways is None
    a, phase = tasks[0].amplitude, tasks[0].phase
    torch.testing.assert_close(ep.query_y, a * torch.sin(ep.query_x - phase))
    assert (ep.group, ep.shots, ep.queries) == ("sinusoid", 5, 20)


def test_evaluation_tasks_are_fixed_and_training_tasks_new_every_step():
    one, other_seed = data(), data(seed=8)
    assert one.test_specs == other_seed.test_specs  # eval_seed alone fixes them
    assert one.val_specs != one.test_specs[:3]
    train = one.train_sampler
    assert train.train_episode(7, 0, 0) == train.train_episode(7, 0, 0)
    assert train.train_episode(7, 0, 0) != train.train_episode(7, 1, 0) != train.train_episode(7, 0, 1)
    assert other_seed.train_sampler.train_episode(8, 0, 0) != train.train_episode(7, 0, 0)
    first = one.build(train.train_episode(7, 0, 0))
    assert first.support_x.shape == (5, 1) and first.query_x.shape == (10, 1)  # train_queries


@pytest.mark.parametrize("key, value", [("amplitude", [5.0, 0.1]), ("phase", [1.0]),
                                        ("amplitude", [-1.0, 2.0])])
def test_bad_ranges_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"data.{key} must be \\[low, high\\]"):
        SinusoidEpisodes(**{key: value})


@pytest.mark.parametrize("setting", ["shots", "queries", "train_queries", "meta_batch_size"])
def test_the_shared_episode_settings_are_checked_too(setting):
    with pytest.raises(ValueError, match=rf"data\.{setting} must be >= 1"):
        SinusoidEpisodes(**{setting: 0})
