"""Start queued attempts as separate `metalearn train` processes, a bounded number at once.

The queue lives in the registry (status queued), so it survives a server restart and
several servers may share one registry: a server takes a row only by moving it from
queued to running in one conditional UPDATE. While a child lives, the server renews its
lease too (the child also does, once its imports are done); when a child exits without a
final status, the server records one from its exit code and the tail of its log.

Every row is validated again when it starts (`LaunchCheck.argv`), whoever queued it, and the
child gets the validated arguments, never the row's stored command line.

Children outlive their server (each is its own session): a server stopped, or killed with
SIGKILL, leaves them running and recording themselves. A server started after it adopts
them: before it starts anything it finds, on Linux, the live processes of this host's active
rows that a server started and that no live server is the parent of, and counts, cancels and
settles them as its own (their exit status is unknown to it).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from metalearn.api.auth import TOKEN_ENV
from metalearn.api.launch import LaunchCheck
from metalearn.api.overrides import OverrideError
from metalearn.registry import schema
from metalearn.registry.engine import URL_ENV
from metalearn.registry.errors import RegistryError
from metalearn.registry.record import ATTEMPT_ENV
from metalearn.registry.store import Store, utcnow

log = logging.getLogger(__name__)


class Conflict(RegistryError):
    """The attempt is not in a state that allows the request (answered with 409)."""


class QueueFull(RegistryError):
    """As many attempts wait as the server allows (answered with 429 and Retry-After)."""


SERVER_ENV = "METALEARN_SERVER_PID"  # in a child's environment: the pid of the server that started it


@dataclass
class Child:
    """A running attempt process and what the server knows about it."""

    proc: subprocess.Popen | None  # None: adopted from an earlier server, not this process's child
    log_path: Path | None
    pid: int = 0
    cancel_at: float | None = None  # monotonic time of the cancel request
    killed: bool = field(default=False)

    def __post_init__(self) -> None:
        if self.proc is not None:
            self.pid = self.proc.pid

    def ended(self, attempt_id: int) -> bool:
        """Whether the process has exited (an adopted one: is no longer that attempt's process)."""
        if self.proc is not None:
            return self.proc.poll() is not None
        return server_of(self.pid, attempt_id) is None


class Runner:
    """Runs queued attempts of one project against one registry.

    The project root is where each child runs and keeps logs/ (and data/ unless
    `$METALEARN_DATA` says otherwise): a clone, or any folder where metalearn is installed. The
    child is `python -m metalearn.run` (what `metalearn train` runs); `entry` replaces the
    `-m metalearn.run` part.
    """

    def __init__(
        self,
        store: Store,
        root: str | Path,
        check: LaunchCheck,
        *,
        max_parallel: int = 1,
        max_queued: int = 16,
        python: str = sys.executable,
        entry: Sequence[str] = ("-m", "metalearn.run"),
        log_dir: str | Path | None = None,
        poll_s: float = 0.5,
        lease_s: float = 60.0,
        kill_after_s: float = 15.0,
    ) -> None:
        if max_parallel < 1 or max_queued < 1:
            raise ValueError(f"max_parallel and max_queued must be at least 1 (got "
                             f"{max_parallel}, {max_queued})")
        self.store, self.root, self.check = store, Path(root).resolve(), check
        self.max_parallel, self.max_queued, self.python = max_parallel, max_queued, python
        self.entry = list(entry)
        self.log_dir = Path(log_dir) if log_dir else self.root / "logs" / "api"
        self.poll_s, self.lease_s, self.kill_after_s = poll_s, lease_s, kill_after_s
        self.children: dict[int, Child] = {}
        self._starting: dict[int, bool] = {}  # taken from the queue, no process yet: cancelled?
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = 0.0

    # ---- requests --------------------------------------------------------------------------
    def submit(self, experiment: str | None, overrides: Sequence[str], *, kind: str = "train",
               parent_id: int | None = None) -> int:
        """Queue an attempt; returns its id at once, or raises QueueFull."""
        head = [f"experiment={experiment}"] if experiment else []
        with self._lock:  # one count-then-insert at a time in this server
            if len(self.store.queued(self.max_queued)) >= self.max_queued:
                raise QueueFull(f"{self.max_queued} attempts are already waiting; try again later")
            attempt = self.store.create_attempt(
                status=schema.QUEUED, kind=kind, parent_id=parent_id, experiment=experiment,
                name=experiment or "train", overrides=head + list(overrides),
                command=["metalearn train", *head, *overrides],
            )
        self._wake.set()
        return attempt

    def cancel(self, attempt_id: int) -> str:
        """Stop a queued or running attempt; returns its status now, or raises Conflict."""
        if self.store.set_status(attempt_id, schema.INTERRUPTED, only_status=[schema.QUEUED],
                                 error="cancelled before it started"):
            return schema.INTERRUPTED
        with self._lock:
            if self._starting.get(attempt_id) is False:  # taken, not started: it never will be
                self._starting[attempt_id] = True
                if self.store.set_status(attempt_id, schema.INTERRUPTED, only_status=[schema.RUNNING],
                                         error="cancelled before it started"):
                    return schema.INTERRUPTED
            child = self.children.get(attempt_id)
            if child is not None and child.cancel_at is None:
                child.cancel_at = time.monotonic()
                _signal_group(child.pid, signal.SIGTERM)
        if child is not None:
            self._wake.set()
            return "cancelling"
        row = self.store.get_attempt(attempt_id)
        if row["status"] in schema.TERMINAL:
            raise Conflict(f"attempt {attempt_id} is already {row['status']}")
        raise Conflict(f"attempt {attempt_id} runs outside this server (host {row['host']}, pid {row['pid']})")

    # ---- the dispatcher thread -------------------------------------------------------------
    def start(self) -> Runner:
        """Start dispatching queued attempts in a background thread."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.adopt()
        self._thread = threading.Thread(target=self._loop, name="metalearn-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, cancel_running: bool = False, timeout: float = 30.0) -> None:
        """Stop dispatching; optionally cancel the children (else they run on and record themselves)."""
        if cancel_running:
            for attempt_id in list(self.children):
                self.cancel(attempt_id)
            deadline = time.monotonic() + timeout
            while self.children and time.monotonic() < deadline:
                self._wake.set()
                time.sleep(0.1)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # logged; a database outage must not end the dispatcher for good
                log.exception("runner tick failed; retrying")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def tick(self) -> None:
        """One round: settle exited children, escalate cancels, renew leases, start queued rows."""
        for attempt_id, child in list(self.children.items()):
            if child.ended(attempt_id):
                self._settle(attempt_id, child)
            elif child.cancel_at is not None and not child.killed and \
                    time.monotonic() - child.cancel_at > self.kill_after_s:
                _signal_group(child.pid, signal.SIGKILL)
                child.killed = True
        if self.children and time.monotonic() - self._last_beat > self.lease_s / 4:
            for attempt_id in list(self.children):
                self.store.heartbeat(attempt_id, self.lease_s)
            self._last_beat = time.monotonic()
        free = self.max_parallel - len(self.children)
        if free > 0 and self.store.queued(1):
            self.adopt()  # a child an earlier server left must not get company it was not allowed
            for row in self.store.queued(self.max_parallel - len(self.children)):
                self._launch(row)

    def adopt(self) -> list[int]:
        """Take on the live children an earlier server of this host left running: active rows
        whose process a server started and that no live server is the parent of."""
        adopted = []
        host = socket.gethostname()
        for row in self.store.list_attempts(status=list(schema.ACTIVE)):
            attempt_id, pid = row["id"], row["pid"]
            if row["host"] != host or not pid or attempt_id in self.children:
                continue
            server = server_of(pid, attempt_id)
            if server is None or server == _parent_of(pid):
                continue  # not a server's child, or its server lives (this one or another)
            with self._lock:
                self.children[attempt_id] = Child(None, None, pid)
            adopted.append(attempt_id)
            log.info("adopted attempt %d (pid %d), left running by server pid %d", attempt_id, pid, server)
        return adopted

    def _launch(self, row: dict) -> None:
        """Take a queued row (if no one else did), validate it again and start its process,
        unless it is cancelled meanwhile."""
        attempt_id = row["id"]
        with self._lock:
            self._starting[attempt_id] = False
        try:
            if self.store.set_status(attempt_id, schema.RUNNING, only_status=[schema.QUEUED],
                                     host=socket.gethostname(), started_at=schema_now(),
                                     lease_until=schema_now(self.lease_s)):
                self._start(attempt_id)
        finally:
            with self._lock:
                self._starting.pop(attempt_id, None)

    def _start(self, attempt_id: int) -> None:
        """Validate a taken row again and start its process (see _launch)."""
        try:
            argv = self.check.argv(self.store.get_attempt(attempt_id))
        except OverrideError as exc:
            log.warning("attempt %d refused at launch: %s", attempt_id, exc)
            self.store.set_status(attempt_id, schema.FAILED, error=f"refused at launch: {exc}",
                                  only_status=[schema.RUNNING])
            return
        log_path = self.log_dir / f"{utcnow():%Y-%m-%d_%H-%M-%S}_attempt-{attempt_id}.log"
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}  # the child needs no API token
        env.update({ATTEMPT_ENV: str(attempt_id), URL_ENV: self.store.url, "PROJECT_ROOT": str(self.root),
                    SERVER_ENV: str(os.getpid())})
        if (self.root / "src" / "metalearn").is_dir():  # a checkout that is not pip-installed
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root / "src"), env.get("PYTHONPATH")]))
        command = [self.python, *self.entry, *argv, run_dir_override(attempt_id)]
        with self._lock:  # a cancel either comes before this (and nothing starts) or finds the child
            if self._starting.get(attempt_id):
                log.info("attempt %d cancelled before it started", attempt_id)
                return
            try:
                with open(log_path, "ab") as out:
                    proc = subprocess.Popen(command, cwd=self.root, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
            except OSError as exc:
                self.store.set_status(attempt_id, schema.FAILED, error=f"could not start {command}: {exc}")
                return
            self.children[attempt_id] = Child(proc, log_path)
        self.store.update_attempt(attempt_id, pid=proc.pid)
        log.info("attempt %d started: pid %d, log %s", attempt_id, proc.pid, log_path)

    def _settle(self, attempt_id: int, child: Child) -> None:
        """Record a final status for a child that exited without one (or was cancelled)."""
        with self._lock:
            self.children.pop(attempt_id, None)
        open_states = [*schema.ACTIVE, schema.QUEUED]
        if child.cancel_at is not None:
            self.store.set_status(attempt_id, schema.INTERRUPTED, error="cancelled by request",
                                  only_status=[*open_states, schema.FAILED, schema.INTERRUPTED])
            return
        if child.proc is None:
            self.store.set_status(attempt_id, schema.INTERRUPTED, only_status=open_states,
                                  error="its process ended with no final status; the server that "
                                        "started it had stopped, so its exit status is unknown")
            log.info("adopted attempt %d ended", attempt_id)
            return
        code = child.proc.returncode
        if code == 0:
            self.store.set_status(attempt_id, schema.COMPLETED, only_status=open_states)
        elif code < 0:
            name = signal.Signals(-code).name
            self.store.set_status(attempt_id, schema.INTERRUPTED, only_status=open_states,
                                  error=f"killed by {name}\n{_tail(child.log_path)}")
        else:
            self.store.set_status(attempt_id, schema.FAILED, only_status=open_states,
                                  error=f"exited with status {code}\n{_tail(child.log_path)}")
        log.info("attempt %d exited with %s", attempt_id, code)


def run_dir_override(attempt_id: int) -> str:
    """A Hydra run folder of its own, so attempts started in the same second never share one."""
    return f"hydra.run.dir=${{paths.log_dir}}/${{task_name}}/runs/${{now:%Y-%m-%d_%H-%M-%S}}_a{attempt_id}"


def schema_now(plus_s: float = 0.0) -> datetime:
    """Naive UTC now (plus plus_s seconds), as the registry stores times."""
    return utcnow() + timedelta(seconds=plus_s)


def server_of(pid: int, attempt_id: int) -> int | None:
    """The pid of the server that started process pid as attempt attempt_id, from the
    environment it was started with (Linux's /proc); None when it is not such a process (or
    not alive, or this system has no /proc)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env = dict(item.partition(b"=")[::2] for item in raw.split(b"\0") if item)
    server = env.get(SERVER_ENV.encode(), b"")
    if env.get(ATTEMPT_ENV.encode()) != str(attempt_id).encode() or not server.isdigit():
        return None
    return int(server)


def _parent_of(pid: int) -> int | None:
    """The parent pid of process pid (Linux's /proc), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])  # after "(command name)": state, ppid


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal a child's whole process group (DDP workers, data loaders included): each child
    leads its own session, so its group id is its pid."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        log.debug("process group %d already gone", pid)


def _tail(path: Path, lines: int = 40) -> str:
    """The last lines of a child's log, for the error text."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])
