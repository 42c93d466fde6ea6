"""Schema versioning: created fresh, upgraded step by step, or refused with a clear message."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Column, Float, ForeignKey, Integer, MetaData, String, Table, text

from metalearn.registry import SchemaError, Store, migrate, schema


def _set_version(store: Store, version: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(schema.meta.update().values(value=str(version)))


def _version(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT value FROM metalearn_meta")).scalar_one())


def test_fresh_database_gets_current_version(registry_url: str) -> None:
    assert _version(Store(registry_url)) == schema.SCHEMA_VERSION


def test_newer_schema_is_refused(registry_url: str) -> None:
    _set_version(Store(registry_url), schema.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaError, match="newer than this metalearn"):
        Store(registry_url)


def test_older_schema_is_upgraded(registry_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(registry_url)
    attempt = store.create_attempt(name="old")

    def add_note(conn) -> None:  # noqa: ANN001
        conn.execute(text("ALTER TABLE metalearn_attempts ADD COLUMN note VARCHAR(20)"))

    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    monkeypatch.setitem(migrate.MIGRATIONS, schema.SCHEMA_VERSION - 1, add_note)
    upgraded = Store(registry_url)
    assert _version(upgraded) == schema.SCHEMA_VERSION
    assert upgraded.get_attempt(attempt)["name"] == "old"
    with upgraded.engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM metalearn_attempts")).scalar_one() is None


def test_older_schema_without_migration_is_refused(
    registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store(registry_url)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaError, match="cannot be upgraded"):
        Store(registry_url)


def test_tables_without_version_are_refused(registry_url: str) -> None:
    store = Store(registry_url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE metalearn_meta"))
    with pytest.raises(SchemaError, match="no schema version record"):
        Store(registry_url)


V1_DUMP = Path(__file__).with_name("data") / "registry_v1.sql"


def test_a_version_1_file_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    """A registry file written by schema version 1 (no log_name) opens and is upgraded."""
    path = tmp_path / "registry.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_DUMP.read_text())
    conn.close()
    store = Store(f"sqlite:///{path}")
    assert _version(store) == schema.SCHEMA_VERSION
    row = store.get_attempt(1)
    assert (row["name"], row["status"], row["algorithm"], row["log_name"]) == (
        "reptile_amazon", "completed", "reptile", None)
    assert row["overrides"] == ["experiment=reptile_amazon", "seed=1"]
    assert store.metric_summary(1)["val/acc"]["last"] == 0.7
    assert (store.test_results(1)[0]["group"], store.test_results(1)[0]["metric"]) == ("automotive", "acc")
    store.update_attempt(1, log_name="reptile_amazon/attempt-1_seed=1")
    assert store.get_attempt(1)["log_name"] == "reptile_amazon/attempt-1_seed=1"
    assert store.create_attempt(name="next") == 2  # ids go on after the old ones


def test_upgrade_to_v2_adds_log_name_and_marks_untrained_attempts(registry_url: str) -> None:
    store = Store(registry_url)
    trained = store.create_attempt(name="a", algorithm="reptile", config={"train": True})
    untrained = store.create_attempt(name="b", algorithm="reptile", config={"train": False, "ckpt_path": None})
    tested = store.create_attempt(name="c", algorithm="maml", config={"train": False, "ckpt_path": "/x.ckpt"})
    bare = store.create_attempt(name="d", algorithm="anil")  # no config (a queued row, say)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE metalearn_attempts DROP COLUMN log_name"))
    with store.engine.begin() as conn:  # the v1 -> v2 step alone (the later steps have their tests)
        migrate._v1_to_v2(conn)
    upgraded = Store(registry_url)
    algorithms = {r["id"]: (r["algorithm"], r["log_name"]) for r in upgraded.list_attempts()}
    assert algorithms == {trained: ("reptile", None), untrained: ("none", None),
                          tested: ("maml", None), bare: ("anil", None)}


V1_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "registry_v1.db"


def test_a_registry_file_written_by_schema_v1_is_upgraded_in_place(tmp_path: Path) -> None:
    """The fixture is a real file from schema v1 (debug=fast reptile_arsc and protonet_omniglot):
    its accuracy rows become (group, metric=acc, value) rows; nothing else changes."""
    path = tmp_path / "registry.db"
    shutil.copy(V1_FILE, path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM metalearn_meta").fetchone() == ("1",)
        old = conn.execute("SELECT attempt_id, domain, acc, ci95, episodes, shots, queries "
                           "FROM metalearn_test_results ORDER BY attempt_id, domain").fetchall()
        metrics = conn.execute("SELECT COUNT(*) FROM metalearn_metrics").fetchone()
    assert len(old) == 13
    store = Store(f"sqlite:///{path}")
    assert _version(store) == schema.SCHEMA_VERSION
    new = [(a, r["group"], r["value"], r["ci95"], r["episodes"], r["shots"], r["queries"])
           for a in (1, 2) for r in store.test_results(a)]
    assert new == old
    assert {r["metric"] for a in (1, 2) for r in store.test_results(a)} == {"acc"}
    assert [a["experiment"] for a in store.list_attempts()] == ["protonet_omniglot", "reptile_arsc"]
    assert store.get_attempt(1)["config"]["data"]["test_protocol"] == "arsc"
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM metalearn_metrics")).one() == metrics
    store.put_test_results(1, [{"group": "books/t2", "metric": "mse", "value": 0.5, "ci95": 0.1,
                                "episodes": 1, "shots": 5, "queries": 5}])  # a second metric
    assert len(store.test_results(1)) == 13
    assert _version(Store(f"sqlite:///{path}")) == schema.SCHEMA_VERSION  # again: nothing to do


def test_v1_test_results_are_upgraded_on_each_backend(registry_url: str) -> None:
    """The same step on SQLite and PostgreSQL, from the v1 table written out here (the rest
    of the schema current: only the test-results step runs)."""
    store = Store(registry_url)
    attempt = store.create_attempt(name="old")
    v1 = MetaData()
    old = Table("metalearn_test_results", v1,
                Column("attempt_id", Integer, ForeignKey(schema.attempts.c.id, ondelete="CASCADE"),
                       primary_key=True),
                Column("domain", String(255), primary_key=True), Column("acc", Float),
                Column("ci95", Float), Column("episodes", Integer), Column("shots", Integer),
                Column("queries", Integer))
    with store.engine.begin() as conn:
        schema.test_results.drop(conn)
        old.create(conn)
        conn.execute(old.insert(), [{"attempt_id": attempt, "domain": d, "acc": a, "ci95": 0.1,
                                     "episodes": 3, "shots": 5, "queries": 7}
                                    for d, a in (("books", 0.5), ("dvd", None))])
    (before,) = [v for v, step in migrate.MIGRATIONS.items()
                 if step is migrate._test_results_by_metric]
    _set_version(store, before)
    store.close()
    upgraded = Store(registry_url)
    assert _version(upgraded) == schema.SCHEMA_VERSION
    rows = upgraded.test_results(attempt)
    assert [(r["group"], r["metric"], r["value"], r["queries"]) for r in rows] == [
        ("books", "acc", 0.5, 7), ("dvd", "acc", None, 7)]


def test_upgrade_to_v4_adds_the_study_columns(registry_url: str) -> None:
    store = Store(registry_url)
    attempt = store.create_attempt(name="a", algorithm="reptile")
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_metalearn_attempts_study"))
        conn.execute(text("ALTER TABLE metalearn_attempts DROP COLUMN study"))
        conn.execute(text("ALTER TABLE metalearn_attempts DROP COLUMN trial"))
        conn.execute(text("ALTER TABLE metalearn_attempts DROP COLUMN environment"))
    _set_version(store, 3)
    store.close()
    upgraded = Store(registry_url)
    assert _version(upgraded) == schema.SCHEMA_VERSION
    row = upgraded.get_attempt(attempt)
    assert (row["study"], row["trial"], row["environment"]) == (None, None, None)
    upgraded.update_attempt(attempt, study="s", trial=2, environment={"cpu": "x"})
    assert [r["id"] for r in upgraded.list_attempts(study="s")] == [attempt]
    assert upgraded.get_attempt(attempt)["environment"] == {"cpu": "x"}
