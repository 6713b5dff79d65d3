"""The FAQ knowledge base in SQL: versions per (tenant, field), items, and what callers did.

Blocking (SQLAlchemy, sync): run it in a thread executor from the app.

* Each import makes, per field in the file, a new version (previous number + 1) and makes it
  the active one, in one transaction: a failure leaves the previous set as it was.
* An item's key (`callcenter.faq.rules.item_key`) survives new versions, so the counts of
  callers who heard an answer and said it helped (or not) carry over.
* `record_events` turns a call record's ``ivr_path`` into ``faq_events`` rows inside the
  call record's own insert (see ``CallRecordStore.insert_once``): counted exactly once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from callcenter.faq.rules import (
    FaqCatalogue,
    FaqEntry,
    FaqRow,
    item_key,
    split_sentences,
)
from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import FaqEvent, FaqItem, FaqVersion

log = logging.getLogger("callcenter.faq.store")

_VERSIONS = cast(sa.Table, FaqVersion.__table__)
_ITEMS = cast(sa.Table, FaqItem.__table__)
_EVENTS = cast(sa.Table, FaqEvent.__table__)
_INSERT_BATCH = 500  # items per INSERT; also how often an import reports progress
_KEY_LENGTH = 16  # faq_events.item_key is String(16)


class FaqStoreError(Exception):
    """A request the FAQ store cannot carry out (unknown version, concurrent import)."""


@dataclass(frozen=True)
class VersionInfo:
    """One FAQ version of a tenant's field, as listed to an administrator."""

    id: int
    tenant: str
    field: str
    version: int
    active: bool
    imported_at: dt.datetime
    imported_by: str | None
    source_name: str
    sha256: str
    item_count: int
    unchanged: bool = False  # import/rollback: nothing changed (same file, already active)


@dataclass(frozen=True)
class ActiveItem:
    """One item of an active version."""

    field: str
    version: int
    position: int
    key: str
    code: str | None
    question: str
    answer: str
    keywords: str | None
    unit: str | None


@dataclass(frozen=True)
class FaqStat:
    """How one FAQ item did: heard, judged helpful (yes) or not (no)."""

    tenant: str
    key: str
    field: str | None  # None: the key is in no stored version (an unknown key in a path)
    code: str | None
    question: str | None
    heard: int
    yes: int
    no: int

    @property
    def deflection(self) -> float | None:
        """Share of hearings the caller said answered the question (yes / heard)."""
        return None if self.heard == 0 else self.yes / self.heard

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form, with the deflection rate."""
        return {"tenant": self.tenant, "key": self.key, "field": self.field,
                "code": self.code, "question": self.question, "heard": self.heard,
                "yes": self.yes, "no": self.no, "deflection": self.deflection}


def _version(row: sa.Row[Any], unchanged: bool = False) -> VersionInfo:
    return VersionInfo(id=row.id, tenant=row.tenant, field=row.field, version=row.version,
                       active=row.active, imported_at=row.imported_at,
                       imported_by=row.imported_by, source_name=row.source_name,
                       sha256=row.sha256, item_count=row.item_count, unchanged=unchanged)


class FaqStore:
    """FAQ versions, items and events in SQL (SQLite or PostgreSQL). Blocking."""

    def __init__(self, database: DatabaseRef):
        self.engine, self._owns_engine = engine_for(database)

    # -- versions --------------------------------------------------------------------------

    def import_version(self, tenant: str, rows_by_field: Mapping[str, Sequence[FaqRow]],
                       source_name: str, sha256: str, imported_by: str | None,
                       now: dt.datetime,
                       progress: Callable[[int], None] | None = None) -> list[VersionInfo]:
        """Make each field's rows its new active version, all in one transaction.

        A field whose active version came from the same file content (`sha256`) is left as
        it is and reported with ``unchanged=True``. `progress` is called with the number of
        items written so far.
        """
        out: list[VersionInfo] = []
        done = 0
        try:
            with self.engine.begin() as conn:
                for field_id in sorted(rows_by_field):
                    rows = rows_by_field[field_id]
                    current = self._lock_versions(conn, tenant, field_id)
                    active = next((v for v in current if v.active), None)
                    if active is not None and active.sha256 == sha256:
                        out.append(_version(active, unchanged=True))
                        done += len(rows)
                        if progress:
                            progress(done)
                        continue
                    number = max((v.version for v in current), default=0) + 1
                    conn.execute(sa.update(_VERSIONS).where(
                        _VERSIONS.c.tenant == tenant, _VERSIONS.c.field == field_id,
                        _VERSIONS.c.active.is_(True)).values(active=False))
                    inserted = conn.execute(sa.insert(_VERSIONS).values(
                        tenant=tenant, field=field_id, version=number, active=True,
                        imported_at=now, imported_by=imported_by, source_name=source_name,
                        sha256=sha256, item_count=len(rows),
                    ))
                    version_id = int(cast(sa.Row[Any], inserted.inserted_primary_key)[0])
                    items = [{
                        "version_id": version_id, "tenant": tenant, "field": field_id,
                        "position": i, "key": item_key(tenant, field_id, r.question),
                        "code": r.code, "question": r.question, "answer": r.answer,
                        "keywords": r.keywords, "unit": r.unit,
                    } for i, r in enumerate(rows, start=1)]
                    for start in range(0, len(items), _INSERT_BATCH):
                        conn.execute(sa.insert(_ITEMS), items[start:start + _INSERT_BATCH])
                        done += len(items[start:start + _INSERT_BATCH])
                        if progress:
                            progress(done)
                    row = conn.execute(sa.select(_VERSIONS).where(
                        _VERSIONS.c.id == version_id)).one()
                    out.append(_version(row))
        except IntegrityError as e:
            # (tenant, field, version) is unique: two imports of one field at the same
            # moment both chose the same number; the later one is rolled back whole.
            raise FaqStoreError(f"tenant {tenant}: another FAQ import or rollback ran at the "
                                "same time; nothing was imported, try again") from e
        return out

    def versions(self, tenant: str, field: str | None = None) -> list[VersionInfo]:
        """The tenant's versions, by field then newest first."""
        q = sa.select(_VERSIONS).where(_VERSIONS.c.tenant == tenant)
        if field is not None:
            q = q.where(_VERSIONS.c.field == field)
        q = q.order_by(_VERSIONS.c.field, _VERSIONS.c.version.desc())
        with self.engine.connect() as conn:
            return [_version(row) for row in conn.execute(q)]

    def rollback(self, tenant: str, field: str, version: int) -> VersionInfo:
        """Make `version` the field's active one again (atomic); unchanged if it already is."""
        with self.engine.begin() as conn:
            current = self._lock_versions(conn, tenant, field)
            target = next((v for v in current if v.version == version), None)
            if target is None:
                known = ", ".join(str(v.version) for v in sorted(current, key=lambda v: v.version))
                raise FaqStoreError(f"tenant {tenant}, field {field}: no version {version} "
                                    f"(versions: {known or 'none'})")
            if target.active:
                return _version(target, unchanged=True)
            conn.execute(sa.update(_VERSIONS).where(
                _VERSIONS.c.tenant == tenant, _VERSIONS.c.field == field,
                _VERSIONS.c.active.is_(True)).values(active=False))
            conn.execute(sa.update(_VERSIONS).where(_VERSIONS.c.id == target.id)
                         .values(active=True))
            row = conn.execute(sa.select(_VERSIONS).where(_VERSIONS.c.id == target.id)).one()
        return _version(row)

    @staticmethod
    def _lock_versions(conn: sa.Connection, tenant: str, field: str) -> list[sa.Row[Any]]:
        # FOR UPDATE (PostgreSQL): a concurrent import/rollback of the same field waits here
        # instead of leaving two versions active. SQLite serialises writers by itself.
        q = sa.select(_VERSIONS).where(_VERSIONS.c.tenant == tenant,
                                       _VERSIONS.c.field == field).with_for_update()
        return list(conn.execute(q))

    # -- reading ---------------------------------------------------------------------------

    def active_items(self, tenant: str, field: str | None = None) -> list[ActiveItem]:
        """Items of the active versions, by field then position."""
        with self.engine.connect() as conn:
            ids = self._active_ids(conn, tenant, field)
            return self._items(conn, ids)

    def catalogue(self, tenant: str) -> FaqCatalogue:
        """The tenant's active items for the IVR, answers split into sentences."""
        with self.engine.connect() as conn:
            ids = self._active_ids(conn, tenant)
            items = self._items(conn, ids)
        entries = [FaqEntry(key=i.key, code=i.code, field=i.field, position=i.position,
                            question=i.question, answer=i.answer,
                            sentences=split_sentences(i.answer)) for i in items]
        # The stamp of the versions actually read, so a concurrent import cannot make a
        # catalogue look newer than its content.
        return FaqCatalogue.build(tenant, entries, _stamp(ids))

    def generation(self, tenant: str) -> str:
        """A cheap stamp of the tenant's active versions; it changes on import and rollback."""
        with self.engine.connect() as conn:
            return _stamp(self._active_ids(conn, tenant))

    @staticmethod
    def _active_ids(conn: sa.Connection, tenant: str, field: str | None = None) -> list[int]:
        q = sa.select(_VERSIONS.c.id).where(_VERSIONS.c.tenant == tenant,
                                            _VERSIONS.c.active.is_(True))
        if field is not None:
            q = q.where(_VERSIONS.c.field == field)
        return sorted(int(i) for i in conn.execute(q).scalars())

    @staticmethod
    def _items(conn: sa.Connection, version_ids: list[int]) -> list[ActiveItem]:
        if not version_ids:
            return []
        q = (sa.select(_ITEMS, _VERSIONS.c.version)
             .join(_VERSIONS, _VERSIONS.c.id == _ITEMS.c.version_id)
             .where(_ITEMS.c.version_id.in_(version_ids))
             .order_by(_ITEMS.c.field, _ITEMS.c.position))
        return [ActiveItem(field=r.field, version=r.version, position=r.position, key=r.key,
                           code=r.code, question=r.question, answer=r.answer,
                           keywords=r.keywords, unit=r.unit) for r in conn.execute(q)]

    # -- statistics ------------------------------------------------------------------------

    def stats(self, tenant: str | None = None,
              since: dt.datetime | None = None) -> list[FaqStat]:
        """Per item: heard, yes, no (events since `since`); active items never heard too.

        Field, code and question come from the newest version holding the key. Ordered by
        heard (most first), then field and question.
        """
        kinds = {k: sa.func.sum(sa.case((_EVENTS.c.kind == k, 1), else_=0))
                 for k in ("heard", "yes", "no")}
        q = (sa.select(_EVENTS.c.tenant, _EVENTS.c.item_key,
                       *(v.label(k) for k, v in kinds.items()))
             .group_by(_EVENTS.c.tenant, _EVENTS.c.item_key))
        if tenant is not None:
            q = q.where(_EVENTS.c.tenant == tenant)
        if since is not None:
            q = q.where(_EVENTS.c.at >= since)
        # Newest version first: the first row seen per (tenant, key) describes the item.
        items = (sa.select(_ITEMS.c.tenant, _ITEMS.c.key, _ITEMS.c.field, _ITEMS.c.code,
                           _ITEMS.c.question, _VERSIONS.c.active)
                 .join(_VERSIONS, _VERSIONS.c.id == _ITEMS.c.version_id)
                 .order_by(_VERSIONS.c.version.desc(), _VERSIONS.c.id.desc()))
        if tenant is not None:
            items = items.where(_ITEMS.c.tenant == tenant)
        counts: dict[tuple[str, str], tuple[int, int, int]] = {}
        described: dict[tuple[str, str], sa.Row[Any]] = {}
        active: set[tuple[str, str]] = set()
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                counts[(r.tenant, r.item_key)] = (int(r.heard or 0), int(r.yes or 0),
                                                  int(r.no or 0))
            for r in conn.execute(items):
                described.setdefault((r.tenant, r.key), r)
                if r.active:
                    active.add((r.tenant, r.key))
        out = []
        for tk in set(counts) | active:
            heard, yes, no = counts.get(tk, (0, 0, 0))
            d = described.get(tk)
            out.append(FaqStat(tenant=tk[0], key=tk[1], field=d.field if d else None,
                               code=d.code if d else None, question=d.question if d else None,
                               heard=heard, yes=yes, no=no))
        out.sort(key=lambda s: (-s.heard, s.tenant, s.field or "", s.question or "", s.key))
        return out

    def close(self) -> None:
        """Close the pool's connections."""
        if self._owns_engine:
            self.engine.dispose()


def _stamp(version_ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in version_ids)


def record_events(conn: sa.Connection, call_id: str, tenant: str,
                  ivr_path: Sequence[Mapping[str, Any]] | None) -> int:
    """Insert the FAQ events of one call's IVR path on `conn`; returns how many.

    A step with event "faq" is a hearing of item ``step["faq"]``; a step with event
    "feedback" is the caller's "yes"/"no" (``step["answer"]``) about ``step["faq"]`` or, if
    absent, the item heard last. ``seq`` is the step's index in the path. A malformed step is
    logged and skipped: it must not cost the call its record.
    """
    rows: list[dict[str, Any]] = []
    last_key: str | None = None
    for seq, step in enumerate(ivr_path or ()):
        event = step.get("event")
        if event not in ("faq", "feedback"):
            continue
        key = step.get("faq") or (last_key if event == "feedback" else None)
        kind = "heard" if event == "faq" else step.get("answer")
        at = _aware(step.get("at"))
        problem = None
        if not isinstance(key, str) or not 0 < len(key) <= _KEY_LENGTH:
            problem = f"item key {key!r}"
        elif kind not in ("heard", "yes", "no"):
            problem = f"answer {step.get('answer')!r}"
        elif at is None:
            problem = f"time {step.get('at')!r}"
        if problem is not None:
            log.warning("call %s: IVR step %d (%s) skipped: bad %s", call_id, seq, event, problem)
            continue
        if event == "faq":
            last_key = key
        rows.append({"call_id": call_id, "seq": seq, "tenant": tenant, "item_key": key,
                     "kind": kind, "at": at})
    if rows:
        conn.execute(sa.insert(_EVENTS), rows)
    return len(rows)


def _aware(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        return None  # ambiguous between UTC and local time: not guessed
    return at
