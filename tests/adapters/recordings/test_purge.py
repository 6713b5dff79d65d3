"""Recording retention against SQLite and PostgreSQL: files deleted, records marked, audited."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from callcenter.config.model import HotlineConfig
from callcenter.config.parse import parse_config
from callcenter.recordings.audit import RecordingStore
from callcenter.recordings.purge import JOB_ACTOR, purge_recordings
from callcenter.store.records import CallRecordStore
from tests.adapters.conftest import MakeRecord
from tests.support.config_files import config_data

NOW = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)


def _config(keep_days: object = 30) -> HotlineConfig:
    data = config_data("one_tenant_two_lines.yaml")
    data["tenants"][0]["recordings"] = {"keep_days": keep_days}
    return parse_config(data, "hotline.yaml")


@pytest.fixture
def recordings(store: CallRecordStore, database_url: str,
               tmp_path: Path) -> Iterator[tuple[RecordingStore, Path]]:
    """The retention store on the migrated database and an empty recordings folder."""
    folder = tmp_path / "spool" / "recording"
    folder.mkdir(parents=True)
    s = RecordingStore(database_url)
    yield s, folder
    s.close()


def _recorded(store: CallRecordStore, make_record: MakeRecord, folder: Path, n: int,
              age_days: float, *, file: bool = True) -> str:
    ended = NOW - dt.timedelta(days=age_days)
    name = f"dongnai-{n}.wav"
    rec = dataclasses.replace(make_record(n, arrived_at=ended - dt.timedelta(minutes=2)),
                              ended_at=ended, recording=name)
    assert store.insert_once(rec)
    if file:
        (folder / name).write_bytes(b"RIFF" + bytes(100))
    return name


def test_given_old_young_and_missing_recordings_when_purged_then_old_deleted_marked_audited(
        store: CallRecordStore, recordings: tuple[RecordingStore, Path],
        make_record: MakeRecord) -> None:
    rstore, folder = recordings
    old = _recorded(store, make_record, folder, 1, 30)  # exactly keep_days: due
    young = _recorded(store, make_record, folder, 2, 29.9)
    gone = _recorded(store, make_record, folder, 3, 45, file=False)

    result = purge_recordings(rstore, folder, _config(30), NOW, actor=JOB_ACTOR)

    assert sorted(result.deleted) == [old, gone] and result.missing == 1 and not result.failed
    assert not (folder / old).exists() and (folder / young).exists()
    rows = {make_record(n).id: store.get(make_record(n).id) for n in (1, 2, 3)}
    assert rows[make_record(1).id].recording is None
    assert rows[make_record(1).id].recording_deleted_at == NOW
    assert rows[make_record(3).id].recording is None
    assert rows[make_record(2).id].recording == young
    assert rows[make_record(2).id].recording_deleted_at is None
    audit = {a.recording: a for a in rstore.recent("dongnai")}
    assert set(audit) == {old, gone}
    assert audit[old].file_found and audit[old].size_bytes == 104
    assert audit[old].keep_days == 30 and audit[old].actor == JOB_ACTOR
    assert audit[old].call_ended_at == NOW - dt.timedelta(days=30)
    assert not audit[gone].file_found and audit[gone].size_bytes is None

    again = purge_recordings(rstore, folder, _config(30), NOW, actor=JOB_ACTOR)
    assert again.deleted == [] and len(rstore.recent()) == 2  # nothing twice


def test_given_dry_run_when_purged_then_nothing_changes(
        store: CallRecordStore, recordings: tuple[RecordingStore, Path],
        make_record: MakeRecord) -> None:
    rstore, folder = recordings
    old = _recorded(store, make_record, folder, 1, 31)
    result = purge_recordings(rstore, folder, _config(30), NOW, actor="t", dry_run=True)
    assert result.deleted == [old] and (folder / old).exists()
    rec = store.get(make_record(1).id)
    assert rec is not None and rec.recording == old and rstore.recent() == []


def test_given_forever_when_purged_then_kept_and_unnamed_files_not_reported(
        store: CallRecordStore, recordings: tuple[RecordingStore, Path],
        make_record: MakeRecord) -> None:
    rstore, folder = recordings
    old = _recorded(store, make_record, folder, 1, 5000)
    result = purge_recordings(rstore, folder, _config("forever"), NOW, actor=JOB_ACTOR)
    assert result.deleted == [] and result.unnamed_old == [] and (folder / old).exists()


def test_given_file_no_record_names_when_purged_then_reported_not_deleted(
        store: CallRecordStore, recordings: tuple[RecordingStore, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    _, folder = recordings
    rstore = recordings[0]
    orphan, fresh = folder / "stray-old.wav", folder / "stray-new.wav"
    for f in (orphan, fresh):
        f.write_bytes(b"x")
    old = (NOW - dt.timedelta(days=31)).timestamp()
    os.utime(orphan, (old, old))
    os.utime(fresh, (NOW.timestamp(), NOW.timestamp()))
    with caplog.at_level(logging.WARNING, "callcenter.recordings.purge"):
        result = purge_recordings(rstore, folder, _config(30), NOW, actor=JOB_ACTOR)
    assert result.unnamed_old == ["stray-old.wav"] and orphan.exists()
    assert "stray-old.wav" in caplog.text and "not deleted" in caplog.text


def test_given_record_naming_a_path_outside_when_purged_then_refused_and_kept(
        store: CallRecordStore, recordings: tuple[RecordingStore, Path],
        make_record: MakeRecord, tmp_path: Path) -> None:
    rstore, folder = recordings
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    rec = dataclasses.replace(make_record(1, arrived_at=NOW - dt.timedelta(days=60)),
                              ended_at=NOW - dt.timedelta(days=60), recording="../../victim.txt")
    store.insert_once(rec)
    result = purge_recordings(rstore, folder, _config(30), NOW, actor=JOB_ACTOR)
    assert victim.exists() and result.deleted == [] and len(result.failed) == 1


def test_given_audit_row_when_updated_or_deleted_then_database_refuses(
        store: CallRecordStore, recordings: tuple[RecordingStore, Path],
        make_record: MakeRecord) -> None:
    rstore, folder = recordings
    _recorded(store, make_record, folder, 1, 40)
    purge_recordings(rstore, folder, _config(30), NOW, actor=JOB_ACTOR)
    for statement in ("UPDATE recording_audit SET actor = 'x'", "DELETE FROM recording_audit"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with rstore.engine.begin() as conn:
                conn.execute(sa.text(statement))


def test_given_job_when_runs_then_info_line_with_counts_and_a_failure_is_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from callcenter.recordings.purge import PurgeResult, retention_job

    runs: list[int] = []

    def purge() -> PurgeResult:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("database away")
        return PurgeResult(deleted=["a.wav", "b.wav"], missing=1)

    async def main() -> None:
        job = asyncio.create_task(retention_job(purge, interval_s=0.05, first_delay_s=0))
        while len(runs) < 3:
            await asyncio.sleep(0.01)
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)

    with caplog.at_level(logging.INFO, "callcenter.recordings.purge"):
        asyncio.run(main())
    assert "recording retention failed (retrying in 0 s): database away" in caplog.text
    assert ("recording retention: 2 deleted (1 already missing), 0 failed, 0 old file(s)"
            in caplog.text)


def test_given_cli_when_purge_dry_run_then_listed_and_kept_then_purge_deletes(
        store: CallRecordStore, database_url: str, make_record: MakeRecord, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from callcenter.cli import main
    from callcenter.config.settings import Settings
    from callcenter.recordings.purge import locate_recordings
    from tests.support.rootfs import ready_rootfs

    config = tmp_path / "hotline.yaml"
    config.write_text(yaml.safe_dump({"tenants": [{
        "id": "dongnai", "name": "Đồng Nai", "numbers": ["02511022"],
        "shifts": [{"name": "day", "start": "00:00", "end": "00:00", "lines": 2}],
        "recordings": {"keep_days": 1}}]}, allow_unicode=True))
    ready_rootfs(tmp_path / "rootfs")
    for key, value in {"HOTLINE_CONFIG": config, "HOTLINE_STATE": tmp_path / "state",
                       "DATABASE_URL": database_url, "HOTLINE_ROOTFS": tmp_path / "rootfs",
                       "HOTLINE_INSTANCE": "main"}.items():
        monkeypatch.setenv(key, str(value))
    folder = locate_recordings(Settings.from_env())
    assert folder is not None
    folder.mkdir(parents=True)
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    store.insert_once(dataclasses.replace(make_record(1, arrived_at=ended), ended_at=ended,
                                          recording="dongnai-1.wav"))
    (folder / "dongnai-1.wav").write_bytes(b"RIFF")

    assert main(["recordings", "purge", "--dry-run"]) == 0
    assert "would delete dongnai-1.wav" in capsys.readouterr().out
    assert (folder / "dongnai-1.wav").exists()
    assert main(["recordings", "purge"]) == 0
    assert "1 deleted (0 already missing)" in capsys.readouterr().out
    assert not (folder / "dongnai-1.wav").exists()
    rec = store.get(make_record(1).id)
    assert rec is not None and rec.recording is None and rec.recording_deleted_at is not None
