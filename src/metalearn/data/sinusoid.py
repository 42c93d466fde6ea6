"""Sinusoid regression (Finn et al. 2017, section 5.1): every task is a sine wave.

A task is y = amplitude * sin(x - phase) with the amplitude uniform in [0.1, 5.0] and the phase
uniform in [0, pi]; an episode draws K support and L query inputs uniform in [-5, 5]. Nothing
is read from disk: a task and its inputs are a pure function of (seed, step, task) for
training and of (eval_seed, index) for evaluation, so every run scores the same held-out tasks.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metalearn.data.base import EpisodePlan, EpisodicDataModule
from metalearn.data.episode import Episode, EpisodeSettings
from metalearn.data.sampling import stable_hash

FAMILY = "sinusoid"  # one task family, reported as one group


@dataclass(frozen=True)
class SineTask:
    """One task and the inputs of its episode: y = amplitude * sin(x - phase)."""

    family: str
    amplitude: float
    phase: float
    support: tuple[float, ...]
    query: tuple[float, ...]

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The task's true curve at inputs x."""
        return self.amplitude * torch.sin(x - self.phase)


def _interval(value: Sequence[float], key: str, low_bound: float | None = None) -> tuple[float, float]:
    """A [low, high] config pair, checked."""
    pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not pair[0] <= pair[1] or (low_bound is not None and pair[0] < low_bound):
        bound = f" with low >= {low_bound}" if low_bound is not None else ""
        raise ValueError(f"data.{key} must be [low, high] with low <= high{bound}, got {list(value)}")
    return pair


class SineTasks:
    """Draws sinusoid tasks and their K support / L query inputs from a seeded generator."""

    def __init__(self, *, shots: int, queries: int, amplitude: tuple[float, float],
                 phase: tuple[float, float], x_range: tuple[float, float]) -> None:
        self.shots, self.queries = shots, queries
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range

    def draw(self, rng: np.random.Generator) -> SineTask:
        amplitude = float(rng.uniform(*self.amplitude))
        phase = float(rng.uniform(*self.phase))
        x = rng.uniform(*self.x_range, size=self.shots + self.queries)
        return SineTask(FAMILY, amplitude, phase, tuple(x[: self.shots].tolist()),
                        tuple(x[self.shots:].tolist()))

    def train_episode(self, seed: int, step: int, task: int) -> SineTask:
        """Task `task` of training step `step`'s meta-batch: the same for a given seed, always."""
        return self.draw(np.random.default_rng([seed, step, task]))

    def fixed_episodes(self, seed: int, count: int) -> list[SineTask]:
        """`count` evaluation tasks, fixed by `seed` alone."""
        return [self.draw(np.random.default_rng([seed, stable_hash(FAMILY), i]))
                for i in range(count)]


class SinusoidEpisodes(EpisodicDataModule):
    """K-shot sinusoid regression episodes (inputs and targets are [K, 1] float tensors)."""

    objectives = ("regression",)
    objectives_note = "its targets are real values"
    episode_defaults = EpisodeSettings(shots=10, queries=100, train_queries=10, meta_batch_size=25,
                                       steps_per_epoch=100, val_episodes=100, test_episodes=100)

    def __init__(self, *, amplitude: Sequence[float] = (0.1, 5.0), phase: Sequence[float] = (0.0, math.pi),
                 x_range: Sequence[float] = (-5.0, 5.0), num_workers: int = 0, **episode: Any) -> None:
        """`episode`: the data.* keys of EpisodeSettings (data/episode.py); no ways (regression)."""
        super().__init__(cache_dir=None, num_workers=num_workers, **episode)
        if self.episodes.ways is not None:
            raise ValueError(f"data.ways must be null: a sinusoid task has no classes "
                             f"(got {self.episodes.ways})")
        self.ranges = {"amplitude": _interval(amplitude, "amplitude", low_bound=0.0),
                       "phase": _interval(phase, "phase"), "x_range": _interval(x_range, "x_range")}

    def _load(self) -> None:
        """Nothing to read: the tasks are generated."""

    def make_plan(self) -> EpisodePlan:
        """The task samplers and the fixed validation and test tasks."""
        (k, q), (eval_k, eval_q) = self.episodes.train_sizes, self.episodes.eval_sizes
        evaluation = SineTasks(shots=eval_k, queries=eval_q, **self.ranges)
        return EpisodePlan.drawn(self.episodes, train=SineTasks(shots=k, queries=q, **self.ranges),
                                 val=evaluation, test=evaluation)

    def build(self, spec: SineTask) -> Episode:
        """The tensors of one episode: inputs and targets, [K, 1] and [L, 1]."""
        xs = torch.tensor(spec.support, dtype=torch.float32).unsqueeze(1)  # [K, 1]
        xq = torch.tensor(spec.query, dtype=torch.float32).unsqueeze(1)  # [L, 1]
        return Episode(xs, spec.targets(xs), xq, spec.targets(xq), family=spec.family,
                       group=spec.family, shots=len(spec.support), queries=len(spec.query))
