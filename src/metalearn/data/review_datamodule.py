"""Few-shot sentiment episodes over the Amazon multi-domain reviews.

A task family is one (domain, threshold) pair (`books/t4`) for ARSC files, or one domain for
the seed's JSON. Held-out domains are never drawn in meta-training. Validation and test
episodes are fixed by `eval_seed`, so every run is scored on the same episodes.
`test_protocol: arsc` replaces the sampled meta-test with the ARSC benchmark's fixed one
(`metalearn.data.arsc`): one episode per held-out task, reported per task (`books/t2`);
`arsc_dev` is the same with the tasks' `.dev` files as query, for choosing test-time settings.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from metalearn.data.arsc import task_file_episodes
from metalearn.data.base import DataPlan, EpisodePlan, EpisodicDataModule
from metalearn.data.batches import pad_token_rows
from metalearn.data.disk_cache import digest
from metalearn.data.episode import Episode, EpisodeSettings, EpisodeSpec
from metalearn.data.fetch import fetch_hint
from metalearn.data.reviews import canonical_domain, read_reviews, review_index, source_files
from metalearn.data.sampling import TaskSampler, class_pools
from metalearn.data.tokenized import tokenized_dataset
from metalearn.models.pretrained import resolve_pretrained

log = logging.getLogger(__name__)
CLASSES = ("negative", "positive")  # label 0, label 1
TEST_PROTOCOLS = ("episodes", "arsc", "arsc_dev")  # arsc_dev: the ARSC tasks' .dev files as query


def columns(data: Dataset, names: list[str]) -> dict[str, np.ndarray]:
    """Dataset columns as numpy arrays, through Arrow (np.asarray on a column goes row by row:
    seconds per column of the 98k ARSC reviews, against milliseconds here)."""
    return data.select_columns(names).with_format("numpy")[:]


@dataclass(frozen=True)
class ReviewRows:
    """The reviews' label, domain, task and split columns, and each row's task family: the
    (domain, task) pair (`books/t4`), or the domain where the source has no splits (the seed's
    JSON: one task, `all`, per domain)."""

    label: np.ndarray
    domain: np.ndarray
    task: np.ndarray
    split: np.ndarray

    @cached_property
    def has_splits(self) -> bool:
        return "all" not in set(self.split.tolist())

    @cached_property
    def family(self) -> np.ndarray:
        fam = self.domain.astype(str)
        return np.char.add(np.char.add(fam, "/"), self.task.astype(str)) if self.has_splits else fam

    @cached_property
    def family_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """The families in sorted order, and each row's index among them."""
        return np.unique(self.family, return_inverse=True)

    def where(self, domains: list[str], tasks: list[str], splits: list[str] | None = None) -> np.ndarray:
        """A row mask: these domains' and tasks' rows, in these split files (all rows where the
        source has no splits, or `splits` is None)."""
        mask = np.isin(self.domain, domains) & np.isin(self.task, tasks)
        if self.has_splits and splits is not None:
            mask &= np.isin(self.split, splits)
        return mask

    def pools(self, mask: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """{family: {class: ascending row indices}} of the masked rows; both classes in every
        family, the one with no rows empty (a sampler names it)."""
        names, code = self.family_codes
        out = class_pools(np.flatnonzero(mask), family=code, family_names=names, label=self.label,
                          label_names=CLASSES)
        return {f: {c: p.get(c, np.zeros(0, dtype=np.int64)) for c in CLASSES} for f, p in out.items()}


class ReviewEpisodes(EpisodicDataModule):
    """N-way (2) K-shot L-query sentiment episodes, tokenized once and cached on disk."""

    objectives = ("classification",)
    objectives_note = "reviews are labelled negative/positive"
    episode_defaults = EpisodeSettings(ways=len(CLASSES), shots=5, queries=5, meta_batch_size=4,
                                       steps_per_epoch=50, val_episodes=2, test_episodes=50)

    def __init__(
        self,
        *,
        path: str,
        tokenizer: str = "all-MiniLM-L6-v2",
        max_length: int = 128,
        heldout: list[str] = ("automotive", "computer_video_games", "office_products"),
        domains: list[str] | None = None,
        tasks: list[str] | None = None,
        train_splits: list[str] = ("train", "test"),
        train_fallback_splits: list[str] | None = None,
        val_splits: list[str] = ("dev",),
        test_splits: list[str] = ("train", "dev", "test"),
        val_fraction: float = 0.1,
        test_protocol: str = "episodes",
        test_query_limit: int | None = None,
        cache_dir: str = ".cache/metalearn",
        num_workers: int = 0,
        **episode: Any,
    ) -> None:
        """`episode`: the data.* keys of EpisodeSettings (data/episode.py); the rest: the module's."""
        super().__init__(cache_dir=cache_dir, num_workers=num_workers, **episode)
        if self.episodes.ways != len(CLASSES):
            raise ValueError(f"data.ways must be {len(CLASSES)} (negative, positive), "
                             f"got {self.episodes.ways}")
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise FileNotFoundError(
                f"data.path {self.path} does not exist: point data.path at the ARSC folder "
                f"(.../amazon_reviews/arsc) or at a dataset.json file; {fetch_hint('amazon')}"
            )
        if test_protocol not in TEST_PROTOCOLS:
            raise ValueError(f"data.test_protocol must be one of {TEST_PROTOCOLS}, got {test_protocol!r}")
        if test_query_limit is not None and test_query_limit < 1:
            raise ValueError(f"data.test_query_limit must be null or >= 1, got {test_query_limit}")
        self.tokenizer_name = tokenizer
        self.max_length = max_length
        self.heldout = [canonical_domain(d) for d in heldout]
        self.domains = None if domains is None else [canonical_domain(d) for d in domains]
        self.tasks = None if tasks is None else list(tasks)
        self.train_splits, self.val_splits, self.test_splits = (
            list(train_splits), list(val_splits), list(test_splits))
        self.train_fallback_splits = list(train_fallback_splits or [])
        self.val_fraction = val_fraction
        self.test_protocol, self.test_query_limit = test_protocol, test_query_limit
        self.data = None
        self.tokenized_now = False

    # ---- loading -------------------------------------------------------------------------
    def _load(self):
        if self.data is not None:
            return self.data
        tok = AutoTokenizer.from_pretrained(resolve_pretrained(self.tokenizer_name))
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        key = digest(source_files(self.path), self.tokenizer_name, self.max_length)
        data, self.tokenized_now = tokenized_dataset(
            lambda: read_reviews(self.path), tok, self.max_length, self.cache_dir / f"reviews-{key}")
        self.data = data
        self.input_ids = data["input_ids"]
        self.labels = columns(data, ["label"])["label"]
        return data

    # ---- planning ------------------------------------------------------------------------
    def make_plan(self) -> EpisodePlan:
        """Build the task families and check every request against the data, before compute."""
        data = self._load()
        plan = self._plan(ReviewRows(label=self.labels, **columns(data, ["domain", "task", "split"])))
        if plan.test_sampler is None:
            self._log_arsc_test(plan.test_specs)
        log.info("%d meta-train families, %d meta-val families (%d episodes), %d meta-test "
                 "families (%d episodes)", len(plan.train_sampler.families),
                 len(plan.val_sampler.families) if plan.val_sampler else 0, len(plan.val_specs),
                 len({s.family for s in plan.test_specs}), len(plan.test_specs))
        return plan

    def preflight(self) -> DataPlan:
        """Every check `setup` makes, on the labels and names alone (no text, no tokenizer)."""
        return self._plan(ReviewRows(**review_index(self.path))).groups

    def _train_domains(self, rows: ReviewRows) -> tuple[list[str], list[str]]:
        """The meta-training domains and the tasks in use; unknown names are an error."""
        present = sorted(set(rows.domain.tolist()))
        unknown = sorted(set(self.heldout + (self.domains or [])) - set(present))
        if unknown:
            raise ValueError(f"unknown domain(s) {unknown}; the data at {self.path} has {present}")
        task_names = sorted(set(rows.task.tolist()))
        bad = sorted(set(self.tasks or []) - set(task_names))
        if bad:
            raise ValueError(f"unknown task(s) {bad}; the data has {task_names}")
        train_domains = [d for d in (self.domains or present) if d not in self.heldout]
        if not train_domains:
            raise ValueError("no meta-training domains left after holding out " + str(self.heldout))
        if self.test_protocol != "episodes" and not rows.has_splits:
            raise ValueError(f"data.test_protocol={self.test_protocol} needs the ARSC split files (.train/.test); "
                             f"{self.path} has no splits")
        return train_domains, self.tasks or task_names

    def _train_and_val_pools(self, rows: ReviewRows, domains: list[str],
                             tasks: list[str]) -> tuple[dict, dict]:
        """The pools of meta-training and meta-validation: the training domains' train_splits
        and val_splits files (families without train_splits files draw from their
        train_fallback_splits), or, with no split files, a seeded val_fraction of the rows."""
        if not rows.has_splits:  # no dev files: a fixed share of each training family is meta-validation
            val_rows = np.random.default_rng(self.episodes.eval_seed).random(len(rows.label)) < self.val_fraction
            ours = rows.where(domains, tasks)
            return rows.pools(ours & ~val_rows), rows.pools(ours & val_rows)
        train = rows.pools(rows.where(domains, tasks, self.train_splits))
        val = rows.pools(rows.where(domains, tasks, self.val_splits))
        if not self.train_fallback_splits:
            return train, val
        extra = rows.pools(rows.where(domains, tasks, self.train_fallback_splits))
        fallback = sorted(set(extra) - set(train))  # ARSC: music, video lack .train files
        train.update({f: extra[f] for f in fallback})
        if fallback:
            log.warning("%d meta-train families have no %s file and draw from their %s files "
                        "instead: %s", len(fallback), "/".join(self.train_splits),
                        "+".join(self.train_fallback_splits), ", ".join(fallback))
            if set(self.val_splits) & set(self.train_fallback_splits):
                val = {f: p for f, p in val.items() if f not in fallback}
                log.info("meta-validation leaves those %d families out: their %s files are "
                         "meta-training data here", len(fallback), "/".join(self.val_splits))
        return train, val

    def _plan(self, rows: ReviewRows) -> EpisodePlan:
        """Samplers and fixed episodes from the reviews' columns; raises ValueError, naming the
        family, for whatever the data cannot serve."""
        domains, tasks = self._train_domains(rows)
        train_pools, val_pools = self._train_and_val_pools(rows, domains, tasks)
        (k, q), (eval_k, eval_q) = self.episodes.train_sizes, self.episodes.eval_sizes
        train = TaskSampler(train_pools, ways=len(CLASSES), shots=k, queries=q)
        test, test_specs = None, None
        if self.test_protocol == "episodes":
            test = TaskSampler(rows.pools(rows.where(self.heldout, tasks, self.test_splits)),
                               ways=len(CLASSES), shots=eval_k, queries=eval_q)
        else:
            held = rows.where(self.heldout, tasks)
            test_specs = task_file_episodes(sorted(set(rows.family[held].tolist())), rows.family,
                                            rows.split, rows.label, self.test_query_limit,
                                            self.episodes.eval_seed,
                                            query_split="dev" if self.test_protocol == "arsc_dev" else "test")
        small = [f for f, p in val_pools.items() if min(len(v) for v in p.values()) < eval_k + eval_q]
        if small:
            log.warning("meta-validation skips %d families with fewer than K+L=%d examples in a "
                        "class: %s", len(small), eval_k + eval_q, ", ".join(small))
        val_pools = {f: p for f, p in val_pools.items() if f not in small}
        val = TaskSampler(val_pools, ways=len(CLASSES), shots=eval_k, queries=eval_q) if val_pools else None
        groups = DataPlan(groups=tuple(sorted(set(rows.domain.tolist()))), train_groups=tuple(domains),
                          test_groups=tuple(self.heldout))
        return EpisodePlan.drawn(self.episodes, train=train, val=val, test=test, test_specs=test_specs,
                                 groups=groups)

    def _log_arsc_test(self, specs: list[EpisodeSpec]) -> None:
        """Say what the fixed meta-test holds, and where it differs from the training shots."""
        sizes = ", ".join(f"{s.family} {len(s.support)}/{len(s.query)}" for s in specs)
        log.info("ARSC meta-test%s: %d tasks, support/query sizes %s%s",
                 " on the .dev files" if self.test_protocol == "arsc_dev" else "", len(specs), sizes,
                 "" if self.test_query_limit is None
                 else f" (queries capped at {self.test_query_limit}: debug only)")
        shots = {len(s.support) // len(CLASSES) for s in specs}
        if shots != {self.episodes.shots}:
            log.warning("data.shots=%d shapes meta-training episodes only; the ARSC support sets "
                        "hold %s per class", self.episodes.shots, sorted(shots))

    # ---- episodes --------------------------------------------------------------------------
    def build(self, spec: EpisodeSpec, by_task: bool = False) -> Episode:
        """Gather and pad the examples of one episode.

        `by_task` names the episode's `group` after its task family (`books/t2`), so the
        meta-test is reported per task; else it is the family's domain.
        """
        def batch(idx: list[int]) -> dict[str, torch.Tensor]:
            return pad_token_rows([self.input_ids[i] for i in idx], self.pad_id)

        return Episode.of(spec, batch, spec.family if by_task else spec.family.split("/")[0])

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader(self.test_specs,
                                partial(self.build, by_task=self.test_protocol != "episodes"))
