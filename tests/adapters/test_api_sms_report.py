"""The SMS billing report over HTTP: JSON, xlsx download, quarter, roles and tenants."""

from __future__ import annotations

import datetime as dt
import io

from openpyxl import load_workbook

from callcenter.sms.store import DLR_DELIVERED, SmsOutbox
from tests.support import api as support
from tests.support.api import Api

api = support.api
hotline_config = support.hotline_config

URL = "/api/v1/reports/sms"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NOTICE = "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!"
AT = dt.datetime(2026, 11, 30, 17, 30, tzinfo=dt.UTC)  # 01/12 00:30 in Vietnam


def _texts(database_url: str) -> None:
    """A delivered citizen notice (2 parts) and an official's notice (1 part), December."""
    box = SmsOutbox(database_url)
    try:
        for n, (purpose, text) in enumerate((("resolve_notice", NOTICE),
                                             ("unit_notice", "DN-20261201-0001 chuyen")), 1):
            box.enqueue(tenant="dongnai", to_number=f"090900000{n}", text=text,
                        purpose=purpose, dedupe_key=f"k{n}", now=AT)
        for m in box.claim_due(AT, 10):
            assert m.claim_token is not None
            box.mark_sent(m.id, m.claim_token, AT)
            box.mark_dlr(m.id, DLR_DELIVERED, AT)
    finally:
        box.close()


async def test_given_texts_when_supervisor_reads_sms_report_then_parts_per_audience(
        api: Api, database_url: str) -> None:
    _texts(database_url)
    body = await api.call("GET", f"{URL}?month=2026-12", "giamsat.binh", 200)
    assert {x["audience"]: x["parts"] for x in body["totals"]} == {
        "citizen": 2, "official": 1, "other": 0}
    nov = await api.call("GET", f"{URL}?month=2026-11", "quantri", 200)
    assert nov["total"]["parts"] == 0  # 30/11 17:30 UTC is already December locally
    q = await api.call("GET", f"{URL}?quarter=2026-Q4", "quantri", 200)
    assert q["period"]["months"] == ["2026-10", "2026-11", "2026-12"]
    assert q["total"]["parts"] == 3


async def test_given_sms_report_when_downloaded_as_xlsx_then_vietnamese_sheet(
        api: Api, database_url: str) -> None:
    _texts(database_url)
    resp = await api.client.get(f"{URL}?quarter=2026-Q4&format=xlsx",
                                headers=api.auth("giamsat.binh"))
    assert resp.status == 200 and resp.content_type == XLSX
    assert "tin-nhan-sms-dongnai-2026-Q4.xlsx" in resp.headers["Content-Disposition"]
    ws = load_workbook(io.BytesIO(await resp.read()))["Tin nhắn SMS"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[3][1] == "Đối tượng nhận"
    assert ("12/2026", "Người dân", 1, 2) == rows[4 + 6][:4]


async def test_given_operator_unit_or_other_tenant_when_sms_report_then_403(
        api: Api) -> None:
    for user in ("tdv.an", "syt.dongnai"):
        body = await api.call("GET", f"{URL}?month=2026-11", user, 403)
        assert body["error"]["id"] == "auth.forbidden"
    body = await api.call("GET", f"{URL}?month=2026-11&tenant=thanhhoa", "giamsat.binh", 403)
    assert body["error"]["id"] == "auth.forbidden"
    await api.call("GET", URL, None, 401)


async def test_given_bad_period_when_sms_report_then_422(api: Api) -> None:
    for query in ("month=2026-13", "quarter=2026-Q5", "month=2026-11&quarter=2026-Q4"):
        body = await api.call("GET", f"{URL}?{query}", "giamsat.binh", 422)
        assert body["error"]["id"] == "request.invalid", body
