"""Batch statistics: with transductive off, no query example shapes another's prediction."""
from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from metalearn.algorithms.maml import MAML
from metalearn.algorithms.protonet import ProtoNet
from metalearn.data.episode import Episode
from metalearn.models.norm import EpisodeBatchNorm2d
from metalearn.models.split import SplitModel
from metalearn.models.top import Top
from metalearn.objectives import Classification


class ConvNet(Top):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), EpisodeBatchNorm2d(4), nn.ReLU(),
                                  nn.Flatten())
        self.head = nn.Linear(4 * 5 * 5, 3)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def episode(query: torch.Tensor) -> Episode:
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(6, 1, 5, 5, generator=g)
    return Episode(xs, torch.tensor([0, 1, 2] * 2), query, torch.zeros(len(query), dtype=torch.long),
                   family="img", group="img", ways=3, shots=2, queries=len(query))


def learner(cls, transductive: bool):
    torch.manual_seed(0)
    inner = dict(inner_lr=0.1, inner_steps=2, eval_inner_steps=3) if cls is MAML else {}
    return cls(model=SplitModel(top=ConvNet()), objective=Classification(),
               optimizer=partial(torch.optim.SGD, lr=0.1), transductive=transductive, **inner)


def adapted_query_logits(m: MAML, ep: Episode) -> torch.Tensor:
    params = m.meta_parameters()
    _, _, logits = m.adapt_and_predict(params, ep.support_x, ep.support_y, ep.query_x, 3)
    return logits.detach()


@pytest.mark.parametrize("cls", [MAML, ProtoNet])
def test_query_predictions_do_not_depend_on_other_queries_unless_transductive(cls):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(4, 1, 5, 5, generator=g)
    other = torch.randn(4, 1, 5, 5, generator=g) * 3 + 1  # very different companions

    def first_two(m, companions):
        ep = episode(torch.cat([q[:2], companions]))
        out = adapted_query_logits(m, ep) if cls is MAML else m.episode_logits(ep).detach()
        return out[:2]

    m = learner(cls, transductive=False)
    torch.testing.assert_close(first_two(m, q[2:]), first_two(m, other))
    m = learner(cls, transductive=True)  # the check can fail: batch statistics do leak here
    assert not torch.allclose(first_two(m, q[2:]), first_two(m, other), atol=1e-4)


def test_support_rows_are_normalised_with_support_statistics_only():
    m = learner(MAML, transductive=False)
    ep = episode(torch.randn(4, 1, 5, 5))
    params = m.meta_parameters()
    alone = m.model.top(ep.support_x)  # a plain batch of the support set
    with torch.no_grad():
        joint = m.predict(params, ep.support_x, torch.cat([ep.support_x, ep.query_x]))
    torch.testing.assert_close(joint[:6], alone.detach())
