"""The disclosure review by hand: `ticket review`, `ticket act CODE publish --question
--answer`, `decline --reason`, on a real (SQLite) database and the shipped config (which
publishes nothing by itself)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from callcenter.config.settings import Settings
from callcenter.store.migrate import upgrade_head
from callcenter.tickets import cli as ticket_cli
from tests.support.tickets import REPO

SUP = ("--as", "supervisor:binh")
QUESTION = "Người dân hỏi lịch tiêm chủng mở rộng tại trạm y tế xã."
ANSWER = "Trạm y tế xã tiêm chủng vào sáng thứ Tư hằng tuần."


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade_head(url)
    return Settings.from_env(state_dir=tmp_path, database_url=url,
                             config_path=REPO / "config" / "hotline.yaml")


def _run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    ticket_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.handler(args, settings))


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    return dict(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))


def _answered(settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    assert _run(settings, "ticket", "open", "--tenant", "dongnai", "--as", "operator:an",
                "--field", "health", "--content", "Tôi là Trần Văn Bình, số 0912345678, hỏi "
                "lịch tiêm chủng.", "--name", "Trần Văn Bình", "--phone", "0912345678",
                "--answer", "Sáng thứ Tư hằng tuần, gọi 0912345678 nếu cần.", "--json") == 0
    t = _json(capsys)
    assert t["state"] == "answered" and t["publishable"] is False  # shipped config: nothing
    assert t["review"] == "pending"
    return str(t["code"])


def test_given_answered_ticket_when_published_by_cli_then_edited_texts_and_audit(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code = _answered(settings, capsys)
    assert _run(settings, "ticket", "review", "--tenant", "dongnai", *SUP, "--json") == 0
    (item,) = _json(capsys)["items"]  # type: ignore[misc]
    assert item["code"] == code
    assert "0912345678" not in json.dumps(item) and "Trần Văn Bình" not in json.dumps(item)

    assert _run(settings, "ticket", "act", code, "publish", *SUP, "--question", QUESTION,
                "--answer", ANSWER, "--json") == 0
    t = _json(capsys)
    assert (t["publishable"], t["review"]) == (True, "published")
    assert (t["public_question"], t["public_answer"]) == (QUESTION, ANSWER)
    assert str(t["content"]).startswith("Tôi là Trần Văn Bình")  # the original stays

    assert _run(settings, "ticket", "show", code, *SUP, "--json") == 0
    audit = _json(capsys)["audit"]
    assert any("-[publish]-> answered by supervisor:binh" in line
               and f"answer edited: «{ANSWER}»" in line for line in audit)  # type: ignore[union-attr]
    assert _run(settings, "ticket", "review", "--tenant", "dongnai", *SUP, "--json") == 0
    assert _json(capsys)["items"] == []


def test_given_answered_ticket_when_declined_by_cli_then_reason_and_not_public(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code = _answered(settings, capsys)
    assert _run(settings, "ticket", "act", code, "decline", *SUP) == 2  # needs --reason
    assert "--reason" in capsys.readouterr().err
    assert _run(settings, "ticket", "act", code, "decline", *SUP, "--reason",
                "Câu hỏi cá nhân", "--json") == 0
    t = _json(capsys)
    assert (t["review"], t["decline_reason"]) == ("declined", "Câu hỏi cá nhân")
    assert _run(settings, "ticket", "review", "--tenant", "dongnai", *SUP, "--status",
                "declined", "--json") == 0
    assert [i["code"] for i in _json(capsys)["items"]] == [code]  # type: ignore[union-attr]


def test_given_operator_or_citizens_phone_when_publish_by_cli_then_refused(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code = _answered(settings, capsys)
    assert _run(settings, "ticket", "act", code, "publish", "--as", "operator:an") == 1
    assert "ticket.forbidden" in capsys.readouterr().err
    assert _run(settings, "ticket", "review", "--tenant", "dongnai", "--as",
                "operator:an") == 1
    assert "ticket.forbidden" in capsys.readouterr().err
    assert _run(settings, "ticket", "act", code, "publish", *SUP, "--answer",
                "Gọi 0912 345 678.") == 1
    assert "ticket.personal_data" in capsys.readouterr().err
