"""Results tables from the committed records (experiments/records/), written into experiments/README.md.

    python experiments/tables.py                    # print the tables
    python experiments/tables.py --write            # refresh them in experiments/README.md
    python experiments/tables.py --url URL          # from a registry instead of the records

The document leads with one table, a row per benchmark and algorithm as configured; then the
same rows per domain, variants, meta-tests of a checkpoint at other settings and configurations
no command composes, per benchmark (which attempts make a row: result_rows.py). A row's score is,
with one seed, the mean of the objective's metric (accuracy in %, or mean squared error) and its
95% interval over episodes; with several, the mean over seeds and the Student t interval over the
seeds' means. Debug runs (`debug=...`) are left out. The benchmark is the first known benchmark
in the experiment's name (`reptile_omniglot_lake` -> omniglot), else its last part
(`reptile_arsc` -> arsc). Test results named `<metric>@<steps>` (the score after so many
adaptation steps, written by experiments/sinusoid.py or by a run with
`algorithm.eval_score_steps`) make the per-step table. Every row says which checkpoint its
meta-test scored (the best on meta-validation, or the last) and cites the records it comes from.
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import arsc_dev
import arsc_runs
import omniglot_curves
import support_set
from result_rows import (
    IGNORED,
    KINDS,
    RAN_WITH,
    SAME_SETTINGS,
    Row,
    cells_by_benchmark,
    cite,
    is_debug,
    nan_if_none,
    rows_by_benchmark,
    short_values,
    step_rows,
    tested_checkpoint,
    wall_minutes,
)

from metalearn.registry import records as rec
from metalearn.registry.engine import default_url
from metalearn.registry.report import BENCHMARKS, benchmark, objective_of
from metalearn.registry.store import Store

HERE = Path(__file__).resolve().parent
README, RECORDS, TOP_README = HERE / "README.md", HERE / "records", HERE.parent / "README.md"
BLOCKS = {"tables": ("<!-- tables:begin -->", "<!-- tables:end -->"),
          "steps": ("<!-- sinusoid:begin -->", "<!-- sinusoid:end -->"),
          "studies": ("<!-- studies:begin -->", "<!-- studies:end -->"),
          "curves": omniglot_curves.BLOCK,
          "support": support_set.BLOCK}
# A trial's overrides that are not its searched values: how it was launched and named.
NOT_SEARCHED = re.compile(r"^(hparams_search|study\.\w+|extras\..*|hydra/.*|hydra\..*)=")
SUMMARY = ("<!-- results:begin -->", "<!-- results:end -->")  # in the top-level README, if there
DESCRIBED = {"acc": "accuracy (%)", "mse": "mean squared error"}
BETTER = {"max": "higher", "min": "lower"}
LOWER = {"max": "", "min": ", lower is better"}  # accuracy needs no saying
TESTED = ("Tested checkpoint: the weights each meta-test scored, as the run's config chose them "
          "(result_rows.checkpoint_rule): `best val/...` is the checkpoint that scored best on "
          "meta-validation (`callbacks.model_checkpoint.monitor`), at the training step it was saved "
          "(one per seed where they differ); `last` is the weights at the end of training. A meta-test of a checkpoint "
          "says it of the run that trained it.")
# Published figures to stand beside each table (accuracy %, as the papers print them).
PUBLISHED = {
    "amazon": "none: \"Meta Learning the Huggingface Way\" reports no accuracy for its protocol.",
    "arsc": "ROBUSTTC-FSL 83.12 (Yu et al. 2018), Induction Networks 85.63 (Geng et al. 2019); "
            "always answering \"positive\" scores 78.14 on these 12 tasks.",
    "omniglot": "on full Omniglot (1,623 characters; ours has 242), 5-way 1-shot / 5-way 5-shot / "
                "20-way 1-shot / 20-way 5-shot: MAML 98.7 / 99.9 / 95.8 / 98.9 and first-order "
                "MAML 98.3 / 99.2 / 89.4 / 97.9 (Finn et al. 2017), Prototypical Networks "
                "98.8 / 99.7 / 96.0 / 98.9 (Snell et al. 2017, trained 60-way), Reptile "
                "97.68 / 99.48 / 89.43 / 97.12 (Nichol et al. 2018, transductive). Lake's 20 "
                "one-shot 20-way runs: people 95.5, Bayesian Program Learning 96.7 "
                "(Lake et al. 2015).",
    "sinusoid": "Finn et al. 2017 show curves, not a table: after one step of 0.01 on K = 10 "
                "points MAML's prediction follows the task's sine wave, and more steps improve "
                "it further; the joint-training baseline barely moves from the average of all "
                "tasks. Per step counts: below.",
}


# ---- the records ------------------------------------------------------------------------
def from_records(folder: Path = RECORDS) -> list[dict[str, Any]]:
    """Every committed record, checked, each with `cite`: its short id linked to its file."""
    if not folder.is_dir():
        return []
    return [{**item.record, "cite": cite(item.record["id"], item.path)}
            for item in rec.load_all([folder])]


def from_registry(url: str) -> list[dict[str, Any]]:
    """The records of a registry's completed attempts, made in memory (cited by short id)."""
    store = Store(url)
    attempts = reversed(store.list_attempts(status="completed"))
    return [{**rec.render(store, a["id"]).record, "cite": None} for a in attempts]


def command_text(experiment: str, overrides: tuple[str, ...]) -> str:
    """A cell's command in backticks, then the values it ran that its command composes otherwise."""
    typed = [o for o in overrides if not o.startswith(RAN_WITH)]
    ran = [o.removeprefix(RAN_WITH) for o in overrides if o.startswith(RAN_WITH)]
    command = "`" + " ".join(["metalearn train", f"experiment={experiment}", *typed]) + "`"
    return command + "".join(f" (ran with {short_values(e)})" for e in ran)


def settings_cell(label: str) -> str:
    """A meta-test row's settings: its overrides as code, else in words."""
    if label == SAME_SETTINGS:
        return label
    return f"`{label}`" if label else "as configured"


def fmt(value: tuple[float, float], metric: str = "acc") -> str:
    """A score and its interval as the tables print it: accuracy in %, other metrics as they are."""
    score, ci = value
    scale, digits = (100, 1) if metric == "acc" else (1, 3)
    if ci != ci:  # NaN: no interval
        return f"{scale * score:.{digits}f}"
    return f"{scale * score:.{digits}f} ± {scale * ci:.{digits}f}"


# ---- the tables ---------------------------------------------------------------------------
def algorithm_name(experiment: str) -> str:
    """An experiment's name less its benchmark: `reptile_omniglot_lake` -> `reptile lake`."""
    bench = benchmark(experiment)
    return " ".join(p for p in experiment.split("_") if p != bench) or experiment


def _best_first(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: -r.summary["mean"][0] if r.summary["mode"] == "max"
                  else r.summary["mean"][0])


def main_table(by_bench: dict[str, list[Row]]) -> list[str]:
    """One row per benchmark and algorithm: the experiment as configured, best first."""
    out = ["| benchmark | algorithm | command | score | metric | tested checkpoint | seeds | wall (min) "
           "| hardware | records |", "|---" * 10 + "|"]
    for bench, rows in by_bench.items():
        for row in _best_first([r for r in rows if r.kind == "default"]):
            s = row.summary
            out.append(f"| {bench} | {algorithm_name(row.experiment)} | `metalearn train "
                       f"experiment={row.experiment}` | {fmt(s['mean'], s['metric'])} | "
                       f"{DESCRIBED.get(s['metric'], s['metric'])}{LOWER[s['mode']]} | {row.tested} | "
                       f"{s['seeds']} | {s['wall_min']:.1f} | {s['hardware']} | {', '.join(s['cites'])} |")
    return out


def groups_of(rows: list[Row]) -> list[str]:
    """The test groups (domains, tasks) of rows, where a benchmark has more than one."""
    groups = sorted({g for r in rows for g in r.summary["domains"]})
    return groups if len(groups) > 1 else []


# the columns before the scores, per kind: (header, cell)
LEADING = {
    "default": (("algorithm",), lambda r: (algorithm_name(r.experiment),)),
    "variant": (("experiment", "overrides"),
                lambda r: (f"`{r.experiment}`", (f"`{r.label}`" if r.label else "none") + r.note)),
    "meta-test": (("experiment", "checkpoint", "settings"),
                  lambda r: (f"`{r.experiment}`", r.checkpoint, settings_cell(r.label))),
    "other": (("experiment", "differs from the experiment's config in"),
              lambda r: (f"`{r.experiment}`", f"`{r.label}`")),
}


def kind_table(rows: list[Row], kind: str, *, scores_only: bool = False) -> list[str]:
    """Markdown rows of one kind of one benchmark: the leading columns, each group's score, the
    mean and (unless scores_only) seeds, wall time and hardware, then the records."""
    heads, cells = LEADING[kind]
    heads = heads if scores_only else (*heads, "tested checkpoint")
    groups = groups_of(rows)
    tail = ("mean", "records") if scores_only else ("mean", "seeds", "wall (min)", "hardware", "records")
    out = ["| " + " | ".join([*heads, *groups, *tail]) + " |", "|---" * (len(heads) + len(groups) + len(tail)) + "|"]
    for row in rows:
        s, m = row.summary, row.summary["metric"]
        lead = cells(row) if scores_only else (*cells(row), row.tested)
        values = [fmt(s["domains"][g], m) if g in s["domains"] else "—" for g in groups]
        more = [] if scores_only else [str(s["seeds"]), f"{s['wall_min']:.1f}", s["hardware"]]
        out.append("| " + " | ".join([*lead, *values, fmt(s["mean"], m), *more,
                                      ", ".join(s["cites"])]) + " |")
    return out


SECTION_TEXT = {
    "default": ("## Per domain",
                "The rows of the table above, score per held-out domain or task."),
    "variant": ("## Variants",
                "`metalearn train experiment=<experiment> <overrides>` repeats a row: the fewest "
                "overrides found that compose the configuration its records ran (checked against "
                "the configs by `metalearn.registry.drift`; the records keep the command each was "
                "started with). Long decimals are shown to four significant digits; `seed N again` is "
                "a second run of a seed that another row holds."),
    "meta-test": ("## Meta-tests of a checkpoint",
                  "A checkpoint meta-tested again (`train=false ckpt_path=...`) with other "
                  "settings: other K (`data.shots`), test-time steps or checks. `checkpoint` is "
                  "the record of the run that trained it; `settings` are the values that differ "
                  "from that run's, among those a meta-test reads (not the outer optimizer, its "
                  "schedule or the meta-training sampler)."),
    "other": ("## Other configurations",
              "Runs for which no searched command composes the configuration they ran: the second "
              "column lists the values each ran where the experiment's config differs."),
}


def tables(records: list[dict], debug: bool = False) -> str:
    """Markdown: the main table (one row per benchmark and algorithm as configured), then per
    domain, variants, meta-tests of checkpoints and other configurations, each per benchmark."""
    by_bench = rows_by_benchmark(records, debug)
    out = [*main_table(by_bench), "", TESTED, ""]
    missing = [b for b in BENCHMARKS if not any(r.kind == "default" for r in by_bench.get(b, []))]
    if missing:
        out += [f"No record of an experiment as configured: {', '.join(missing)}.", ""]
    out += ["Published figures:", ""]
    out += [f"- {bench}: {text}" for bench, text in PUBLISHED.items()] + [""]
    for kind in KINDS:
        per_bench = {b: [r for r in rows if r.kind == kind] for b, rows in by_bench.items()}
        if kind == "default":
            per_bench = {b: _best_first(rows) for b, rows in per_bench.items() if groups_of(rows)}
        per_bench = {b: rows for b, rows in per_bench.items() if rows}
        if not per_bench:
            continue
        heading, text = SECTION_TEXT[kind]
        out += [heading, "", text, ""]
        for bench, rows in per_bench.items():
            out += [f"### {bench}", "", *kind_table(rows, kind, scores_only=kind == "default"), ""]
    return "\n".join(out)


def sinusoid_records(records: list[dict]) -> list[dict]:
    """The sinusoid benchmark's records: the per-step table of its section (the classification
    runs' per-step scores are read by experiments/support_set.py)."""
    return [r for r in records if benchmark(r["experiment"] or "?") == "sinusoid"]


def training_budget(record: dict) -> tuple[int | None, int | None]:
    """(meta-training steps, tasks per step) from a record's config; None where unrecorded."""
    config = record.get("config") or {}
    return ((config.get("trainer") or {}).get("max_steps"), (config.get("data") or {}).get("meta_batch_size"))


def steps_table(records: list[dict]) -> str:
    """Markdown: per experiment and meta-training budget (its newest completed, non-debug record
    with per-step results), K and group, the metric after each number of adaptation steps, mean
    ± 95% interval over tasks, and the checkpoint tested. K names its group where that is not
    `K=<shots>`; one experiment trained at two budgets (steps x tasks per step) gives two rows."""
    newest: dict[tuple, dict] = {}
    for r in records:  # oldest first: a later record replaces an earlier one
        if r["status"] == "completed" and not is_debug(r) and step_rows(r):
            steps, tasks = training_budget(r)
            newest[r["experiment"] or "?", steps or 0, tasks or 0] = r
    if not newest:
        return "No recorded attempts with per-step results yet.\n"
    steps = sorted({s for r in newest.values() for by in step_rows(r).values() for s in by})
    metric = sorted({m for r in newest.values() for m, _, _ in step_rows(r)})[0]
    lines = ["| experiment | K | inner step | meta-training (steps × tasks) | " + " | ".join(
        f"{metric.upper()} after {s} step{'s' * (s != 1)}" for s in steps) + " | tested checkpoint | record |",
        "|---" * (len(steps) + 6) + "|"]
    for key in sorted(newest):
        r = newest[key]
        algorithm = (r.get("config") or {}).get("algorithm") or {}
        inner = algorithm.get("eval_inner_lr") or algorithm.get("inner_lr", "—")
        budget = " × ".join("?" if n is None else f"{n:,}" for n in training_budget(r))
        tested = tested_checkpoint([r], records)
        for (m, shots, group), by_steps in sorted(step_rows(r).items()):
            cells = [fmt((by_steps[s]["value"], nan_if_none(by_steps[s]["ci95"])), m)
                     if s in by_steps else "—" for s in steps]
            k = shots if group == f"K={shots}" else f"{shots} ({group})"
            lines.append(f"| `{key[0]}` | {k} | {inner} | {budget} | " + " | ".join(cells)
                         + f" | {tested} | {r['cite'] or r['id'][:8]} |")
    return "\n".join(lines) + "\n"


def studies_table(records: list[dict]) -> str:
    """Markdown: per sweep study (`hparams_search=...`), its trials in order with the values
    each tried, the best validation value of the optimized metric, and the wall time."""
    studies: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("study") is not None and r.get("trial") is not None and not is_debug(r):
            studies[r["study"]].append(r)
    if not studies:
        return "No recorded studies yet.\n"
    out = []
    for name in sorted(studies):
        trials = sorted(studies[name], key=lambda r: (r["trial"], r["created_at"]))
        config = trials[0].get("config") or {}
        metric = config.get("optimized_metric") or "?"
        _, mode = objective_of(config)
        searched = sorted({o.split("=", 1)[0] for r in trials for o in r.get("overrides") or []
                           if "=" in o and not NOT_SEARCHED.match(o) and not IGNORED.match(o)})
        out += [f"**Study `{name}`**: {len(trials)} trials, `{metric}` "
                f"({BETTER[mode]} is better), best value over each trial's validations.", "",
                "| trial | " + " | ".join(f"`{k}`" for k in searched) + f" | {metric} | "
                "before adapting (last) | wall (min) | record |",
                "|---" * (len(searched) + 5) + "|"]
        best, walls = None, 0.0
        for r in trials:
            given = dict(o.split("=", 1) for o in r.get("overrides") or [] if "=" in o)
            summary_ = (r.get("metrics") or {}).get(metric) or {}
            value = summary_.get("max" if mode == "max" else "min")
            wall = wall_minutes(r)
            walls += 0.0 if wall != wall else wall
            if value is not None and r["status"] == "completed" and (
                    best is None or (value > best[0] if mode == "max" else value < best[0])):
                best = (value, r["trial"])
            shown_value = "—" if value is None else f"{value:.4f}"
            pre = ((r.get("metrics") or {}).get(f"{metric}_pre") or {}).get("last")
            shown_pre = "—" if pre is None else f"{pre:.4f}"
            if r["status"] != "completed":
                shown_value += f" ({r['status']})"
            out.append(f"| {r['trial']} | " + " | ".join(_short(given.get(k, "—")) for k in searched)
                       + f" | {shown_value} | {shown_pre} | {wall:.1f} | {r['cite'] or r['id'][:8]} |")
        if best is not None:
            out += ["", f"Best: trial {best[1]} ({best[0]:.4f}); {walls:.0f} minutes of trials in "
                    "all (wall time of each, summed)."]
        out.append("")
    return "\n".join(out)


def _short(value: str) -> str:
    """A searched value as a table shows it: floats to 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.4g}"


def own_protocol(overrides: tuple[str, ...]) -> bool:
    """Whether a cell ran its benchmark as configured: no `data.*` or `benchmark=` override
    (other K, other test set, another protocol) and not a meta-test of a checkpoint with other
    settings (`train=false`)."""
    return not any(o.startswith(("data.", "benchmark=", "train=", "ckpt_path=")) for o in overrides)


def reproduces(overrides: tuple[str, ...]) -> bool:
    """Whether a cell's command still runs what it recorded (no default changed since)."""
    return not any(o.startswith(RAN_WITH) for o in overrides)


def summary(records: list[dict]) -> str:
    """Markdown for the top-level README: the best recorded cell of each benchmark, among those
    that ran the benchmark's own protocol and, where any does, whose command still runs it."""
    lines = ["| benchmark | best recorded command | score | records |", "|---|---|---|---|"]
    for bench, cells in cells_by_benchmark(records).items():
        rows = [r for r in cells if own_protocol(r[1])]
        rows = [r for r in rows if reproduces(r[1])] or rows
        if bench not in BENCHMARKS or not rows:
            continue
        _, _, s0 = rows[0]
        pick = max if s0["mode"] == "max" else min
        experiment, overrides, s = pick(rows, key=lambda r: r[2]["mean"][0])
        cites = ", ".join(c.replace("](records/", "](experiments/records/") for c in s["cites"])
        lines.append(f"| {bench} | {command_text(experiment, overrides)} | {fmt(s['mean'], s['metric'])} "
                     f"{DESCRIBED.get(s['metric'], s['metric'])} | {cites} |")
    if len(lines) == 2:
        return ("No recorded results yet: see [experiments/README.md](experiments/README.md) "
                "for how rows get there.\n")
    return "\n".join(lines) + "\n\nAll rows, per-domain figures and the published ones beside " \
        "them: [experiments/README.md](experiments/README.md).\n"


# ---- the READMEs ------------------------------------------------------------------------------
def fill(text: str, begin: str, end: str, body: str, where: Path) -> str:
    """text with the block between the begin and end markers replaced by body."""
    if begin not in text or end not in text:
        raise SystemExit(f"{where} has no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{body}{end}{rest.split(end, 1)[1]}"


def readme(text: str, records: list[dict]) -> str:
    """experiments/README.md with its tables made from records."""
    text = fill(text, *BLOCKS["tables"], tables(records) + "\n", README)
    text = fill(text, *BLOCKS["steps"], steps_table(sinusoid_records(records)), README)
    if BLOCKS["studies"][0] in text:
        text = fill(text, *BLOCKS["studies"], studies_table(records), README)
    if support_set.BLOCK[0] in text:
        text = fill(text, *support_set.BLOCK, support_set.table(records), README)
    if arsc_runs.BLOCK[0] in text:  # read from the record files: it needs their metric rows
        text = fill(text, *arsc_runs.BLOCK, arsc_runs.table(), README)
    if arsc_dev.BLOCK[0] in text:
        text = fill(text, *arsc_dev.BLOCK, arsc_dev.table(records), README)
    if omniglot_curves.BLOCK[0] in text:  # read from the record files: it needs their metric rows
        text = fill(text, *omniglot_curves.BLOCK, omniglot_curves.table(), README)
    return text


def top_readme(text: str, records: list[dict]) -> str:
    """The top-level README with its results summary from records (unchanged if it has none)."""
    if SUMMARY[0] not in text:
        return text
    return fill(text, *SUMMARY, summary(records), TOP_README)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, default=RECORDS, help="records folder")
    parser.add_argument("--url", default=None, help="read a registry instead of the records")
    parser.add_argument("--write", action="store_true",
                        help=f"refresh the tables in {README} (and the summary in {TOP_README})")
    parser.add_argument("--debug", action="store_true", help="include debug=... runs")
    args = parser.parse_args()
    if args.url and args.write:
        raise SystemExit("--write takes the committed records only: a table cites files that "
                         "a clone has (export the attempts first: metalearn runs export)")
    records = from_registry(args.url or default_url()) if args.url else from_records(args.records)
    if not args.write:
        print(tables(records, args.debug))
        print(steps_table(sinusoid_records(records)))
        print(studies_table(records))
        return
    README.write_text(readme(README.read_text(), records))
    if TOP_README.is_file():
        TOP_README.write_text(top_readme(TOP_README.read_text(), records))


if __name__ == "__main__":
    main()
