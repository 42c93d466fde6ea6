"""The fine-tuning baseline: plain supervised training on the pooled meta-train examples.

What the source document says meta-learning beats. Every training episode's support and query
examples are just a labelled mini-batch for one classifier; meta-testing is the very same
episodic evaluation as the meta-learners' (adapt on the support set, score the query set).

Where a label means the same in every task (sentiment: negative/positive) that classifier is
the model's own head. Where every episode relabels its classes (N-way images) it is a separate
`pooled_head` over all meta-train classes on the top's embedding, as in Chen et al. 2019's
"Baseline"; meta-testing then adapts the model's N-way head from zero, a fresh classifier for
every episode, together with the body below it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metalearn.algorithms.base import MetaLearner
from metalearn.algorithms.inner_loop import Params, head_prefix
from metalearn.episode import Episode


class FineTune(MetaLearner):
    """Supervised training of the adapted part with automatic optimization."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = True
        self.pooled_head: nn.Linear | None = None

    def setup(self, stage: str) -> None:
        """Add the pooled classifier where episodes relabel their classes (before a checkpoint
        is restored into it, and before DDP wraps the module)."""
        sampler = getattr(self.trainer.datamodule, "train_sampler", None)
        if self.pooled_head is None and getattr(sampler, "shuffle_classes", False):
            self.add_pooled_head(sampler.num_classes)

    def add_pooled_head(self, num_classes: int) -> None:
        """A classifier over `num_classes` on the top's embedding; the N-way head set to zero."""
        top = self.model.top
        head = getattr(top, "head", None)
        if not (isinstance(head, nn.Linear) and callable(getattr(top, "embed", None))):
            raise ValueError(
                f"algorithm=finetune on episodes that relabel their classes trains a pooled "
                f"classifier on model.top.embed, so the model's top needs an `embed` method and "
                f"a linear `head`; {type(top).__name__} has not")
        # Its initial weights come from the run's seed alone: under ddp_spawn each process
        # reaches this point with its own random state (and a resumed run with another).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.pooled_head = nn.Linear(head.in_features, num_classes).to(head.weight)
        with torch.no_grad():  # the N-way head is only ever a fresh classifier at meta-test
            head.weight.zero_()
            head.bias.zero_()
        # Unused in training, it would stall DDP's gradient reduction; evaluation still adapts
        # it (meta_parameters below adds it back).
        head.requires_grad_(False)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """With a pooled head the N-way head is untrained (zero): keep this model's own, so a
        net trained 5-way tests 20-way."""
        if self.pooled_head is not None:
            self.keep_own_head(checkpoint)

    def meta_parameters(self) -> Params:
        """The adapted parameters; with a pooled head, the model's N-way head too."""
        params = super().meta_parameters()
        if self.pooled_head is not None:
            params.update({f"{head_prefix(self.model.top)}{n}": p
                           for n, p in self.model.top.head.named_parameters()})
        return params

    def outer_parameters(self) -> Params:
        """What training moves: the adapted part's body and the classifier it trains."""
        if self.pooled_head is None:
            return self.meta_parameters()
        params = MetaLearner.meta_parameters(self)  # the frozen N-way head is not among them
        params.update({f"pooled_head.{n}": p for n, p in self.pooled_head.named_parameters()})
        return params

    def outputs_and_targets(self, ep: Episode, x: Any, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The trained network's outputs for a batch of an episode, and its targets there."""
        if self.pooled_head is None:
            return self.model(x), y  # [B, C] logits, or [B, ...] values
        if ep.classes is None:
            raise ValueError("algorithm=finetune with a pooled head needs training episodes that "
                             "name their classes (Episode.classes); this data module sets none")
        z = self.model.top.embed(self.model.features(x))  # [B, D]
        return self.pooled_head(z), ep.classes.to(y.device)[y]  # [B, all classes]

    def training_step(self, episodes: list[Episode], batch_idx: int) -> torch.Tensor:
        objective = self.objective
        loss_sum, score_sum, n = 0.0, 0.0, 0
        with self.step_rng():
            for ep in episodes:
                for x, y in ((ep.support_x, ep.support_y), (ep.query_x, ep.query_y)):
                    out, targets = self.outputs_and_targets(ep, x, y)
                    loss_sum = loss_sum + objective.loss(out, targets, reduction="sum")
                    scores = objective.example_scores(objective.predictions(out), targets)
                    score_sum += scores.sum().item()
                    n += len(targets)
        loss = loss_sum / n
        self.log("train/loss", loss.detach(), batch_size=n, sync_dist=True)
        self.log(f"train/{objective.metric}", score_sum / n, prog_bar=True, batch_size=n,
                 sync_dist=True)
        return loss
