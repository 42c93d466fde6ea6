"""N-way K-shot episodes from a folder of images: `<class>/<image>` or `<group>/<class>/<image>`.

Classes are split into meta-train / meta-val / meta-test: whole groups by name (`heldout`,
`val_groups`: alphabets, regions), else seeded fractions of the classes, stratified by group
(`test_fraction`, `val_fraction` of each group's classes, `split_seed`: the rule of
data/omniglot_datamodule.py).
Episodes draw N classes of a split and shuffle their labels. Images are converted to
grayscale (`channels: 1`) or RGB (3), resized to `image_size` square and, with `invert`,
inverted (dark ink on white becomes ink = 1, as for Omniglot); decoded once and cached.

Classes with fewer than K + L images are named in a warning and left out of meta-training
and meta-validation; in a group named in `heldout` they are an error.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metalearn.data.base import DataPlan, EpisodePlan, EpisodicDataModule
from metalearn.data.episode import Episode, EpisodeSettings, EpisodeSpec
from metalearn.data.image_files import MODES, ImageListing, cached_images, list_images
from metalearn.data.sampling import TaskSampler, stable_hash

log = logging.getLogger(__name__)


def stratified_split(classes: list[str], group_of: dict[str, str], val_fraction: float,
                     test_fraction: float, seed: int) -> tuple[list[str], list[str], list[str]]:
    """meta-train, val and test classes: within each group the classes are permuted by
    (seed, group), the first round(n * test_fraction) are meta-test, the next
    round(n * val_fraction) meta-val, the rest meta-train (Omniglot's rule)."""
    train: list[str] = []
    val: list[str] = []
    test: list[str] = []
    for group in sorted({group_of[c] for c in classes}):
        members = sorted(c for c in classes if group_of[c] == group)
        order = np.random.default_rng([seed, stable_hash(group)]).permutation(len(members))
        members = [members[i] for i in order]
        n_test, n_val = round(len(members) * test_fraction), round(len(members) * val_fraction)
        test += members[:n_test]
        val += members[n_test:n_test + n_val]
        train += members[n_test + n_val:]
    return sorted(train), sorted(val), sorted(test)


def _listing(names: list[str], most: int = 12) -> str:
    return ", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")


class ImageFolderEpisodes(EpisodicDataModule):
    """N-way K-shot L-query episodes over the classes of an image folder; see the module."""

    objectives = ("classification",)
    objectives_note = "its folders name classes"
    episode_defaults = EpisodeSettings(ways=5, shots=1, queries=5, meta_batch_size=5,
                                       steps_per_epoch=100, val_episodes=50, test_episodes=200)

    def __init__(self, *, path: str, image_size: int = 28, channels: int = 1, invert: bool = False,
                 heldout: list[str] | None = None, val_groups: list[str] | None = None,
                 test_fraction: float = 0.25, val_fraction: float = 0.15, split_seed: int = 0,
                 cache_dir: str = ".cache/metalearn", num_workers: int = 0, **episode: Any) -> None:
        """`episode`: the data.* keys of EpisodeSettings (data/episode.py); the rest: the module's."""
        super().__init__(cache_dir=cache_dir, num_workers=num_workers, **episode)
        if self.episodes.ways is None:
            raise ValueError("data.ways must be >= 2 (got null)")
        if channels not in MODES:
            raise ValueError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if image_size < 1:
            raise ValueError(f"data.image_size must be >= 1, got {image_size}")
        if not (0 <= test_fraction and 0 <= val_fraction and test_fraction + val_fraction < 1):
            raise ValueError(f"data.test_fraction and data.val_fraction must be >= 0 with a sum "
                             f"< 1 (got {test_fraction}, {val_fraction})")
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise FileNotFoundError(f"data.path {self.path} is not a folder of <class>/<image> "
                                    f"or <group>/<class>/<image> files")
        self.image_size, self.channels, self.invert = image_size, channels, invert
        self.heldout = None if heldout is None else [str(g) for g in heldout]
        self.val_groups = None if val_groups is None else [str(g) for g in val_groups]
        self.test_fraction, self.val_fraction, self.split_seed = (
            test_fraction, val_fraction, split_seed)
        self.family = self.path.name or "images"
        self.data = None
        self.decoded_now = False

    # ---- loading -----------------------------------------------------------------------------
    def _load(self):
        if self.data is not None:
            return self.data
        self.listing = list_images(self.path)
        self.data, self.decoded_now = cached_images(self.listing, self.image_size, self.channels,
                                                    self.invert, self.cache_dir)
        self.images = self.data.with_format("numpy")[:]["image"].astype(np.uint8)  # [N, C, S, S]
        return self.data

    def make_plan(self) -> EpisodePlan:
        """Split the classes, build the samplers and fix the evaluation episodes."""
        self._load()
        plan = self._plan(self.listing)
        parts = plan.groups
        log.info("image folder %s: %d meta-train, %d meta-val, %d meta-test classes; %d val "
                 "episodes, %d test episodes", self.path, len(parts.train_groups),
                 len(parts.val_groups), len(parts.test_groups), len(plan.val_specs),
                 len(plan.test_specs))
        return plan

    def preflight(self) -> DataPlan:
        """Every check `setup` makes, on the file listing alone (nothing decoded).

        The unit kept apart is the class: train_groups and test_groups name classes
        (`group/class`), so a meta-test never scores a class its checkpoint trained on,
        whether the split was by group or by class.
        """
        return self._plan(list_images(self.path)).groups

    def _split(self, classes: list[str], group_of: dict[str, str],
               grouped: bool) -> tuple[list[str], list[str], list[str]]:
        """meta-train, meta-val and meta-test classes: by group name, else seeded fractions."""
        groups = sorted(set(group_of.values()))
        for key, named in (("heldout", self.heldout), ("val_groups", self.val_groups)):
            if not named:
                continue
            if not grouped:
                raise ValueError(f"data.{key} names groups, but {self.path} has no group folders "
                                 f"(<class>/<image> layout): use <group>/<class>/<image>, or "
                                 f"data.{'test' if key == 'heldout' else 'val'}_fraction")
            unknown = sorted(set(named) - set(groups))
            if unknown:
                raise ValueError(f"data.{key} names {unknown}, not groups of {self.path}; its "
                                 f"groups are: {_listing(groups)}")
        both = sorted(set(self.heldout or []) & set(self.val_groups or []))
        if both:  # a meta-test of a checkpoint may name its meta-validation groups
            log.warning("%s held out for meta-test: not meta-validation groups here", both)
        test = [c for c in classes if group_of[c] in (self.heldout or [])]
        val = [c for c in classes if group_of[c] in (self.val_groups or []) and c not in test]
        rest = [c for c in classes if c not in set(test) | set(val)]
        train, more_val, more_test = stratified_split(
            rest, group_of, 0.0 if val else self.val_fraction,
            0.0 if self.heldout else self.test_fraction, self.split_seed)
        return train, sorted(val + more_val), sorted(test + more_test)

    def _plan(self, listing: ImageListing) -> EpisodePlan:
        """Samplers and fixed episodes from the listing; raises ValueError naming the split,
        group or class the data cannot serve. Its groups name classes (`group/class`)."""
        classes_of = np.asarray(listing.classes)
        classes = sorted(set(listing.classes))
        group_of = dict(zip(listing.classes, listing.groups, strict=False))
        train, val, test = self._split(classes, group_of, listing.grouped)
        rows = {c: np.flatnonzero(classes_of == c) for c in classes}
        train_sizes, eval_sizes = self.episodes.train_sizes, self.episodes.eval_sizes
        samplers = [self._sampler(name, members, rows, k, q) for name, members, (k, q) in (
            ("meta-train", train, train_sizes), ("meta-val", val, eval_sizes),
            ("meta-test", test, eval_sizes))]
        return EpisodePlan.drawn(
            self.episodes, train=samplers[0], val=samplers[1], test=samplers[2],
            groups=DataPlan(groups=tuple(sorted(set(listing.groups) - {""})),
                            train_groups=tuple(train), val_groups=tuple(val), test_groups=tuple(test)))

    def _sampler(self, name: str, members: list[str], rows: dict[str, np.ndarray], k: int,
                 q: int) -> TaskSampler:
        """The sampler of one split's classes, those with K + L images (the others named)."""
        ways = self.episodes.ways
        small = [f"{c} ({len(rows[c])})" for c in members if len(rows[c]) < k + q]
        if small:
            message = f"{name} classes with fewer than K + L = {k + q} images: {_listing(small)}"
            if name == "meta-test" and self.heldout:
                raise ValueError(f"data.heldout's {message}; lower data.shots / data.queries")
            log.warning("%s are left out", message)
        usable = [c for c in members if len(rows[c]) >= k + q]
        if len(usable) < ways:
            raise ValueError(
                f"data.ways={ways} but the {name} split has {len(usable)} classes with "
                f"K + L = {k + q} images ({len(members)} in all); lower data.ways or "
                f"data.shots / data.queries, or change data.test_fraction / val_fraction "
                f"(or data.heldout / val_groups)")
        return TaskSampler({self.family: {c: rows[c] for c in usable}}, ways=ways, shots=k,
                           queries=q, shuffle_classes=True)

    # ---- episodes ----------------------------------------------------------------------------
    def stack(self, idx: list[int]) -> torch.Tensor:
        """Float images [B, C, S, S] in [0, 1]."""
        return torch.from_numpy(self.images[idx].astype(np.float32) / 255.0)

    def build(self, spec: EpisodeSpec) -> Episode:
        return Episode.of(spec, self.stack, self.family)
