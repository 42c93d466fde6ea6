"""Schema versioning: created fresh, upgraded step by step, or refused with a clear message."""
from __future__ import annotations

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
