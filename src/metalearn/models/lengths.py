"""Rows of a padded token batch in groups of like length, so encoder layers skip the padding.

A batch padded to its longest review costs the longest review's compute in every row of every
encoder layer, yet what a layer gives a real token does not depend on the padding (the
attention mask hides it). Run group by group, each group trimmed to its own longest row, the
same layers do the same math on fewer tokens. Rows are padded on the right, as
data/batches.py pads them.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

# A group may be padded to at most this many times its rows' own tokens: 1.0 runs every
# distinct length alone. MiniLM's layers on 10 reviews, one CPU thread: 1.0 and 1.1 take the same
# time (1.4x less than padding at 128 tokens, 2x at 256), 1.2 is 7% slower; 1.1 makes fewer
# calls for large batches (a ProtoNet query set).
SLACK = 1.1


def length_groups(mask: torch.Tensor, slack: float = SLACK) -> list[tuple[torch.Tensor, int]]:
    """(rows, width) pairs covering every row of `mask` [B, T] once, longest rows first.

    Rows are sorted by length and a group grows while its padded size (rows x its longest row)
    stays within `slack` times the tokens its rows really hold.
    """
    lengths = mask.sum(1)  # [B]
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = [max(int(n), 1) for n in lengths[order].tolist()]
    groups, start = [], 0
    while start < len(sorted_lengths):
        width, end, tokens = sorted_lengths[start], start + 1, sorted_lengths[start]
        while end < len(sorted_lengths) and (
                (end + 1 - start) * width <= slack * (tokens + sorted_lengths[end])):
            tokens += sorted_lengths[end]
            end += 1
        groups.append((order[start:end], width))
        start = end
    return groups


def in_length_groups(fn: Callable[..., torch.Tensor], mask: torch.Tensor,
                     *inputs: torch.Tensor) -> torch.Tensor:
    """`fn(*inputs, mask)` [B, ...] computed group by group of like-length rows (each input and
    the mask trimmed to the group's longest row) and put back in the batch's row order."""
    parts, rows = [], []
    for group, width in length_groups(mask):
        parts.append(fn(*(t[group, :width] for t in inputs), mask[group, :width]))
        rows.append(group)
    return torch.cat(parts)[torch.argsort(torch.cat(rows))]


def checked_setting(setting: bool | str) -> bool | str:
    """`model.skip_padding` as given, or a clear error before anything is built."""
    if setting not in (True, False, "auto"):
        raise ValueError(f"model.skip_padding must be true, false or auto, got {setting!r}")
    return setting


def skips_padding(setting: bool | str, x: torch.Tensor) -> bool:
    """Whether to run `x`'s batch in length groups: `auto` does on a CPU, where compute is
    proportional to tokens; on a GPU small steps are bound by kernel launches, which groups
    multiply, so `auto` pads there."""
    return x.device.type == "cpu" if setting == "auto" else bool(setting)
