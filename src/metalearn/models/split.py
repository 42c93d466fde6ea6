"""A model split into a frozen trunk and an adaptable top: what every algorithm adapts."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from metalearn.models.trunk_cache import TrunkCache, checked_setting, limit_for


class SplitModel(nn.Module):
    """`top(trunk(x))`, where only `top` is meta-learned and adapted per task.

    The trunk is frozen and always run without gradients in eval mode, so its output for an
    episode is computed once and reused by every inner step. An empty trunk adapts the
    whole model.

    cache_trunk: within `reusing_trunk_outputs` (each meta-validation check), keep the trunk's
    output of every batch and hand it out again for a batch of the same content
    (`metalearn.models.trunk_cache`: `auto` up to 1 GiB, `true` unbounded, `false` off).
    """

    def __init__(self, top: nn.Module, trunk: nn.Module | None = None,
                 cache_trunk: bool | str = "auto") -> None:
        super().__init__()
        self.top = top
        self.trunk = trunk if trunk is not None else nn.Identity()
        self.trunk.requires_grad_(False)
        has_weights = any(True for _ in self.trunk.parameters())
        self.trunk_cache = (TrunkCache(limit_for(cache_trunk))
                            if checked_setting(cache_trunk) is not False and has_weights else None)
        self._reusing = False

    def features(self, x: Any) -> Any:
        """The trunk's output for `x`: computed once per episode, never differentiated."""
        self.trunk.eval()
        with torch.no_grad():
            if self._reusing and self.trunk_cache is not None:
                return self.trunk_cache.features(self.trunk, x)
            return self.trunk(x)

    @contextmanager
    def reusing_trunk_outputs(self) -> Iterator[None]:
        """Within: trunk outputs are kept and reused across calls (the fixed meta-validation
        episodes, seen again at every check); outside, the trunk always runs."""
        self._reusing = True
        try:
            yield
        finally:
            self._reusing = False

    def forward(self, x: Any) -> torch.Tensor:
        return self.top(self.features(x))

    def train(self, mode: bool = True) -> SplitModel:
        super().train(mode)
        self.trunk.eval()  # frozen layers keep eval behaviour (no dropout) in training too
        return self
