"""Timing a stretch of meta-steps, and running several implementations against each other.

Time is taken as process CPU time (primary) and wall time. On a machine shared with other
work, wall time counts the time the process waited for a core; CPU time counts only its own
work, which is what a ratio of two implementations should compare (both are recorded).
Implementations run in interleaved rounds, in a rotated order, so a burst of load hits them
alike; a ratio is the median over rounds of the per-round ratios. On a GPU (bench.device) the
clocks are read after the device has finished its queued work, and wall time is the measure.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Protocol

from bench.device import synchronize
from bench.same_math import Trace, assert_same_math, assert_same_pre_forwards


@dataclass
class Timed:
    """CPU and wall seconds over `steps` meta-steps."""

    cpu_s: float = 0.0
    wall_s: float = 0.0
    steps: int = 0

    def per_step(self, clock: str = "cpu") -> float:
        return (self.cpu_s if clock == "cpu" else self.wall_s) / max(self.steps, 1)


class Stopwatch:
    """Starts and stops once; `timed` is what lay between."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self._cpu = self._wall = None
        self.timed: Timed | None = None

    def start(self) -> None:
        synchronize()
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def stop(self) -> None:
        if self._cpu is None:
            raise RuntimeError("stopwatch stopped before it was started")
        synchronize()
        self.timed = Timed(time.process_time() - self._cpu, time.perf_counter() - self._wall,
                           self.steps)


class Implementation(Protocol):
    """One way of doing the meta-steps; every run starts from the same initial weights.

    equal_pre_forwards: whether it must run the before-adapting query forward on the steps
    and tasks metalearn does (checked each round); False only for variants that differ there
    by design, as their names say (the floor scoring every step or never, the write-up's way).
    """

    name: str
    equal_pre_forwards: bool

    def run(self, steps: int, timed_from: int) -> tuple[Trace, Timed]:
        """`steps` meta-steps on the shared episodes; times steps timed_from .. steps-1."""
        ...


@dataclass
class ContestResult:
    """Per implementation, the per-round timings; the score names checked against metalearn;
    the before-adapting query forwards of each step (the last round's)."""

    name: str
    reference: str
    rounds: dict[str, list[Timed]] = field(default_factory=dict)
    checked: dict[str, list[str]] = field(default_factory=dict)
    pre_forwards: dict[str, list[int]] = field(default_factory=dict)

    def median_step(self, impl: str, clock: str = "cpu") -> float:
        return statistics.median(t.per_step(clock) for t in self.rounds[impl])

    def ratios(self, numerator: str, denominator: str, clock: str = "cpu") -> list[float]:
        """Per-round time ratios numerator / denominator (paired within a round)."""
        return [a.per_step(clock) / b.per_step(clock)
                for a, b in zip(self.rounds[numerator], self.rounds[denominator], strict=False)]

    def ratio(self, numerator: str, denominator: str, clock: str = "cpu") -> float:
        return statistics.median(self.ratios(numerator, denominator, clock))


def run_contest(name: str, impls: list[Implementation], steps: int, timed_from: int,
                rounds: int, rtol: float, atol: float, drift: float | None = None,
                log=None) -> ContestResult:
    """Run every implementation `rounds` times; the first is the reference (metalearn) whose
    trace every other one must match in every round (`assert_same_math`, with its tolerances),
    and whose before-adapting forwards per step those with `equal_pre_forwards` must match
    (`assert_same_pre_forwards`)."""
    if not 0 <= timed_from < steps:
        raise ValueError(f"timed_from={timed_from} must lie in [0, steps={steps})")
    reference = impls[0].name
    result = ContestResult(name, reference, {i.name: [] for i in impls})
    for r in range(rounds):
        order = impls[r % len(impls):] + impls[: r % len(impls)]
        traces: dict[str, Trace] = {}
        for impl in order:
            trace, timed = impl.run(steps, timed_from)
            traces[impl.name] = trace.cpu()
            result.rounds[impl.name].append(timed)
            result.pre_forwards[impl.name] = trace.pre_forwards
            if log is not None:
                log(f"{name} round {r + 1}/{rounds}: {impl.name} "
                    f"{1e3 * timed.per_step('cpu'):.1f} ms CPU / "
                    f"{1e3 * timed.per_step('wall'):.1f} ms wall per step")
        for impl in impls[1:]:
            result.checked[impl.name] = assert_same_math(
                f"{name}: {impl.name}", traces[reference], traces[impl.name], rtol, atol, drift)
            if getattr(impl, "equal_pre_forwards", True):
                assert_same_pre_forwards(f"{name}: {impl.name}", traces[reference], traces[impl.name])
    return result
