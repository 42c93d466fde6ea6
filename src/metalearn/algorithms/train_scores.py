"""Training scores between two writes of Lightning's logger, and their means.

Lightning writes a training value every `trainer.log_every_n_steps` meta-steps (the value of
that step; the steps between are dropped), and each `self.log` call costs about 0.25 ms of its
bookkeeping on a CPU whatever is written: five scores were 1.3 ms of a 4.7 ms meta-step of 16
sinusoid tasks adapted at once. So an algorithm hands its scores here every step and logs, on
the steps Lightning writes, each score's mean over the tasks of every step since the last write
(as the Hugging Face Trainer logs its loss every `logging_steps`).

A score a step does not report is not in that step's share: the scores before adapting
(`query_loss_pre`, `query_<metric>_pre`) cost a query forward per task that only they read
(about a third more time for a Conv4 MAML step: experiments/bench, row i), so gradient learners
compute them on the steps Lightning writes only, and each written `_pre` value is the mean over
the steps that computed it since the last write: with the default schedule, the written step's
own (every step under `debug=`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

Score = float | torch.Tensor


class ScoreWindow:
    """Per-step training scores (each a mean over `count` tasks or examples) not yet written."""

    def __init__(self) -> None:
        self.steps: dict[str, list[tuple[Score, int]]] = {}
        self.last: dict[str, Score] = {}  # the latest step's scores, written or not

    def add_step(self, scores: Mapping[str, Score], count: int) -> None:
        """One step's scores, each a mean over `count` tasks or examples; `last` holds them."""
        self.last = {}
        for name, value in scores.items():
            self.add(name, value, count)

    def add(self, name: str, value: Score, count: int) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach()  # read, never differentiated: holds no graph till the write
        self.steps.setdefault(name, []).append((value, count))
        self.last[name] = value

    def take(self) -> dict[str, tuple[Score, int]]:
        """{name: (mean over the window's tasks, number of tasks)}, and an empty window.
        A window of one step gives that step's value untouched."""
        out = {}
        for name, steps in self.steps.items():
            total = sum(c for _, c in steps)
            mean = steps[0][0] if len(steps) == 1 else sum(v * c for v, c in steps) / total
            out[name] = (mean, total)
        self.steps = {}
        return out

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps, so a resumed run writes the means an uninterrupted one does."""
        return {name: [(float(v), c) for v, c in steps] for name, steps in self.steps.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = {name: [(float(v), int(c)) for v, c in steps] for name, steps in state.items()}
