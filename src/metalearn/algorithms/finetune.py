"""The fine-tuning baseline: plain supervised training on the pooled meta-train examples.

What the source document says meta-learning beats. Every training episode's support and query
examples are just a labelled mini-batch for one classifier; meta-testing is the very same
episodic evaluation as the meta-learners' (adapt on the support set, score the query set).
Only meaningful where a label means the same in every task (sentiment: negative/positive).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from metalearn.algorithms.base import MetaLearner
from metalearn.episode import Episode


class FineTune(MetaLearner):
    """Supervised training of the adapted part with automatic optimization."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = True

    def on_fit_start(self) -> None:
        sampler = getattr(self.trainer.datamodule, "train_sampler", None)
        if getattr(sampler, "shuffle_classes", False):
            raise ValueError(
                "algorithm=finetune trains one classifier over all tasks, so a label must mean "
                "the same in every task; this data relabels its classes per episode (N-way "
                "image tasks). Use it on the review data, or a meta-learning algorithm here.")

    def training_step(self, episodes: list[Episode], batch_idx: int) -> torch.Tensor:
        loss_sum, correct, n = 0.0, 0.0, 0
        with self.step_rng():
            for ep in episodes:
                for x, y in ((ep.support_x, ep.support_y), (ep.query_x, ep.query_y)):
                    logits = self.model(x)  # [B, C]
                    loss_sum = loss_sum + F.cross_entropy(logits, y, reduction="sum")
                    correct += (logits.argmax(-1) == y).sum().item()
                    n += len(y)
        loss = loss_sum / n
        self.log("train/loss", loss.detach(), batch_size=n, sync_dist=True)
        self.log("train/acc", correct / n, prog_bar=True, batch_size=n, sync_dist=True)
        return loss
