"""``federation cursor-export``: where each peer's replication stands, as one JSON document.

Operators take it before a restore: a restored node resumes from the cursors in its snapshot,
and this document says how far replication had really gone.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapshot.errors import StigmemError
from snapshot.fileio import atomic_write_bytes
from snapshot.nodedb import open_readonly, table_exists

CURSOR_FIELDS = (
    "peer_id",
    "peer_node_id",
    "peer_url",
    "peer_status",
    "direction",
    "cursor",
    "updated_at",
)


def cursor_export(db_path: Path) -> dict[str, Any]:
    """``{"checkpoint_timestamp", "db_path", "cursors": [...]}``, read in one transaction."""
    with open_readonly(db_path) as conn:
        conn.execute("BEGIN")  # every cursor as of the same commit
        try:
            cursors = _cursors(conn)
        finally:
            conn.execute("ROLLBACK")
    return {
        "checkpoint_timestamp": datetime.now(UTC).isoformat(),
        "db_path": str(db_path.absolute()),
        "cursors": cursors,
    }


def _cursors(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    if not table_exists(conn, "replication_cursors"):
        return []
    # Older schemas lack peers.status (migration 002) or peers altogether: report null.
    peer_columns = (
        {row[1] for row in conn.execute("PRAGMA table_info(peers)")}
        if table_exists(conn, "peers")
        else set()
    )

    def peer(column: str) -> str:
        return f"p.{column}" if column in peer_columns else "NULL"

    join = "LEFT JOIN peers p ON p.id = c.peer_id" if peer_columns else ""
    query = (
        f"SELECT c.peer_id, {peer('node_id')}, {peer('url')}, {peer('status')}, "
        f"c.direction, c.cursor, c.updated_at FROM replication_cursors c {join} "
        "ORDER BY c.peer_id, c.direction"
    )
    return [dict(zip(CURSOR_FIELDS, row, strict=True)) for row in conn.execute(query)]


def write_json_0600(path: Path, doc: Any) -> None:
    """Write ``doc`` as indented JSON to ``path`` with mode 0600: temp, fsync, rename."""
    if path.is_dir():
        raise StigmemError(f"is a directory: {path}")
    if not path.parent.is_dir():
        raise StigmemError(f"no such directory: {path.parent}")
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        atomic_write_bytes(path, data, 0o600)
    except OSError as exc:
        raise StigmemError(f"cannot write {path}: {exc.strerror or exc}") from None
    # umask cannot widen 0600, but an unusual one could narrow it to unreadable for us.
    os.chmod(path, 0o600)
