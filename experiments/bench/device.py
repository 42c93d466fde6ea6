"""Where the bench runs: the CPU (default) or a CUDA GPU (`--device cuda`).

On a GPU the work is asynchronous, so every clock reading waits for the device first
(`synchronize`) and ratios are taken on wall time: the CPU time of a process that mostly
queues kernels says nothing about the step. TF32 is turned off, so every implementation does
fp32 arithmetic and the equal-math checks keep their CPU tolerances.
"""
from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning.utilities import move_data_to_device


def use(device: str) -> torch.device:
    """Check the device exists and set fp32 arithmetic on it."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif dev.type != "cpu":
        raise SystemExit(f"--device {device}: the bench runs on cpu or cuda")
    return dev


def synchronize() -> None:
    """Wait for queued GPU work (nothing to wait for when CUDA was never used)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def to(obj: Any, device: torch.device | str) -> Any:
    """Tensors in `obj` (an episode, a list of them, a dict) moved as Lightning moves a batch."""
    return move_data_to_device(obj, torch.device(device))
