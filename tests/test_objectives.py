"""Objectives: the loss, the predictions, the per-example score and its interval, by hand."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from metalearn.algorithms.maml import MAML
from metalearn.algorithms.protonet import ProtoNet
from metalearn.models.split import SplitModel
from metalearn.objectives import Classification, Regression, require_served


def test_classification_is_cross_entropy_and_accuracy_of_the_argmax():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0], [0.5, 0.0]])
    y = torch.tensor([0, 1, 1, 1])
    c = Classification()
    torch.testing.assert_close(c.loss(logits, y), F.cross_entropy(logits, y))
    torch.testing.assert_close(c.loss(logits, y, reduction="sum"), 4 * F.cross_entropy(logits, y))
    assert c.predictions(logits).tolist() == [0, 1, 0, 0]
    assert c.score(logits, y).item() == 0.5
    assert c.episode_ci95(torch.tensor([1.0, 1.0, 0.0, 0.0])) == pytest.approx(1.96 * (0.25 / 4) ** 0.5)
    assert (c.metric, c.mode) == ("acc", "max")


def test_regression_is_mean_squared_error_with_a_normal_interval():
    out = torch.tensor([[1.0], [2.0], [0.0], [4.0]])
    y = torch.tensor([[0.0], [2.0], [2.0], [1.0]])
    r = Regression()
    torch.testing.assert_close(r.loss(out, y), F.mse_loss(out, y))
    assert r.loss(out, y, reduction="sum").item() == 1 + 0 + 4 + 9
    assert r.score(out, y).item() == pytest.approx(14 / 4)
    sq = [1.0, 0.0, 4.0, 9.0]  # s = 4.0277, mean 3.5
    s = math.sqrt(sum((v - 3.5) ** 2 for v in sq) / 3)
    assert r.episode_ci95(r.example_scores(out, y)) == pytest.approx(1.96 * s / 2)
    assert (r.metric, r.mode) == ("mse", "min")
    with pytest.raises(ValueError, match=r"outputs of shape \[4\] for targets of shape \[4, 1\]"):
        r.loss(out.squeeze(1), y)


@pytest.mark.parametrize("shape", [(5, 1), (5, 2), (5, 2, 3)])
def test_regression_averages_over_every_output_of_an_example(shape):
    """A target of several values per example ([N, 2]: a point, [N, 2, 3]: a grid): the loss is
    F.mse_loss, the mean over every entry; an example's score is the mean over its entries, and
    the summed loss (fine-tuning's pooled batches) sums those over the examples. A loss summing
    over an example's outputs instead passes every [N, 1] case."""
    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    r = Regression()
    torch.testing.assert_close(r.loss(out, y), F.mse_loss(out, y))
    per_example = ((out - y) ** 2).reshape(shape[0], -1).mean(1)
    torch.testing.assert_close(r.example_scores(out, y), per_example)
    torch.testing.assert_close(r.score(out, y), F.mse_loss(out, y))
    torch.testing.assert_close(r.loss(out, y, reduction="sum"), per_example.sum())
    torch.testing.assert_close(r.loss(out, y, reduction="sum") / shape[0], F.mse_loss(out, y))


def test_an_objective_refuses_a_metric_or_direction_it_does_not_compute():
    assert Classification(metric="acc", mode="max").metric == "acc"
    with pytest.raises(ValueError, match="objective.mode='max'.*computes mode 'min'"):
        Regression(metric="mse", mode="max")


def test_protonet_cannot_serve_regression_and_says_so():
    with pytest.raises(ValueError, match="ProtoNet serves objective=classification only, not "
                                         "objective=regression: prototypes"):
        require_served(Regression(), ProtoNet, "algorithm")
    require_served(Regression(), MAML, "algorithm")
    with pytest.raises(ValueError, match="objective=regression"):
        ProtoNet(model=SplitModel(top=torch.nn.Linear(1, 1)), objective=Regression(), optimizer=None)
