"""ANIL (Raghu et al. 2020): MAML whose inner loop adapts only the head.

The body below the head is meta-learned by the outer loop alone, so its output for an
episode is computed once and every inner step is a step of a linear classifier. (Adapting
the head plus the top N encoder layers, with the rest frozen and run once per episode, is
`algorithm=maml model.trainable_layers=N`.)
"""
from __future__ import annotations

from typing import Any

import torch

from metalearn.algorithms.inner_loop import Params, adapt, embed_with, outputs_with
from metalearn.algorithms.maml import MAML
from metalearn.models.split import SplitModel
from metalearn.models.top import require_top


class ANIL(MAML):
    """MAML with the inner loop on `model.top.head` over body features computed once."""

    def __init__(self, model: SplitModel, *args: Any, **kwargs: Any) -> None:
        require_top(model.top, "algorithm=anil (the inner loop adapts top.head over top.embed)")
        super().__init__(model, *args, **kwargs)

    def adapted_names(self) -> set[str]:
        prefix = self.model.top.head_prefix()
        return {n for n in self.meta_parameters() if n.startswith(prefix)}

    def adapt_support(self, params: Params, xs: Any, ys: torch.Tensor, steps: int,
                      first_order: bool = True, functional: bool = False
                      ) -> tuple[Params, list[torch.Tensor]]:
        top = self.model.top
        zs = embed_with(top, params, xs)  # [S, D]: the body, once (a support-only batch)
        lr = self.step_sizes()
        lr = self.head_part(lr) if isinstance(lr, dict) else lr
        fast_head, losses = adapt(top.head, self.head_part(params), zs, ys, self.objective.loss,
                                  steps, lr, first_order, functional)
        prefix = top.head_prefix()
        return {**params, **{prefix + n: w for n, w in fast_head.items()}}, losses

    def predict(self, params: Params, xs: Any, xq: Any) -> torch.Tensor:
        zq = self.query_embedding(params, xs, xq)  # [Q, D]
        return outputs_with(self.model.top.head, self.head_part(params), zq)

    def head_part(self, named: Params) -> Params:
        """The head's entries of a dict keyed by `top` parameter names, keyed as in the head."""
        prefix = self.model.top.head_prefix()
        return {n[len(prefix):]: v for n, v in named.items() if n.startswith(prefix)}
