"""SQLAlchemy 2 declarative models of the catalog (DESIGN.md section 6).

The schema itself is owned by the Alembic revisions in ``migrations/versions``; these models
must describe the head revision exactly. JSON payloads (cursor, manifest, tags, policies, plans)
are stored as JSON text so both backends keep them byte-for-byte as written.

Tables:

- ``snapshots``: one row per snapshot id, with a denormalised copy of its last verification
  (``last_verified_at``, ``last_verify_outcome``) so listings never scan the history;
- ``placements``: which tier/store holds a snapshot; a row with ``removed_at`` set is history,
  at most one live row per (snapshot, tier);
- ``keys``: signer keys seen or named by the operator, with trust and revocation;
- ``verifications``, ``restores``, ``prune_runs``: append-only records;
- ``events``: the audit log shown by ``snapshot history``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from catalog.types import UTCDateTime, hex_id

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
SerialId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    # Named constraints let the migrations refer to them (SQLite batch mode needs names).
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Snapshot(Base):
    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(hex_id(), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    db_sha256: Mapped[str] = mapped_column(String(64))
    db_size: Mapped[int] = mapped_column(BigInteger())
    cursor: Mapped[str] = mapped_column(Text())
    signer_key_id: Mapped[str] = mapped_column(String(16))
    signer_pubkey: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[str] = mapped_column(Text())
    label: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[str] = mapped_column(Text(), server_default="[]")
    catalogued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    catalogued_from: Mapped[str] = mapped_column(Text())
    catalogued_host: Mapped[str] = mapped_column(String(255))
    pinned: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_verify_outcome: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        # id closes each index so "newest first" has a total order without a sort step.
        Index("ix_snapshots_node_created", "node_id", "created_at", "id"),
        Index("ix_snapshots_created", "created_at", "id"),
        Index("ix_snapshots_signer_created", "signer_key_id", "created_at"),
        Index("ix_snapshots_last_verified", "last_verified_at"),
    )


class Placement(Base):
    __tablename__ = "placements"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[str] = mapped_column(hex_id(), ForeignKey("snapshots.id"))
    tier: Mapped[str] = mapped_column(String(255))
    store: Mapped[str] = mapped_column(Text())
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ux_placements_live",
            "snapshot_id",
            "tier",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
        Index("ix_placements_tier_snapshot", "tier", "snapshot_id"),
        # show lists removed placements too, which the partial index above cannot serve.
        Index("ix_placements_snapshot", "snapshot_id"),
    )


class Key(Base):
    __tablename__ = "keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(255), index=True)
    trusted: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    revoked: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Verification(Base):
    __tablename__ = "verifications"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    # No foreign key: a tarball can be verified before (or without) being catalogued.
    snapshot_id: Mapped[str] = mapped_column(hex_id())
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    mode: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), server_default="verify")
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text())
    host: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index("ix_verifications_snapshot_at", "snapshot_id", "at"),)


class Restore(Base):
    __tablename__ = "restores"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[str] = mapped_column(hex_id())
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    target: Mapped[str] = mapped_column(Text())
    forced: Mapped[bool] = mapped_column(Boolean())
    migrations_replayed: Mapped[str] = mapped_column(Text())
    host: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index("ix_restores_snapshot_at", "snapshot_id", "at"),)


class PruneRun(Base):
    __tablename__ = "prune_runs"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    tier: Mapped[str] = mapped_column(String(255))
    policy: Mapped[str] = mapped_column(Text())
    plan: Mapped[str] = mapped_column(Text())
    removed: Mapped[str] = mapped_column(Text())
    bytes_freed: Mapped[int] = mapped_column(BigInteger())
    dry_run: Mapped[bool] = mapped_column(Boolean())
    host: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index("ix_prune_runs_tier_at", "tier", "at"),)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(String(64))
    snapshot_id: Mapped[str | None] = mapped_column(hex_id())
    detail: Mapped[str] = mapped_column(Text())
    host: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_events_at", "at"),
        Index("ix_events_snapshot_at", "snapshot_id", "at"),
    )
