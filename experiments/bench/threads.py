"""What a second torch thread buys a training job: wall seconds of its parts at 1 and at 2 threads.

    python experiments/bench/threads.py                                   # experiment=reptile_amazon
    python experiments/bench/threads.py --experiment fomaml_arsc --set model.trainable_layers=all --out DIR

Builds the experiment as `metalearn train` does, then for --rounds rounds times, in wall-clock
seconds, one meta-training step (its meta-batch's `task_gradient`) and one meta-validation
episode (`evaluate_episode`) at each thread count, on the same episodes, the order of the two
counts alternating from round to round so that a change in the machine's load falls on both.
Prints the medians and their ratios, measured in this one run, and how far apart the same
step's meta-gradients are at the two counts (a second thread splits the reductions otherwise:
rounding, which a run's later steps carry on). A second thread only helps where a core is idle:
the load average at the start and the end is printed with the figures. A benchmark, never a test.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a package
from bench.job_breakdown import build_job  # noqa: E402  (which puts this checkout's src/ first)

COUNTS = (1, 2)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="reptile_amazon")
    p.add_argument("--rounds", type=int, default=3, help="rounds of both thread counts (default 3)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--out", type=Path, help="write the figures as JSON into this folder")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def step_gradients(learner: Any, episodes: list) -> dict[str, Any]:
    """The meta-batch's summed meta-gradient (name -> tensor), as the training step accumulates it."""
    params = learner.meta_parameters()
    total: dict[str, Any] = {}
    for ep in episodes:
        grads, _ = learner.task_gradient(ep, params)
        for name, g in grads.items():
            total[name] = g if name not in total else total[name] + g
    return total


def relative_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """|a - b| / |a| over all the tensors together (float64)."""
    num = sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in a)
    den = sum(float((a[k].double() ** 2).sum()) for k in a)
    return (num / den) ** 0.5 if den else float("nan")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    from bench.hardware import load_average, machine

    hardware = machine()  # the load average as it starts
    cfg, dm, learner, setup = build_job(args.experiment, args.set)
    learner.score_before_adapting = False  # computed on the written steps only (1 in 10)
    val_eps = [dm.build(s) for s in dm.val_specs[:args.rounds]]
    learner.evaluate_episode(val_eps[0])  # warm-up: first calls allocate and pick kernels
    times: dict[str, dict[int, list[float]]] = {"step": {n: [] for n in COUNTS}, "val_episode": {n: [] for n in COUNTS}}
    gradients = {}
    for r in range(args.rounds):
        train_eps = [dm.build(dm.train_sampler.train_episode(cfg.data.seed, r, task))
                     for task in range(cfg.data.meta_batch_size)]
        for n in COUNTS if r % 2 == 0 else COUNTS[::-1]:
            torch.set_num_threads(n)
            learner.train()
            start = time.perf_counter()
            gradients[n] = step_gradients(learner, train_eps)
            times["step"][n].append(time.perf_counter() - start)
            learner.eval()
            episode = val_eps[r % len(val_eps)]
            start = time.perf_counter()
            learner.evaluate_episode(episode)
            times["val_episode"][n].append(time.perf_counter() - start)
    drift = relative_difference(gradients[1], gradients[2])  # the last round's step at each count
    medians = {part: {n: statistics.median(v) for n, v in by_n.items()} for part, by_n in times.items()}
    record = {"experiment": args.experiment, "overrides": args.set, "hardware": hardware,
              "load_average_end": load_average(), "setup": setup, "rounds": args.rounds, "seconds": times,
              "median_s": medians, "speedup": {part: m[1] / m[2] for part, m in medians.items()},
              "step_gradient_relative_difference": drift, "tasks_per_step": cfg.data.meta_batch_size}
    print(f"{args.experiment} {' '.join(args.set)}: wall seconds, median of {args.rounds} rounds; load "
          f"{hardware['load_average_start']} -> {record['load_average_end']}")
    for part, m in medians.items():
        print(f"  {part:12} 1 thread {m[1]:7.2f} s   2 threads {m[2]:7.2f} s   speed-up {m[1] / m[2]:.2f}x")
    print(f"  a step's meta-gradient at 2 threads against 1: {drift:.1e} of its norm apart")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = time.strftime("%Y-%m-%dT%H-%M-%S") + f"-threads-{args.experiment}.json"
        (args.out / name).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
