"""Reports over HTTP (SQLite and PostgreSQL): JSON figures, CSV and xlsx downloads that hold
the same rows, lists of unprocessed and late tickets, the league table; roles and tenants."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from tests.support import api as support
from tests.support.api import Api

# Fixtures shared with the other API tests.
api = support.api
hotline_config = support.hotline_config

V1 = "/api/v1"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _today() -> str:
    return dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()


async def _day_of_tickets(api: Api) -> list[str]:
    """Three tickets today: one answered at level 1, one with Sở Y tế, one not yet forwarded."""
    faq = await api.open_ticket(answer="Xem hướng dẫn trên cổng dịch vụ công.",
                                field="admin_procedures")
    fwd = await api.open_ticket()
    await api.act(fwd["code"], "tdv.an", "forward", 0, unit="so_y_te")
    new = await api.open_ticket(field="transport", place="bien_hoa")
    return [faq["code"], fwd["code"], new["code"]]


async def test_given_tickets_today_when_daily_report_read_then_figures_add_up(
        api: Api) -> None:
    await _day_of_tickets(api)
    report = await api.call("GET", f"{V1}/reports/daily?date={_today()}", "giamsat.binh", 200)
    assert report["tenant"] == "dongnai" and report["period"]["label"] == _today()
    total = report["total"]
    assert (total["received"], total["answered_l1"], total["forwarded"],
            total["still_open"]) == (3, 1, 1, 2)
    by_unit = {r["unit"]: r["received"] for r in report["by_unit"]}
    assert by_unit["so_y_te"] == 1
    default_day = await api.call("GET", f"{V1}/reports/daily", "quantri", 200)
    assert default_day["total"] == total


async def test_given_daily_report_when_downloaded_as_csv_and_xlsx_then_same_rows(
        api: Api) -> None:
    await _day_of_tickets(api)
    resp = await api.client.get(f"{V1}/reports/daily?date={_today()}&format=csv",
                                headers=api.auth("giamsat.binh"))
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    raw = await resp.read()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Nhóm", "Mã", "Tên", "Tiếp nhận"]
    assert rows[1][2] == "Tổng cộng" and rows[1][3] == "3"

    resp = await api.client.get(f"{V1}/reports/daily?date={_today()}&format=xlsx",
                                headers=api.auth("giamsat.binh"))
    assert resp.status == 200 and resp.content_type == XLSX
    wb = load_workbook(io.BytesIO(await resp.read()))
    assert wb.sheetnames == ["Theo đơn vị", "Theo lĩnh vực"]
    values = [[c for c in row] for row in wb["Theo đơn vị"].iter_rows(values_only=True)]
    totals = next(r for r in values if r and "Tổng cộng" in r)
    assert 3 in totals


async def test_given_forwarded_ticket_when_unprocessed_and_late_lists_read_then_listed(
        api: Api) -> None:
    codes = await _day_of_tickets(api)
    listed = await api.call("GET", f"{V1}/reports/unprocessed", "giamsat.binh", 200)
    assert [r["code"] for r in listed["items"]] == [codes[1]]
    assert listed["items"][0]["unit"] == "so_y_te"
    only = await api.call("GET", f"{V1}/reports/unprocessed?unit=ubnd_long_thanh",
                          "giamsat.binh", 200)
    assert only["items"] == []
    late = await api.call("GET", f"{V1}/reports/late", "giamsat.binh", 200)
    assert late["items"] == []  # nothing is past 24 h yet
    resp = await api.client.get(f"{V1}/reports/unprocessed?format=xlsx",
                                headers=api.auth("quantri"))
    wb = load_workbook(io.BytesIO(await resp.read()))
    cells = [c for row in wb.active.iter_rows(values_only=True) for c in row if c]
    assert codes[1] in cells and "Mã phản ánh" in cells


async def test_given_tickets_when_league_read_then_units_ranked_for_the_month(
        api: Api) -> None:
    await _day_of_tickets(api)
    league = await api.call("GET", f"{V1}/reports/league", "giamsat.binh", 200)
    assert league["period"]["kind"] == "month"
    assert "so_y_te" in {r["unit"] for r in league["items"]}
    week = dt.date.fromisoformat(_today()).isocalendar()
    weekly = await api.call("GET", f"{V1}/reports/weekly?week={week[0]}-W{week[1]:02d}",
                            "giamsat.binh", 200)
    assert weekly["total"]["received"] == 3
    resp = await api.client.get(f"{V1}/reports/league?format=csv", headers=api.auth("quantri"))
    text = (await resp.read()).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Hạng,Đơn vị")


async def test_given_tickets_when_monthly_and_quarterly_read_then_same_figures_and_xlsx(
        api: Api) -> None:
    await _day_of_tickets(api)
    today = dt.date.fromisoformat(_today())
    month = await api.call("GET", f"{V1}/reports/monthly", "giamsat.binh", 200)
    assert month["period"]["kind"] == "month" and month["period"]["label"] == f"{today:%Y-%m}"
    assert month["total"]["received"] == 3
    quarter = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    body = await api.call("GET", f"{V1}/reports/quarterly?quarter={quarter}", "giamsat.binh",
                          200)
    assert body["period"]["kind"] == "quarter" and body["total"]["received"] == 3
    resp = await api.client.get(f"{V1}/reports/quarterly?format=xlsx",
                                headers=api.auth("giamsat.binh"))
    assert resp.status == 200 and resp.content_type == XLSX
    assert f"bao-cao-quy-dongnai-{quarter}.xlsx" in resp.headers["Content-Disposition"]
    wb = load_workbook(io.BytesIO(await resp.read()))
    assert "quý" in str(wb["Theo đơn vị"]["A1"].value)


@pytest.mark.parametrize(("path", "status", "error_id"), [
    ("/reports/quarterly?quarter=2026-Q5", 422, "request.invalid"),
    ("/reports/monthly?month=2026-13", 422, "request.invalid"),
    ("/reports/daily?date=2026-02-30", 422, "request.invalid"),
    ("/reports/daily?format=pdf", 422, "request.invalid"),
    ("/reports/weekly?week=2026-W99", 422, "report.bad_period"),
    ("/reports/league?month=2026-11&week=2026-W48", 422, "request.invalid"),
    ("/reports/late?tenant=thanhhoa", 403, "auth.forbidden"),
])
async def test_given_bad_report_query_when_read_then_error_with_id(
        api: Api, path: str, status: int, error_id: str) -> None:
    body = await api.call("GET", V1 + path, "giamsat.binh", status)
    assert body["error"]["id"] == error_id
