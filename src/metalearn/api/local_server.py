"""A `metalearn serve` child process on a free loopback port, for the tests and benchmarks that
need a real server: start it over a registry with its output in a log file, wait until it
answers GET /health while it lives, and stop it (SIGINT, a grace period, then SIGKILL), always
reaping the process so no zombie is left behind."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import metalearn

HOST = "127.0.0.1"
# How long a server process may take to answer /health: importing torch, Lightning and the app
# takes seconds on an idle machine and over a minute on a loaded one. The wait ends at once
# when the process exits.
START_S = 600.0
STOP_S = 30.0  # how long a server may take to shut down after SIGINT before it is killed
LOG_TAIL = 4000  # characters of the server's log an error message ends with
# The folder this metalearn is imported from: first on the child's PYTHONPATH, so the server
# runs the same code as the process that starts it (not whichever checkout is installed).
SOURCE = str(Path(metalearn.__file__).resolve().parents[1])
# Loopback only: a proxy named in the environment is never asked for /health.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerStartError(RuntimeError):
    """The server did not answer /health: it exited, or the time ran out (the message says which)."""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def log_tail(path: Path, chars: int = LOG_TAIL) -> str:
    """The end of a log file, or "(no log)" where there is none."""
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


def _healthy(base: str) -> bool:
    """Whether GET base/health answers 200 (False while nothing listens or it answers otherwise)."""
    try:
        with _OPENER.open(f"{base}/health", timeout=5) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # not listening yet, or an error status
        return False


def wait_for_health(proc: subprocess.Popen, base: str, log_path: Path, timeout: float = START_S) -> float:
    """Wait until the server at base answers GET /health with 200, while proc lives; the
    seconds it took. Raises ServerStartError saying what was awaited, for how long, and why it
    ended (the process exited, or the time ran out), with the end of the server's log."""
    started = time.monotonic()
    while True:
        if _healthy(base):
            return time.monotonic() - started
        waited = time.monotonic() - started
        code = proc.poll()
        if code is not None or waited > timeout:
            why = f"the process exited with status {code}" if code is not None else "the process still runs"
            raise ServerStartError(f"server did not start: waited {waited:.1f} s (at most {timeout:.0f} s) for "
                                   f"GET {base}/health to answer 200; {why}. Its log ends:\n{log_tail(log_path)}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen, *, grace_s: float = STOP_S) -> int:
    """Stop a server as Ctrl-C would (SIGINT), kill it if it is still running after grace_s,
    and reap it whatever happens; its exit status (negative: the signal that ended it)."""
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass  # killed below
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc.returncode


@dataclass
class LocalServer:
    """A started `metalearn serve`: its process, base URL and log file; ready_s is how long it
    took to answer /health once waited for."""

    proc: subprocess.Popen
    base: str
    log_path: Path
    ready_s: float | None = None

    def wait(self, timeout: float = START_S) -> float:
        """Wait until it answers /health (see wait_for_health); the seconds it took."""
        self.ready_s = wait_for_health(self.proc, self.base, self.log_path, timeout)
        return self.ready_s

    def stop(self, *, grace_s: float = STOP_S) -> int:
        """Stop and reap it (see stop); its exit status."""
        return stop(self.proc, grace_s=grace_s)

    def log_tail(self, chars: int = LOG_TAIL) -> str:
        return log_tail(self.log_path, chars)


def start(registry: str, *, token: str, cwd: Path, log_path: Path, serve_args: Sequence[str] = (),
          env: Mapping[str, str] | None = None, unset: Iterable[str] = (), port: int | None = None) -> LocalServer:
    """Start `metalearn --url registry serve` on a loopback port (port, else a free one) in cwd, with this
    process's environment plus env, less the variables in unset, API token `token`, and this
    metalearn's source first on PYTHONPATH; stdout and stderr go to log_path (overwritten).
    serve_args are more options of `serve` (--max-parallel 1, --root DIR). Returns at once:
    call wait() before sending requests, and stop() in the end (or use `running`)."""
    port = port or free_port()
    child = {**os.environ, **(env or {}), "METALEARN_API_TOKEN": token,
             "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE, os.environ.get("PYTHONPATH")]))}
    for name in unset:
        child.pop(name, None)
    command = [sys.executable, "-m", "metalearn.cli", "--url", registry, "serve", "--host", HOST,
               "--port", str(port), *serve_args]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:  # the child writes to its own copy of the descriptor
        proc = subprocess.Popen(command, cwd=cwd, env=child, stdout=log, stderr=subprocess.STDOUT)
    return LocalServer(proc, f"http://{HOST}:{port}", log_path)


@contextmanager
def running(registry: str, *, token: str, cwd: Path, log_path: Path, serve_args: Sequence[str] = (),
            env: Mapping[str, str] | None = None, unset: Iterable[str] = (),
            timeout: float = START_S) -> Iterator[LocalServer]:
    """A server started (see start) and answering /health; stopped and reaped on leaving,
    also when it never became ready (ServerStartError then says why)."""
    server = start(registry, token=token, cwd=cwd, log_path=log_path, serve_args=serve_args, env=env, unset=unset)
    try:
        server.wait(timeout)
        yield server
    finally:
        server.stop()
