"""Batches of inputs: token rows padded per batch, and a batch cut into row chunks."""
from __future__ import annotations

from typing import Any

import torch


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


def take_rows(x: Any, rows: torch.Tensor) -> Any:
    """The given rows of a batch: a tensor's, or each tensor's of a dict (a token batch, trunk
    features); other entries, such as a trunk's absent output, stay as they are."""
    if isinstance(x, torch.Tensor):
        return x[rows]
    return {k: v[rows] if isinstance(v, torch.Tensor) else v for k, v in x.items()}
