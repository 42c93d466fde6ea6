"""End to end: a real server on loopback trains a debug=fast run, follows it, meta-tests it."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import LIVE_TOKEN

AUTH = {"Authorization": f"Bearer {LIVE_TOKEN}"}
TERMINAL = {"completed", "failed", "interrupted"}


def _follow(base: str, attempt: int, timeout: float) -> tuple[dict, list[dict], bool]:
    """Poll /metrics with after_step until the attempt ends: (final page, rows, seen live)."""
    rows: list[dict] = []
    after, live, deadline = None, False, time.monotonic() + timeout
    while time.monotonic() < deadline:
        params = {} if after is None else {"after_step": after}
        page = httpx.get(f"{base}/runs/{attempt}/metrics", params=params, timeout=10).json()
        if page["metrics"] and page["status"] in ("running", "testing"):
            live = True
        rows += page["metrics"]
        after = page["last_step"]
        if page["status"] in TERMINAL:
            return page, rows, live
        time.sleep(0.5)
    raise AssertionError(f"attempt {attempt} did not finish in {timeout} s")


@pytest.mark.slow
def test_train_follow_and_meta_test_over_http(server: str, served_project: Path) -> None:
    assert httpx.post(f"{server}/runs", json={"experiment": "reptile_amazon"}).status_code == 401
    response = httpx.post(f"{server}/runs", headers=AUTH, timeout=60,
                          json={"experiment": "reptile_amazon", "overrides": ["debug=fast"]})
    assert response.status_code == 202, response.text
    attempt = response.json()["id"]

    page, rows, live = _follow(server, attempt, timeout=480)
    shown = httpx.get(f"{server}/runs/{attempt}").json()
    assert page["status"] == "completed", shown["error"]
    assert live, "no metric was seen while the attempt was running"
    losses = [r["step"] for r in rows if r["name"] == "train/query_loss"]
    assert losses == [0, 1, 2, 3]  # debug=fast: 4 meta-steps, each followed exactly once
    assert shown["ckpt_path"] and Path(shown["ckpt_path"]).is_file()
    assert Path(shown["ckpt_path"]).is_relative_to(served_project / "logs")  # the server's folder
    assert {"val/acc", "test/acc"} <= set(shown["metrics"])
    assert len(shown["test_results"]) == 3

    body = {"shots": 2, "queries": 3, "episodes": 1, "domains": ["automotive"]}
    response = httpx.post(f"{server}/runs/{attempt}/test", headers=AUTH, json=body, timeout=60)
    assert response.status_code == 202, response.text
    test_id = response.json()["id"]
    page, _, _ = _follow(server, test_id, timeout=480)
    tested = httpx.get(f"{server}/runs/{test_id}").json()
    assert page["status"] == "completed", tested["error"]
    assert tested["kind"] == "test" and tested["parent_id"] == attempt
    assert tested["ckpt_path"] == shown["ckpt_path"]
    (result,) = tested["test_results"]
    assert (result["group"], result["metric"], result["shots"], result["queries"]) == (
        "automotive", "acc", 2, 3)
    assert result["episodes"] == 3  # one episode for each of automotive's three task families
    listed = httpx.get(f"{server}/runs").json()
    assert [r["id"] for r in listed] == [test_id, attempt]
