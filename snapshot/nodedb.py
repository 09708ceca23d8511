"""Read what this tool needs from a Stigmem node database, without ever writing to it.

``node_meta`` gives the node id and its federation keys, ``schema_migrations`` the migration
cursor. A database lacking either table is still a database: the answers are then ``None`` and
``[]``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from snapshot.errors import LockedError, StigmemError

SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class NodeMeta:
    node_id: str | None
    federation_privkey: str | None
    federation_pubkey: str | None


def has_sqlite_header(path: Path) -> bool:
    """True when ``path`` is a regular file starting with SQLite's magic string."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def check_sqlite(path: Path) -> None:
    """Raise a one-line ``StigmemError`` unless ``path`` is a SQLite database file."""
    if path.is_dir():
        raise StigmemError(f"is a directory: {path}")
    if not path.exists():
        raise StigmemError(f"no such file: {path}")
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise StigmemError(f"cannot read {path}: {exc.strerror or exc}") from None
    if magic != SQLITE_MAGIC:
        raise StigmemError(f"not a SQLite database: {path}")


def readonly_uri(path: Path) -> str:
    return f"file:{quote(str(path.absolute()))}?mode=ro"


def connect_for_reading(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection that reads ``path`` and leaves its directory as it found it.

    Normally ``mode=ro``. But a read-only connection to a WAL database whose ``-wal`` is absent
    (a node that shut down cleanly) creates ``-wal`` and ``-shm`` and, being read-only, can
    never remove them. There the WAL is empty, so a read-write connection with
    ``query_only`` writes nothing to the database either, and as the last connection it
    removes what it created on close.
    """
    if _wal_header(path) and not path.with_name(path.name + "-wal").exists():
        conn = sqlite3.connect(path, timeout=timeout)
        conn.execute("PRAGMA query_only=ON")
        return conn
    return sqlite3.connect(readonly_uri(path), uri=True, timeout=timeout)


def _wal_header(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return header[18:20] == b"\x02\x02"


@contextlib.contextmanager
def open_readonly(path: Path, timeout: float = 5.0) -> Iterator[sqlite3.Connection]:
    """A read-only connection, closed on exit (``with sqlite3.connect`` would not close it)."""
    check_sqlite(path)
    try:
        conn = connect_for_reading(path, timeout)
    except sqlite3.Error as exc:
        raise database_error(path, exc) from None
    try:
        yield conn
    except sqlite3.Error as exc:
        raise database_error(path, exc) from None
    finally:
        conn.close()


# SQLite's primary result codes (sqlite3.h): an error's code, masked to its primary code.
SQLITE_CORRUPT, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOTADB = 11, 5, 6, 26


def sqlite_code(exc: BaseException | None) -> int:
    """SQLite's primary result code of ``exc``; 0 when it carries none."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_busy(exc: BaseException | None) -> bool:
    """True when SQLite refused because another connection holds a lock."""
    return sqlite_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)


def database_error(path: Path, exc: sqlite3.Error) -> StigmemError:
    """The one-line error for a failed SQLite call on ``path``."""
    if is_busy(exc):
        return LockedError(f"database in use: {path}")
    if sqlite_code(exc) in (SQLITE_NOTADB, SQLITE_CORRUPT):
        return StigmemError(f"not a valid SQLite database: {path} ({exc})")
    return StigmemError(f"cannot read {path}: {exc}")


def table_exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def node_meta_of(conn: sqlite3.Connection) -> NodeMeta:
    if not table_exists(conn, "node_meta"):
        return NodeMeta(None, None, None)
    rows = conn.execute(
        "SELECT key, value FROM node_meta "
        "WHERE key IN ('node_id', 'federation_privkey', 'federation_pubkey')"
    ).fetchall()
    # A value stored as something other than text is not usable as an id or a key.
    meta = {key: value for key, value in rows if isinstance(value, str) and value}
    return NodeMeta(
        node_id=meta.get("node_id"),
        federation_privkey=meta.get("federation_privkey"),
        federation_pubkey=meta.get("federation_pubkey"),
    )


def applied_migrations_of(conn: sqlite3.Connection) -> list[str]:
    if not table_exists(conn, "schema_migrations"):
        return []
    return sorted(
        str(version) for (version,) in conn.execute("SELECT version FROM schema_migrations")
    )


def replication_cursor_count_of(conn: sqlite3.Connection) -> int:
    if not table_exists(conn, "replication_cursors"):
        return 0
    (count,) = conn.execute("SELECT count(*) FROM replication_cursors").fetchone()
    return int(count)


def read_node_meta(path: Path) -> NodeMeta:
    with open_readonly(path) as conn:
        return node_meta_of(conn)


def read_applied_migrations(path: Path) -> list[str]:
    with open_readonly(path) as conn:
        return applied_migrations_of(conn)
