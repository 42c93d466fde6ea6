"""Conv4: the standard few-shot image backbone (Vinyals et al. 2016; MAML; Reptile).

Four blocks of conv3x3 (64 channels) -> batch norm -> ReLU -> 2x2 max-pool, flattened, then a
linear head. The batch norms are `EpisodeBatchNorm2d` (batch statistics, support-only inside
`support_statistics`). The trunk is empty: the whole network is meta-learned and adapted.
"""
from __future__ import annotations

import torch
from torch import nn

from metalearn.models.norm import EpisodeBatchNorm2d
from metalearn.models.split import SplitModel
from metalearn.models.top import Top

BLOCKS = 4


def block(c_in: int, c_out: int) -> nn.Sequential:
    """conv3x3 -> EpisodeBatchNorm2d -> ReLU -> maxpool2: halves the height and width."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), EpisodeBatchNorm2d(c_out),
                         nn.ReLU(), nn.MaxPool2d(2))


def embedding_size(hidden: int, image_size: int) -> int:
    """Flattened size after the blocks (each pool floors the side: 28 -> 14 -> 7 -> 3 -> 1)."""
    side = image_size
    for _ in range(BLOCKS):
        side //= 2
    if side < 1:
        raise ValueError(f"model.image_size={image_size} is too small for {BLOCKS} 2x2 pools "
                         f"(needs >= {2 ** BLOCKS})")
    return hidden * side * side


class Conv4Top(Top):
    """The four blocks and the head; `embed` is what ANIL adapts on and ProtoNets compare."""

    def __init__(self, in_channels: int, hidden: int, ways: int, image_size: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(block(in_channels, hidden),
                                    *[block(hidden, hidden) for _ in range(BLOCKS - 1)])
        self.head = nn.Linear(embedding_size(hidden, image_size), ways)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, S, S]
        """The flattened features the head reads."""
        return self.blocks(x).flatten(1)  # [B, D]


class Conv4(SplitModel):
    """Conv4 with an N-way head, all of it adapted (empty trunk)."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, ways: int = 5,
                 image_size: int = 28) -> None:
        if min(in_channels, hidden, ways) < 1:
            raise ValueError(f"model.in_channels, hidden and ways must be >= 1 "
                             f"(got {in_channels}, {hidden}, {ways})")
        super().__init__(top=Conv4Top(in_channels, hidden, ways, image_size))
