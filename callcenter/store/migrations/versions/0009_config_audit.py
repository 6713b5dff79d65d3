"""Config audit: config_audit (shift changes made from the console: who, when, old -> new)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit log is append-only: the database itself refuses UPDATE and DELETE.
_PG_FUNCTION = """
CREATE FUNCTION config_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'config_audit is append-only (% refused)', TG_OP;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER config_audit_append_only BEFORE UPDATE OR DELETE ON config_audit
FOR EACH ROW EXECUTE FUNCTION config_audit_append_only()
"""
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER config_audit_no_update BEFORE UPDATE ON config_audit
       BEGIN SELECT RAISE(ABORT, 'config_audit is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER config_audit_no_delete BEFORE DELETE ON config_audit
       BEGIN SELECT RAISE(ABORT, 'config_audit is append-only (DELETE refused)'); END""",
)


def upgrade() -> None:
    """Create config_audit."""
    op.create_table(
        "config_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("shift", sa.String(64), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("old_value", sa.String(64), nullable=False),
        sa.Column("new_value", sa.String(64), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("previous_copy", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_audit")),
    )
    op.create_index("ix_config_audit_tenant_changed_at", "config_audit",
                    ["tenant", "changed_at"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    elif dialect == "sqlite":
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    """Drop config_audit."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS config_audit_append_only ON config_audit")
        op.execute("DROP FUNCTION IF EXISTS config_audit_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS config_audit_no_update")
        op.execute("DROP TRIGGER IF EXISTS config_audit_no_delete")
    op.drop_index("ix_config_audit_tenant_changed_at", table_name="config_audit")
    op.drop_table("config_audit")
