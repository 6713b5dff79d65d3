"""Callbacks that dial: attempts on a callback request (how many, the last result and when),
the call that reached the caller (its id and recording), and where the request came from
(source: queue = pressed 1 after the maximum wait, pool_full = offered when the lines were full)

Revision ID: 0020_dialback
Revises: 0019_unitcall
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0020_dialback"
down_revision: str | Sequence[str] | None = "0019_unitcall"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add attempts, last_result, last_attempt_at, dial_call_id, recording, source."""
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("last_result", sa.String(16), nullable=True))
        batch.add_column(sa.Column("last_attempt_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("dial_call_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("recording", sa.String(255), nullable=True))
        batch.add_column(sa.Column("source", sa.String(16), nullable=False,
                                   server_default="queue"))


def downgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        for name in ("source", "recording", "dial_call_id", "last_attempt_at", "last_result",
                     "attempts"):
            batch.drop_column(name)
