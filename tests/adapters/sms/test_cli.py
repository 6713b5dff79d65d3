"""`callcenter sms report | send | outbox` on a real (SQLite) database."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pytest

from callcenter.cli import AREA_COMMANDS
from callcenter.config.settings import Settings
from callcenter.sms import cli as sms_cli
from callcenter.sms.store import DLR_DELIVERED, SmsOutbox

NOTICE = "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(state_dir=tmp_path,
                             database_url=f"sqlite:///{tmp_path / 'hotline.db'}")


def _run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    sms_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sms", *argv])
    return int(args.handler(args, settings))


def test_given_cli_when_built_then_sms_area_registered() -> None:
    assert "callcenter.sms.cli" in AREA_COMMANDS


def test_given_send_twice_with_one_key_when_run_then_one_message_queued(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("send", "--tenant", "dongnai", "--to", "+84 909 000 111", "--text", NOTICE,
            "--key", "test:1")
    assert _run(settings, *argv) == 0
    assert "ucs2, 2 part(s)" in capsys.readouterr().out
    assert _run(settings, *argv) == 0
    assert "already queued" in capsys.readouterr().out
    assert _run(settings, "outbox", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == {"queued": 1}
    (m,) = out["messages"]
    assert (m["to_number"], m["text"], m["parts"], m["status"]) == (
        "0909000111", NOTICE, 2, "queued")
    assert "claim_token" not in m


def test_given_bad_number_when_send_then_error_exit_2(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(settings, "send", "--tenant", "dongnai", "--to", "abc", "--text", "x") == 2
    assert "not a phone number" in capsys.readouterr().err


def test_given_sent_texts_when_report_then_per_tenant_table_and_json(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(settings, "send", "--tenant", "dongnai", "--to", "0909000111",
                "--text", NOTICE) == 0
    assert _run(settings, "send", "--tenant", "dongnai", "--to", "0909000112",
                "--text", "Hen gap lai") == 0
    box = SmsOutbox(settings.database_url)
    at = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)
    for m in box.claim_due(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), 10):
        assert m.claim_token is not None
        box.mark_sent(m.id, m.claim_token, at)
        if m.coding == "ucs2":
            box.mark_dlr(m.id, DLR_DELIVERED, at)
    box.close()
    capsys.readouterr()
    assert _run(settings, "report", "--month", "2026-11", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"month": "2026-11", "tenants": [
        {"tenant": "dongnai", "messages": 2, "parts": 3, "delivered": 1, "failed": 0}]}
    assert _run(settings, "report", "--month", "2026-11") == 0
    table = capsys.readouterr().out
    assert "dongnai" in table and "tổng" in table
    assert _run(settings, "report", "--month", "2026-13") == 2


def test_given_unmigrated_database_when_outbox_then_clear_error(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(settings, "outbox") == 2
    assert "migrated" in capsys.readouterr().err
