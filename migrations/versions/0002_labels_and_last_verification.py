"""Snapshot label/tags, verification kind, denormalised last verification (with backfill).

Revision ID: 0002
Revises: 0001
Create Date: 2026-06-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only ADD COLUMN and CREATE INDEX: batch mode then alters in place on SQLite instead of
    # rebuilding "snapshots", which other tables reference while foreign keys are enforced.
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("label", sa.String(255), nullable=True))
        batch.add_column(sa.Column("tags", sa.Text(), server_default="[]", nullable=False))
        batch.add_column(sa.Column("last_verified_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_verify_outcome", sa.String(32), nullable=True))
        batch.create_index("ix_snapshots_last_verified", ["last_verified_at"])
    with op.batch_alter_table("placements") as batch:
        batch.create_index("ix_placements_snapshot", ["snapshot_id"])
    with op.batch_alter_table("verifications") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), server_default="verify", nullable=False)
        )

    # Backfill: the newest verification of each snapshot (ties broken by insertion order).
    op.execute(
        """
        UPDATE snapshots SET
          last_verified_at = (
            SELECT v.at FROM verifications v WHERE v.snapshot_id = snapshots.id
            ORDER BY v.at DESC, v.id DESC LIMIT 1),
          last_verify_outcome = (
            SELECT v.outcome FROM verifications v WHERE v.snapshot_id = snapshots.id
            ORDER BY v.at DESC, v.id DESC LIMIT 1)
        WHERE EXISTS (SELECT 1 FROM verifications v WHERE v.snapshot_id = snapshots.id)
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("verifications") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("placements") as batch:
        batch.drop_index("ix_placements_snapshot")
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_index("ix_snapshots_last_verified")
        batch.drop_column("last_verify_outcome")
        batch.drop_column("last_verified_at")
        batch.drop_column("tags")
        batch.drop_column("label")
