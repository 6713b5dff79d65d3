"""Operators (issue 5): call_records gain the queue, bridge, recording and transfer columns and
the outcome "callback"; callbacks (a waiting caller asked to be called back)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations
from sqlalchemy.dialects import postgresql

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_OUTCOMES = ("answered", "busy", "abandoned", "not_found", "failed")
OUTCOMES = (*OLD_OUTCOMES, "callback")
CALLBACK_STATUSES = ("open", "done", "cancelled")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _replace_outcome_check(batch: BatchOperations, outcomes: tuple[str, ...]) -> None:
    # SQLite cannot alter a CHECK: the drop makes batch mode copy the table (its reflection
    # carries the old CHECK over, so it must be dropped by name, as PostgreSQL does in place).
    batch.drop_constraint(op.f("ck_call_records_outcome"), type_="check")
    batch.create_check_constraint(op.f("ck_call_records_outcome"),
                                  sa.column("outcome").in_(outcomes))


def upgrade() -> None:
    """Add the operators' columns, widen the outcome check, create callbacks."""
    ts = sa.DateTime(timezone=True)
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("operator", sa.String(32), nullable=True))
        batch.add_column(sa.Column("queued_at", ts, nullable=True))
        batch.add_column(sa.Column("bridged_at", ts, nullable=True))
        batch.add_column(sa.Column("talk_ended_at", ts, nullable=True))
        batch.add_column(sa.Column("wrap_up_s", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("no_answers", sa.Integer(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("recording", sa.String(), nullable=True))
        batch.add_column(sa.Column("transfers", _json(), nullable=True))
        _replace_outcome_check(batch, OUTCOMES)
        batch.create_index(op.f("ix_call_records_operator"), ["operator"])
    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("requested_at", ts, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("handled_by", sa.String(64), nullable=True),
        sa.Column("handled_at", ts, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
        sa.UniqueConstraint("call_id", name=op.f("uq_callbacks_call_id")),
        sa.CheckConstraint(sa.column("status").in_(CALLBACK_STATUSES),
                           name=op.f("ck_callbacks_status")),
    )
    op.create_index(op.f("ix_callbacks_tenant"), "callbacks", ["tenant"])
    op.create_index(op.f("ix_callbacks_status"), "callbacks", ["status"])


def downgrade() -> None:
    """Drop callbacks and the operators' columns; "callback" records become "abandoned"."""
    op.drop_index(op.f("ix_callbacks_status"), table_name="callbacks")
    op.drop_index(op.f("ix_callbacks_tenant"), table_name="callbacks")
    op.drop_table("callbacks")
    # The caller left the queue without being served: the old set's nearest word.
    op.execute(sa.text("UPDATE call_records SET outcome = 'abandoned' "
                       "WHERE outcome = 'callback'"))
    with op.batch_alter_table("call_records") as batch:
        batch.drop_index(op.f("ix_call_records_operator"))
        _replace_outcome_check(batch, OLD_OUTCOMES)
        for name in ("transfers", "recording", "no_answers", "wrap_up_s", "talk_ended_at",
                     "bridged_at", "queued_at", "operator"):
            batch.drop_column(name)
