"""Store behaviour on both backends: attempts, metrics, test results, staleness."""
from __future__ import annotations

import math
import time
from datetime import timedelta

import pytest

from metalearn.registry import NotFound, RegistryError, Store, schema
from metalearn.registry.store import utcnow


def _rows(name: str, steps: range, scale: float = 1.0) -> list[dict]:
    return [{"name": name, "step": s, "value": s * scale, "time": time.time()} for s in steps]


def test_attempt_round_trip(registry_url: str) -> None:
    store = Store(registry_url)
    config = {"data": {"shots": 5}, "seed": 1, "tags": ["a"]}
    attempt = store.create_attempt(
        name="train", experiment="reptile_amazon", algorithm="reptile", config=config,
        overrides=["debug=fast"], host="h", pid=1, git_commit="abc",
    )
    row = store.get_attempt(attempt)
    assert row["status"] == schema.RUNNING and row["config"] == config
    assert row["overrides"] == ["debug=fast"] and row["started_at"] is not None
    assert store.set_status(attempt, schema.COMPLETED)
    row = store.get_attempt(attempt)
    assert row["status"] == schema.COMPLETED and row["ended_at"] is not None
    assert not store.set_status(attempt, schema.TESTING, only_status=schema.ACTIVE)


def test_ids_come_from_the_database_and_are_not_reused(registry_url: str) -> None:
    store = Store(registry_url)
    first = store.create_attempt(name="a")
    second = store.create_attempt(name="b")
    assert second > first
    with store.engine.begin() as conn:
        conn.execute(schema.attempts.delete().where(schema.attempts.c.id == second))
    assert store.create_attempt(name="c") > second


def test_unknown_fields_and_statuses_are_refused(registry_url: str) -> None:
    store = Store(registry_url)
    with pytest.raises(RegistryError, match="unknown attempt fields"):
        store.create_attempt(name="a", colour="blue")
    attempt = store.create_attempt(name="a")
    with pytest.raises(RegistryError, match="unknown status"):
        store.set_status(attempt, "done")
    with pytest.raises(NotFound):
        store.get_attempt(attempt + 100)


def test_metrics_upsert_nan_and_summary(registry_url: str) -> None:
    store = Store(registry_url)
    attempt = store.create_attempt(name="a")
    store.add_metrics(attempt, _rows("train/query_loss", range(10)))
    store.add_metrics(attempt, _rows("val/acc", range(0, 10, 5), 0.1))
    store.add_metrics(attempt, [{"name": "train/query_loss", "step": 9, "value": 0.5, "time": 0.0}])
    store.add_metrics(attempt, [{"name": "train/nan", "step": 1, "value": math.nan, "time": 0.0}])
    loss = store.metrics(attempt, name="train/query_loss")
    assert [r["step"] for r in loss] == list(range(10)) and loss[-1]["value"] == 0.5
    assert [r["step"] for r in store.metrics(attempt, after_step=7)] == [8, 9]
    summary = store.metric_summary(attempt)
    assert summary["train/query_loss"]["count"] == 10
    assert summary["train/query_loss"]["last"] == 0.5 and summary["train/query_loss"]["max"] == 8.0
    assert summary["val/acc"]["last"] == pytest.approx(0.5)
    assert summary["train/nan"]["last"] is None


def test_duplicates_within_one_batch_keep_the_last(registry_url: str) -> None:
    store = Store(registry_url)
    attempt = store.create_attempt(name="a")
    rows = _rows("x", range(3)) + [{"name": "x", "step": 1, "value": 42.0, "time": 0.0}]
    store.add_metrics(attempt, rows)
    assert [r["value"] for r in store.metrics(attempt)] == [0.0, 42.0, 2.0]


def test_test_results_and_best(registry_url: str) -> None:
    store = Store(registry_url)
    ids = []
    for acc, algo in ((0.6, "reptile"), (0.8, "maml"), (float("nan"), "maml")):
        attempt = store.create_attempt(name="a", experiment="e", algorithm=algo)
        store.add_metrics(attempt, [{"name": "test/acc", "step": 3, "value": acc, "time": 0.0}])
        store.add_metrics(attempt, [{"name": "test/acc", "step": 1, "value": 0.99, "time": 0.0}])
        store.set_status(attempt, schema.COMPLETED)
        ids.append(attempt)
    store.put_test_results(ids[0], [
        {"group": "books", "metric": "acc", "value": 0.6, "ci95": 0.02, "episodes": 100, "shots": 5, "queries": 10},
        {"group": "dvd", "metric": "acc", "value": math.nan, "ci95": 0.0, "episodes": 100, "shots": 5, "queries": 10},
    ])
    results = store.test_results(ids[0])
    assert [r["group"] for r in results] == ["books", "dvd"] and results[1]["value"] is None
    best = store.best("test/acc")
    assert [(a["id"], v) for a, v in best] == [(ids[1], 0.8), (ids[0], 0.6)]
    assert [a["id"] for a, _ in store.best("test/acc", mode="min", limit=1)] == [ids[0]]
    assert [a["id"] for a, _ in store.best("test/acc", algorithm="reptile")] == [ids[0]]
    with pytest.raises(RegistryError):
        store.best("test/acc", mode="median")


def test_list_filters(registry_url: str) -> None:
    store = Store(registry_url)
    a = store.create_attempt(name="a", experiment="x", algorithm="reptile")
    b = store.create_attempt(name="b", experiment="y", algorithm="maml", status=schema.QUEUED)
    c = store.create_attempt(name="c", experiment="x", algorithm="maml", kind="test", parent_id=a)
    assert [r["id"] for r in store.list_attempts()] == [c, b, a]
    assert [r["id"] for r in store.list_attempts(experiment="x")] == [c, a]
    assert [r["id"] for r in store.list_attempts(status="queued")] == [b]
    assert [r["id"] for r in store.list_attempts(algorithm="maml", limit=1)] == [c]
    assert [r["id"] for r in store.list_attempts(parent_id=a)] == [c]
    assert "config" not in store.list_attempts()[0]
    assert "config" in store.list_attempts(with_config=True)[0]


def test_stale_heartbeat_is_interrupted_on_read(registry_url: str) -> None:
    store = Store(registry_url)
    alive = store.create_attempt(name="alive")
    dead = store.create_attempt(name="dead")
    queued = store.create_attempt(name="q", status=schema.QUEUED)
    store.heartbeat(alive, lease_s=60)
    store.update_attempt(dead, lease_until=utcnow() - timedelta(seconds=1))
    statuses = {r["id"]: r["status"] for r in store.list_attempts()}
    assert statuses == {alive: "running", dead: "interrupted", queued: "queued"}
    assert "heartbeat went stale" in store.get_attempt(dead)["error"]
    assert not store.heartbeat(dead, lease_s=60)  # a reaped attempt is not revived
