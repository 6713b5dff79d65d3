"""What every outbox table shares (SMS ``sms_messages``, mail ``mail_messages``): rows go
queued -> sending (claimed with a token by one dispatcher) -> sent / failed, or back to
queued. These build the statements on any such table (columns ``id``, ``status``,
``attempts``, ``next_attempt_at``, ``claim_token``, ``claimed_at``, ``last_error``); the
stores run them in their own write transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa


def claim_due(conn: sa.Connection, table: sa.Table, now: dt.datetime, limit: int, token: str,
              *where: sa.ColumnElement[bool]) -> Sequence[sa.Row[Any]]:
    """Take up to ``limit`` due rows (and matching ``where``) for sending: status "sending",
    attempts + 1, this claim's ``token``. Two dispatchers never take the same row: on
    PostgreSQL the rows are locked, skipping those another claim holds; SQLite has one writer."""
    t = table.c
    due = (sa.select(t.id)
           .where(t.status == "queued", t.next_attempt_at <= now, *where)
           .order_by(t.next_attempt_at, t.id)
           .limit(limit)
           .with_for_update(skip_locked=True))
    return conn.execute(
        sa.update(table)
        .where(t.id.in_(due.scalar_subquery()), t.status == "queued")
        .values(status="sending", attempts=t.attempts + 1, claim_token=token, claimed_at=now)
        .returning(*table.columns)
    ).all()


def mark_claimed(conn: sa.Connection, table: sa.Table, row_id: int, token: str,
                 **values: Any) -> bool:
    """Update a row this claim still holds; False if the claim was lost meanwhile."""
    t = table.c
    done = conn.execute(
        sa.update(table)
        .where(t.id == row_id, t.status == "sending", t.claim_token == token)
        .values(**values))
    return bool(done.rowcount == 1)


def release(conn: sa.Connection, table: sa.Table, ids: Sequence[int], token: str) -> int:
    """Give claimed rows back unsent (the dispatcher is stopping): queued, as before."""
    if not ids:
        return 0
    t = table.c
    done = conn.execute(
        sa.update(table)
        .where(t.id.in_(list(ids)), t.status == "sending", t.claim_token == token)
        .values(status="queued", attempts=t.attempts - 1, claim_token=None, claimed_at=None))
    return int(done.rowcount)


def requeue_stuck(conn: sa.Connection, table: sa.Table, now: dt.datetime,
                  older_than: dt.timedelta) -> int:
    """Rows "sending" for longer than ``older_than`` (their dispatcher died): queued again."""
    t = table.c
    done = conn.execute(
        sa.update(table)
        .where(t.status == "sending", t.claimed_at < now - older_than)
        .values(status="queued", next_attempt_at=now, claim_token=None,
                last_error=sa.func.coalesce(t.last_error, "")
                + " [requeued: no outcome from its dispatcher]"))
    return int(done.rowcount)


def recent(table: sa.Table, status: str | None, limit: int,
           tenant: str | None) -> sa.Select[Any]:
    """The newest rows first, optionally of one status and tenant (the outbox CLIs' lists)."""
    q = sa.select(table).order_by(table.c.id.desc()).limit(limit)
    if status is not None:
        q = q.where(table.c.status == status)
    if tenant is not None:
        q = q.where(table.c.tenant == tenant)
    return q


def counts(conn: sa.Connection, table: sa.Table) -> dict[str, int]:
    """How many rows are in each status (statuses with none are left out)."""
    q = sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
    return {str(s): int(n) for s, n in conn.execute(q)}
