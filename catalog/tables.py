"""The catalog's tables (docs/design.md section 6): typed SQLAlchemy 2 Core tables.

The schema itself is owned by the Alembic revisions in ``migrations/versions``; ``schema()``
(these tables plus the partial indexes) must describe the head revision exactly (a test
compares it with a migrated database). JSON
payloads (cursor, manifest, tags, policies, plans) are stored as JSON text so both backends
keep them byte-for-byte as written.

Each table's columns are declared by a ``TypedColumns`` class (SQLAlchemy 2.1), so column
access is typed: ``snapshots.c.created_at`` is a ``Column[datetime]``,
``snapshots.c.last_verified_at`` a ``Column[datetime | None]`` (nullability follows the
annotation), and statements and result rows built from them carry those types. Core tables
rather than ORM declarative classes: ``sqlalchemy.orm`` costs a fifth of a second to import,
and every catalog read and write is a single statement that needs no unit of work, identity
map or mapped instances. Rows come back as ``Row`` tuples and are turned into the typed
dataclasses of ``catalog.records``.

Tables:

- ``snapshots``: one row per snapshot id, with a denormalised copy of its last verification
  (``last_verified_at``, ``last_verify_outcome``) so listings never scan the history;
- ``placements``: which tier/store holds a snapshot; a row with ``removed_at`` set is history,
  at most one live row per (snapshot, tier);
- ``keys``: signer keys seen or named by the operator, with trust and revocation;
- ``verifications``, ``restores``, ``prune_runs``: append-only records;
- ``events``: the audit log shown by ``snapshot history``.
"""

# No "from __future__ import annotations": TypedColumns reads the annotations, and real
# objects spare it evaluating 60 strings on every start of the command line.
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Named,
    String,
    Table,
    Text,
    TypedColumns,
    false,
    text,
)

from catalog.types import UTCDateTime, hex_id

# Named constraints let the migrations refer to them (SQLite batch mode needs names).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
SerialId = BigInteger().with_variant(Integer(), "sqlite")

# Annotations: ``Named[T]`` is NOT NULL, ``Named[T | None]`` nullable.


class SnapshotColumns(TypedColumns):
    id: Named[str] = Column(hex_id(), primary_key=True)
    node_id: Named[str] = Column(String(255))
    created_at: Named[datetime] = Column(UTCDateTime())
    db_sha256: Named[str] = Column(String(64))
    db_size: Named[int] = Column(BigInteger())
    cursor: Named[str] = Column(Text())
    signer_key_id: Named[str] = Column(String(16))
    signer_pubkey: Named[str] = Column(String(64))
    manifest: Named[str] = Column(Text())
    label: Named[str | None] = Column(String(255))
    tags: Named[str] = Column(Text(), server_default="[]")
    catalogued_at: Named[datetime] = Column(UTCDateTime())
    catalogued_from: Named[str] = Column(Text())
    catalogued_host: Named[str] = Column(String(255))
    pinned: Named[bool] = Column(Boolean(), server_default=false())
    last_verified_at: Named[datetime | None] = Column(UTCDateTime())
    last_verify_outcome: Named[str | None] = Column(String(32))


snapshots = Table(
    "snapshots",
    metadata,
    SnapshotColumns,
    # id closes each index so "newest first" has a total order without a sort step.
    Index("ix_snapshots_node_created", "node_id", "created_at", "id"),
    Index("ix_snapshots_created", "created_at", "id"),
    Index("ix_snapshots_signer_created", "signer_key_id", "created_at"),
    Index("ix_snapshots_last_verified", "last_verified_at"),
    # Covering the prune plan's scan, in time order (revision 0003).
    Index(
        "ix_snapshots_prune",
        "created_at",
        "id",
        "node_id",
        "signer_key_id",
        "pinned",
        "last_verify_outcome",
    ),
)


class PlacementColumns(TypedColumns):
    id: Named[int] = Column(SerialId, primary_key=True, autoincrement=True)
    snapshot_id: Named[str] = Column(hex_id(), ForeignKey("snapshots.id"))
    tier: Named[str] = Column(String(255))
    store: Named[str] = Column(Text())
    since: Named[datetime] = Column(UTCDateTime())
    removed_at: Named[datetime | None] = Column(UTCDateTime())


placements = Table(
    "placements",
    metadata,
    PlacementColumns,
    # ux_placements_live and ix_placements_tier_live: added by schema(), see there.
    Index("ix_placements_tier_snapshot", "tier", "snapshot_id"),
    # show lists removed placements too, which the partial index above cannot serve.
    Index("ix_placements_snapshot", "snapshot_id"),
)


class KeyColumns(TypedColumns):
    key_id: Named[str] = Column(String(16), primary_key=True)
    public_key: Named[str] = Column(String(64), unique=True)
    label: Named[str | None] = Column(String(255), index=True)
    trusted: Named[bool] = Column(Boolean(), server_default=false())
    revoked: Named[bool] = Column(Boolean(), server_default=false())
    first_seen: Named[datetime] = Column(UTCDateTime())
    revoked_at: Named[datetime | None] = Column(UTCDateTime())


keys = Table("keys", metadata, KeyColumns)


class VerificationColumns(TypedColumns):
    id: Named[int] = Column(SerialId, primary_key=True, autoincrement=True)
    # No foreign key: a tarball can be verified before (or without) being catalogued.
    snapshot_id: Named[str] = Column(hex_id())
    at: Named[datetime] = Column(UTCDateTime())
    mode: Named[str] = Column(String(16))
    kind: Named[str] = Column(String(16), server_default="verify")
    outcome: Named[str] = Column(String(32))
    detail: Named[str] = Column(Text())
    host: Named[str] = Column(String(255))


verifications = Table(
    "verifications",
    metadata,
    VerificationColumns,
    Index("ix_verifications_snapshot_at", "snapshot_id", "at"),
)


class RestoreColumns(TypedColumns):
    id: Named[int] = Column(SerialId, primary_key=True, autoincrement=True)
    snapshot_id: Named[str] = Column(hex_id())
    at: Named[datetime] = Column(UTCDateTime())
    target: Named[str] = Column(Text())
    forced: Named[bool] = Column(Boolean())
    migrations_replayed: Named[str] = Column(Text())
    host: Named[str] = Column(String(255))


restores = Table(
    "restores",
    metadata,
    RestoreColumns,
    Index("ix_restores_snapshot_at", "snapshot_id", "at"),
)


class DrillColumns(TypedColumns):
    id: Named[int] = Column(SerialId, primary_key=True, autoincrement=True)
    snapshot_id: Named[str] = Column(hex_id())
    node_id: Named[str] = Column(String(255))
    at: Named[datetime] = Column(UTCDateTime())
    outcome: Named[str] = Column(String(32))  # "ok" or "failed"
    checks: Named[str] = Column(Text())  # JSON: [{"name", "ok", "detail"}]
    restore_seconds: Named[float] = Column(Float())
    bytes: Named[int] = Column(BigInteger())
    tier: Named[str | None] = Column(String(255))
    host: Named[str] = Column(String(255))


drills = Table(
    "drills",
    metadata,
    DrillColumns,
    Index("ix_drills_snapshot_at", "snapshot_id", "at"),
    Index("ix_drills_node_at", "node_id", "at"),
)


class PruneRunColumns(TypedColumns):
    id: Named[int] = Column(SerialId, primary_key=True, autoincrement=True)
    at: Named[datetime] = Column(UTCDateTime())
    tier: Named[str] = Column(String(255))
    policy: Named[str] = Column(Text())
    plan: Named[str] = Column(Text())
    removed: Named[str] = Column(Text())
    bytes_freed: Named[int] = Column(BigInteger())
    dry_run: Named[bool] = Column(Boolean())
    host: Named[str] = Column(String(255))


prune_runs = Table(
    "prune_runs",
    metadata,
    PruneRunColumns,
    Index("ix_prune_runs_tier_at", "tier", "at"),
)


class EventColumns(TypedColumns):
    id: Named[int] = Column(SerialId, primary_key=True, autoincrement=True)
    at: Named[datetime] = Column(UTCDateTime())
    event: Named[str] = Column(String(64))
    snapshot_id: Named[str | None] = Column(hex_id())
    detail: Named[str] = Column(Text())
    host: Named[str] = Column(String(255))


events = Table(
    "events",
    metadata,
    EventColumns,
    Index("ix_events_at", "at"),
    Index("ix_events_snapshot_at", "snapshot_id", "at"),
)


# The two partial indexes ``schema`` adds, as DDL that SQLite and PostgreSQL both take: a
# catalog made at the head (``migrate``) gets them without importing the dialect packages
# the options of ``schema``'s indexes need (IF NOT EXISTS: ``metadata`` holds them once
# ``schema`` ran in the process). A test holds them equal to ``schema``'s.
LIVE_PLACEMENT_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_placements_live ON placements (snapshot_id, tier) "
    "WHERE removed_at IS NULL",
    "CREATE INDEX IF NOT EXISTS ix_placements_tier_live "
    "ON placements (tier, snapshot_id, removed_at) WHERE removed_at IS NULL",
)


def schema() -> MetaData:
    """The complete schema: ``metadata`` with the partial indexes on live placements.

    Alembic (``migrations/env.py``), the schema test and DDL use this. They are left out of
    the tables until then because its per-dialect ``WHERE`` makes SQLAlchemy import both
    dialect packages to validate the options (PostgreSQL's pulls in asyncio, which a SQLite
    command never uses), and commands never need it: they read and write rows, and the upserts
    name the index themselves (``index_where``). Idempotent.
    """
    if not any(index.name == "ux_placements_live" for index in placements.indexes):
        Index(
            "ux_placements_live",
            placements.c.snapshot_id,
            placements.c.tier,
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        )
    if not any(index.name == "ix_placements_tier_live" for index in placements.indexes):
        # A tier's live placements for the prune plan (revision 0003); partial, so here too.
        Index(
            "ix_placements_tier_live",
            placements.c.tier,
            placements.c.snapshot_id,
            placements.c.removed_at,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        )
    return metadata
