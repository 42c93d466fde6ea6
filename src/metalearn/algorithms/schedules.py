"""Outer step-size schedules."""
from __future__ import annotations

import torch


def linear_anneal(optimizer: torch.optim.Optimizer, total_steps: int,
                  final_fraction: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Scale the lr linearly from 1 to `final_fraction` over `total_steps` (Reptile's schedule)."""
    total = max(int(total_steps), 1)

    def factor(step: int) -> float:
        done = min(step / total, 1.0)
        return (1.0 - done) + done * final_fraction

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
