"""ANIL (Raghu et al. 2020): MAML whose inner loop adapts only the head.

The body below the head is meta-learned by the outer loop alone, so its output for an
episode is computed once and every inner step is a step of a linear classifier. (Adapting
the head plus the top N encoder layers, with the rest frozen and run once per episode, is
`algorithm=maml model.trainable_layers=N`.)
"""
from __future__ import annotations

from typing import Any

import torch

from metalearn.algorithms.inner_loop import Params, adapt, embed_with, head_prefix, logits_with
from metalearn.algorithms.maml import MAML


class ANIL(MAML):
    """MAML with the inner loop on `model.top.head` over body features computed once."""

    def adapted_names(self) -> set[str]:
        prefix = head_prefix(self.model.top)
        return {n for n in self.meta_parameters() if n.startswith(prefix)}

    def adapt_support(self, params: Params, xs: Any, ys: torch.Tensor, steps: int,
                      first_order: bool = True) -> tuple[Params, list[torch.Tensor]]:
        top, prefix = self.model.top, head_prefix(self.model.top)
        zs = embed_with(top, params, xs)  # [S, D]: the body, once (a support-only batch)
        head = {n[len(prefix):]: p for n, p in params.items() if n.startswith(prefix)}
        lr = self.step_sizes()
        if isinstance(lr, dict):
            lr = {n[len(prefix):]: v for n, v in lr.items()}
        fast_head, losses = adapt(top.head, head, zs, ys, steps, lr, first_order)
        return {**params, **{prefix + n: w for n, w in fast_head.items()}}, losses

    def predict(self, params: Params, xs: Any, xq: Any) -> torch.Tensor:
        top, prefix = self.model.top, head_prefix(self.model.top)
        zq = self.query_embedding(params, xs, xq)  # [Q, D]
        head = {n[len(prefix):]: p for n, p in params.items() if n.startswith(prefix)}
        return logits_with(top.head, head, zq)
