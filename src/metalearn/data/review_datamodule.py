"""Few-shot sentiment episodes over the Amazon multi-domain reviews.

A task family is one (domain, threshold) pair (`books/t4`) for ARSC files, or one domain for
the seed's JSON. Held-out domains are never drawn in meta-training. Validation and test
episodes are fixed by `eval_seed`, so every run is scored on the same episodes.
`test_protocol: arsc` replaces the sampled meta-test with the ARSC benchmark's fixed one
(`metalearn.data.arsc`): one episode per held-out task, reported per task (`books/t2`).
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from metalearn.data.arsc import task_file_episodes
from metalearn.data.base import DataPlan, EpisodicDataModule
from metalearn.data.batches import pad_token_rows
from metalearn.data.disk_cache import digest
from metalearn.data.episode import Episode, EpisodeSpec
from metalearn.data.fetch import fetch_hint
from metalearn.data.reviews import canonical_domain, read_reviews, review_index, source_files
from metalearn.data.sampling import TaskSampler
from metalearn.data.tokenized import tokenized_dataset
from metalearn.models.pretrained import resolve_pretrained

log = logging.getLogger(__name__)
CLASSES = ("negative", "positive")  # label 0, label 1
TEST_PROTOCOLS = ("episodes", "arsc")


def columns(data: Dataset, names: list[str]) -> dict[str, np.ndarray]:
    """Dataset columns as numpy arrays, through Arrow (np.asarray on a column goes row by row:
    seconds per column of the 98k ARSC reviews, against milliseconds here)."""
    return data.select_columns(names).with_format("numpy")[:]


class ReviewEpisodes(EpisodicDataModule):
    """N-way (2) K-shot L-query sentiment episodes, tokenized once and cached on disk."""

    objectives = ("classification",)
    objectives_note = "reviews are labelled negative/positive"

    def __init__(
        self,
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
        shots: int = 5,
        queries: int = 5,
        meta_batch_size: int = 4,
        steps_per_epoch: int = 50,
        val_episodes: int = 2,
        test_episodes: int = 50,
        test_protocol: str = "episodes",
        test_query_limit: int | None = None,
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
        self.ways = len(CLASSES)
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

    def setup(self, stage: str | None = None) -> None:
        """Build the task families and check every request against the data, before compute."""
        if getattr(self, "train_sampler", None) is not None:
            return
        data = self._load()
        cols = columns(data, ["domain", "task", "split"])
        plan = self._plan(cols["domain"], cols["task"], cols["split"], self.labels)
        for name in ("train_sampler", "val_sampler", "val_specs", "test_sampler", "test_specs"):
            setattr(self, name, plan[name])
        if self.test_sampler is None:
            self._log_arsc_test()
        log.info("%d meta-train families, %d meta-val families (%d episodes), %d meta-test "
                 "families (%d episodes)", len(self.train_sampler.families),
                 len(self.val_sampler.families) if self.val_sampler else 0, len(self.val_specs),
                 len({s.family for s in self.test_specs}), len(self.test_specs))

    def preflight(self) -> DataPlan:
        """Every check `setup` makes, on the labels and names alone (no text, no tokenizer)."""
        index = review_index(self.path)
        plan = self._plan(index["domain"], index["task"], index["split"], index["label"])
        groups = sorted(set(index["domain"].tolist()))
        return DataPlan(groups=tuple(groups), train_groups=tuple(plan["train_domains"]),
                        test_groups=tuple(self.heldout))

    def _plan(self, domains: np.ndarray, tasks: np.ndarray, splits: np.ndarray,
              labels: np.ndarray) -> dict:
        """Samplers and fixed episodes from the reviews' domain, task, split and label columns;
        raises ValueError, naming the family, for whatever the data cannot serve."""
        present = sorted(set(domains.tolist()))
        wanted = self.heldout + (self.domains or [])
        unknown = sorted(set(wanted) - set(present))
        if unknown:
            raise ValueError(f"unknown domain(s) {unknown}; the data at {self.path} has {present}")
        task_names = sorted(set(tasks.tolist()))
        if self.tasks is not None:
            bad = sorted(set(self.tasks) - set(task_names))
            if bad:
                raise ValueError(f"unknown task(s) {bad}; the data has {task_names}")
        use_tasks = self.tasks or task_names
        train_domains = [d for d in (self.domains or present) if d not in self.heldout]
        if not train_domains:
            raise ValueError("no meta-training domains left after holding out " + str(self.heldout))
        has_splits = "all" not in set(splits.tolist())
        if self.test_protocol == "arsc" and not has_splits:
            raise ValueError(f"data.test_protocol=arsc needs the ARSC split files (.train/.test); "
                             f"{self.path} has no splits")
        fam = np.char.add(np.char.add(domains.astype(str), "/"), tasks.astype(str))
        if not has_splits:  # seed JSON: one task per domain, family = domain
            fam = domains.astype(str)

        names, code = np.unique(fam, return_inverse=True)  # families in sorted order

        def pools(family_domains, split_names, exclude=None):
            """{family: {class: ascending row indices}} of the rows the mask keeps."""
            mask = np.isin(domains, family_domains) & np.isin(tasks, use_tasks)
            if has_splits:
                mask &= np.isin(splits, split_names)
            if exclude is not None:
                mask &= ~exclude
            rows = np.flatnonzero(mask)
            rows = rows[np.lexsort((rows, labels[rows], code[rows]))]  # by family, class, row
            key = code[rows] * len(CLASSES) + labels[rows]
            cuts = np.flatnonzero(np.diff(key)) + 1
            out = {str(names[c]): {name: rows[:0] for name in CLASSES}
                   for c in np.unique(code[rows])}
            for chunk in np.split(rows, cuts) if len(rows) else []:
                out[str(names[code[chunk[0]]])][CLASSES[labels[chunk[0]]]] = chunk
            return out

        if has_splits:
            val_mask = np.isin(splits, self.val_splits)
            train_pools = pools(train_domains, self.train_splits)
        else:  # no dev files: a fixed share of each training family is meta-validation
            rng = np.random.default_rng(self.eval_seed)
            val_mask = rng.random(len(domains)) < self.val_fraction
            train_pools = pools(train_domains, [], exclude=val_mask)
        fallback = []
        if has_splits and self.train_fallback_splits:  # ARSC: music, video lack .train files
            extra = pools(train_domains, self.train_fallback_splits)
            fallback = sorted(set(extra) - set(train_pools))
            train_pools.update({f: extra[f] for f in fallback})
            if fallback:
                log.warning("%d meta-train families have no %s file and draw from their %s files "
                            "instead: %s", len(fallback), "/".join(self.train_splits),
                            "+".join(self.train_fallback_splits), ", ".join(fallback))
        val_pools = pools(train_domains, self.val_splits) if has_splits else pools(
            train_domains, [], exclude=~val_mask)
        if fallback and set(self.val_splits) & set(self.train_fallback_splits):
            val_pools = {f: p for f, p in val_pools.items() if f not in fallback}
            log.info("meta-validation leaves those %d families out: their %s files are "
                     "meta-training data here", len(fallback), "/".join(self.val_splits))

        train_sampler = TaskSampler(train_pools, self.ways, self.train_shots, self.train_queries)
        test_sampler = None
        if self.test_protocol == "episodes":
            test_sampler = TaskSampler(pools(self.heldout, self.test_splits),
                                       self.ways, self.shots, self.queries)
        need = self.shots + self.queries
        small = [f for f, p in val_pools.items() if min(len(v) for v in p.values()) < need]
        if small:
            log.warning("meta-validation skips %d families with fewer than K+L=%d examples in a "
                        "class: %s", len(small), need, ", ".join(small))
        val_pools = {f: p for f, p in val_pools.items() if f not in small}
        val_sampler = (TaskSampler(val_pools, self.ways, self.shots, self.queries)
                       if val_pools else None)
        val_specs = val_sampler.fixed_episodes(self.eval_seed, self.val_episodes) if val_sampler else []
        if test_sampler is not None:
            test_specs = test_sampler.fixed_episodes(self.eval_seed + 1, self.test_episodes)
        else:
            held = np.isin(domains, self.heldout) & np.isin(tasks, use_tasks)
            test_specs = task_file_episodes(
                sorted(set(fam[held].tolist())), fam, splits, labels,
                self.test_query_limit, self.eval_seed)
        return {"train_sampler": train_sampler, "val_sampler": val_sampler, "val_specs": val_specs,
                "test_sampler": test_sampler, "test_specs": test_specs,
                "train_domains": train_domains}

    def _log_arsc_test(self) -> None:
        """Say what the fixed meta-test holds, and where it differs from the training shots."""
        sizes = ", ".join(f"{s.family} {len(s.support)}/{len(s.query)}" for s in self.test_specs)
        log.info("ARSC meta-test: %d tasks, support/query sizes %s%s", len(self.test_specs), sizes,
                 "" if self.test_query_limit is None
                 else f" (queries capped at {self.test_query_limit}: debug only)")
        shots = {len(s.support) // self.ways for s in self.test_specs}
        if shots != {self.shots}:
            log.warning("data.shots=%d shapes meta-training episodes only; the ARSC support sets "
                        "hold %s per class", self.shots, sorted(shots))

    # ---- episodes --------------------------------------------------------------------------
    def build(self, spec: EpisodeSpec, by_task: bool = False) -> Episode:
        """Gather and pad the examples of one episode.

        `by_task` names the episode's `group` after its task family (`books/t2`), so the
        meta-test is reported per task. `shots`/`queries` count examples per class (the mean,
        for the unbalanced ARSC query files).
        """
        def batch(idx):
            return pad_token_rows([self.input_ids[i] for i in idx], self.pad_id)

        return Episode(
            support_x=batch(spec.support),
            support_y=torch.tensor(spec.support_labels, dtype=torch.long),
            query_x=batch(spec.query),
            query_y=torch.tensor(spec.query_labels, dtype=torch.long),
            family=spec.family,
            group=spec.family if by_task else spec.family.split("/")[0],
            ways=self.ways, shots=len(spec.support) // self.ways,
            queries=len(spec.query) // self.ways,
        )

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader(self.test_specs,
                                partial(self.build, by_task=self.test_protocol == "arsc"))
