"""The console's call list (SQLite and PostgreSQL): one local day of the tenant's call records
(stored in UTC), outcome and operator filters, paging, the xlsx export; supervisors and
admins only."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest

from callcenter.store.data import CallRecordData
from callcenter.store.records import CallRecordStore
from tests.support import api as api_support
from tests.support import lists as support
from tests.support.lists import Lists, field_error, xlsx_headers, xlsx_rows

hotline_config = api_support.hotline_config
lists = support.lists

UTC = dt.UTC


def record(n: int, arrived: dt.datetime, **overrides: Any) -> CallRecordData:
    """A call record with an IVR path, an operator, a transfer and a recording."""
    values: dict[str, Any] = {
        "id": f"pbx1:1763800000.{n}", "node": "pbx1", "tenant": "dongnai", "dialled": "1022",
        "caller": f"09{n:08d}", "shift": "day", "pool_limit": 15, "arrived_at": arrived,
        "answered_at": arrived + dt.timedelta(seconds=2),
        "ended_at": arrived + dt.timedelta(seconds=200), "outcome": "answered",
        "cause": "16 Normal Clearing", "cause_code": 16, "linkedid": f"1763800000.{n}",
        "ivr_path": [{"at": arrived.isoformat(), "event": "enter", "node": "main"},
                     {"at": arrived.isoformat(), "event": "digit", "node": "main",
                      "digit": "2"},
                     {"at": arrived.isoformat(), "event": "enter", "node": "health"},
                     {"at": arrived.isoformat(), "event": "operator", "node": "health"}],
        "operator": "101", "queued_at": arrived + dt.timedelta(seconds=20),
        "bridged_at": arrived + dt.timedelta(seconds=32),
        "talk_ended_at": arrived + dt.timedelta(seconds=152),
        "recording": "2026/11/22/pbx1-1763800000.1.wav",
        "transfers": [{"at": arrived.isoformat(), "by": "101", "unit": "so_y_te",
                       "number": "02513822222", "kind": "blind", "answered": True,
                       "result": "completed"}],
    }
    values.update(overrides)
    return CallRecordData(**values)


@pytest.fixture
def records(database_url: str, lists: Lists) -> Iterator[CallRecordStore]:
    """The call-record store on the console's (migrated) database."""
    store = CallRecordStore(database_url)
    yield store
    store.close()


def calls_in(page: str) -> list[str]:
    return re.findall(r'<tr data-call="([^"]+)"', page)


# 23:30 on the 22nd in Đồng Nai is 16:30 UTC on the 22nd; 00:10 on the 23rd is 17:10 UTC.
LATE_22 = dt.datetime(2026, 11, 22, 16, 30, 5, tzinfo=UTC)
EARLY_23 = dt.datetime(2026, 11, 22, 17, 10, 0, tzinfo=UTC)


async def test_given_calls_around_local_midnight_when_listed_by_day_then_local_days(
        lists: Lists, records: CallRecordStore) -> None:
    records.insert_once(record(1, LATE_22))
    records.insert_once(record(2, EARLY_23, outcome="abandoned", operator=None,
                               bridged_at=None, talk_ended_at=None, transfers=None,
                               recording=None))
    records.insert_once(record(3, EARLY_23, tenant="thanhhoa"))  # another province
    client = await lists.client("giamsat.binh")

    page = await (await client.get("/console/calls?day=2026-11-22")).text()
    assert calls_in(page) == ["pbx1:1763800000.1"]
    assert "22/11/2026 23:30:05" in page  # local, with seconds
    assert "main → health" in page and "so_y_te (thành công)" in page
    assert "pbx1-1763800000.1.wav" in page and "Đã phục vụ" in page
    row = page[page.index('data-call="pbx1:1763800000.1"'):]
    assert re.search(r"<td>12</td>\s*<td>120</td>\s*<td>101</td>", row)  # wait, talk, op

    page = await (await client.get("/console/calls")).text()  # today: the 23rd (noon local)
    assert calls_in(page) == ["pbx1:1763800000.2"] and "Cuộc gọi ngày 23/11/2026" in page
    assert 'data-outcome="abandoned">Bỏ máy' in page

    page = await (await client.get("/console/calls?day=2026-11-23&outcome=answered")).text()
    assert calls_in(page) == []
    page = await (await client.get("/console/calls?day=2026-11-22&operator=102")).text()
    assert calls_in(page) == []
    page = await (await client.get("/console/calls?day=2026-11-22&operator=101")).text()
    assert calls_in(page) == ["pbx1:1763800000.1"]

    resp = await client.get("/console/calls.xlsx?day=2026-11-22")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == \
        'attachment; filename="cuoc-goi-dongnai-2026-11-22.xlsx"'
    data = await resp.read()
    headers = xlsx_headers(data)
    rows = xlsx_rows(data)
    assert len(rows) == 1
    got = dict(zip(headers, rows[0], strict=True))
    assert got["Thời điểm gọi đến"] == dt.datetime(2026, 11, 22, 23, 30, 5)
    assert got["Giờ gọi đến (giây)"] == "23:30:05"
    assert (got["Số gọi đến"], got["Kết quả"], got["Chờ (giây)"], got["Đàm thoại (giây)"]) == \
        ("0900000001", "Đã phục vụ", 12, 120)
    assert got["Mã cuộc gọi"] == "pbx1:1763800000.1"


async def test_given_bad_filters_then_vietnamese_field_errors(lists: Lists) -> None:
    client = await lists.client("quantri")
    resp = await client.get("/console/calls?day=22/11/2026&outcome=lost&operator=a%20b")
    page = await resp.text()
    assert resp.status == 422
    assert field_error(page, "day") == "Ngày không hợp lệ (dd/mm/yyyy, năm 2000–2100)."
    assert field_error(page, "outcome") and field_error(page, "operator")
    resp = await client.get("/console/calls.xlsx?day=2026-13-01")
    assert resp.status == 422


async def test_given_extreme_days_then_422_with_field_error_not_a_crash(lists: Lists) -> None:
    client = await lists.client("quantri")
    for day in ("9999-12-31", "0001-01-01", "1999-12-31", "2101-01-01"):
        resp = await client.get(f"/console/calls?day={day}")
        page = await resp.text()
        assert resp.status == 422, (day, page[:300])
        assert field_error(page, "day") == "Ngày không hợp lệ (dd/mm/yyyy, năm 2000–2100)."
        assert (await client.get(f"/console/calls.xlsx?day={day}")).status == 422
    for day in ("2000-01-01", "2100-12-31"):  # the edges are days like any other
        assert (await client.get(f"/console/calls?day={day}")).status == 200


async def test_given_55_calls_in_a_day_when_paged_then_50_then_5(
        lists: Lists, records: CallRecordStore) -> None:
    start = dt.datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    for n in range(55):
        records.insert_once(record(100 + n, start + dt.timedelta(minutes=n)))
    client = await lists.client("giamsat.binh")
    page = await (await client.get("/console/calls?day=2026-11-23")).text()
    assert len(calls_in(page)) == 50 and 'data-total="55"' in page
    nxt = re.search(r'<a href="([^"]+)" rel="next">Trang sau</a>', page)
    assert nxt is not None
    page = await (await client.get(html.unescape(nxt[1]))).text()
    assert calls_in(page) == [f"pbx1:1763800000.{100 + n}" for n in range(50, 55)]
    data = await (await client.get("/console/calls.xlsx?day=2026-11-23")).read()
    assert len(xlsx_rows(data)) == 55
