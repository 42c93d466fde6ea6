"""Writing metric rows and test results: upserts keyed by (attempt, name, step) and
(attempt, group, metric), a repeated key keeping the last value."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from metalearn.registry import schema
from metalearn.registry.engine import write_tx
from metalearn.registry.errors import RegistryError
from metalearn.registry.values import finite_or_none

M = schema.metrics
T = schema.test_results
_RESULT_VALUES = ["value", "ci95", "episodes", "shots", "queries"]  # what a repeated result sets


class MetricWrites:
    """The Store's writes of metrics and test results, each call one transaction."""

    engine: Engine

    def add_metrics(self, attempt_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Upsert metric rows {name, step, value, time}; a repeated (name, step) keeps the last."""
        self._write_rows(write_metrics, metric_rows(attempt_id, rows))

    def put_test_results(self, attempt_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Upsert (attempt, group, metric) test results: value, ci95, episodes, shots, queries."""
        self._write_rows(write_test_results, result_rows(attempt_id, rows))

    def _write_rows(self, write: Callable[[Connection, list[dict[str, Any]]], None],
                    payload: list[dict[str, Any]]) -> None:
        """write(conn, payload) in a transaction of its own; none for no rows."""
        if not payload:
            return
        with write_tx(self.engine) as conn:
            write(conn, payload)


def write_metrics(conn: Connection, payload: list[dict[str, Any]]) -> None:
    """Upsert metric_rows in the caller's transaction."""
    upsert(conn, M, payload, ["attempt_id", "name", "step"], ["value", "time"])


def write_test_results(conn: Connection, payload: list[dict[str, Any]]) -> None:
    """Upsert result_rows in the caller's transaction."""
    upsert(conn, T, payload, ["attempt_id", "group", "metric"], _RESULT_VALUES)


def _value(value: Any) -> float | None:
    """A metric value for storage (None and NaN are stored as NULL)."""
    return None if value is None else finite_or_none(value)


def metric_rows(attempt_id: int, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows write_metrics upserts; a repeated (name, step) keeps the last."""
    unique = {(r["name"], int(r["step"])): r for r in rows}
    return [{"attempt_id": attempt_id, "name": n, "step": s, "value": _value(r["value"]), "time": r["time"]}
            for (n, s), r in unique.items()]


def result_rows(attempt_id: int, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows write_test_results upserts."""
    return [
        {
            "attempt_id": attempt_id,
            "group": str(r["group"]),
            "metric": str(r["metric"]),
            "value": finite_or_none(r["value"]),
            "ci95": finite_or_none(r["ci95"]),
            "episodes": int(r["episodes"]),
            "shots": int(r["shots"]),
            "queries": int(r["queries"]),
        }
        for r in rows
    ]


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str], update: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE for SQLite and PostgreSQL, as one executemany."""
    dialect = {"sqlite": sqlite_dialect, "postgresql": pg_dialect}.get(conn.dialect.name)
    if dialect is None:
        raise RegistryError(f"no upsert for dialect {conn.dialect.name!r}")
    stmt = dialect.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in update}
    )
    conn.execute(stmt, rows)
