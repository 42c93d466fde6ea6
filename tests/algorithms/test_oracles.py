"""Each algorithm against a reference it cannot fake: gradients written out by hand."""
from __future__ import annotations

from functools import partial

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from metalearn.algorithms import gradient
from metalearn.algorithms.evaluation import adapted_predictions
from metalearn.algorithms.inner_loop import adapt
from metalearn.algorithms.maml import MAML
from metalearn.algorithms.reptile import Reptile
from metalearn.models.split import SplitModel
from metalearn.objectives import Classification
from tests.conftest import toy_episode


def ce_grad(W, b, x, y):
    """Cross-entropy gradient of logits = x W^T + b, by hand: (softmax - onehot) / n."""
    z = x @ W.T + b
    p = torch.softmax(z, dim=1)
    d = (p - torch.nn.functional.one_hot(y, W.shape[0]).to(p.dtype)) / len(y)
    return d.T @ x, d.sum(0)


def sgd_by_hand(W, b, x, y, steps, lr):
    for _ in range(steps):
        gW, gb = ce_grad(W, b, x, y)
        W, b = W - lr * gW, b - lr * gb
    return W, b


def linear_learner(cls, outer_lr, **kw):
    torch.manual_seed(0)
    model = SplitModel(top=nn.Linear(3, 2))
    return cls(model=model, objective=Classification(), optimizer=partial(torch.optim.SGD, lr=outer_lr),
               inner_lr=0.3, inner_steps=3, eval_inner_steps=3, **kw)


def one_meta_step(learner, episodes):
    """A real Lightning fit of exactly one training step on this meta-batch."""
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", limit_val_batches=0)
    trainer.fit(learner, train_dataloaders=DataLoader([episodes], batch_size=None))
    assert trainer.global_step == 1


def test_reptile_update_equals_hand_computed():
    learner = linear_learner(Reptile, outer_lr=0.25)
    W0, b0 = learner.model.top.weight.detach().clone(), learner.model.top.bias.detach().clone()
    episodes = [toy_episode(1), toy_episode(2), toy_episode(3)]
    adapted = [sgd_by_hand(W0, b0, e.support_x, e.support_y, 3, 0.3) for e in episodes]
    W_mean = sum(w for w, _ in adapted) / 3
    b_mean = sum(b for _, b in adapted) / 3
    one_meta_step(learner, episodes)
    torch.testing.assert_close(learner.model.top.weight, W0 + 0.25 * (W_mean - W0))
    torch.testing.assert_close(learner.model.top.bias, b0 + 0.25 * (b_mean - b0))


def test_fomaml_meta_gradient_is_query_gradient_at_adapted_weights():
    learner = linear_learner(MAML, outer_lr=0.5, first_order=True)
    W0, b0 = learner.model.top.weight.detach().clone(), learner.model.top.bias.detach().clone()
    episodes = [toy_episode(4), toy_episode(5)]
    gW, gb = torch.zeros_like(W0), torch.zeros_like(b0)
    for e in episodes:
        Wt, bt = sgd_by_hand(W0, b0, e.support_x, e.support_y, 3, 0.3)
        qW, qb = ce_grad(Wt, bt, e.query_x, e.query_y)
        gW, gb = gW + qW / 2, gb + qb / 2
    one_meta_step(learner, episodes)
    torch.testing.assert_close(learner.model.top.weight, W0 - 0.5 * gW)
    torch.testing.assert_close(learner.model.top.bias, b0 - 0.5 * gb)


def test_reptile_one_step_outer_one_is_sgd_on_support_loss():
    """Nichol et al.: with one inner step and outer step 1, Reptile is SGD on the support loss."""
    learner = linear_learner(Reptile, outer_lr=1.0)
    learner.inner_steps = 1
    W0, b0 = learner.model.top.weight.detach().clone(), learner.model.top.bias.detach().clone()
    e = toy_episode(6)
    gW, gb = ce_grad(W0, b0, e.support_x, e.support_y)
    one_meta_step(learner, [e])
    torch.testing.assert_close(learner.model.top.weight, W0 - 0.3 * gW)
    torch.testing.assert_close(learner.model.top.bias, b0 - 0.3 * gb)


def test_reptile_train_on_query_alternates_support_and_query_steps():
    """train_on_query: inner steps take support, query, support; the outer step is as before."""
    learner = linear_learner(Reptile, outer_lr=0.5, train_on_query=True)
    W0, b0 = learner.model.top.weight.detach().clone(), learner.model.top.bias.detach().clone()
    episodes = [toy_episode(7), toy_episode(8)]
    adapted = []
    for e in episodes:
        W, b = sgd_by_hand(W0, b0, e.support_x, e.support_y, 1, 0.3)
        W, b = sgd_by_hand(W, b, e.query_x, e.query_y, 1, 0.3)
        adapted.append(sgd_by_hand(W, b, e.support_x, e.support_y, 1, 0.3))
    support_only = sgd_by_hand(W0, b0, episodes[0].support_x, episodes[0].support_y, 3, 0.3)[0]
    assert not torch.allclose(adapted[0][0], support_only)  # the query step makes a difference
    one_meta_step(learner, episodes)
    torch.testing.assert_close(learner.model.top.weight,
                               W0 + 0.5 * (sum(w for w, _ in adapted) / 2 - W0))
    torch.testing.assert_close(learner.model.top.bias,
                               b0 + 0.5 * (sum(b for _, b in adapted) / 2 - b0))


def test_maml_second_order_gradient_matches_finite_differences():
    torch.manual_seed(0)
    top = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    e = toy_episode(7)
    xs, xq = e.support_x.double(), e.query_x.double()
    params = dict(top.named_parameters())

    def query_loss(p):
        fast, _ = adapt(top, p, xs, e.support_y, F.cross_entropy, steps=2, lr=0.4, first_order=False)
        return nn.functional.cross_entropy(torch.func.functional_call(top, fast, (xq,)), e.query_y)

    grads = torch.autograd.grad(query_loss(params), list(params.values()))
    eps = 1e-6
    for (name, p), g in zip(params.items(), grads, strict=False):
        flat = p.detach().reshape(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 4)):
            plus = {n: q.detach().clone() for n, q in params.items()}
            minus = {n: q.detach().clone() for n, q in params.items()}
            plus[name].view(-1)[i] += eps
            minus[name].view(-1)[i] -= eps
            plus = {n: q.requires_grad_(True) for n, q in plus.items()}
            minus = {n: q.requires_grad_(True) for n, q in minus.items()}
            fd = (query_loss(plus) - query_loss(minus)) / (2 * eps)
            torch.testing.assert_close(g.reshape(-1)[i], fd.detach(), rtol=1e-5, atol=1e-7)
    # and second order really differs from first order here (the test could otherwise pass
    # with create_graph silently off)
    fast, _ = adapt(top, params, xs, e.support_y, F.cross_entropy, steps=2, lr=0.4, first_order=True)
    q = nn.functional.cross_entropy(torch.func.functional_call(top, fast, (xq,)), e.query_y)
    first_order = torch.autograd.grad(q, list(fast.values()))
    assert max((a - b).abs().max().item() for a, b in zip(grads, first_order, strict=False)) > 1e-4


def test_evaluation_adapts_with_eval_inner_lr_when_given(monkeypatch):
    """Test-time adaptation: eval_inner_steps SGD steps of eval_inner_lr (inner_lr when null):
    the adapted weights equal the hand-computed ones, and evaluation predicts with them."""
    ep = toy_episode(4)
    for cls in (Reptile, MAML):
        for eval_lr in (None, 0.05):
            learner = linear_learner(cls, outer_lr=0.25, eval_inner_lr=eval_lr)
            W0, b0 = learner.model.top.weight.detach(), learner.model.top.bias.detach()
            W, b = sgd_by_hand(W0, b0, ep.support_x, ep.support_y, 3, eval_lr or 0.3)
            seen = {}

            def spy(adapt, seen=seen):
                def wrapped(params, xs, ys, steps):
                    seen["fast"], losses = adapt(params, xs, ys, steps)
                    return seen["fast"], losses
                return wrapped

            monkeypatch.setattr(gradient, "adapted_predictions",
                                lambda ml, e, adapt, steps: adapted_predictions(ml, e, spy(adapt), steps))
            post, pre = learner.query_predictions(ep)
            torch.testing.assert_close(seen["fast"]["weight"], W)
            torch.testing.assert_close(seen["fast"]["bias"], b)
            torch.testing.assert_close(post, (ep.query_x @ W.T + b).argmax(1))
            torch.testing.assert_close(pre, (ep.query_x @ W0.T + b0).argmax(1))
