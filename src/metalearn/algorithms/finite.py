"""A meta-training loss that is not finite ends the run, named, instead of training on.

Once a loss is NaN or infinite the meta-weights follow it, and a run that went on would end
`completed` with NaN scores (a NaN learning rate did exactly that). The check reads the loss
only on the steps Lightning writes the training scores, and once at the end of training,
where those scores are read anyway: no extra device sync per step.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from metalearn.algorithms.train_scores import Score

# The scores an algorithm minimises. Others may be NaN on purpose (support_loss with no inner
# steps) or only follow the loss (accuracies).
LOSSES = ("loss", "query_loss")


class NonFiniteLoss(FloatingPointError):
    """The meta-training loss is NaN or infinite; the message names it and the step."""


def check_finite(scores: Mapping[str, Score], *, step: int) -> None:
    """Raise NonFiniteLoss when a loss among scores (`name: value`) is not finite."""
    for name in LOSSES:
        if name in scores and not math.isfinite(value := float(scores[name])):
            raise NonFiniteLoss(
                f"train/{name} is {value} at step {step} (the mean over the steps since its last "
                "write): meta-training diverged or a setting is not finite (the learning rates, "
                "algorithm.inner_lr); nothing trained after it would mean anything")
