"""The frozen trunk's outputs on fixed evaluation batches, computed once and handed out again.

Meta-validation runs the same episodes (fixed by `data.eval_seed`) at every check, and the trunk
is frozen, run without gradients in eval mode: its output for a batch depends on the batch and
on the trunk's weights only. `TrunkCache` keeps that output under a digest of the batch's
content, for as long as the trunk's tensors, the device, autocast and the thread count stay
those it was computed with; any change to them (a checkpoint loaded, the model moved) drops
everything kept. What it hands out is the tensor the trunk gave, so a check reading it computes
bit for bit what it computes running the trunk again.

`model.cache_trunk` (`SplitModel(cache_trunk=...)`): `auto` keeps at most AUTO_LIMIT_BYTES
(past it the trunk runs as without a cache), `true` keeps everything, `false` keeps nothing.
A trunk without weights (an empty trunk, a layer that picks out the token ids) is never cached:
running it costs less than keeping it.
"""
from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

# `auto`'s bound: the Amazon protocol's 54 meta-validation episodes hold 206 MB of MiniLM
# trunk states (133,620 padded token positions x 384 floats, and their masks).
AUTO_LIMIT_BYTES = 1 << 30


def checked_setting(setting: bool | str) -> bool | str:
    """`model.cache_trunk` as given, or a clear error before anything is built."""
    if not (setting is True or setting is False or setting == "auto"):
        raise ValueError(f"model.cache_trunk must be true, false or auto, got {setting!r}")
    return setting


def limit_for(setting: bool | str) -> int | None:
    """The byte bound of a `model.cache_trunk` setting other than false (None: no bound)."""
    return AUTO_LIMIT_BYTES if setting == "auto" else None


def tensors_of(value: Any) -> list[torch.Tensor] | None:
    """The tensors of a tensor or a flat dict of tensors (and None entries); None for anything
    else, which is not kept."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict) and all(v is None or isinstance(v, torch.Tensor) for v in value.values()):
        return [v for v in value.values() if v is not None]
    return None


def content_key(x: Any) -> tuple | None:
    """A key equal for batches of equal content: each tensor's name, dtype, shape and a digest
    of its bytes; None for inputs other than a tensor or a dict of tensors."""
    if tensors_of(x) is None:
        return None
    items = [("", x)] if isinstance(x, torch.Tensor) else sorted(x.items(), key=lambda kv: kv[0])
    key = []
    for name, t in items:
        if t is None:
            key.append((name, None))
            continue
        raw = t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy()
        key.append((name, str(t.dtype), tuple(t.shape), str(t.device),
                    hashlib.blake2b(raw.tobytes(), digest_size=16).digest()))
    return tuple(key)


def trunk_stamp(trunk: nn.Module, x: Any) -> tuple:
    """What the trunk's output depends on besides its input: its tensors (each one's identity,
    storage and version, which an in-place write such as `load_state_dict` bumps), autocast on
    the input's device, and the thread count (which may change the kernels' rounding)."""
    device = tensors_of(x)[0].device
    autocast = (torch.is_autocast_enabled(device.type),
                torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None)
    tensors = [*trunk.parameters(), *trunk.buffers()]
    return (str(device), autocast, torch.get_num_threads(),
            tuple((id(t), t.data_ptr(), t._version) for t in tensors))


class TrunkCache:
    """Trunk outputs by the content of the batch they came from, up to `limit_bytes` (None: no
    bound). `hits` and `misses` count lookups that found, and did not find, a kept output."""

    def __init__(self, limit_bytes: int | None) -> None:
        self.limit = limit_bytes
        self.entries: dict[tuple, Any] = {}
        self.bytes = 0
        self.stamp: tuple | None = None
        self.hits = self.misses = 0

    def clear(self) -> None:
        """Forget every kept output."""
        self.entries, self.bytes = {}, 0

    def features(self, trunk: nn.Module, x: Any) -> Any:
        """`trunk(x)`, from what was kept where `x`'s content was run before with the same
        trunk tensors; kept for later if it fits the bound. The caller runs this under
        `torch.no_grad` with the trunk in eval mode (`SplitModel.features`)."""
        key = content_key(x)
        if key is None:
            return trunk(x)
        stamp = trunk_stamp(trunk, x)
        if stamp != self.stamp:
            self.clear()
            self.stamp = stamp
        kept = self.entries.get(key)
        if kept is not None:
            self.hits += 1
            return dict(kept) if isinstance(kept, dict) else kept
        self.misses += 1
        out = trunk(x)
        parts = tensors_of(out)
        if parts is not None:
            size = sum(t.numel() * t.element_size() for t in parts)
            if self.limit is None or self.bytes + size <= self.limit:
                self.entries[key] = dict(out) if isinstance(out, dict) else out
                self.bytes += size
        return out
