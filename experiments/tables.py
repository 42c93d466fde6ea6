"""Results tables from the committed records (experiments/records/): one table per benchmark.

    python experiments/tables.py                    # print the tables
    python experiments/tables.py --write            # refresh them in experiments/README.md
    python experiments/tables.py --url URL          # from a registry instead of the records

A cell is every completed attempt of one experiment with the same overrides apart from
`seed` (and logging/path settings): with one seed, the mean of the objective's metric
(accuracy in %, or mean squared error) and its 95% interval over episodes; with several, the
mean over seeds and the Student t interval over the seeds' means. Debug runs (`debug=...`) are
left out. The benchmark is the first known benchmark in the experiment's name
(`reptile_omniglot_lake` -> omniglot), else its last part (`reptile_arsc` -> arsc). Test results
named `<metric>@<steps>` (the MSE after so many adaptation steps, written by
experiments/sinusoid.py) make the per-step table. Every row cites the records it comes from.
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from metalearn.algorithms.stats import seeds_ci95
from metalearn.registry import records as rec
from metalearn.registry.drift import describe, drift
from metalearn.registry.engine import default_url
from metalearn.registry.report import BENCHMARKS, benchmark, objective_of
from metalearn.registry.store import Store

HERE = Path(__file__).resolve().parent
README, RECORDS, TOP_README = HERE / "README.md", HERE / "records", HERE.parent / "README.md"
BLOCKS = {"tables": ("<!-- tables:begin -->", "<!-- tables:end -->"),
          "steps": ("<!-- sinusoid:begin -->", "<!-- sinusoid:end -->"),
          "studies": ("<!-- studies:begin -->", "<!-- studies:end -->")}
# A trial's overrides that are not its searched values: how it was launched and named.
NOT_SEARCHED = re.compile(r"^(hparams_search|study\.\w+|extras\..*|hydra/.*|hydra\..*)=")
RAN_WITH = "ran with: "  # a cell key's last item: values its command no longer gives
SUMMARY = ("<!-- results:begin -->", "<!-- results:end -->")  # in the top-level README, if there
DESCRIBED = {"acc": "accuracy (%)", "mse": "mean squared error"}
BETTER = {"max": "higher", "min": "lower"}
IGNORED = re.compile(r"^(seed|logger|tags|paths\..*|registry.*|callbacks\..*|hydra\..*|extras\..*)=")
STEP_METRIC = re.compile(r"^(?P<metric>\w+)@(?P<steps>\d+)$")
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


def cite(record_id: str, path: Path | None) -> str:
    """A record as a table cites it: the first 8 characters of its id, linked to its file."""
    short = record_id[:8]
    if path is None:
        return short
    try:
        return f"[{short}]({path.resolve().relative_to(HERE).as_posix()})"
    except ValueError:  # a records folder outside experiments/: no relative link
        return short


def _time(text: str | None) -> datetime | None:
    return None if text is None else rec.parse_time(text)


def shown(override: str, root: str | None, log_dir: str | None = None) -> str:
    """An override as a user types it from the project root (checkpoint paths relative to the
    recording run's project root, or under logs/ where they lay in the run's own log_dir;
    booleans in YAML's spelling, which a Hydra multirun's job overrides give as True / False)."""
    key, _, value = override.partition("=")
    if value in ("True", "False"):
        return f"{key}={value.lower()}"
    path = Path(value)
    if key == "ckpt_path" and path.is_absolute():
        if root and path.is_relative_to(root):
            return f"{key}={path.relative_to(root)}"
        if log_dir and path.is_relative_to(log_dir):
            return f"{key}={Path('logs') / path.relative_to(log_dir)}"
    return override


def cell_key(record: dict) -> tuple[str, tuple[str, ...]]:
    """What makes attempts the same cell: the experiment, its non-seed overrides and, where
    the experiment's defaults have changed since, the values it ran (a last `ran with: ...`)."""
    paths = (record.get("config") or {}).get("paths") or {}
    overrides = tuple(shown(o, paths.get("root_dir"), paths.get("log_dir"))
                      for o in record.get("overrides") or []
                      if not IGNORED.match(o) and not o.startswith("experiment="))
    experiment = record["experiment"] or "?"
    changed = drift(record["config"], experiment, overrides) if record.get("config") else {}
    return experiment, overrides + ((RAN_WITH + describe(changed),) if changed else ())


def command_text(experiment: str, overrides: tuple[str, ...]) -> str:
    """A cell's command in backticks, then the values it ran that its command now changes."""
    typed = [o for o in overrides if not o.startswith(RAN_WITH)]
    earlier = [o.removeprefix(RAN_WITH) for o in overrides if o.startswith(RAN_WITH)]
    command = "`" + " ".join([f"experiment={experiment}", *typed]) + "`"
    return command + "".join(f" (earlier defaults: {e})" for e in earlier)


def is_debug(record: dict) -> bool:
    """Whether the attempt was a debug run (`debug=...`), left out of the tables."""
    return any(o.startswith("debug=") for o in record.get("overrides") or [])


Cells = dict[tuple[str, tuple[str, ...]], list[dict]]


def collect(records: list[dict], debug: bool = False) -> Cells:
    """Completed attempts with test results of their objective's metric, grouped into cells."""
    cells: Cells = defaultdict(list)
    for r in records:
        if r["status"] != "completed" or (is_debug(r) and not debug):
            continue
        metric, mode = objective_of(r["config"])
        results = [t for t in r["test_results"] if t["metric"] == metric]
        if results:
            overall = tuple((r["metrics"].get(name) or {}).get("last")
                            for name in (f"test/{metric}", f"test/{metric}_ci95"))
            cells[cell_key(r)].append({**r, "results": results, "overall": overall,
                                       "metric": metric, "mode": mode})
    return cells


def summarize(attempts: list[dict]) -> dict:
    """Per-group and mean score of a cell, over episodes (one seed) or over seeds."""
    domains = sorted({r["group"] for a in attempts for r in a["results"]})
    per_domain, means = {}, []
    for d in domains:
        rows = [r for a in attempts for r in a["results"] if r["group"] == d]
        if len(attempts) == 1:
            per_domain[d] = (rows[0]["value"], _nan(rows[0]["ci95"]))
        else:
            per_domain[d] = seeds_ci95([r["value"] for r in rows])
    for a in attempts:  # the mean over all test episodes, as logged (test/<metric>)
        value, ci = a["overall"]
        if value is None:
            value, ci = sum(r["value"] for r in a["results"]) / len(a["results"]), None
        means.append((value, _nan(ci)))
    mean = means[0] if len(attempts) == 1 else seeds_ci95([m for m, _ in means])
    walls = [(_time(a["ended_at"]) - _time(a["started_at"])).total_seconds() for a in attempts
             if a["ended_at"] and a["started_at"]]
    hw = attempts[0]["hardware"]
    return {"domains": per_domain, "mean": mean, "seeds": len(attempts),
            "metric": attempts[0]["metric"], "mode": attempts[0]["mode"],
            "wall_min": sum(walls) / len(walls) / 60 if walls else float("nan"),
            "hardware": hardware(hw),
            "cites": [a["cite"] or a["id"][:8] for a in attempts]}


def hardware(hw: dict) -> str:
    """What a row ran on: accelerator names, else the CPU model and cores where recorded, else
    the host and the trainer's accelerator setting."""
    if hw.get("accelerators"):
        return " + ".join(hw["accelerators"])
    if hw.get("cpu"):
        return f"{hw['cpu']} ({hw.get('cpu_count') or '?'} cores)"
    return f"{hw.get('host') or '?'} ({hw.get('accelerator') or '?'})"


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def fmt(value: tuple[float, float], metric: str = "acc") -> str:
    """A score and its interval as the tables print it: accuracy in %, other metrics as they are."""
    score, ci = value
    scale, digits = (100, 1) if metric == "acc" else (1, 3)
    if ci != ci:  # NaN: no interval
        return f"{scale * score:.{digits}f}"
    return f"{scale * score:.{digits}f} ± {scale * ci:.{digits}f}"


# ---- the tables ---------------------------------------------------------------------------
def cells_by_benchmark(records: list[dict], debug: bool = False) -> dict[str, list[tuple]]:
    """(experiment, overrides, summary) of every cell, per benchmark, in print order."""
    by_bench: dict[str, list] = defaultdict(list)
    for (experiment, overrides), attempts in collect(records, debug).items():
        by_bench[benchmark(experiment)].append((experiment, overrides, summarize(attempts)))
    return {b: sorted(by_bench[b], key=lambda r: (r[0], r[1]))
            for b in sorted(by_bench, key=lambda b: (b not in BENCHMARKS, b))}


def tables(records: list[dict], debug: bool = False) -> str:
    """Markdown: a section per benchmark (every known one), a row per cell."""
    cells = cells_by_benchmark(records, debug)
    out = []
    for bench in dict.fromkeys([*BENCHMARKS, *cells]):
        rows = cells.get(bench, [])
        out.append(f"### {bench}\n")
        if not rows:
            out.append("No recorded attempts yet.\n")
        else:
            domains = sorted({d for _, _, s in rows for d in s["domains"]})
            metrics = sorted({(s["metric"], s["mode"]) for _, _, s in rows})
            out.append("Metric: " + "; ".join(f"{DESCRIBED.get(m, m)}, {BETTER[d]} is better"
                                              for m, d in metrics) + ".\n")
            out.append("| command | " + " | ".join(domains)
                       + " | mean | seeds | wall (min) | hardware | records |")
            out.append("|---" * (len(domains) + 6) + "|")
            for experiment, overrides, s in rows:
                m = s["metric"]
                values = [fmt(s["domains"][d], m) if d in s["domains"] else "—" for d in domains]
                out.append(f"| {command_text(experiment, overrides)} | " + " | ".join(values)
                           + f" | {fmt(s['mean'], m)} | {s['seeds']} | {s['wall_min']:.1f} | "
                           f"{s['hardware']} | {', '.join(s['cites'])} |")
            out.append("")
        if bench in PUBLISHED:
            out.append(f"Published: {PUBLISHED[bench]}\n")
    return "\n".join(out)


def step_rows(record: dict) -> dict[tuple[str, int], dict[int, dict]]:
    """The `<metric>@<steps>` test results of a record: (metric, shots) -> steps -> row."""
    found: dict[tuple[str, int], dict[int, dict]] = defaultdict(dict)
    for r in record["test_results"]:
        match = STEP_METRIC.match(r["metric"])
        if match:
            found[match["metric"], r["shots"]][int(match["steps"])] = r
    return found


def steps_table(records: list[dict]) -> str:
    """Markdown: per experiment (its newest completed, non-debug record with per-step results)
    and K, the metric after each number of adaptation steps, mean ± 95% interval over tasks."""
    newest: dict[str, dict] = {}
    for r in records:  # oldest first: a later record replaces an earlier one
        if r["status"] == "completed" and not is_debug(r) and step_rows(r):
            newest[r["experiment"] or "?"] = r
    if not newest:
        return "No recorded attempts with per-step results yet.\n"
    steps = sorted({s for r in newest.values() for by in step_rows(r).values() for s in by})
    metric = sorted({m for r in newest.values() for m, _ in step_rows(r)})[0]
    lines = ["| experiment | K | inner step | " + " | ".join(
        f"{metric.upper()} after {s} step{'s' * (s != 1)}" for s in steps) + " | record |",
        "|---" * (len(steps) + 4) + "|"]
    for experiment in sorted(newest):
        r = newest[experiment]
        inner = ((r.get("config") or {}).get("algorithm") or {}).get("inner_lr", "—")
        for (m, shots), by_steps in sorted(step_rows(r).items()):
            cells = [fmt((by_steps[s]["value"], _nan(by_steps[s]["ci95"])), m)
                     if s in by_steps else "—" for s in steps]
            lines.append(f"| `{experiment}` | {shots} | {inner} | " + " | ".join(cells)
                         + f" | {r['cite'] or r['id'][:8]} |")
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
            wall = ((_time(r["ended_at"]) - _time(r["started_at"])).total_seconds() / 60
                    if r["ended_at"] and r["started_at"] else float("nan"))
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
    """Whether a cell ran its benchmark as configured: no `data.*` override (other K, other
    test set) and not a meta-test of a checkpoint with other settings (`train=false`)."""
    return not any(o.startswith(("data.", "train=", "ckpt_path=")) for o in overrides)


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
    text = fill(text, *BLOCKS["steps"], steps_table(records), README)
    if BLOCKS["studies"][0] in text:
        text = fill(text, *BLOCKS["studies"], studies_table(records), README)
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
        print(steps_table(records))
        print(studies_table(records))
        return
    README.write_text(readme(README.read_text(), records))
    if TOP_README.is_file():
        TOP_README.write_text(top_readme(TOP_README.read_text(), records))


if __name__ == "__main__":
    main()
