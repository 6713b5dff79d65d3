"""The durable journal: a finished call's record is on disk before the database sees it.

Protocol: `append` (fsync'd) first, then `flush` into the store; a background task retries
`flush` with back-off while the database is down. A record leaves the journal only after
its row is committed, and the primary key turns a replay (a crash between commit and
delete, or two writers) into a no-op: every record lands exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from callcenter.store.data import CallRecordData

log = logging.getLogger("callcenter.store.journal")

FORMAT_VERSION = 1
SUFFIX = ".json"
CORRUPT_DIR = "corrupt"  # unreadable files: kept for a human, never retried
REJECTED_DIR = "rejected"  # readable records the database refused (a constraint): same
STALE_TMP_S = 3600.0  # a temp file this old is a write that died before os.replace


class RecordSink(Protocol):
    """Where `flush` writes: `CallRecordStore` or anything with its insert_once."""

    def insert_once(self, rec: CallRecordData) -> bool: ...


class CorruptEntry(ValueError):
    """A journal file that is not a record."""


def file_name(rec_id: str) -> str:
    """A filesystem-safe, one-to-one file name: "pbx1:1700.1" -> "pbx1%3A1700.1.json"."""
    # quote() leaves only [A-Za-z0-9_.~-] and "%XX": no "/", no ":", distinct ids stay
    # distinct. A leading "." would hide the file (and look like a temp file): escape it too.
    name = quote(rec_id, safe="")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name + SUFFIX


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RecordJournal:
    """One JSON file per pending call record in `directory`, written atomically."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq_lock = threading.Lock()
        self._last_seq = 0
        self._remove_stale_tmp()

    # -- writing ---------------------------------------------------------------------------

    def append(self, rec: CallRecordData) -> Path:
        """Write `rec` durably (tmp file, fsync, rename, fsync dir); returns its file."""
        final = self.path_of(rec.id)
        body = json.dumps(
            {"version": FORMAT_VERSION, "seq": self._next_seq(), "record": rec.to_dict()},
            ensure_ascii=False, separators=(",", ":"),
        ).encode("utf-8")
        tmp = self.directory / f".{final.name}.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        return final

    def done(self, rec_id: str) -> None:
        """Forget the record `rec_id` (after its row is committed); missing is fine."""
        self._remove(self.path_of(rec_id))

    # -- reading ---------------------------------------------------------------------------

    def path_of(self, rec_id: str) -> Path:
        """The file that holds (or would hold) record `rec_id`."""
        return self.directory / file_name(rec_id)

    def pending(self) -> list[CallRecordData]:
        """Records not yet in the database, oldest appended first; corrupt files quarantined."""
        return [rec for _, rec in self._entries()]

    def flush(self, store: RecordSink) -> tuple[int, int]:
        """Write pending records to `store`, oldest first; returns (written, still_pending).

        `written` counts records now in the database and gone from the journal (including
        ones a previous, interrupted flush had already inserted). On a database error the
        flush stops there and the rest stays pending for the next try.
        """
        entries = self._entries()
        written = 0
        for i, (path, rec) in enumerate(entries):
            try:
                store.insert_once(rec)
            except (IntegrityError, DataError) as e:
                # This record, not the database, is the problem (a constraint, a value too
                # long): retrying would block every later call's record behind it forever.
                # Only the first line: SQLAlchemy appends the parameters (caller numbers).
                reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
                self._quarantine(path, REJECTED_DIR, f"database refused record {rec.id}: {reason}")
                continue
            except SQLAlchemyError as e:
                still = len(entries) - i
                log.warning("database unavailable, %d call record(s) kept in the journal: %s",
                            still, str(e).splitlines()[0][:300] if str(e) else type(e).__name__)
                return written, still
            self._remove(path)
            written += 1
        return written, 0

    # -- internals -------------------------------------------------------------------------

    def _next_seq(self) -> int:
        # Append order, strictly increasing in this process; file mtimes are too coarse
        # (one kernel tick) to order records written in the same few milliseconds.
        with self._seq_lock:
            self._last_seq = max(self._last_seq + 1, time.time_ns())
            return self._last_seq

    def _entries(self) -> list[tuple[Path, CallRecordData]]:
        entries: list[tuple[int, str, Path, CallRecordData]] = []
        for path in self.directory.iterdir():
            if path.name.startswith(".") or not path.name.endswith(SUFFIX) or not path.is_file():
                continue
            try:
                seq, rec = self._read(path)
            except FileNotFoundError:
                continue  # flushed meanwhile by another thread
            except CorruptEntry as e:
                self._quarantine(path, CORRUPT_DIR, f"corrupt journal file {path.name}: {e}")
                continue
            entries.append((seq, path.name, path, rec))
        entries.sort(key=lambda e: (e[0], e[1]))
        return [(path, rec) for _, _, path, rec in entries]

    @staticmethod
    def _read(path: Path) -> tuple[int, CallRecordData]:
        raw = path.read_bytes()
        try:
            doc: Any = json.loads(raw.decode("utf-8"))
            if not isinstance(doc, dict):
                raise TypeError(f"expected an object, got {type(doc).__name__}")
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown format version {doc.get('version')!r}")
            seq = doc["seq"]
            if not isinstance(seq, int):
                raise TypeError(f"seq: expected an integer, got {seq!r}")
            return seq, CallRecordData.from_dict(doc["record"])
        except (UnicodeDecodeError, ValueError, TypeError, KeyError) as e:
            raise CorruptEntry(f"{type(e).__name__}: {e}") from e

    def _quarantine(self, path: Path, folder: str, why: str) -> None:
        target_dir = self.directory / folder
        target_dir.mkdir(exist_ok=True)
        target = target_dir / path.name
        if target.exists():
            target = target_dir / f"{path.name}.{time.time_ns()}"
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return  # another flush moved or settled it first
        _fsync_dir(target_dir)
        _fsync_dir(self.directory)
        log.error("%s; moved to %s", why, target)

    def _remove(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.directory)

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_S
        for path in self.directory.glob(".*.tmp"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass
