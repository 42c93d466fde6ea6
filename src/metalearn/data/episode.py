"""The Episode and its settings, the one contract between data and algorithms.

`EpisodeSettings` says what an episode is (N ways, K shots, L queries) and how many of them a
run draws; every DataModule takes it, built from the flat `data.*` keys. An `EpisodeSpec` names
the examples of an episode (indices into a data source); a data source turns it into an
`Episode` of tensors. `split_support_query` is the one support/query split.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from lightning_fabric.utilities.apply_func import move_data_to_device

COUNTS = ("shots", "queries", "train_shots", "train_queries", "meta_batch_size", "steps_per_epoch",
          "val_episodes", "test_episodes")  # the settings that count something: at least 1


@dataclass(frozen=True, kw_only=True)
class EpisodeSettings:
    """N-way K-shot L-query episodes, how many a training step and an evaluation draw, and the
    seeds that fix them; the `data.*` keys of the same names.

    `ways` None: every class of a family (data=hf_text), or no classes (regression).
    `train_shots` / `train_queries`: K and L of meta-training episodes where they differ from
    evaluation's (Nichol et al. train Reptile with 10 shots for 1-shot tests); None: the same
    as `shots` / `queries` (`train_sizes` resolves them).
    """

    ways: int | None = None
    shots: int
    queries: int
    train_shots: int | None = None
    train_queries: int | None = None
    meta_batch_size: int
    steps_per_epoch: int  # meta-validation (and a checkpoint) every this many steps
    val_episodes: int  # per meta-val family, fixed by eval_seed
    test_episodes: int  # per meta-test family, fixed by eval_seed + 1
    seed: int = 0  # training episodes: a pure function of (seed, step, task)
    eval_seed: int = 1234

    def __post_init__(self) -> None:
        """Every value an integer, every count >= 1, `ways` null or >= 2; the error names the key."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and (f.name == "ways" or f.name.startswith("train_")):
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"data.{f.name} must be an integer, got {value!r}")
        low = [f"data.{k} must be >= 1 (got {getattr(self, k)})" for k in COUNTS
               if getattr(self, k) is not None and getattr(self, k) < 1]
        if low:
            raise ValueError("; ".join(low))
        if self.ways is not None and self.ways < 2:
            raise ValueError(f"data.ways must be >= 2 (got {self.ways})")

    def updated(self, keys: Mapping[str, Any], owner: str) -> EpisodeSettings:
        """These settings with `keys` (flat `data.*` keys) replaced; a key that is not a setting
        is an error naming it and `owner`, the data module that was given it."""
        names = [f.name for f in fields(self)]
        unknown = sorted(set(keys) - set(names))
        if unknown:
            raise TypeError(f"data.{', data.'.join(unknown)}: not a setting of {owner}; its episode "
                            f"settings are data.{', data.'.join(names)}")
        return replace(self, **keys)

    @property
    def train_sizes(self) -> tuple[int, int]:
        """K and L of meta-training episodes."""
        return (self.shots if self.train_shots is None else self.train_shots,
                self.queries if self.train_queries is None else self.train_queries)

    @property
    def eval_sizes(self) -> tuple[int, int]:
        """K and L of meta-validation and meta-test episodes."""
        return self.shots, self.queries


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

    @classmethod
    def of(cls, spec: EpisodeSpec, inputs: Callable[[list[int]], Any], group: str) -> Episode:
        """The episode `spec` names: `inputs(indices)` gives the examples' inputs, the labels
        are the spec's; shots / queries count examples per class (the mean, where a fixed
        query file is unbalanced)."""
        ways = len(set(spec.support_labels))
        return cls(
            support_x=inputs(spec.support),
            support_y=torch.tensor(spec.support_labels, dtype=torch.long),
            query_x=inputs(spec.query),
            query_y=torch.tensor(spec.query_labels, dtype=torch.long),
            family=spec.family, group=group,
            ways=ways, shots=len(spec.support) // ways, queries=len(spec.query) // ways,
            classes=torch.tensor(spec.classes, dtype=torch.long) if spec.classes else None,
        )


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
