"""CPU threads of a training process: how many (the `threads` config key) and how idle
OpenMP threads wait.

Torch's own default, one OpenMP thread per core whose idle threads spin, is pathological on a
shared machine: a thread that waits at a barrier spins on a core another process needs, while
the thread it waits for is not running. docs/cpu_threads.md has the figures.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

THREADS_ENV = "OMP_NUM_THREADS"
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
SPIN_ENVS = (WAIT_POLICY_ENV, "GOMP_SPINCOUNT", "KMP_BLOCKTIME")  # a user's own choice, kept


def prefer_passive_wait(environ: MutableMapping[str, str] | None = None) -> None:
    """`OMP_WAIT_POLICY=PASSIVE` unless the user chose how OpenMP threads wait.

    Idle OpenMP threads then sleep instead of spinning, so `threads=N` beside other work costs
    some speed rather than most of it. OpenMP reads this when torch loads it: call this before
    `import torch` (the entry points do, in `metalearn.run.launch`).
    """
    environ = os.environ if environ is None else environ
    if not any(name in environ for name in SPIN_ENVS):
        environ[WAIT_POLICY_ENV] = "PASSIVE"


def resolve_threads(setting: object, environ: MutableMapping[str, str] | None = None) -> int | None:
    """The torch thread count for the config value `threads`.

    `auto`: `$OMP_NUM_THREADS` where set, else 1. A positive integer: that many. `null`: None,
    torch's own default (one thread per core). Anything else is a ValueError naming the key.
    """
    environ = os.environ if environ is None else environ
    if setting is None:
        return None
    if setting == "auto":
        given = environ.get(THREADS_ENV, "").strip()
        if not given:
            return 1
        if not given.isdigit() or int(given) < 1:
            raise ValueError(f"threads=auto reads ${THREADS_ENV}, which is {given!r}: "
                             "set it to a positive integer or unset it")
        return int(given)
    if isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1:
        return setting
    raise ValueError(f"threads must be auto, a positive integer or null, got {setting!r}")


@contextmanager
def limited_threads(setting: object) -> Iterator[int | None]:
    """Run the body on `resolve_threads(setting)` torch threads; yield that count.

    `$OMP_NUM_THREADS` is set to it as well, so processes started inside (DDP workers,
    launchers) use the same count; both are restored afterwards, so calling `train(cfg)` from a
    notebook leaves the session as it was.
    """
    count = resolve_threads(setting)
    if count is None:
        yield None
        return
    import torch  # here, not at import: the entry point sets the wait policy before torch loads

    before_threads, before_env = torch.get_num_threads(), os.environ.get(THREADS_ENV)
    torch.set_num_threads(count)
    os.environ[THREADS_ENV] = str(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before_threads)
        if before_env is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = before_env
