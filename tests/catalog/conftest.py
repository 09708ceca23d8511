"""Catalog test fixtures: the same tests run on a SQLite file and on PostgreSQL.

Each PostgreSQL test gets its own schema (created here, dropped afterwards) and reaches it
through ``options=-csearch_path=...`` in the URL, so concurrent runs never collide and child
processes can open the very same URL. PostgreSQL tests skip when no server answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.catalog.catalog_factories import Clock

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_DATABASE = "test"
PG_USERS = ("postgres", "root")


def _pg_user() -> tuple[str | None, str]:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a dev dependency
        return None, f"psycopg is not installed ({exc})"
    reason = ""
    for user in PG_USERS:
        try:
            with psycopg.connect(
                host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=user, connect_timeout=3
            ):
                return user, ""
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0]
    return None, reason


@pytest.fixture(scope="session")
def pg_user() -> str:
    user, reason = _pg_user()
    if user is None:
        pytest.skip(f"PostgreSQL not available at {PG_HOST}:{PG_PORT}/{PG_DATABASE}: {reason}")
    return user


@pytest.fixture
def pg_url(pg_user: str) -> Iterator[str]:
    import psycopg

    schema = f"stigmem_test_{uuid.uuid4().hex[:12]}"
    conninfo: dict[str, Any] = dict(host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=pg_user)
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            f"postgresql+psycopg://{pg_user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"
            f"?options=-csearch_path%3D{schema}"
        )
    finally:
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        # A directory that does not exist yet: opening must create it.
        return f"sqlite:///{tmp_path}/home/catalog.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock()
