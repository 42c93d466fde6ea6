"""Query chunks for evaluation: every row once, trimmed padding, same predictions."""
from __future__ import annotations

import torch

from metalearn.data.batches import pad_token_rows, row_chunks


def test_token_chunks_cover_every_row_once_trimmed_to_their_longest():
    rows = [[1] * n for n in (3, 9, 1, 5, 7)]
    batch = pad_token_rows(rows, pad_id=0)
    chunks = row_chunks(batch, 2)
    seen = torch.cat([r for r, _ in chunks]).sort().values
    assert seen.tolist() == [0, 1, 2, 3, 4]
    assert [c["input_ids"].shape[1] for _, c in chunks] == [9, 5, 1]  # longest first, trimmed
    for r, c in chunks:
        assert torch.equal(c["attention_mask"].sum(1), batch["attention_mask"][r].sum(1))


def test_tensor_chunks_keep_order():
    x = torch.arange(10).view(5, 2)
    chunks = row_chunks(x, 2)
    assert torch.equal(torch.cat([c for _, c in chunks]), x)
