"""User audit: user_audit (users created and changed by admins in the console: who, when,
which user, what, old -> new; never a password)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit log is append-only: the database itself refuses UPDATE and DELETE.
_PG_FUNCTION = """
CREATE FUNCTION user_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'user_audit is append-only (% refused)', TG_OP;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER user_audit_append_only BEFORE UPDATE OR DELETE ON user_audit
FOR EACH ROW EXECUTE FUNCTION user_audit_append_only()
"""
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER user_audit_no_update BEFORE UPDATE ON user_audit
       BEGIN SELECT RAISE(ABORT, 'user_audit is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER user_audit_no_delete BEFORE DELETE ON user_audit
       BEGIN SELECT RAISE(ABORT, 'user_audit is append-only (DELETE refused)'); END""",
)


def upgrade() -> None:
    """Create user_audit."""
    op.create_table(
        "user_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("field", sa.String(16), nullable=True),
        sa.Column("old_value", sa.String(200), nullable=True),
        sa.Column("new_value", sa.String(200), nullable=True),
        sa.CheckConstraint(
            "action IN ('create', 'update', 'disable', 'enable', 'reset_password', 'unlock')",
            name=op.f("ck_user_audit_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_audit")),
    )
    op.create_index("ix_user_audit_tenant_changed_at", "user_audit", ["tenant", "changed_at"])
    op.create_index("ix_user_audit_tenant_target", "user_audit", ["tenant", "target"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    elif dialect == "sqlite":
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    """Drop user_audit."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS user_audit_append_only ON user_audit")
        op.execute("DROP FUNCTION IF EXISTS user_audit_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS user_audit_no_update")
        op.execute("DROP TRIGGER IF EXISTS user_audit_no_delete")
    op.drop_index("ix_user_audit_tenant_target", table_name="user_audit")
    op.drop_index("ix_user_audit_tenant_changed_at", table_name="user_audit")
    op.drop_table("user_audit")
