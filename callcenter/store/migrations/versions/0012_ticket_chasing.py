"""Chasing late units: tickets.chase_at (the deadline job's next chase slot), chased_at and
escalated_at (the latest chase and the escalation for the current forwarding)

Revision ID: 0012_chasing
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0012_chasing"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("chase_at", "chased_at", "escalated_at")


def upgrade() -> None:
    """Add the three columns and the index the deadline job's chase query uses."""
    with op.batch_alter_table("tickets") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tickets_state_chase_at", "tickets", ["state", "chase_at"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_tickets_state_chase_at", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
