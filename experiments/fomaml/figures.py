"""First-order against second-order MAML on Omniglot, drawn from the committed records.

    python experiments/fomaml/figures.py     # writes experiments/fomaml/curves.png

Left: validation accuracy after adapting against the meta-step, every MAML and first-order MAML
record of experiments/records/ (maml_omniglot, fomaml_omniglot), each named by what it changes.
Right: the query loss before adapting (the meta-weights' own predictions) on the training
episodes, log scale. With `against_higher.json` beside this script (against_higher.py), a
second figure `against_higher.png` overlays metalearn's and higher's first-order trajectories.
Needs matplotlib (the `notebook` extra).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORDS = HERE.parent / "records"
log = logging.getLogger("fomaml.figures")
# What an override means, in words (a legend names runs, not override strings).
WORDS = {"algorithm.transductive=true": "query normalised by its own statistics",
         "trainer.max_steps=4000": "4,000 meta-steps"}
IGNORED = ("experiment=", "extras.", "tags=", "algorithm.inner_lr=")  # the step is read from the config


def label(record: dict) -> str:
    """'FOMAML, seed 1, inner step 0.1' from a record's algorithm, config and overrides."""
    algorithm = (record.get("config") or {}).get("algorithm", {})
    parts = ["FOMAML" if algorithm.get("first_order") else "MAML", f"inner step {algorithm.get('inner_lr')}"]
    seed = 0
    for override in record.get("overrides") or []:
        if override.startswith("seed="):
            seed = int(override.split("=", 1)[1])
        elif not override.startswith(IGNORED):
            parts.append(WORDS.get(override, override))
    parts.insert(2, f"seed {seed}")
    return ", ".join(parts)


def curve(record_path: Path, name: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric from a record's metrics file."""
    record = json.loads(record_path.read_text())
    rows_file = record_path.parent / record["metric_rows"]["file"]
    steps, values = [], []
    with gzip.open(rows_file, "rt") as f:
        for row in csv.DictReader(f):
            if row["name"] == name and row["value"] not in ("", "nan"):
                steps.append(int(row["step"]))
                values.append(float(row["value"]))
    return steps, values


def records(experiments: tuple[str, ...] = ("maml_omniglot", "fomaml_omniglot")) -> list[Path]:
    """The completed, non-debug records of those experiments."""
    out = []
    for experiment in experiments:
        for path in sorted((RECORDS / experiment).glob("*.json")):
            record = json.loads(path.read_text())
            if record.get("status") == "completed" and not any(
                    str(o).lstrip("+").startswith("debug=") for o in record.get("overrides") or []):
                out.append(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, pre) = plt.subplots(1, 2, figsize=(13, 4.8))
    for path in records():
        record = json.loads(path.read_text())
        name = label(record)
        style = "-" if "FOMAML" not in name else "--"
        steps, values = curve(path, "val/acc")
        acc.plot(steps, [100 * v for v in values], style, marker=".", label=name)
        steps, values = curve(path, "train/query_loss_pre")
        pre.plot(steps, values, style, label=name)
    acc.set(xlabel="meta-step", ylabel="validation accuracy after adapting (%)",
            title="5-way 1-shot Omniglot, meta-validation (50 episodes)")
    pre.set(xlabel="meta-step", ylabel="query loss before adapting", yscale="log",
            title="the meta-weights' own predictions (training episodes)")
    pre.axhline(1.609, color="gray", lw=0.8)
    pre.text(0, 1.75, "ln 5: uniform over 5 classes", color="gray", fontsize=8)
    acc.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "curves.png", dpi=110)
    log.info("wrote %s", args.out / "curves.png")

    trajectory = HERE / "against_higher.json"
    if trajectory.is_file():
        data = json.loads(trajectory.read_text())
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
        # metalearn wide and pale under higher's thin dashed line: the two coincide
        styles = {"metalearn": {"lw": 4, "alpha": 0.4}, "higher": {"lw": 1, "ls": "--", "color": "black"}}
        for name, scores in data["curves"].items():
            steps = list(range(len(scores)))
            axes[0].plot(steps, [s["query_loss"] for s in scores], label=name, **styles.get(name, {}))
            axes[1].plot(steps, [s.get("query_loss_pre") for s in scores], label=name, **styles.get(name, {}))
        axes[0].set(xlabel="meta-step", ylabel="query loss after adapting",
                    title="first-order MAML: metalearn and higher")
        axes[1].set(xlabel="meta-step", ylabel="query loss before adapting", yscale="log")
        for ax in axes:
            ax.legend()
        fig.tight_layout()
        fig.savefig(args.out / "against_higher.png", dpi=110)
        log.info("wrote %s", args.out / "against_higher.png")


if __name__ == "__main__":
    main()
