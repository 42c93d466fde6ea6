"""The server fixture's wait: as long as a loaded machine needs while the process lives, at
once when it exits, and a message that says what it waited for and how long."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.api.conftest import wait_for_health
from tests.conftest import _free_port


def test_the_wait_ends_when_the_server_exits(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("Traceback ...\nImportError: no module named torch\n")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    started = time.monotonic()
    with pytest.raises(RuntimeError) as caught:
        wait_for_health(proc, f"http://127.0.0.1:{_free_port()}", log, timeout=600)
    assert time.monotonic() - started < 60  # not the 600 s it would give a live process
    message = str(caught.value)
    assert "GET http://127.0.0.1:" in message and "/health" in message and "waited" in message
    assert "exited with status 3" in message and "no module named torch" in message


def test_the_wait_says_how_long_a_live_server_was_given(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(RuntimeError, match=r"waited \d+\.\d s \(at most 1 s\)(?s:.*)still runs(?s:.*)\(no log\)"):
            wait_for_health(proc, f"http://127.0.0.1:{_free_port()}", tmp_path / "missing.log", timeout=1)
    finally:
        proc.kill()
        proc.wait()
