"""Initial catalog schema.

Revision ID: 0001
Revises:
Create Date: 2026-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _hex_id() -> sa.types.TypeEngine:
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def _serial() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", _hex_id(), nullable=False),
        sa.Column("node_id", sa.String(255), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("db_sha256", sa.String(64), nullable=False),
        sa.Column("db_size", sa.BigInteger(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("signer_key_id", sa.String(16), nullable=False),
        sa.Column("signer_pubkey", sa.String(64), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("catalogued_at", _ts(), nullable=False),
        sa.Column("catalogued_from", sa.Text(), nullable=False),
        sa.Column("catalogued_host", sa.String(255), nullable=False),
        sa.Column("pinned", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
    )
    op.create_index("ix_snapshots_node_created", "snapshots", ["node_id", "created_at", "id"])
    op.create_index("ix_snapshots_created", "snapshots", ["created_at", "id"])
    op.create_index("ix_snapshots_signer_created", "snapshots", ["signer_key_id", "created_at"])

    op.create_table(
        "placements",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("snapshot_id", _hex_id(), nullable=False),
        sa.Column("tier", sa.String(255), nullable=False),
        sa.Column("store", sa.Text(), nullable=False),
        sa.Column("since", _ts(), nullable=False),
        sa.Column("removed_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_placements"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name="fk_placements_snapshot_id_snapshots"
        ),
    )
    op.create_index(
        "ux_placements_live",
        "placements",
        ["snapshot_id", "tier"],
        unique=True,
        sqlite_where=sa.text("removed_at IS NULL"),
        postgresql_where=sa.text("removed_at IS NULL"),
    )
    op.create_index("ix_placements_tier_snapshot", "placements", ["tier", "snapshot_id"])

    op.create_table(
        "keys",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("label", sa.String(255), nullable=True),
        sa.Column("trusted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("revoked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("first_seen", _ts(), nullable=False),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_keys"),
        sa.UniqueConstraint("public_key", name="uq_keys_public_key"),
    )
    op.create_index("ix_keys_label", "keys", ["label"])

    op.create_table(
        "verifications",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("snapshot_id", _hex_id(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verifications"),
    )
    op.create_index("ix_verifications_snapshot_at", "verifications", ["snapshot_id", "at"])

    op.create_table(
        "restores",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("snapshot_id", _hex_id(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("migrations_replayed", sa.Text(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_restores"),
    )
    op.create_index("ix_restores_snapshot_at", "restores", ["snapshot_id", "at"])

    op.create_table(
        "prune_runs",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("tier", sa.String(255), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("removed", sa.Text(), nullable=False),
        sa.Column("bytes_freed", sa.BigInteger(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prune_runs"),
    )
    op.create_index("ix_prune_runs_tier_at", "prune_runs", ["tier", "at"])

    op.create_table(
        "events",
        sa.Column("id", _serial(), autoincrement=True, nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("snapshot_id", _hex_id(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_snapshot_at", "events", ["snapshot_id", "at"])


def downgrade() -> None:
    for table in ("events", "prune_runs", "restores", "verifications", "keys", "placements"):
        op.drop_table(table)
    op.drop_table("snapshots")
