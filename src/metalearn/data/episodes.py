"""Torch datasets of episodes, and the sampler that groups training episodes into meta-batches."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from metalearn.episode import Episode
from metalearn.tasks.sampler import EpisodeSpec


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside distributed runs)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def as_list(items: list) -> list:
    """Collate a meta-batch: episodes stay separate (each has its own padding)."""
    return items


class EpisodeSet(Dataset):
    """Turns episode specs into `Episode`s; `spec_for(key)` says which examples a key means."""

    def __init__(
        self,
        spec_for: Callable[[object], EpisodeSpec],
        build: Callable[[EpisodeSpec], Episode],
        keys: Sequence | None = None,
    ) -> None:
        self.spec_for, self.build, self.keys = spec_for, build, keys

    def __len__(self) -> int:
        if self.keys is None:
            raise TypeError("a training EpisodeSet is indexed by (step, task) keys")
        return len(self.keys)

    def __getitem__(self, key) -> Episode:
        return self.build(self.spec_for(key if self.keys is None else self.keys[key]))


class MetaBatchSampler(Sampler):
    """Yields, per training step, the (step, task) keys of that step's meta-batch.

    Keys follow the trainer's global step, read when Lightning starts an epoch's iterator
    (`first_step`), not Lightning's epoch counter: Lightning never calls a batch sampler's
    set_epoch (so every epoch replayed epoch 0's episodes), and after restoring a checkpoint saved
    at validation end it counts one epoch more than the uninterrupted run. So a resumed run draws
    exactly the episodes the uninterrupted run would have. Under DDP each process takes every
    world-th task of the same meta-batch, so the union over processes is the single-process one.
    """

    def __init__(self, steps_per_epoch: int, meta_batch_size: int,
                 first_step: Callable[[], int] = lambda: 0) -> None:
        self.steps, self.meta_batch_size, self.first_step = steps_per_epoch, meta_batch_size, first_step

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        rank, world = rank_and_world()
        if self.meta_batch_size % world:
            raise ValueError(
                f"meta_batch_size={self.meta_batch_size} must be a multiple of the "
                f"{world} processes so every process adapts the same number of tasks"
            )
        start = self.first_step()
        for step in range(start, start + self.steps):
            yield [(step, j) for j in range(rank, self.meta_batch_size, world)]


class RankSlice(Sampler):
    """Evaluation indices of this process: every world-th episode (all of them on one process)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        rank, world = rank_and_world()
        return len(range(rank, self.n, world))

    def __iter__(self):
        rank, world = rank_and_world()
        return iter(range(rank, self.n, world))


def pad_token_rows(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad token-id rows to the longest row of this batch (never to a fixed length)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # [B, T]
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # [B, T]
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def row_chunks(x: Any, size: int) -> list[tuple[torch.Tensor, Any]]:
    """A batch's rows in chunks of at most `size`: (row indices, chunk) pairs.

    Token batches are cut longest-first and each chunk is trimmed to its own longest row, so
    short reviews are not padded to the length of the longest in the whole batch.
    """
    if isinstance(x, torch.Tensor):
        return [(rows, x[rows]) for rows in torch.arange(len(x)).split(size)]
    lengths = x["attention_mask"].sum(1)  # [B]
    chunks = []
    for rows in torch.argsort(lengths, descending=True, stable=True).split(size):
        width = int(lengths[rows].max())
        chunks.append((rows, {k: v[rows, :width] for k, v in x.items()}))
    return chunks
