"""Satisfaction survey after resolve: ticket_surveys (one row per resolve SMS that asked the
question, with the citizen's answer) and ticket_survey_replies (every SMS a citizen sent back)

Revision ID: 0016_survey
Revises: 0015_review
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0016_survey"
down_revision: str | Sequence[str] | None = "0015_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ticket_surveys and ticket_survey_replies."""
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "ticket_surveys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("asked_at", ts, nullable=False),
        sa.Column("until", ts, nullable=False),
        sa.Column("answer", sa.String(16), nullable=True),
        sa.Column("answered_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_surveys")),
        sa.ForeignKeyConstraint(["code"], ["tickets.code"],
                                name=op.f("fk_ticket_surveys_code_tickets")),
        sa.UniqueConstraint("code", "asked_at", name="uq_ticket_surveys_code_asked_at"),
        sa.CheckConstraint("answer IN ('satisfied', 'not_resolved')",
                           name=op.f("ck_ticket_surveys_answer")),
    )
    op.create_index(op.f("ix_ticket_surveys_code"), "ticket_surveys", ["code"])
    op.create_index("ix_ticket_surveys_phone_asked_at", "ticket_surveys", ["phone", "asked_at"])
    op.create_table(
        "ticket_survey_replies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("received_at", ts, nullable=False),
        sa.Column("from_number", sa.String(32), nullable=False),
        sa.Column("to_number", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("code", sa.String(32), nullable=True),
        sa.Column("survey_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_survey_replies")),
        sa.UniqueConstraint("message_id", name="uq_ticket_survey_replies_message_id"),
        sa.CheckConstraint("outcome IN ('satisfied', 'not_resolved', 'unrecognised', "
                           "'no_survey', 'already_answered')",
                           name=op.f("ck_ticket_survey_replies_outcome")),
    )
    op.create_index("ix_ticket_survey_replies_received_at", "ticket_survey_replies",
                    ["received_at"])


def downgrade() -> None:
    """Drop ticket_survey_replies and ticket_surveys."""
    op.drop_index("ix_ticket_survey_replies_received_at", table_name="ticket_survey_replies")
    op.drop_table("ticket_survey_replies")
    op.drop_index("ix_ticket_surveys_phone_asked_at", table_name="ticket_surveys")
    op.drop_index(op.f("ix_ticket_surveys_code"), table_name="ticket_surveys")
    op.drop_table("ticket_surveys")
