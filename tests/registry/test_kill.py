"""A run killed with SIGKILL shows as interrupted once its heartbeat lease runs out."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from metalearn.registry import Store, schema

VICTIM = textwrap.dedent(
    """
    import sys, time
    from omegaconf import OmegaConf
    from metalearn.registry.record import record_attempt

    cfg = OmegaConf.create({"task_name": "train", "registry": {
        "url": sys.argv[1], "flush_s": 0.05, "heartbeat_s": 0.2, "lease_s": 1.5}})
    with record_attempt(cfg) as session:
        print(session.attempt_id, flush=True)
        for step in range(10**6):
            session.add_metrics({"train/query_loss": 1.0 / (step + 1)}, step)
            time.sleep(0.01)
    """
)


def test_sigkill_leaves_an_interrupted_attempt_with_its_metrics(registry_url: str) -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    proc = subprocess.Popen(
        [sys.executable, "-c", VICTIM, registry_url], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    attempt = int(proc.stdout.readline())
    store = Store(registry_url)
    deadline = time.monotonic() + 30
    while len(store.metrics(attempt)) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.get_attempt(attempt)["status"] == schema.RUNNING
    time.sleep(2.0)  # the live run keeps renewing its 1.5 s lease
    assert store.get_attempt(attempt)["status"] == schema.RUNNING
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    written = len(store.metrics(attempt))
    time.sleep(2.0)
    row = store.get_attempt(attempt)
    assert row["status"] == schema.INTERRUPTED and "heartbeat went stale" in row["error"]
    assert len(store.metrics(attempt)) == written >= 20
