"""Upgrading a catalog to the head revision in code, once, under a lock.

The Alembic configuration is built here (no alembic.ini at run time): the script location is
the installed ``migrations`` package, so this works from a wheel. Opening an up-to-date
catalog takes no lock at all; otherwise the upgrade runs in one transaction holding SQLite's
write lock (BEGIN IMMEDIATE) or a PostgreSQL transaction-level advisory lock, and re-reads the
revision inside it, so concurrent openers of a fresh catalog migrate it exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

import migrations
from catalog.engine import WRITE
from catalog.tables import LIVE_PLACEMENT_INDEXES, metadata
from snapshot.errors import CatalogError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# Every revision this code knows, oldest first. Checked against the scripts by a test; it
# lets an up-to-date catalog open, and a new one be made, without importing Alembic.
REVISIONS = ("0001", "0002", "0003", "0004")
HEAD = REVISIONS[-1]
# Alembic's own table, made as Alembic makes it, for a catalog created at the head.
_VERSION_TABLE = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)

# Any fixed 64-bit number; it only has to be the same for every opener of a catalog.
PG_MIGRATION_LOCK = 0x5717_6E3A_C0DE


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if heads else None


def upgrade(engine: Engine, shown_url: str) -> tuple[str, ...]:
    """Bring the catalog to head; return the revisions applied by this call (often none)."""
    stored = _stored_revision(engine, shown_url)
    if stored == HEAD:
        return ()
    if stored is None and _create_at_head(engine, shown_url):
        return REVISIONS
    from alembic import command

    scripts = script_directory()
    head = head_revision()
    with engine.connect() as conn:
        before = _checked_revision(conn, scripts, shown_url)
    if before == head:
        return ()
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(PG_MIGRATION_LOCK)))
        before = _checked_revision(conn, scripts, shown_url)
        if before == head:
            return ()
        if before is None:
            _refuse_foreign_database(conn, shown_url)
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    applied = [rev.revision for rev in scripts.iterate_revisions(head, before or "base")]
    return tuple(reversed(applied))


def _create_at_head(engine: Engine, shown_url: str) -> bool:
    """Make a new catalog's tables as the head revision has them, and record that revision
    (Alembic's "create_all, then stamp head"): one transaction under the upgrade's lock,
    without running every migration since the first, which costs a host's first command
    a tenth of a second. False when another opener got there first; the migrations then run
    from whatever it recorded. A test holds the tables made so equal to the migrated ones."""
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(PG_MIGRATION_LOCK)))
        if inspect(conn).has_table(_VERSION_TABLE.name):
            return False
        _refuse_foreign_database(conn, shown_url)
        metadata.create_all(conn)
        for statement in LIVE_PLACEMENT_INDEXES:
            conn.execute(text(statement))
        _VERSION_TABLE.create(conn)
        conn.execute(insert(_VERSION_TABLE).values(version_num=HEAD))
    return True


def _stored_revision(engine: Engine, shown_url: str) -> str | None:
    """The revision recorded in the catalog, read with plain SQL; None when there is none.

    A catalog has one line of history, so exactly one row: with two, which one holds would
    depend on row order, and an upgrade would run from a guess."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None  # no table yet (or unreachable: the full path reports it properly)
    if len(rows) > 1:
        raise _several_revisions(shown_url, [str(row[0]) for row in rows])
    return str(rows[0][0]) if rows else None


def _several_revisions(shown_url: str, revisions: list[str]) -> CatalogError:
    listed = ", ".join(sorted(revisions)[:5])
    return CatalogError(
        f"catalog {shown_url} records {len(revisions)} schema revisions ({listed}), not one: "
        "its alembic_version table was edited; restore it from a backup or rebuild the "
        "catalog (catalog reindex)"
    )


def _checked_revision(conn: Connection, scripts: ScriptDirectory, shown_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from alembic.util.exc import CommandError

    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise _several_revisions(shown_url, list(heads))
    revision = heads[0] if heads else None
    if revision is None:
        return None
    try:
        scripts.get_revision(revision)
    except CommandError:
        raise CatalogError(
            f"catalog {shown_url} was written by a newer version of stigmem-snapshots "
            f"(revision {revision}); upgrade the tool"
        ) from None
    return revision


def _refuse_foreign_database(conn: Connection, shown_url: str) -> None:
    """Never create catalog tables inside someone else's database."""
    existing = set(inspect(conn).get_table_names())
    # A SQLite file is ours alone; a PostgreSQL schema may legitimately hold other tables.
    ours = set(metadata.tables)
    clash = existing if conn.dialect.name == "sqlite" else existing & ours
    if clash:
        names = ", ".join(sorted(clash)[:5])
        raise CatalogError(
            f"catalog {shown_url} is not a stigmem-snapshots catalog "
            f"(it has tables {names} but no catalog revision)"
        )
