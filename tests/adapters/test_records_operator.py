"""Call records with the operators' part (migration 0006), on SQLite and PostgreSQL: the new
columns round-trip, the outcome "callback" is stored, rows and journal files of the previous
version still read, and `callcenter calls` shows operator, wait, talk, recording, transfers."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from callcenter.cli import cmd_calls
from callcenter.config.settings import Settings
from callcenter.store.data import CallRecordData
from callcenter.store.journal import FORMAT_VERSION, RecordJournal, file_name
from callcenter.store.migrate import alembic_config, upgrade_head
from callcenter.store.records import CallRecordStore
from callcenter.store.urls import normalise_url
from tests.adapters.conftest import MakeRecord

TRANSFER = {"at": "2025-11-03T00:33:10+00:00", "by": "101", "unit": "so_y_te",
            "number": "0900000102", "kind": "attended", "answered": True, "result": "returned"}


def _operator_record(make_record: MakeRecord, n: int = 1, **overrides: object) -> CallRecordData:
    rec = make_record(n)
    t = rec.arrived_at
    values: dict[str, object] = {
        "operator": "101", "queued_at": t + dt.timedelta(seconds=20),
        "bridged_at": t + dt.timedelta(seconds=32, milliseconds=500),
        "talk_ended_at": t + dt.timedelta(seconds=90), "ended_at": t + dt.timedelta(seconds=90),
        "wrap_up_s": 15, "no_answers": 2, "recording": "dongnai/2025/11/03/pbx1-1.wav",
        "transfers": [TRANSFER],
    } | overrides
    return dataclasses.replace(rec, **values)  # type: ignore[arg-type]


def test_given_record_with_operator_part_when_stored_then_read_back_equal(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    rec = _operator_record(make_record)
    assert store.insert_once(rec) is True
    got = store.get(rec.id)
    assert got == rec
    assert got is not None and (got.wait_s, got.talk_s) == (12.5, 57.5)
    d = got.to_json_dict()
    assert (d["operator"], d["wait_s"], d["talk_s"], d["wrap_up_s"], d["no_answers"]) == (
        "101", 12.5, 57.5, 15, 2)
    assert d["transfers"] == [TRANSFER] and d["recording"].endswith("pbx1-1.wav")
    assert d["queued_at"] == "2025-11-03T00:31:20+00:00"


def test_given_caller_chose_callback_when_stored_then_outcome_callback_kept(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    rec = _operator_record(make_record, outcome="callback", operator=None, bridged_at=None,
                           talk_ended_at=None, wrap_up_s=None, transfers=None, recording=None)
    assert store.insert_once(rec) is True
    got = store.get(rec.id)
    assert got is not None and got.outcome == "callback"
    # Never bridged: the wait runs until the call ended; no talk.
    assert (got.wait_s, got.talk_s) == (70.0, None)


def _count(database_url: str, sql: str) -> int:
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_given_rows_of_version_0005_when_upgraded_then_read_with_defaults_and_downgrade_works(
        database_url: str, make_record: MakeRecord) -> None:
    cfg = alembic_config(database_url)
    command.upgrade(cfg, "0005")
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO call_records (id, node, tenant, dialled, caller, arrived_at, "
                "outcome, linkedid, created_at) VALUES ('pbx1:old.1', 'pbx1', 'dongnai', "
                "'1022', '0909000111', :t, 'answered', 'old.1', :t)"),
                {"t": dt.datetime(2025, 11, 3, 0, 30, tzinfo=dt.UTC)})
    finally:
        engine.dispose()
    upgrade_head(database_url)
    store = CallRecordStore(database_url)
    try:
        old = store.get("pbx1:old.1")
        assert old is not None
        assert (old.operator, old.queued_at, old.no_answers, old.transfers, old.wait_s) == (
            None, None, 0, None, None)
        assert store.insert_once(_operator_record(make_record, outcome="callback"))
    finally:
        store.close()
    # Back to 0005: the new outcome maps to "abandoned" (the caller left unserved).
    command.downgrade(cfg, "0005")
    assert _count(database_url, "SELECT count(*) FROM call_records "
                                "WHERE outcome = 'abandoned'") == 1
    upgrade_head(database_url)


def test_given_journal_file_of_previous_version_when_flushed_then_stored(
        store: CallRecordStore, tmp_path: Path, make_record: MakeRecord) -> None:
    journal = RecordJournal(tmp_path / "journal")
    rec = make_record(7)
    old = {k: v for k, v in rec.to_dict().items()
           if k not in ("operator", "queued_at", "bridged_at", "talk_ended_at", "wrap_up_s",
                        "no_answers", "recording", "transfers")}
    (journal.directory / file_name(rec.id)).write_text(json.dumps(
        {"version": FORMAT_VERSION, "seq": 1, "record": old}), encoding="utf-8")
    assert journal.flush(store) == (1, 0)
    assert store.get(rec.id) == rec


def test_given_journal_with_operator_record_when_flushed_then_every_field_kept(
        store: CallRecordStore, tmp_path: Path, make_record: MakeRecord) -> None:
    journal = RecordJournal(tmp_path / "journal")
    rec = _operator_record(make_record, 8)
    journal.append(rec)
    assert journal.pending() == [rec]
    assert journal.flush(store) == (1, 0)
    assert store.get(rec.id) == rec


def test_given_operator_records_when_calls_command_then_new_columns_and_old_keys(
        store: CallRecordStore, database_url: str, tmp_path: Path, make_record: MakeRecord,
        capsys: pytest.CaptureFixture[str]) -> None:
    store.insert_once(make_record(1))
    store.insert_once(_operator_record(make_record, 2))
    settings = Settings.from_env(state_dir=tmp_path, database_url=database_url)
    args = argparse.Namespace(last=5, tenant=None, json=True)
    assert cmd_calls(args, settings) == 0
    newest, plain = json.loads(capsys.readouterr().out)
    for key in ("id", "tenant", "dialled", "caller", "shift", "outcome", "arrived_at",
                "answered_at", "ended_at", "cause", "ivr_path", "pool_limit"):
        assert key in newest and key in plain
    assert (newest["operator"], newest["wait_s"], newest["talk_s"], newest["recording"],
            newest["no_answers"], newest["wrap_up_s"]) == (
        "101", 12.5, 57.5, "dongnai/2025/11/03/pbx1-1.wav", 2, 15)
    assert newest["transfers"] == [TRANSFER]
    assert (plain["operator"], plain["wait_s"], plain["transfers"]) == (None, None, [])

    assert cmd_calls(argparse.Namespace(last=5, tenant=None, json=False), settings) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # the operator's call has two more lines, the plain one none
    assert lines[1].split() == ["operator:", "101", "wait", "12.5s", "talk", "57.5s",
                                "wrap-up", "15s", "no-answer", "2", "recording",
                                "dongnai/2025/11/03/pbx1-1.wav"]
    assert lines[2].split() == ["transfer:", TRANSFER["at"], "101", "->", "so_y_te",
                                "(0900000102)", "attended", "answered", "returned"]


def test_given_call_back_record_when_stored_then_outcome_dialback_and_downgrade_maps_it(
        database_url: str, make_record: MakeRecord) -> None:
    upgrade_head(database_url)
    store = CallRecordStore(database_url)
    try:
        rec = dataclasses.replace(
            _operator_record(make_record, 7), outcome="dialback", queued_at=None,
            transfers=None, wrap_up_s=None, no_answers=0,
            extra={"direction": "outbound", "callback_id": 3, "by": "101",
                   "result": "answered", "ticket": None})
        missed = dataclasses.replace(rec, id="pbx1:cb3-abcdef-out", outcome="dialback",
                                     answered_at=None, bridged_at=None, talk_ended_at=None,
                                     recording=None)
        assert store.insert_once(rec) and store.insert_once(missed)
        got = store.get(rec.id)
        assert got is not None and (got.outcome, got.extra) == ("dialback", rec.extra)
    finally:
        store.close()
    # Back to 0020: talked calls back become "answered", the others "failed".
    command.downgrade(alembic_config(database_url), "0020_dialback")
    assert _count(database_url, "SELECT count(*) FROM call_records "
                                "WHERE outcome IN ('answered', 'failed')") == 2
    upgrade_head(database_url)
