"""N-way K-shot Omniglot episodes from the two background zips, and Lake's 20 runs as a test.

Split rule (`split_characters`): by character, stratified by alphabet. Within each alphabet the
characters are permuted with a generator seeded by (split_seed, alphabet), and the first
round(n * test_fraction) are meta-test, the next round(n * val_fraction) meta-validation, the
rest meta-train (defaults: 145 / 37 / 60 of the 242 characters). Why by character: these zips
hold only 8 alphabets, so an alphabet split would leave one or two alphabets to test on (few
classes, high variance); splitting characters is the customary Omniglot protocol (Vinyals et
al. 2016, Reptile), and stratifying keeps every alphabet in every split. Generalisation to new
alphabets is what `test_set: lake_runs` measures (its runs come from the evaluation alphabets).

With `rotations` each meta-train character also gives three new classes, rotated by 90, 180
and 270 degrees. An example index is 4 * image row + quarter turns, so a class's pool, and the
rotation of each of its images, is one integer array. Validation and test episodes are fixed
by `eval_seed`, so every run is scored on the same episodes.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metalearn.data.base import EpisodePlan, EpisodicDataModule
from metalearn.data.episode import Episode, EpisodeSettings, EpisodeSpec
from metalearn.data.omniglot import BACKGROUND_ZIPS, LAKE_ZIP, cached, read_background, read_lake_runs, require
from metalearn.data.sampling import TaskSampler, stable_hash

log = logging.getLogger(__name__)
DRAWERS = 20  # images per character
FAMILY = "omniglot"  # one task family: episodes draw N of all the split's classes
TEST_SETS = ("split", "lake_runs")


def split_characters(alphabets: list[str], val_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, list[int]]:
    """Character ids (positions in `alphabets`) of meta-train, val and test: see the module."""
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    names = np.asarray(alphabets)
    for alphabet in sorted(set(alphabets)):
        ids = np.flatnonzero(names == alphabet)
        ids = ids[np.random.default_rng([seed, stable_hash(alphabet)]).permutation(len(ids))]
        n_test, n_val = round(len(ids) * test_fraction), round(len(ids) * val_fraction)
        out["test"] += ids[:n_test].tolist()
        out["val"] += ids[n_test:n_test + n_val].tolist()
        out["train"] += ids[n_test + n_val:].tolist()
    return {k: sorted(v) for k, v in out.items()}


class OmniglotEpisodes(EpisodicDataModule):
    """N-way K-shot L-query Omniglot episodes, decoded once and cached on disk."""

    objectives = ("classification",)
    objectives_note = "its targets are character classes"
    episode_defaults = EpisodeSettings(ways=5, shots=1, queries=15, meta_batch_size=5,
                                       steps_per_epoch=100, val_episodes=50, test_episodes=200)

    def __init__(self, *, path: str, image_size: int = 28, rotations: bool = True,
                 val_fraction: float = 0.15, test_fraction: float = 0.25, split_seed: int = 0,
                 test_set: str = "split", cache_dir: str = ".cache/metalearn", num_workers: int = 0,
                 **episode: Any) -> None:
        """`episode`: the data.* keys of EpisodeSettings (data/episode.py); the rest: the module's."""
        super().__init__(cache_dir=cache_dir, num_workers=num_workers, **episode)
        settings = self.episodes
        if settings.ways is None:
            raise ValueError("data.ways must be >= 2 (got null)")
        self.path = Path(path).expanduser()
        if test_set not in TEST_SETS:
            raise ValueError(f"data.test_set must be one of {TEST_SETS}, got {test_set!r}")
        self.zips = [require(self.path / z) for z in BACKGROUND_ZIPS]
        self.lake_zip = require(self.path / LAKE_ZIP) if test_set == "lake_runs" else None
        for (k, q), what in ((settings.eval_sizes, ""), (settings.train_sizes, "train_")):
            if k + q > DRAWERS:
                raise ValueError(f"data.{what}shots + data.{what}queries = {k} + {q} = {k + q} "
                                 f"images per class, but every Omniglot character has only "
                                 f"{DRAWERS} drawers")
        if test_set == "lake_runs" and (settings.ways, settings.shots) != (20, 1):
            raise ValueError(f"test_set=lake_runs is 20-way 1-shot (Lake's runs); got "
                             f"data.ways={settings.ways}, data.shots={settings.shots}")
        if not (0 < test_fraction and 0 < val_fraction and val_fraction + test_fraction < 1):
            raise ValueError(f"data.val_fraction and data.test_fraction must be > 0 with a sum "
                             f"< 1 (got {val_fraction}, {test_fraction})")
        self.image_size, self.rotations = image_size, rotations
        self.val_fraction, self.test_fraction, self.split_seed = (
            val_fraction, test_fraction, split_seed)
        self.test_set = test_set
        self.data = None
        self.lake = None
        self.decoded_now = False

    # ---- loading -------------------------------------------------------------------------
    def _load(self):
        if self.data is not None:
            return self.data
        self.data, now = cached("omniglot-background", self.zips, self.image_size,
                                lambda: read_background(self.zips, self.image_size),
                                self.cache_dir)
        self.images = self.data.with_format("numpy")[:]["image"].astype(np.uint8)  # [N, S, S]
        self.labels = np.asarray(self.data["label"])
        if self.lake_zip is not None:
            self.lake, lake_now = cached("omniglot-lake-runs", [self.lake_zip], self.image_size,
                                         lambda: read_lake_runs(self.lake_zip, self.image_size),
                                         self.cache_dir)
            self.lake_images = self.lake.with_format("numpy")[:]["image"].astype(np.uint8)
            now = now or lake_now
        self.decoded_now = now
        return self.data

    # ---- planning ------------------------------------------------------------------------
    def make_plan(self) -> EpisodePlan:
        """Split the characters, build the samplers and fix the evaluation episodes."""
        data = self._load()
        ways = self.episodes.ways
        _, first = np.unique(self.labels, return_index=True)  # a row of each class id
        alphabets = np.asarray(data["alphabet"])[first].tolist()
        characters = np.asarray(data["character"])[first].tolist()
        self.split = split_characters(alphabets, self.val_fraction, self.test_fraction,
                                      self.split_seed)

        def pools(ids: list[int], turns: range) -> dict[str, dict[str, np.ndarray]]:
            return {FAMILY: {f"{alphabets[c]}/{characters[c]}/rot{90 * k}":
                             4 * np.flatnonzero(self.labels == c) + k
                             for c in ids for k in turns}}

        train = pools(self.split["train"], range(4 if self.rotations else 1))
        val, test = pools(self.split["val"], range(1)), pools(self.split["test"], range(1))
        parts = [("meta-train", train), ("meta-val", val)]
        if self.test_set == "split":
            parts.append(("meta-test", test))
        for name, p in parts:
            if len(p[FAMILY]) < ways:
                raise ValueError(
                    f"data.ways={ways} but the {name} split has only {len(p[FAMILY])} "
                    f"classes; lower data.ways or change data.val_fraction/test_fraction")
        (k, q), (eval_k, eval_q) = self.episodes.train_sizes, self.episodes.eval_sizes
        lake = self.test_set == "lake_runs"
        plan = EpisodePlan.drawn(
            self.episodes,
            train=TaskSampler(train, ways=ways, shots=k, queries=q, shuffle_classes=True),
            val=TaskSampler(val, ways=ways, shots=eval_k, queries=eval_q, shuffle_classes=True),
            test=None if lake else TaskSampler(test, ways=ways, shots=eval_k, queries=eval_q,
                                               shuffle_classes=True),
            test_specs=self.lake_specs() if lake else None)
        log.info("Omniglot: %d meta-train classes (%d characters%s), %d meta-val, %d meta-test "
                 "characters; %d val episodes, %d test episodes (%s)",
                 len(train[FAMILY]), len(self.split["train"]),
                 ", with rotations" if self.rotations else "", len(self.split["val"]),
                 len(self.split["test"]), len(plan.val_specs), len(plan.test_specs),
                 self.test_set)
        return plan

    def lake_specs(self) -> list[EpisodeSpec]:
        """Lake's runs as 20 fixed 20-way 1-shot episodes (indices into the Lake images)."""
        run = np.asarray(self.lake["run"])
        role = np.asarray(self.lake["role"])
        label = np.asarray(self.lake["label"])
        specs = []
        for r in sorted(set(run.tolist())):
            s = np.flatnonzero((run == r) & (role == "support"))
            q = np.flatnonzero((run == r) & (role == "query"))
            specs.append(EpisodeSpec(f"run{r:02d}", (4 * s).tolist(), label[s].tolist(),
                                     (4 * q).tolist(), label[q].tolist()))
        return specs

    # ---- episodes --------------------------------------------------------------------------
    @staticmethod
    def stack(images: np.ndarray, idx: list[int]) -> torch.Tensor:
        """Float images [B, 1, S, S] in [0, 1] for example indices (4 * row + quarter turns)."""
        x = np.stack([np.rot90(images[i // 4], i % 4) for i in idx])  # [B, S, S] uint8
        return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)

    def build(self, spec: EpisodeSpec) -> Episode:
        """The tensors of one episode (Lake's runs are the families named runNN)."""
        lake = spec.family.startswith("run")
        images = self.lake_images if lake else self.images
        return Episode.of(spec, lambda idx: self.stack(images, idx), "lake_runs" if lake else FAMILY)
