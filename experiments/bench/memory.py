"""Peak memory of one meta-step per algorithm, against the model and optimizer state.

How it is measured: `torch.profiler` with `profile_memory=True` reports every allocation
and free that goes through PyTorch's CPU allocator, with its address and size. Replaying
them in order gives, exactly and independent of other processes, the bytes of tensors
allocated during the profiled meta-step and still alive at each moment; its maximum is the
peak the step adds on top of what existed when it began. (tracemalloc does not see torch's
allocations; RSS is coarse, and glibc keeps freed pages.) Not counted: memory outside the
allocator (oneDNN scratch space, Python objects) and tensors that existed before the step.

Each algorithm's `task_gradient` (ProtoNet: `episode_logits`) is wrapped in a
`record_function` mark, so the bytes still held when each task starts are known: between
tasks, a method that keeps nothing per task holds the same amount before task 2 as before
task 4. That is the check that first-order methods hold one copy of the meta-gradient (and
what the step itself keeps alive), never one per task.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback
from torch.profiler import ProfilerActivity, profile, record_function

from metalearn.algorithms.episodic import EpisodicModule
from metalearn.algorithms.protonet import ProtoNet

TASK_MARK = "bench.task"
MB = 2**20


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (shared storage counted once)."""
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type == "cpu":
            key = t.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
    return total


def optimizer_tensors(optimizers) -> list[torch.Tensor]:
    return [v for opt in optimizers for state in opt.state.values() for v in state.values()
            if isinstance(v, torch.Tensor)]


@dataclass
class StepMemory:
    """One profiled meta-step (bytes)."""

    meta_parameters: int  # what the meta-update moves (one "copy")
    model: int            # every parameter and buffer of the model
    optimizer_state: int
    grads_at_start: int   # `.grad` left from the previous step
    peak_added: int       # the most the step held at once on top of what existed at its start
    held_before_task: list[int]  # held (added) when each task of the meta-batch begins

    def copies(self, nbytes: int) -> float:
        return nbytes / self.meta_parameters

    def growth_per_task(self) -> float:
        """Bytes held between tasks that each further task adds (0: nothing kept per task).
        From the second task on: before the first, the step has not accumulated anything."""
        held = self.held_before_task[1:]
        return (held[-1] - held[0]) / (len(held) - 1) if len(held) > 1 else float("nan")


def replay(trace_file: Path) -> tuple[int, list[int]]:
    """Peak live bytes allocated during the trace, and the live bytes when each task mark began."""
    events = json.loads(trace_file.read_text())["traceEvents"]
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    marks = sorted(e["ts"] for e in events if e.get("name") == TASK_MARK and e.get("ph") == "X")
    live: dict[int, int] = {}
    total = peak = 0
    held, next_mark = [], 0
    for e in memory:
        while next_mark < len(marks) and marks[next_mark] <= e["ts"]:
            held.append(total)
            next_mark += 1
        nbytes, addr = int(e["args"]["Bytes"]), int(e["args"]["Addr"])
        if nbytes > 0:
            live[addr] = nbytes
            total += nbytes
            peak = max(peak, total)
        elif addr in live:  # frees of tensors from before the step are not ours to subtract
            total -= live.pop(addr)
    held += [total] * (len(marks) - next_mark)
    return peak, held


def mark_tasks(learner: EpisodicModule) -> None:
    """Wrap the per-task method in a profiler mark (the math is untouched)."""
    name = "episode_logits" if isinstance(learner, ProtoNet) else "task_gradient"
    original = getattr(learner, name)

    def marked(*args, **kwargs):
        with record_function(TASK_MARK):
            return original(*args, **kwargs)

    object.__setattr__(learner, name, marked)


class MemoryProbe(Callback):
    """Profiles the memory of training batch `step` of a fit."""

    def __init__(self, step: int = 1) -> None:
        self.step, self.result, self._prof, self._start = step, None, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx != self.step:
            return
        model = pl_module.model
        outer = list(pl_module.outer_parameters().values())
        self._start = dict(
            meta_parameters=tensor_bytes(outer),
            model=tensor_bytes(list(model.parameters()) + list(model.buffers())),
            optimizer_state=tensor_bytes(optimizer_tensors(trainer.optimizers)),
            grads_at_start=tensor_bytes([p.grad for p in model.parameters() if p.grad is not None]))
        self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._prof.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx != self.step or self._prof is None:
            return
        self._prof.__exit__(None, None, None)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trace.json"
            self._prof.export_chrome_trace(str(path))
            peak, held = replay(path)
        self.result = StepMemory(**self._start, peak_added=peak, held_before_task=held)
        self._prof = None


def as_record(m: StepMemory) -> dict:
    out = asdict(m)
    out["growth_per_task_bytes"] = m.growth_per_task()
    out["held_copies"] = [round(m.copies(h), 3) for h in m.held_before_task]
    out["growth_per_task_copies"] = m.growth_per_task() / m.meta_parameters
    return out
