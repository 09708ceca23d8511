"""Covering indexes for the prune plan: snapshots in time order with the planner's columns,
and each tier's live placements.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

A prune plan reads every snapshot of a tier. With these it is two index scans and no table
access: ``ix_snapshots_prune`` holds, in ``created_at, id`` order (so the plan needs no sort
step), every column the planner reads, and the wide ``snapshots`` rows (manifest, cursor) are
never touched; ``ix_placements_tier_live`` lists a tier's live placements. Only CREATE INDEX,
so the upgrade keeps every row as it is. (A plain ``ANALYZE`` is not needed: each query has
one index that serves it completely, which SQLite's planner picks without statistics.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PRUNE_COLUMNS = ["created_at", "id", "node_id", "signer_key_id", "pinned", "last_verify_outcome"]


def upgrade() -> None:
    op.create_index("ix_snapshots_prune", "snapshots", PRUNE_COLUMNS)
    op.create_index(
        "ix_placements_tier_live",
        "placements",
        # removed_at is NULL in every entry, but listing it lets SQLite answer from the index.
        ["tier", "snapshot_id", "removed_at"],
        sqlite_where=sa.text("removed_at IS NULL"),
        postgresql_where=sa.text("removed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_placements_tier_live", table_name="placements")
    op.drop_index("ix_snapshots_prune", table_name="snapshots")
