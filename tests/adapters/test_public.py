"""Public disclosure over HTTP (SQLite and PostgreSQL): only resolved, publishable tickets,
no names or phone numbers, filters, escaped HTML with Vietnamese labels, no auth needed."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from tests.support import api as support
from tests.support.api import Api

# Fixtures shared with the other API tests.
api = support.api
hotline_config = support.hotline_config

V1 = "/api/v1"
CONTENT = ("Tôi là Nguyễn Thị Hoa, số 0912 345 678, nhà ở 12 đường Lê Duẩn. Đường ĐT769 "
           "đoạn qua xã An Phước ngập sâu, <script>alert('x')</script> xe máy không qua được.")


async def _published(api: Api, *, field: str = "transport", unit: str = "ubnd_long_thanh",
                     content: str = CONTENT, publish: bool = True) -> dict[str, Any]:
    t = await api.open_ticket(field=field, place="long_thanh.an_phuoc", content=content,
                              citizen_name="Nguyễn Thị Hoa", citizen_phone="0912345678")
    code = t["code"]
    await api.act(code, "tdv.an", "forward", 0, unit=unit)
    holder = "ubnd.longthanh" if unit == "ubnd_long_thanh" else "syt.dongnai"
    await api.act(code, holder, "accept", 1)
    t = await api.act(code, holder, "resolve", 2,
                      result="Đã liên hệ bà Hoa qua số 0912345678; đã bơm thoát nước & "
                             "cắm biển cảnh báo <b>ngay</b>.")
    if publish:
        t = await api.act(code, "giamsat.binh", "publish", 3, publishable=True)
    return t


async def test_given_resolved_publishable_ticket_when_feed_read_then_no_name_or_phone(
        api: Api) -> None:
    shown = await _published(api)
    hidden = await _published(api, publish=False)
    still_open = await api.open_ticket()
    await api.act(still_open["code"], "giamsat.binh", "publish", 0, publishable=True)

    feed = await api.call("GET", "/public/dongnai/tickets.json", None, 200)
    assert feed["tenant"] == "dongnai" and feed["name"] == "Đồng Nai"
    assert [i["code"] for i in feed["items"]] == [shown["code"]]
    assert hidden["code"] not in str(feed) and still_open["code"] not in str(feed)
    text = str(feed)
    for personal in ("0912345678", "0912 345 678", "912345678", "Nguyễn Thị Hoa", "Hoa",
                     "12 đường Lê Duẩn"):
        assert personal not in text, personal
    assert not re.search(r"0\d[\d .]{7,}\d", text)
    item = feed["items"][0]
    assert "ĐT769" in item["question"] and "bơm thoát nước" in item["answer"]
    assert item["unit_name"] == "UBND huyện Long Thành"
    assert "citizen_phone" not in item and "citizen_name" not in item


async def test_given_operator_token_when_opening_answered_publishable_ticket_then_403_unpublished(
        api: Api) -> None:
    """Answered at once from the FAQ and publishable: public at once, so only a supervisor or an
    admin may ask for it; an operator's request is refused whole (no ticket recorded)."""
    body = {"channel": "phone", "content": "Hỏi giờ làm việc của bộ phận một cửa.",
            "field": "health", "answer": "Từ 7 giờ 30 đến 17 giờ các ngày làm việc.",
            "publishable": True}
    refused = await api.call("POST", f"{V1}/tickets", "tdv.an", 403, json=body)
    assert refused["error"]["id"] == "ticket.forbidden"
    assert "giám sát viên hoặc quản trị viên" in refused["error"]["message"]
    assert (await api.call("GET", f"{V1}/tickets", "giamsat.binh", 200))["total"] == 0
    assert (await api.call("GET", "/public/dongnai/tickets.json", None, 200))["items"] == []
    withheld = await api.open_ticket("tdv.an", publishable=False)  # keeping it off: allowed
    assert withheld["publishable"] is False
    shown = await api.call("POST", f"{V1}/tickets", "giamsat.binh", 201, json=body)
    feed = await api.call("GET", "/public/dongnai/tickets.json", None, 200)
    assert [i["code"] for i in feed["items"]] == [shown["code"]]


async def test_given_feed_when_filtered_by_field_unit_month_then_only_matching(
        api: Api) -> None:
    road = await _published(api)
    health = await _published(api, field="health", unit="so_y_te",
                              content="Trạm y tế thiếu thuốc hạ sốt cho trẻ em.")
    month = dt.datetime.fromisoformat(road["received_at"]).astimezone(
        dt.timezone(dt.timedelta(hours=7))).strftime("%Y-%m")
    cases = {
        "field=health": [health["code"]],
        "unit=ubnd_long_thanh": [road["code"]],
        f"month={month}": [health["code"], road["code"]],
        "month=2020-01": [],
        f"field=transport&unit=ubnd_long_thanh&month={month}": [road["code"]],
    }
    for query, codes in cases.items():
        feed = await api.call("GET", f"/public/dongnai/tickets.json?{query}", None, 200)
        assert [i["code"] for i in feed["items"]] == codes, query


@pytest.mark.parametrize(("query", "field"), [
    ("month=2026-13", "month"), ("month=nov", "month"), ("field=astrology", "field"),
    ("unit=so_xyz", "unit"), ("field=" + "x" * 100, "field"),
])
async def test_given_bad_filter_when_feed_read_then_422_names_it(
        api: Api, query: str, field: str) -> None:
    body = await api.call("GET", f"/public/dongnai/tickets.json?{query}", None, 422)
    assert body["error"]["details"]["field"] == field


async def test_given_unknown_tenant_when_public_read_then_404(api: Api) -> None:
    body = await api.call("GET", "/public/hanoi/tickets.json", None, 404)
    assert body["error"]["id"] == "tenant.not_found"
    body = await api.call("GET", "/public/hanoi/", None, 404)
    assert body["error"]["id"] == "tenant.not_found"


async def test_given_published_ticket_when_page_read_then_vietnamese_escaped_and_no_phone(
        api: Api) -> None:
    shown = await _published(api)
    resp = await api.client.get("/public/dongnai/")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    for label in ("Công khai kết quả giải quyết phản ánh, kiến nghị", "Lĩnh vực",
                  "Đơn vị giải quyết", "Tháng", "Lọc", "Nội dung phản ánh, kiến nghị",
                  "Kết quả giải quyết", "Tất cả", "Giao thông vận tải", "UBND huyện Long Thành"):
        assert label in html, label
    assert shown["code"] in html
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "<b>ngay</b>" not in html and "&lt;b&gt;ngay&lt;/b&gt;" in html
    assert "&amp; cắm biển" in html
    assert "0912345678" not in html and "Nguyễn Thị Hoa" not in html
    assert '<form method="get"' in html and 'name="month"' in html


async def test_given_page_with_filters_when_read_then_form_keeps_them_and_bad_ones_shown(
        api: Api) -> None:
    await _published(api)
    html = await api.call("GET", "/public/dongnai/?field=health&unit=&month=", None, 200)
    assert '<option value="health" selected>' in html
    assert "Không có phản ánh, kiến nghị nào phù hợp với bộ lọc." in html
    html = await api.call("GET", "/public/dongnai/?month=2026-99", None, 422)
    assert "Bộ lọc không hợp lệ" in html
