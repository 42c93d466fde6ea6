"""What every episodic DataModule shares: seeded training meta-batches, fixed evaluation episodes.

A subclass loads its data in `_load()`, builds `train_sampler`, `val_specs` and `test_specs`
in `setup()`, and turns an `EpisodeSpec` into an `Episode` in `build()`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from metalearn.data.episode import Episode, EpisodeSpec
from metalearn.data.sampling import EpisodeSet, MetaBatchSampler, RankSlice, TaskSampler, as_list


@dataclass(frozen=True)
class DataPlan:
    """Which groups (domains, alphabets, ...) a data configuration holds, trains and tests on."""

    groups: tuple[str, ...]
    train_groups: tuple[str, ...]
    test_groups: tuple[str, ...]


class EpisodicDataModule(pl.LightningDataModule):
    """Loaders over episodes; the data source is the subclass's business."""

    train_sampler: TaskSampler | None = None  # or any sampler with train_episode (SineTasks)
    val_specs: list[EpisodeSpec]
    test_specs: list[EpisodeSpec]

    def __init__(self, shots: int, queries: int, meta_batch_size: int, steps_per_epoch: int,
                 val_episodes: int, test_episodes: int, seed: int, eval_seed: int,
                 cache_dir: str | None, num_workers: int, train_shots: int | None = None,
                 train_queries: int | None = None) -> None:
        """The settings every episodic source shares, checked before any data is read.

        train_shots / train_queries: K and L of meta-training episodes when they differ from
        evaluation's (Nichol et al. train Reptile with 10 shots for 1-shot tests); null: the
        same as shots / queries.
        """
        super().__init__()
        counts = dict(shots=shots, queries=queries, train_shots=train_shots,
                      train_queries=train_queries, meta_batch_size=meta_batch_size,
                      steps_per_epoch=steps_per_epoch, val_episodes=val_episodes,
                      test_episodes=test_episodes)
        counts = {k: v for k, v in counts.items() if v is not None}
        low = {k: v for k, v in counts.items() if v < 1}
        if low:
            raise ValueError(f"data.{', data.'.join(low)} must be >= 1 (got {low})")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0 (got {num_workers})")
        self.shots, self.queries = shots, queries
        self.train_shots = shots if train_shots is None else train_shots
        self.train_queries = queries if train_queries is None else train_queries
        self.meta_batch_size, self.steps_per_epoch = meta_batch_size, steps_per_epoch
        self.val_episodes, self.test_episodes = val_episodes, test_episodes
        self.seed, self.eval_seed = seed, eval_seed
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()  # None: generated data
        self.num_workers = num_workers

    @property
    def pooled_classes(self) -> int | None:
        """The number of meta-training classes where episodes relabel theirs (Omniglot: each
        episode draws N classes and calls them 0..N-1; `Episode.classes` maps them back), else
        None: labels mean the same in every episode (sentiment), or there are none (regression)."""
        sampler = self.train_sampler
        if isinstance(sampler, TaskSampler) and sampler.shuffle_classes:
            return sampler.num_classes
        return None

    def _load(self) -> Any:
        raise NotImplementedError

    def build(self, spec: EpisodeSpec) -> Episode:
        raise NotImplementedError

    def preflight(self) -> DataPlan | None:
        """Check the settings against the data as cheaply as possible (no decoding, no
        tokenizing), raising ValueError as `setup` would; None where a source has no such
        check beyond its constructor's. The HTTP API calls it before it accepts a run."""
        return None

    def prepare_data(self) -> None:
        """Read and preprocess once into the on-disk cache (a no-op when the cache is there)."""
        self._load()

    def train_dataloader(self) -> DataLoader:
        def spec_for(key: tuple[int, int]) -> EpisodeSpec:
            step, task = key
            return self.train_sampler.train_episode(self.seed, step, task)

        def first_step() -> int:  # when Lightning starts an epoch: the steps already taken
            if self.trainer is None or getattr(self.trainer, "overfit_batches", 0):
                return 0  # debug=overfit: the episodes of the first steps, every epoch
            return self.trainer.global_step

        return DataLoader(
            EpisodeSet(spec_for, self.build),
            batch_sampler=MetaBatchSampler(self.steps_per_epoch, self.meta_batch_size, first_step),
            collate_fn=as_list, num_workers=self.num_workers,
        )

    def eval_loader(self, specs: list[EpisodeSpec],
                    build: Callable[[EpisodeSpec], Episode] | None = None) -> DataLoader:
        """Fixed episodes, one per batch, split across processes under DDP."""
        return DataLoader(EpisodeSet(lambda s: s, build or self.build, specs), batch_size=None,
                          sampler=RankSlice(len(specs)), num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(self.val_specs)

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader(self.test_specs)
