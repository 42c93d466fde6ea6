"""Does a model learn from the support set? Scores before and after adapting, from the records.

    python experiments/tables.py --write    # the table between the support-set markers

Every committed record of a classification run (a score where higher is better) whose meta-test
scored the query set before adapting
(`algorithm.eval_score_steps` with 0) gives a row per benchmark, group and K: the score of the
weights as they are, the score after the most steps it scored, both with their 95% intervals
over the episodes, and whose weights they are: meta-trained (a training run, or a meta-test of
its checkpoint) or not meta-trained at all (`train=false` with no checkpoint: the model as
built, its head adapted as the meta-learners adapt theirs). Where a benchmark's label meanings
change from task to task, weights that score above chance before adapting cannot have learnt
the labels from the support set.
"""
from __future__ import annotations

# result_rows: experiments/, beside this file
from result_rows import built_only, cited, is_debug, nan_if_none, on_dev_files, step_rows, trained_by, trains

from metalearn.registry.report import benchmark

BLOCK = ("<!-- support:begin -->", "<!-- support:end -->")


def weights_of(record: dict, records: list[dict]) -> str:
    """Whose weights a record's meta-test scored, in words."""
    if built_only(record):
        return "no meta-training (the model as built)"
    if trains(record):
        return f"meta-trained (`{record['experiment']}`)"
    trained = trained_by(record, records)
    return f"meta-trained (`{(trained or record)['experiment']}`, its checkpoint)"


def benchmark_of(record: dict) -> str:
    """The benchmark of a record, saying so where its episodes shuffle the label meanings."""
    shuffled = (((record.get("config") or {}).get("data") or {}).get("shuffle_labels") is True)
    return benchmark(record["experiment"] or "?") + (", labels shuffled per episode" if shuffled else "")


def cell(result: dict) -> str:
    scale = 100 if result["metric"].startswith("acc") else 1
    return f"{scale * result['value']:.1f} ± {scale * nan_if_none(result['ci95']):.1f}"


def table(records: list[dict]) -> str:
    """Markdown: per benchmark, group, K and weights, the score before and after adapting."""
    rows = []
    for record in records:
        objective = (record.get("config") or {}).get("objective") or {}
        if (record["status"] != "completed" or is_debug(record) or objective.get("mode") != "max"
                or on_dev_files(record)):
            continue  # regression (sinusoid) has its own table; a guess there has no chance level
        for (metric, shots, group), by_steps in step_rows(record).items():
            if 0 not in by_steps or len(by_steps) < 2:
                continue
            last = max(by_steps)
            rows.append((benchmark_of(record), group, shots, weights_of(record, records),
                         metric, cell(by_steps[0]), cell(by_steps[last]), last, cited(record)))
    if not rows:
        return "No recorded meta-tests with a score before adapting yet.\n"
    lines = ["| benchmark | group | K | weights | metric | before adapting | after adapting | steps | record |",
             "|---" * 9 + "|"]
    lines += [f"| {b} | {g} | {k} | {w} | {m} | {before} | {after} | {steps} | {c} |"
              for b, g, k, w, m, before, after, steps, c in sorted(rows, key=lambda r: r[:4])]
    return "\n".join(lines) + "\n"
