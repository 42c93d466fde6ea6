"""Batch normalisation that knows about episodes: statistics from the support set only.

Few-shot models are usually normalised with the statistics of whatever batch they see, so
scoring the query set as one batch lets query examples shape each other's predictions
(transductive evaluation). Inside `support_statistics(model, n)` every `EpisodeBatchNorm2d`
normalises a batch with the statistics of its first `n` rows (the support set) only, so a
forward pass on `cat(support, query)` gives each query example the prediction it would get
alone beside the support set, and the support rows do not depend on the query rows at all.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class EpisodeBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d on batch statistics (no running averages, which would leak across tasks)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps, affine=True, track_running_stats=False)
        self.reference_rows: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W]
        if self.reference_rows is None:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        var, mean = torch.var_mean(x[: self.reference_rows], dim=(0, 2, 3), unbiased=False)
        # (x - mean) / sqrt(var + eps) * weight + bias, folded into a per-channel scale and
        # shift so that the whole batch sees one fused multiply-add (and its backward two
        # passes) instead of four elementwise passes: a Conv4 meta-step is bound by these.
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        return torch.addcmul(shift.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))


def has_episode_norm(module: nn.Module) -> bool:
    """Whether any layer of `module` normalises with batch statistics."""
    return any(isinstance(m, EpisodeBatchNorm2d) for m in module.modules())


@contextmanager
def support_statistics(module: nn.Module, rows: int) -> Iterator[None]:
    """Every `EpisodeBatchNorm2d` in `module` takes its statistics from the first `rows` rows."""
    norms = [m for m in module.modules() if isinstance(m, EpisodeBatchNorm2d)]
    before = [m.reference_rows for m in norms]  # nested uses restore the outer setting
    for m in norms:
        m.reference_rows = rows
    try:
        yield
    finally:
        for m, r in zip(norms, before, strict=False):
            m.reference_rows = r
