"""The call-record repository: synchronous SQLAlchemy, called from a thread executor by the app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from callcenter.calls.node_loss import NODE_LOST_CAUSE
from callcenter.faq.store import record_events
from callcenter.store.data import OUTCOMES, CallRecordData
from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import CallRecord

__all__ = ["OUTCOMES", "CallRecordData", "CallRecordStore"]

_COLUMNS = tuple(c.name for c in CallRecord.__table__.columns)
_TABLE = cast(sa.Table, CallRecord.__table__)

def _data(row: sa.Row[Any]) -> CallRecordData:
    return CallRecordData(**{name: getattr(row, name) for name in _COLUMNS})


class CallRecordStore:
    """Call records in SQL (SQLite or PostgreSQL). Blocking: run it in a thread executor."""

    def __init__(self, database: DatabaseRef):
        self.engine, self._owns_engine = engine_for(database)

    def insert_once(self, rec: CallRecordData) -> bool:
        """Insert `rec`; False if a row with its id already exists (idempotent, race-safe)."""
        values = {name: getattr(rec, name) for name in _COLUMNS if name != "created_at"}
        if rec.created_at is not None:
            values["created_at"] = rec.created_at
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(_TABLE).values(**values))
                # Same transaction: the FAQ counts exist iff the record does, so a replay
                # (the primary key refuses it above) never counts a hearing twice.
                if rec.ivr_path:
                    record_events(conn, rec.id, rec.tenant, rec.ivr_path)
        except IntegrityError:
            # The primary key decides between two writers of the same call (two app
            # instances, or a replay after a crash between commit and journal delete).
            # Any other integrity failure (a constraint) is real: raise it.
            held = self.get(rec.id)
            if held is None:
                raise
            if held.cause == NODE_LOST_CAUSE and rec.cause != NODE_LOST_CAUSE:
                # A survivor closed the call for a node it took for lost (its beat lapsed:
                # cut off from Redis, say), yet the node served the call on: the node's own
                # record, what really happened, replaces the provisional one. FAQ hearings
                # stay as counted with the provisional record (those after the lapse are
                # not counted: rare, and a count is never doubled).
                with self.engine.begin() as conn:
                    conn.execute(sa.update(_TABLE).where(_TABLE.c.id == rec.id)
                                 .values(**{k: v for k, v in values.items() if k != "id"}))
                return True
            return False
        return True

    def get(self, id: str) -> CallRecordData | None:
        """The record with this id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_TABLE).where(_TABLE.c.id == id)).first()
        return None if row is None else _data(row)

    def get_many(self, ids: Iterable[str]) -> dict[str, CallRecordData]:
        """The records with these ids (those that exist), by id; one query per 500 ids."""
        wanted = sorted(set(ids))
        found: dict[str, CallRecordData] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                q = sa.select(_TABLE).where(_TABLE.c.id.in_(wanted[i:i + 500]))
                found.update((row.id, _data(row)) for row in conn.execute(q))
        return found

    def last(self, n: int, tenant: str | None = None) -> list[CallRecordData]:
        """The `n` most recent calls (newest arrived_at first), optionally of one tenant."""
        if n <= 0:
            return []
        q = sa.select(_TABLE).order_by(_TABLE.c.arrived_at.desc(), _TABLE.c.id.desc()).limit(n)
        if tenant is not None:
            q = q.where(_TABLE.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [_data(row) for row in conn.execute(q)]

    def count(self, tenant: str | None = None) -> int:
        """How many call records there are (of one tenant, if given)."""
        q = sa.select(sa.func.count()).select_from(_TABLE)
        if tenant is not None:
            q = q.where(_TABLE.c.tenant == tenant)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    @staticmethod
    def _matching(tenant: str, since: dt.datetime, until: dt.datetime, outcome: str | None,
                  operator: str | None) -> list[sa.ColumnElement[bool]]:
        c = _TABLE.c
        where = [c.tenant == tenant, c.arrived_at >= since, c.arrived_at < until]
        if outcome is not None:
            where.append(c.outcome == outcome)
        if operator is not None:
            where.append(c.operator == operator)
        return where

    def find(self, tenant: str, since: dt.datetime, until: dt.datetime, *,
             outcome: str | None = None, operator: str | None = None, limit: int = 50,
             offset: int = 0) -> list[CallRecordData]:
        """The tenant's calls that arrived in [since, until), oldest first, one page."""
        q = (sa.select(_TABLE)
             .where(*self._matching(tenant, since, until, outcome, operator))
             .order_by(_TABLE.c.arrived_at, _TABLE.c.id)
             .limit(max(0, limit)).offset(max(0, offset)))
        with self.engine.connect() as conn:
            return [_data(row) for row in conn.execute(q)]

    def count_matching(self, tenant: str, since: dt.datetime, until: dt.datetime, *,
                       outcome: str | None = None, operator: str | None = None) -> int:
        """How many calls ``find`` would give without limit and offset."""
        q = (sa.select(sa.func.count()).select_from(_TABLE)
             .where(*self._matching(tenant, since, until, outcome, operator)))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def close(self) -> None:
        """Close the pool's connections."""
        if self._owns_engine:
            self.engine.dispose()
