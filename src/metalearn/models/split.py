"""A model split into a frozen trunk and an adaptable top: what every algorithm adapts."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class SplitModel(nn.Module):
    """`top(trunk(x))`, where only `top` is meta-learned and adapted per task.

    The trunk is frozen and always run without gradients in eval mode, so its output for an
    episode is computed once and reused by every inner step. An empty trunk adapts the
    whole model.
    """

    def __init__(self, top: nn.Module, trunk: nn.Module | None = None) -> None:
        super().__init__()
        self.top = top
        self.trunk = trunk if trunk is not None else nn.Identity()
        self.trunk.requires_grad_(False)

    def features(self, x: Any) -> Any:
        """The trunk's output for `x`: computed once per episode, never differentiated."""
        self.trunk.eval()
        with torch.no_grad():
            return self.trunk(x)

    def forward(self, x: Any) -> torch.Tensor:
        return self.top(self.features(x))

    def train(self, mode: bool = True) -> SplitModel:
        super().train(mode)
        self.trunk.eval()  # frozen layers keep eval behaviour (no dropout) in training too
        return self
