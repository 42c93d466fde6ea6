"""Episodes from task families that differ in their number of classes (data=hf_text).

The TaskSampler draws the same N from every family; here `ways=None` takes every class of
the family (a 3-intent customer gives 3-way episodes, a 2-intent one 2-way), and `ways=N`
takes N classes, drawn where a family has more. Where every family has exactly `ways` classes
(the reviews: negative, positive) the draws are the TaskSampler's, number for number.
"""
from __future__ import annotations

import numpy as np

from metalearn.data.episode import EpisodeSpec, split_support_query
from metalearn.data.sampling import TaskSampler


class FamilySampler(TaskSampler):
    """A TaskSampler with a number of ways per family.

    `pools[family]` lists classes in label order (insertion order, not sorted names: integer
    labels keep 2 < 10), and holds only classes with at least K + L examples (the caller drops
    and names the others). With `shuffle_classes` off, episode labels follow that order;
    with it on, the drawn classes are permuted per episode.
    """

    def __init__(self, pools: dict[str, dict[str, np.ndarray]], *, ways: int | None, shots: int,
                 queries: int, shuffle_classes: bool = False) -> None:
        fewest = min((len(c) for c in pools.values()), default=0)
        super().__init__(pools, ways=ways or fewest, shots=shots, queries=queries,
                         shuffle_classes=shuffle_classes)
        self.family_ways = {f: ways or len(pools[f]) for f in self.families}

    @property
    def max_ways(self) -> int:
        """The most classes any episode of this sampler has."""
        return max(self.family_ways.values())

    def draw(self, rng: np.random.Generator, family: str | None = None) -> EpisodeSpec:
        """One episode from `family` (or a family drawn uniformly)."""
        if family is None:
            family = self.families[int(rng.integers(len(self.families)))]
        classes = self.pools[family]
        names, ways = list(classes), self.family_ways[family]
        if self.shuffle_classes:
            names = [names[i] for i in rng.permutation(len(names))[:ways]]
        elif ways < len(names):  # a subset, kept in label order
            names = [names[i] for i in np.sort(rng.choice(len(names), size=ways, replace=False))]
        s, sl, q, ql = split_support_query([classes[c] for c in names], self.shots, self.queries,
                                           rng)
        return EpisodeSpec(family, s, sl, q, ql, tuple(self.class_ids[family, c] for c in names))
