"""`callcenter report send ...` and `callcenter mail list` on a real SQLite database and a real
SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import argparse
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from openpyxl import load_workbook

from callcenter.cli import AREA_COMMANDS
from callcenter.config.settings import Settings
from callcenter.mail import cli as mail_cli
from callcenter.store.migrate import upgrade_head
from callcenter.tickets import cli as ticket_cli
from tests.support.smtp import SmtpServer
from tests.support.tickets import REPO


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def _settings(tmp_path: Path, smtp_port: int | None) -> Settings:
    """The shipped config, with mail: pointing at the test server and daily reports."""
    data = yaml.safe_load((REPO / "config" / "hotline.yaml").read_text(encoding="utf-8"))
    data.pop("mail", None)
    if smtp_port is not None:
        data["mail"] = {"host": "127.0.0.1", "port": smtp_port,
                        "from": "tongdai1022@dongnai.example"}
    data["tenants"][0]["reports"] = {"daily": {"at": "07:30",
                                               "to": ["vanphong@dongnai.example"]}}
    cfg_dir = tmp_path / "config"
    cfg_dir.mkdir()
    for extra in (REPO / "config").glob("ivr-*.yaml"):
        shutil.copy(extra, cfg_dir / extra.name)
    (cfg_dir / "hotline.yaml").write_text(yaml.safe_dump(data, allow_unicode=True),
                                          encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade_head(url)
    return Settings.from_env(state_dir=tmp_path, database_url=url,
                             config_path=cfg_dir / "hotline.yaml")


def _run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    sub = parser.add_subparsers(dest="command", required=True)
    ticket_cli.register(sub)
    mail_cli.register(sub)
    args = parser.parse_args(list(argv))
    return int(args.handler(args, settings))


def test_given_cli_when_built_then_mail_area_registered() -> None:
    assert "callcenter.mail.cli" in AREA_COMMANDS


def test_given_report_send_when_run_then_mail_arrives_and_outbox_lists_it(
        tmp_path: Path, smtp: SmtpServer, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path, smtp.port)
    assert _run(settings, "report", "send", "daily", "--tenant", "dongnai",
                "--date", "2026-12-06") == 0
    out = capsys.readouterr().out
    assert "Báo cáo ngày 06/12/2026" in out and "vanphong@dongnai.example: sent" in out
    (mail,) = smtp.mails
    assert mail.rcpt_tos == ["vanphong@dongnai.example"]
    (att,) = list(mail.message.iter_attachments())
    assert load_workbook(io.BytesIO(att.get_content())).sheetnames[0] == "Theo đơn vị"

    assert _run(settings, "report", "send", "monthly", "--tenant", "dongnai", "--date",
                "2026-11-15", "--to", "bcd@dongnai.example") == 0
    assert "Báo cáo tháng 11/2026" in capsys.readouterr().out
    assert smtp.mails[-1].rcpt_tos == ["bcd@dongnai.example"]

    assert _run(settings, "mail", "list") == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[0] == "sent: 2"
    assert "vanphong@dongnai.example" in listing
    assert _run(settings, "mail", "outbox", "--status", "sent", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["subject"] for m in data["mails"]] == [
        "[Tổng đài 1022 Đồng Nai] Báo cáo tháng 11/2026",
        "[Tổng đài 1022 Đồng Nai] Báo cáo ngày 06/12/2026"]
    assert "claim_token" not in data["mails"][0]


def test_given_no_recipients_when_report_send_then_usage_error(
        tmp_path: Path, smtp: SmtpServer, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path, smtp.port)
    assert _run(settings, "report", "send", "weekly", "--tenant", "dongnai") == 2
    assert "no recipients" in capsys.readouterr().err
    assert smtp.mails == []


def test_given_no_mail_section_when_report_send_then_error_and_nothing_queued(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path, None)
    assert _run(settings, "report", "send", "daily", "--tenant", "dongnai") == 2
    assert "no mail server" in capsys.readouterr().err
    assert _run(settings, "mail", "list") == 0
    assert capsys.readouterr().out.strip() == "outbox empty"
