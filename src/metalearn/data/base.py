"""What every episodic DataModule shares: its episode settings, seeded training meta-batches,
fixed evaluation episodes.

A source declares its `episode_defaults`, loads its data in `_load()`, plans its splits in
`make_plan()` (samplers and fixed episodes, drawn by `EpisodePlan.drawn`), and turns an
`EpisodeSpec` into an `Episode` in `build()`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from metalearn.data.episode import Episode, EpisodeSettings, EpisodeSpec
from metalearn.data.sampling import EpisodeSet, MetaBatchSampler, RankSlice, TaskSampler, as_list


@dataclass(frozen=True)
class DataPlan:
    """Which groups (domains, alphabets, classes, ...) a data configuration holds, trains,
    meta-validates and tests on."""

    groups: tuple[str, ...]
    train_groups: tuple[str, ...]
    test_groups: tuple[str, ...]
    val_groups: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class EpisodePlan:
    """What planning a source's splits decides: a sampler per part and the fixed evaluation
    episodes. A sampler is anything with `train_episode` and `fixed_episodes` (TaskSampler,
    SineTasks); `test_sampler` is None where the meta-test is a fixed protocol (ARSC, Lake)."""

    train_sampler: Any
    val_sampler: Any | None
    test_sampler: Any | None
    val_specs: list
    test_specs: list
    groups: DataPlan | None = None  # the groups of each part, where the source has groups
    family_group: dict[str, str] | None = None  # a family's group, where it is not the family

    @classmethod
    def drawn(cls, settings: EpisodeSettings, *, train: Any, val: Any | None, test: Any | None,
              test_specs: list | None = None, **more: Any) -> EpisodePlan:
        """The plan of these samplers: `val_episodes` fixed by eval_seed and `test_episodes`
        by eval_seed + 1 (per family; `test_specs` instead, where given)."""
        val_specs = val.fixed_episodes(settings.eval_seed, settings.val_episodes) if val else []
        if test_specs is None:
            test_specs = test.fixed_episodes(settings.eval_seed + 1, settings.test_episodes)
        return cls(train_sampler=train, val_sampler=val, test_sampler=test, val_specs=val_specs,
                   test_specs=test_specs, **more)


class EpisodicDataModule(pl.LightningDataModule):
    """Loaders over episodes; the data source is the subclass's business."""

    episode_defaults: ClassVar[EpisodeSettings]  # a source's own defaults, over which data.* keys go
    plan: EpisodePlan | None = None  # set by setup()

    def __init__(self, *, cache_dir: str | None = None, num_workers: int = 0, **episode: Any) -> None:
        """`episode`: the flat `data.*` keys of `EpisodeSettings` (shots, queries, ...), over
        the source's `episode_defaults`; checked, with the loader settings, before any data is
        read. `cache_dir` None: a source that reads nothing (generated tasks)."""
        super().__init__()
        self.episodes = self.episode_defaults.updated(episode, type(self).__name__)
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0 (got {num_workers})")
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.num_workers = num_workers

    @property
    def train_sampler(self) -> Any:
        """The sampler of meta-training episodes; None before `setup`."""
        return None if self.plan is None else self.plan.train_sampler

    @property
    def val_specs(self) -> list:
        """The fixed meta-validation episodes (after `setup`)."""
        return self.plan.val_specs

    @property
    def test_specs(self) -> list:
        """The fixed meta-test episodes (after `setup`)."""
        return self.plan.test_specs

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

    def make_plan(self) -> EpisodePlan:
        """The samplers and fixed episodes of the loaded data; raises ValueError for whatever
        the data cannot serve."""
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

    def setup(self, stage: str | None = None) -> None:
        """Plan the episodes once: every check against the data runs here, before compute."""
        if self.plan is None:
            self.plan = self.make_plan()

    def train_dataloader(self) -> DataLoader:
        seed = self.episodes.seed

        def spec_for(key: tuple[int, int]) -> EpisodeSpec:
            step, task = key
            return self.train_sampler.train_episode(seed, step, task)

        def first_step() -> int:  # when Lightning starts an epoch: the steps already taken
            if self.trainer is None or getattr(self.trainer, "overfit_batches", 0):
                return 0  # debug=overfit: the episodes of the first steps, every epoch
            return self.trainer.global_step

        return DataLoader(
            EpisodeSet(spec_for, self.build),
            batch_sampler=MetaBatchSampler(self.episodes.steps_per_epoch,
                                           self.episodes.meta_batch_size, first_step),
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
