"""ARSC test-time settings chosen on the target tasks' .dev files, as Yu et al. choose theirs.

    python experiments/tables.py --write    # the table between the arsc-dev markers

A meta-test with `data.test_protocol=arsc_dev` adapts a checkpoint on each of the 12 target
tasks' support set (its .train file, as the standard meta-test does) and scores the task's
.dev file after each count of `algorithm.eval_score_steps`, at its step size
(`algorithm.eval_inner_lr`, null: the training `inner_lr`). Per checkpoint the table gives the
mean .dev accuracy over the 12 tasks for every step size and count recorded, the pair with the
highest, and the standard meta-test (.test files) of that checkpoint with that pair where a record
holds one. These rows look at the target domains, so they stay apart from the standard protocol's
tables, which choose nothing on them (result_rows.on_dev_files keeps them out).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from result_rows import cited, is_debug, on_dev_files, step_rows, trained_by

BLOCK = ("<!-- arsc-dev:begin -->", "<!-- arsc-dev:end -->")


def step_size(record: dict) -> float:
    """The test-time step size a record ran: eval_inner_lr, else the training inner_lr."""
    algorithm = (record.get("config") or {}).get("algorithm") or {}
    lr = algorithm.get("eval_inner_lr")
    return algorithm.get("inner_lr") if lr is None else lr


def dev_means(record: dict) -> dict[int, float]:
    """Steps -> mean .dev accuracy over the tasks a record scored (every task at every count)."""
    by_steps: dict[int, list[float]] = defaultdict(list)
    for (metric, _, _), rows in step_rows(record).items():
        if metric == "acc":
            for steps, row in rows.items():
                by_steps[steps].append(row["value"])
    sizes = {len(v) for v in by_steps.values()}
    return {n: sum(v) / len(v) for n, v in sorted(by_steps.items())} if len(sizes) == 1 else {}


@dataclass
class Choice:
    """One checkpoint's dev grid, its best (step size, steps) and the .test meta-test with them."""
    checkpoint: str
    trained: dict | None
    grid: list[tuple[float, dict[int, float], dict]]  # (step size, steps -> dev mean, record)
    lr: float
    steps: int
    dev: float
    test: dict | None


def _tested_with(records: list[dict], ckpt: str, lr: float, steps: int) -> dict | None:
    """A completed standard-protocol meta-test of ckpt that adapted `steps` steps of `lr`: a
    meta-test of the checkpoint, or the training run's own (ckpt is the one it kept and tested)."""
    for r in records:
        algorithm = (r.get("config") or {}).get("algorithm") or {}
        if (r.get("ckpt_path") == ckpt and not on_dev_files(r) and not is_debug(r)
                and r["status"] == "completed" and step_size(r) == lr
                and algorithm.get("eval_inner_steps") == steps and "test/acc" in (r.get("metrics") or {})):
            return r
    return None


def choices(records: list[dict]) -> list[Choice]:
    """Per checkpoint scored on .dev: every step size's dev means and the best pair."""
    grids: dict[str, list[tuple[float, dict[int, float], dict]]] = defaultdict(list)
    for r in records:
        if on_dev_files(r) and r["status"] == "completed" and not is_debug(r) and r.get("ckpt_path"):
            means = dev_means(r)
            if means:
                grids[r["ckpt_path"]].append((step_size(r), means, r))
    out = []
    for ckpt, grid in grids.items():
        grid.sort(key=lambda g: g[0])
        dev, lr, steps = max((mean, lr, n) for lr, means, _ in grid for n, mean in means.items())
        out.append(Choice(ckpt, trained_by(grid[0][2], records), grid, lr, steps, dev,
                          _tested_with(records, ckpt, lr, steps)))
    return out


def table(records: list[dict]) -> str:
    """Markdown: per checkpoint, the .dev grid and the chosen pair with its .test score."""
    found = choices(records)
    if not found:
        return "No recorded meta-tests on the target tasks' .dev files yet.\n"
    lines = []
    for c in found:
        who = (f"`{c.trained['experiment']}` ({cited(c.trained)})" if c.trained
               else f"`{c.checkpoint}`")
        counts = sorted({n for _, means, _ in c.grid for n in means})
        lines += [f"Checkpoint of {who}, mean accuracy on the 12 .dev files after each number of steps:", "",
                  "| step size | " + " | ".join(str(n) for n in counts) + " | records |",
                  "|---" * (len(counts) + 2) + "|"]
        for lr, means, r in c.grid:
            cells = [f"{100 * means[n]:.1f}" if n in means else "—" for n in counts]
            lines.append(f"| {lr:g} | " + " | ".join(cells) + f" | {cited(r)} |")
        if c.test is None:
            result = "not yet meta-tested on .test with them"
        else:
            m = c.test["metrics"]
            result = (f"on the .test files {100 * m['test/acc']['last']:.1f} ± "
                      f"{100 * m['test/acc_ci95']['last']:.1f} ({cited(c.test)})")
        lines += ["", f"Chosen: {c.steps} steps of {c.lr:g} (.dev {100 * c.dev:.1f}); {result}", ""]
    return "\n".join(lines)
