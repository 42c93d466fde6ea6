"""The episodes every implementation of a contest sees: the same ones, built the same way.

Reviews: metalearn's `TaskSampler` over the ARSC `.train` files of the meta-training domains,
tokenized once up front (truncated, not padded) and padded per episode with
`pad_token_rows`, as `ReviewEpisodes` does; the raw texts stay available for the seed
project's way, which tokenizes inside its loop. Omniglot: the project's `OmniglotEpisodes` (and
`SinusoidEpisodes`) through their own data modules.
Both hand Lightning the project's own loader (`EpisodeSet` + `MetaBatchSampler`).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from metalearn.data.batches import pad_token_rows
from metalearn.data.episode import Episode, EpisodeSpec
from metalearn.data.reviews import ARSC_NAME, canonical_domain
from metalearn.data.sampling import EpisodeSet, MetaBatchSampler, TaskSampler, as_list

CLASSES = ("negative", "positive")


class ReviewSource:
    """Seeded 2-way K-shot L-query review episodes for `steps` meta-steps of `meta_batch` tasks."""

    def __init__(self, path: str | Path, domains: list[str], heldout: list[str], tokenizer,
                 max_length: int, shots: int, queries: int, meta_batch: int, seed: int,
                 steps: int) -> None:
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"review data folder {root} does not exist (the ARSC files)")
        train = {canonical_domain(d) for d in domains} - {canonical_domain(d) for d in heldout}
        self.texts: list[str] = []
        labels: list[int] = []
        families: list[str] = []
        for file in sorted(root.iterdir()):
            m = ARSC_NAME.match(file.name)
            if not m or m["split"] != "train" or m["domain"] not in train:
                continue
            for line in file.read_text(encoding="utf-8").splitlines():
                text, sep, label = line.rpartition("\t")
                if sep and label in ("1", "-1"):
                    self.texts.append(text)
                    labels.append(int(label == "1"))
                    families.append(f"{m['domain']}/{m['task']}")
        if not self.texts:
            raise FileNotFoundError(f"no .train files of the domains {sorted(train)} in {root}")
        self.labels = np.asarray(labels)
        fam = np.asarray(families)
        pools = {}
        for f in sorted(set(families)):
            by_class = {c: np.flatnonzero((fam == f) & (self.labels == k))
                        for k, c in enumerate(CLASSES)}
            if min(len(v) for v in by_class.values()) >= shots + queries:
                pools[f] = by_class  # as the data module, families too small to draw from are left out
        self.sampler = TaskSampler(pools, ways=len(CLASSES), shots=shots, queries=queries)
        self.seed, self.meta_batch, self.steps = seed, meta_batch, steps
        self.tokenizer, self.max_length = tokenizer, max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        used = sorted({i for s in range(steps) for t in range(meta_batch)
                       for i in self._spec((s, t)).support + self._spec((s, t)).query})
        enc = tokenizer([self.texts[i] for i in used], truncation=True, max_length=max_length)
        self.ids = dict(zip(used, enc["input_ids"], strict=False))

    def _spec(self, key: tuple[int, int]) -> EpisodeSpec:
        step, task = key
        return self.sampler.train_episode(self.seed, step, task)

    def spec(self, step: int, task: int) -> EpisodeSpec:
        if step >= self.steps:
            raise IndexError(f"step {step}: only {self.steps} steps were tokenized")
        return self._spec((step, task))

    def build(self, spec: EpisodeSpec) -> Episode:
        """One episode, padded to its own longest review (ReviewEpisodes.build)."""
        def batch(idx: list[int]) -> dict[str, torch.Tensor]:
            return pad_token_rows([self.ids[i] for i in idx], self.pad_id)

        return Episode(batch(spec.support), torch.tensor(spec.support_labels), batch(spec.query),
                       torch.tensor(spec.query_labels), family=spec.family,
                       group=spec.family.split("/")[0], ways=len(CLASSES),
                       shots=len(spec.support) // len(CLASSES),
                       queries=len(spec.query) // len(CLASSES))

    def meta_batch_at(self, step: int) -> list[Episode]:
        return [self.build(self.spec(step, t)) for t in range(self.meta_batch)]

    def raw_task(self, step: int, task: int) -> tuple[list[str], torch.Tensor, list[str], torch.Tensor]:
        """Support texts and labels, query texts and labels: what the seed's loop starts from."""
        spec = self.spec(step, task)
        return ([self.texts[i] for i in spec.support], torch.tensor(spec.support_labels),
                [self.texts[i] for i in spec.query], torch.tensor(spec.query_labels))

    def loader(self, steps: int) -> DataLoader:
        """The project's training loader over these episodes (steps 0 .. steps-1)."""
        return DataLoader(EpisodeSet(self._spec, self.build),
                          batch_sampler=MetaBatchSampler(steps, self.meta_batch),
                          collate_fn=as_list)

    def mean_tokens(self) -> dict[str, float]:
        """Mean padded width of an episode's support set here, against a fixed max_length."""
        widths = [self.build(self.spec(s, t)).support_x["input_ids"].shape[1]
                  for s in range(self.steps) for t in range(self.meta_batch)]
        return {"mean_support_width": float(np.mean(widths)), "max_length": self.max_length}


class DataModuleSource:
    """A project data module's training episodes (Omniglot, sinusoid; set up here), `meta_batch`
    per step."""

    def __init__(self, datamodule, meta_batch: int | None = None) -> None:
        if getattr(datamodule, "train_sampler", None) is None:
            datamodule.prepare_data()
            datamodule.setup("fit")
        self.dm = datamodule
        self.meta_batch = meta_batch or datamodule.episodes.meta_batch_size

    def meta_batch_at(self, step: int) -> list[Episode]:
        dm = self.dm
        return [dm.build(dm.train_sampler.train_episode(dm.episodes.seed, step, t))
                for t in range(self.meta_batch)]

    def loader(self, steps: int) -> DataLoader:
        self.dm.episodes = replace(self.dm.episodes, steps_per_epoch=steps,
                                   meta_batch_size=self.meta_batch)
        return self.dm.train_dataloader()  # no trainer attached: starts at step 0


class RandomSource:
    """Seeded Gaussian-feature episodes (`ways`-way, `shots`/`queries` per class): for a model
    whose compute is negligible, where what is left is each loop's fixed cost per step."""

    def __init__(self, dim: int, ways: int, shots: int, queries: int, meta_batch: int,
                 seed: int = 0) -> None:
        self.dim, self.ways, self.shots, self.queries = dim, ways, shots, queries
        self.meta_batch, self.seed = meta_batch, seed

    def episode(self, step: int, task: int) -> Episode:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 1009 + task)
        ys = torch.arange(self.ways).repeat_interleave(self.shots)
        yq = torch.arange(self.ways).repeat_interleave(self.queries)
        return Episode(torch.randn(len(ys), self.dim, generator=g), ys,
                       torch.randn(len(yq), self.dim, generator=g), yq, family="random",
                       group="random", ways=self.ways, shots=self.shots, queries=self.queries)

    def meta_batch_at(self, step: int) -> list[Episode]:
        return [self.episode(step, t) for t in range(self.meta_batch)]

    def loader(self, steps: int) -> DataLoader:
        return DataLoader(EpisodeSet(lambda key: key, lambda key: self.episode(*key)),
                          batch_sampler=MetaBatchSampler(steps, self.meta_batch),
                          collate_fn=as_list)
