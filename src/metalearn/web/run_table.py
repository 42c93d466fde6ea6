"""The runs table: attempts filtered, sorted by any column and cut into pages, with the
monitored metric's final value and the mean meta-test score beside each row.

The first page in the default order (newest first) is two indexed queries however many
attempts there are; sorting by wall time, metric or score reads those values for every
attempt the filters keep, then pages."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, func, select

from metalearn.registry import report, schema
from metalearn.registry.engine import read_tx
from metalearn.registry.store import Store

A, M = schema.attempts, schema.metrics
# Sortable in SQL: the column each sort key names.
SQL_SORTS = {"id": A.c.id, "experiment": A.c.experiment, "algorithm": A.c.algorithm,
             "status": A.c.status, "study": A.c.study, "trial": A.c.trial, "started": A.c.started_at,
             "kind": A.c.kind}
SORTS = (*SQL_SORTS, "wall", "metric", "score")
PER_PAGE = 50
MAX_PER_PAGE = 500


@dataclass(frozen=True)
class Filters:
    """What the table keeps: each None or empty keeps every attempt."""

    experiment: str | None = None
    status: tuple[str, ...] = ()
    study: str | None = None
    tag: str | None = None
    algorithm: str | None = None


@dataclass
class Page:
    """One page of rows, the count the filters keep, and how they were sorted."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    sort: str
    descending: bool
    filters: Filters = field(default_factory=Filters)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def active(self) -> bool:
        """Whether a row on this page may still change (the page then polls for updates)."""
        return any(r["status"] in (schema.QUEUED, *schema.ACTIVE) for r in self.rows)


def page_of(store: Store, filters: Filters, *, sort: str = "id", descending: bool = True,
            page: int = 1, per_page: int = PER_PAGE) -> Page:
    """The page'th page (from 1) of attempts the filters keep, sorted by sort."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {list(SORTS)}, not {sort!r}")
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, page)
    store.reap_stale()
    where = _where(store, filters)
    with read_tx(store.engine) as conn:
        total = conn.execute(select(func.count()).select_from(A).where(*where)).scalar_one()
        if sort in SQL_SORTS:
            column = SQL_SORTS[sort]
            order = [column.desc() if descending else column.asc(), A.c.id.desc() if descending else A.c.id.asc()]
            ids = [i for (i,) in conn.execute(select(A.c.id).where(*where).order_by(*order)
                                              .limit(per_page).offset((page - 1) * per_page))]
        else:
            ids = _sorted_in_python(store, conn, where, sort, descending)[(page - 1) * per_page: page * per_page]
        rows = {r["id"]: dict(r) for r in conn.execute(select(A).where(A.c.id.in_(ids))).mappings()} if ids else {}
    ordered = [rows[i] for i in ids if i in rows]
    return Page(_with_scores(store, ordered), total, page, per_page, sort, descending, filters)


def _where(store: Store, filters: Filters) -> list[Any]:
    """SQL conditions for the filters; a tag (inside a JSON list) is matched here in Python."""
    where: list[Any] = []
    if filters.status:
        where.append(A.c.status.in_(list(filters.status)))
    for column, value in ((A.c.experiment, filters.experiment), (A.c.study, filters.study),
                          (A.c.algorithm, filters.algorithm)):
        if value:
            where.append(column == value)
    if filters.tag:
        with read_tx(store.engine) as conn:
            tagged = [i for i, tags in conn.execute(select(A.c.id, A.c.tags).where(*where))
                      if isinstance(tags, list) and filters.tag in tags]
        where.append(A.c.id.in_(tagged))
    return where


def _sorted_in_python(store: Store, conn: Any, where: list[Any], sort: str, descending: bool) -> list[int]:
    """Ids of every kept attempt by wall time, monitored metric or score; those without one last."""
    if sort == "wall":
        values = {i: wall_seconds(s, e) for i, s, e in
                  conn.execute(select(A.c.id, A.c.started_at, A.c.ended_at).where(*where))}
    else:
        ids = [i for (i,) in conn.execute(select(A.c.id).where(*where))]
        prefix = "val/" if sort == "metric" else "test/"
        values = dict.fromkeys(ids)
        values.update(_headline_values(conn, prefix, ids))
    known = sorted((i for i, v in values.items() if v is not None),
                   key=lambda i: (values[i], i), reverse=descending)
    return known + sorted((i for i, v in values.items() if v is None), reverse=True)


def _headline_values(conn: Any, prefix: str, ids: Sequence[int]) -> dict[int, float]:
    """Final value of each attempt's `val/<metric>` or `test/<metric>` (one word, no interval
    or per-group suffix), for sorting."""
    last = (select(M.c.attempt_id, M.c.name, func.max(M.c.step).label("step"))
            .where(M.c.name.like(f"{prefix}%")).group_by(M.c.attempt_id, M.c.name).subquery())
    stmt = select(M.c.attempt_id, M.c.name, M.c.value).join(
        last, and_(M.c.attempt_id == last.c.attempt_id, M.c.name == last.c.name, M.c.step == last.c.step))
    wanted = set(ids)
    out: dict[int, float] = {}
    for attempt, name, value in conn.execute(stmt):
        leaf = name[len(prefix):]
        if attempt in wanted and value is not None and "/" not in leaf and "_" not in leaf:
            out[int(attempt)] = float(value)
    return out


def wall_seconds(started: datetime | None, ended: datetime | None) -> float | None:
    """Seconds from start to end (to now while it runs); None before it starts."""
    if started is None:
        return None
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # the registry keeps naive UTC times
    return ((ended or now) - started).total_seconds()


def _with_scores(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its monitored metric (name, final value), mean meta-test score and
    interval, and wall seconds; the config is dropped (it is large)."""
    names: dict[int, tuple[str, str, str]] = {}
    for row in rows:
        metric, _mode = report.objective_of(row.get("config"))
        callbacks = (row.get("config") or {}).get("callbacks") or {}
        monitor = ((callbacks.get("model_checkpoint") or {}).get("monitor")) or f"val/{metric}"
        names[row["id"]] = (str(monitor), f"test/{metric}", f"test/{metric}_ci95")
    wanted: dict[str, list[int]] = {}
    for attempt, trio in names.items():
        for name in trio:
            wanted.setdefault(name, []).append(attempt)
    finals = {name: store.final_values(name, ids) for name, ids in wanted.items()}
    out = []
    for row in rows:
        monitor, score, ci = names[row["id"]]
        row = {k: v for k, v in row.items() if k != "config"}
        row.update(monitor=monitor, monitor_value=finals[monitor].get(row["id"]),
                   score_name=score, score=finals[score].get(row["id"]), score_ci95=finals[ci].get(row["id"]),
                   wall_s=wall_seconds(row["started_at"], row["ended_at"]))
        out.append(row)
    return out
