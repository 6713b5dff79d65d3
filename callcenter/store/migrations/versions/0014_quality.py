"""Quality review of operators' answers: quality_reviews (one review per call per reviewer,
editable) and the append-only quality_audit log (plays, downloads, scoring)

Revision ID: 0014_quality
Revises: 0013_mail
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0014_quality"
down_revision: str | Sequence[str] | None = "0013_mail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit log is append-only: the database itself refuses UPDATE and DELETE.
_PG_FUNCTION = """
CREATE FUNCTION quality_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'quality_audit is append-only (% refused)', TG_OP;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER quality_audit_append_only BEFORE UPDATE OR DELETE ON quality_audit
FOR EACH ROW EXECUTE FUNCTION quality_audit_append_only()
"""
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER quality_audit_no_update BEFORE UPDATE ON quality_audit
       BEGIN SELECT RAISE(ABORT, 'quality_audit is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER quality_audit_no_delete BEFORE DELETE ON quality_audit
       BEGIN SELECT RAISE(ABORT, 'quality_audit is append-only (DELETE refused)'); END""",
)


def upgrade() -> None:
    """Create quality_reviews and quality_audit."""
    op.create_table(
        "quality_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(32), nullable=False),
        sa.Column("call_arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("greeting", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Integer(), nullable=False),
        sa.Column("attitude", sa.Integer(), nullable=False),
        sa.Column("no_buck_passing", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_reviews")),
        sa.UniqueConstraint("call_id", "reviewer", name="uq_quality_reviews_call_reviewer"),
        sa.CheckConstraint("greeting BETWEEN 1 AND 5",
                           name=op.f("ck_quality_reviews_greeting")),
        sa.CheckConstraint("accuracy BETWEEN 1 AND 5",
                           name=op.f("ck_quality_reviews_accuracy")),
        sa.CheckConstraint("attitude BETWEEN 1 AND 5",
                           name=op.f("ck_quality_reviews_attitude")),
    )
    op.create_index("ix_quality_reviews_tenant_call_at", "quality_reviews",
                    ["tenant", "call_arrived_at"])
    op.create_table(
        "quality_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_audit")),
        sa.CheckConstraint("action IN ('play', 'download', 'review_create', 'review_update')",
                           name=op.f("ck_quality_audit_action")),
    )
    op.create_index("ix_quality_audit_tenant_at", "quality_audit", ["tenant", "at"])
    op.create_index("ix_quality_audit_call_id", "quality_audit", ["call_id"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    elif dialect == "sqlite":
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    """Drop quality_audit and quality_reviews."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS quality_audit_append_only ON quality_audit")
        op.execute("DROP FUNCTION IF EXISTS quality_audit_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS quality_audit_no_update")
        op.execute("DROP TRIGGER IF EXISTS quality_audit_no_delete")
    op.drop_index("ix_quality_audit_call_id", table_name="quality_audit")
    op.drop_index("ix_quality_audit_tenant_at", table_name="quality_audit")
    op.drop_table("quality_audit")
    op.drop_index("ix_quality_reviews_tenant_call_at", table_name="quality_reviews")
    op.drop_table("quality_reviews")
