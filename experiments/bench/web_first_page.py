"""How long the runs table (`GET /`) takes over a registry of many attempts.

    python experiments/bench/web_first_page.py                    # 10,000 attempts, 7 repeats
    python experiments/bench/web_first_page.py --attempts 1000 --repeats 3 --profile

Fills a temp SQLite registry with --attempts attempts written the way training writes them:
the resolved config of a real composed experiment (four experiments in turn), its overrides and
command, ten metric names of ten steps each (the training scores, the learning rate, the
meta-validation scores), and for a completed attempt its meta-test results and `test/` metrics;
a tenth of them are meta-tests of an earlier attempt, a tenth belong to one of five studies,
some carry tags, a few run. Then it asks the app (FastAPI's TestClient, in this process: the
server's own work without the network) for the first page in the default order and a few other
pages, and prints the median, fastest and slowest of --repeats requests after one untimed
request each. With --profile, the first page's request runs under cProfile and the functions
taking the most time are printed.

A benchmark, never a test: it prints figures measured in one run (and writes them as JSON with
--out); it asserts no timing. A request that does not answer 200 ends it with status 1.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this checkout's code, whichever is installed
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

EXPERIMENTS = ("reptile_amazon", "maml_omniglot", "protonet_arsc", "maml_sinusoid")
DOMAINS = ("automotive", "office_products", "computer_video_games")
STUDIES = tuple(f"study_{i}" for i in range(5))
TAGS = ("baseline", "ablation", "paper", "rerun")
STEPS = 10
# The requests timed: a label and the URL.
PAGES = (
    ("first page (newest first)", "/"),
    ("sorted by meta-test score", "/?sort=score"),
    ("sorted by wall time", "/?sort=wall"),
    ("one experiment", "/?experiment=maml_omniglot"),
    ("failed only", "/?status=failed"),
    ("one tag", "/?tag=paper"),
    ("page 100", "/?page=100"),
    ("live rows (fragment)", "/parts/runs"),
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--attempts", type=int, default=10_000, help="attempts in the registry (default 10000)")
    p.add_argument("--repeats", type=int, default=7, help="timed requests per page (default 7)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="profile the first page's request")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.attempts < 1 or args.repeats < 1:
        p.error("--attempts and --repeats must be at least 1")
    return args


def configs() -> dict[str, dict[str, Any]]:
    """Each experiment's resolved config as training stores it (its Hydra runtime set as a job's)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from metalearn.conf import compose_train

    out = {}
    logs = Path(tempfile.gettempdir()) / "web-bench-logs"
    before = HydraConfig.instance().cfg  # put back after: a process-wide singleton
    try:
        for name in EXPERIMENTS:
            cfg = compose_train([f"experiment={name}", f"paths.log_dir={logs}"], return_hydra_config=True)
            with open_dict(cfg):
                cfg.hydra.runtime.output_dir = str(logs / name)
                cfg.hydra.job.num = 0
            HydraConfig.instance().set_config(cfg)
            resolved = OmegaConf.to_container(cfg, resolve=True)
            resolved.pop("hydra")
            out[name] = resolved
    finally:
        HydraConfig.instance().cfg = before
    return out


def metric_names(config: dict[str, Any]) -> tuple[str, list[str]]:
    """The objective's metric and the ten names an attempt logs every step it writes."""
    metric = config["objective"]["metric"]
    return metric, ["epoch", "train/support_loss", "train/query_loss_pre", "train/query_loss",
                    f"train/query_{metric}_pre", f"train/query_{metric}", "lr-SGD",
                    f"val/{metric}", f"val/{metric}_ci95", f"val/{metric}_pre"]


def fill(url: str, count: int, seed: int) -> dict[str, int]:
    """count attempts with their metrics and test results in the registry at url; row counts."""
    from sqlalchemy import insert

    from metalearn.registry import Store, schema
    from metalearn.registry.engine import write_tx
    from metalearn.registry.values import utcnow

    rng = random.Random(seed)
    composed = configs()
    store = Store(url)
    start = datetime(2026, 1, 1)
    statuses = [schema.COMPLETED] * 85 + [schema.FAILED] * 8 + [schema.INTERRUPTED] * 4 + [schema.RETRACTED] * 3
    attempts, metrics, results = [], [], []
    for i in range(1, count + 1):
        experiment = EXPERIMENTS[i % len(EXPERIMENTS)]
        config = composed[experiment]
        status = schema.RUNNING if i > count - 3 else rng.choice(statuses)
        kind = "test" if i > 10 and i % 10 == 0 else "train"
        study = STUDIES[i % len(STUDIES)] if kind == "train" and i % 10 == 3 else None
        created = start + timedelta(minutes=7 * i)
        ended = None if status == schema.RUNNING else created + timedelta(seconds=rng.uniform(30, 3600))
        overrides = [f"experiment={experiment}", f"seed={i}"]
        attempts.append({
            "id": i, "name": experiment, "kind": kind, "parent_id": i - 1 if kind == "test" else None,
            "experiment": experiment, "algorithm": experiment.split("_")[0], "status": status,
            "config": {**config, "seed": i}, "overrides": overrides, "command": ["metalearn train", *overrides],
            "tags": [rng.choice(TAGS)] if i % 7 == 0 else [], "created_at": created, "started_at": created,
            "ended_at": ended, "heartbeat_at": ended or utcnow(),
            "lease_until": None if ended else utcnow() + timedelta(hours=1),
            "host": "bench", "pid": 1000 + i, "git_commit": "0" * 40,
            "output_dir": f"/logs/{experiment}/runs/{i}", "log_name": f"{experiment}/{i}",
            "error": "RuntimeError: diverged" if status == schema.FAILED else None,
            "study": study, "trial": (i // 10) if study else None, "environment": {"cpu": "bench"},
        })
        metric, names = metric_names(config)
        t0 = created.timestamp()
        if kind == "train":
            for step in range(1, STEPS + 1):
                for name in names:
                    metrics.append({"attempt_id": i, "name": name, "step": step * 10,
                                    "value": rng.random(), "time": t0 + step})
        if status == schema.COMPLETED:
            for domain in DOMAINS:
                value, ci = rng.uniform(0.5, 0.9), rng.uniform(0.01, 0.05)
                results.append({"attempt_id": i, "group": domain, "metric": metric, "value": value, "ci95": ci,
                                "episodes": 30, "shots": 5, "queries": 5})
                metrics.append({"attempt_id": i, "name": f"test/{domain}/{metric}", "step": STEPS * 10,
                                "value": value, "time": t0 + STEPS + 1})
            for name, value in ((f"test/{metric}", rng.uniform(0.5, 0.9)), (f"test/{metric}_ci95", 0.03)):
                metrics.append({"attempt_id": i, "name": name, "step": STEPS * 10, "value": value,
                                "time": t0 + STEPS + 1})
    with write_tx(store.engine) as conn:
        for table, rows in ((schema.attempts, attempts), (schema.metrics, metrics), (schema.test_results, results)):
            for chunk in range(0, len(rows), 20_000):
                conn.execute(insert(table), rows[chunk:chunk + 20_000])
    store.close()
    return {"attempts": len(attempts), "metric rows": len(metrics), "test results": len(results)}


def app_client(url: str, folder: Path) -> Any:
    """A TestClient over the app the server runs, its runner never started."""
    from fastapi.testclient import TestClient

    from metalearn.api.app import create_app
    from metalearn.api.launch import LaunchCheck
    from metalearn.api.overrides import OverrideValidator
    from metalearn.api.runner import Runner
    from metalearn.conf import CONFIG_DIR
    from metalearn.registry import Store

    store = Store(url)
    validator = OverrideValidator(CONFIG_DIR, root=ROOT)
    runner = Runner(store, ROOT, LaunchCheck(validator, store, folder / "logs"), log_dir=folder / "api-logs")
    return TestClient(create_app(store, runner, validator, token="bench-token"))


def time_pages(client: Any, repeats: int) -> list[dict[str, Any]]:
    """Each page: one untimed request, then repeats timed ones (seconds)."""
    rows = []
    for label, url in PAGES:
        first = time.perf_counter()
        response = client.get(url)
        cold = time.perf_counter() - first
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}: {response.text[:500]}")
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            client.get(url)
            times.append(time.perf_counter() - t)
        rows.append({"page": label, "url": url, "first_s": cold, "median_s": statistics.median(times),
                     "min_s": min(times), "max_s": max(times), "bytes": len(response.content)})
    return rows


def profile(client: Any, top: int = 25) -> str:
    """The functions taking the most cumulative time in one first-page request."""
    profiler = cProfile.Profile()
    profiler.enable()
    client.get("/")
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Fill, time, print; the figures."""
    from rich.console import Console
    from rich.table import Table

    from experiments.bench.hardware import cpu_model, load_average

    args = parse(argv)
    console = Console(width=120)
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'registry.db'}"
        t = time.perf_counter()
        counts = fill(url, args.attempts, args.seed)
        fill_s = time.perf_counter() - t
        size_mb = (folder / "registry.db").stat().st_size / 2**20
        console.print(f"registry: {counts['attempts']:,} attempts, {counts['metric rows']:,} metric rows, "
                      f"{counts['test results']:,} test results, {size_mb:.0f} MiB, written in {fill_s:.1f} s")
        with app_client(url, folder) as client:
            rows = time_pages(client, args.repeats)
            profiled = profile(client) if args.profile else None
    table = Table(title=f"GET pages over {args.attempts:,} attempts (TestClient, {args.repeats} timed requests each)")
    for heading in ("page", "URL", "first (s)", "median (s)", "min (s)", "max (s)", "KiB"):
        table.add_column(heading, justify="left" if heading in ("page", "URL") else "right")
    for r in rows:
        table.add_row(r["page"], r["url"], f"{r['first_s']:.3f}", f"{r['median_s']:.3f}", f"{r['min_s']:.3f}",
                      f"{r['max_s']:.3f}", f"{r['bytes'] / 1024:.0f}")
    console.print(table)
    load = {"start": load_start, "end": load_average()}
    console.print(f"{cpu_model()}, {os.cpu_count()} logical cores, torch threads {torch_threads()}, "
                  f"load average (1, 5, 15 min) at start {load['start']}, at end {load['end']}")
    if profiled:
        console.print(profiled, markup=False, highlight=False)
    figures = {"attempts": args.attempts, "counts": counts, "fill_s": fill_s, "registry_mib": size_mb,
               "repeats": args.repeats, "pages": rows, "load_average": load, "cpu": cpu_model(),
               "cpus": os.cpu_count()}
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
