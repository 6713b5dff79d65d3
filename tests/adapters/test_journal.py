"""The record journal: nothing is lost while the database is down, nothing is written twice."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcenter.store.data import CallRecordData
from callcenter.store.journal import CORRUPT_DIR, REJECTED_DIR, RecordJournal, file_name
from callcenter.store.records import CallRecordStore
from tests.adapters.conftest import MakeRecord
from tests.support.concurrency import run_together

# Databases that are down: nothing listens on port 1; SQLite cannot open a file whose
# folder does not exist (the store never creates folders; only migrations do).
DOWN: dict[str, Callable[[Path], str]] = {
    "postgres-closed-port": lambda tmp: "postgresql+psycopg://postgres@127.0.0.1:1/x",
    "sqlite-missing-folder": lambda tmp: f"sqlite:///{tmp / 'absent' / 'dir' / 'hotline.db'}",
}


@pytest.fixture(params=sorted(DOWN))
def down_store(request: pytest.FixtureRequest, tmp_path: Path) -> CallRecordStore:
    s = CallRecordStore(DOWN[request.param](tmp_path))
    request.addfinalizer(s.close)
    return s


@pytest.fixture
def journal(tmp_path: Path) -> RecordJournal:
    return RecordJournal(tmp_path / "journal")


def _files(journal: RecordJournal) -> list[str]:
    return sorted(p.name for p in journal.directory.iterdir() if p.is_file())


# -- the file format ----------------------------------------------------------------------


def test_given_record_when_appended_then_one_safe_file_and_pending_returns_it(
        journal: RecordJournal, make_record: MakeRecord) -> None:
    rec = make_record(1, extra={"ivr_path": ["1"], "ghi_chú": "Đồng Nai"})
    path = journal.append(rec)
    assert path.parent == journal.directory
    assert ":" not in path.name and "/" not in path.name
    assert _files(journal) == [path.name]  # no temp file left behind
    assert journal.pending() == [rec]


def test_given_ids_that_differ_only_by_unsafe_characters_when_named_then_distinct_files() -> None:
    ids = ["pbx1:1.2", "pbx1/1.2", "pbx1%3A1.2", ".hidden", "..", "a b"]
    names = [file_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert all("/" not in n and not n.startswith(".") for n in names)


def test_given_same_record_appended_twice_when_pending_then_once(
        journal: RecordJournal, make_record: MakeRecord) -> None:
    journal.append(make_record(1))
    journal.append(make_record(1))
    assert journal.pending() == [make_record(1)]


def test_given_records_appended_in_order_when_pending_then_oldest_appended_first(
        journal: RecordJournal, make_record: MakeRecord) -> None:
    order = [5, 1, 9, 3, 7, 2]  # not the id order, not the arrival order
    for n in order:
        journal.append(make_record(n))
    assert [r.id for r in journal.pending()] == [make_record(n).id for n in order]


def test_given_record_when_done_then_gone_and_done_again_is_harmless(
        journal: RecordJournal, make_record: MakeRecord) -> None:
    rec = make_record(1)
    journal.append(rec)
    journal.done(rec.id)
    journal.done(rec.id)
    assert journal.pending() == []


@pytest.mark.parametrize("content", [
    b"{not json",
    b'{"version": 1, "seq": 1, "rec',  # torn write from a filesystem without rename atomicity
    b"\xff\xfe\x00garbage",
    b"[]",
    b'{"version": 1, "seq": 1, "record": {"id": "pbx1:1"}}',  # fields missing
    b'{"version": 99, "seq": 1, "record": {}}',
])
def test_given_corrupt_file_when_pending_then_quarantined_logged_and_others_kept(
        journal: RecordJournal, make_record: MakeRecord, content: bytes,
        caplog: pytest.LogCaptureFixture) -> None:
    good = make_record(2)
    journal.append(good)
    (journal.directory / "pbx1%3Abroken.json").write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="callcenter.store.journal"):
        assert journal.pending() == [good]
    assert (journal.directory / CORRUPT_DIR / "pbx1%3Abroken.json").read_bytes() == content
    assert "pbx1%3Abroken.json" in caplog.text
    assert journal.pending() == [good]  # quarantined once, not re-read


def test_given_record_with_bad_outcome_written_by_hand_when_pending_then_quarantined(
        journal: RecordJournal, make_record: MakeRecord) -> None:
    doc = {"version": 1, "seq": 1, "record": make_record(1).to_dict() | {"outcome": "lost"}}
    (journal.directory / "x.json").write_text(json.dumps(doc))
    assert journal.pending() == []
    assert (journal.directory / CORRUPT_DIR / "x.json").exists()


# -- flushing into the database -----------------------------------------------------------


def test_given_database_down_when_flush_then_record_stays_pending_then_written_once_later(
        journal: RecordJournal, down_store: CallRecordStore, store: CallRecordStore,
        make_record: MakeRecord, caplog: pytest.LogCaptureFixture) -> None:
    recs = [make_record(n) for n in (1, 2, 3)]
    for rec in recs:
        journal.append(rec)

    with caplog.at_level(logging.WARNING, logger="callcenter.store.journal"):
        assert journal.flush(down_store) == (0, 3)
    assert "database unavailable" in caplog.text
    assert journal.pending() == recs

    assert journal.flush(store) == (3, 0)
    assert journal.pending() == []
    assert _files(journal) == []
    assert store.count() == 3
    assert sorted(r.id for r in store.last(10)) == sorted(r.id for r in recs)

    assert journal.flush(store) == (0, 0)  # nothing left: nothing written again
    assert store.count() == 3


def test_given_crash_between_insert_and_delete_when_flushed_again_then_exactly_one_row(
        journal: RecordJournal, store: CallRecordStore, make_record: MakeRecord) -> None:
    rec = make_record(1)
    journal.append(rec)
    store.insert_once(rec)  # the commit happened; the process died before the delete
    assert journal.flush(store) == (1, 0)
    assert store.count() == 1
    assert store.get(rec.id) == rec
    assert journal.pending() == []


def test_given_database_down_mid_flush_when_flushed_then_written_ones_gone_rest_pending(
        journal: RecordJournal, store: CallRecordStore, make_record: MakeRecord) -> None:
    recs = [make_record(n) for n in (1, 2, 3, 4)]
    for rec in recs:
        journal.append(rec)

    class FailsAfterTwo:
        def __init__(self) -> None:
            self.calls = 0

        def insert_once(self, rec: CallRecordData) -> bool:
            self.calls += 1
            if self.calls > 2:
                raise sa.exc.OperationalError("INSERT", {}, Exception("server closed connection"))
            return store.insert_once(rec)

    assert journal.flush(FailsAfterTwo()) == (2, 2)
    assert journal.pending() == recs[2:]
    assert journal.flush(store) == (2, 0)
    assert store.count() == 4


def test_given_record_the_database_refuses_when_flush_then_set_aside_and_the_rest_written(
        journal: RecordJournal, store: CallRecordStore, make_record: MakeRecord,
        caplog: pytest.LogCaptureFixture) -> None:
    bad, good = make_record(1), make_record(2)
    journal.append(bad)
    journal.append(good)

    class RefusesOne:
        def insert_once(self, rec: CallRecordData) -> bool:
            if rec.id == bad.id:
                raise sa.exc.IntegrityError("INSERT", {}, Exception("violates check constraint"))
            return store.insert_once(rec)

    with caplog.at_level(logging.ERROR, logger="callcenter.store.journal"):
        assert journal.flush(RefusesOne()) == (1, 0)
    assert bad.id in caplog.text
    assert (journal.directory / REJECTED_DIR / file_name(bad.id)).exists()
    assert journal.pending() == []
    assert [r.id for r in store.last(5)] == [good.id]


def test_given_two_writers_flushing_the_same_journal_when_concurrent_then_each_record_once(
        journal: RecordJournal, store: CallRecordStore, make_record: MakeRecord) -> None:
    for n in range(1, 21):
        journal.append(make_record(n))
    errors = run_together(lambda: journal.flush(store), 4)
    assert errors == []
    assert journal.pending() == []
    assert store.count() == 20


def test_given_journal_reopened_after_restart_when_flush_then_old_records_written(
        tmp_path: Path, store: CallRecordStore, make_record: MakeRecord) -> None:
    RecordJournal(tmp_path / "j").append(make_record(1))
    stale = tmp_path / "j" / ".pbx1%3A9.json.dead.tmp"  # a write that died before rename
    stale.write_text("{")
    os.utime(stale, (0, 0))
    reopened = RecordJournal(tmp_path / "j")
    assert not stale.exists()
    assert reopened.flush(store) == (1, 0)
    assert store.get(make_record(1).id) == make_record(1)
