"""The SMS billing report on a real database: audiences, statuses, parts and the local month
boundary (Asia/Ho_Chi_Minh), the xlsx read back, and `callcenter sms report --tenant`."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook

from callcenter.config.settings import Settings
from callcenter.sms import cli as sms_cli
from callcenter.sms.billing import billing_period
from callcenter.sms.billing_tables import billing_table
from callcenter.sms.store import DLR_DELIVERED, DLR_UNDELIVERED, SmsOutbox
from callcenter.store.migrate import upgrade_head
from callcenter.tickets.reports import xlsx_bytes

TZ = "Asia/Ho_Chi_Minh"
NOTICE = "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!"
SHORT = "DN-20261130-0001: chuyen So Y te"  # GSM-7, one part
# 30/11 23:30 and 01/12 00:30 in Vietnam: November and December locally, both 30/11 in UTC.
LATE_NOV = dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC)
EARLY_DEC = dt.datetime(2026, 11, 30, 17, 30, tzinfo=dt.UTC)
MID_OCT = dt.datetime(2026, 10, 15, 3, 0, tzinfo=dt.UTC)


@pytest.fixture
def outbox(database_url: str) -> Iterator[SmsOutbox]:
    upgrade_head(database_url)
    box = SmsOutbox(database_url)
    yield box
    box.close()


def _sent(box: SmsOutbox, n: int, purpose: str, text: str, at: dt.datetime, *,
          tenant: str = "dongnai", dlr: int | None = None, claim: bool = True) -> None:
    """One message: queued at ``at``, accepted by the gateway at ``at``, then its report."""
    msg_id = box.enqueue(tenant=tenant, to_number=f"09090{n:05d}", text=text, purpose=purpose,
                         dedupe_key=f"{purpose}:{n}", now=at - dt.timedelta(minutes=1))
    assert msg_id is not None
    if not claim:
        return
    (m,) = [m for m in box.claim_due(at, 100) if m.id == msg_id]
    assert m.claim_token is not None
    assert box.mark_sent(m.id, m.claim_token, at)
    if dlr is not None:
        box.mark_dlr(m.id, dlr, at + dt.timedelta(seconds=5))


def _fill(box: SmsOutbox) -> None:
    _sent(box, 1, "resolve_notice", NOTICE, LATE_NOV, dlr=DLR_DELIVERED)   # citizen, 2 parts
    _sent(box, 2, "resolve_notice", NOTICE, EARLY_DEC)                      # citizen, Dec
    _sent(box, 3, "resolve_notice", NOTICE, LATE_NOV, dlr=DLR_UNDELIVERED)  # failed: unbilled
    _sent(box, 4, "unit_notice", SHORT, LATE_NOV, dlr=DLR_DELIVERED)        # official, 1 part
    _sent(box, 5, "reminder", NOTICE, MID_OCT)                              # official, Oct
    _sent(box, 6, "test", SHORT, LATE_NOV)                                  # other
    _sent(box, 7, "resolve_notice", NOTICE, LATE_NOV, claim=False)          # queued: nothing
    _sent(box, 8, "resolve_notice", NOTICE, LATE_NOV, tenant="thanhhoa")    # other tenant


def test_given_outbox_when_month_report_then_local_month_parts_per_audience(
        outbox: SmsOutbox) -> None:
    _fill(outbox)
    nov = outbox.billing_report("dongnai", billing_period("2026-11"), TZ)
    cell = {x.audience: x for x in nov.months}
    c = cell["citizen"]
    assert (c.messages, c.parts, c.delivered_parts, c.failed_messages, c.failed_parts) == (
        1, 2, 2, 1, 2)
    assert (cell["official"].messages, cell["official"].parts) == (1, 1)
    assert (cell["other"].messages, cell["other"].parts) == (1, 1)
    assert (nov.total.messages, nov.total.parts) == (3, 4)

    dec = outbox.billing_report("dongnai", billing_period("2026-12"), TZ)
    assert {x.audience: x.parts for x in dec.months} == {"citizen": 2, "official": 0,
                                                         "other": 0}


def test_given_outbox_when_quarter_report_then_months_and_totals(outbox: SmsOutbox) -> None:
    _fill(outbox)
    q4 = outbox.billing_report("dongnai", billing_period(quarter="2026-Q4"), TZ)
    per_month = {(x.month, x.audience): x.parts for x in q4.months}
    assert per_month[("2026-10", "official")] == 2  # the reminder, 2 parts
    assert per_month[("2026-11", "citizen")] == 2 and per_month[("2026-12", "citizen")] == 2
    assert {x.audience: x.parts for x in q4.totals} == {"citizen": 4, "official": 3,
                                                        "other": 1}
    assert q4.total.parts == 8


def test_given_quarter_report_when_xlsx_then_vietnamese_headers_and_same_figures(
        outbox: SmsOutbox) -> None:
    _fill(outbox)
    report = outbox.billing_report("dongnai", billing_period(quarter="2026-Q4"), TZ)
    now = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
    wb = load_workbook(io.BytesIO(xlsx_bytes([billing_table(report, "Đồng Nai", now)])))
    ws = wb["Tin nhắn SMS"]
    rows = [r for r in ws.iter_rows(values_only=True)]
    assert "quý IV/2026" in rows[0][0] and "Đồng Nai" in rows[0][0]
    assert rows[3][:4] == ("Tháng", "Đối tượng nhận", "Số tin nhắn tính cước",
                           "Số phần tin tính cước")
    body = {(r[0], r[1]): r[2:] for r in rows[4:]}
    assert body[("11/2026", "Người dân")][:2] == (1, 2)
    assert body[("Cả kỳ", "Cán bộ (đầu mối, lãnh đạo đơn vị)")][:2] == (2, 3)
    assert body[("Cả kỳ", "Tổng cộng")][:2] == (5, 8)
    assert len(rows) == 4 + 9 + 3 + 1


def _run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    sms_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sms", *argv])
    return int(args.handler(args, settings))


def test_given_outbox_when_cli_report_for_tenant_then_json_table_and_xlsx(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    settings = Settings.from_env(state_dir=tmp_path, database_url=url)
    upgrade_head(url)
    box = SmsOutbox(url)
    try:
        _fill(box)
    finally:
        box.close()
    assert _run(settings, "report", "--tenant", "dongnai", "--month", "2026-11",
                "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["period"]["months"] == ["2026-11"]
    assert {x["audience"]: x["parts"] for x in out["totals"]} == {
        "citizen": 2, "official": 1, "other": 1}
    xlsx = tmp_path / "q4.xlsx"
    assert _run(settings, "report", "--tenant", "dongnai", "--quarter", "2026-Q4",
                "--xlsx", str(xlsx)) == 0
    text = capsys.readouterr().out
    assert "quý IV/2026" in text and "người dân" in text
    assert load_workbook(xlsx).sheetnames == ["Tin nhắn SMS"]
    assert _run(settings, "report", "--tenant", "nowhere", "--month", "2026-11") == 2
    assert "unknown tenant" in capsys.readouterr().err
    assert _run(settings, "report", "--quarter", "2026-Q4") == 2  # needs --tenant
    assert _run(settings, "report", "--tenant", "dongnai", "--quarter", "2026-Q9") == 2
