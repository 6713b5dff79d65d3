"""`callcenter ticket ...` and `callcenter report ...` on a real (SQLite) database."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from callcenter.cli import AREA_COMMANDS
from callcenter.config.settings import Settings
from callcenter.store.migrate import upgrade_head
from callcenter.tickets import cli as ticket_cli
from tests.support.tickets import REPO, pdf_bytes


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
    out = capsys.readouterr().out.strip().splitlines()
    return dict(json.loads(out[-1]))


def test_given_cli_when_built_then_ticket_area_registered() -> None:
    assert "callcenter.tickets.cli" in AREA_COMMANDS


def test_given_operator_and_unit_when_workflow_by_hand_then_ticket_closed_and_reported(
        settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    op = ("--as", "operator:an")
    unit = ("--as", "unit:binh:phong_y_te_long_thanh")
    assert _run(settings, "ticket", "open", "--tenant", "dongnai", *op, "--field", "health",
                "--place", "long_thanh.an_phuoc", "--content", "Trạm y tế xã không có bác sĩ",
                "--phone", "0912 345 678", "--call", "pbx1:1.1", "--json") == 0
    code = str(_json(capsys)["code"])
    assert _run(settings, "ticket", "act", code, "forward", *op, "--json") == 0  # by the rules
    assert _json(capsys)["unit"] == "phong_y_te_long_thanh"
    assert _run(settings, "ticket", "act", code, "accept", "--as", "unit:x:so_y_te") == 1
    assert "ticket.forbidden" in capsys.readouterr().err
    assert _run(settings, "ticket", "act", code, "accept", *unit, "--expected-version",
                "1") == 0
    doc = tmp_path / "tra-loi.pdf"
    doc.write_bytes(pdf_bytes())
    assert _run(settings, "ticket", "attach", code, str(doc), *unit, "--json") == 0
    att = _json(capsys)
    assert att["content_type"] == "application/pdf"
    assert _run(settings, "ticket", "act", code, "resolve", *unit, "--result",
                "Đã bố trí bác sĩ", "--document", str(att["id"])) == 0
    assert _run(settings, "ticket", "act", code, "close", *op) == 0
    capsys.readouterr()
    assert _run(settings, "ticket", "show", code, *unit, "--json") == 0
    shown = _json(capsys)
    assert shown["ticket"]["state"] == "closed"  # type: ignore[index]
    assert len(shown["audit"]) == 6  # type: ignore[arg-type]
    assert _run(settings, "ticket", "list", "--as", "supervisor:lan", "--state", "closed",
                "--since", "2000-01-01") == 0
    assert code in capsys.readouterr().out
    received = datetime.fromisoformat(str(shown["ticket"]["received_at"]))  # type: ignore[index]
    local_day = received.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()
    xlsx, csv_path = tmp_path / "ngay.xlsx", tmp_path / "ngay.csv"
    assert _run(settings, "report", "daily", "--tenant", "dongnai", "--date", local_day,
                "--xlsx", str(xlsx), "--csv", str(csv_path), "--json") == 0
    report = _json(capsys)
    assert report["total"]["received"] == 1  # type: ignore[index]
    assert report["total"]["resolved_on_time"] == 1  # type: ignore[index]
    ws = load_workbook(xlsx)["Theo đơn vị"]
    assert ws.cell(row=ws.max_row, column=3).value == 1  # totals row: received
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens UTF-8 Vietnamese correctly
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[1][:4] == ["Tổng cộng", "", "Tổng cộng", "1"]


def test_given_open_tickets_when_sweep_and_lists_then_printed(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(settings, "ticket", "open", "--tenant", "dongnai", "--as", "operator:an",
                "--field", "transport", "--content", "Đèn tín hiệu hỏng", "--at",
                "2020-01-06T08:00:00+07:00", "--json") == 0
    code = str(_json(capsys)["code"])
    assert code == "DN-20200106-0001"
    assert _run(settings, "ticket", "act", code, "forward", "--as", "operator:an", "--at",
                "2020-01-06T08:05:00+07:00") == 0
    capsys.readouterr()
    assert _run(settings, "ticket", "sweep", "--json") == 0
    swept = _json(capsys)
    assert swept["late"] == [code]
    # Years late (2020): the shipped config chases the unit and escalates at once, once.
    assert swept["chased"] == [code] and swept["escalated"] == [code]
    assert _run(settings, "ticket", "sweep", "--json") == 0
    again = _json(capsys)
    assert again["late"] == [] and again["chased"] == [] and again["escalated"] == []
    assert _run(settings, "report", "late", "--tenant", "dongnai", "--json") == 0
    assert [r["code"] for r in json.loads(capsys.readouterr().out)] == [code]
    assert _run(settings, "report", "unprocessed", "--tenant", "dongnai") == 0
    assert code in capsys.readouterr().out
    assert _run(settings, "report", "league", "--tenant", "dongnai", "--week", "2020-W02",
                "--json") == 0
    league = {r["unit"]: r for r in json.loads(capsys.readouterr().out)}
    assert league["so_gtvt"]["late_open"] == 1 and league["so_gtvt"]["on_time_rate"] == 0.0


def test_given_operator_when_cli_opens_publishable_ticket_then_refused_and_nothing_recorded(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    opening = ("ticket", "open", "--tenant", "dongnai", "--field", "health", "--content",
               "Hỏi giờ tiêm chủng", "--answer", "Sáng thứ Tư hằng tuần", "--publishable", "yes")
    assert _run(settings, *opening, "--as", "operator:an") == 1
    err = capsys.readouterr().err
    assert "ticket.forbidden" in err and "giám sát viên hoặc quản trị viên" in err
    assert _run(settings, "ticket", "list", "--as", "supervisor:lan", "--json") == 0
    assert capsys.readouterr().out.strip() == ""  # nothing recorded
    assert _run(settings, *opening, "--as", "supervisor:lan", "--json") == 0
    assert _json(capsys)["publishable"] is True


@pytest.mark.parametrize(("argv", "code", "message"), [
    (("ticket", "list", "--as", "unit:binh"), 2, "needs the unit"),
    (("ticket", "list", "--as", "boss:x"), 2, "ROLE one of"),
    (("ticket", "open", "--tenant", "dongnai", "--as", "operator:an", "--field", "health",
      "--content", "x", "--at", "2026-11-23T10:00"), 2, "offset"),
    (("ticket", "show", "DN-20261123-0009", "--as", "operator:an"), 1, "ticket.not_found"),
    (("ticket", "open", "--tenant", "hanoi", "--as", "operator:an", "--field", "health",
      "--content", "x"), 1, "ticket.unknown_tenant"),
    (("report", "weekly", "--tenant", "dongnai", "--week", "2026-48"), 1, "report.bad_period"),
])
def test_given_bad_input_when_run_then_exit_code_and_message(
        settings: Settings, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
        code: int, message: str) -> None:
    assert _run(settings, *argv) == code
    assert message in capsys.readouterr().err


def test_given_unmigrated_database_when_listing_then_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = Settings.from_env(state_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}",
                          config_path=REPO / "config" / "hotline.yaml")
    assert _run(s, "ticket", "list", "--as", "operator:an") == 2
    assert "migrated" in capsys.readouterr().err


def test_given_lead_department_when_listing_by_hand_then_overseen_tickets_read_only(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    # Sở Y tế oversees the health group: a health ticket Long Thành's Phòng Y tế holds is in
    # its list, marked read only, with the holder and the holder's deadline; acting is refused.
    op = ("--as", "operator:an")
    yt = ("--as", "unit:binh:so_y_te")
    assert _run(settings, "ticket", "open", "--tenant", "dongnai", *op, "--field", "health",
                "--place", "long_thanh", "--content", "Trạm y tế không có bác sĩ", "--urgent",
                "--json") == 0
    code = str(_json(capsys)["code"])
    assert _run(settings, "ticket", "act", code, "forward", *op) == 0  # Phòng Y tế Long Thành
    assert _run(settings, "ticket", "open", "--tenant", "dongnai", *op, "--field", "transport",
                "--place", "long_thanh", "--content", "Đường ngập", "--json") == 0
    road = str(_json(capsys)["code"])
    assert _run(settings, "ticket", "list", *yt, "--tenant", "dongnai") == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(code))
    assert "phong_y_te_long_thanh" in row and "[chỉ xem]" in row and "còn" in row
    assert road not in out
    assert _run(settings, "ticket", "list", *yt, "--tenant", "dongnai", "--json") == 0
    item = _json(capsys)
    assert item["code"] == code and item["unit"] == "phong_y_te_long_thanh"
    assert item["resolve_due"] is not None and item["time_left_s"] <= 4 * 3600  # type: ignore
    for event in ("accept", "return", "close"):
        assert _run(settings, "ticket", "act", code, event, *yt, "--reason", "x") == 1
        assert "ticket.forbidden" in capsys.readouterr().err
    assert _run(settings, "ticket", "show", code, *yt, "--json") == 0
    assert _json(capsys)["ticket"]["state"] == "forwarded"  # type: ignore[index]
    assert _run(settings, "ticket", "oversight", *yt, "--tenant", "dongnai", "--json") == 0
    overview = _json(capsys)
    assert overview["unit"] == "so_y_te" and overview["total"] == 1
    assert overview["by_holder"] == [{"unit": "phong_y_te_long_thanh",  # type: ignore
                                      "by_state": {"forwarded": 1}, "late": 0, "total": 1}]
    assert _run(settings, "ticket", "oversight", *yt, "--tenant", "dongnai", "--unit",
                "ubnd_long_thanh") == 1
    assert "ticket.forbidden" in capsys.readouterr().err
    assert _run(settings, "ticket", "oversight", "--as", "supervisor:lan", "--tenant",
                "dongnai", "--unit", "ubnd_long_thanh") == 0
    assert "2 phiếu" in capsys.readouterr().out
