"""Speed and memory of metalearn's meta-steps, side by side in one process (see README.md).

    python experiments/bench/run.py --quick    # tiny models, about two minutes
    python experiments/bench/run.py            # MiniLM and the 64-channel Conv4
    python experiments/bench/run.py --device cuda --only speed flops   # the same on a GPU

Prints ratios (never asserts timings) and writes a JSON record under experiments/bench/results/.
Before a ratio is kept, the two implementations must have computed the same meta-gradient,
scores and final weights, and run the before-adapting query forward on the same steps; if
not, that contest prints no ratio (the difference is printed and recorded, the other contests
still run, and the exit status is 2).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# One thread unless asked otherwise, set before torch loads; this checkout's code first, and
# the bench as the package `bench` (not its folder, whose module names are generic).
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:] = [str(ROOT / "src"), str(HERE.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != HERE]

PARTS = ("speed", "memory", "flops")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny models (development, tests)")
    p.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS),
                   help="which parts to run (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--device", default="cpu",
                   help="cpu (default) or cuda: every implementation runs there, metalearn "
                        "with trainer=gpu; ratios on wall time (the memory part is CPU only)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="Hydra overrides for each experiment config the bench composes that "
                        "has the key, e.g. model.pretrained=/path/to/all-MiniLM-L6-v2")
    p.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON record")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    import torch
    from rich.console import Console
    from rich.logging import RichHandler

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s",
                        handlers=[RichHandler(show_path=False, show_time=True)])
    log = logging.getLogger("bench")

    import metalearn
    from bench import device, hardware, report, suite
    from bench.same_math import MathMismatch

    gpu = device.use(args.device).type == "cuda"
    if gpu and "memory" in args.only:
        raise SystemExit("--device cuda: the memory part replays the CPU allocator's events; "
                         "leave it out (--only speed flops)")
    clock = "wall" if gpu else "cpu"
    plan = suite.Plan.make(args.quick, args.device, tuple(args.set))
    started = time.strftime("%Y-%m-%dT%H-%M-%S")
    record = {"mode": "quick" if args.quick else "full", "started": started,
              "machine": hardware.machine(), "metalearn": str(Path(metalearn.__file__).parent),
              "plan": plan.__dict__, "clock": clock}
    log.info("machine: %s", record["machine"])
    sources, contests, infos, mismatches = suite.Sources(), {}, {}, {}
    t0 = time.perf_counter()
    if "speed" in args.only:
        runs = {"reptile-text": lambda: suite.reptile_text(plan, sources),
                "maml-conv4": lambda: suite.maml_conv4(plan, sources, first_order=False),
                "fomaml-conv4": lambda: suite.maml_conv4(plan, sources, first_order=True),
                **{name: (lambda n=name: suite.vmap_tasks(plan, sources, n))
                   for name in suite.VMAP_CONTESTS},
                "overhead-linear": lambda: suite.overhead(plan)}
        for name, contest in runs.items():
            try:
                contests[name], infos[name] = contest()
            except MathMismatch as err:  # that contest prints no ratio; the others go on
                log.error("%s: different math or work, no ratio printed: %s", name, err)
                mismatches[name] = str(err)
            except Exception as err:  # noqa: BLE001  (one contest that cannot run here, on a
                # device or without a library, is reported with its traceback; the rest run)
                log.exception("%s failed, no ratio printed", name)
                mismatches[name] = f"failed: {type(err).__name__}: {err}"
    mem = suite.memory(plan, sources) if "memory" in args.only else {}
    fl = {}
    if "flops" in args.only:
        try:
            fl = suite.flops(plan, sources)
        except Exception as err:  # noqa: BLE001  (the speed record above is still written)
            log.exception("flops failed")
            mismatches["flops"] = f"failed: {type(err).__name__}: {err}"

    console = Console(width=max(Console().width, 160))
    tables = []
    if contests:
        table, ratios = report.speed_table(contests, report.speed_ratios(contests), clock)
        tables.append(table)
        record["ratios"] = ratios
        record["contests"] = report.contest_records(contests, infos)
        record["fixed_cost"] = report.fixed_cost(contests, clock)
    if mismatches:
        record["different_math"] = mismatches
    if mem:
        tables.append(report.memory_table(mem))
        record["memory"] = report.memory_records(mem)
    if fl:
        tables.append(report.flops_table(fl, clock))
        record["flops"] = fl
    record["seconds"] = round(time.perf_counter() - t0, 1)
    record["machine"]["load_average_end"] = hardware.load_average()
    report.print_tables(console, *tables)
    for name, info in infos.items():
        if "task_loop_gflop" in info:
            g = info["task_loop_gflop"]
            console.print(f"{name}: one meta-batch's task loop, {g['metalearn']:.3f} GFLOP in "
                          f"metalearn and {g['hand-written']:.3f} in the floor"
                          + (" (equal)" if abs(g["metalearn"] - g["hand-written"])
                             <= 1e-6 * g["hand-written"] else " [red](differ)"))
    if record.get("fixed_cost"):
        fc = record["fixed_cost"]
        console.print(f"metalearn's fixed cost per meta-step (Lightning's loop and its own "
                      f"bookkeeping): {fc['ms_per_step']:.1f} ms {clock}, that is "
                      + ", ".join(f"{100 * v:.2f}% of a {k} step" for k, v in fc["share_of_step"].items()))
    path = report.write_json(record, args.out, f"{started}-{record['mode']}" + ("-cuda" if gpu else ""))
    console.print(f"record: {path}  ({record['seconds']} s; load average "
                  f"{record['machine']['load_average_start']} -> "
                  f"{record['machine']['load_average_end']})")
    for name, err in mismatches.items():
        console.print(f"[red]{name}: no ratio: {err}")
    return 2 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
