"""Where a training job's time goes: meta-training, each meta-validation check, the meta-test.

    python experiments/bench/job_breakdown.py                        # experiment=reptile_amazon
    python experiments/bench/job_breakdown.py --steps 2 --val 6 --test 6 --out DIR
    python experiments/bench/job_breakdown.py --set data.meta_batch_size=4   # overrides
    python experiments/bench/job_breakdown.py --flops     # + FLOPs per part, the job's floor

Builds the experiment's data, model and learner as `metalearn train` does and times, in this
process on one torch thread, the parts the job repeats: a meta-training step (its tasks'
`task_gradient`, the trunk's forwards apart), a meta-validation episode and a meta-test episode
(`evaluate_episode`, the trunk's forwards apart), on --steps steps and on --val / --test
episodes spread evenly over the fixed ones. Each part's mean is multiplied by the job's counts
(max_steps; one check every steps_per_epoch steps over its meta-validation episodes; every
meta-test episode) into an estimate of the job, without and with `model.cache_trunk` (a later
check reads the trunk's outputs instead of running the trunk: the time of that lookup is
measured too). --flops also counts each part's FLOPs and divides the job's by --cores times one
thread's matmul rate: the least time its arithmetic can take (bench/job_flops.py). Not timed:
starting up, Lightning's loop (a few ms a step: README, row 1), the before-adapting training
scores on the written steps, checkpoints.

It also checks what the cache promises on the real model: --val episodes validated twice
through the cache give the records of the same episodes validated without it, bit for bit
(exit status 2 otherwise). A benchmark, never a test: it prints figures, asserts no timing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "experiments"), str(ROOT)]  # this checkout's code
os.environ.setdefault("PROJECT_ROOT", str(ROOT))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="reptile_amazon")
    p.add_argument("--steps", type=int, default=2, help="meta-training steps timed (default 2)")
    p.add_argument("--val", type=int, default=6, help="meta-validation episodes timed (default 6)")
    p.add_argument("--test", type=int, default=6, help="meta-test episodes timed (default 6)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--flops", action="store_true",
                   help="also count each part's FLOPs and the job's floor at this machine's matmul rate")
    p.add_argument("--cores", type=int, default=2, help="cores the floor divides the FLOPs over (default 2)")
    p.add_argument("--out", type=Path, help="write the figures as JSON into this folder")
    args = p.parse_args(argv)
    if min(args.steps, args.val, args.test, args.threads) < 1:
        p.error("--steps, --val, --test and --threads must be at least 1")
    return args


def cpu_seconds(fn: Callable[[], Any]) -> float:
    """Process CPU seconds `fn()` took (the waiting for a core on a shared machine left out)."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def spread(items: list, n: int) -> list:
    """n items evenly spread over `items` (all of them if fewer)."""
    if n >= len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] if n > 1 else items[0] for i in range(n)]


def episode_trunk(learner: Any, ep: Any) -> None:
    """The trunk's forwards of one evaluation episode: its support set and each query chunk."""
    learner.model.features(ep.support_x)
    for _, chunk in learner.query_chunks(ep):
        learner.model.features(chunk)


def time_episodes(learner: Any, episodes: list) -> dict[str, float]:
    """Mean CPU seconds per evaluation episode: the whole of it, its trunk, and its trunk's
    outputs looked up in the cache once kept."""
    model = learner.model
    total, trunk, lookup = [], [], []
    for ep in episodes:
        trunk.append(cpu_seconds(lambda ep=ep: episode_trunk(learner, ep)))
        total.append(cpu_seconds(lambda ep=ep: learner.evaluate_episode(ep)))
        if model.trunk_cache is not None:
            with model.reusing_trunk_outputs():
                episode_trunk(learner, ep)  # kept
                lookup.append(cpu_seconds(lambda ep=ep: episode_trunk(learner, ep)))
    return {"episode_s": statistics.mean(total), "trunk_s": statistics.mean(trunk),
            "lookup_s": statistics.mean(lookup) if lookup else None, "episodes": len(episodes)}


def time_training(learner: Any, dm: Any, steps: int, batch: int, seed: int) -> dict[str, float]:
    """Mean CPU seconds per meta-training step (its tasks' task_gradient) and of its trunk."""
    params = learner.meta_parameters()
    learner.train()
    learner.score_before_adapting = False  # computed on the written steps only (1 in 10)
    total, trunk = [], []
    for step in range(steps):
        eps = [dm.build(dm.train_sampler.train_episode(seed, step, task)) for task in range(batch)]
        trunk.append(sum(cpu_seconds(lambda ep=ep: (learner.model.features(ep.support_x),
                                                    learner.model.features(ep.query_x)))
                         for ep in eps))
        total.append(sum(cpu_seconds(lambda ep=ep: learner.task_gradient(ep, params)) for ep in eps))
    learner.eval()
    return {"step_s": statistics.mean(total), "trunk_s": statistics.mean(trunk), "steps": steps}


def count_flops(learner: Any, dm: Any, cfg: Any, counts: dict[str, int], val_eps: list,
                test_eps: list, cores: int) -> dict[str, Any]:
    """Each part's FLOPs per unit (the first meta-training step; the mean over the timed
    episodes) and the job's floor at one thread's matmul rate on the model's own shapes."""
    from bench.flops import count_flops as flops
    from bench.job_flops import floor, gemm_rate

    params = learner.meta_parameters()
    learner.train()
    learner.score_before_adapting = False
    step = [dm.build(dm.train_sampler.train_episode(cfg.data.seed, 0, task))
            for task in range(counts["tasks_per_step"])]
    unit = {"step": float(sum(flops(lambda ep=ep: learner.task_gradient(ep, params)) for ep in step))}
    learner.eval()
    unit["val_episode"] = statistics.mean(flops(lambda ep=ep: learner.evaluate_episode(ep)) for ep in val_eps)
    unit["test_episode"] = statistics.mean(flops(lambda ep=ep: learner.evaluate_episode(ep)) for ep in test_eps)
    trunk = statistics.mean(flops(lambda ep=ep: episode_trunk(learner, ep)) for ep in val_eps)
    # the job's typical product: one support set's real tokens through a feed-forward matrix
    config = learner.model.top.config  # a text encoder's (checked before any timing)
    rows = int(step[0].support_x["attention_mask"].sum())
    inner, cols = config.hidden_size, config.intermediate_size
    rate = gemm_rate(rows, inner, cols)
    cached = trunk if learner.model.trunk_cache is not None else 0.0
    return {**floor(counts, unit, rate=rate, cores=cores, cached_trunk_flops=cached),
            "unit_flops": unit, "trunk_flops_per_val_episode": trunk, "gemm_shape": [rows, inner, cols]}


def same_records(learner: Any, episodes: list) -> bool:
    """Whether validating `episodes` twice through the trunk cache gives, both times, the
    records of validating them without it."""
    def check(reuse: bool) -> list[dict]:
        learner.on_validation_epoch_start()
        for i, ep in enumerate(episodes):
            if reuse:
                learner.validation_step(ep, i)
            else:
                learner._scores.append(learner.evaluate_episode(ep))
        return list(learner._scores)

    learner.model.trunk_cache.clear()
    plain = check(False)
    return check(True) == check(True) == plain


def estimate(cfg: Any, counts: dict[str, int], train: dict, val: dict, test: dict) -> dict[str, Any]:
    """The job's parts in CPU seconds from the per-unit means and the job's counts."""
    checks, n_val = counts["checks"], counts["val_episodes"]
    val_check = n_val * val["episode_s"]
    parts = {
        "meta-training": {"count": counts["steps"], "unit_s": train["step_s"],
                          "total_s": counts["steps"] * train["step_s"],
                          "trunk_s": counts["steps"] * train["trunk_s"]},
        "meta-validation check": {"count": checks, "unit_s": val_check, "total_s": checks * val_check,
                                  "trunk_s": checks * n_val * val["trunk_s"]},
        "meta-test": {"count": 1, "unit_s": counts["test_episodes"] * test["episode_s"],
                      "total_s": counts["test_episodes"] * test["episode_s"],
                      "trunk_s": counts["test_episodes"] * test["trunk_s"]},
    }
    total = sum(p["total_s"] for p in parts.values())
    saved = 0.0
    if val["lookup_s"] is not None and checks > 1:  # every check after the first reads the cache
        saved = (checks - 1) * n_val * (val["trunk_s"] - val["lookup_s"])
    return {"parts": parts, "total_s": total, "cached_total_s": total - saved, "cache_saves_s": saved}


def build_job(name: str, overrides: list[str]) -> tuple[Any, Any, Any, dict[str, float]]:
    """The experiment's config, DataModule (set up for fit) and learner (in eval mode), built as
    `metalearn train` builds them, and the seconds each took."""
    from bench.config import experiment
    from metalearn.instantiate import build

    cfg = experiment(name, *overrides)
    setup = {}
    start = time.perf_counter()
    dm = build(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    setup["data_s"] = time.perf_counter() - start
    start = time.perf_counter()
    learner = build(cfg.algorithm, model=build(cfg.model), objective=build(cfg.objective))
    learner.eval()
    setup["model_s"] = time.perf_counter() - start
    return cfg, dm, learner, setup


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    from bench.hardware import load_average, machine

    hardware = machine()  # the load average as it starts
    cfg, dm, learner, setup = build_job(args.experiment, args.set)
    if args.flops and getattr(learner.model.top, "config", None) is None:
        raise SystemExit(f"--flops times a text encoder's feed-forward product; {args.experiment}'s "
                         "model has none (model=minilm or another Hugging Face encoder)")
    limit = cfg.trainer.limit_val_batches
    n_val = len(dm.val_specs) if isinstance(limit, float) else min(int(limit), len(dm.val_specs))
    counts = {"steps": cfg.trainer.max_steps, "checks": cfg.trainer.max_steps // cfg.data.steps_per_epoch,
              "val_episodes": n_val, "test_episodes": len(dm.test_specs),
              "tasks_per_step": cfg.data.meta_batch_size}
    val_eps = [dm.build(s) for s in spread(dm.val_specs[:n_val], args.val)]
    test_eps = [dm.test_dataloader().dataset[i] for i in spread(list(range(len(dm.test_specs))), args.test)]
    learner.evaluate_episode(val_eps[0])  # warm-up: first calls allocate and pick kernels
    val = time_episodes(learner, val_eps)
    test = time_episodes(learner, test_eps)
    train = time_training(learner, dm, args.steps, counts["tasks_per_step"], cfg.data.seed)
    cache = learner.model.trunk_cache
    exact = same_records(learner, val_eps) if cache is not None else None
    kept_mb = None
    if cache is not None:  # what the job's whole meta-validation keeps
        cache.clear()
        with learner.model.reusing_trunk_outputs():
            for spec in dm.val_specs[:n_val]:
                episode_trunk(learner, dm.build(spec))
        kept_mb = cache.bytes / 1e6
    job = estimate(cfg, counts, train, val, test)
    arithmetic = count_flops(learner, dm, cfg, counts, val_eps, test_eps, args.cores) if args.flops else None
    record = {"experiment": args.experiment, "overrides": args.set, "hardware": hardware,
              "load_average_end": load_average(), "setup": setup, "counts": counts, "train": train,
              "val": val, "test": test, "job": job, "cache_kept_mb": kept_mb,
              "cached_records_equal": exact, "flops": arithmetic}
    show(record)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = time.strftime("%Y-%m-%dT%H-%M-%S") + f"-breakdown-{args.experiment}.json"
        (args.out / name).write_text(json.dumps(record, indent=1))
    return 2 if exact is False else 0


def show(record: dict[str, Any]) -> None:
    """The breakdown as a plain table."""
    job, c = record["job"], record["counts"]
    print(f"{record['experiment']}: {c['steps']} steps of {c['tasks_per_step']} tasks, {c['checks']} checks "
          f"of {c['val_episodes']} episodes, {c['test_episodes']} test episodes; CPU seconds, one thread; "
          f"load {record['hardware']['load_average_start']} -> {record['load_average_end']}")
    print(f"{'part':24} {'count':>5} {'each s':>8} {'total s':>8} {'trunk s':>8} {'share':>6}")
    for name, p in job["parts"].items():
        print(f"{name:24} {p['count']:>5} {p['unit_s']:>8.1f} {p['total_s']:>8.0f} {p['trunk_s']:>8.0f} "
              f"{p['total_s'] / job['total_s']:>6.0%}")
    print(f"{'job (estimate)':24} {'':>5} {'':>8} {job['total_s']:>8.0f}")
    for part in ("train", "val", "test"):
        means = {k: round(v, 4) if isinstance(v, float) else v for k, v in record[part].items()}
        print(f"  {part}: {json.dumps(means)}")
    print(f"with model.cache_trunk: {job['cached_total_s']:.0f} s (saves {job['cache_saves_s']:.1f} s); "
          f"kept for the whole meta-validation: {record['cache_kept_mb']} MB; cached records equal to "
          f"uncached: {record['cached_records_equal']}")
    f = record.get("flops")
    if f:
        print("FLOPs (matmuls and attention) per unit: " + ", ".join(
            f"{k} {v / 1e9:.1f} G" for k, v in f["unit_flops"].items()))
        print("job: " + ", ".join(f"{k} {v / 1e12:.1f} T" for k, v in f["parts"].items())
              + f", less {f['cache_spares'] / 1e12:.2f} T the trunk cache spares: {f['total'] / 1e12:.1f} T")
        shape = "x".join(map(str, f["gemm_shape"]))
        print(f"matmul rate, one thread, [{shape}]: {f['rate_per_core'] / 1e9:.1f} GFLOP/s; floor on "
              f"{f['cores']} cores: {f['floor_s']:.0f} s ({f['floor_s'] / 60:.1f} min)")


if __name__ == "__main__":
    sys.exit(main())
