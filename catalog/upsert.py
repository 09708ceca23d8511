"""The dialect's INSERT (with ON CONFLICT) and id validation shared by the write modules."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from snapshot.errors import CatalogError

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
_SNAPSHOT_ID = re.compile(r"[0-9a-f]{64}")


def insert(conn: Connection, table: Table) -> Any:
    """An INSERT that knows ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    # Imported here: each dialect package is loaded by its own engine anyway, never the other.
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise CatalogError(f"catalog backend {conn.dialect.name} is not supported")


def check_snapshot_id(snapshot_id: str) -> str:
    if not _SNAPSHOT_ID.fullmatch(snapshot_id):
        raise CatalogError(f"{snapshot_id!r} is not a snapshot id (64 lowercase hex digits)")
    return snapshot_id
