"""Recording retention: call_records.recording_deleted_at and the recording_audit log (who
deleted which call's recording, when, under which limit; append-only)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit log is append-only: the database itself refuses UPDATE and DELETE.
_PG_FUNCTION = """
CREATE FUNCTION recording_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'recording_audit is append-only (% refused)', TG_OP;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER recording_audit_append_only BEFORE UPDATE OR DELETE ON recording_audit
FOR EACH ROW EXECUTE FUNCTION recording_audit_append_only()
"""
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER recording_audit_no_update BEFORE UPDATE ON recording_audit
       BEGIN SELECT RAISE(ABORT, 'recording_audit is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER recording_audit_no_delete BEFORE DELETE ON recording_audit
       BEGIN SELECT RAISE(ABORT, 'recording_audit is append-only (DELETE refused)'); END""",
)


def upgrade() -> None:
    """Add call_records.recording_deleted_at; create recording_audit."""
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("recording_deleted_at", sa.DateTime(timezone=True),
                                   nullable=True))
    op.create_table(
        "recording_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("recording", sa.String(255), nullable=False),
        sa.Column("call_ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("keep_days", sa.Integer(), nullable=False),
        sa.Column("file_found", sa.Boolean(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_audit")),
    )
    op.create_index("ix_recording_audit_tenant_deleted_at", "recording_audit",
                    ["tenant", "deleted_at"])
    op.create_index("ix_recording_audit_call_id", "recording_audit", ["call_id"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    elif dialect == "sqlite":
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    """Drop recording_audit and call_records.recording_deleted_at."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS recording_audit_append_only ON recording_audit")
        op.execute("DROP FUNCTION IF EXISTS recording_audit_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS recording_audit_no_update")
        op.execute("DROP TRIGGER IF EXISTS recording_audit_no_delete")
    op.drop_index("ix_recording_audit_call_id", table_name="recording_audit")
    op.drop_index("ix_recording_audit_tenant_deleted_at", table_name="recording_audit")
    op.drop_table("recording_audit")
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("recording_deleted_at")
