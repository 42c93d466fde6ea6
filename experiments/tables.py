"""Results tables from the run registry: one markdown table per benchmark.

    python experiments/tables.py                    # print the tables
    python experiments/tables.py --write            # refresh them in experiments/README.md

A cell is every completed attempt of one experiment with the same overrides apart from
`seed` (and logging/path settings): with one seed, the mean of the objective's metric
(accuracy in %, or mean squared error) and its 95% interval over episodes; with several, the
mean over seeds and the Student t interval over the seeds' means. Debug runs (`debug=...`) are
left out. The benchmark is the first known benchmark in the
experiment's name (`reptile_omniglot_lake` -> omniglot), else its last part (`reptile_arsc` -> arsc).
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

from metalearn.algorithms.stats import seeds_ci95
from metalearn.registry.engine import default_url, find_project_root
from metalearn.registry.report import BENCHMARKS, benchmark, objective_of
from metalearn.registry.store import Store

README = Path(__file__).with_name("README.md")
BEGIN, END = "<!-- tables:begin -->", "<!-- tables:end -->"
DESCRIBED = {"acc": "accuracy (%)", "mse": "mean squared error"}
BETTER = {"max": "higher", "min": "lower"}
IGNORED = re.compile(r"^(seed|logger|paths\..*|registry.*|callbacks\..*|hydra\..*)=")
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
                "tasks. Per step counts: experiments/sinusoid.py.",
}


def shown(override: str, root: Path) -> str:
    """An override as a user types it from the project root (checkpoint paths relative)."""
    key, _, value = override.partition("=")
    if key == "ckpt_path" and Path(value).is_absolute() and Path(value).is_relative_to(root):
        return f"{key}={Path(value).relative_to(root)}"
    return override


def cell_key(attempt: dict, root: Path) -> tuple[str, tuple[str, ...]]:
    """What makes attempts the same cell: the experiment and its non-seed overrides."""
    overrides = tuple(shown(o, root) for o in attempt.get("overrides") or []
                      if not IGNORED.match(o) and not o.startswith("experiment="))
    return attempt["experiment"] or "?", overrides


def collect(store: Store, debug: bool = False) -> dict[tuple[str, tuple[str, ...]], list[dict]]:
    """Completed attempts with test results, grouped into cells."""
    cells: dict[tuple[str, tuple[str, ...]], list[dict]] = defaultdict(list)
    root = find_project_root()  # checkpoint paths are shown relative to it
    for a in reversed(store.list_attempts(status="completed", with_config=True)):
        if not debug and any(o.startswith("debug=") for o in a.get("overrides") or []):
            continue
        metric, mode = objective_of(a["config"])
        results = [r for r in store.test_results(a["id"]) if r["metric"] == metric]
        if results:
            overall = tuple(store.final_values(name, [a["id"]]).get(a["id"])
                            for name in (f"test/{metric}", f"test/{metric}_ci95"))
            cells[cell_key(a, root)].append({**a, "results": results, "overall": overall,
                                             "metric": metric, "mode": mode})
    return cells


def summarize(attempts: list[dict]) -> dict:
    """Per-group and mean score of a cell, over episodes (one seed) or over seeds."""
    domains = sorted({r["group"] for a in attempts for r in a["results"]})
    per_domain, means = {}, []
    for d in domains:
        rows = [r for a in attempts for r in a["results"] if r["group"] == d]
        if len(attempts) == 1:
            per_domain[d] = (rows[0]["value"], rows[0]["ci95"])
        else:
            per_domain[d] = seeds_ci95([r["value"] for r in rows])
    for a in attempts:  # the mean over all test episodes, as logged (test/<metric>)
        value, ci = a["overall"]
        if value is None:
            value, ci = sum(r["value"] for r in a["results"]) / len(a["results"]), None
        means.append((value, float("nan") if ci is None else ci))
    mean = means[0] if len(attempts) == 1 else seeds_ci95([m for m, _ in means])
    walls = [(a["ended_at"] - a["started_at"]).total_seconds() for a in attempts
             if a["ended_at"] and a["started_at"]]
    cfg = attempts[0].get("config") or {}
    trainer = cfg.get("trainer") or {}
    return {"domains": per_domain, "mean": mean, "seeds": len(attempts),
            "metric": attempts[0]["metric"], "mode": attempts[0]["mode"],
            "wall_min": sum(walls) / len(walls) / 60 if walls else float("nan"),
            "hardware": f"{attempts[0].get('host') or '?'} ({trainer.get('accelerator', '?')})",
            "ids": [a["id"] for a in attempts]}


def fmt(value: tuple[float, float], metric: str = "acc") -> str:
    """A score and its interval as the tables print it: accuracy in %, other metrics as they are."""
    score, ci = value
    scale, digits = (100, 1) if metric == "acc" else (1, 3)
    if ci != ci:  # NaN: no interval
        return f"{scale * score:.{digits}f}"
    return f"{scale * score:.{digits}f} ± {scale * ci:.{digits}f}"


def tables(store: Store, debug: bool = False) -> str:
    """Markdown: a table per benchmark, a row per cell (debug runs too if `debug`)."""
    by_bench: dict[str, list] = defaultdict(list)
    for (experiment, overrides), attempts in collect(store, debug).items():
        by_bench[benchmark(experiment)].append((experiment, overrides, summarize(attempts)))
    out = []
    for bench in sorted(by_bench, key=lambda b: (b not in BENCHMARKS, b)):
        rows = sorted(by_bench[bench], key=lambda r: (r[0], r[1]))
        domains = sorted({d for _, _, s in rows for d in s["domains"]})
        metrics = sorted({(s["metric"], s["mode"]) for _, _, s in rows})
        out.append(f"### {bench}\n")
        out.append("Metric: " + "; ".join(f"{DESCRIBED.get(m, m)}, {BETTER[d]} is better"
                                          for m, d in metrics) + ".\n")
        out.append("| command | " + " | ".join(domains) + " | mean | seeds | wall (min) | hardware | attempts |")
        out.append("|---" * (len(domains) + 6) + "|")
        for experiment, overrides, s in rows:
            command = " ".join([f"experiment={experiment}", *overrides])
            m = s["metric"]
            cells = [fmt(s["domains"][d], m) if d in s["domains"] else "—" for d in domains]
            out.append(f"| `{command}` | " + " | ".join(cells)
                       + f" | {fmt(s['mean'], m)} | {s['seeds']} | {s['wall_min']:.1f} | "
                       f"{s['hardware']} | {', '.join(map(str, s['ids']))} |")
        out.append("")
        if bench in PUBLISHED:
            out.append(f"Published: {PUBLISHED[bench]}\n")
    return "\n".join(out) if out else "(no completed attempts with test results)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="registry URL (default: the project's SQLite)")
    parser.add_argument("--write", action="store_true", help=f"refresh the tables in {README}")
    parser.add_argument("--debug", action="store_true", help="include debug=... runs")
    args = parser.parse_args()
    text = tables(Store(args.url or default_url()), args.debug)
    if not args.write:
        print(text)
        return
    readme = README.read_text()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{README} has no {BEGIN} ... {END} markers")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
