"""E-mail in: mail_in_messages (one row per tenant and Message-ID taken in: the ticket it
made or was added to, the sender for the per-day limit, our automatic reply's digest)

Revision ID: 0018_mailin
Revises: 0017_open311
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0018_mailin"
down_revision: str | Sequence[str] | None = "0017_open311"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create mail_in_messages."""
    op.create_table(
        "mail_in_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(998), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("reply_digest", sa.String(16), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('ticket', 'note')", name=op.f("ck_mail_in_messages_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_in_messages")),
        sa.UniqueConstraint("tenant", "message_id", name="uq_mail_in_messages_tenant"),
    )
    op.create_index("ix_mail_in_messages_sender", "mail_in_messages", ["sender", "received_at"])
    op.create_index("ix_mail_in_messages_code", "mail_in_messages", ["code"])
    op.create_index("ix_mail_in_messages_reply_digest", "mail_in_messages", ["reply_digest"])


def downgrade() -> None:
    """Drop mail_in_messages."""
    op.drop_index("ix_mail_in_messages_reply_digest", table_name="mail_in_messages")
    op.drop_index("ix_mail_in_messages_code", table_name="mail_in_messages")
    op.drop_index("ix_mail_in_messages_sender", table_name="mail_in_messages")
    op.drop_table("mail_in_messages")
