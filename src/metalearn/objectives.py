"""What "good" means for a task: the loss to train on, the score to report and its direction.

Chosen by config (`objective=classification` or `objective=regression`) and handed to every
algorithm, which never names a loss or a metric itself. The metric's name makes the logged
tags (`val/acc`, `test/<group>/mse`), the checkpoint monitor and the registry rows; its
direction (`max` or `min`) says which way is better.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from metalearn.intervals import binomial_ci95, mean_ci95


class Objective:
    """Loss, predictions and per-example score of one kind of task (see the subclasses)."""

    name: ClassVar[str]  # what `objective=` selects, and what algorithms and data declare
    metric: ClassVar[str]  # the score's name in tags, checkpoints and the registry
    mode: ClassVar[str]  # "max" or "min": which way the metric is better

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        """metric / mode: the config's copies (interpolated into the checkpoint monitor and
        `optimized_metric`); they must say what this objective computes."""
        for key, given, own in (("metric", metric, self.metric), ("mode", mode, self.mode)):
            if given is not None and given != own:
                raise ValueError(f"objective.{key}={given!r}, but objective={self.name} computes "
                                 f"{key} {own!r}; leave objective.{key} as it is")

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
        """The training loss of model outputs against targets, averaged (or summed) over examples."""
        raise NotImplementedError

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """Model outputs turned into predictions shaped (and typed) like the targets."""
        raise NotImplementedError

    def example_scores(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The metric per example, [N] floats; an episode's score is their mean."""
        raise NotImplementedError

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The metric of a batch of model outputs (the mean of the per-example scores)."""
        return self.example_scores(self.predictions(outputs), targets).mean()

    def episode_ci95(self, example_scores: torch.Tensor) -> float:
        """Half-width of the 95% interval of one episode's score over its query examples: for a
        group scored by a single fixed episode (ARSC), where there is no spread over episodes."""
        return mean_ci95(example_scores.tolist())[1]


class Classification(Objective):
    """Cross-entropy on logits; accuracy of the arg-max class, higher is better."""

    name, metric, mode = "classification", "acc", "max"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(outputs, targets, reduction=reduction)

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(-1)  # [N, C] logits -> [N] class ids

    def example_scores(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (predictions == targets).float()

    def episode_ci95(self, example_scores: torch.Tensor) -> float:
        # 0/1 scores: the binomial interval of the accuracy over n examples
        return binomial_ci95(example_scores.mean().item(), len(example_scores))


class Regression(Objective):
    """Mean squared error of real-valued outputs, lower is better."""

    name, metric, mode = "regression", "mse", "min"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
        per_example = self.example_scores(outputs, targets)
        return per_example.sum() if reduction == "sum" else per_example.mean()

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs

    def example_scores(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if predictions.shape != targets.shape:
            raise ValueError(
                f"objective=regression: the model gives outputs of shape {list(predictions.shape)} "
                f"for targets of shape {list(targets.shape)}; they must match (with model=layers, "
                f"set model.output_shape to one target's shape)")
        return (predictions - targets).pow(2).reshape(len(targets), -1).mean(1)  # [N]


def require_served(objective: Objective, cls: type, key: str) -> None:
    """Refuse, before anything is built, an algorithm or data source (`key` names its config
    group) whose class declares `objectives` without this one."""
    served = getattr(cls, "objectives", None)
    if served is None or objective.name in served:
        return
    why = getattr(cls, "objectives_note", "")
    raise ValueError(
        f"{key}: {cls.__name__} serves objective={'/'.join(served)} only, not "
        f"objective={objective.name}{': ' + why if why else ''}")
