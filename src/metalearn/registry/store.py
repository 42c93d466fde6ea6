"""The registry store: attempts, metrics and test results in SQLite or PostgreSQL.

`Store` is the one object callers hold. It owns the engine; its methods come from one part
per job, each in its own module: writing attempts (attempt_writes), their heartbeat leases
(leases), reading attempts (attempt_queries), writing and reading metrics and test results
(metric_writes, metric_reads)."""
from __future__ import annotations

from metalearn.registry.attempt_queries import AttemptQueries, is_debug
from metalearn.registry.attempt_writes import DEFAULT_LEASE_S, AttemptWrites
from metalearn.registry.engine import default_url, make_engine
from metalearn.registry.leases import Leases
from metalearn.registry.metric_reads import MetricReads
from metalearn.registry.metric_writes import MetricWrites
from metalearn.registry.migrate import ensure_schema
from metalearn.registry.values import finite_or_none, utcnow

__all__ = ["DEFAULT_LEASE_S", "Store", "finite_or_none", "is_debug", "utcnow"]


class Store(AttemptWrites, Leases, AttemptQueries, MetricWrites, MetricReads):
    """Reads and writes one registry database; safe to share between threads."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine = make_engine(self.url)
        ensure_schema(self.engine)

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        """The backend: `sqlite` or `postgresql` (what its columns hold: registry.limits)."""
        return self.engine.dialect.name
