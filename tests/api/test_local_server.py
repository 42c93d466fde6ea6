"""The `metalearn serve` child process of the tests and benchmarks: stopping it leaves no
zombie whether it obeys SIGINT or has to be killed, and a server that exits at once ends the
wait at once with what its log says."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metalearn.api import local_server
from metalearn.api.local_server import LocalServer, ServerStartError

# A child that says "ready" once its SIGINT handler is in place (a signal sent earlier would
# meet Python's default handler), then sleeps.
IGNORES_SIGINT = ("import signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                  "print('ready', flush=True); time.sleep(120)")
EXITS_ON_SIGINT = ("import signal, sys, time; signal.signal(signal.SIGINT, lambda *_: sys.exit(0)); "
                   "print('ready', flush=True); time.sleep(120)")


def started(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def assert_reaped(proc: subprocess.Popen) -> None:
    """The child's exit status was collected: no zombie left for the kernel to keep."""
    assert proc.returncode is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(proc.pid, os.WNOHANG)


def test_a_server_that_ignores_sigint_is_killed_and_reaped() -> None:
    proc = started(IGNORES_SIGINT)
    begun = time.monotonic()
    assert local_server.stop(proc, grace_s=0.5) == -signal.SIGKILL
    assert time.monotonic() - begun < 30  # the grace period, not the child's 120 s
    assert_reaped(proc)
    proc.stdout.close()


def test_a_server_that_obeys_sigint_is_not_killed() -> None:
    proc = started(EXITS_ON_SIGINT)
    assert local_server.stop(proc, grace_s=60) == 0
    assert_reaped(proc)
    proc.stdout.close()


def test_stopping_a_server_that_already_exited_reaps_it() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    deadline = time.monotonic() + 60
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.05)  # until it is a zombie: exited, not reaped
    assert local_server.stop(proc) == 3
    assert_reaped(proc)


def test_the_wait_ends_at_once_when_the_server_exits(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    code = "import sys; print('Traceback ...'); print('ImportError: no module named torch'); sys.exit(3)"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)
    server = LocalServer(proc, f"http://127.0.0.1:{local_server.free_port()}", log)
    begun = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        server.wait(timeout=600)
    assert time.monotonic() - begun < 60  # not the 600 s it would give a live process
    message = str(caught.value)
    assert f"GET {server.base}/health" in message and "waited" in message and "(at most 600 s)" in message
    assert "exited with status 3" in message and message.endswith("ImportError: no module named torch\n")
    assert server.ready_s is None
    server.stop()
    assert_reaped(proc)


def test_a_metalearn_serve_that_cannot_start_is_reported_and_reaped(tmp_path: Path) -> None:
    """Through start(): the real command with a registry URL it refuses; the log holds its reason."""
    log = tmp_path / "logs" / "server.log"
    server = local_server.start("nosuch://registry", token="t", cwd=tmp_path, log_path=log)
    try:
        with pytest.raises(ServerStartError, match=r"(?s)exited with status 1\b.*unsupported registry backend"):
            server.wait(timeout=600)
    finally:
        assert server.stop() == 1
    assert_reaped(server.proc)
    assert "unsupported registry backend" in log.read_text()
