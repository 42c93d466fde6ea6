"""The fine-tuning baseline: plain supervised training on the pooled meta-train examples.

The baseline meta-learning is measured against. Every training episode's support and query
examples are just a batch for one network, trained on the objective's loss (joint training:
Finn et al. 2017's "pretrained" baseline on the sinusoid); meta-testing is the very same
episodic evaluation as the meta-learners' (fine-tune on the support set, score the query set).

Where a label means the same in every task (sentiment: negative/positive) the classifier is
the model's own head. Where the data source says episodes relabel their classes (N-way images:
`pooled_classes`) it is a separate `pooled_head` over all meta-train classes on the top's
embedding, as in Chen et al. 2019's "Baseline"; meta-testing then adapts the model's N-way head
from zero, a fresh classifier for every episode, together with the body below it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from metalearn.algorithms.episodic import EpisodicModule
from metalearn.algorithms.evaluation import adapted_predictions
from metalearn.algorithms.inner_loop import Params, adapt
from metalearn.algorithms.step_scores import score_steps, step_record
from metalearn.data.episode import Episode
from metalearn.models.top import require_top


class FineTune(EpisodicModule):
    """Supervised training of the adapted part (automatic optimization); evaluation fine-tunes
    on each support set with `eval_inner_steps` SGD steps of size `inner_lr`, the meta-test
    scoring after each of `eval_score_steps` too (`metalearn.algorithms.step_scores`)
    (keyword-only; the model, objective, optimizer and episodic keys pass through to
    `EpisodicModule`)."""

    def __init__(self, *args: Any, inner_lr: float = 0.05, eval_inner_steps: int = 10,
                 eval_score_steps: Sequence[int] | None = None, **kwargs: Any) -> None:
        eval_score_steps = score_steps(eval_score_steps)
        super().__init__(*args, **kwargs)
        self.inner_lr, self.eval_inner_steps = inner_lr, eval_inner_steps
        # a tuple in the checkpoint's hyperparameters, as GradientLearner's
        self.eval_score_steps = self.hparams["eval_score_steps"] = eval_score_steps
        self.pooled_head: nn.Linear | None = None

    def setup(self, stage: str) -> None:
        """Add the pooled classifier where episodes relabel their classes (before a checkpoint
        is restored into it, and before DDP wraps the module)."""
        classes = getattr(self.trainer.datamodule, "pooled_classes", None)
        if self.pooled_head is None and classes is not None:
            self.add_pooled_head(classes)

    def add_pooled_head(self, num_classes: int) -> None:
        """A classifier over `num_classes` on the top's embedding; the N-way head set to zero."""
        top = require_top(self.model.top, "algorithm=finetune on episodes that relabel their "
                                          "classes (a pooled classifier on top.embed)")
        head = top.head
        if not isinstance(head, nn.Linear):
            raise ValueError(f"algorithm=finetune on episodes that relabel their classes needs a "
                             f"linear top.head to zero; {type(head).__name__} is not")
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
        super().on_load_checkpoint(checkpoint)
        if self.pooled_head is not None:
            self.keep_own_head(checkpoint)

    def meta_parameters(self) -> Params:
        """The adapted parameters; with a pooled head, the model's N-way head too."""
        params = super().meta_parameters()
        if self.pooled_head is not None:
            params.update({f"{self.model.top.head_prefix()}{n}": p
                           for n, p in self.model.top.head.named_parameters()})
        return params

    def outer_parameters(self) -> Params:
        """What training moves: the adapted part's body and the classifier it trains."""
        if self.pooled_head is None:
            return self.meta_parameters()
        params = EpisodicModule.meta_parameters(self)  # the frozen N-way head is not among them
        params.update({f"pooled_head.{n}": p for n, p in self.pooled_head.named_parameters()})
        return params

    def adapt_support(self, params: Params, xs: Any, ys: torch.Tensor,
                      steps: int) -> tuple[Params, list[torch.Tensor]]:
        """Fine-tuning on a support set: `steps` SGD steps of size `inner_lr` from `params`."""
        return adapt(self.model.top, params, xs, ys, self.objective.loss, steps, self.inner_lr)

    def query_predictions(self, ep: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        return adapted_predictions(self, ep, self.adapt_support, self.eval_inner_steps)

    def test_episode(self, ep: Episode) -> dict[str, Any]:
        """The record; with eval_score_steps, the scores after each count too (one adaptation)."""
        if self.eval_score_steps is None:
            return super().test_episode(ep)
        return step_record(self, ep, self.adapt_support, self.eval_inner_steps, self.eval_score_steps)

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
        self.log_train({"loss": loss, objective.metric: score_sum / n}, n, prog_bar=objective.metric)
        return loss
