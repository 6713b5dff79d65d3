"""call_records: one row per finished call

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = ("answered", "busy", "abandoned", "not_found", "failed")


def upgrade() -> None:
    """Create call_records and its indexes."""
    op.create_table(
        "call_records",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("dialled", sa.String(), nullable=False),
        sa.Column("caller", sa.String(), nullable=False),
        sa.Column("shift", sa.String(), nullable=True),
        sa.Column("pool_limit", sa.Integer(), nullable=True),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(), nullable=True),
        sa.Column("cause_code", sa.Integer(), nullable=True),
        sa.Column("linkedid", sa.String(), nullable=False),
        sa.Column("extra", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_records")),
        sa.CheckConstraint(sa.column("outcome").in_(OUTCOMES),
                           name=op.f("ck_call_records_outcome")),
    )
    op.create_index(op.f("ix_call_records_tenant"), "call_records", ["tenant"])
    op.create_index(op.f("ix_call_records_arrived_at"), "call_records", ["arrived_at"])
    op.create_index(op.f("ix_call_records_linkedid"), "call_records", ["linkedid"])


def downgrade() -> None:
    """Drop call_records (and its indexes with it)."""
    op.drop_index(op.f("ix_call_records_linkedid"), table_name="call_records")
    op.drop_index(op.f("ix_call_records_arrived_at"), table_name="call_records")
    op.drop_index(op.f("ix_call_records_tenant"), table_name="call_records")
    op.drop_table("call_records")
