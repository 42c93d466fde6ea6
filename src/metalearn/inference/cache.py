"""A bounded cache of loaded checkpoints, least recently used first out: a server answering
predictions loads a model once, not per request, and holds at most `size` of them."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from metalearn.inference.loading import LoadedCheckpoint


class CheckpointCache:
    """Loaded checkpoints by file (path, size and modification time: a file written again is
    loaded again), at most `size`."""

    def __init__(self, size: int = 2) -> None:
        if size < 1:
            raise ValueError(f"a checkpoint cache holds at least one checkpoint, got size={size}")
        self.size = size
        self._loaded: OrderedDict[tuple, LoadedCheckpoint] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, load: Callable[[], LoadedCheckpoint]) -> LoadedCheckpoint:
        """The checkpoint at `path`, from the cache or `load()`ed now."""
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        loaded = load()  # outside the lock: loading takes seconds
        with self._lock:
            self._loaded[key] = loaded
            self._loaded.move_to_end(key)
            while len(self._loaded) > self.size:
                self._loaded.popitem(last=False)
        return loaded

    def __len__(self) -> int:
        return len(self._loaded)
