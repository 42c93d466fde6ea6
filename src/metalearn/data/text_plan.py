"""How data=hf_text splits a text dataset's task families into meta-train, meta-val and
meta-test, and which of their classes can serve episodes (data/hf_text.py reads the source).

Families belong to groups; groups are split by name (`heldout`, `val_groups`) or by seeded
fractions (`test_fraction`, `val_fraction`, `split_seed`). Meta-train families train on their
`train_splits` rows; without meta-validation groups they meta-validate on their `val_splits`
rows, or on a seeded `val_row_fraction` of each class. Classes with fewer than K + L examples,
and families left with too few classes, are named in a warning and left out (an error in a
meta-test group named in `heldout`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from metalearn.data.base import DataPlan, EpisodePlan
from metalearn.data.episode import EpisodeSettings
from metalearn.data.family_sampler import FamilySampler
from metalearn.data.sampling import class_pools, stable_hash

log = logging.getLogger(__name__)
Pools = dict[str, dict[str, np.ndarray]]  # {family: {class: ascending row indices}}


def listing(names: Sequence[str], most: int = 20) -> str:
    """Names for a message: the first `most`, and how many in all."""
    names = list(names)
    return ", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")


def seeded_pick(names: list[str], fraction: float, seed: int, salt: str) -> list[str]:
    """round(fraction * len(names)) of `names` (at least one where fraction > 0), drawn by seed."""
    if fraction <= 0 or not names:
        return []
    n = max(1, round(fraction * len(names)))
    order = np.random.default_rng([seed, stable_hash(salt)]).permutation(len(names))
    return sorted(names[i] for i in order[:n])


@dataclass(frozen=True)
class TextIndex:
    """A text source's index columns: each row's family, group, class rank (its class's
    position in label order), label and split (None where the source has no splits)."""

    family: np.ndarray
    group: np.ndarray
    rank: np.ndarray
    label: np.ndarray
    split: np.ndarray | None = None

    @cached_property
    def family_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """The families in sorted order, and each row's index among them."""
        return np.unique(self.family, return_inverse=True)

    @cached_property
    def class_names(self) -> dict[int, str]:
        """Each class rank's label."""
        return {int(r): str(lab) for r, lab in zip(self.rank.tolist(), self.label.tolist(), strict=False)}

    def pools(self, mask: np.ndarray) -> Pools:
        """{family: {class: ascending row indices}} of the rows in mask, classes in rank order."""
        names, code = self.family_codes
        return class_pools(np.flatnonzero(mask), family=code, family_names=names, label=self.rank,
                           label_names=self.class_names)


@dataclass(frozen=True, kw_only=True)
class FamilySplits:
    """The split settings of data=hf_text (the module docstring), and the plan they make of
    a source's index."""

    where: str  # the source as the user named it, for messages
    only_groups: list[str] | None = None
    heldout: list[str] | None = None
    val_groups: list[str] | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.0
    val_row_fraction: float = 0.2
    split_seed: int = 0
    train_splits: list[str]
    val_splits: list[str]
    test_splits: list[str] | None = None
    num_labels: int = 2
    shuffle_labels: bool = False

    def groups(self, groups: list[str]) -> tuple[list[str], list[str], list[str]]:
        """meta-train, meta-val and meta-test groups, by name or by seeded fractions."""
        for key, named in (("heldout", self.heldout), ("val_groups", self.val_groups)):
            unknown = sorted(set(named or []) - set(groups))
            if unknown:
                raise ValueError(f"data.{key} names {unknown}, not groups of {self.where}; "
                                 f"its groups are: {listing(groups)}")
        if self.heldout is not None:
            test = sorted(set(self.heldout))
        else:
            test = seeded_pick([g for g in groups if g not in (self.val_groups or [])],
                               self.test_fraction, self.split_seed, "test")
        if not test:
            raise ValueError("no meta-test groups: name them in data.heldout or set "
                             "data.test_fraction > 0")
        rest = [g for g in groups if g not in test]
        if self.val_groups is not None:
            both = sorted(set(self.val_groups) & set(test))
            if both:  # a meta-test of a checkpoint may name its meta-validation groups
                log.warning("%s held out for meta-test: not meta-validation groups here", both)
            val = sorted(set(self.val_groups) - set(test))
        else:
            val = seeded_pick(rest, self.val_fraction, self.split_seed, "val")
        train = [g for g in rest if g not in val]
        if not train:
            raise ValueError(f"no meta-training groups left: {len(groups)} groups, {len(test)} "
                             f"held out for meta-test and {len(val)} for meta-validation")
        return train, val, test

    def family_groups(self, ix: TextIndex) -> tuple[np.ndarray, dict[str, str]]:
        """The rows of the groups in use (`data.groups`), and the group of each of their families;
        a family in two groups is an error."""
        keep = np.ones(len(ix.family), dtype=bool)
        if self.only_groups is not None:
            present = sorted(set(ix.group.tolist()))
            unknown = sorted(set(self.only_groups) - set(present))
            if unknown:
                raise ValueError(f"data.groups names {unknown}, not groups of {self.where}; its "
                                 f"groups are: {listing(present)}")
            keep = np.isin(ix.group, self.only_groups)
        family_group: dict[str, str] = {}
        for f, g in zip(ix.family[keep].tolist(), ix.group[keep].tolist(), strict=False):
            if family_group.setdefault(f, g) != g:
                raise ValueError(f"family {f!r} has rows in groups {family_group[f]!r} and {g!r}; "
                                 f"every family must belong to one group (data.group_column)")
        return keep, family_group

    def in_splits(self, ix: TextIndex, wanted: list[str] | None, key: str) -> np.ndarray:
        """A row mask: the rows of the splits `wanted` names (every row where the source has no
        splits, or `wanted` is None); naming none of the source's splits is an error."""
        if ix.split is None or wanted is None:
            return np.ones(len(ix.family), dtype=bool)
        present = sorted(set(ix.split.tolist()))
        if not set(wanted) & set(present):
            raise ValueError(f"data.{key} {wanted} names none of the splits of {self.where}: "
                             f"{present}")
        return np.isin(ix.split, wanted)

    def masks(self, ix: TextIndex, keep: np.ndarray,
              parts: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """Row masks of meta-train, meta-val and meta-test, and where meta-val comes from."""
        in_part = {p: keep & np.isin(ix.group, groups) for p, groups in parts.items()}
        train = in_part["train"] & self.in_splits(ix, self.train_splits, "train_splits")
        test = in_part["test"] & self.in_splits(ix, self.test_splits, "test_splits")
        if parts["val"]:  # meta-validation groups: every row of their families (test_splits)
            val = in_part["val"] & self.in_splits(ix, self.test_splits, "test_splits")
            return train, val, test, f"groups {listing(parts['val'], 8)}"
        if ix.split is not None and (in_part["train"] & np.isin(ix.split, self.val_splits)).any():
            val = in_part["train"] & np.isin(ix.split, self.val_splits)
            return train, val, test, f"the {'/'.join(self.val_splits)} rows of the meta-train families"
        val = self.row_share(ix.pools(train), len(ix.family))  # no splits: a share of every class
        return (train & ~val, val, test,
                f"{self.val_row_fraction:.0%} of each meta-train class's rows (data.val_row_fraction)")

    def row_share(self, train_pools: Pools, n_rows: int) -> np.ndarray:
        """A seeded `val_row_fraction` of every meta-train class's rows, as a row mask."""
        mask = np.zeros(n_rows, dtype=bool)
        for fam, by_class in train_pools.items():
            for cls, rows in by_class.items():
                n = round(self.val_row_fraction * len(rows))
                order = np.random.default_rng(
                    [self.split_seed, stable_hash(fam), stable_hash(cls)]).permutation(len(rows))
                mask[rows[order[:n]]] = True
        return mask

    def usable(self, pools: Pools, need: int, least: int, part: str, strict: bool = False) -> Pools:
        """The pools without classes of fewer than `need` examples and families left with fewer
        than `least` classes; those are named in a warning (an error where `strict`)."""
        small = {f"{f}/{c} ({len(r)})" for f, p in pools.items() for c, r in p.items()
                 if len(r) < need}
        out = {f: {c: r for c, r in p.items() if len(r) >= need} for f, p in pools.items()}
        narrow = sorted(f"{f} ({len(p)} of {len(pools[f])} classes)" for f, p in out.items()
                        if len(p) < least)
        out = {f: p for f, p in out.items() if len(p) >= least}
        if small or narrow:
            what = []
            if small:
                what.append(f"classes with fewer than K + L = {need} examples: "
                            f"{listing(sorted(small))}")
            if narrow:
                what.append(f"families with fewer than {least} such classes: {listing(narrow)}")
            if strict:
                raise ValueError(f"{part} cannot use data.heldout's " + "; ".join(what) +
                                 "; lower data.shots / data.queries or hold out other groups")
            log.warning("%s leaves out %s", part, "; and ".join(what))
        return out

    def plan(self, ix: TextIndex, episodes: EpisodeSettings) -> EpisodePlan:
        """Samplers and fixed episodes from the index; raises ValueError, naming the key, group
        or family, for whatever the data cannot serve."""
        keep, family_group = self.family_groups(ix)
        present = sorted(set(ix.group.tolist()))
        train_g, val_g, test_g = self.groups(sorted(set(ix.group[keep].tolist())))
        train_rows, val_rows, test_rows, val_from = self.masks(
            ix, keep, {"train": train_g, "val": val_g, "test": test_g})
        ways, least = episodes.ways, episodes.ways or 2
        (k, q), (eval_k, eval_q) = episodes.train_sizes, episodes.eval_sizes
        train = self.usable(ix.pools(train_rows), k + q, least, "meta-training")
        if not train:
            raise ValueError(f"no meta-training family of {self.where} has {least} classes "
                             f"with K + L = {k + q} examples each; lower data.shots / "
                             f"data.queries (or data.train_shots / train_queries)")
        val = self.usable(ix.pools(val_rows), eval_k + eval_q, least, "meta-validation")
        if not val:  # as for the reviews: train without it (a meta-test run needs none)
            log.warning("no meta-validation episodes: no family in %s has %d classes with "
                        "K + L = %d examples each; set data.val_groups or data.val_fraction, or "
                        "lower data.shots / queries", val_from, least, eval_k + eval_q)
        test_all = ix.pools(test_rows)
        empty = sorted(g for g in test_g if g not in {family_group[f] for f in test_all})
        test = self.usable(test_all, eval_k + eval_q, least, "meta-test", strict=self.heldout is not None)
        if empty or not test:
            raise ValueError(f"meta-test group(s) {empty or test_g} have no family with rows "
                             f"in data.test_splits {self.test_splits} and {least} "
                             f"classes of K + L = {eval_k + eval_q} examples")
        samplers = [FamilySampler(p, ways=ways, shots=k_, queries=q_, shuffle_classes=self.shuffle_labels)
                    if p else None for p, (k_, q_) in ((train, (k, q)), (val, (eval_k, eval_q)),
                                                       (test, (eval_k, eval_q)))]
        self.check_widest([s for s in samplers if s], ways)
        return EpisodePlan.drawn(
            episodes, train=samplers[0], val=samplers[1], test=samplers[2],
            groups=DataPlan(groups=tuple(present), train_groups=tuple(sorted({family_group[f] for f in train})),
                            val_groups=tuple(val_g), test_groups=tuple(test_g)),
            family_group=family_group)

    def check_widest(self, samplers: list[FamilySampler], ways: int | None) -> None:
        """The widest episode must fit the model head's `num_labels` outputs."""
        widest = max(samplers, key=lambda s: s.max_ways)
        if widest.max_ways > self.num_labels:
            fam = max(widest.family_ways, key=widest.family_ways.get)
            raise ValueError(f"family {fam!r} gives {widest.max_ways}-way episodes (data.ways: "
                             f"{'null' if ways is None else ways}), but "
                             f"data.num_labels={self.num_labels}, the model "
                             f"head's outputs: set data.num_labels={widest.max_ways} (or "
                             f"data.ways={self.num_labels})")
