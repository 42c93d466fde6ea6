"""Every ARSC meta-training run: what it changed, its validation curve and its meta-test.

    python experiments/arsc_runs.py         # writes experiments/arsc_runs.png
    python experiments/tables.py --write    # the table between the arsc-runs markers

Reads the committed records of every `<algorithm>_arsc` run that meta-trained (not the meta-tests
of a checkpoint), with their metric rows. Per run: the overrides it was started with (the lever it
tries; `data.steps_per_epoch` sets how often it validates), meta-steps and tasks per step, the
layers it adapts, its best validation score and step (the checkpoint the meta-test scores), and
the meta-test: the unweighted mean over the 12 target tasks, the number the papers report. The
figure draws each run's validation curve and each meta-test against its meta-steps, beside the
published figures. A run that restored another's checkpoint and trained on (`ckpt_path` with
training on) counts that run's steps as its own: its curve begins with them, its wall time adds
theirs. Needs matplotlib for the figure (the `notebook` extra); the table needs only
the records.
"""
from __future__ import annotations

import logging
from pathlib import Path

import figure_cli
from result_rows import (
    ALGORITHM_NAMES,
    RAN_WITH,
    cell_key,
    cite,
    hardware,
    is_debug,
    percent_curve,
    resumed_at,
    resumed_from,
    short_values,
    trains,
    wall_minutes,
)

from metalearn.intervals import seeds_ci95
from metalearn.registry import records as rec
from metalearn.registry.drift import composed
from metalearn.registry.report import benchmark

HERE = Path(__file__).resolve().parent
RECORDS, FIGURE = HERE / "records", HERE / "arsc_runs.png"
BLOCK = ("<!-- arsc-runs:begin -->", "<!-- arsc-runs:end -->")
# mean accuracy (%) over the 12 target tasks
PUBLISHED = {"Induction Networks (Geng et al. 2019)": 85.63, "ROBUSTTC-FSL (Yu et al. 2018)": 83.12,
             'always "positive"': 78.14}
# the run every lever is compared with, task by task: this experiment as configured, same seed
REFERENCE = "fomaml_arsc"
log = logging.getLogger("arsc_runs")


def training_runs(folder: Path = RECORDS) -> list[rec.Loaded]:
    """Completed, non-debug ARSC records that meta-trained, with their metric rows."""
    found = []
    for path in sorted(folder.glob("*_arsc/*.json")):
        item = rec.load(path, with_rows=True)
        r = item.record
        if (r["status"] == "completed" and not is_debug(r) and trains(r)
                and benchmark(r["experiment"] or "?") == "arsc" and "test/acc" in r["metrics"]):
            found.append(item)
    return found


def val_curve(item: rec.Loaded) -> dict[int, float]:
    """Validation accuracy (%) by meta-step (the rows' steps count from 0: step 74 is the 75th)."""
    return percent_curve(item.rows, "val/acc", shift=1)


def full_curve(item: rec.Loaded, items: list[rec.Loaded]) -> dict[int, float]:
    """A run's validation curve from step 1: a resumed run's starts with the steps its parent ran."""
    parent = resumed_from(item.record, [i.record for i in items])
    if parent is None:
        return val_curve(item)
    start = resumed_at(item.record, parent) or 0
    before = next(i for i in items if i.record is parent)
    return {**{s: v for s, v in full_curve(before, items).items() if s <= start}, **val_curve(item)}


def wall(record: dict, records: list[dict]) -> float:
    """Minutes of meta-training behind a run: a resumed run's and its parents'."""
    parent = resumed_from(record, records)
    return wall_minutes(record) + (0 if parent is None else wall(parent, records))


def test_mean(record: dict) -> tuple[float, float]:
    """The meta-test's mean over the 12 tasks and its interval, in %."""
    m = record["metrics"]
    return 100 * m["test/acc"]["last"], 100 * (m.get("test/acc_ci95") or {}).get("last", float("nan"))


def task_scores(record: dict) -> dict[str, float]:
    """Accuracy (%) per target task after the configured test-time steps (not the `acc@<steps>` rows)."""
    return {r["group"]: 100 * r["value"] for r in record["test_results"] if r["metric"] == "acc"}


def against_configured(record: dict, records: list[dict]) -> tuple[float, float] | None:
    """The mean over the 12 tasks of (this run - `fomaml_arsc` as configured, same seed) in points,
    with its Student t interval: the tasks differ by 20 points by threshold, so a lever shows
    against the same tasks, not against the spread of the 12. None for the reference itself or
    where no configured run of that seed scored the same tasks."""
    seed = (record.get("config") or {}).get("seed")
    mine = task_scores(record)
    if not mine or (record["experiment"] == REFERENCE and not cell_key(record)[1]):
        return None
    for other in records:
        if (other is not record and other["experiment"] == REFERENCE and not cell_key(other)[1]
                and (other.get("config") or {}).get("seed") == seed and task_scores(other).keys() == mine.keys()):
            theirs = task_scores(other)
            return seeds_ci95([mine[task] - theirs[task] for task in sorted(mine)])
    return None


def label(record: dict, records: list[dict] = ()) -> str:
    """The run's overrides as typed (or `as configured`), then the values it ran where the
    experiment's config composes others today; a resumed run names the run it continued in
    place of the local checkpoint path."""
    key = cell_key(record)[1]
    given = [o for o in key if not o.startswith((RAN_WITH, "ckpt_path="))]
    ran = [o.removeprefix(RAN_WITH) for o in key if o.startswith(RAN_WITH)]
    text = f"`{short_values(' '.join(given))}`" if given else "as configured"
    parent = resumed_from(record, list(records))
    if parent is not None:
        text += f", resumed from step {resumed_at(record, parent)} of {parent['id'][:8]}"
    return text + "".join(f" (ran with {short_values(e)})" for e in ran)


def in_words(record: dict, records: list[dict] = ()) -> str:
    """A run as a legend names it, from the config it ran: the algorithm (with Reptile's outer
    optimizer, which its variants differ in), adapted layers, the inner step, tasks per step,
    meta-steps, seed, record."""
    config = record["config"]
    algorithm = (record["experiment"] or "?").split("_")[0]
    name = ALGORITHM_NAMES.get(algorithm, algorithm)
    if algorithm == "reptile":
        outer = str(((config.get("algorithm") or {}).get("optimizer") or {}).get("_target_", "?")).rsplit(".", 1)[-1]
        name += f" ({outer} outer step)"
    layers = config["model"].get("trainable_layers", "?")
    adapted = "whole encoder" if layers == "all" else f"top {layers} layer{'s' * (layers != 1)}"
    inner = (config.get("algorithm") or {}).get("inner_lr")
    step = "" if inner is None else f", inner step {inner:g}"  # ProtoNets have none
    configured = (composed(REFERENCE, ()) or {}).get("data", {}).get("max_length")
    length = config["data"].get("max_length", configured)
    words = "" if length == configured else f", {length} word pieces"  # reviews cut elsewhere
    parent = resumed_from(record, list(records))
    resumed = "" if parent is None else f" ({resumed_at(record, parent)} of them in {parent['id'][:8]})"
    return (f"{name}, {adapted}{step}{words}, {config['data']['meta_batch_size']} tasks x "
            f"{config['trainer']['max_steps']:,} steps{resumed}, seed {config.get('seed', '?')} [{record['id'][:8]}]")


def table(folder: Path = RECORDS) -> str:
    """Markdown: one row per ARSC meta-training run, best meta-test first."""
    runs = sorted(training_runs(folder), key=lambda i: -test_mean(i.record)[0])
    if not runs:
        return "No recorded ARSC meta-training runs yet.\n"
    lines = ["| experiment | overrides | seed | meta-steps x tasks | adapted layers | best validation (step) "
             f"| meta-test, mean of 12 tasks | task by task against `{REFERENCE}` as configured, same seed "
             "| wall (min) | hardware | record |", "|---" * 11 + "|"]
    records = [item.record for item in runs]
    for item in runs:
        r, config = item.record, item.record["config"]
        curve = full_curve(item, runs)
        best = max(curve, key=lambda s: (curve[s], -s)) if curve else None
        score, ci = test_mean(r)
        paired = against_configured(r, records)
        lines.append(
            f"| `{r['experiment']}` | {label(r, records)} | {config.get('seed', '?')} | "
            f"{config['trainer']['max_steps']:,} x "
            f"{config['data']['meta_batch_size']} | {config['model'].get('trainable_layers', '?')} | "
            + (f"{curve[best]:.1f} ({best})" if best else "—")
            + f" | {score:.1f} ± {ci:.1f} | " + ("—" if paired is None else f"{paired[0]:+.1f} ± {paired[1]:.1f}")
            + f" | {wall(r, records):.0f} | {hardware(r.get('hardware') or {})} | "
            f"{cite(r['id'], item.path)} |")
    return "\n".join(lines) + "\n"


def figure(path: Path = FIGURE, folder: Path = RECORDS) -> None:
    """Left: every run's validation curve. Right: every meta-test against meta-steps."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the figure is written to a file
    import matplotlib.pyplot as plt

    runs = training_runs(folder)
    records = [item.record for item in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 7.5))
    colors = plt.get_cmap("tab20").colors  # one colour a run: more runs than the default cycle's 10
    for i, item in enumerate(runs):
        r = item.record
        name = in_words(r, records)
        curve = full_curve(item, runs)
        line, = left.plot(list(curve), list(curve.values()), marker="o", ms=3, lw=1, label=name,
                          color=colors[i % len(colors)])
        score, ci = test_mean(r)
        shift = 2 * (i - len(runs) / 2)  # runs of one length side by side (in meta-steps), not on top
        right.errorbar([r["config"]["trainer"]["max_steps"] + shift], [score], yerr=[ci], fmt="o",
                       color=line.get_color(), capsize=3, label=name)
    for text, value in PUBLISHED.items():
        right.axhline(value, color="black", ls="--", lw=0.8)
        right.text(0.01, value + 0.2, f"{text}: {value}", fontsize=7, transform=right.get_yaxis_transform())
    left.set(title="validation (one episode per training task's .dev file)", xlabel="meta-step",
             ylabel="accuracy (%)")
    right.set(title="meta-test: mean of the 12 target tasks, 95% interval", xlabel="meta-steps trained",
              ylabel="accuracy (%)")
    fig.legend(*left.get_legend_handles_labels(), fontsize=7, loc="lower center", ncol=2)
    fig.tight_layout(rect=(0, 0.25, 1, 1))  # the legend below both panels
    fig.savefig(path, dpi=100)
    log.info("wrote %s", path)


if __name__ == "__main__":
    figure_cli.main(__doc__, figure=figure, table=table, default_figure=FIGURE, name="arsc_runs")
