"""`callcenter backup` / `restore` round trips on SQLite and PostgreSQL, with real files:
tickets with an attachment, call records with a recording, a journalled record, the config."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from callcenter.cli import main
from callcenter.cli_errors import CommandError
from callcenter.config.settings import Settings
from callcenter.ops.backup import MANIFEST, Places, backup, libpq_args, restore
from callcenter.recordings.purge import locate_recordings
from callcenter.store.journal import RecordJournal
from callcenter.store.records import CallRecordStore
from callcenter.store.urls import normalise_url
from tests.adapters.conftest import MakeRecord
from tests.support.rootfs import ready_rootfs
from tests.support.tickets import OP, Clock, make_service, pdf_bytes

REPO = Path(__file__).resolve().parents[2]
ARI_PASSWORD = "ari-secret-9f3b1c"
OP_PASSWORD = "op-secret-77aa"
NOW = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)


@dataclasses.dataclass
class Install:
    """One hotline installation in a temporary folder."""

    settings: Settings
    places: Places
    root: Path


def _install(root: Path, database_url: str) -> Install:
    etc, state = root / "etc", root / "state"
    etc.mkdir(parents=True)
    shutil.copy(REPO / "config" / "hotline.yaml", etc / "hotline.yaml")
    shutil.copy(REPO / "config" / "ivr-dongnai.yaml", etc / "ivr-dongnai.yaml")
    (etc / "sounds" / "dongnai").mkdir(parents=True)
    (etc / "sounds" / "dongnai" / "greeting.wav").write_bytes(b"RIFF-greeting")
    (etc / "operators.env").write_text(f"HOTLINE_OP_101={OP_PASSWORD}\n")
    state.mkdir()
    (state / "secrets.env").write_text(f"HOTLINE_ARI_PASSWORD={ARI_PASSWORD}\n")
    settings = Settings.from_env(config_path=etc / "hotline.yaml", state_dir=state,
                                 database_url=database_url, sounds_override=etc / "sounds",
                                 secrets_path=state / "secrets.env")
    recordings = root / "pbx" / "spool" / "recording"
    recordings.mkdir(parents=True)
    return Install(settings, Places.of(settings, recordings=recordings), root)


def _fill(inst: Install, make_record: MakeRecord) -> None:
    """Tickets with an attachment, two call records (one recorded), one record in the journal."""
    p = inst.places
    svc = make_service(p.database_url, p.ticket_files, Clock())
    try:
        ticket = svc.open("dongnai", OP, channel="phone", content="Đường ĐT769 ngập nước",
                          field="other", call_ids=[make_record(1).id])
        svc.attach(ticket.code, OP, "tra-loi.pdf", "application/pdf", pdf_bytes())
        svc.open("dongnai", OP, channel="web", content="Giờ làm việc?", field="other")
    finally:
        svc.close()
    store = CallRecordStore(p.database_url)
    try:
        store.insert_once(dataclasses.replace(make_record(1), recording="dongnai-1.wav"))
        store.insert_once(make_record(2))
    finally:
        store.close()
    assert p.recordings is not None
    (p.recordings / "dongnai-1.wav").write_bytes(b"RIFF" + os.urandom(4000))
    RecordJournal(p.journal).append(make_record(3))


def _rows(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted (a comparable picture of the database)."""
    engine = sa.create_engine(normalise_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            return {name: sorted((tuple(repr(v) for v in r) for r in
                                  conn.execute(sa.select(table))), key=repr)
                    for name, table in sorted(meta.tables.items())}
    finally:
        engine.dispose()


def _files(*folders: Path | None) -> dict[str, bytes]:
    out = {}
    for folder in folders:
        assert folder is not None
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out[str(path)] = path.read_bytes()
    return out


def _state_files(p: Places) -> dict[str, bytes]:
    files = _files(p.recordings, p.ticket_files, p.journal, p.sounds)
    for name in ("hotline.yaml", "ivr-dongnai.yaml"):
        files[name] = (p.config_dir / name).read_bytes()
    return files


def _wipe(inst: Install) -> None:
    """Lose everything: the database's tables, state, recordings, config."""
    url = normalise_url(inst.places.database_url)
    if url.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    for folder in ("state", "etc", "pbx"):
        shutil.rmtree(inst.root / folder)
    (inst.root / "state").mkdir()
    assert inst.places.recordings is not None
    inst.places.recordings.mkdir(parents=True)


@pytest.fixture
def installed(database_url: str, tmp_path: Path, make_record: MakeRecord) -> Iterator[Install]:
    """An installation with data in it, on each backend."""
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'inst' / 'state' / 'hotline.db'}"
    inst = _install(tmp_path / "inst", database_url)
    _fill(inst, make_record)
    yield inst


# -- round trip ---------------------------------------------------------------------------


def test_given_installation_when_backed_up_wiped_and_restored_then_same_rows_and_files(
        installed: Install, tmp_path: Path) -> None:
    p = installed.places
    rows, files = _rows(p.database_url), _state_files(p)
    assert rows["tickets"] and rows["call_records"] and rows["ticket_attachments"]

    out = backup(p, tmp_path / "backups", now=NOW, err=io.StringIO())

    assert out.name == "hotline1022-backup-20261128T030000Z"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format"] == "hotline1022-backup" and manifest["version"] == 1
    assert manifest["created_at"] == "2026-11-28T03:00:00+00:00"
    assert manifest["database"]["kind"] == normalise_url(p.database_url).get_backend_name()
    assert manifest["database"]["alembic_revision"] == rows["alembic_version"][0][0].strip("'")
    listed = {f["path"] for f in manifest["files"]}
    assert {"recordings/dongnai-1.wav", "config/hotline.yaml", "config/ivr-dongnai.yaml",
            "sounds/dongnai/greeting.wav"} <= listed
    assert any(x.startswith("ticket-files/dongnai/") for x in listed)
    assert any(x.startswith("journal/") for x in listed)
    for path in out.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    assert not (tmp_path / "backups" / f".{out.name}.partial").exists()

    _wipe(installed)
    result = restore(out, p, installed.settings, now=NOW, err=io.StringIO())

    assert _rows(p.database_url) == rows
    assert _state_files(p) == files
    assert result["files"]["recordings"] == 1


def test_given_backup_of_older_revision_when_restored_then_migrated_to_head(
        installed: Install, tmp_path: Path) -> None:
    from alembic import command

    from callcenter.store.migrate import alembic_config, current_revisions, head_revisions

    p = installed.places
    command.downgrade(alembic_config(p.database_url), "0010")
    out = backup(p, tmp_path / "backups", now=NOW, err=io.StringIO())
    assert json.loads((out / MANIFEST).read_text())["database"]["alembic_revision"] == "0010"
    _wipe(installed)
    restore(out, p, installed.settings, now=NOW, err=io.StringIO())
    assert current_revisions(p.database_url) == head_revisions()


# -- refusals -----------------------------------------------------------------------------


def test_given_damaged_or_missing_file_when_restored_then_refused_naming_it(
        installed: Install, tmp_path: Path) -> None:
    p = installed.places
    out = backup(p, tmp_path / "backups", now=NOW, err=io.StringIO())
    _wipe(installed)
    recording = out / "recordings" / "dongnai-1.wav"
    data = bytearray(recording.read_bytes())
    data[100] ^= 0xFF
    recording.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="damaged backup: recordings/dongnai-1.wav"):
        restore(out, p, installed.settings, err=io.StringIO())
    assert not (p.recordings / "dongnai-1.wav").exists()  # type: ignore[operator]
    recording.unlink()
    with pytest.raises(CommandError, match="recordings/dongnai-1.wav is missing"):
        restore(out, p, installed.settings, err=io.StringIO())


def test_given_non_empty_installation_when_restored_without_force_then_refused_with_force_done(
        installed: Install, tmp_path: Path, make_record: MakeRecord) -> None:
    p = installed.places
    out = backup(p, tmp_path / "backups", now=NOW, err=io.StringIO())
    rows = _rows(p.database_url)
    extra = CallRecordStore(p.database_url)
    extra.insert_once(make_record(7))
    extra.close()
    with pytest.raises(CommandError, match="would overwrite existing data: the database"):
        restore(out, p, installed.settings, err=io.StringIO())
    restore(out, p, installed.settings, force=True, now=NOW, err=io.StringIO())
    assert _rows(p.database_url) == rows


def test_given_running_service_when_restored_then_refused_unless_forced(
        installed: Install, tmp_path: Path) -> None:
    p = installed.places
    out = backup(p, tmp_path / "backups", now=NOW, err=io.StringIO())
    _wipe(installed)
    # A live process whose command line says callcenter, named by the service's pid file.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "callcenter"])
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"callcenter" not in cmdline.read_bytes():  # empty for a moment after exec
            assert time.monotonic() < deadline
            time.sleep(0.01)
        installed.settings.pid_file.write_text(f"{proc.pid}\n")
        with pytest.raises(CommandError, match=f"service is running \\(pid {proc.pid}"):
            restore(out, p, installed.settings, err=io.StringIO())
        restore(out, p, installed.settings, force=True, now=NOW, err=io.StringIO())
    finally:
        proc.kill()
        proc.wait()


# -- secrets ------------------------------------------------------------------------------


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_given_no_with_secrets_when_backed_up_then_no_secret_in_it_and_with_them_restored(
        installed: Install, tmp_path: Path) -> None:
    p = installed.places
    plain = backup(p, tmp_path / "plain", now=NOW, err=io.StringIO())
    listed = {f["path"] for f in json.loads((plain / MANIFEST).read_text())["files"]}
    assert not any(x.startswith("secrets/") for x in listed)
    everything = _all_bytes(plain)
    assert ARI_PASSWORD.encode() not in everything and OP_PASSWORD.encode() not in everything

    full = backup(p, tmp_path / "full", now=NOW, with_secrets=True, err=io.StringIO())
    listed = {f["path"] for f in json.loads((full / MANIFEST).read_text())["files"]}
    assert {"secrets/secrets.env", "secrets/config/operators.env"} <= listed
    _wipe(installed)
    restore(full, p, installed.settings, now=NOW, err=io.StringIO())
    assert ARI_PASSWORD in p.secrets_file.read_text()
    assert OP_PASSWORD in (p.config_dir / "operators.env").read_text()


# -- the command line ---------------------------------------------------------------------


def test_given_cli_when_backup_then_restore_then_folder_printed_and_state_back(
        installed: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    s = installed.settings
    rootfs = ready_rootfs(tmp_path / "rootfs")
    for key, value in {"HOTLINE_CONFIG": s.config_path, "HOTLINE_STATE": s.state_dir,
                       "DATABASE_URL": s.database_url, "HOTLINE_SECRETS": s.secrets_file,
                       "HOTLINE_ROOTFS": rootfs, "HOTLINE_SOUNDS": s.sounds_override,
                       "HOTLINE_INSTANCE": "main"}.items():
        monkeypatch.setenv(key, str(value))
    recordings = locate_recordings(Settings.from_env())
    assert recordings is not None
    recordings.mkdir(parents=True)
    (recordings / "dongnai-1.wav").write_bytes(b"RIFF-cli")
    rows = _rows(s.database_url)

    assert main(["backup", "--to", str(tmp_path / "b")]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert (out / "recordings" / "dongnai-1.wav").read_bytes() == b"RIFF-cli"

    assert main(["restore", "--from", str(out)]) == 2  # over the data it came from
    assert "would overwrite existing data" in capsys.readouterr().err
    _wipe(installed)
    shutil.rmtree(recordings)
    assert main(["restore", "--from", str(out)]) == 0
    assert (recordings / "dongnai-1.wav").read_bytes() == b"RIFF-cli"
    assert _rows(s.database_url) == rows


def test_given_pg_dump_missing_or_older_than_server_when_backup_then_clear_error(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    inst = _install(tmp_path / "inst", database_url)
    from callcenter.store.migrate import upgrade_head

    upgrade_head(database_url)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(CommandError, match="pg_dump is not installed") as e:
        backup(inst.places, tmp_path / "b", err=io.StringIO())
    assert "postgresql-client" in (e.value.fix or "")
    old = bin_dir / "pg_dump"  # what an old client prints; it is never asked to dump
    old.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    old.chmod(0o755)
    with pytest.raises(CommandError, match=r"pg_dump 9 is older than the PostgreSQL \d+ server"):
        backup(inst.places, tmp_path / "b", err=io.StringIO())
    assert not any((tmp_path / "b").iterdir())  # no half-made backup left


def test_given_url_with_password_when_libpq_args_then_password_only_in_environment() -> None:
    args, env = libpq_args("postgresql://hotline:p%40ss@db.example:5433/hotline?sslmode=require")
    assert args == ["--host", "db.example", "--port", "5433", "--username", "hotline",
                    "--dbname", "hotline"]
    assert env == {"PGPASSWORD": "p@ss", "PGSSLMODE": "require"}
    args, env = libpq_args("postgresql:///hotline?host=/var/run/postgresql")
    assert args == ["--host", "/var/run/postgresql", "--dbname", "hotline"] and env == {}


def test_given_backup_naming_foreign_files_or_links_when_restored_then_refused_before_writing(
        installed: Install, tmp_path: Path) -> None:
    """A backup is written by the unprivileged service account and restored by root: a name a
    backup never holds (root's units' environment) or a link is refused, nothing written."""
    import json

    from callcenter.ops.backup import MANIFEST, sha256_of

    p = installed.places
    out = backup(p, tmp_path / "backups", now=NOW, err=io.StringIO())
    _wipe(installed)
    manifest = json.loads((out / MANIFEST).read_text())
    planted = out / "config" / "hotline.env"
    planted.write_text("LD_PRELOAD=/tmp/evil.so\n")
    manifest["files"].append({"path": "config/hotline.env", "size": planted.stat().st_size,
                              "sha256": sha256_of(planted)})
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="names 'config/hotline.env', which a hotline backup"):
        restore(out, p, installed.settings, err=io.StringIO())
    assert not (p.config_dir / "hotline.env").exists()
    manifest["files"].pop()
    (out / MANIFEST).write_text(json.dumps(manifest))
    planted.unlink()
    recording = out / "recordings" / "dongnai-1.wav"
    secret = tmp_path / "not-in-the-backup.txt"
    secret.write_bytes(recording.read_bytes())  # same bytes: the checksum alone would pass
    recording.unlink()
    recording.symlink_to(secret)
    with pytest.raises(CommandError, match="recordings/dongnai-1.wav .* is a symbolic link"):
        restore(out, p, installed.settings, err=io.StringIO())
    assert _rows(p.database_url) == {k: [] for k in _rows(p.database_url)}  # nothing restored
