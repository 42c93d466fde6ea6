"""Few-shot text classification over any dataset `datasets` can open: a family of tasks per
value of a task column (intents per customer, sentiment per product line, labels per hospital).

Every value of `task_column` is a task family; its classes are the values of `label_column`
among its rows. Episodes are N-way (`ways`; null: every class of the family) K-shot L-query,
balanced, support and query disjoint, with label order fixed (the class order) or shuffled per
episode (`shuffle_labels`). Families belong to groups (`group_column`; none: each family is its
own group), split into meta-train / meta-val / meta-test as data/text_plan.py says (where even
its seeded share of rows leaves no meta-validation episode, the run trains without
meta-validation, as data=amazon does, and says so). This module reads the source
(data/text_source.py, data/text_index.py); tokenized once and cached on disk
(data/tokenized.py); the tokenizer follows the model. Validation and test episodes are fixed
by `eval_seed`; training episodes are a pure function of (seed, step, task), as for every
source (data/base.py).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer

from metalearn.data.base import DataPlan, EpisodePlan, EpisodicDataModule
from metalearn.data.batches import pad_token_rows
from metalearn.data.disk_cache import digest
from metalearn.data.episode import Episode, EpisodeSettings, EpisodeSpec
from metalearn.data.text_index import INDEX_COLUMNS, Columns, index_dataset, text_index
from metalearn.data.text_plan import FamilySplits, TextIndex, listing
from metalearn.data.text_source import TextSource
from metalearn.data.tokenized import tokenized_dataset
from metalearn.models.pretrained import resolve_pretrained

log = logging.getLogger(__name__)
CACHE_FORMAT = 1  # bump when the cached columns change
_INDEXES: dict[str, TextIndex] = {}  # preflight's index per source state (a few)


def names(values: Sequence | None) -> list[str] | None:
    """Config values (group or split names, maybe integers) as strings; None stays None."""
    return None if values is None else [str(v) for v in values]


class HFTextEpisodes(EpisodicDataModule):
    """Episodes over families of a text dataset's rows; see the module docstring."""

    objectives = ("classification",)
    objectives_note = "its label column names classes"
    # val_episodes as conf/data/hf_text.yaml: the best checkpoint is chosen on them (its comment
    # gives the interval each count buys)
    episode_defaults = EpisodeSettings(shots=5, queries=5, meta_batch_size=4, steps_per_epoch=50,
                                       val_episodes=50, test_episodes=20)

    def __init__(
        self,
        *,
        data_files: str | Sequence[str] | Mapping[str, Any] | None = None,
        path: str | None = None,
        config_name: str | None = None,
        layout: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        task_column: str | Sequence[str] = "task",
        group_column: str | None = None,
        split_column: str | None = None,
        groups: list[str] | None = None,
        heldout: list[str] | None = None,
        test_fraction: float = 0.2,
        val_groups: list[str] | None = None,
        val_fraction: float = 0.0,
        val_row_fraction: float = 0.2,
        split_seed: int = 0,
        train_splits: list[str] = ("train",),
        val_splits: list[str] = ("validation", "dev"),
        test_splits: list[str] | None = None,
        num_labels: int = 2,
        shuffle_labels: bool = False,
        tokenizer: str = "all-MiniLM-L6-v2",
        max_length: int = 128,
        cache_dir: str = ".cache/metalearn",
        num_workers: int = 0,
        **episode: Any,
    ) -> None:
        """`episode`: the data.* keys of EpisodeSettings (data/episode.py; `ways` null: every
        class of a family); the rest: the module's."""
        super().__init__(cache_dir=cache_dir, num_workers=num_workers, **episode)
        ways = self.episodes.ways
        if num_labels < 2:
            raise ValueError(f"data.num_labels must be >= 2, got {num_labels}")
        if ways is not None and num_labels < ways:
            raise ValueError(f"data.num_labels={num_labels} (the model head's outputs) must be at "
                             f"least data.ways={ways}")
        for key, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction),
                           ("val_row_fraction", val_row_fraction)):
            if not 0 <= value < 1:
                raise ValueError(f"data.{key} must be in [0, 1), got {value}")
        self.source = TextSource(path=path, data_files=data_files, config_name=config_name,
                                 layout=layout, cache_dir=self.cache_dir)
        self.source.check()
        self.columns = Columns.of(text_column, label_column, task_column, group_column, split_column)
        self.splits = FamilySplits(
            where=self.describe(), only_groups=names(groups), heldout=names(heldout),
            val_groups=names(val_groups), test_fraction=test_fraction, val_fraction=val_fraction,
            val_row_fraction=val_row_fraction, split_seed=split_seed, train_splits=list(train_splits),
            val_splits=list(val_splits), test_splits=names(test_splits), num_labels=num_labels,
            shuffle_labels=shuffle_labels)
        self.tokenizer_name, self.max_length = tokenizer, max_length
        self.data = None
        self.tokenized_now = False

    # ---- reading -----------------------------------------------------------------------------
    def describe(self) -> str:
        """The source as the user named it, for messages."""
        if self.source.layout == "arsc":
            return f"the ARSC files in {self.source.path}"
        if self.source.data_files is not None:
            return f"data_files {self.source.data_files}"
        return f"{self.source.path}"

    def _opened(self):
        """The source as one Dataset and the column of its splits (the user's, else the
        source's own split names, else None)."""
        data, own_split = self.source.open()
        columns = self.columns
        if columns.split is None and own_split is not None:
            columns = Columns(columns.text, columns.label, columns.task, columns.group, own_split)
        return data, columns

    def read_index(self) -> TextIndex:
        """The index columns straight from the source (no tokenizer); kept while the source's
        files are unchanged, so a server checks requests in milliseconds."""
        files = self.source.files()
        key = repr((self.source.path, self.source.data_files, self.source.config_name,
                    self.source.layout, self.columns,
                    None if files is None else [(str(p), p.stat().st_size, p.stat().st_mtime_ns)
                                                for p in files]))
        if files is None or key not in _INDEXES:
            data, columns = self._opened()
            index = TextIndex(**text_index(data, columns, self.describe()))
            if len(_INDEXES) >= 4:
                _INDEXES.pop(next(iter(_INDEXES)))
            _INDEXES[key] = index
        return _INDEXES[key]

    def _load(self):
        if self.data is not None:
            return self.data
        tok = AutoTokenizer.from_pretrained(resolve_pretrained(self.tokenizer_name))
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        files = self.source.files()
        opened = self._opened() if files is None else None
        # a Hub dataset has no local files: its own fingerprint names its contents
        settings = [] if opened is None else [opened[0]._fingerprint]

        def read():
            return index_dataset(*(opened or self._opened()), self.describe())

        key = digest(files or [], CACHE_FORMAT, self.source.layout, self.source.config_name,
                     self.columns, self.tokenizer_name, self.max_length, *settings)
        data, self.tokenized_now = tokenized_dataset(read, tok, self.max_length,
                                                     self.cache_dir / f"hf_text-{key}")
        self.data = data
        self.input_ids = data["input_ids"]
        return data

    def index(self) -> TextIndex:
        """The index columns of the loaded (tokenized) data."""
        data = self._load()
        present = [c for c in INDEX_COLUMNS if c in data.column_names]
        table = data.select_columns(present).with_format("arrow")[:]
        out = {c: np.asarray(table.column(c).to_pylist()) for c in present}
        out.setdefault("split", None)
        return TextIndex(**out)

    # ---- planning ----------------------------------------------------------------------------
    def make_plan(self) -> EpisodePlan:
        """Split the groups, build the samplers and fix the evaluation episodes."""
        plan = self.splits.plan(self.index(), self.episodes)
        parts = plan.groups
        log.info("%d meta-train families (groups: %s), %d meta-val families (%d episodes), "
                 "%d meta-test families (groups: %s; %d episodes)",
                 len(plan.train_sampler.families), listing(parts.train_groups, 8),
                 len(plan.val_sampler.families) if plan.val_sampler else 0, len(plan.val_specs),
                 len(plan.test_sampler.families), listing(parts.test_groups, 8),
                 len(plan.test_specs))
        return plan

    def preflight(self) -> DataPlan:
        """Every check `setup` makes, on the index columns alone (no tokenizer)."""
        return self.splits.plan(self.read_index(), self.episodes).groups

    # ---- episodes ----------------------------------------------------------------------------
    def build(self, spec: EpisodeSpec) -> Episode:
        """Gather and pad the token rows of one episode; its domain is the family's group."""
        def batch(idx: list[int]) -> dict[str, torch.Tensor]:
            return pad_token_rows([self.input_ids[i] for i in idx], self.pad_id)

        return Episode.of(spec, batch, self.plan.family_group.get(spec.family, spec.family))

    def check_head(self) -> None:
        """A model head narrower than the widest episode is an error before the first step
        (else a cross-entropy index error mid-run)."""
        module = getattr(self.trainer, "lightning_module", None) if self.trainer else None
        head = getattr(getattr(getattr(module, "model", None), "top", None), "head", None)
        out = getattr(head, "out_features", None)
        plan = self.plan
        widest = max(s.max_ways for s in (plan.train_sampler, plan.val_sampler, plan.test_sampler)
                     if s is not None)
        if out is not None and out < widest:
            raise ValueError(f"the model's head has {out} outputs but episodes are up to "
                             f"{widest}-way: set model.num_labels={widest} (the hf_text "
                             f"experiments pass data.num_labels to the model)")

    def train_dataloader(self):
        self.check_head()
        return super().train_dataloader()

    def val_dataloader(self):
        self.check_head()
        return super().val_dataloader()

    def test_dataloader(self):
        self.check_head()
        return super().test_dataloader()
