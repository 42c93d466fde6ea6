"""Prototypical Networks (Snell et al. 2017): classify a query by its nearest class mean.

Prototypes are the mean support embeddings per class; logits are negative squared Euclidean
distances. Trained episodically with ordinary automatic optimization; nothing is adapted at
test time, so there is no "before adapting" score.
"""
from __future__ import annotations

from typing import Any

import torch

from metalearn.algorithms.episodic import EpisodicModule
from metalearn.algorithms.inner_loop import embed_with
from metalearn.algorithms.step_scores import refuse_score_steps
from metalearn.data.episode import Episode
from metalearn.models.top import require_top


def prototype_logits(zs: torch.Tensor, ys: torch.Tensor, ways: int, zq: torch.Tensor) -> torch.Tensor:
    """-||zq - c_k||^2 for the class means c_k of the support embeddings."""
    protos = torch.stack([zs[ys == k].mean(0) for k in range(ways)])  # [N, D]
    return -(zq.unsqueeze(1) - protos.unsqueeze(0)).pow(2).sum(-1)  # [Q, N]


class ProtoNet(EpisodicModule):
    """Episodic metric learning over `model.top.embed` (the head is unused)."""

    objectives = ("classification",)
    objectives_note = "prototypes are the class means of support embeddings"

    def __init__(self, *args: Any, eval_score_steps: None = None, **kwargs: Any) -> None:
        refuse_score_steps(eval_score_steps, "algorithm=protonet")  # it adapts nothing
        super().__init__(*args, **kwargs)
        top = require_top(self.model.top, "algorithm=protonet (prototypes are means of top.embed)")
        # Never used, so never trained or adapted: frozen, the head is out of meta_parameters()
        # and out of DDP's gradient reduction (an unused trainable one stalls DDP).
        top.head.requires_grad_(False)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep this model's own (unused) head, so a net trained 5-way tests 20-way."""
        super().on_load_checkpoint(checkpoint)
        self.keep_own_head(checkpoint)

    def episode_logits(self, ep: Episode) -> torch.Tensor:
        xs, xq = self.model.features(ep.support_x), self.model.features(ep.query_x)
        zs, zq = self.embeddings(self.meta_parameters(), xs, xq)
        return prototype_logits(zs, ep.support_y, ep.ways, zq)

    def training_step(self, episodes: list[Episode], batch_idx: int) -> torch.Tensor:
        with self.step_rng():
            logits = [self.episode_logits(ep) for ep in episodes]
        objective = self.objective
        loss = torch.stack([objective.loss(z, ep.query_y) for z, ep in zip(logits, episodes, strict=False)]).mean()
        score = torch.stack([objective.score(z, ep.query_y) for z, ep in zip(logits, episodes, strict=False)]).mean()
        self.log_train({"query_loss": loss, f"query_{objective.metric}": score}, len(episodes),
                       prog_bar=f"query_{objective.metric}")
        return loss

    def query_predictions(self, ep: Episode) -> tuple[torch.Tensor, None]:
        """Prototypes from the support set, embedded once; the query predicted in chunks."""
        params = self.meta_parameters()
        pred = torch.empty_like(ep.query_y)
        with torch.no_grad():
            xs = self.model.features(ep.support_x)
            zs = embed_with(self.model.top, params, xs)  # never depends on the query rows
            for rows, chunk in self.query_chunks(ep):
                zq = self.query_embedding(params, xs, self.model.features(chunk))
                pred[rows] = self.objective.predictions(prototype_logits(zs, ep.support_y, ep.ways, zq)).to(pred.dtype)
        return pred, None
