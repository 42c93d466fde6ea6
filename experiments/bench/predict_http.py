"""Latency, throughput and memory of `POST /runs/{id}/predict` on a real `metalearn serve`.

    python experiments/bench/predict_http.py --root DIR --url sqlite:///DIR/registry.db --attempt 1

Starts `metalearn serve` on 127.0.0.1 over the registry at --url with --root as its project
folder (the checkpoint must lie under DIR/logs/), and sends 2-way 5-shot requests with 20 queries
of one held-out ARSC domain (reviews of the attempt's own data.path) to the attempt's checkpoint:

- cold: the first request (the checkpoint and tokenizer load);
- warm: --warm sequential requests, latency p50 / p95;
- concurrent: --total requests from --clients threads, requests per second and latency;
- memory: the server's resident memory (VmRSS) before and after --soak more requests, sampled
  every 100, to see that it stays bounded.

Every count is fixed, so it stops by itself; the server is stopped at the end. A benchmark,
never a test: it prints figures (and writes them as JSON with --out), it asserts no timing.
Only a non-200 answer ends it with status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's metalearn, which the server runs too
from metalearn.api import local_server  # noqa: E402

SHOTS, QUERIES = 5, 20


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="the server's project folder (checkpoints under ROOT/logs)")
    p.add_argument("--url", required=True, help="the registry the attempt is recorded in")
    p.add_argument("--attempt", type=int, required=True, help="a completed reptile_amazon attempt")
    p.add_argument("--domain", default="automotive", help="the held-out ARSC domain the rows come from")
    p.add_argument("--warm", type=int, default=50, help="sequential warm requests (default 50)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--total", type=int, default=100, help="requests over the concurrent clients (default 100)")
    p.add_argument("--soak", type=int, default=1000, help="requests between the memory readings (default 1000)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    return p.parse_args(argv)


def review_rows(url: str, attempt: int, domain: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """5 negative and 5 positive reviews of the domain as support rows, the next 20 as queries."""
    from metalearn.data.review_datamodule import CLASSES
    from metalearn.data.reviews import read_reviews
    from metalearn.registry import Store

    store = Store(url)
    try:
        path = Path(store.get_attempt(attempt)["config"]["data"]["path"])
    finally:
        store.close()
    reviews = read_reviews(path)
    rows = [(t, CLASSES[y]) for t, y, d in zip(reviews["text"], reviews["label"], reviews["domain"], strict=True)
            if d == domain]
    support = [r for c in CLASSES for r in [x for x in rows if x[1] == c][:SHOTS]]
    rest = [r for r in rows if r not in support]
    queries = rest[:QUERIES]
    if len(support) != 2 * SHOTS or len(queries) != QUERIES:
        raise SystemExit(f"--domain {domain}: not enough reviews in {path} for {SHOTS} shots and {QUERIES} queries")
    return [{"text": t, "label": c} for t, c in support], [{"text": t} for t, _ in queries]


def rss_mib(pid: int) -> float:
    """The process's resident memory (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Bench:
    """Requests to one server, timed."""

    def __init__(self, base: str, token: str, attempt: int, body: dict[str, Any]) -> None:
        self.url = f"{base}/runs/{attempt}/predict"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.body = json.dumps(body).encode()

    def one(self, client: httpx.Client) -> float:
        """One request's seconds; a non-200 answer ends the benchmark."""
        started = time.perf_counter()
        response = client.post(self.url, content=self.body, headers={**self.headers,
                                                                     "Content-Type": "application/json"})
        took = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"POST {self.url}: {response.status_code} {response.text[:500]}")
        return took

    def sequential(self, n: int) -> list[float]:
        with httpx.Client(timeout=120) as client:
            return [self.one(client) for _ in range(n)]

    def concurrent(self, clients: int, total: int) -> tuple[float, list[float]]:
        """Seconds for `total` requests over `clients` threads, and each request's latency."""
        latencies: list[float] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                with httpx.Client(timeout=120) as client:
                    mine = [self.one(client) for _ in range(n)]
            except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
                errors.append(exc)
                return
            with lock:
                latencies.extend(mine)

        shares = [total // clients + (i < total % clients) for i in range(clients)]
        threads = [threading.Thread(target=work, args=(n,)) for n in shares]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return time.perf_counter() - started, latencies


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.root = Path(args.root).resolve()
    support, query = review_rows(args.url, args.attempt, args.domain)
    token, port = secrets.token_urlsafe(32), local_server.free_port()
    log = args.root / f"predict_http_server_{port}.log"
    server = local_server.start(args.url, token=token, cwd=args.root, log_path=log, port=port,
                                serve_args=["--root", str(args.root), "--predict-cache", "2"],
                                env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    proc = server.proc
    try:
        try:
            started_s = server.wait()
        except local_server.ServerStartError as exc:
            raise SystemExit(str(exc)) from None
        bench = Bench(server.base, token, args.attempt, {"support": support, "query": query})
        rss_start = rss_mib(proc.pid)
        cold = bench.sequential(1)[0]
        warm = bench.sequential(args.warm)
        took, under_load = bench.concurrent(args.clients, args.total)
        rss_before = rss_mib(proc.pid)
        samples = [round(rss_before, 1)]
        for _ in range(args.soak // 100):
            bench.concurrent(args.clients, 100)
            samples.append(round(rss_mib(proc.pid), 1))
        figures = {
            "attempt": args.attempt, "request": f"2-way {SHOTS}-shot, {QUERIES} queries ({args.domain})",
            "server_start_s": round(started_s, 1), "rss_idle_mib": round(rss_start, 1),
            "cold_ms": ms(cold),
            "warm_p50_ms": ms(statistics.median(warm)), "warm_p95_ms": ms(percentile(warm, 0.95)),
            "concurrent_clients": args.clients, "concurrent_requests": args.total,
            "requests_per_s": round(args.total / took, 2),
            "concurrent_p50_ms": ms(statistics.median(under_load)),
            "concurrent_p95_ms": ms(percentile(under_load, 0.95)),
            "soak_requests": 100 * (args.soak // 100), "rss_mib_every_100": samples,
            "rss_growth_mib": round(samples[-1] - samples[0], 1),
            "threads": os.environ.get("OMP_NUM_THREADS", "1"), "cpus": os.cpu_count(),
        }
    finally:
        server.stop()
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
