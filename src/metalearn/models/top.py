"""The adaptable top's contract: a representation (`embed`) and a head on it.

`SplitModel.top` may be any module for Reptile and MAML, which adapt all of it. The algorithms
that treat the head apart need a `Top`: ANIL adapts only `head` over `embed` computed once per
episode, ProtoNets compare `embed` outputs, the fine-tuning baseline trains a pooled classifier
on `embed`, and a checkpoint trained at one N-way loads into a model with another N-way head.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Top(nn.Module):
    """forward(x) = head(embed(x)); a subclass sets `self.head` and defines `embed`."""

    head: nn.Module

    def embed(self, x: Any) -> torch.Tensor:
        """The representation the head reads, [B, D]."""
        raise NotImplementedError

    def forward(self, x: Any) -> torch.Tensor:
        return self.head(self.embed(x))

    def head_prefix(self) -> str:
        """The parameter-name prefix of the head inside this top (e.g. 'head.' or '4.')."""
        for name, module in self.named_modules():
            if module is self.head and name:
                return name + "."
        raise ValueError(f"{type(self).__name__}.head is not one of its submodules")


def require_top(top: nn.Module, who: str) -> Top:
    """`top` as a Top, or a clear error saying who needs one."""
    if not isinstance(top, Top):
        raise ValueError(
            f"{who} needs the model's top to be a metalearn.models.top.Top (an `embed` "
            f"representation and a `head` on it); {type(top).__name__} is not one")
    return top
