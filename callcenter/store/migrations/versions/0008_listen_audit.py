"""Listen-in audit: listen_audit (supervisors listening, whispering, barging into live calls)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create listen_audit."""
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "listen_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("node", sa.String(64), nullable=True),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("supervisor", sa.String(64), nullable=False),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("operator", sa.String(32), nullable=True),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("requested_at", ts, nullable=False),
        sa.Column("started_at", ts, nullable=True),
        sa.Column("ended_at", ts, nullable=True),
        sa.Column("end_reason", sa.String(64), nullable=True),
        sa.CheckConstraint("mode IN ('listen', 'whisper', 'barge')",
                           name=op.f("ck_listen_audit_mode")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listen_audit")),
    )
    op.create_index(op.f("ix_listen_audit_tenant"), "listen_audit", ["tenant"])
    op.create_index(op.f("ix_listen_audit_call_id"), "listen_audit", ["call_id"])


def downgrade() -> None:
    """Drop listen_audit."""
    op.drop_index(op.f("ix_listen_audit_call_id"), table_name="listen_audit")
    op.drop_index(op.f("ix_listen_audit_tenant"), table_name="listen_audit")
    op.drop_table("listen_audit")
