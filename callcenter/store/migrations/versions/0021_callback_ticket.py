"""Callbacks that dial, the rest: a callback request may name its ticket (callbacks.ticket),
and the hotline's calls back get a call record of their own (outcome "dialback")

Revision ID: 0021_callback_ticket
Revises: 0020_dialback
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0021_callback_ticket"
down_revision: str | Sequence[str] | None = "0020_dialback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_OUTCOMES = ("answered", "busy", "abandoned", "not_found", "failed", "callback")
OUTCOMES = (*OLD_OUTCOMES, "dialback")


def _outcome_check(outcomes: tuple[str, ...]) -> None:
    # SQLite cannot alter a CHECK: dropping it by name makes batch mode copy the table.
    with op.batch_alter_table("call_records") as batch:
        batch.drop_constraint(op.f("ck_call_records_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_call_records_outcome"),
                                      sa.column("outcome").in_(outcomes))


def upgrade() -> None:
    """Widen the outcome check; add callbacks.ticket (indexed)."""
    _outcome_check(OUTCOMES)
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("ticket", sa.String(32), nullable=True))
        batch.create_index(op.f("ix_callbacks_ticket"), ["ticket"])


def downgrade() -> None:
    """Drop callbacks.ticket; calls back's records become "answered" or "failed"."""
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_index(op.f("ix_callbacks_ticket"))
        batch.drop_column("ticket")
    records = sa.table("call_records", sa.column("outcome"), sa.column("answered_at"))
    op.execute(records.update().where(records.c.outcome == "dialback",
                                      records.c.answered_at.is_not(None))
               .values(outcome="answered"))
    op.execute(records.update().where(records.c.outcome == "dialback").values(outcome="failed"))
    _outcome_check(OLD_OUTCOMES)
