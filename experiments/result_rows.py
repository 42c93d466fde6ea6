"""The rows of the results tables: which committed attempts share a row, and what the row says.

A cell is every completed attempt of one experiment with the same typed overrides apart from
`seed` (and logging/path settings), plus the values it ran where its command composes others
(`metalearn.registry.drift`); the top README's summary ranks cells. A row of experiments/README.md
is one configuration: attempts whose config the same command composes, one per seed, placed as
the experiment as configured, a variant (the fewest overrides found that compose it), a
meta-test of a checkpoint (the settings that differ from the run that trained it), or another
configuration (no searched command composes it).
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from metalearn.conf import CONFIG_DIR
from metalearn.intervals import seeds_ci95
from metalearn.registry import records as rec
from metalearn.registry.drift import ABSENT, HOW_NOT_WHAT, Call, composed, describe, drift, is_derived, leaves
from metalearn.registry.drift import SECTIONS as DRIFT_SECTIONS
from metalearn.registry.report import BENCHMARKS, benchmark, objective_of
from metalearn.registry.store import is_debug as debug_overrides

EXPERIMENTS = Path(__file__).resolve().parent  # a table links records relative to it
STEP_METRIC = re.compile(r"^(?P<metric>\w+)@(?P<steps>\d+)$")  # acc@1, mse@10: a score after 1 or 10 steps
RAN_WITH = "ran with: "  # a cell key's last item: values its command composes otherwise
IGNORED = re.compile(r"^(seed|logger|tags|paths\..*|registry.*|callbacks\..*|hydra\..*|extras\..*)=")


def utc_time(text: str | None) -> datetime | None:
    """A record's `...Z` time as a naive UTC datetime; None for None."""
    return None if text is None else rec.parse_time(text)


# An algorithm as the text and the figures name it.
ALGORITHM_NAMES = {"protonet": "ProtoNets", "finetune": "fine-tuning", "maml": "MAML", "anil": "ANIL",
                   "fomaml": "first-order MAML", "reptile": "Reptile", "metasgd": "Meta-SGD"}


def percent_curve(rows: list[dict] | None, name: str, *, shift: int = 0) -> dict[int, float]:
    """A metric's recorded rows (fractions) as percent by step plus `shift`; missing and
    non-finite values left out."""
    return {int(row["step"]) + shift: 100 * float(row["value"]) for row in rows or []
            if row["name"] == name and row["value"] is not None and math.isfinite(float(row["value"]))}


def wall_minutes(record: dict) -> float:
    """How long an attempt ran, start to end, in minutes; NaN where a time is missing."""
    start, end = utc_time(record.get("started_at")), utc_time(record.get("ended_at"))
    return (end - start).total_seconds() / 60 if start and end else float("nan")


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
    the experiment's config composes other values, the values it ran (a last `ran with: ...`)."""
    paths = (record.get("config") or {}).get("paths") or {}
    overrides = tuple(shown(o, paths.get("root_dir"), paths.get("log_dir"))
                      for o in record.get("overrides") or []
                      if not IGNORED.match(o) and not o.startswith("experiment="))
    experiment = record["experiment"] or "?"
    changed = drift(record["config"], experiment, overrides) if record.get("config") else {}
    return experiment, overrides + ((RAN_WITH + describe(changed),) if changed else ())


def is_debug(record: dict) -> bool:
    """Whether the attempt was a debug run, left out of the tables: the registry's rule, which
    `metalearn runs best` and `runs list` follow too."""
    return debug_overrides(record.get("overrides"))


def on_dev_files(record: dict) -> bool:
    """Whether a meta-test scored the ARSC target tasks' .dev files (`data.test_protocol=arsc_dev`):
    a choice of test-time settings (experiments/arsc_dev.py), never a test result."""
    return ((record.get("config") or {}).get("data") or {}).get("test_protocol") == "arsc_dev"


def cite(record_id: str, path: Path | None) -> str:
    """A record as a table cites it: the first 8 characters of its id, linked to its file."""
    short = record_id[:8]
    if path is None:
        return short
    try:
        return f"[{short}]({path.resolve().relative_to(EXPERIMENTS).as_posix()})"
    except ValueError:  # a records folder outside experiments/: no relative link
        return short


def cited(record: dict) -> str:
    """A loaded record as the tables cite it: its link (`cite`, set by tables.from_records), else
    the first 8 characters of its id."""
    return record.get("cite") or record["id"][:8]


def step_rows(record: dict) -> dict[tuple[str, int, str], dict[int, dict]]:
    """The `<metric>@<steps>` test results of a record (experiments/sinusoid.py's, or a run's
    with `algorithm.eval_score_steps`): (metric, shots, group) -> steps -> row."""
    found: dict[tuple[str, int, str], dict[int, dict]] = defaultdict(dict)
    for r in record["test_results"]:
        match = STEP_METRIC.match(r["metric"])
        if match:
            found[match["metric"], r["shots"], r["group"]][int(match["steps"])] = r
    return found


Cells = dict[tuple[str, tuple[str, ...]], list[dict]]


def collect(records: list[dict], debug: bool = False) -> Cells:
    """Completed attempts with test results of their objective's metric, grouped into cells."""
    cells: Cells = defaultdict(list)
    for r in records:
        if r["status"] != "completed" or (is_debug(r) and not debug) or on_dev_files(r):
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
            per_domain[d] = (rows[0]["value"], nan_if_none(rows[0]["ci95"]))
        else:
            per_domain[d] = seeds_ci95([r["value"] for r in rows])
    for a in attempts:  # the mean over all test episodes, as logged (test/<metric>)
        value, ci = a["overall"]
        if value is None:
            value, ci = sum(r["value"] for r in a["results"]) / len(a["results"]), None
        means.append((value, nan_if_none(ci)))
    mean = means[0] if len(attempts) == 1 else seeds_ci95([m for m, _ in means])
    walls = [w for w in map(wall_minutes, attempts) if w == w]  # w != w: NaN, no times
    hw = attempts[0]["hardware"]
    return {"domains": per_domain, "mean": mean, "seeds": len(attempts),
            "metric": attempts[0]["metric"], "mode": attempts[0]["mode"],
            "wall_min": sum(walls) / len(walls) if walls else float("nan"),
            "hardware": hardware(hw),
            "cites": [cited(a) for a in attempts]}


def hardware(hw: dict) -> str:
    """What a row ran on: accelerator names, else the CPU model and cores where recorded, else
    the host and the trainer's accelerator setting."""
    if hw.get("accelerators"):
        return " + ".join(hw["accelerators"])
    if hw.get("cpu"):
        return f"{hw['cpu']} ({hw.get('cpu_count') or '?'} cores)"
    return f"{hw.get('host') or '?'} ({hw.get('accelerator') or '?'})"


def nan_if_none(value: float | None) -> float:
    """NaN for a missing interval, so that formatting prints the score alone."""
    return float("nan") if value is None else value


# What a row is, in the order the document shows them: the experiment as configured, a variant
# (overrides that compose what the row ran), a meta-test of a checkpoint at other settings, and
# a configuration no searched command composes (its values differ from the configs).
KINDS = ("default", "variant", "meta-test", "other")
LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{5,}(?:e-?\d+)?")
PLAIN = re.compile(r"^[\w.\-/]+$")  # a string value that types as is on a command line
CHECKPOINT_STEP = re.compile(r"(?:^|/)step0*(\d+)\.ckpt$")  # callbacks.model_checkpoint.filename's names


@dataclass
class Row:
    """Attempts that ran one configuration with distinct seeds, as a table shows them."""
    experiment: str
    kind: str
    label: str  # variant: its overrides; meta-test: its settings; other: how it differs
    attempts: list[dict]
    checkpoint: str = ""  # meta-test: the record that trained the checkpoint, or its path
    note: str = ""  # said after the label
    tested: str = ""  # which weights the meta-test scored: best on meta-validation, or last

    @cached_property
    def summary(self) -> dict:
        """Per-group and mean score, seeds, wall time, hardware and cites (`summarize`)."""
        return summarize(self.attempts)


def short_values(text: str) -> str:
    """Long decimals as four significant digits: `0.13567896067557864` -> `0.1357`."""
    return LONG_FLOAT.sub(lambda m: f"{float(m[0]):.4g}", text)


def section_of(override: str) -> str:
    """The config section an override sets (`algorithm.inner_lr=0.1`, `algorithm=x` -> algorithm)."""
    return override.split("=", 1)[0].lstrip("+~").split(".", 1)[0].split("/", 1)[0]


def typed(record: dict) -> tuple[str, ...]:
    """An attempt's overrides as a user types them, less seed, logging and the experiment."""
    return tuple(o for o in cell_key(record)[1] if not o.startswith(RAN_WITH))


def typed_value(value: Any) -> str | None:
    """A config value as a command-line override types it; None where a scalar cannot say it."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and PLAIN.match(value) and not isinstance(value, Call):
        return value
    return None


def algorithm_options(experiment: str) -> list[str]:
    """The shipped algorithm configs of an experiment's algorithm (`reptile_*` -> reptile,
    reptile_adam, reptile_adam_amazon): the group choices a shorter command may name."""
    family = experiment.split("_", 1)[0]
    return sorted(p.stem for p in (CONFIG_DIR / "algorithm").glob("*.yaml") if p.stem.split("_", 1)[0] == family)


def command_for(record: dict) -> tuple[str, ...] | None:
    """The fewest overrides that compose the config an attempt ran (`metalearn.registry.drift`
    finds nothing between them), searched over the overrides it typed and its algorithm's shipped
    configs; None where none does. Overrides outside the compared sections (trainer, debug) stay."""
    experiment, config, given = record["experiment"] or "?", record.get("config"), typed(record)
    if not config:
        return given
    kept = tuple(o for o in given if section_of(o) not in DRIFT_SECTIONS)
    sectioned = tuple(o for o in given if section_of(o) in DRIFT_SECTIONS)
    found = []
    for base in [(), *((f"algorithm={a}",) for a in algorithm_options(experiment))]:
        for extra in ((), sectioned) if sectioned else ((),):
            tried = kept + base + extra
            values = {k: typed_value(v) for k, v in drift(config, experiment, tried).items()}
            if None in values.values():
                continue
            command = tried + tuple(f"{k}={v}" for k, v in values.items())
            if command == tried or not drift(config, experiment, command):
                found.append(command)
        if found and len(min(found, key=len)) == len(kept):
            break  # nothing is shorter than the experiment's own config
    return min(found, key=lambda c: (len(c), len(" ".join(c))), default=None)


def built_only(record: dict) -> bool:
    """Whether an attempt neither trained nor loaded a checkpoint (`train: false`, no
    `ckpt_path`): its meta-test scored the model as built."""
    config = record.get("config") or {}
    return config.get("train") is False and not config.get("ckpt_path")


def trains(record: dict) -> bool:
    """Whether an attempt meta-trained (a meta-test of a checkpoint has `train=false`)."""
    return not any(o.lower() == "train=false" for o in record.get("overrides") or [])


def trained_by(record: dict, records: list[dict]) -> dict | None:
    """The record of the run that saved the checkpoint a meta-test loaded: the one whose best
    checkpoint it is, else the one whose output folder holds it."""
    ckpt = record.get("ckpt_path")
    if not ckpt:
        return None
    runs = [r for r in records if r is not record and trains(r)]
    return next((r for r in runs if r.get("ckpt_path") == ckpt), None) or next(
        (r for r in runs if saved_in(r, ckpt)), None)


def saved_in(run: dict, ckpt: str) -> bool:
    """Whether a checkpoint file lies in a run's output folder."""
    return bool(run.get("output_dir")) and ckpt.startswith(run["output_dir"].rstrip("/") + "/")


def resumed_from(record: dict, records: list[dict]) -> dict | None:
    """The training run a meta-training attempt continued (it restored that run's checkpoint with
    `ckpt_path` and trained on): the one whose output folder holds the file. None otherwise."""
    ckpt = (record.get("config") or {}).get("ckpt_path")
    if not ckpt or not trains(record):
        return None
    return next((r for r in records if r is not record and trains(r) and saved_in(r, ckpt)), None)


def resumed_at(record: dict, parent: dict) -> int | None:
    """The step a resumed run started from: the parent's last step for its last.ckpt, else the
    step in the file's name."""
    ckpt = (record.get("config") or {}).get("ckpt_path") or ""
    if Path(ckpt).name == "last.ckpt":
        return ((parent.get("config") or {}).get("trainer") or {}).get("max_steps")
    return step_in(ckpt)


def resumed_note(attempts: list[dict], records: list[dict]) -> str:
    """What a row of resumed runs continued: ` (resumed from step 150 of 45feddfb)`, one run per
    seed: ` (resumed from step 150 of 45feddfb, c535bb66)`."""
    found = [(resumed_at(a, p), cited(p)) for a in attempts if (p := resumed_from(a, records)) is not None]
    if not found:
        return ""
    if len({step for step, _ in found}) == 1:
        return f" (resumed from step {found[0][0]} of {', '.join(cite for _, cite in found)})"
    return " (resumed from " + ", ".join(f"step {step} of {cite}" for step, cite in found) + ")"


# What only meta-training reads: a meta-test of a checkpoint never runs the outer optimizer, its
# schedule or the meta-training sampler, so their values there say nothing about the scores.
TRAINING_ONLY = ("algorithm.optimizer", "algorithm.scheduler", "data.steps_per_epoch", "data.meta_batch_size")
SAME_SETTINGS = "the same settings"  # a meta-test's label where nothing it reads differs


def settings_against(record: dict, trained: dict) -> str:
    """How a meta-test's config differs from the config its checkpoint was trained with, in
    what a meta-test reads (not `TRAINING_ONLY`)."""
    now = composed(record["experiment"] or "?", ()) or {}
    derived = {k for s in DRIFT_SECTIONS for k, v in leaves(now.get(s, {}), s).items() if is_derived(v)}
    mine, theirs = {}, {}
    for section in DRIFT_SECTIONS:
        mine.update(leaves((record.get("config") or {}).get(section) or {}, section))
        theirs.update(leaves((trained.get("config") or {}).get(section) or {}, section))
    changed = {}
    for key in sorted(set(mine) | set(theirs)):
        ran, trained_with = mine.get(key, ABSENT), theirs.get(key, ABSENT)
        skipped = (key in derived or key.rsplit(".", 1)[-1] == "seed" or key in HOW_NOT_WHAT
                   or any(key == k or key.startswith(k + ".") for k in TRAINING_ONLY))
        # an option one side's version lacked counts as off, as in drift()
        off = (trained_with is ABSENT and ran in (False, None)) or (ran is ABSENT and trained_with in (False, None))
        if ran != trained_with and not skipped and not off:
            changed[key] = ran
    return describe(changed)


def checkpoint_rule(config: dict | None) -> str:
    """Which checkpoint a run meta-tests after training, from its config, as train() picks it:
    `best <monitor>` where its first checkpoint callback monitors a metric that validation logs
    (the best on meta-validation), else `last` (that callback's latest save, or with no
    checkpoint callback or no validation the weights at the end of training)."""
    if config is None:
        return "unknown"
    callbacks = [c for c in (config.get("callbacks") or {}).values()
                 if isinstance(c, dict) and str(c.get("_target_", "")).endswith(".ModelCheckpoint")]
    validates = (config.get("trainer") or {}).get("limit_val_batches", 1.0) != 0
    first = callbacks[0] if callbacks else {}
    if first.get("monitor") and first.get("save_top_k", 1) != 0 and validates:
        return f"best {first['monitor']}"
    return "last"


def step_in(path: str) -> int | None:
    """The training step a checkpoint file's name holds (`step000700.ckpt`: 700)."""
    match = CHECKPOINT_STEP.search(path)
    return int(match[1]) if match else None


def saved_at(record: dict) -> int | None:
    """The training step of the checkpoint a training attempt kept."""
    return step_in(record.get("ckpt_path") or "")


def loaded_file(record: dict, trainer: dict) -> str:
    """Which of its trainer's files a meta-test loaded: `last (step 150 of 150)` for last.ckpt (the
    weights at the end of training), `step 300 of 1000` for a step's file."""
    end = ((trainer.get("config") or {}).get("trainer") or {}).get("max_steps")
    if Path(record.get("ckpt_path") or "").name == "last.ckpt":
        return f"last (step {end} of {end})" if trainer.get("status") == "completed" else "last"
    step = saved_at(record)
    return f"step {step} of {end}" if step is not None else "given"


def tested_checkpoint(attempts: list[dict], records: list[dict]) -> str:
    """What a row's meta-test scored: `best val/acc (step 700 of 1000)` (per attempt, several
    steps where seeds kept different ones) or `last`; a meta-test of a checkpoint says it of the
    run that trained the checkpoint (`given` where no record did), or names the file where it
    loaded another than the one that run kept (`loaded_file`); a run that trains nothing and
    loads nothing (pretrained_*: `train: false` in its config) tested the model as built."""
    if all(built_only(a) for a in attempts):
        return "none: the model as built"
    trainers = [a if trains(a) else trained_by(a, records) for a in attempts]
    if any(t is None for t in trainers):
        return "given"
    if any(a.get("ckpt_path") != t.get("ckpt_path") for a, t in zip(attempts, trainers, strict=True)):
        return ", ".join(sorted({loaded_file(a, t) for a, t in zip(attempts, trainers, strict=True)}))
    rules = sorted({checkpoint_rule(t.get("config")) for t in trainers})
    if rules != [rules[0]] or not rules[0].startswith("best "):
        return ", ".join(rules)
    steps = [saved_at(t) for t in trainers]
    ends = sorted({((t.get("config") or {}).get("trainer") or {}).get("max_steps") for t in trainers},
                  key=str)
    if None in steps or len(ends) != 1 or not isinstance(ends[0], int):
        return rules[0]
    if len(set(steps)) == 1:
        return f"{rules[0]} (step {steps[0]} of {ends[0]}{', every seed' * (len(steps) > 1)})"
    return f"{rules[0]} (steps {', '.join(str(n) for n in steps)} of {ends[0]})"


def placed(record: dict, records: list[dict]) -> tuple[str, str, str]:
    """(kind, label, checkpoint) of one attempt: where its row goes and what the row says."""
    given = typed(record)
    if resumed_from(record, records) is not None:  # it trained on from that checkpoint: a variant
        command = command_for(record) or given
        return "variant", " ".join(o for o in command if not o.startswith("ckpt_path=")), ""
    if not trains(record) or any(o.startswith("ckpt_path=") for o in given):
        trained = trained_by(record, records)
        if trained is not None:
            settings = settings_against(record, trained) or SAME_SETTINGS
            return "meta-test", settings, cited(trained)
        ckpt = next((o.split("=", 1)[1] for o in given if o.startswith("ckpt_path=")), None)
        settings = " ".join(o for o in given if not o.startswith(("train=", "ckpt_path=")))
        return "meta-test", settings, f"`{ckpt}`" if ckpt else "none (the model as built)"
    command = command_for(record)
    if command is None:
        changed = describe(drift(record["config"], record["experiment"] or "?", ()))
        return "other", changed or " ".join(given), ""
    return ("variant" if command else "default"), " ".join(command), ""


def rows_by_benchmark(records: list[dict], debug: bool = False) -> dict[str, list[Row]]:
    """Every scored attempt in rows, per benchmark (known ones first): attempts of one place
    share a row while their seeds differ; a repeated seed opens another row of the same place."""
    attempts = sorted((a for cell in collect(records, debug).values() for a in cell),
                      key=lambda a: (bool(typed(a)), a.get("created_at") or ""))  # untyped first
    places: dict[tuple, list[list[dict]]] = defaultdict(list)
    for a in attempts:
        place = (a["experiment"] or "?", *placed(a, records))
        group = places[place]
        seed = (a.get("config") or {}).get("seed")
        row = next((r for r in group if seed not in {(b.get("config") or {}).get("seed") for b in r}), None)
        if row is None:
            group.append(row := [])
        row.append(a)
    rows = []
    for (experiment, kind, label, checkpoint), group in places.items():
        for i, members in enumerate(group):
            rows.append(Row(experiment, kind if i == 0 else ("variant" if kind == "default" else kind),
                            short_values(label), members, checkpoint,
                            ("" if i == 0 else f" (seed {members[0]['config'].get('seed')} again)")
                            + resumed_note(members, records),
                            tested_checkpoint(members, records)))
    by_bench: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_bench[benchmark(row.experiment)].append(row)
    return {b: sorted(by_bench[b], key=lambda r: (r.experiment, r.checkpoint, r.label, r.note))
            for b in sorted(by_bench, key=lambda b: (b not in BENCHMARKS, b))}


def cells_by_benchmark(records: list[dict], debug: bool = False) -> dict[str, list[tuple]]:
    """(experiment, overrides, summary) of every cell, per benchmark, in print order."""
    by_bench: dict[str, list] = defaultdict(list)
    for (experiment, overrides), attempts in collect(records, debug).items():
        by_bench[benchmark(experiment)].append((experiment, overrides, summarize(attempts)))
    return {b: sorted(by_bench[b], key=lambda r: (r[0], r[1]))
            for b in sorted(by_bench, key=lambda b: (b not in BENCHMARKS, b))}
