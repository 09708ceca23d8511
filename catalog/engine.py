"""Engines for catalog URLs: SQLite tuning, PostgreSQL timeouts, one-line connection errors.

SQLite connections run in WAL mode with foreign keys on and a busy timeout. pysqlite's own
transaction handling is switched off so SQLAlchemy's ``begin`` emits the BEGIN itself: reads
use a deferred BEGIN, writes (``WRITE`` execution options) ``BEGIN IMMEDIATE``, which takes the
write lock up front and so waits on the busy timeout instead of failing mid-transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from snapshot.errors import CatalogError

BUSY_TIMEOUT_MS = 15_000
PG_CONNECT_TIMEOUT_S = 10
WRITE = {"stigmem_write": True}


def default_catalog_url(home: Path) -> str:
    return f"sqlite:///{home}/catalog.db"


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise CatalogError(f"catalog {url!r} is not a database URL: {one_line(exc)}") from None


def masked(url: str | URL) -> str:
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):
        return str(url)
    return parsed.render_as_string(hide_password=True)


def one_line(exc: BaseException) -> str:
    """The first line of an error (drivers add hints and SQL on following lines)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0].strip() if text else type(orig).__name__


def sqlite_path(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(url: str) -> Engine:
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    path = sqlite_path(parsed)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(
                f"catalog {masked(parsed)}: cannot create {path.parent}: {exc.strerror}"
            ) from None
    try:
        engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=False)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        raise CatalogError(f"catalog {masked(parsed)}: {one_line(exc)}") from None
    if backend == "sqlite":
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL itself needs a lock another opener may hold.
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.fetchall()
            cursor.execute("PRAGMA foreign_keys = ON")
            # In WAL mode NORMAL cannot corrupt the file; at worst a power cut loses the last
            # commits of an index that `catalog reindex` rebuilds from the stores.
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("stigmem_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
