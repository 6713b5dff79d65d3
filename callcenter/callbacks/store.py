"""Callback requests: a caller who waited too long pressed 1 to be called back (migration 0006).

Synchronous SQLAlchemy like the other stores: the app and the console call it from a thread.
One request per call (``call_id`` is unique), so a caller pressing 1 twice, or two app
instances handling the same press, store one request. Operators see the open ones, oldest
first, with the caller's number in full (they must dial it); log lines above DEBUG show it
masked.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from callcenter.clock import utcnow
from callcenter.numbers import mask_number
from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import CALLBACK_STATUSES, Callback

__all__ = ["CALLBACK_STATUSES", "CallbackError", "CallbackRequest", "CallbackStore"]

log = logging.getLogger("callcenter.callbacks.store")

_TABLE = cast(sa.Table, Callback.__table__)
MAX_NOTE: Final = 2000
MAX_BY: Final = 64
MAX_CALLER: Final = 64
MAX_TICKET: Final = 32  # a ticket code (tickets.code is String(32))
CALLBACK_SOURCES: Final = ("queue", "pool_full")


class CallbackError(ValueError):
    """A refused callback operation; ``id`` is stable (callback.not_found, callback.closed)."""

    def __init__(self, error_id: str, message: str) -> None:
        self.id = error_id
        self.message = message
        super().__init__(f"{error_id}: {message}")


@dataclass(frozen=True)
class CallbackRequest:
    """One stored callback request."""

    id: int
    tenant: str
    call_id: str
    caller: str
    requested_at: dt.datetime
    status: str  # open | done | cancelled
    handled_by: str | None = None
    handled_at: dt.datetime | None = None
    note: str | None = None
    attempts: int = 0
    last_result: str | None = None  # answered | busy | no_answer | failed | operator_*
    last_attempt_at: dt.datetime | None = None
    dial_call_id: str | None = None  # the call that reached the caller (called back)
    recording: str | None = None  # its recording, relative to the recordings folder
    source: str = "queue"  # queue (pressed 1 while waiting) | pool_full (lines were full)
    ticket: str | None = None  # the ticket this request is about (linked by an operator)

    def to_json_dict(self) -> dict[str, Any]:
        """For the API and the CLI: times ISO 8601 with offset; the number in full."""
        return {"id": self.id, "tenant": self.tenant, "call_id": self.call_id,
                "caller": self.caller, "requested_at": self.requested_at.isoformat(),
                "status": self.status, "handled_by": self.handled_by,
                "handled_at": None if self.handled_at is None else self.handled_at.isoformat(),
                "note": self.note, "attempts": self.attempts,
                "last_result": self.last_result,
                "last_attempt_at": None if self.last_attempt_at is None
                else self.last_attempt_at.isoformat(),
                "dial_call_id": self.dial_call_id, "recording": self.recording,
                "source": self.source, "ticket": self.ticket}


def _request(row: Any) -> CallbackRequest:
    return CallbackRequest(id=row.id, tenant=row.tenant, call_id=row.call_id,
                           caller=row.caller, requested_at=row.requested_at,
                           status=row.status, handled_by=row.handled_by,
                           handled_at=row.handled_at, note=row.note,
                           attempts=row.attempts or 0, last_result=row.last_result,
                           last_attempt_at=row.last_attempt_at,
                           dial_call_id=row.dial_call_id, recording=row.recording,
                           source=row.source or "queue", ticket=row.ticket)


class CallbackStore:
    """Callback requests in SQL (SQLite or PostgreSQL). Blocking: run it in a thread."""

    def __init__(self, database: DatabaseRef | sa.URL):
        if isinstance(database, sa.URL):
            database = database.render_as_string(hide_password=False)
        self.engine, self._owns_engine = engine_for(database)

    def close(self) -> None:
        """Close the pool's connections."""
        if self._owns_engine:
            self.engine.dispose()

    def request(self, tenant: str, call_id: str, caller: str,
                at: dt.datetime, *, source: str = "queue") -> CallbackRequest:
        """Store the request of call ``call_id``; the existing one if that call asked before.
        ``source``: ``queue`` (pressed 1 while waiting) or ``pool_full`` (lines were full)."""
        if source not in CALLBACK_SOURCES:
            raise ValueError(f"callback source: expected one of {CALLBACK_SOURCES}, "
                             f"got {source!r}")
        if not tenant or not call_id or len(call_id) > 64:
            raise ValueError("callback: tenant and call_id (1..64 characters) are required")
        if not caller or len(caller) > MAX_CALLER:
            raise ValueError(f"callback: caller number expected, 1..{MAX_CALLER} characters")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"callback at: expected a timezone-aware datetime, got {at!r}")
        existing = self.by_call(call_id)
        if existing is not None:
            return existing
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(
                    sa.insert(_TABLE).values(tenant=tenant, call_id=call_id, caller=caller,
                                             requested_at=at, status="open", source=source)
                    .returning(_TABLE.c.id)).scalar_one()
        except IntegrityError:
            # Another writer (a second app instance, a double press) stored it first: the
            # unique call_id decides, and the first request stands.
            existing = self.by_call(call_id)
            if existing is None:
                raise
            return existing
        log.info("callback requested: tenant %s call %s caller %s (request %d)",
                 tenant, call_id, mask_number(caller), new_id)
        log.debug("callback request %d: caller %s", new_id, caller)
        got = self.get(int(new_id))
        assert got is not None
        return got

    def get(self, id: int) -> CallbackRequest | None:
        """The request with this id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_TABLE).where(_TABLE.c.id == id)).first()
        return None if row is None else _request(row)

    def by_call(self, call_id: str) -> CallbackRequest | None:
        """The request of this call, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_TABLE).where(_TABLE.c.call_id == call_id)).first()
        return None if row is None else _request(row)

    def open(self, tenant: str | None = None) -> list[CallbackRequest]:
        """Open requests (of one tenant, if given), oldest first: call back in that order."""
        return self.recent(tenant, statuses=("open",))

    def recent(self, tenant: str | None = None, *, statuses: tuple[str, ...] = CALLBACK_STATUSES,
             limit: int = 200,
             handled_since: dt.datetime | None = None) -> list[CallbackRequest]:
        """Requests with these statuses, open ones first, then oldest first; at most ``limit``.

        ``handled_since``: only requests handled at or after it (so no open ones), e.g. the
        last week's, which the oldest-first limit would otherwise crowd out."""
        q = (sa.select(_TABLE).where(_TABLE.c.status.in_(statuses))
             .order_by(sa.case((_TABLE.c.status == "open", 0), else_=1),
                       _TABLE.c.requested_at, _TABLE.c.id)
             .limit(max(0, limit)))
        if tenant is not None:
            q = q.where(_TABLE.c.tenant == tenant)
        if handled_since is not None:
            q = q.where(_TABLE.c.handled_at >= handled_since)
        with self.engine.connect() as conn:
            return [_request(row) for row in conn.execute(q)]

    def done(self, id: int, by: str, note: str | None = None, *,
             at: dt.datetime | None = None, dial_call_id: str | None = None,
             recording: str | None = None) -> CallbackRequest:
        """Mark an open request done by ``by`` (an extension or a user name); a call back
        from the console also names its call and recording (and counts as an attempt)."""
        extra: dict[str, Any] = {}
        if dial_call_id is not None:
            extra = {"dial_call_id": dial_call_id, "recording": recording,
                     "attempts": _TABLE.c.attempts + 1, "last_result": "answered",
                     "last_attempt_at": at or utcnow()}
        return self._close(id, "done", by, note, at, extra)

    def attempt(self, id: int, result: str, *, at: dt.datetime) -> CallbackRequest:
        """A call back that did not reach the caller (busy, no answer, failed): counted on
        the request, which stays open. Raises CallbackError if it is unknown or closed."""
        if not result or len(result) > 16:
            raise ValueError("callback attempt: result expected, 1..16 characters")
        with self.engine.begin() as conn:
            changed = conn.execute(
                sa.update(_TABLE).where(_TABLE.c.id == id, _TABLE.c.status == "open")
                .values(attempts=_TABLE.c.attempts + 1, last_result=result,
                        last_attempt_at=at)).rowcount
        current = self.get(id)
        if current is None:
            raise CallbackError("callback.not_found", f"no callback request {id}")
        if not changed:
            raise CallbackError("callback.closed",
                                f"callback request {id} is already {current.status}")
        log.info("callback request %d: attempt %d %s", id, current.attempts, result)
        return current

    def link_ticket(self, id: int, code: str | None) -> CallbackRequest:
        """Name the ticket this request is about (None: none); open or closed alike (a call
        back may show what the petition is). The caller checks the code is a ticket of the
        request's tenant. Raises CallbackError callback.not_found."""
        if code is not None and not 0 < len(code) <= MAX_TICKET:
            raise ValueError(f"callback ticket: expected 1..{MAX_TICKET} characters")
        with self.engine.begin() as conn:
            changed = conn.execute(sa.update(_TABLE).where(_TABLE.c.id == id)
                                   .values(ticket=code)).rowcount
        current = self.get(id)
        if not changed or current is None:
            raise CallbackError("callback.not_found", f"no callback request {id}")
        log.info("callback request %d: ticket %s", id, code or "-")
        return current

    def by_ticket(self, code: str) -> list[CallbackRequest]:
        """The requests linked to this ticket, oldest first."""
        q = (sa.select(_TABLE).where(_TABLE.c.ticket == code)
             .order_by(_TABLE.c.requested_at, _TABLE.c.id))
        with self.engine.connect() as conn:
            return [_request(row) for row in conn.execute(q)]

    def cancel(self, id: int, by: str, note: str | None = None, *,
               at: dt.datetime | None = None) -> CallbackRequest:
        """Cancel an open request (the caller called again and was served, a wrong number)."""
        return self._close(id, "cancelled", by, note, at)

    def _close(self, id: int, status: str, by: str, note: str | None,
               at: dt.datetime | None,
               extra: dict[str, Any] | None = None) -> CallbackRequest:
        if not by or len(by) > MAX_BY:
            raise ValueError(f"callback: 'by' expected, 1..{MAX_BY} characters")
        if note is not None and len(note) > MAX_NOTE:
            raise ValueError(f"callback: note longer than {MAX_NOTE} characters")
        when = at or utcnow()
        with self.engine.begin() as conn:
            # Only an open request moves: two operators pressing "done" at once, one wins.
            changed = conn.execute(
                sa.update(_TABLE).where(_TABLE.c.id == id, _TABLE.c.status == "open")
                .values(status=status, handled_by=by, handled_at=when, note=note,
                        **(extra or {}))).rowcount
        current = self.get(id)
        if current is None:
            raise CallbackError("callback.not_found", f"no callback request {id}")
        if not changed:
            raise CallbackError("callback.closed",
                                f"callback request {id} is already {current.status} "
                                f"(by {current.handled_by})")
        log.info("callback request %d %s by %s", id, status, by)
        return current
