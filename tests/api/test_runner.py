"""The runner: separate processes, a bounded number at once, cancel, crashes, kills."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from metalearn.api.launch import LaunchCheck
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner as _Runner
from metalearn.api.settable import Setting
from metalearn.registry import Store, schema

SRC = Path(__file__).resolve().parents[2] / "src"
FAKE_RUN = textwrap.dedent(
    """
    import os, sys, time
    from omegaconf import OmegaConf
    from metalearn.registry.record import record_attempt

    args = dict(a.split("=", 1) for a in sys.argv[1:])
    if args.get("mode") == "crash":
        sys.exit("crashed before recording anything")
    cfg = OmegaConf.create({"task_name": "fake", "registry": {
        "url": os.environ["METALEARN_REGISTRY_URL"], "flush_s": 0.05, "heartbeat_s": 0.2, "lease_s": 5}})
    with record_attempt(cfg) as session:
        for step in range(int(args.get("steps", 5))):
            session.add_metrics({"train/query_loss": 1.0 / (step + 1)}, step)
            time.sleep(float(args.get("sleep", 0.01)))
        session.add_metrics({"saw_api_token": float("METALEARN_API_TOKEN" in os.environ)}, 0)
        if args.get("mode") == "fail":
            raise RuntimeError("fake failure")
    """
)


# The fake project's allowlist: what its run.py reads.
SETTINGS = {"steps": Setting("int", 1, 10**6), "sleep": Setting("float", 0, 1),
            "mode": Setting("choice", choices=("ok", "fail", "crash"))}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose run.py records a fake attempt, steered by key=value arguments."""
    root = tmp_path / "project"
    (root / "conf").mkdir(parents=True)
    (root / "run.py").write_text(FAKE_RUN)
    (root / "conf" / "train.yaml").write_text("steps: 5\nsleep: 0.01\nmode: ok\nsecret_dir: /x\n")
    monkeypatch.setenv("PYTHONPATH", str(SRC))
    return root


def Runner(store: Store, project: Path, **kwargs) -> _Runner:  # noqa: N802 (stands for the class)
    """The real Runner with the real launch check over the fake project's config and allowlist."""
    validator = OverrideValidator(project / "conf", root=project, settings=SETTINGS, groups={})
    return _Runner(store, project, LaunchCheck(validator, store, project / "logs"), entry=["run.py"], **kwargs)


def _wait(store: Store, attempt: int, statuses: tuple[str, ...], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = store.get_attempt(attempt)
        if row["status"] in statuses:
            return row
        time.sleep(0.1)
    raise AssertionError(f"attempt {attempt} still {row['status']} after {timeout} s")


def test_runs_one_at_a_time_and_records_them(project: Path, sqlite_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALEARN_API_TOKEN", "server-only")
    store = Store(sqlite_url)
    runner = Runner(store, project, max_parallel=1, poll_s=0.05).start()
    try:
        first = runner.submit(None, ["steps=20", "sleep=0.05"])
        second = runner.submit(None, ["steps=3"])
        _wait(store, first, (schema.RUNNING,))
        time.sleep(0.5)
        assert store.get_attempt(second)["status"] == schema.QUEUED  # bounded: it waits
        assert _wait(store, first, schema.TERMINAL)["status"] == schema.COMPLETED
        assert _wait(store, second, schema.TERMINAL)["status"] == schema.COMPLETED
    finally:
        runner.stop()
    assert len(store.metrics(first, name="train/query_loss")) == 20
    assert len(store.metrics(second, name="train/query_loss")) == 3
    assert store.metrics(first, name="saw_api_token")[0]["value"] == 0.0  # not passed to children
    row = store.get_attempt(first)
    assert row["pid"] and row["command"][0] == "run.py" and row["output_dir"] is None
    assert any(a.startswith("hydra.run.dir=") for a in row["command"])  # the child's own argv


def test_a_failure_inside_is_failed_with_its_traceback(project: Path, sqlite_url: str) -> None:
    store = Store(sqlite_url)
    runner = Runner(store, project, poll_s=0.05).start()
    try:
        attempt = runner.submit(None, ["mode=fail"])
        row = _wait(store, attempt, schema.TERMINAL)
    finally:
        runner.stop()
    assert row["status"] == schema.FAILED and "RuntimeError: fake failure" in row["error"]
    assert len(store.metrics(attempt, name="train/query_loss")) == 5


def test_a_crash_before_recording_is_failed_with_the_log(project: Path, sqlite_url: str) -> None:
    store = Store(sqlite_url)
    runner = Runner(store, project, poll_s=0.05).start()
    try:
        row = _wait(store, runner.submit(None, ["mode=crash"]), schema.TERMINAL)
    finally:
        runner.stop()
    assert row["status"] == schema.FAILED
    assert "exited with status 1" in row["error"] and "crashed before recording" in row["error"]


def test_cancel_a_running_attempt(project: Path, sqlite_url: str) -> None:
    store = Store(sqlite_url)
    runner = Runner(store, project, poll_s=0.05, kill_after_s=5).start()
    try:
        attempt = runner.submit(None, ["steps=100000", "sleep=0.01"])
        deadline = time.monotonic() + 60
        while not store.metrics(attempt) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.cancel(attempt) == "cancelling"
        row = _wait(store, attempt, schema.TERMINAL, timeout=30)
    finally:
        runner.stop()
    assert row["status"] == schema.INTERRUPTED and "cancelled by request" in row["error"]
    assert store.metrics(attempt)  # what it logged stays


def test_a_killed_child_is_interrupted(project: Path, sqlite_url: str) -> None:
    store = Store(sqlite_url)
    runner = Runner(store, project, poll_s=0.05).start()
    try:
        attempt = runner.submit(None, ["steps=100000", "sleep=0.01"])
        deadline = time.monotonic() + 60
        while not store.metrics(attempt) and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(store.get_attempt(attempt)["pid"], signal.SIGKILL)
        row = _wait(store, attempt, schema.TERMINAL, timeout=30)
    finally:
        runner.stop()
    assert row["status"] == schema.INTERRUPTED and "killed by SIGKILL" in row["error"]


def test_every_row_is_validated_when_it_starts(project: Path, sqlite_url: str) -> None:
    """A row queued behind the API's back (a shared registry) is refused at launch, not run."""
    store = Store(sqlite_url)
    runner = Runner(store, project, poll_s=0.05)
    evil = store.create_attempt(status=schema.QUEUED, overrides=["secret_dir=/etc"],
                                command=["run.py", "mode=ok"])  # the stored command is not used
    forged = store.create_attempt(status=schema.QUEUED, overrides=["+callbacks.x._target_=builtins.print"],
                                  command=["run.py"])
    fine = runner.submit(None, ["steps=2"])
    runner.start()
    try:
        row = _wait(store, fine, schema.TERMINAL)
    finally:
        runner.stop()
    assert row["status"] == schema.COMPLETED
    for attempt, why in ((evil, "secret_dir is not settable"), (forged, "adding (+)")):
        row = store.get_attempt(attempt)
        assert row["status"] == schema.FAILED and row["pid"] is None
        assert row["error"].startswith("refused at launch") and why in row["error"]


class SlowCheck(LaunchCheck):
    """The launch check of a loaded server: a second between taking a row and starting it."""

    def argv(self, row: dict) -> list[str]:
        time.sleep(1.0)
        return super().argv(row)


def test_cancel_while_an_attempt_is_starting(project: Path, sqlite_url: str) -> None:
    """Between taking a queued row and starting its process the attempt is neither queued nor
    a child yet: a cancel sent then (within 0.1 s of the submit) was answered 409."""
    store = Store(sqlite_url)
    validator = OverrideValidator(project / "conf", root=project, settings=SETTINGS, groups={})
    runner = _Runner(store, project, SlowCheck(validator, store, project / "logs"), entry=["run.py"],
                     poll_s=0.05).start()
    try:
        attempt = runner.submit(None, ["steps=100000"])
        _wait(store, attempt, (schema.RUNNING,), timeout=10)
        assert runner.cancel(attempt) == schema.INTERRUPTED
        time.sleep(1.5)  # the launch check has returned by now
        row = store.get_attempt(attempt)
        assert row["status"] == schema.INTERRUPTED and row["pid"] is None and not runner.children
        assert row["error"] == "cancelled before it started"
        assert runner.submit(None, ["steps=2"])  # the slot is free again
    finally:
        runner.stop(cancel_running=True)


def test_cancel_right_after_submit_never_conflicts(project: Path, sqlite_url: str) -> None:
    store = Store(sqlite_url)
    runner = Runner(store, project, poll_s=0.01).start()
    try:
        for _ in range(10):
            attempt = runner.submit(None, ["steps=100000"])
            time.sleep(0.02)
            assert runner.cancel(attempt) in (schema.INTERRUPTED, "cancelling")
            assert _wait(store, attempt, schema.TERMINAL, timeout=30)["status"] == schema.INTERRUPTED
    finally:
        runner.stop(cancel_running=True)


SERVE_FAKE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from metalearn.registry import Store
    from tests.api.test_runner import Runner

    runner = Runner(Store(sys.argv[1]), Path(sys.argv[2]), poll_s=0.05).start()
    print(runner.submit(None, ["steps=100000", "sleep=0.01"]), flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    """Whether pid runs: a zombie has ended (an orphan's zombie waits for whoever adopted it,
    PID 1 in a container, which may take its time or never reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="finding a server's children needs /proc")
def test_a_restarted_server_adopts_the_child_a_killed_one_left(project: Path, sqlite_url: str,
                                                                tmp_path: Path) -> None:
    """A server killed with SIGKILL leaves its child running (children outlive their server);
    the server started after it counts that child against --max-parallel, can cancel it, and
    records its end, instead of starting a second attempt beside it."""
    script = tmp_path / "serve_fake.py"
    script.write_text(SERVE_FAKE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC.parent), str(SRC)]))
    first = subprocess.Popen([sys.executable, str(script), sqlite_url, str(project)], env=env,
                             stdout=subprocess.PIPE, text=True, cwd=SRC.parent)
    store, orphan_pid = Store(sqlite_url), None
    try:
        orphan = int(first.stdout.readline())
        deadline = time.monotonic() + 120
        while not store.metrics(orphan) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphan_pid = store.get_attempt(orphan)["pid"]
        assert orphan_pid and store.metrics(orphan), "the first server's attempt did not start"
        first.kill()  # SIGKILL: no cleanup of any kind
        first.wait(timeout=30)
        assert _alive(orphan_pid)

        runner = Runner(store, project, max_parallel=1, poll_s=0.05, kill_after_s=5).start()
        try:
            second = runner.submit(None, ["steps=2"])
            time.sleep(2)
            assert store.get_attempt(second)["status"] == schema.QUEUED  # not beside the orphan
            assert list(runner.children) == [orphan]
            assert runner.cancel(orphan) == "cancelling"
            row = _wait(store, orphan, schema.TERMINAL, timeout=30)
            assert row["status"] == schema.INTERRUPTED, row
            assert _wait(store, second, schema.TERMINAL)["status"] == schema.COMPLETED
        finally:
            runner.stop(cancel_running=True)
        assert not _alive(orphan_pid)
    finally:
        if first.poll() is None:
            first.kill()
        if orphan_pid and _alive(orphan_pid):
            os.killpg(orphan_pid, signal.SIGKILL)


def test_a_live_servers_children_are_not_adopted(project: Path, sqlite_url: str) -> None:
    """Two servers on one registry: each counts only its own children."""
    store = Store(sqlite_url)
    first = Runner(store, project, poll_s=0.05).start()
    second = Runner(store, project, poll_s=0.05)
    try:
        attempt = first.submit(None, ["steps=100000", "sleep=0.01"])
        _wait(store, attempt, (schema.RUNNING,))
        deadline = time.monotonic() + 60
        while store.get_attempt(attempt)["pid"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        second.start()
        mine = second.submit(None, ["steps=2"])
        assert _wait(store, mine, schema.TERMINAL)["status"] == schema.COMPLETED
        assert attempt not in second.children
    finally:
        second.stop()
        first.stop(cancel_running=True)
