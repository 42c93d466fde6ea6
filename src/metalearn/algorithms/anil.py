"""ANIL (Raghu et al. 2020): MAML whose inner loop adapts only the head.

The body below the head is meta-learned by the outer loop alone, so its output for an
episode is computed once and every inner step is a step of a linear classifier. (Adapting
the head plus the top N encoder layers, with the rest frozen and run once per episode, is
`algorithm=maml model.trainable_layers=N`.)
"""
from __future__ import annotations

from typing import Any

import torch

from metalearn.algorithms.inner_loop import Params, adapt, head_prefix, logits_with
from metalearn.algorithms.maml import MAML


class ANIL(MAML):
    """MAML with the inner loop on `model.top.head` over body features computed once."""

    def adapted_names(self) -> set[str]:
        prefix = head_prefix(self.model.top)
        return {n for n in self.meta_parameters() if n.startswith(prefix)}

    def adapt_and_predict(self, params: Params, xs: Any, ys: torch.Tensor, xq: Any, steps: int,
                          first_order: bool = True) -> tuple[Params, list[torch.Tensor], torch.Tensor]:
        top, prefix = self.model.top, head_prefix(self.model.top)
        zs, zq = self.embeddings(params, xs, xq)  # [S, D], [Q, D]: the body, once
        head = {n[len(prefix):]: p for n, p in params.items() if n.startswith(prefix)}
        lr = self.step_sizes()
        if isinstance(lr, dict):
            lr = {n[len(prefix):]: v for n, v in lr.items()}
        fast_head, losses = adapt(top.head, head, zs, ys, steps, lr, first_order)
        fast = {**params, **{prefix + n: w for n, w in fast_head.items()}}
        return fast, losses, logits_with(top.head, fast_head, zq)
