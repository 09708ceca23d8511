"""Restore drills: each one's outcome, checks, time to restore and bytes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08

A new table only: the upgrade keeps every row as it is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _hex_id() -> sa.types.TypeEngine:
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drills",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
            autoincrement=True,
        ),
        sa.Column("snapshot_id", _hex_id(), nullable=False),
        sa.Column("node_id", sa.String(255), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("checks", sa.Text(), nullable=False),
        sa.Column("restore_seconds", sa.Float(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.String(255)),
        sa.Column("host", sa.String(255), nullable=False),
    )
    op.create_index("ix_drills_snapshot_at", "drills", ["snapshot_id", "at"])
    op.create_index("ix_drills_node_at", "drills", ["node_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_drills_node_at", table_name="drills")
    op.drop_index("ix_drills_snapshot_at", table_name="drills")
    op.drop_table("drills")
