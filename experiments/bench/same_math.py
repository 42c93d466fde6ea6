"""What a run of a meta-learning implementation computed, and the check that two computed the same.

A ratio of two timings only means something if both did the same math, so every timed run
returns a `Trace` (every step's meta-gradient and logged scores, the meta-parameters
before and after) and `assert_same_math` compares it with metalearn's
before any ratio is kept, and the number of before-adapting query forwards each step ran
(`assert_same_pre_forwards`): that forward is work metalearn's gradient learners do only on the
steps whose training scores Lightning writes, so a contestant running it on other steps would
be timed for other work.

Tolerances. Step 0, where every implementation starts from the same weights, is compared
tightly: gradients elementwise (`rtol`, plus an absolute tolerance of `NULL_FRACTION` of the
largest entry, since rounding differs with the order of operations), scores with rtol/atol.
Later steps and the final weights are compared in norm, to within `drift` of their size
(final weights: of how far training moved them). Why looser: from step 1 on, two correct
implementations stand at weights that differ by rounding, and second-order MAML on Conv4
amplifies it. Measured on the 64-channel Conv4 (higher against metalearn, whose operations
differ in order only): the meta-gradients' relative difference grows from 1e-6 at step 0 to
5e-5, 3e-3 and 5e-2 at steps 1-3 with the configured Adam (4e-3 at step 3 with plain SGD),
most likely because max-pooling and ReLU make the gradient jump where a rounding-level change
of a weight flips which input wins, and because Adam's first update is about lr * sign(g) for
every entry, however small. Implementations with the same order of operations stay identical.
Parameters whose
step-0 gradient is all rounding noise (`null_gradient`) are left out of the final-weight norm.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

Params = dict[str, torch.Tensor]
# Scores every implementation reports (means over the meta-batch, as metalearn logs them).
REQUIRED_SCORES = ("support_loss", "query_loss")
NULL_FRACTION = 1e-4


class MathMismatch(AssertionError):
    """Two implementations that should compute the same numbers did not."""


class WorkMismatch(MathMismatch):
    """Two implementations that should do the same work per step did not (the before-adapting
    query forwards)."""


@dataclass
class Trace:
    """grads: the meta-gradient written into `.grad` at each step, by parameter name.
    scores: each step's means over the meta-batch (support_loss, query_loss, ...).
    start, final: the meta-parameters before the first step and after the last.
    pre_forwards: per step, how many tasks' query sets were forwarded with the meta-weights
    (the before-adapting scores' forward), as counted while the step ran."""

    grads: list[Params]
    scores: list[dict[str, float]]
    start: Params
    final: Params
    pre_forwards: list[int] = field(default_factory=list)

    def cpu(self) -> Trace:
        """The same trace on the CPU, where traces from any device are compared."""
        def move(p: Params) -> Params:
            return {n: t.cpu() for n, t in p.items()}

        return Trace([move(g) for g in self.grads], self.scores, move(self.start),
                     move(self.final), self.pre_forwards)


def snapshot(params: Params) -> Params:
    """Detached copies, so later steps cannot change what was recorded."""
    return {n: p.detach().clone() for n, p in params.items()}


def null_gradient(grads: Params, fraction: float = NULL_FRACTION) -> set[str]:
    """Parameters whose gradient is rounding noise: at most `fraction` of the largest entry.

    A convolution bias followed by batch norm (Conv4) has no effect on the loss, so its
    gradient is zero up to rounding, and Adam moves it by about lr per step whatever that
    noise's sign: its final value depends on the order of floating-point operations.
    """
    scale = max(g.abs().max().item() for g in grads.values())
    return {n for n, g in grads.items() if g.abs().max().item() <= fraction * scale}


def _same_names(name: str, what: str, ref: Params, other: Params) -> None:
    if set(ref) != set(other):
        raise MathMismatch(f"{name}: {what} has parameters {sorted(set(other) ^ set(ref))} "
                           f"on one side only")


def _compare_grads(name: str, step: int, ref: Params, other: Params, rtol: float,
                   drift: float) -> None:
    what = f"the step-{step} meta-gradient"
    _same_names(name, what, ref, other)
    if step > 0:
        a = torch.cat([g.flatten() for g in ref.values()])
        b = torch.cat([other[k].flatten() for k in ref])
        if a.shape != b.shape or (b - a).norm() > drift * a.norm():
            raise MathMismatch(f"{name}: {what} differs from metalearn's by "
                               f"{((b - a).norm() / a.norm()).item():.3g} of its norm "
                               f"(tolerance {drift})")
        return
    atol = NULL_FRACTION * max(g.abs().max().item() for g in ref.values())
    for key, a in ref.items():
        b = other[key]
        if a.shape != b.shape or not torch.allclose(b, a, rtol=rtol, atol=atol):
            diff = (b - a).abs().max().item() if a.shape == b.shape else float("nan")
            raise MathMismatch(f"{name}: {what} of {key} differs from metalearn's "
                               f"(max abs diff {diff:.3g}; rtol {rtol}, atol {atol:.3g})")


def _compare_final(name: str, ref: Trace, other: Trace, skip: set[str], drift: float) -> None:
    _same_names(name, "the final meta-parameters", ref.final, other.final)
    keys = [k for k in ref.final if k not in skip]
    moved = torch.cat([(ref.final[k] - ref.start[k]).flatten() for k in keys]).norm().item()
    apart = torch.cat([(other.final[k] - ref.final[k]).flatten() for k in keys]).norm().item()
    start = torch.cat([(other.start[k] - ref.start[k]).flatten() for k in keys]).norm().item()
    if start > 0:
        raise MathMismatch(f"{name}: started from other weights than metalearn's")
    if apart > drift * moved:
        raise MathMismatch(f"{name}: the final meta-parameters are {apart:.3g} from metalearn's, "
                           f"more than {drift} of the {moved:.3g} training moved them")


def _compare_scores(name: str, step: int, ref: dict[str, float], other: dict[str, float],
                    rtol: float, atol: float) -> list[str]:
    missing = [k for k in REQUIRED_SCORES if k not in ref or k not in other]
    if missing:
        raise MathMismatch(f"{name}: no {', '.join(missing)} to compare")
    shared = sorted(set(ref) & set(other))
    for key in shared:
        a, b = ref[key], other[key]
        if abs(a - b) > atol + rtol * abs(a):
            raise MathMismatch(f"{name}: step-{step} {key} {b:.7g} differs from metalearn's {a:.7g}")
    return shared


def assert_same_math(name: str, ref: Trace, other: Trace, rtol: float, atol: float,
                     drift: float | None = None) -> list[str]:
    """Raise MathMismatch unless `other` matches `ref`; returns the score names compared.

    drift: the tolerance from step 1 on (default: rtol; see the module docstring). Scores are
    compared where both report them (the write-up's way does not score the query set
    before adapting); support and query losses are always required.
    """
    drift = rtol if drift is None else drift
    if len(ref.grads) != len(other.grads) or len(ref.scores) != len(other.scores):
        raise MathMismatch(f"{name}: {len(other.grads)} steps against metalearn's {len(ref.grads)}")
    for step, (a, b) in enumerate(zip(ref.grads, other.grads, strict=False)):
        _compare_grads(name, step, a, b, rtol, drift)
    _compare_final(name, ref, other, null_gradient(ref.grads[0]), drift)
    shared = []
    for step, (a, b) in enumerate(zip(ref.scores, other.scores, strict=False)):
        shared = _compare_scores(name, step, a, b, rtol if step == 0 else drift, atol)
    return shared


def assert_same_pre_forwards(name: str, ref: Trace, other: Trace) -> None:
    """Raise WorkMismatch unless `other` forwarded as many tasks' query sets with the
    meta-weights as `ref` (metalearn) on every step: the same before-adapting work per step."""
    if len(other.pre_forwards) != len(ref.grads) or len(ref.pre_forwards) != len(ref.grads):
        raise WorkMismatch(f"{name}: before-adapting forwards counted on {len(other.pre_forwards)} "
                           f"steps against metalearn's {len(ref.pre_forwards)} (of {len(ref.grads)})")
    if other.pre_forwards != ref.pre_forwards:
        raise WorkMismatch(f"{name}: before-adapting query forwards per step "
                           f"{other.pre_forwards} against metalearn's {ref.pre_forwards}")
