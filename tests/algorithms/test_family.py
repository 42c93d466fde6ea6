"""MAML (second order), Meta-SGD, ANIL, ProtoNets and fine-tuning against hand-written references.

The references below use plain tensor code (no functional_call, no metalearn inner loop), and
the second-order ones are themselves checked by finite differences.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from metalearn.algorithms.anil import ANIL
from metalearn.algorithms.finetune import FineTune
from metalearn.algorithms.maml import MAML
from metalearn.algorithms.protonet import ProtoNet, prototype_logits
from metalearn.data.base import EpisodicDataModule
from metalearn.data.episode import Episode
from metalearn.data.sampling import TaskSampler
from metalearn.models.conv4 import Conv4
from metalearn.models.split import SplitModel
from metalearn.models.top import Top
from metalearn.objectives import Classification
from tests.algorithms.test_oracles import one_meta_step
from tests.conftest import toy_episode

INNER_LR, STEPS = 0.4, 2


class TinyNet(Top):
    """tanh(x W1^T + b1) then a linear head: a body and a head, as the real tops have."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def net_forward(p: dict, x: torch.Tensor) -> torch.Tensor:
    """TinyNet written out by hand."""
    z = torch.tanh(x @ p["body.weight"].T + p["body.bias"])
    return z @ p["head.weight"].T + p["head.bias"]


def reference_query_loss(p: dict, e, adapted: tuple[str, ...], lrs: dict | None = None) -> torch.Tensor:
    """Query loss after STEPS differentiable SGD steps on the `adapted` entries of p."""
    fast = dict(p)
    for _ in range(STEPS):
        loss = F.cross_entropy(net_forward(fast, e.support_x.double()), e.support_y)
        grads = torch.autograd.grad(loss, [fast[n] for n in adapted], create_graph=True)
        for n, g in zip(adapted, grads, strict=False):
            fast[n] = fast[n] - (INNER_LR if lrs is None else lrs[n]) * g
    return F.cross_entropy(net_forward(fast, e.query_x.double()), e.query_y)


def params_of(net: nn.Module) -> dict:
    return {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()}


def check_by_finite_differences(f, p: dict, grads: dict, eps: float = 1e-6) -> None:
    """Central differences of f at a few entries of every tensor of p."""
    for name, g in grads.items():
        for i in range(0, p[name].numel(), max(1, p[name].numel() // 3)):
            plus = {n: q.detach().clone() for n, q in p.items()}
            minus = {n: q.detach().clone() for n, q in p.items()}
            plus[name].view(-1)[i] += eps
            minus[name].view(-1)[i] -= eps
            fd = (f({n: q.requires_grad_(True) for n, q in plus.items()})
                  - f({n: q.requires_grad_(True) for n, q in minus.items()})) / (2 * eps)
            torch.testing.assert_close(g.reshape(-1)[i], fd.detach(), rtol=1e-5, atol=1e-8)


def learner_of(cls, outer_lr: float = 0.5, **kw):
    torch.manual_seed(0)
    inner = {ProtoNet: {}, FineTune: dict(inner_lr=INNER_LR, eval_inner_steps=STEPS)}.get(
        cls, dict(inner_lr=INNER_LR, inner_steps=STEPS, eval_inner_steps=STEPS))
    return cls(model=SplitModel(top=TinyNet().double()), objective=Classification(),
               optimizer=partial(torch.optim.SGD, lr=outer_lr), **inner, **kw)


def double_episodes(*seeds):
    eps = [toy_episode(s) for s in seeds]
    for e in eps:
        e.support_x, e.query_x = e.support_x.double(), e.query_x.double()
    return eps


@pytest.mark.parametrize("cls, adapted", [
    (MAML, ("body.weight", "body.bias", "head.weight", "head.bias")),
    (ANIL, ("head.weight", "head.bias")),
])
def test_second_order_meta_update_matches_functional_reference(cls, adapted):
    learner = learner_of(cls)
    p0 = params_of(learner.model.top)
    episodes = double_episodes(1, 2)
    ref = {n: torch.zeros_like(v) for n, v in p0.items()}
    for e in episodes:
        f = partial(reference_query_loss, e=e, adapted=adapted)
        grads = dict(zip(p0, torch.autograd.grad(f(p0), list(p0.values())), strict=False))
        check_by_finite_differences(f, p0, grads)  # the reference is right ...
        for n in ref:
            ref[n] += grads[n] / len(episodes)
    one_meta_step(learner, episodes)  # ... and the learner's step is the reference's
    for n, p in learner.model.top.named_parameters():
        torch.testing.assert_close(p.detach(), p0[n].detach() - 0.5 * ref[n])
    # second order matters here: the first-order update differs
    fo = learner_of(cls, first_order=True)
    one_meta_step(fo, episodes)
    diff = max((a - b).abs().max().item()
               for a, b in zip(fo.model.top.parameters(), learner.model.top.parameters(), strict=False))
    assert diff > 1e-5


def test_anil_never_adapts_the_body_and_runs_it_once_per_episode():
    learner = learner_of(ANIL)
    calls = []
    learner.model.top.body.register_forward_hook(lambda *a: calls.append(1))
    e = double_episodes(3)[0]
    params = learner.meta_parameters()
    fast, losses, _ = learner.adapt_and_predict(params, e.support_x, e.support_y, e.query_x, 5)
    assert len(losses) == 5 and len(calls) == 2  # support and query, not once per step
    assert fast["body.weight"] is params["body.weight"]
    assert not torch.equal(fast["head.weight"], params["head.weight"])


def test_meta_sgd_learns_inner_rates_with_the_right_gradient():
    learner = learner_of(MAML, outer_lr=0.1, learn_inner_lr=True)
    names = ("body.weight", "body.bias", "head.weight", "head.bias")
    p0 = params_of(learner.model.top)
    lr0 = {n: torch.full_like(p0[n], INNER_LR).requires_grad_(True) for n in names}
    e = double_episodes(4)[0]

    def f(lrs):
        return reference_query_loss(p0, e, names, lrs)

    grads = dict(zip(names, torch.autograd.grad(f(lr0), list(lr0.values())), strict=False))
    check_by_finite_differences(f, lr0, grads)
    one_meta_step(learner, [e])
    for n in names:
        torch.testing.assert_close(learner.inner_lrs[n.replace(".", "__")].detach(),
                                   lr0[n].detach() - 0.1 * grads[n])
    with pytest.raises(ValueError, match="first_order=false"):
        learner_of(MAML, learn_inner_lr=True, first_order=True)


def test_prototype_logits_are_negative_squared_distances_by_hand():
    g = torch.Generator().manual_seed(0)
    zs, zq = torch.randn(6, 4, generator=g), torch.randn(5, 4, generator=g)
    ys = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = prototype_logits(zs, ys, 3, zq)
    for i in range(5):
        for k in range(3):
            c = (zs[k] + zs[k + 3]) / 2
            assert abs(logits[i, k].item() + sum((zq[i, j] - c[j]).item() ** 2 for j in range(4))) < 1e-5


def test_protonet_step_is_sgd_on_the_prototype_loss_and_ignores_the_head():
    learner = learner_of(ProtoNet)
    p0 = params_of(learner.model.top)
    assert set(learner.meta_parameters()) == {"body.weight", "body.bias"}
    episodes = double_episodes(5, 6)

    def loss(p):
        total = 0.0
        for e in episodes:
            zs = torch.tanh(e.support_x @ p["body.weight"].T + p["body.bias"])
            zq = torch.tanh(e.query_x @ p["body.weight"].T + p["body.bias"])
            protos = torch.stack([zs[e.support_y == k].mean(0) for k in range(2)])
            total = total + F.cross_entropy(-torch.cdist(zq, protos) ** 2, e.query_y)
        return total / len(episodes)

    body = {n: p0[n] for n in ("body.weight", "body.bias")}
    grads = dict(zip(body, torch.autograd.grad(loss(p0), list(body.values())), strict=False))
    one_meta_step(learner, episodes)
    top = dict(learner.model.top.named_parameters())
    for n, g in grads.items():
        torch.testing.assert_close(top[n].detach(), p0[n].detach() - 0.5 * g)
    torch.testing.assert_close(top["head.weight"].detach(), p0["head.weight"].detach())
    # evaluation: nothing adapted, no "before adapting" score
    scores = learner.evaluate_episode(episodes[0])
    assert scores["value_pre"] is None and 0.0 <= scores["value"] <= 1.0


def test_finetune_step_is_sgd_on_the_pooled_examples():
    learner = learner_of(FineTune)
    p0 = params_of(learner.model.top)
    episodes = double_episodes(7, 8)
    x = torch.cat([t for e in episodes for t in (e.support_x, e.query_x)])
    y = torch.cat([t for e in episodes for t in (e.support_y, e.query_y)])
    grads = dict(zip(p0, torch.autograd.grad(F.cross_entropy(net_forward(p0, x), y),
                                             list(p0.values())), strict=False))
    one_meta_step(learner, episodes)
    for n, p in learner.model.top.named_parameters():
        torch.testing.assert_close(p.detach(), p0[n].detach() - 0.5 * grads[n])


class RelabelledEpisodes(pl.LightningDataModule):
    """One meta-batch from data whose episodes relabel their classes (6 classes in all)."""

    def __init__(self, episodes: list[Episode]) -> None:
        super().__init__()
        self.episodes = episodes
        pools = {"x": {f"c{i}": np.arange(10 * i, 10 * i + 10) for i in range(6)}}
        self.train_sampler = TaskSampler(pools, ways=2, shots=1, queries=1, shuffle_classes=True)

    pooled_classes = EpisodicDataModule.pooled_classes  # what the data sources say: 6 here

    def train_dataloader(self) -> DataLoader:
        return DataLoader([self.episodes], batch_size=None)


class StartWeights(pl.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.p0 = {n: p.detach().clone() for n, p in pl_module.named_parameters()}


def test_finetune_on_relabelled_episodes_is_sgd_on_a_pooled_classifier():
    """Where each episode relabels its classes (Omniglot), a step is SGD on a classifier over
    all the pooled classes, every label read as its class id; the N-way head stays zero and
    is what meta-testing adapts (Chen et al. 2019's Baseline)."""
    learner = learner_of(FineTune)
    episodes = double_episodes(7, 8)
    episodes[0].classes, episodes[1].classes = torch.tensor([4, 1]), torch.tensor([0, 4])
    start = StartWeights()
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", limit_val_batches=0, callbacks=[start])
    trainer.fit(learner, datamodule=RelabelledEpisodes(episodes))
    p0 = {n: p.requires_grad_(True) for n, p in start.p0.items()}
    assert p0["pooled_head.weight"].shape == (6, 4)
    x = torch.cat([t for e in episodes for t in (e.support_x, e.query_x)])
    y = torch.cat([e.classes[t] for e in episodes for t in (e.support_y, e.query_y)])
    z = torch.tanh(x @ p0["model.top.body.weight"].T + p0["model.top.body.bias"])
    loss = F.cross_entropy(z @ p0["pooled_head.weight"].T + p0["pooled_head.bias"], y)
    trained = ["model.top.body.weight", "model.top.body.bias", "pooled_head.weight", "pooled_head.bias"]
    grads = torch.autograd.grad(loss, [p0[n] for n in trained])
    now = dict(learner.named_parameters())
    for n, g in zip(trained, grads, strict=False):
        torch.testing.assert_close(now[n].detach(), p0[n].detach() - 0.5 * g)
    assert not now["model.top.head.weight"].any() and not now["model.top.head.bias"].any()
    assert sorted(learner.meta_parameters()) == ["body.bias", "body.weight", "head.bias", "head.weight"]
    with torch.enable_grad():  # meta-test: the zero head moves on the support set
        fast, _ = learner.adapt_support(learner.meta_parameters(), episodes[0].support_x,
                                        episodes[0].support_y, STEPS)
    assert fast["head.weight"].abs().sum() > 0


@pytest.mark.parametrize("cls", [ProtoNet, FineTune])
def test_trained_5_way_loads_into_a_20_way_model(cls):
    """ProtoNet's head is unused and a pooled fine-tuner's is zero, so its shape (N ways)
    must not block testing at another N; everything else loads."""
    five, twenty = (cls(model=Conv4(ways=n, hidden=8), objective=Classification(), optimizer=None) for n in (5, 20))
    if cls is FineTune:
        for learner in (five, twenty):
            learner.add_pooled_head(12)
        torch.nn.init.normal_(five.pooled_head.weight)
    checkpoint = {"state_dict": five.state_dict()}
    twenty.on_load_checkpoint(checkpoint)  # Lightning calls it before load_state_dict
    twenty.load_state_dict(checkpoint["state_dict"])
    for name, p in five.state_dict().items():
        if ".head." not in name:
            torch.testing.assert_close(twenty.state_dict()[name], p)
    assert twenty.model.top.head.out_features == 20


def conv4_by_hand(p: dict, xs: torch.Tensor, xq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv4 written out by hand: every batch norm takes its statistics from the support rows."""
    n, x = len(xs), torch.cat([xs, xq])
    for i in range(4):
        x = F.conv2d(x, p[f"blocks.{i}.0.weight"], p[f"blocks.{i}.0.bias"], padding=1)
        s = x[:n]
        mean = s.mean(dim=(0, 2, 3), keepdim=True)
        var = ((s - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        w, b = p[f"blocks.{i}.1.weight"], p[f"blocks.{i}.1.bias"]
        x = (x - mean) / torch.sqrt(var + 1e-5) * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
        x = F.max_pool2d(F.relu(x), 2)
    logits = x.flatten(1) @ p["head.weight"].T + p["head.bias"]
    return logits[:n], logits[n:]


def conv4_query_loss(p: dict, e, first_order: bool) -> tuple[torch.Tensor, dict]:
    """Query loss after STEPS SGD steps on the support; first order: the steps are cut from
    the graph and the loss is differentiated at the adapted weights (returned as `wrt`)."""
    fast = {n: v.detach().requires_grad_(True) for n, v in p.items()} if first_order else dict(p)
    for _ in range(STEPS):
        loss = F.cross_entropy(conv4_by_hand(fast, e.support_x, e.support_x[:0])[0], e.support_y)
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
        fast = {n: v - INNER_LR * g for (n, v), g in zip(fast.items(), grads, strict=False)}
        if first_order:
            fast = {n: v.detach().requires_grad_(True) for n, v in fast.items()}
    loss = F.cross_entropy(conv4_by_hand(fast, e.support_x, e.query_x)[1], e.query_y)
    return loss, (fast if first_order else p)


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_and_fomaml_on_conv4_with_episode_batch_norm_match_a_hand_written_network(first_order):
    # The Omniglot setting: batch norm on support-only statistics inside the adapted network.
    torch.manual_seed(0)
    learner = MAML(model=Conv4(hidden=3, ways=3, image_size=16).double(), objective=Classification(),
                   optimizer=partial(torch.optim.SGD, lr=0.5), inner_lr=INNER_LR,
                   inner_steps=STEPS, eval_inner_steps=STEPS, first_order=first_order)
    p0 = params_of(learner.model.top)
    g = torch.Generator().manual_seed(3)
    episodes = []
    for _ in range(2):
        x = torch.rand(12, 1, 16, 16, generator=g, dtype=torch.float64)
        y = torch.arange(3).repeat(4)
        episodes.append(Episode(x[:6], y[:6], x[6:], y[6:], family="img", group="img",
                                ways=3, shots=2, queries=2))
    ref = {n: torch.zeros_like(v) for n, v in p0.items()}
    for e in episodes:
        loss, wrt = conv4_query_loss(p0, e, first_order)
        grads = dict(zip(p0, torch.autograd.grad(loss, list(wrt.values())), strict=False))
        if not first_order:
            check_by_finite_differences(lambda p, e=e: conv4_query_loss(p, e, False)[0], p0, grads)
        for n in ref:
            ref[n] += grads[n] / len(episodes)
    one_meta_step(learner, episodes)
    for n, p in learner.model.top.named_parameters():
        torch.testing.assert_close(p.detach(), p0[n].detach() - 0.5 * ref[n])
