"""Open311 GeoReport v2: open311_keys (third-party apps' keys, only the secret's SHA-256) and
open311_requests (the tickets an app opened: its key and the media link it sent)

Revision ID: 0017_open311
Revises: 0016_survey
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0017_open311"
down_revision: str | Sequence[str] | None = "0016_survey"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create open311_keys and open311_requests."""
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "open311_keys",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(48), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("last_used_at", ts, nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open311_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_open311_keys_name")),
    )
    op.create_index("ix_open311_keys_tenant", "open311_keys", ["tenant"])
    op.create_table(
        "open311_requests",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("media_url", sa.Text(), nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_open311_requests")),
        sa.ForeignKeyConstraint(["code"], ["tickets.code"],
                                name=op.f("fk_open311_requests_code_tickets")),
        sa.ForeignKeyConstraint(["key_id"], ["open311_keys.id"],
                                name=op.f("fk_open311_requests_key_id_open311_keys")),
    )
    op.create_index("ix_open311_requests_key_id", "open311_requests", ["key_id"])


def downgrade() -> None:
    """Drop open311_requests and open311_keys."""
    op.drop_index("ix_open311_requests_key_id", table_name="open311_requests")
    op.drop_table("open311_requests")
    op.drop_index("ix_open311_keys_tenant", table_name="open311_keys")
    op.drop_table("open311_keys")
