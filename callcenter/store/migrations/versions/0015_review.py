"""Disclosure review: tickets.public_question, public_answer (the texts the public reads, as a
supervisor edited them; content and result stay as they were) and decline_reason

Revision ID: 0015_review
Revises: 0014_quality
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0015_review"
down_revision: str | Sequence[str] | None = "0014_quality"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the review's columns to tickets (all NULL: existing tickets keep their state)."""
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("public_question", sa.Text(), nullable=True))
        batch.add_column(sa.Column("public_answer", sa.Text(), nullable=True))
        batch.add_column(sa.Column("decline_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the review's columns."""
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("decline_reason")
        batch.drop_column("public_answer")
        batch.drop_column("public_question")
