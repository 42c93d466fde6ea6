"""Evaluation adapts a copy: meta-weights untouched, nothing carried between tasks, gradients on."""
from __future__ import annotations

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from metalearn.algorithms.evaluation import episode_record
from metalearn.algorithms.reptile import Reptile
from metalearn.data.episode import Episode
from metalearn.models.split import SplitModel
from metalearn.objectives import Classification
from tests.conftest import toy_episode


def learner() -> Reptile:
    torch.manual_seed(0)
    top = nn.Linear(3, 2)
    nn.init.zeros_(top.weight)
    nn.init.zeros_(top.bias)
    return Reptile(model=SplitModel(top=top), objective=Classification(),
                   optimizer=partial(torch.optim.SGD, lr=1.0),
                   inner_lr=1.0, inner_steps=3, eval_inner_steps=10)


def separable_episode() -> Episode:
    """Class = sign of the first coordinate: learnable from 4 support points."""
    x = torch.tensor([[2.0, 0, 0], [-2.0, 0, 0], [1.5, 1, 0], [-1.5, -1, 0]])
    y = torch.tensor([1, 0, 1, 0])
    return Episode(x, y, x * 0.5, y, family="sep/t0", group="sep", ways=2, shots=2, queries=2)


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
    assert scores["value_pre"] == 0.5  # zero weights: a tie, argmax picks class 0
    assert scores["value"] == 1.0


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
    assert results[0]["value"] == 1.0 and results[0]["value_pre"] == 0.5
    assert results[0]["metric"] == "acc"


@pytest.mark.parametrize("size", [1, 2, 5])
def test_scoring_the_query_in_chunks_changes_nothing(size):
    ep = toy_episode(9, n=10)
    whole = learner()
    whole.eval_batch_size = 100
    chunked = learner()
    chunked.eval_batch_size = size
    assert chunked.evaluate_episode(ep) == whole.evaluate_episode(ep)


def scored(m: Reptile, group: str, n: int, correct: int) -> dict:
    """The record of an episode of n queries (all class 0) where `correct` are predicted right."""
    y = torch.zeros(n, dtype=torch.long)
    ep = Episode(torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(n, 3), y,
                 family=f"{group}/t2", group=group, ways=2, shots=1, queries=n // 2)
    pred = torch.cat([torch.zeros(correct), torch.ones(n - correct)]).long()
    return episode_record(m.objective, ep, pred, torch.zeros(n, dtype=torch.long))


def test_one_episode_task_gets_a_binomial_interval_over_its_queries():
    # ARSC scores each task with one fixed episode: an interval "over episodes" would be 0.
    m = learner()
    m._scores = [scored(m, "a", 80, 60), scored(m, "b", 10, 6), scored(m, "b", 10, 8)]
    m.log_dict = lambda *a, **k: None  # no trainer attached
    m.on_test_epoch_end()
    ci = {r["group"]: r["ci95"] for r in m.test_results}
    assert ci["a"] == pytest.approx(1.96 * (0.75 * 0.25 / 80) ** 0.5)
    assert ci["b"] == pytest.approx(1.96 * 0.1)  # two episodes: s = 0.1414, s / sqrt(2) = 0.1
    assert {(r["group"], r["metric"], r["value_pre"]) for r in m.test_results} == {
        ("a", "acc", 1.0), ("b", "acc", 1.0)}
