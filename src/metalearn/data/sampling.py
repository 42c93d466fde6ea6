"""Seeded episode drawing, and the loaders' pieces that turn keys into episodes.

Every episode is a pure function of (seed, key): nothing here keeps RNG state between calls,
so the same seed gives the same episodes in any order, in any process, and after resuming
from a checkpoint. Training keys are (global step, task); under DDP each process takes every
world-th task of a meta-batch and every world-th evaluation episode.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from metalearn.data.episode import Episode, EpisodeSpec, split_support_query


def stable_hash(text: str) -> int:
    """A process-independent hash (Python's `hash` is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


class TaskSampler:
    """Draws N-way K-shot L-query episodes from per-family, per-class pools of indices.

    `pools[family][class_name]` is an array of dataset indices. With `shuffle_classes` off
    (sentiment: 0 = negative, 1 = positive everywhere) episode labels keep the class order;
    with it on (Omniglot-style) the N classes are drawn and permuted per episode.
    """

    def __init__(self, pools: dict[str, dict[str, np.ndarray]], *, ways: int, shots: int,
                 queries: int, shuffle_classes: bool = False) -> None:
        if not pools:
            raise ValueError("TaskSampler needs at least one task family")
        self.pools = pools
        self.families = sorted(pools)
        self.ways, self.shots, self.queries = ways, shots, queries
        self.shuffle_classes = shuffle_classes
        # A class id for every (family, class), in sorted order: the pooled label space.
        self.class_ids = {(f, c): i for i, (f, c) in
                          enumerate((f, c) for f in self.families for c in sorted(pools[f]))}
        for family in self.families:
            classes = pools[family]
            if len(classes) < ways:
                raise ValueError(
                    f"task family {family!r} has {len(classes)} classes, fewer than ways={ways}"
                )
            need = shots + queries
            eligible = [c for c, idx in classes.items() if len(idx) >= need]
            if len(eligible) < ways:
                smallest = min(classes, key=lambda c: len(classes[c]))
                raise ValueError(
                    f"K + L = {shots} + {queries} = {need} examples per class, but task family "
                    f"{family!r} has only {len(classes[smallest])} in class {smallest!r}; "
                    f"lower data.shots / data.queries or drop that family"
                )

    def draw(self, rng: np.random.Generator, family: str | None = None) -> EpisodeSpec:
        """One episode from `family` (or a family drawn uniformly)."""
        if family is None:
            family = self.families[int(rng.integers(len(self.families)))]
        classes = self.pools[family]
        names = sorted(classes)
        if self.shuffle_classes:
            eligible = [c for c in names if len(classes[c]) >= self.shots + self.queries]
            names = [eligible[i] for i in rng.permutation(len(eligible))[: self.ways]]
        else:
            names = names[: self.ways]
        s, sl, q, ql = split_support_query(
            [classes[c] for c in names], self.shots, self.queries, rng
        )
        return EpisodeSpec(family, s, sl, q, ql, tuple(self.class_ids[family, c] for c in names))

    @property
    def num_classes(self) -> int:
        """Classes over all families: the size of the pooled label space."""
        return len(self.class_ids)

    def train_episode(self, seed: int, step: int, task: int) -> EpisodeSpec:
        """Task `task` of training step `step`'s meta-batch: the same for a given seed, always."""
        return self.draw(np.random.default_rng([seed, step, task]))

    def fixed_episodes(self, seed: int, per_family: int) -> list[EpisodeSpec]:
        """`per_family` evaluation episodes from every family, fixed by `seed` alone."""
        return [
            self.draw(np.random.default_rng([seed, stable_hash(family), i]), family)
            for family in self.families
            for i in range(per_family)
        ]


def class_pools(rows: np.ndarray, *, family: np.ndarray, family_names: np.ndarray,
                label: np.ndarray, label_names: Sequence[str] | dict[int, str]
                ) -> dict[str, dict[str, np.ndarray]]:
    """{family: {class: ascending row indices}} of `rows`, families in code order, classes in
    label order: the pools a sampler draws from.

    `family[i]` / `label[i]` are row i's family code (an index into `family_names`) and class
    code (a key of `label_names`).
    """
    rows = rows[np.lexsort((rows, label[rows], family[rows]))]  # by family, class, row
    key = family[rows].astype(np.int64) * (int(label.max(initial=0)) + 1) + label[rows]
    out: dict[str, dict[str, np.ndarray]] = {}
    for chunk in np.split(rows, np.flatnonzero(np.diff(key)) + 1) if len(rows) else []:
        first = chunk[0]
        out.setdefault(str(family_names[family[first]]), {})[label_names[int(label[first])]] = chunk
    return out


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside distributed runs)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def as_list(items: list) -> list:
    """Collate a meta-batch: episodes stay separate (each has its own padding)."""
    return items


class EpisodeSet(Dataset):
    """Turns episode specs into `Episode`s; `spec_for(key)` says which examples a key means."""

    def __init__(
        self,
        spec_for: Callable[[object], EpisodeSpec],
        build: Callable[[EpisodeSpec], Episode],
        keys: Sequence | None = None,
    ) -> None:
        self.spec_for, self.build, self.keys = spec_for, build, keys

    def __len__(self) -> int:
        if self.keys is None:
            raise TypeError("a training EpisodeSet is indexed by (step, task) keys")
        return len(self.keys)

    def __getitem__(self, key) -> Episode:
        return self.build(self.spec_for(key if self.keys is None else self.keys[key]))


class MetaBatchSampler(Sampler):
    """Yields, per training step, the (step, task) keys of that step's meta-batch.

    Keys follow the trainer's global step, read when Lightning starts an epoch's iterator
    (`first_step`), not Lightning's epoch counter: Lightning never calls a batch sampler's
    set_epoch (so every epoch replayed epoch 0's episodes), and after restoring a checkpoint saved
    at validation end it counts one epoch more than the uninterrupted run. So a resumed run draws
    exactly the episodes the uninterrupted run would have. Under DDP each process takes every
    world-th task of the same meta-batch, so the union over processes is the single-process one.
    """

    def __init__(self, steps_per_epoch: int, meta_batch_size: int,
                 first_step: Callable[[], int] = lambda: 0) -> None:
        self.steps, self.meta_batch_size, self.first_step = steps_per_epoch, meta_batch_size, first_step

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        rank, world = rank_and_world()
        if self.meta_batch_size % world:
            raise ValueError(
                f"meta_batch_size={self.meta_batch_size} must be a multiple of the "
                f"{world} processes so every process adapts the same number of tasks"
            )
        start = self.first_step()
        for step in range(start, start + self.steps):
            yield [(step, j) for j in range(rank, self.meta_batch_size, world)]


class RankSlice(Sampler):
    """Evaluation indices of this process: every world-th episode (all of them on one process)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        rank, world = rank_and_world()
        return len(range(rank, self.n, world))

    def __iter__(self):
        rank, world = rank_and_world()
        return iter(range(rank, self.n, world))
