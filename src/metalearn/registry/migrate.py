"""Create the registry tables, or upgrade an older schema, or refuse one this code cannot read."""
from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from metalearn.registry import schema
from metalearn.registry.engine import write_tx
from metalearn.registry.errors import SchemaError

log = logging.getLogger(__name__)


def _v1_to_v2(conn: Connection) -> None:
    """Add attempts.log_name (the loggers' run name); attempts that trained nothing (train=false,
    no checkpoint: pretrained_*) were recorded with the algorithm configured for meta-testing,
    and now say `none` as new ones do."""
    conn.execute(text("ALTER TABLE metalearn_attempts ADD COLUMN log_name TEXT"))
    a = schema.attempts
    rows = conn.execute(select(a.c.id, a.c.config).where(a.c.config.is_not(None))).all()
    untrained = [i for i, config in rows if isinstance(config, dict)
                 and config.get("train", True) is False and config.get("ckpt_path") is None]
    if untrained:
        conn.execute(a.update().where(a.c.id.in_(untrained)).values(algorithm=schema.NO_TRAINING))


def _test_results_by_metric(conn: Connection) -> None:
    """v2 -> v3: test results as (group, metric, value) rows instead of (domain, acc).

    Every earlier result is an accuracy. The rows are read, the table is made again with the new
    columns and the rows go back in (a rename would keep the old primary key's name on
    PostgreSQL, where the new table needs it).
    """
    old = conn.execute(text(
        "SELECT attempt_id, domain, acc, ci95, episodes, shots, queries "
        "FROM metalearn_test_results")).mappings().all()
    conn.execute(text("DROP TABLE metalearn_test_results"))
    schema.test_results.create(conn)
    if old:
        conn.execute(schema.test_results.insert(), [
            {"attempt_id": r["attempt_id"], "group": r["domain"], "metric": "acc",
             "value": r["acc"], "ci95": r["ci95"], "episodes": r["episodes"],
             "shots": r["shots"], "queries": r["queries"]} for r in old])


def _study_columns(conn: Connection) -> None:
    """v3 -> v4: attempts.study and attempts.trial (the sweep an attempt was a trial of) and
    attempts.environment (what it ran on); each added only where missing."""
    have = {c["name"] for c in inspect(conn).get_columns("metalearn_attempts")}
    if "study" not in have:
        conn.execute(text("ALTER TABLE metalearn_attempts ADD COLUMN study VARCHAR(255)"))
        conn.execute(text(
            "CREATE INDEX ix_metalearn_attempts_study ON metalearn_attempts (study)"))
    if "trial" not in have:
        conn.execute(text("ALTER TABLE metalearn_attempts ADD COLUMN trial INTEGER"))
    if "environment" not in have:
        conn.execute(text("ALTER TABLE metalearn_attempts ADD COLUMN environment JSON"))


# MIGRATIONS[v] upgrades a database at version v to v + 1, inside the caller's transaction.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _v1_to_v2, 2: _test_results_by_metric, 3: _study_columns}

_PG_LOCK_KEY = 0x6D6C7267  # "mlrg": serializes schema set-up between processes


def ensure_schema(engine: Engine) -> int:
    """Make the database hold the current schema; return the version found before."""
    with write_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        tables = set(inspect(conn).get_table_names())
        if schema.meta.name not in tables:
            ours = tables.intersection(schema.TABLE_NAMES)
            if ours:
                raise SchemaError(
                    f"{engine.url.render_as_string(hide_password=True)} has registry tables "
                    f"{sorted(ours)} but no schema version record; refusing to guess what they hold"
                )
            schema.metadata.create_all(conn)
            conn.execute(
                schema.meta.insert().values(key="schema_version", value=str(schema.SCHEMA_VERSION))
            )
            log.info("created registry schema v%d", schema.SCHEMA_VERSION)
            return 0
        found = _read_version(conn)
        if found == schema.SCHEMA_VERSION:
            return found
        if found > schema.SCHEMA_VERSION:
            raise SchemaError(
                f"registry schema version {found} is newer than this metalearn understands "
                f"({schema.SCHEMA_VERSION}); upgrade metalearn to read it"
            )
        for version in range(found, schema.SCHEMA_VERSION):
            step = MIGRATIONS.get(version)
            if step is None:
                raise SchemaError(
                    f"registry schema version {found} cannot be upgraded to "
                    f"{schema.SCHEMA_VERSION}: no migration from version {version}; "
                    "export the attempts with an older metalearn and start a new registry"
                )
            log.warning("upgrading registry schema v%d -> v%d", version, version + 1)
            step(conn)
        conn.execute(
            schema.meta.update()
            .where(schema.meta.c.key == "schema_version")
            .values(value=str(schema.SCHEMA_VERSION))
        )
        return found


def _read_version(conn: Connection) -> int:
    """The schema version recorded in the database."""
    value = conn.execute(
        select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
    ).scalar_one_or_none()
    if value is None or not value.isdigit():
        raise SchemaError(f"registry schema version record is missing or malformed: {value!r}")
    return int(value)
