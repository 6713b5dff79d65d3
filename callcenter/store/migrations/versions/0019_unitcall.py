"""Warm transfer to a unit: ticket_transfers (a call about a ticket transferred to a unit that
answered; the unit's users may read the ticket, its console lists the recent ones)

Revision ID: 0019_unitcall
Revises: 0018_mailin
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0019_unitcall"
down_revision: str | Sequence[str] | None = "0018_mailin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ticket_transfers."""
    op.create_table(
        "ticket_transfers",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", "unit", "call_id", name=op.f("pk_ticket_transfers")),
        sa.ForeignKeyConstraint(["code"], ["tickets.code"],
                                name=op.f("fk_ticket_transfers_code_tickets")),
    )
    op.create_index("ix_ticket_transfers_unit_at", "ticket_transfers", ["unit", "at"])


def downgrade() -> None:
    """Drop ticket_transfers."""
    op.drop_index("ix_ticket_transfers_unit_at", table_name="ticket_transfers")
    op.drop_table("ticket_transfers")
