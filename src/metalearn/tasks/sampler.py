"""Seeded episode drawing: every episode is a pure function of (seed, key).

Nothing here keeps RNG state between calls, so the same seed gives the same episodes in any
order, in any process, and after resuming from a checkpoint.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from metalearn.episode import split_support_query


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


def stable_hash(text: str) -> int:
    """A process-independent hash (Python's `hash` is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


class TaskSampler:
    """Draws N-way K-shot L-query episodes from per-family, per-class pools of indices.

    `pools[family][class_name]` is an array of dataset indices. With `shuffle_classes` off
    (sentiment: 0 = negative, 1 = positive everywhere) episode labels keep the class order;
    with it on (Omniglot-style) the N classes are drawn and permuted per episode.
    """

    def __init__(
        self,
        pools: dict[str, dict[str, np.ndarray]],
        ways: int,
        shots: int,
        queries: int,
        shuffle_classes: bool = False,
    ) -> None:
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
