"""A catalog whose bookkeeping was tampered with is refused with one line, never guessed at."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog import Catalog, SnapshotFilter
from catalog.migrate import HEAD
from cli.app import App, in_memory_sqlite
from snapshot.errors import CatalogError
from tests.catalog.catalog_factories import Maker, snapshot_id


@pytest.mark.parametrize("extra", ["0001", "zzzz"])
def test_two_alembic_version_rows_are_refused(tmp_path: Path, extra: str) -> None:
    url = f"sqlite:///{tmp_path}/catalog.db"
    Catalog.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": extra})
    engine.dispose()
    with pytest.raises(CatalogError) as err:
        Catalog.open(url)
    message = str(err.value)
    assert "2 schema revisions" in message and HEAD in message and "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite+pysqlite://",
        "SQLITE://",
        "sqlite:///file:cat?mode=memory&uri=true",
    ],
)
def test_an_in_memory_catalog_is_refused_before_any_command(tmp_path: Path, url: str) -> None:
    assert in_memory_sqlite(url)
    with pytest.raises(CatalogError, match="in-memory database"):
        App(tmp_path, None, url, None)


@pytest.mark.parametrize(
    "url", ["sqlite:///catalog.db", "sqlite:////abs/catalog.db", "postgresql://h/db"]
)
def test_a_catalog_file_is_not_in_memory(url: str) -> None:
    assert not in_memory_sqlite(url)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("manifest", "[" * 100_000),
        ("manifest", "[1, 2]"),
        ("tags", "1e400"),
        ("tags", "{}"),
        ("cursor", '{"a":1'),
        ("created_at", "garbage"),
        ("created_at", "99999-01-01 00:00:00"),
    ],
)
def test_a_row_edited_by_hand_is_a_catalog_error(tmp_path: Path, column: str, value: str) -> None:
    url = f"sqlite:///{tmp_path}/catalog.db"
    with Catalog.open(url) as catalog:
        catalog.record_snapshot(Maker().record(1))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE snapshots SET {column} = :value"), {"value": value})
    engine.dispose()
    with Catalog.open(url) as catalog, pytest.raises(CatalogError) as err:
        catalog.show(snapshot_id(1))
        for row in catalog.list_snapshots():
            row.to_json()
    assert "\n" not in str(err.value)


def test_a_limit_past_what_a_database_integer_holds_is_no_limit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/catalog.db"
    with Catalog.open(url) as catalog:
        catalog.record_snapshot(Maker().record(1))
        rows = catalog.list_snapshots(SnapshotFilter(limit=10**20))
    assert [row.id for row in rows] == [snapshot_id(1)]
