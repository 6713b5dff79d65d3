"""IVR and FAQ: call_records.ivr_path, FAQ versions/items, FAQ events (heard, yes, no)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAQ_EVENT_KINDS = ("heard", "yes", "no")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add the IVR path to call records; create the FAQ tables."""
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("ivr_path", _json(), nullable=True))
    op.create_table(
        "faq_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(), nullable=True),
        sa.Column("source_name", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_versions")),
        sa.UniqueConstraint("tenant", "field", "version",
                            name=op.f("uq_faq_versions_tenant")),
    )
    op.create_table(
        "faq_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(16), nullable=False),
        sa.Column("code", sa.String(), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("keywords", sa.Text(), nullable=True),
        sa.Column("unit", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_items")),
        sa.ForeignKeyConstraint(["version_id"], ["faq_versions.id"], ondelete="CASCADE",
                                name=op.f("fk_faq_items_version_id_faq_versions")),
    )
    op.create_index(op.f("ix_faq_items_version_id"), "faq_items", ["version_id"])
    op.create_index(op.f("ix_faq_items_key"), "faq_items", ["key"])
    op.create_table(
        "faq_events",
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("item_key", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "seq", name=op.f("pk_faq_events")),
        sa.CheckConstraint(sa.column("kind").in_(FAQ_EVENT_KINDS),
                           name=op.f("ck_faq_events_kind")),
    )
    op.create_index(op.f("ix_faq_events_item_key"), "faq_events", ["item_key"])


def downgrade() -> None:
    """Drop the FAQ tables and the IVR path column."""
    op.drop_index(op.f("ix_faq_events_item_key"), table_name="faq_events")
    op.drop_table("faq_events")
    op.drop_index(op.f("ix_faq_items_key"), table_name="faq_items")
    op.drop_index(op.f("ix_faq_items_version_id"), table_name="faq_items")
    op.drop_table("faq_items")
    op.drop_table("faq_versions")
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("ivr_path")
