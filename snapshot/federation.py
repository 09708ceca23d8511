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


def cursor_export(db_path: Path, db_path_text: str | None = None) -> dict[str, Any]:
    """The node's cursor checkpoint of ``db_path``, read in one transaction.

    The document is the node's own ``federation cursor-export``: every replication cursor
    joined with its peer (a cursor without a peer row is left out, as the node's inner join
    does), ordered by the peer's node id then direction, ``cursor`` null where the node has
    not replicated yet, and ``db_path`` as the operator gave it (``db_path_text``).
    """
    with open_readonly(db_path) as conn:
        conn.execute("BEGIN")  # every cursor as of the same commit
        try:
            cursors = _cursors(conn)
        finally:
            conn.execute("ROLLBACK")
    return {
        "checkpoint_timestamp": datetime.now(UTC).isoformat(),
        "db_path": str(db_path) if db_path_text is None else db_path_text,
        "cursors": cursors,
    }


def _cursors(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    # Both tables come with the node's federation migration; before it there is nothing to
    # export (the node itself would migrate first, which this tool never does to a live node).
    if not (table_exists(conn, "replication_cursors") and table_exists(conn, "peers")):
        return []
    query = (
        "SELECT rc.peer_id, p.node_id, p.node_url, p.status, rc.direction, rc.cursor, "
        "rc.updated_at FROM replication_cursors rc JOIN peers p ON p.id = rc.peer_id "
        "ORDER BY p.node_id, rc.direction"
    )
    return [dict(zip(CURSOR_FIELDS, row, strict=True)) for row in conn.execute(query)]


def checkpoint_text(doc: dict[str, Any]) -> str:
    """The checkpoint as the node prints it: indented, keys in the node's order."""
    return json.dumps(doc, indent=2) + "\n"


def write_text_0600(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600: temp, fsync, rename."""
    if path.is_dir():
        raise StigmemError(f"is a directory: {path}")
    if not path.parent.is_dir():
        raise StigmemError(f"no such directory: {path.parent}")
    data = text.encode("utf-8")
    try:
        atomic_write_bytes(path, data, 0o600)
    except OSError as exc:
        raise StigmemError(f"cannot write {path}: {exc.strerror or exc}") from None
    # umask cannot widen 0600, but an unusual one could narrow it to unreadable for us.
    os.chmod(path, 0o600)
