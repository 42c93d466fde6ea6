"""Few-shot text classification over any dataset `datasets` can open: a family of tasks per
value of a task column (intents per customer, sentiment per product line, labels per hospital).

Every value of `task_column` is a task family; its classes are the values of `label_column`
among its rows. Episodes are N-way (`ways`; null: every class of the family) K-shot L-query,
balanced, support and query disjoint, with label order fixed (the class order) or shuffled per
episode (`shuffle_labels`). Families belong to groups (`group_column`; none: each family is its
own group), and groups are split into meta-train / meta-val / meta-test: `heldout` and
`val_groups` by name, else seeded fractions (`test_fraction`, `val_fraction`; `split_seed`).
Where the source gives per-family splits (`split_column`, or data_files per split), meta-train
families train on `train_splits` rows. Without meta-validation groups, the meta-train
families meta-validate on their `val_splits` rows, or where they have none, on a seeded
`val_row_fraction` of each class kept out of training (where even that leaves no episode, the
run trains without meta-validation, as data=amazon does, and says so). Tokenized once and
cached on disk (data/tokenized.py); the tokenizer follows the model.

Families or classes with fewer than K + L examples are named in a warning and left out of
meta-training and meta-validation; in a meta-test group named in `heldout` they are an error.
Validation and test episodes are fixed by `eval_seed`; training episodes are a pure function
of (seed, step, task), as for every source (data/base.py).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer

from metalearn.data.base import DataPlan, EpisodicDataModule
from metalearn.data.batches import pad_token_rows
from metalearn.data.disk_cache import digest
from metalearn.data.episode import Episode, EpisodeSpec
from metalearn.data.family_sampler import FamilySampler
from metalearn.data.sampling import stable_hash
from metalearn.data.text_index import INDEX_COLUMNS, Columns, index_dataset, text_index
from metalearn.data.text_source import TextSource
from metalearn.data.tokenized import tokenized_dataset
from metalearn.models.pretrained import resolve_pretrained

log = logging.getLogger(__name__)
CACHE_FORMAT = 1  # bump when the cached columns change
_INDEXES: dict[str, dict[str, np.ndarray]] = {}  # preflight's index per source state (a few)


def _listing(names: Sequence[str], most: int = 20) -> str:
    names = list(names)
    return ", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")


def seeded_pick(names: list[str], fraction: float, seed: int, salt: str) -> list[str]:
    """round(fraction * len(names)) of `names` (at least one where fraction > 0), drawn by seed."""
    if fraction <= 0 or not names:
        return []
    n = max(1, round(fraction * len(names)))
    order = np.random.default_rng([seed, stable_hash(salt)]).permutation(len(names))
    return sorted(names[i] for i in order[:n])


@dataclass
class Plan:
    """What `_plan` decides: samplers, fixed episodes, and the groups of each part."""

    train_sampler: FamilySampler
    val_sampler: FamilySampler | None
    test_sampler: FamilySampler
    val_specs: list[EpisodeSpec]
    test_specs: list[EpisodeSpec]
    groups: list[str]
    train_groups: list[str]
    val_groups: list[str]
    test_groups: list[str]
    family_group: dict[str, str] = field(default_factory=dict)


class HFTextEpisodes(EpisodicDataModule):
    """Episodes over families of a text dataset's rows; see the module docstring."""

    objectives = ("classification",)
    objectives_note = "its label column names classes"

    def __init__(
        self,
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
        ways: int | None = None,
        num_labels: int = 2,
        shuffle_labels: bool = False,
        tokenizer: str = "all-MiniLM-L6-v2",
        max_length: int = 128,
        shots: int = 5,
        queries: int = 5,
        meta_batch_size: int = 4,
        steps_per_epoch: int = 50,
        val_episodes: int = 2,
        test_episodes: int = 20,
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
        if ways is not None and ways < 2:
            raise ValueError(f"data.ways must be null (every class of a family) or >= 2, got {ways}")
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
        self.only_groups = None if groups is None else [str(g) for g in groups]
        self.heldout = None if heldout is None else [str(g) for g in heldout]
        self.val_groups = None if val_groups is None else [str(g) for g in val_groups]
        self.test_fraction, self.val_fraction = test_fraction, val_fraction
        self.val_row_fraction, self.split_seed = val_row_fraction, split_seed
        self.train_splits, self.val_splits = list(train_splits), list(val_splits)
        self.test_splits = None if test_splits is None else list(test_splits)
        self.ways, self.num_labels, self.shuffle_labels = ways, num_labels, shuffle_labels
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

    def read_index(self) -> dict[str, np.ndarray]:
        """The index columns straight from the source (no tokenizer); kept while the source's
        files are unchanged, so a server checks requests in milliseconds."""
        files = self.source.files()
        key = repr((self.source.path, self.source.data_files, self.source.config_name,
                    self.source.layout, self.columns,
                    None if files is None else [(str(p), p.stat().st_size, p.stat().st_mtime_ns)
                                                for p in files]))
        if files is None or key not in _INDEXES:
            data, columns = self._opened()
            index = text_index(data, columns, self.describe())
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

    def index(self) -> dict[str, np.ndarray]:
        """The index columns of the loaded (tokenized) data."""
        data = self._load()
        present = [c for c in INDEX_COLUMNS if c in data.column_names]
        table = data.select_columns(present).with_format("arrow")[:]
        out = {c: np.asarray(table.column(c).to_pylist()) for c in present}
        out.setdefault("split", None)
        return out

    # ---- planning ----------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Split the groups, build the samplers and fix the evaluation episodes."""
        if getattr(self, "train_sampler", None) is not None:
            return
        plan = self._plan(self.index())
        self.train_sampler, self.val_sampler, self.test_sampler = (
            plan.train_sampler, plan.val_sampler, plan.test_sampler)
        self.val_specs, self.test_specs = plan.val_specs, plan.test_specs
        self.family_group = plan.family_group
        self.plan = plan
        log.info("%d meta-train families (groups: %s), %d meta-val families (%d episodes), "
                 "%d meta-test families (groups: %s; %d episodes)",
                 len(plan.train_sampler.families), _listing(plan.train_groups, 8),
                 len(plan.val_sampler.families) if plan.val_sampler else 0, len(plan.val_specs),
                 len(plan.test_sampler.families), _listing(plan.test_groups, 8),
                 len(plan.test_specs))

    def preflight(self) -> DataPlan:
        """Every check `setup` makes, on the index columns alone (no tokenizer)."""
        plan = self._plan(self.read_index())
        return DataPlan(groups=tuple(plan.groups), train_groups=tuple(plan.train_groups),
                        test_groups=tuple(plan.test_groups))

    def _split_groups(self, groups: list[str]) -> tuple[list[str], list[str], list[str]]:
        """meta-train, meta-val and meta-test groups, by name or by seeded fractions."""
        for key, named in (("heldout", self.heldout), ("val_groups", self.val_groups)):
            unknown = sorted(set(named or []) - set(groups))
            if unknown:
                raise ValueError(f"data.{key} names {unknown}, not groups of {self.describe()}; "
                                 f"its groups are: {_listing(groups)}")
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

    def _plan(self, ix: dict[str, np.ndarray]) -> Plan:
        """Samplers and fixed episodes from the index columns; raises ValueError, naming the
        key, group or family, for whatever the data cannot serve."""
        family, group, rank, split = ix["family"], ix["group"], ix["rank"], ix["split"]
        where = self.describe()
        keep = np.ones(len(family), dtype=bool)
        groups = present = sorted(set(group.tolist()))
        if self.only_groups is not None:
            unknown = sorted(set(self.only_groups) - set(groups))
            if unknown:
                raise ValueError(f"data.groups names {unknown}, not groups of {where}; its groups "
                                 f"are: {_listing(groups)}")
            groups = sorted(set(self.only_groups))
            keep = np.isin(group, groups)
        names, code = np.unique(family, return_inverse=True)  # families, sorted
        family_group = {}
        for f, g in zip(family[keep].tolist(), group[keep].tolist(), strict=False):
            if family_group.setdefault(f, g) != g:
                raise ValueError(f"family {f!r} has rows in groups {family_group[f]!r} and {g!r}; "
                                 f"every family must belong to one group (data.group_column)")
        train_g, val_g, test_g = self._split_groups(groups)
        in_groups = {p: keep & np.isin(group, gs) for p, gs in
                     (("train", train_g), ("val", val_g), ("test", test_g))}
        classes = {int(r): str(lab) for r, lab in zip(rank.tolist(), ix["label"].tolist(), strict=False)}

        def pools(mask: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
            """{family: {class: ascending row indices}} of the rows in mask, classes in rank order."""
            rows = np.flatnonzero(mask)
            rows = rows[np.lexsort((rows, rank[rows], code[rows]))]  # by family, class, row
            key = code[rows].astype(np.int64) * (rank.max() + 1) + rank[rows]
            out: dict[str, dict[str, np.ndarray]] = {}
            for chunk in np.split(rows, np.flatnonzero(np.diff(key)) + 1) if len(rows) else []:
                out.setdefault(str(names[code[chunk[0]]]), {})[classes[int(rank[chunk[0]])]] = chunk
            return out

        def in_splits(wanted: list[str] | None, key: str) -> np.ndarray:
            if split is None or wanted is None:
                return np.ones(len(family), dtype=bool)
            present = sorted(set(split.tolist()))
            if not set(wanted) & set(present):
                raise ValueError(f"data.{key} {wanted} names none of the splits of {where}: "
                                 f"{present}")
            return np.isin(split, wanted)

        train_mask = in_groups["train"] & in_splits(self.train_splits, "train_splits")
        if val_g:  # meta-validation groups: every row of their families (test_splits)
            val_mask = in_groups["val"] & in_splits(self.test_splits, "test_splits")
            val_from = f"groups {_listing(val_g, 8)}"
        elif split is not None and (in_groups["train"] & np.isin(split, self.val_splits)).any():
            val_mask = in_groups["train"] & np.isin(split, self.val_splits)
            val_from = f"the {'/'.join(self.val_splits)} rows of the meta-train families"
        else:  # no splits given: a seeded share of every meta-train class
            val_mask = self._row_share(pools(train_mask), len(family))
            train_mask &= ~val_mask
            val_from = (f"{self.val_row_fraction:.0%} of each meta-train class's rows "
                        f"(data.val_row_fraction)")
        test_mask = in_groups["test"] & in_splits(self.test_splits, "test_splits")

        need_train = self.train_shots + self.train_queries
        need = self.shots + self.queries
        train = self._usable(pools(train_mask), need_train, "meta-training")
        if not train:
            raise ValueError(f"no meta-training family of {where} has {self.ways or 2} classes "
                             f"with K + L = {need_train} examples each; lower data.shots / "
                             f"data.queries (or data.train_shots / train_queries)")
        val = self._usable(pools(val_mask), need, "meta-validation")
        if not val:  # as for the reviews: train without it (a meta-test run needs none)
            log.warning("no meta-validation episodes: no family in %s has %d classes with "
                        "K + L = %d examples each; set data.val_groups or data.val_fraction, or "
                        "lower data.shots / queries", val_from, self.ways or 2, need)
        test_all = pools(test_mask)
        empty = sorted(g for g in test_g if g not in {family_group[f] for f in test_all})
        test = self._usable(test_all, need, "meta-test", strict=self.heldout is not None)
        if empty or not test:
            raise ValueError(f"meta-test group(s) {empty or test_g} have no family with rows "
                             f"in data.test_splits {self.test_splits} and {self.ways or 2} "
                             f"classes of K + L = {need} examples")
        samplers = [FamilySampler(p, self.ways, k, q, self.shuffle_labels) if p else None
                    for p, k, q in ((train, self.train_shots, self.train_queries),
                                    (val, self.shots, self.queries), (test, self.shots, self.queries))]
        widest = max((s for s in samplers if s), key=lambda s: s.max_ways)
        if widest.max_ways > self.num_labels:
            fam = max(widest.family_ways, key=widest.family_ways.get)
            raise ValueError(f"family {fam!r} gives {widest.max_ways}-way episodes (data.ways: "
                             f"{'null' if self.ways is None else self.ways}), but "
                             f"data.num_labels={self.num_labels}, the model "
                             f"head's outputs: set data.num_labels={widest.max_ways} (or "
                             f"data.ways={self.num_labels})")
        return Plan(train_sampler=samplers[0], val_sampler=samplers[1], test_sampler=samplers[2],
                    val_specs=samplers[1].fixed_episodes(self.eval_seed, self.val_episodes)
                    if samplers[1] else [],
                    test_specs=samplers[2].fixed_episodes(self.eval_seed + 1, self.test_episodes),
                    groups=present, train_groups=sorted({family_group[f] for f in train}),
                    val_groups=val_g, test_groups=test_g, family_group=family_group)

    def _row_share(self, train_pools: dict[str, dict[str, np.ndarray]], n_rows: int) -> np.ndarray:
        """A seeded `val_row_fraction` of every meta-train class's rows, as a row mask."""
        mask = np.zeros(n_rows, dtype=bool)
        for fam, by_class in train_pools.items():
            for cls, rows in by_class.items():
                n = round(self.val_row_fraction * len(rows))
                order = np.random.default_rng(
                    [self.split_seed, stable_hash(fam), stable_hash(cls)]).permutation(len(rows))
                mask[rows[order[:n]]] = True
        return mask

    def _usable(self, pools: dict[str, dict[str, np.ndarray]], need: int, part: str,
                strict: bool = False) -> dict[str, dict[str, np.ndarray]]:
        """The pools without classes of fewer than `need` examples and families left with too
        few classes; those are named in a warning (an error where `strict`)."""
        small = {f"{f}/{c} ({len(r)})" for f, p in pools.items() for c, r in p.items()
                 if len(r) < need}
        out = {f: {c: r for c, r in p.items() if len(r) >= need} for f, p in pools.items()}
        least = self.ways or 2
        narrow = sorted(f"{f} ({len(p)} of {len(pools[f])} classes)" for f, p in out.items()
                        if len(p) < least)
        out = {f: p for f, p in out.items() if len(p) >= least}
        if small or narrow:
            what = []
            if small:
                what.append(f"classes with fewer than K + L = {need} examples: "
                            f"{_listing(sorted(small))}")
            if narrow:
                what.append(f"families with fewer than {least} such classes: {_listing(narrow)}")
            if strict:
                raise ValueError(f"{part} cannot use data.heldout's " + "; ".join(what) +
                                 "; lower data.shots / data.queries or hold out other groups")
            log.warning("%s leaves out %s", part, "; and ".join(what))
        return out

    # ---- episodes ----------------------------------------------------------------------------
    def build(self, spec: EpisodeSpec) -> Episode:
        """Gather and pad the token rows of one episode; its domain is the family's group."""
        def batch(idx: list[int]) -> dict[str, torch.Tensor]:
            return pad_token_rows([self.input_ids[i] for i in idx], self.pad_id)

        ways = len(set(spec.support_labels))
        return Episode(
            support_x=batch(spec.support),
            support_y=torch.tensor(spec.support_labels, dtype=torch.long),
            query_x=batch(spec.query),
            query_y=torch.tensor(spec.query_labels, dtype=torch.long),
            family=spec.family, group=self.family_group.get(spec.family, spec.family),
            ways=ways, shots=len(spec.support) // ways, queries=len(spec.query) // ways,
            classes=torch.tensor(spec.classes, dtype=torch.long) if spec.classes else None,
        )

    def check_head(self) -> None:
        """A model head narrower than the widest episode is an error before the first step
        (else a cross-entropy index error mid-run)."""
        module = getattr(self.trainer, "lightning_module", None) if self.trainer else None
        head = getattr(getattr(getattr(module, "model", None), "top", None), "head", None)
        out = getattr(head, "out_features", None)
        widest = max(s.max_ways for s in (self.train_sampler, self.val_sampler, self.test_sampler)
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
