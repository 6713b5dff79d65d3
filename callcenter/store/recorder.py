"""Call records leave a call through the journal first, then the database: none is ever lost."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from callcenter.backoff import Backoff
from callcenter.calls import CallState, TransferRecord
from callcenter.ivr import menu
from callcenter.store.journal import RecordJournal
from callcenter.store.records import CallRecordData, CallRecordStore

log = logging.getLogger("callcenter.store.recorder")


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
        ivr_path=menu.path_dicts(state.menu) if state.menu is not None else None,
        operator=state.operator,
        queued_at=state.queued_at,
        bridged_at=state.bridged_at,
        talk_ended_at=state.talk_ended_at,
        wrap_up_s=state.wrap_up_s,
        no_answers=state.no_answers,
        recording=state.recording,
        transfers=[transfer_dict(t) for t in state.transfers] or None,
    )


def transfer_dict(t: TransferRecord) -> dict[str, Any]:
    """One transfer as the record's JSON keeps it (time ISO 8601, UTC, like the record's)."""
    if t.at.tzinfo is None or t.at.utcoffset() is None:
        raise ValueError(f"transfer at: expected a timezone-aware datetime, got {t.at!r}")
    return {"at": t.at.astimezone(dt.UTC).isoformat(), "by": t.by, "unit": t.unit,
            "number": t.number, "kind": t.kind, "answered": t.answered, "result": t.result}


class RecordWriter:
    """Journal (fsync'd file) then database; a background task retries with back-off."""

    def __init__(self, journal: RecordJournal, store: CallRecordStore,
                 prepare: Callable[[], None] | None = None,
                 on_record: Callable[[CallRecordData], None] | None = None):
        self.journal = journal
        self.store = store
        self._prepare = prepare  # schema migration, run once the database answers
        self._on_record = on_record  # every record journalled (metrics: outcome, times)
        self._wake = asyncio.Event()

    async def write(self, state: CallState) -> None:
        rec = record_of(state)
        await asyncio.to_thread(self.journal.append, rec)
        if self._on_record is not None:
            self._on_record(rec)
        self._wake.set()

    async def flush_once(self) -> int:
        """Write what is pending; returns how many are still waiting."""
        if self._prepare is not None and self.journal.pending():
            await asyncio.to_thread(self._prepare)
            self._prepare = None
        written, pending = await asyncio.to_thread(self.journal.flush, self.store)
        if written:
            log.debug("wrote %d call record(s)", written)
        return pending

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
                            str(e).splitlines()[0][:200])
                pending = 1
            if pending:
                await asyncio.sleep(backoff.next())
                self._wake.set()
            else:
                backoff.reset()
