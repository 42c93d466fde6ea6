"""Every algorithm on objective=regression against a hand-written reference (mean squared error).

The same checks as the classification oracles: a linear model's updates with gradients written
out by hand (Reptile, FOMAML, fine-tuning), and second-order MAML, ANIL and Meta-SGD against a
plain-tensor functional reference that is itself checked by finite differences. Then the
evaluation: MSE per group, its interval, and the logged names.
"""
from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metalearn.algorithms.anil import ANIL
from metalearn.algorithms.finetune import FineTune
from metalearn.algorithms.maml import MAML
from metalearn.algorithms.reptile import Reptile
from metalearn.data.episode import Episode
from metalearn.intervals import mean_ci95
from metalearn.models.split import SplitModel
from metalearn.models.top import Top
from metalearn.objectives import Regression
from tests.algorithms.test_family import check_by_finite_differences, params_of
from tests.algorithms.test_oracles import one_meta_step

INNER_LR, STEPS, OUTER_LR = 0.1, 3, 0.5


def regression_episode(seed: int, n: int = 6, outputs: int = 1) -> Episode:
    """Targets y = x W + 0.1 noise for a task-specific W: [n, outputs] doubles."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, outputs, generator=g, dtype=torch.float64)
    xs, xq = (torch.randn(n, 3, generator=g, dtype=torch.float64) for _ in range(2))
    noise = [0.1 * torch.randn(n, outputs, generator=g, dtype=torch.float64) for _ in range(2)]
    return Episode(xs, xs @ w + noise[0], xq, xq @ w + noise[1], family="lin", group="lin",
                   shots=n, queries=n)


def mse_grad(W, b, x, y):
    """Gradient of mean((x W^T + b - y)^2) over all n * d entries by hand: 2 r^T x / (n d) and
    2 sum(r) / (n d)."""
    r = x @ W.T + b - y  # [n, d]
    return 2 * r.T @ x / r.numel(), 2 * r.sum(0) / r.numel()


def sgd_by_hand(W, b, x, y, steps=STEPS, lr=INNER_LR):
    for _ in range(steps):
        gW, gb = mse_grad(W, b, x, y)
        W, b = W - lr * gW, b - lr * gb
    return W, b


def linear(cls, outputs: int = 1, **kw):
    torch.manual_seed(0)
    inner = dict(inner_lr=INNER_LR, eval_inner_steps=STEPS)
    if cls is not FineTune:  # the gradient learners also adapt in training
        inner["inner_steps"] = STEPS
    return cls(model=SplitModel(top=nn.Linear(3, outputs).double()), objective=Regression(),
               optimizer=partial(torch.optim.SGD, lr=OUTER_LR), **inner, **kw)


def start(learner):
    top = learner.model.top
    return top.weight.detach().clone(), top.bias.detach().clone()


def test_reptile_moves_toward_the_tasks_least_squares_fits():
    learner = linear(Reptile)
    W0, b0 = start(learner)
    episodes = [regression_episode(s) for s in (1, 2, 3)]
    adapted = [sgd_by_hand(W0, b0, e.support_x, e.support_y) for e in episodes]
    one_meta_step(learner, episodes)
    torch.testing.assert_close(learner.model.top.weight,
                               W0 + OUTER_LR * (sum(w for w, _ in adapted) / 3 - W0))
    torch.testing.assert_close(learner.model.top.bias,
                               b0 + OUTER_LR * (sum(b for _, b in adapted) / 3 - b0))


# two outputs: the mean over an example's outputs, not their sum (every step divides by n d)
@pytest.mark.parametrize("outputs", [1, 2])
def test_fomaml_meta_gradient_is_the_query_mse_gradient_at_the_adapted_weights(outputs):
    learner = linear(MAML, outputs, first_order=True)
    W0, b0 = start(learner)
    episodes = [regression_episode(s, outputs=outputs) for s in (4, 5)]
    gW, gb = torch.zeros_like(W0), torch.zeros_like(b0)
    for e in episodes:
        Wt, bt = sgd_by_hand(W0, b0, e.support_x, e.support_y)
        qW, qb = mse_grad(Wt, bt, e.query_x, e.query_y)
        gW, gb = gW + qW / 2, gb + qb / 2
    one_meta_step(learner, episodes)
    torch.testing.assert_close(learner.model.top.weight, W0 - OUTER_LR * gW)
    torch.testing.assert_close(learner.model.top.bias, b0 - OUTER_LR * gb)


@pytest.mark.parametrize("outputs", [1, 2])
def test_finetune_step_is_sgd_on_the_pooled_squared_error(outputs):
    learner = linear(FineTune, outputs)
    W0, b0 = start(learner)
    episodes = [regression_episode(s, outputs=outputs) for s in (6, 7)]
    x = torch.cat([t for e in episodes for t in (e.support_x, e.query_x)])
    y = torch.cat([t for e in episodes for t in (e.support_y, e.query_y)])
    gW, gb = mse_grad(W0, b0, x, y)
    one_meta_step(learner, episodes)
    torch.testing.assert_close(learner.model.top.weight, W0 - OUTER_LR * gW)
    torch.testing.assert_close(learner.model.top.bias, b0 - OUTER_LR * gb)


class TinyRegressor(Top):
    """tanh(x W1^T + b1) then a linear head to one output."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.head = nn.Linear(4, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def net_forward(p: dict, x: torch.Tensor) -> torch.Tensor:
    """TinyRegressor written out by hand."""
    return torch.tanh(x @ p["body.weight"].T + p["body.bias"]) @ p["head.weight"].T + p["head.bias"]


def reference_query_loss(p: dict, e: Episode, adapted: tuple[str, ...],
                         lrs: dict | None = None) -> torch.Tensor:
    """Query MSE after STEPS differentiable SGD steps on the `adapted` entries of p."""
    fast = dict(p)
    for _ in range(STEPS):
        loss = ((net_forward(fast, e.support_x) - e.support_y) ** 2).mean()
        grads = torch.autograd.grad(loss, [fast[n] for n in adapted], create_graph=True)
        for n, g in zip(adapted, grads, strict=False):
            fast[n] = fast[n] - (INNER_LR if lrs is None else lrs[n]) * g
    return ((net_forward(fast, e.query_x) - e.query_y) ** 2).mean()


def tiny(cls, **kw):
    torch.manual_seed(0)
    return cls(model=SplitModel(top=TinyRegressor().double()), objective=Regression(),
               optimizer=partial(torch.optim.SGD, lr=OUTER_LR), inner_lr=INNER_LR,
               inner_steps=STEPS, eval_inner_steps=STEPS, **kw)


ALL = ("body.weight", "body.bias", "head.weight", "head.bias")


@pytest.mark.parametrize("cls, adapted", [(MAML, ALL), (ANIL, ("head.weight", "head.bias"))])
def test_second_order_meta_update_matches_the_functional_reference(cls, adapted):
    learner = tiny(cls)
    p0 = params_of(learner.model.top)
    episodes = [regression_episode(s) for s in (8, 9)]
    ref = {n: torch.zeros_like(v) for n, v in p0.items()}
    for e in episodes:
        f = partial(reference_query_loss, e=e, adapted=adapted)
        grads = dict(zip(p0, torch.autograd.grad(f(p0), list(p0.values())), strict=False))
        check_by_finite_differences(f, p0, grads)
        for n in ref:
            ref[n] += grads[n] / len(episodes)
    one_meta_step(learner, episodes)
    for n, p in learner.model.top.named_parameters():
        torch.testing.assert_close(p.detach(), p0[n].detach() - OUTER_LR * ref[n])


def test_meta_sgd_learns_inner_rates_with_the_reference_gradient():
    learner = tiny(MAML, learn_inner_lr=True)
    p0 = params_of(learner.model.top)
    lr0 = {n: torch.full_like(p0[n], INNER_LR).requires_grad_(True) for n in ALL}
    e = regression_episode(10)

    def f(lrs):
        return reference_query_loss(p0, e, ALL, lrs)

    grads = dict(zip(ALL, torch.autograd.grad(f(lr0), list(lr0.values())), strict=False))
    check_by_finite_differences(f, lr0, grads)
    one_meta_step(learner, [e])
    for n in ALL:
        torch.testing.assert_close(learner.inner_lrs[n.replace(".", "__")].detach(),
                                   lr0[n].detach() - OUTER_LR * grads[n])


def test_evaluation_reports_mse_before_and_after_adapting():
    learner = linear(Reptile)
    e = regression_episode(11, n=20)
    W0, b0 = start(learner)
    Wt, bt = sgd_by_hand(W0, b0, e.support_x, e.support_y)
    record = learner.evaluate_episode(e)
    assert record["value"] == pytest.approx(F.mse_loss(e.query_x @ Wt.T + bt, e.query_y).item())
    assert record["value_pre"] == pytest.approx(F.mse_loss(e.query_x @ W0.T + b0, e.query_y).item())
    assert record["value"] < record["value_pre"]  # adapting to the task helps


def test_mse_aggregates_per_group_with_its_interval_and_is_logged_as_mse():
    learner = linear(Reptile)
    logged = {}
    learner.log_dict = lambda metrics, **kw: logged.update(metrics)  # no trainer attached
    episodes = [regression_episode(s, n=8) for s in (12, 13, 14)]
    one = regression_episode(15, n=8)
    one.group = "alone"
    learner.on_test_epoch_start()
    for ep in [*episodes, one]:
        learner.test_step(ep, 0)
    learner.on_test_epoch_end()
    values = [learner.evaluate_episode(ep)["value"] for ep in episodes]
    mean, ci = mean_ci95(values)  # three episodes: 1.96 s / sqrt(3) over them
    by_group = {r["group"]: r for r in learner.test_results}
    assert by_group["lin"]["metric"] == "mse"
    assert by_group["lin"]["value"] == pytest.approx(mean) and by_group["lin"]["ci95"] == pytest.approx(ci)
    # a group of one episode: the interval over its query examples' squared errors
    W0, b0 = start(learner)
    Wt, bt = sgd_by_hand(W0, b0, one.support_x, one.support_y)
    squared = ((one.query_x @ Wt.T + bt - one.query_y) ** 2).squeeze(1).tolist()
    assert by_group["alone"]["ci95"] == pytest.approx(mean_ci95(squared)[1])
    assert {"test/lin/mse", "test/lin/mse_ci95", "test/lin/mse_pre", "test/mse",
            "test/mse_ci95", "test/alone/mse"} <= set(logged)
    assert not any("acc" in k for k in logged)
