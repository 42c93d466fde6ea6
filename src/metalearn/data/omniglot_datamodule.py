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

import numpy as np
import torch

from metalearn.data.base import EpisodicDataModule
from metalearn.data.episode import Episode, EpisodeSpec
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

    def __init__(
        self,
        path: str,
        ways: int = 5,
        shots: int = 1,
        queries: int = 15,
        image_size: int = 28,
        rotations: bool = True,
        val_fraction: float = 0.15,
        test_fraction: float = 0.25,
        split_seed: int = 0,
        test_set: str = "split",
        meta_batch_size: int = 5,
        steps_per_epoch: int = 100,
        val_episodes: int = 50,
        test_episodes: int = 200,
        seed: int = 0,
        eval_seed: int = 1234,
        cache_dir: str = ".cache/metalearn",
        num_workers: int = 0,
        train_shots: int | None = None,
        train_queries: int | None = None,
    ) -> None:
        super().__init__(shots, queries, meta_batch_size, steps_per_epoch, val_episodes,
                         test_episodes, seed, eval_seed, cache_dir, num_workers, train_shots,
                         train_queries)
        self.path = Path(path).expanduser()
        if test_set not in TEST_SETS:
            raise ValueError(f"data.test_set must be one of {TEST_SETS}, got {test_set!r}")
        self.zips = [require(self.path / z) for z in BACKGROUND_ZIPS]
        self.lake_zip = require(self.path / LAKE_ZIP) if test_set == "lake_runs" else None
        if ways < 2:
            raise ValueError(f"data.ways must be >= 2 (got {ways})")
        for k, q, what in ((shots, queries, ""), (self.train_shots, self.train_queries, "train_")):
            if k + q > DRAWERS:
                raise ValueError(f"data.{what}shots + data.{what}queries = {k} + {q} = {k + q} "
                                 f"images per class, but every Omniglot character has only "
                                 f"{DRAWERS} drawers")
        if test_set == "lake_runs" and (ways, shots) != (20, 1):
            raise ValueError(f"test_set=lake_runs is 20-way 1-shot (Lake's runs); got "
                             f"data.ways={ways}, data.shots={shots}")
        if not (0 < test_fraction and 0 < val_fraction and val_fraction + test_fraction < 1):
            raise ValueError(f"data.val_fraction and data.test_fraction must be > 0 with a sum "
                             f"< 1 (got {val_fraction}, {test_fraction})")
        self.ways = ways
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

    def setup(self, stage: str | None = None) -> None:
        """Split the characters, build the samplers and fix the evaluation episodes."""
        if getattr(self, "train_sampler", None) is not None:
            return
        data = self._load()
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
        splits = [("meta-train", train), ("meta-val", val)]
        if self.test_set == "split":
            splits.append(("meta-test", test))
        for name, p in splits:
            if len(p[FAMILY]) < self.ways:
                raise ValueError(
                    f"data.ways={self.ways} but the {name} split has only {len(p[FAMILY])} "
                    f"classes; lower data.ways or change data.val_fraction/test_fraction")
        args = (self.ways, self.shots, self.queries)
        self.train_sampler = TaskSampler(train, self.ways, self.train_shots, self.train_queries,
                                         shuffle_classes=True)
        self.val_sampler = TaskSampler(val, *args, shuffle_classes=True)
        self.val_specs = self.val_sampler.fixed_episodes(self.eval_seed, self.val_episodes)
        if self.test_set == "lake_runs":
            self.test_sampler, self.test_specs = None, self.lake_specs()
        else:
            self.test_sampler = TaskSampler(test, *args, shuffle_classes=True)
            self.test_specs = self.test_sampler.fixed_episodes(self.eval_seed + 1,
                                                               self.test_episodes)
        log.info("Omniglot: %d meta-train classes (%d characters%s), %d meta-val, %d meta-test "
                 "characters; %d val episodes, %d test episodes (%s)",
                 len(train[FAMILY]), len(self.split["train"]),
                 ", with rotations" if self.rotations else "", len(self.split["val"]),
                 len(self.split["test"]), len(self.val_specs), len(self.test_specs),
                 self.test_set)

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
        ways = len(set(spec.support_labels))
        return Episode(
            support_x=self.stack(images, spec.support),
            support_y=torch.tensor(spec.support_labels, dtype=torch.long),
            query_x=self.stack(images, spec.query),
            query_y=torch.tensor(spec.query_labels, dtype=torch.long),
            family=spec.family,
            group="lake_runs" if lake else FAMILY,
            ways=ways, shots=len(spec.support) // ways, queries=len(spec.query) // ways,
            classes=torch.tensor(spec.classes, dtype=torch.long) if spec.classes else None,
        )
