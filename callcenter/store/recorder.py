"""Call records leave a call through the journal first, then the database: none is ever lost.

When the journal itself cannot be written (disk full, read-only or unwritable folder) a
record goes straight to the database; when that fails too it is held in memory (bounded by
``HELD_LIMIT``, the oldest kept) and the writer's background loop retries it, journal first,
then the database, until it lands. Nothing is dropped silently: a record beyond the bound is
logged at ERROR with its id and counted, and so is one still held when the process stops.
The journal's trouble is logged at ERROR once when it starts, then as a summary every
``SUMMARY_EVERY_S`` while it lasts (never one line per record in a flood), and shows in
``WriterStatus`` (``/metrics``, ``/readyz``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError

from callcenter.backoff import Backoff
from callcenter.calls import CallState, TransferRecord
from callcenter.ivr import menu
from callcenter.store.journal import RecordJournal
from callcenter.store.records import CallRecordData, CallRecordStore

log = logging.getLogger("callcenter.store.recorder")

HELD_LIMIT = 10_000  # records held in memory while neither the journal nor the database takes
SUMMARY_EVERY_S = 60.0  # while the journal fails: one summary line per minute, not per record


def record_of(state: CallState) -> CallRecordData:
    """The row for a finished call."""
    return CallRecordData(
        id=f"{state.node}:{state.call_id}",
        node=state.node,
        tenant=state.tenant_id or "-",
        dialled=state.dialled,
        caller=state.caller,
        shift=state.shift,
        pool_limit=state.limit,
        arrived_at=state.arrived_at,
        answered_at=state.answered_at,
        ended_at=state.ended_at,
        outcome=state.outcome or "failed",
        cause=state.cause,
        cause_code=state.cause_code,
        linkedid=state.linkedid,
        extra=None,
        ivr_path=ivr_path(state),
        operator=state.operator,
        queued_at=state.queued_at,
        bridged_at=state.bridged_at,
        talk_ended_at=state.talk_ended_at,
        wrap_up_s=state.wrap_up_s,
        no_answers=state.no_answers,
        recording=state.recording,
        transfers=[transfer_dict(t) for t in state.transfers] or None,
    )


def ivr_path(state: CallState) -> list[dict[str, str]] | None:
    """The menus' path, else the pool-full callback offer's steps; None for neither."""
    if state.menu is not None:
        return menu.path_dicts(state.menu)
    return [s.as_dict() for s in state.offer_path] or None


def transfer_dict(t: TransferRecord) -> dict[str, Any]:
    """One transfer as the record's JSON keeps it (time ISO 8601, UTC, like the record's)."""
    if t.at.tzinfo is None or t.at.utcoffset() is None:
        raise ValueError(f"transfer at: expected a timezone-aware datetime, got {t.at!r}")
    d: dict[str, Any] = {"at": t.at.astimezone(dt.UTC).isoformat(), "by": t.by, "unit": t.unit,
                         "number": t.number, "kind": t.kind, "answered": t.answered,
                         "result": t.result}
    if t.ticket is not None:  # warm transfer: the ticket the unit was told about
        d["ticket"] = t.ticket
    return d


@dataclass(frozen=True)
class WriterStatus:
    """What the writer tells /metrics and /readyz about the journal's health."""

    held: int  # records only in memory now (neither journal nor database took them yet)
    not_journalled: int  # records whose journal append failed, since the process started
    dropped: int  # records lost because the memory bound was reached (each logged at ERROR)
    journal_error: str | None  # the last append's error while the journal fails, else None


def _reason(e: BaseException) -> str:
    # First line only: SQLAlchemy appends the statement's parameters (callers' numbers).
    text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class RecordWriter:
    """Journal (fsync'd file) then database; a background task retries with back-off.

    A record the journal refuses goes to the database directly, else waits in memory.
    """

    def __init__(self, journal: RecordJournal, store: CallRecordStore,
                 prepare: Callable[[], None] | None = None,
                 on_record: Callable[[CallRecordData], None] | None = None,
                 held_limit: int = HELD_LIMIT,
                 clock: Callable[[], float] = time.monotonic):
        self.journal = journal
        self.store = store
        self._prepare = prepare  # schema migration, run once the database answers
        self._on_record = on_record  # every record journalled (metrics: outcome, times)
        self._wake = asyncio.Event()
        self.held_limit = held_limit
        self._held: dict[str, CallRecordData] = {}  # by id, oldest first (insertion order)
        self._refused: set[str] = set()  # held records the database refused (logged once)
        self.not_journalled = 0
        self.dropped = 0
        self._journal_error: str | None = None
        self._database_down = False  # the last direct write found the database unavailable
        self._database_error: str | None = None
        self._failed_since_summary = 0
        self._clock = clock
        self._last_summary = 0.0

    # -- writing ---------------------------------------------------------------------------

    async def write(self, state: CallState) -> None:
        """Journal the finished call's record; if the journal fails, database or memory."""
        rec = record_of(state)
        await self.write_data(rec)
        if self._on_record is not None:
            self._on_record(rec)

    async def write_data(self, rec: CallRecordData) -> None:
        """``write`` for a record made elsewhere (a call back's): the same way in, but not
        counted in the inbound calls' figures (``on_record``)."""
        try:
            await asyncio.to_thread(self.journal.append, rec)
        except Exception as e:  # disk full, read-only, unwritable: the record must survive
            self._journal_failed(e)
            self.not_journalled += 1
            self._failed_since_summary += 1
            # The database failed moments ago: hold it at once (no connection attempt per
            # call in a flood); the loop retries, and clears the flag once a write lands.
            if self._database_down or not await self._to_database(rec):
                self._hold(rec)
        else:
            self._journal_ok()
        self._wake.set()

    def status(self) -> WriterStatus:
        """Records held in memory, not journalled, dropped; the journal's current error."""
        return WriterStatus(held=len(self._held), not_journalled=self.not_journalled,
                            dropped=self.dropped, journal_error=self._journal_error)

    def held(self) -> list[CallRecordData]:
        """The records held in memory now, oldest first."""
        return list(self._held.values())

    # -- retrying --------------------------------------------------------------------------

    async def flush_once(self) -> int:
        """Write what is pending (held records, then the journal); returns how many wait."""
        held = await self.retry_held()
        if self._prepare is not None and self.journal.pending():
            await asyncio.to_thread(self._prepare)
            self._prepare = None
        written, pending = await asyncio.to_thread(self.journal.flush, self.store)
        if written:
            log.debug("wrote %d call record(s)", written)
        return pending + held

    async def retry_held(self) -> int:
        """Each held record: journal first, then the database; returns how many stay held."""
        for rec in list(self._held.values()):
            if rec.id not in self._held:
                continue  # a concurrent retry (shutdown's last try) placed it
            try:
                await asyncio.to_thread(self.journal.append, rec)
            except Exception as e:
                self._journal_failed(e)
            else:
                self._journal_ok()
                self._release(rec)
                continue
            if await self._to_database(rec):
                self._release(rec)
            elif rec.id not in self._refused:
                break  # the database is down: the rest waits for the next round
        self._summarise()
        return len(self._held)

    async def run(self) -> None:
        """Flush on every new record; while the database is down, retry with back-off."""
        backoff = Backoff(initial=0.5, cap=30.0)
        self._wake.set()  # records left by a previous run are written first
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                pending = await self.flush_once()
            except Exception as e:  # the database is down or refusing: keep the journal
                log.warning("call records kept in the journal (database unavailable: %s)",
                            _reason(e))
                pending = 1
            if pending:
                await asyncio.sleep(backoff.next())
                self._wake.set()
            else:
                backoff.reset()

    async def close(self) -> None:
        """At shutdown: a last try for everything pending; each record left in memory is
        logged at ERROR by id (it is lost with the process)."""
        try:
            await self.flush_once()
        except Exception as e:
            log.warning("records left in the journal at shutdown: %s", _reason(e))
        for rec in self.held():
            log.error("call record %s lost at shutdown: neither the journal (%s) nor the "
                      "database took it", rec.id, self._journal_error or "?")

    # -- internals -------------------------------------------------------------------------

    async def _to_database(self, rec: CallRecordData) -> bool:
        """Insert `rec` straight into the database; False when it did not land."""
        try:
            await asyncio.to_thread(self._insert, rec)
        except (IntegrityError, DataError) as e:
            # The record, not the database, is refused: held until the journal can take it
            # (its flush sets refused records aside for a human), never retried in a loop.
            if rec.id not in self._refused:
                self._refused.add(rec.id)
                log.error("database refused call record %s (%s): held until the journal "
                          "is writable", rec.id, _reason(e))
            return False
        except Exception as e:  # down or unreachable: hold it, the loop retries
            log.debug("call record %s not written to the database: %s", rec.id, _reason(e))
            self._database_error = _reason(e)
            self._database_down = True
            return False
        self._database_down = False
        log.debug("call record %s written to the database directly (journal unwritable)",
                  rec.id)
        return True

    def _insert(self, rec: CallRecordData) -> None:
        if self._prepare is not None:
            self._prepare()
            self._prepare = None
        self.store.insert_once(rec)

    def _hold(self, rec: CallRecordData) -> None:
        if rec.id in self._held:
            return
        if len(self._held) >= self.held_limit:
            self.dropped += 1
            log.error("call record %s dropped: the journal is unwritable, the database "
                      "unavailable and %d records are already held in memory (%d dropped "
                      "so far)", rec.id, len(self._held), self.dropped)
            return
        if not self._held:  # once per episode, not per record
            log.error("call records now held in memory only (lost if the process stops): the "
                      "journal is unwritable and the database unavailable (%s); retried until "
                      "one of them takes them", self._database_error or "refused")
        self._held[rec.id] = rec

    def _release(self, rec: CallRecordData) -> None:
        if self._held.pop(rec.id, None) is not None and not self._held:
            log.warning("call records held in memory all written (journal or database)")
        self._refused.discard(rec.id)

    def _journal_failed(self, e: BaseException) -> None:
        reason = _reason(e)
        if self._journal_error is None:
            log.error("call record journal %s unwritable (%s): records go to the database "
                      "directly, else are held in memory (at most %d) and retried",
                      self.journal.directory, reason, self.held_limit)
            self._last_summary = self._clock()
            self._failed_since_summary = 0
        self._journal_error = reason

    def _journal_ok(self) -> None:
        if self._journal_error is not None:
            log.warning("call record journal %s writable again (%d record(s) not journalled "
                        "since start, %d held in memory)", self.journal.directory,
                        self.not_journalled, len(self._held))
            self._journal_error = None

    def _summarise(self) -> None:
        if self._journal_error is None or self._clock() - self._last_summary < SUMMARY_EVERY_S:
            return
        self._last_summary = self._clock()
        log.error("call record journal %s still unwritable (%s): %d record(s) not journalled "
                  "in the last minute, %d held in memory, %d dropped since start",
                  self.journal.directory, self._journal_error, self._failed_since_summary,
                  len(self._held), self.dropped)
        self._failed_since_summary = 0
