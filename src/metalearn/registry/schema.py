"""Registry tables: attempts, their metrics and test results, and the schema version."""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# Bump on any change to the tables below and add the step to migrate.MIGRATIONS.
SCHEMA_VERSION = 4  # 2: attempts.log_name; 3: test results as (group, metric, value) rows;
#                    4: attempts.study, .trial (hyperparameter sweeps) and .environment

QUEUED, RUNNING, TESTING = "queued", "running", "testing"
COMPLETED, FAILED, INTERRUPTED = "completed", "failed", "interrupted"
RETRACTED = "retracted"  # finished, then withdrawn by hand (a bug found later): kept, not counted
STATUSES = (QUEUED, RUNNING, TESTING, COMPLETED, FAILED, INTERRUPTED, RETRACTED)
ACTIVE = (RUNNING, TESTING)
TERMINAL = (COMPLETED, FAILED, INTERRUPTED, RETRACTED)
NO_TRAINING = "none"  # the algorithm of an attempt that trains nothing (pretrained_*)

metadata = MetaData()

meta = Table(
    "metalearn_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

attempts = Table(
    "metalearn_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255)),
    Column("kind", String(16), nullable=False, default="train"),  # train | test | validate
    Column("parent_id", Integer, ForeignKey("metalearn_attempts.id", ondelete="SET NULL")),
    Column("experiment", String(255)),
    Column("algorithm", String(255)),
    Column("status", String(16), nullable=False),
    Column("config", JSON),
    Column("overrides", JSON),
    Column("command", JSON),
    Column("tags", JSON),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("ended_at", DateTime),
    Column("heartbeat_at", DateTime),
    Column("lease_until", DateTime),  # stale (interrupted) once this passes
    Column("host", String(255)),
    Column("pid", Integer),
    Column("git_commit", String(64)),
    Column("output_dir", Text),
    Column("ckpt_path", Text),
    Column("log_name", Text),  # <name>/<version> the loggers file it under: TensorBoard's run
    Column("error", Text),
    Column("study", String(255)),  # the sweep's study name (hparams_search=...), else NULL
    Column("trial", Integer),  # the trial number within that study
    Column("environment", JSON),  # CPU model, accelerators, library versions (environment.py)
    sqlite_autoincrement=True,  # ids are never reused after a delete
)
Index("ix_metalearn_attempts_status", attempts.c.status)
Index("ix_metalearn_attempts_experiment", attempts.c.experiment)
Index("ix_metalearn_attempts_study", attempts.c.study)

metrics = Table(
    "metalearn_metrics",
    metadata,
    Column(
        "attempt_id",
        Integer,
        ForeignKey("metalearn_attempts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(255), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("value", Float),  # NULL stands for NaN (SQLite cannot store NaN)
    Column("time", Float, nullable=False),  # unix seconds when logged
)

test_results = Table(
    "metalearn_test_results",
    metadata,
    Column(
        "attempt_id",
        Integer,
        ForeignKey("metalearn_attempts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("group", String(255), primary_key=True),  # a held-out domain, task or test set
    Column("metric", String(64), primary_key=True),  # the objective's: acc, mse, ...
    Column("value", Float),
    Column("ci95", Float),  # half-width of the 95% interval
    Column("episodes", Integer),
    Column("shots", Integer),
    Column("queries", Integer),
)

TABLE_NAMES = tuple(metadata.tables)
