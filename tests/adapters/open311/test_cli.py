"""`callcenter open311 key create|list|revoke` on a real (SQLite) database, and the key store:
only a hash is kept, a revoked key never works, the migration matches the models."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcenter.cli import AREA_COMMANDS, build_parser
from callcenter.config.settings import Settings
from callcenter.open311 import cli as open311_cli
from callcenter.open311.store import Open311Store
from callcenter.store.migrate import upgrade_head
from tests.support.schema import model_diff
from tests.support.tickets import REPO


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade_head(url)
    return Settings.from_env(state_dir=tmp_path, database_url=url,
                             config_path=REPO / "config" / "hotline.yaml")


def _run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    open311_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.handler(args, settings))


def _create(settings: Settings, capsys: pytest.CaptureFixture[str], name: str) -> str:
    assert _run(settings, "open311", "key", "create", name, "--tenant", "dongnai") == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_given_cli_when_built_then_open311_area_registered() -> None:
    assert "callcenter.open311.cli" in AREA_COMMANDS
    args = build_parser().parse_args(["open311", "key", "list"])
    assert args.handler is open311_cli.cmd_list


def test_given_create_when_run_then_key_on_last_line_works_and_only_its_hash_is_stored(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    key = _create(settings, capsys, "dvc-app")
    assert key.startswith("o311_") and len(key) == 5 + 16 + 1 + 43
    store = Open311Store(settings.database_url)
    try:
        found = store.authenticate(key)
        assert found is not None and (found.name, found.tenant) == ("dvc-app", "dongnai")
        assert found.revoked is False
        with store.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.text(
                "SELECT * FROM open311_keys"))]
    finally:
        store.close()
    secret = key.split("_", 2)[2]
    assert len(rows) == 1 and secret not in str(rows)
    assert rows[0]["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()


def test_given_keys_when_listed_then_names_tenants_and_no_secrets(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    key = _create(settings, capsys, "dvc-app")
    _create(settings, capsys, "zalo-bot")
    assert _run(settings, "open311", "key", "list", "--json") == 0
    out = capsys.readouterr().out
    listed = json.loads(out)["keys"]
    assert [(k["name"], k["tenant"], k["revoked"]) for k in listed] == [
        ("dvc-app", "dongnai", False), ("zalo-bot", "dongnai", False)]
    assert key.split("_", 2)[2] not in out
    assert _run(settings, "open311", "key", "list", "--tenant", "thanhhoa") == 0
    assert "no Open311 keys for thanhhoa" in capsys.readouterr().out
    assert _run(settings, "open311", "key", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("dvc-app\t") and "last used never\tactive" in lines[0]


def test_given_key_when_revoked_by_name_or_id_then_it_stops_working_for_good(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    first = _create(settings, capsys, "dvc-app")
    second = _create(settings, capsys, "zalo-bot")
    assert _run(settings, "open311", "key", "revoke", "dvc-app") == 0
    assert "revoked Open311 key dvc-app" in capsys.readouterr().out
    second_id = second.split("_")[1]
    assert _run(settings, "open311", "key", "revoke", second_id) == 0
    capsys.readouterr()
    store = Open311Store(settings.database_url)
    try:
        assert store.authenticate(first) is None and store.authenticate(second) is None
    finally:
        store.close()
    assert _run(settings, "open311", "key", "revoke", "dvc-app") == 1
    assert "revoked already" in capsys.readouterr().err
    assert _run(settings, "open311", "key", "list") == 0
    assert capsys.readouterr().out.count("\trevoked ") == 2


@pytest.mark.parametrize(("argv", "words"), [
    (("create", "dvc-app", "--tenant", "hanoi"), "no tenant 'hanoi'"),
    (("create", "Bad Name!", "--tenant", "dongnai"), "key name 'Bad Name!'"),
    (("create", "dvc-app", "--tenant", "dongnai"), "exists already"),
    (("revoke", "nobody"), "no Open311 key 'nobody'"),
])
def test_given_bad_input_when_run_then_exit_1_saying_why(
        settings: Settings, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
        words: str) -> None:
    _create(settings, capsys, "dvc-app")
    assert _run(settings, "open311", "key", *argv) == 1
    assert words in capsys.readouterr().err


def test_given_unmigrated_database_when_listing_then_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = Settings.from_env(state_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}",
                             config_path=REPO / "config" / "hotline.yaml")
    assert _run(bare, "open311", "key", "list") == 2
    assert "callcenter db upgrade" in capsys.readouterr().err


def test_given_migrated_database_then_open311_tables_match_the_models(database_url: str) -> None:
    assert model_diff(database_url, ["open311_keys", "open311_requests"]) == []
