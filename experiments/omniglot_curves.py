"""Every Omniglot algorithm's validation curve against meta-steps, beside its paper's figure.

    python experiments/omniglot_curves.py   # writes experiments/omniglot_curves.png
    python experiments/tables.py --write    # the table between the omniglot-curves markers

Takes the committed records of each `<algorithm>_omniglot` experiment run at its shipped
settings (only the seed and the number of meta-steps changed). Per algorithm, the table reads its
longest runs: the meta-test score, the best validation score, and the slope of the validation
curve over the last third of training (at least its last five checks) with its 95% interval
(least squares over the checks; seeds averaged first), which says whether the curve was still
rising when training stopped.
The papers' figures are 5-way 1-shot on full Omniglot (1,623 characters, ours has 242) after
60,000-100,000 meta-steps: a line to read distance against, not a like-for-like comparison.
Needs matplotlib for the figure (the `notebook` extra); the table needs only the records.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import figure_cli
from result_rows import ALGORITHM_NAMES, cite, command_for, is_debug, percent_curve  # experiments/, beside this file

from metalearn.intervals import seeds_ci95, t975
from metalearn.registry import records as rec

HERE = Path(__file__).resolve().parent
RECORDS, FIGURE = HERE / "records", HERE / "omniglot_curves.png"
BLOCK = ("<!-- omniglot-curves:begin -->", "<!-- omniglot-curves:end -->")
ALGORITHMS = ("protonet", "finetune", "maml", "anil", "fomaml", "reptile")
# 5-way 1-shot accuracy (%) on full Omniglot, as each paper prints it; None: no such figure.
PAPER = {"maml": (98.7, "Finn et al. 2017"), "fomaml": (98.3, "Finn et al. 2017"),
         "protonet": (98.8, "Snell et al. 2017"), "reptile": (95.39, "Nichol et al. 2018, not transductive"),
         "anil": None, "finetune": None}
# overrides (besides the seed) that keep the shipped training: its length, and scores at more step counts
SHIPPED = ("trainer.max_steps=", "algorithm.eval_score_steps=")
METRIC = "val/acc"
log = logging.getLogger("omniglot_curves")


def shipped_runs(folder: Path = RECORDS) -> dict[str, list[rec.Loaded]]:
    """Per algorithm, its completed non-debug records at the shipped settings, with metric rows."""
    found: dict[str, list[rec.Loaded]] = {}
    for algorithm in ALGORITHMS:
        for path in sorted((folder / f"{algorithm}_omniglot").glob("*.json")):
            item = rec.load(path, with_rows=True)
            r = item.record
            if r["status"] != "completed" or is_debug(r):
                continue
            command = command_for(r)  # what composes the config it ran, against today's configs
            if command is not None and all(o.startswith(SHIPPED) for o in command):
                found.setdefault(algorithm, []).append(item)
    return found


def meta_steps(item: rec.Loaded) -> int:
    return int(item.record["config"]["trainer"]["max_steps"])


def curve(item: rec.Loaded) -> dict[int, float]:
    """Validation accuracy (%) by meta-step."""
    return percent_curve(item.rows, METRIC)


def mean_curve(items: list[rec.Loaded]) -> dict[int, float]:
    """The seeds' validation curves averaged at the steps they all checked."""
    curves = [curve(i) for i in items]
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return {s: sum(c[s] for c in curves) / len(curves) for s in steps}


def slope(points: dict[int, float], *, fraction: float = 1 / 3) -> tuple[float, float]:
    """Least-squares slope (points per 1,000 meta-steps) of the last `fraction` of the checks
    (at least five), with its 95% interval."""
    steps = sorted(points)[-max(5, round(len(points) * fraction)):]  # 5: an interval worth reading
    xs, ys = [s / 1000 for s in steps], [points[s] for s in steps]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    residual = sum((y - my - b * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))
    return b, t975(n - 2) * math.sqrt(residual / (n - 2) / sxx)


def verdict(b: float, ci: float) -> str:
    if b - ci > 0:
        return "yes"
    return "no: falling" if b + ci < 0 else "no: flat within its interval"


def test_score(items: list[rec.Loaded]) -> str:
    values = [next(100 * t["value"] for t in i.record["test_results"] if t["metric"] == "acc")
              for i in items]
    if len(values) == 1:
        ci = next(100 * t["ci95"] for t in items[0].record["test_results"] if t["metric"] == "acc")
        return f"{values[0]:.1f} ± {ci:.1f}"
    mean, ci = seeds_ci95(values)
    return f"{mean:.1f} ± {ci:.1f}"


def table(folder: Path = RECORDS) -> str:
    """Markdown: per algorithm, its longest shipped-settings runs against its paper."""
    runs = shipped_runs(folder)
    if not runs:
        return "No recorded Omniglot runs yet.\n"
    lines = ["| algorithm | meta-steps | seeds | meta-test | best validation | validation slope, last third "
             "(points / 1,000 steps) | still rising? | paper (full Omniglot) | records |",
             "|---" * 9 + "|"]
    for algorithm in ALGORITHMS:
        if algorithm not in runs:
            continue
        longest = max(meta_steps(i) for i in runs[algorithm])
        items = [i for i in runs[algorithm] if meta_steps(i) == longest]
        points = mean_curve(items)
        b, ci = slope(points)
        paper = PAPER[algorithm]
        lines.append(f"| {ALGORITHM_NAMES[algorithm]} | {longest:,} | {len(items)} | {test_score(items)} | "
                     f"{max(points.values()):.1f} | {b:+.1f} ± {ci:.1f} | {verdict(b, ci)} | "
                     f"{'—' if paper is None else f'{paper[0]} ({paper[1]})'} | "
                     f"{', '.join(cite(i.record['id'], i.path) for i in items)} |")
    return "\n".join(lines) + "\n"


def figure(path: Path = FIGURE, folder: Path = RECORDS) -> None:
    """One panel per algorithm: every shipped-settings run's validation curve, the paper's line."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the figure is written to a file
    import matplotlib.pyplot as plt

    runs = shipped_runs(folder)
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), sharey=True)
    for ax, algorithm in zip(axes.flat, ALGORITHMS, strict=True):
        for item in runs.get(algorithm, []):
            points = curve(item)
            seed = item.record["config"].get("seed")
            ax.plot(list(points), list(points.values()), lw=1,
                    label=f"{meta_steps(item):,} meta-steps, seed {seed}")
        paper = PAPER[algorithm]
        if paper is not None:
            ax.axhline(paper[0], color="black", ls="--", lw=1)
            ax.text(0, paper[0] - 3.5, f"paper: {paper[0]} ({paper[1]})", fontsize=7)
        ax.set(title=ALGORITHM_NAMES[algorithm], xlabel="meta-step", ylim=(40, 100))
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation accuracy (%), 5-way 1-shot")
    fig.suptitle("Omniglot (242 characters), validation after adapting; "
                 "dashed: the paper's test figure on full Omniglot", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    log.info("wrote %s", path)


if __name__ == "__main__":
    figure_cli.main(__doc__, figure=figure, table=table, default_figure=FIGURE, name="omniglot_curves")
