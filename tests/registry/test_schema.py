"""Schema versioning: created fresh, upgraded step by step, or refused with a clear message."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from metalearn.registry import SchemaError, Store, schema
from metalearn.registry import migrate


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
    assert store.test_results(1)[0]["domain"] == "automotive"
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
    _set_version(store, 1)
    upgraded = Store(registry_url)
    assert _version(upgraded) == 2
    algorithms = {r["id"]: (r["algorithm"], r["log_name"]) for r in upgraded.list_attempts()}
    assert algorithms == {trained: ("reptile", None), untrained: ("none", None),
                          tested: ("maml", None), bare: ("anil", None)}
