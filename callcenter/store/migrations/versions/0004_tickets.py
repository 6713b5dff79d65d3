"""Petition tickets: tickets, ticket_calls, ticket_units, ticket_audit (append-only),
ticket_attachments, ticket_sequences

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Migrations are history: write literal types and values here, never import app constants.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = ("new", "answered", "forwarded", "in_progress", "resolved", "closed", "returned",
          "reopened")

# The audit log is append-only: the database itself refuses UPDATE and DELETE.
_PG_FUNCTION = """
CREATE FUNCTION ticket_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ticket_audit is append-only (% refused)', TG_OP;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER ticket_audit_append_only BEFORE UPDATE OR DELETE ON ticket_audit
FOR EACH ROW EXECUTE FUNCTION ticket_audit_append_only()
"""
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER ticket_audit_no_update BEFORE UPDATE ON ticket_audit
       BEGIN SELECT RAISE(ABORT, 'ticket_audit is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER ticket_audit_no_delete BEFORE DELETE ON ticket_audit
       BEGIN SELECT RAISE(ABORT, 'ticket_audit is append-only (DELETE refused)'); END""",
)


def upgrade() -> None:
    """Create the ticket tables."""
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "tickets",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("received_at", ts, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("citizen_name", sa.String(200), nullable=True),
        sa.Column("citizen_phone", sa.String(16), nullable=True),
        sa.Column("district", sa.String(64), nullable=True),
        sa.Column("commune", sa.String(64), nullable=True),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("forwarded_at", ts, nullable=True),
        sa.Column("accepted_at", ts, nullable=True),
        sa.Column("resolved_at", ts, nullable=True),
        sa.Column("closed_at", ts, nullable=True),
        sa.Column("returned_at", ts, nullable=True),
        sa.Column("reopened_at", ts, nullable=True),
        sa.Column("forward_due", ts, nullable=True),
        sa.Column("resolve_due", ts, nullable=True),
        sa.Column("remind_at", ts, nullable=True),
        sa.Column("reminded_at", ts, nullable=True),
        sa.Column("late_at", ts, nullable=True),
        sa.Column("forward_late_at", ts, nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("reply_document", sa.String(64), nullable=True),
        sa.Column("faq_item", sa.String(128), nullable=True),
        sa.Column("returned_by", sa.String(32), nullable=True),
        sa.Column("return_reason", sa.Text(), nullable=True),
        sa.Column("reopen_reason", sa.Text(), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("publishable", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tickets")),
        sa.CheckConstraint(sa.column("state").in_(STATES), name=op.f("ck_tickets_state")),
    )
    op.create_index("ix_tickets_tenant_received", "tickets", ["tenant", "received_at"])
    op.create_index("ix_tickets_unit_state", "tickets", ["unit", "state"])
    op.create_index("ix_tickets_state_resolve_due", "tickets", ["state", "resolve_due"])
    op.create_index("ix_tickets_citizen_phone", "tickets", ["citizen_phone"])

    op.create_table(
        "ticket_calls",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("linked_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("code", "call_id", name=op.f("pk_ticket_calls")),
        sa.ForeignKeyConstraint(["code"], ["tickets.code"],
                                name=op.f("fk_ticket_calls_code_tickets")),
    )
    op.create_index("ix_ticket_calls_call_id", "ticket_calls", ["call_id"])

    op.create_table(
        "ticket_units",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("first_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("code", "unit", name=op.f("pk_ticket_units")),
        sa.ForeignKeyConstraint(["code"], ["tickets.code"],
                                name=op.f("fk_ticket_units_code_tickets")),
    )
    op.create_index("ix_ticket_units_unit", "ticket_units", ["unit"])

    op.create_table(
        "ticket_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("actor_unit", sa.String(32), nullable=True),
        sa.Column("at", ts, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_audit")),
        sa.ForeignKeyConstraint(["code"], ["tickets.code"],
                                name=op.f("fk_ticket_audit_code_tickets")),
    )
    op.create_index(op.f("ix_ticket_audit_code"), "ticket_audit", ["code"])

    op.create_table(
        "ticket_attachments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("stored_path", sa.String(300), nullable=False),
        sa.Column("uploaded_by", sa.String(120), nullable=False),
        sa.Column("uploaded_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_attachments")),
        sa.ForeignKeyConstraint(["code"], ["tickets.code"],
                                name=op.f("fk_ticket_attachments_code_tickets")),
        sa.UniqueConstraint("code", "sha256", name="uq_ticket_attachments_code_sha256"),
    )
    op.create_index(op.f("ix_ticket_attachments_code"), "ticket_attachments", ["code"])

    op.create_table(
        "ticket_sequences",
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "day", name=op.f("pk_ticket_sequences")),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    elif op.get_bind().dialect.name == "sqlite":
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    """Drop the ticket tables."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ticket_audit_append_only ON ticket_audit")
        op.execute("DROP FUNCTION IF EXISTS ticket_audit_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ticket_audit_no_update")
        op.execute("DROP TRIGGER IF EXISTS ticket_audit_no_delete")
    op.drop_table("ticket_sequences")
    op.drop_index(op.f("ix_ticket_attachments_code"), table_name="ticket_attachments")
    op.drop_table("ticket_attachments")
    op.drop_index(op.f("ix_ticket_audit_code"), table_name="ticket_audit")
    op.drop_table("ticket_audit")
    op.drop_index("ix_ticket_units_unit", table_name="ticket_units")
    op.drop_table("ticket_units")
    op.drop_index("ix_ticket_calls_call_id", table_name="ticket_calls")
    op.drop_table("ticket_calls")
    op.drop_index("ix_tickets_citizen_phone", table_name="tickets")
    op.drop_index("ix_tickets_state_resolve_due", table_name="tickets")
    op.drop_index("ix_tickets_unit_state", table_name="tickets")
    op.drop_index("ix_tickets_tenant_received", table_name="tickets")
    op.drop_table("tickets")
