"""SMS outbox: sms_messages (queued before any gateway sees them, one row per dedupe key)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("queued", "sending", "sent", "delivered", "failed", "expired")
CODINGS = ("gsm7", "ucs2")


def upgrade() -> None:
    """Create the SMS outbox."""
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "sms_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("to_number", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("coding", sa.String(8), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", ts, nullable=False),
        sa.Column("expires_at", ts, nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("claimed_at", ts, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dlr_type", sa.Integer(), nullable=True),
        sa.Column("dlr_detail", sa.Text(), nullable=True),
        sa.Column("smsc_id", sa.String(64), nullable=True),
        sa.Column("smsc_message_id", sa.String(128), nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("sent_at", ts, nullable=True),
        sa.Column("delivered_at", ts, nullable=True),
        sa.Column("dlr_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_sms_messages_dedupe_key")),
        sa.CheckConstraint(sa.column("status").in_(STATUSES), name=op.f("ck_sms_messages_status")),
        sa.CheckConstraint(sa.column("coding").in_(CODINGS), name=op.f("ck_sms_messages_coding")),
    )
    op.create_index(op.f("ix_sms_messages_tenant"), "sms_messages", ["tenant"])
    op.create_index(op.f("ix_sms_messages_sent_at"), "sms_messages", ["sent_at"])
    op.create_index("ix_sms_messages_due", "sms_messages", ["status", "next_attempt_at"])


def downgrade() -> None:
    """Drop the SMS outbox."""
    op.drop_index("ix_sms_messages_due", table_name="sms_messages")
    op.drop_index(op.f("ix_sms_messages_sent_at"), table_name="sms_messages")
    op.drop_index(op.f("ix_sms_messages_tenant"), table_name="sms_messages")
    op.drop_table("sms_messages")
