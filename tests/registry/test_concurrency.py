"""Parallel sweep jobs writing one registry lose no rows and never see 'database is locked'."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from metalearn.registry import Store, schema

JOB = textwrap.dedent(
    """
    import sys
    from metalearn.registry.session import AttemptSession
    from metalearn.registry.store import Store

    url, job, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = Store(url)  # every job races to create the schema on a new file
    session = AttemptSession.open(
        store, {"name": f"job{job}"},
        writer_options={"flush_s": 0.005, "heartbeat_s": 0.01, "lease_s": 30, "batch_size": 50},
    )
    for step in range(steps):
        session.add_metrics({"train/query_loss": 1.0 / (step + 1), "train/query_acc": 0.5}, step)
        if step % 100 == 0:
            store.list_attempts()  # readers run between the writes, as the CLI would
    session.put_test_results([{"group": "d", "metric": "acc", "value": 0.5, "ci95": 0.1,
                               "episodes": 1, "shots": 1, "queries": 1}])
    session.finish("completed")
    """
)


def test_parallel_jobs_lose_nothing(registry_url: str) -> None:
    url = registry_url
    jobs, steps = 6, 1500
    src = Path(__file__).resolve().parents[2] / "src"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, url, str(j), str(steps)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        )
        for j in range(jobs)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "database is locked" not in err
    store = Store(url)
    attempts = store.list_attempts()
    assert len(attempts) == jobs
    assert {a["status"] for a in attempts} == {schema.COMPLETED}
    for attempt in attempts:
        assert len(store.metrics(attempt["id"])) == 2 * steps
        assert len(store.test_results(attempt["id"])) == 1
