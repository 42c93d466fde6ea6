"""The bench's output: rich tables of ratios, memory and GFLOP/s, and a JSON record."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.memory import MB, StepMemory, as_record
from bench.timing import ContestResult


@dataclass(frozen=True)
class Ratio:
    """One printed ratio: time of `numerator` over time of `denominator`, in one contest."""

    item: str
    contest: str
    numerator: str
    denominator: str
    label: str
    target: str | None = None  # "<= 1.05", ">= 3", or None (for information)

    def met(self, value: float) -> bool | None:
        if self.target is None:
            return None
        op, bound = self.target.split()
        return value <= float(bound) if op == "<=" else value >= float(bound)


def speed_ratios(contests: dict[str, ContestResult]) -> list[Ratio]:
    rows = []
    if "reptile-text" in contests:
        rows.append(Ratio("1", "reptile-text", "metalearn", "hand-written",
                          "Reptile, text model: metalearn / hand-written floor", "<= 1.05"))
    for c, alg in (("maml-conv4", "MAML"), ("fomaml-conv4", "FOMAML")):
        if c in contests:
            rows.append(Ratio("1", c, "metalearn", "hand-written",
                              f"{alg}, Conv4: metalearn / hand-written floor", "<= 1.05"))
    if "reptile-text" in contests:
        rows.append(Ratio("2", "reptile-text", "the write-up's way", "metalearn",
                          "Reptile, text model: the write-up's way / metalearn", ">= 3"))
        rows.append(Ratio("2", "reptile-text", "the write-up's way, query scored every inner epoch",
                          "metalearn", "the same, the write-up's loop scoring its query set every inner "
                          "epoch (as its code does) / metalearn"))
        rows.append(Ratio("2", "reptile-text", "metalearn, padded", "metalearn",
                          "Reptile, text model: metalearn with model.skip_padding=false / "
                          "metalearn (what running reviews in length groups saves)"))
    for c, alg in (("maml-conv4", "MAML"), ("fomaml-conv4", "FOMAML")):
        if c in contests:
            for lib in ("higher", "TorchOpt (MetaSGD)", "TorchOpt (functional)"):
                rows.append(Ratio("3", c, "metalearn", lib, f"{alg}, Conv4: metalearn / {lib}",
                                  "<= 1.0"))
    for c in contests:
        if c.startswith("vmap-"):
            _, alg, model = c.split("-")
            model = {"conv4": "Conv4", "sinusoid": "sinusoid MLP"}[model]
            rows.append(Ratio("4", c, "metalearn", "metalearn, vmap_tasks",
                              f"{alg.upper()}, {model}: task loop / vmap_tasks", ">= 3"))
    if "overhead-linear" in contests:
        rows.append(Ratio("i", "overhead-linear", "metalearn", "hand-written",
                          "FOMAML on a 16-feature linear model (fixed cost only): metalearn / floor"))
    for c, alg in (("maml-conv4", "MAML"), ("fomaml-conv4", "FOMAML")):
        if c in contests:
            rows.append(Ratio("i", c, "hand-written, pre-adaptation scores every step",
                              "hand-written, no pre-adaptation scores",
                              f"{alg}, Conv4: floor / floor without the before-adapting scores "
                              "(on every step / on none)"))
    return rows


def speed_table(contests: dict[str, ContestResult], rows: list[Ratio],
                clock: str = "cpu") -> tuple[Table, list[dict]]:
    """`clock`: what the ratio and its target are taken on, CPU time (the CPU bench) or wall
    time (a GPU, where the CPU mostly queues work); the other clock's ratio stands beside."""
    other = "wall" if clock == "cpu" else "cpu"
    name = {"cpu": "CPU", "wall": "wall"}
    table = Table(title=f"Speed: time per meta-step, ratios ({name[clock]} time; "
                        f"{name[other]} time beside)")
    for col in ("#", "measurement", "numerator ms", "denominator ms", f"ratio ({name[clock]})",
                "range over rounds", f"ratio ({name[other]})", "target", "met"):
        table.add_column(col, justify="left" if col == "measurement" else "right")
    records = []
    for r in rows:
        c = contests[r.contest]
        value = c.ratio(r.numerator, r.denominator, clock)
        spread = c.ratios(r.numerator, r.denominator, clock)
        beside = c.ratio(r.numerator, r.denominator, other)
        met = r.met(value)
        table.add_row(r.item, r.label, f"{1e3 * c.median_step(r.numerator, clock):.1f}",
                      f"{1e3 * c.median_step(r.denominator, clock):.1f}", f"{value:.3f}",
                      f"{min(spread):.3f}-{max(spread):.3f}", f"{beside:.3f}", r.target or "-",
                      {True: "[green]yes", False: "[red]no", None: "-"}[met])
        records.append({"item": r.item, "label": r.label, "contest": r.contest,
                        "numerator": r.numerator, "denominator": r.denominator, "clock": clock,
                        f"ratio_{clock}": value, f"ratio_{clock}_rounds": spread,
                        f"ratio_{other}": beside, "target": r.target, "met": met})
    return table, records


def fixed_cost(contests: dict[str, ContestResult], clock: str = "cpu") -> dict | None:
    """metalearn's fixed cost per meta-step (ms on `clock`, from the linear-model contest:
    median over rounds of metalearn minus floor) and its share of each real contest's
    metalearn step."""
    if "overhead-linear" not in contests:
        return None
    c = contests["overhead-linear"]
    ms = statistics.median(1e3 * (a.per_step(clock) - b.per_step(clock))
                           for a, b in zip(c.rounds["metalearn"], c.rounds["hand-written"], strict=False))
    share = {name: ms / (1e3 * k.median_step("metalearn", clock))
             for name, k in contests.items() if name != "overhead-linear"}
    return {"ms_per_step": ms, "clock": clock, "share_of_step": share}


def memory_table(mem: dict[str, StepMemory]) -> Table:
    table = Table(title="Memory of one meta-step (PyTorch CPU allocator, MB)")
    for col in ("algorithm", "meta-params", "model + optimizer state", "peak added by the step",
                "held between tasks (copies of meta-params)", "growth per task (copies)",
                "nothing kept per task"):
        table.add_column(col, justify="left" if col == "algorithm" else "right")
    for alg, m in mem.items():
        growth = m.growth_per_task() / m.meta_parameters
        held = ", ".join(f"{m.copies(h):.2f}" for h in m.held_before_task[1:])
        table.add_row(alg, f"{m.meta_parameters / MB:.2f}",
                      f"{(m.model + m.optimizer_state) / MB:.2f}",
                      f"{m.peak_added / MB:.2f} ({m.peak_added / (m.model + m.optimizer_state):.1f}x)",
                      held, f"{growth:+.3f}", kept_per_task(alg, growth))
    return table


def kept_per_task(alg: str, growth: float) -> str:
    if alg == "protonet":  # automatic optimization: one backward over the whole meta-batch
        return "n/a: each task's activations wait for the one backward"
    return "[green]yes" if abs(growth) < 0.25 else "[red]no"


def flops_table(fl: dict[str, dict], clock: str = "cpu") -> Table:
    table = Table(title=f"Achieved GFLOP/s (FlopCounterMode FLOPs / median {clock.upper()} time; "
                        f"'of matmul': of the fp32 matmul)")
    for col in ("what", "GFLOP", "ms", "GFLOP/s", "of matmul"):
        table.add_column(col, justify="left" if col == "what" else "right")
    peak = fl["matmul"]["gflops"]
    for name, v in fl.items():
        what = f"{name} ({v['n']}x{v['n']} {v.get('dtype', 'float32')})" if "n" in v else (
            f"{name} ({v['support_examples']} support examples)")
        table.add_row(what, f"{v['gflop']:.3f}", f"{v['ms']:.2f}", f"{v['gflops']:.1f}",
                      f"{100 * v['gflops'] / peak:.0f}%")
    return table


def contest_records(contests: dict[str, ContestResult], infos: dict[str, dict]) -> dict:
    return {name: {"settings": infos.get(name, {}), "reference": c.reference,
                   "checked_scores": c.checked,
                   "pre_forwards_per_step": c.pre_forwards,
                   "cpu_ms_per_step": {i: [1e3 * t.per_step("cpu") for t in ts]
                                       for i, ts in c.rounds.items()},
                   "wall_ms_per_step": {i: [1e3 * t.per_step("wall") for t in ts]
                                        for i, ts in c.rounds.items()},
                   "timed_steps_per_round": next(iter(c.rounds.values()))[0].steps}
            for name, c in contests.items()}


def write_json(record: dict, out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(record, indent=1, default=float) + "\n")
    return path


def memory_records(mem: dict[str, StepMemory]) -> dict:
    return {alg: as_record(m) for alg, m in mem.items()}


def print_tables(console: Console, *tables: Table) -> None:
    for t in tables:
        console.print(t)
