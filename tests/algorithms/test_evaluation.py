"""Evaluation adapts a copy: meta-weights untouched, nothing carried between tasks, gradients on."""
from __future__ import annotations

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from metalearn.algorithms.reptile import Reptile
from metalearn.algorithms.stats import seeds_ci95, t975
from metalearn.episode import Episode
from metalearn.models.split import SplitModel
from tests.conftest import toy_episode


def learner() -> Reptile:
    torch.manual_seed(0)
    top = nn.Linear(3, 2)
    nn.init.zeros_(top.weight)
    nn.init.zeros_(top.bias)
    return Reptile(model=SplitModel(top=top), optimizer=partial(torch.optim.SGD, lr=1.0),
                   inner_lr=1.0, inner_steps=3, eval_inner_steps=10)


def separable_episode() -> Episode:
    """Class = sign of the first coordinate: learnable from 4 support points."""
    x = torch.tensor([[2.0, 0, 0], [-2.0, 0, 0], [1.5, 1, 0], [-1.5, -1, 0]])
    y = torch.tensor([1, 0, 1, 0])
    return Episode(x, y, x * 0.5, y, family="sep/t0", domain="sep", ways=2, shots=2, queries=2)


def test_evaluation_leaves_meta_weights_unchanged():
    m = learner()
    before = {n: p.detach().clone() for n, p in m.model.named_parameters()}
    m.evaluate_episode(toy_episode(1))
    for n, p in m.model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_no_adaptation_leaks_into_the_next_task():
    alone = learner().evaluate_episode(toy_episode(2))
    m = learner()
    m.evaluate_episode(toy_episode(3))
    after_other = m.evaluate_episode(toy_episode(2))
    assert after_other == alone


def test_evaluation_really_adapts():
    scores = learner().evaluate_episode(separable_episode())
    assert scores["acc_pre"] == 0.5  # zero weights: a tie, argmax picks class 0
    assert scores["acc"] == 1.0


def run_test(inference_mode: bool) -> list[dict]:
    m = learner()
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", inference_mode=inference_mode)
    trainer.test(m, dataloaders=DataLoader([separable_episode()], batch_size=None))
    return m.test_results


def test_lightning_inference_mode_cannot_silently_disable_adaptation():
    with pytest.raises(RuntimeError, match="inference_mode=False"):
        run_test(inference_mode=True)
    results = run_test(inference_mode=False)
    assert results[0]["acc"] == 1.0 and results[0]["acc_pre"] == 0.5


@pytest.mark.parametrize("size", [1, 2, 5])
def test_scoring_the_query_in_chunks_changes_nothing(size):
    ep = toy_episode(9, n=10)
    whole = learner()
    whole.eval_batch_size = 100
    chunked = learner()
    chunked.eval_batch_size = size
    assert chunked.evaluate_episode(ep) == whole.evaluate_episode(ep)


def test_one_episode_task_gets_a_binomial_interval_over_its_queries():
    # ARSC scores each task with one fixed episode: an interval "over episodes" would be 0.
    m = learner()
    m._scores = [{"domain": "a", "family": "a/t2", "acc": 0.75, "acc_pre": 0.5, "shots": 5,
                  "queries": 40, "n_query": 80},
                 {"domain": "b", "family": "b/t2", "acc": 0.6, "acc_pre": 0.5, "shots": 5,
                  "queries": 5, "n_query": 10},
                 {"domain": "b", "family": "b/t2", "acc": 0.8, "acc_pre": 0.5, "shots": 5,
                  "queries": 5, "n_query": 10}]
    m.log_dict = lambda *a, **k: None  # no trainer attached
    m.on_test_epoch_end()
    ci = {r["domain"]: r["ci95"] for r in m.test_results}
    assert ci["a"] == pytest.approx(1.96 * (0.75 * 0.25 / 80) ** 0.5)
    assert ci["b"] == pytest.approx(1.96 * 0.1)  # two episodes: s = 0.1414, s / sqrt(2) = 0.1


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
