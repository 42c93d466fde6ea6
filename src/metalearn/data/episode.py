"""The Episode, the one contract between data and algorithms, and what an episode is made of.

An `EpisodeSpec` names the examples of an episode (indices into a data source); a data source
turns it into an `Episode` of tensors. `split_support_query` is the one support/query split.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from lightning_fabric.utilities.apply_func import move_data_to_device


@dataclass
class Episode:
    """One few-shot task: a support set to adapt on and a disjoint query set to score.

    `support_x` / `query_x` are whatever the model's trunk takes (a tensor, or a dict of
    tensors for a tokenized batch); the targets are what the objective compares outputs with:
    class labels 0..ways-1 within the episode, or real values (regression, `ways` None).
    `classes[label]` is the label's class id in the whole pool of meta-train classes, where
    the data knows it. `shots` / `queries` count examples per class (per task in regression).
    """

    support_x: Any
    support_y: torch.Tensor
    query_x: Any
    query_y: torch.Tensor
    family: str
    group: str  # what test results are reported by: a held-out domain, a task, a test set
    shots: int
    queries: int
    ways: int | None = None
    classes: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Episode:
        """This episode with its tensors on `device` (itself when they are there already).

        Lightning moves a batch by calling `.to` on whatever has one; without it, it copied
        each episode field by field: 0.3 ms a meta-batch of 16 sinusoid tasks on a CPU, where
        nothing moves (a tenth of a batched meta-step).
        """
        device = torch.device(device)
        fields = {"support_x": self.support_x, "support_y": self.support_y,
                  "query_x": self.query_x, "query_y": self.query_y, "classes": self.classes}
        moved = {k: moved_to(v, device) for k, v in fields.items()}
        if all(moved[k] is v for k, v in fields.items()):
            return self
        return replace(self, **moved)


def moved_to(value: Any, device: torch.device) -> Any:
    """A tensor, or a dict of tensors (a tokenized batch), on `device`; None stays None."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.device == device:
            return value
        return value.to(device, non_blocking=device.type == "cuda")
    if isinstance(value, dict):
        out = {k: moved_to(v, device) for k, v in value.items()}
        return value if all(out[k] is v for k, v in value.items()) else out
    return move_data_to_device(value, device)  # anything else a trunk takes: Lightning's walk


@dataclass(frozen=True)
class EpisodeSpec:
    """Which examples form an episode (indices into the dataset) and their episode labels.

    `classes[label]` is that label's class id among all the sampler's classes: what a
    classifier trained on the pooled classes (algorithm=finetune) needs where episodes relabel.
    """

    family: str
    support: list[int]
    support_labels: list[int]
    query: list[int]
    query_labels: list[int]
    classes: tuple[int, ...] = ()


def split_support_query(
    pools: list, shots: int, queries: int, rng
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Draw `shots` support and `queries` query items per class, disjoint within a class.

    `pools[c]` holds the example indices of class c. Returns support indices, support labels,
    query indices, query labels; the label of an item is its position c in `pools`.
    """
    s_idx, s_lab, q_idx, q_lab = [], [], [], []
    for label, pool in enumerate(pools):
        picked = rng.choice(len(pool), size=shots + queries, replace=False)
        s_idx.extend(int(pool[i]) for i in picked[:shots])
        q_idx.extend(int(pool[i]) for i in picked[shots:])
        s_lab.extend([label] * shots)
        q_lab.extend([label] * queries)
    return s_idx, s_lab, q_idx, q_lab
