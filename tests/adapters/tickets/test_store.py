"""The ticket tables and their migration (0004), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext
from sqlalchemy.exc import DBAPIError

from callcenter.store.migrate import alembic_config, upgrade_head
from callcenter.store.urls import normalise_url
from callcenter.tickets import store as st
from callcenter.tickets.rules import Actor, AuditEntry, TicketState
from tests.support.concurrency import run_together
from tests.support.schema import model_diff

TABLES = {"tickets", "ticket_calls", "ticket_units", "ticket_audit", "ticket_attachments",
          "ticket_sequences"}
DAY = dt.date(2026, 11, 23)


def _tables(url: str) -> tuple[set[str], list[str]]:
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return (set(sa.inspect(conn).get_table_names()),
                    list(MigrationContext.configure(conn).get_current_heads()))
    finally:
        engine.dispose()


def test_given_0004_when_upgraded_downgraded_and_upgraded_again_then_clean(
        database_url: str) -> None:
    upgrade_head(database_url)
    tables, _ = _tables(database_url)
    assert TABLES <= tables
    command.downgrade(alembic_config(database_url), "0003")
    tables, heads = _tables(database_url)
    assert not TABLES & tables and heads == ["0003"]
    assert "sms_messages" in tables  # the revision before is untouched
    upgrade_head(database_url)  # the triggers and functions were dropped too: no clash
    assert TABLES <= _tables(database_url)[0]


def test_given_migrated_database_when_compared_to_ticket_models_then_no_difference(
        database_url: str) -> None:
    diff = model_diff(database_url, TABLES)
    assert diff == []


def test_given_indexes_when_migrated_then_report_and_list_indexes_exist(
        database_url: str) -> None:
    upgrade_head(database_url)
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            names = {i["name"] for i in sa.inspect(conn).get_indexes("tickets")}
    finally:
        engine.dispose()
    assert {"ix_tickets_tenant_received", "ix_tickets_unit_state",
            "ix_tickets_state_resolve_due", "ix_tickets_citizen_phone"} <= names


def _ticket_row(code: str, at: dt.datetime) -> dict[str, object]:
    return {"code": code, "tenant": "dongnai", "channel": "phone", "content": "x",
            "field": "other", "received_at": at, "state": "new", "urgent": False,
            "publishable": False, "version": 0, "updated_at": at}


def test_given_audit_entry_when_updated_or_deleted_then_database_refuses(
        database_url: str) -> None:
    upgrade_head(database_url)
    db = st.TicketDatabase(database_url)
    at = dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC)
    try:
        with db.writing() as conn:
            conn.execute(sa.insert(st.TICKETS), [_ticket_row("DN-20261123-0001", at)])
            st.add_audit(conn, [AuditEntry("DN-20261123-0001", Actor("op", "operator"), at,
                                           "open", None, TicketState.NEW)])
        for stmt in (sa.update(st.AUDIT).values(detail="rewritten"), sa.delete(st.AUDIT)):
            with pytest.raises(DBAPIError, match="append-only"), db.writing() as conn:
                conn.execute(stmt)
        with db.reading() as conn:
            entries = st.audit_of(conn, "DN-20261123-0001")
        assert [(e.event, e.detail) for e in entries] == [("open", "")]
    finally:
        db.close()


def test_given_many_threads_when_allocating_codes_then_no_number_twice_and_none_skipped(
        database_url: str) -> None:
    upgrade_head(database_url)
    db = st.TicketDatabase(database_url)
    got: list[int] = []

    def allocate() -> None:
        for _ in range(20):
            with db.writing() as conn:
                got.append(st.allocate_seq(conn, "dongnai", DAY))

    try:
        assert run_together(allocate, 8) == []
        with db.writing() as conn:
            block = st.allocate_seq(conn, "dongnai", DAY, 5)
            other_day = st.allocate_seq(conn, "dongnai", DAY + dt.timedelta(days=1))
            other_tenant = st.allocate_seq(conn, "thanhhoa", DAY)
    finally:
        db.close()
    assert sorted(got) == list(range(1, 161))
    assert (block, other_day, other_tenant) == (161, 1, 1)


def test_given_failed_transaction_when_allocating_then_number_given_back(
        database_url: str) -> None:
    upgrade_head(database_url)
    db = st.TicketDatabase(database_url)
    try:
        with pytest.raises(RuntimeError), db.writing() as conn:
            st.allocate_seq(conn, "dongnai", DAY)
            raise RuntimeError("the ticket was refused")
        with db.writing() as conn:
            assert st.allocate_seq(conn, "dongnai", DAY) == 1
    finally:
        db.close()
