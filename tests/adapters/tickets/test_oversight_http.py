"""Oversight over HTTP (SQLite and PostgreSQL): the API lists overseen tickets read only and
refuses every action (403), ``GET /api/v1/oversight``; the console list marks them "chỉ
xem", the ticket page has no forms, and ``/console/oversight`` shows late tickets first, then
counts by state and holder (Sở Y tế oversees the health group, UBND Long Thành its district)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from aiohttp import FormData

from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.tickets.rules import Actor, Forward
from tests.support import api as api_support
from tests.support import lists as lists_support
from tests.support.api import CONFIG, PDF, Api
from tests.support.lists import T0, Lists, codes_in

api = api_support.api
lists = lists_support.lists
V1 = "/api/v1"
OP = Actor("tdv.an", "operator")
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


@pytest.fixture
def hotline_config(tmp_path: Path) -> HotlineConfig:
    """The API tests' config with oversight: Sở Y tế the health group, Long Thành its district."""
    text = CONFIG.replace(
        '      - {id: so_y_te, name: "Sở Y tế", kind: department,\n',
        '      - {id: so_y_te, name: "Sở Y tế", kind: department,\n'
        '         oversees: {groups: [health]},\n').replace(
        "         places: [long_thanh],\n", "         places: [long_thanh],\n"
        "         oversees: {places: [long_thanh]},\n", 1)
    assert text.count("oversees:") == 2, text
    path = tmp_path / "hotline.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


# ---- the API ----------------------------------------------------------------------------------
async def _tickets(api: Api) -> dict[str, str]:
    held = await api.open_ticket()  # health in Long Thành (An Phước)
    await api.act(held["code"], "tdv.an", "forward", 0, unit="vp_ubnd_tinh")
    road = await api.open_ticket(field="transport", place="bien_hoa")
    await api.act(road["code"], "tdv.an", "forward", 0, unit="vp_ubnd_tinh")
    answered = await api.open_ticket(field="suspected_infection", place="bien_hoa",
                                     answer="Liên hệ trạm y tế phường.")
    return {"held": held["code"], "road": road["code"], "answered": answered["code"]}


async def test_given_overseen_tickets_when_unit_lists_then_read_only_with_holders_deadline(
        api: Api) -> None:
    codes = await _tickets(api)
    seen = await api.call("GET", f"{V1}/tickets", "syt.dongnai", 200)
    assert {x["code"] for x in seen["items"]} == {codes["held"], codes["answered"]}
    assert seen["total"] == 2
    sup = await api.call("GET", f"{V1}/tickets/{codes['held']}", "giamsat.binh", 200)
    mine = next(x for x in seen["items"] if x["code"] == codes["held"])
    assert mine["unit"] == "vp_ubnd_tinh" and mine["resolve_due"] == sup["resolve_due"]
    lt = await api.call("GET", f"{V1}/tickets", "ubnd.longthanh", 200)
    assert [x["code"] for x in lt["items"]] == [codes["held"]]
    by_holder = await api.call("GET", f"{V1}/tickets?unit=vp_ubnd_tinh", "syt.dongnai", 200)
    assert [x["code"] for x in by_holder["items"]] == [codes["held"]]


async def test_given_overseer_when_reading_then_200_and_when_acting_then_403(api: Api) -> None:
    codes = await _tickets(api)
    code = codes["held"]
    form = FormData()
    form.add_field("file", PDF, filename="anh.pdf", content_type="application/pdf")
    att = await api.call("POST", f"{V1}/tickets/{code}/attachments", "tdv.an", 201, data=form)
    for path in (f"/tickets/{code}", f"/tickets/{code}/audit", f"/tickets/{code}/attachments"):
        await api.call("GET", V1 + path, "syt.dongnai", 200)
    resp = await api.client.get(f"{V1}/tickets/{code}/attachments/{att['id']}",
                                headers=api.auth("syt.dongnai"))
    assert resp.status == 200 and await resp.read() == PDF
    for action, body in (("accept", {}), ("resolve", {"result": "xong"}),
                         ("return", {"reason": "không thuộc thẩm quyền"}),
                         ("forward", {"unit": "so_y_te"}), ("close", {"reason": "trùng"}),
                         ("reopen", {"reason": "chưa thỏa đáng"}), ("answer", {"answer": "x"}),
                         ("reclassify", {"urgent": True}), ("publish", {})):
        for target in (code, codes["answered"]):
            got = await api.call("POST", f"{V1}/tickets/{target}/actions", "syt.dongnai", 403,
                                 json={"action": action, "version": 1, **body})
            assert got["error"]["id"] == "ticket.forbidden", (action, target, got)
    form = FormData()
    form.add_field("file", PDF, filename="x.pdf", content_type="application/pdf")
    got = await api.call("POST", f"{V1}/tickets/{code}/attachments", "syt.dongnai", 403,
                         data=form)
    assert got["error"]["id"] == "ticket.forbidden"
    after = await api.call("GET", f"{V1}/tickets/{code}", "giamsat.binh", 200)
    assert (after["state"], after["version"], after["unit"]) == ("forwarded", 1, "vp_ubnd_tinh")
    # Not overseen, never held: as before, 403.
    await api.call("GET", f"{V1}/tickets/{codes['road']}", "syt.dongnai", 403)


async def test_given_roles_when_asking_the_oversight_overview_then_own_unit_or_chosen(
        api: Api) -> None:
    codes = await _tickets(api)
    o = await api.call("GET", f"{V1}/oversight", "syt.dongnai", 200)
    assert o["unit"] == "so_y_te" and o["total"] == 2 and o["late"] == []
    assert o["fields"] == ["health", "prices_fraud", "suspected_infection"]
    assert o["by_state"]["forwarded"] == 1 and o["by_state"]["answered"] == 1
    assert {h["unit"] for h in o["by_holder"]} == {"vp_ubnd_tinh", None}
    body = await api.call("GET", f"{V1}/oversight?unit=ubnd_long_thanh", "syt.dongnai", 403)
    assert body["error"]["id"] == "ticket.forbidden"
    body = await api.call("GET", f"{V1}/oversight", "tdv.an", 403)
    assert body["error"]["id"] == "auth.forbidden"
    body = await api.call("GET", f"{V1}/oversight", "giamsat.binh", 422)
    district = await api.call("GET", f"{V1}/oversight?unit=ubnd_long_thanh", "giamsat.binh", 200)
    assert district["districts"] == ["long_thanh"] and district["total"] == 1
    assert codes["held"] not in {x["code"] for x in district["late"]}


# ---- the console ------------------------------------------------------------------------------
def _open(lists: Lists, field: str, place: str | None, unit: str | None,
          at: dt.datetime) -> str:
    svc = lists.service
    t = svc.open("dongnai", OP, channel="phone", content=f"Phản ánh {field}", field=field,
                 place=place, citizen_phone="0912345678", at=at)
    if unit is not None:
        svc.act(t.code, OP, Forward(at + M, OP, unit))
    return t.code


async def test_given_overseer_when_console_list_and_ticket_page_then_marked_and_no_forms(
        lists: Lists) -> None:
    late = _open(lists, "health", "long_thanh.an_phuoc", "ubnd_long_thanh", T0 - 30 * H)
    own = _open(lists, "health", None, "so_y_te", T0 - H)
    road = _open(lists, "transport", "bien_hoa", "vp_ubnd_tinh", T0 - 2 * H)
    client = await lists.client("syt.dongnai")
    page = await (await client.get("/console/tickets")).text()
    assert codes_in(page) == [own, late] and road not in page
    row = re.search(rf'<tr data-code="{late}">.*?</tr>', page, re.S)
    assert row is not None and "data-read-only" in row[0] and "UBND huyện Long Thành" in row[0]
    own_row = re.search(rf'<tr data-code="{own}">.*?</tr>', page, re.S)
    assert own_row is not None and "data-read-only" not in own_row[0]
    assert 'href="/console/oversight"' in page
    filtered = await (await client.get("/console/tickets?unit=ubnd_long_thanh")).text()
    assert codes_in(filtered) == [late]
    detail = await (await client.get(f"/console/tickets/{late}")).text()
    assert "Phản ánh health" in detail and "data-action" not in detail
    assert (await client.get(f"/console/tickets/{road}")).status == 404


async def test_given_late_tickets_when_overview_page_then_late_first_then_counts_in_vietnamese(
        lists: Lists) -> None:
    later = _open(lists, "suspected_infection", "bien_hoa", "vp_ubnd_tinh", T0 - 26 * H)
    latest = _open(lists, "health", "long_thanh", "ubnd_long_thanh", T0 - 30 * H)
    _open(lists, "health", None, "so_y_te", T0 - H)
    _open(lists, "transport", "long_thanh", "ubnd_long_thanh", T0 - 40 * H)  # not health
    client = await lists.client("syt.dongnai")
    resp = await client.get("/console/oversight")
    page = await resp.text()
    assert resp.status == 200, page
    assert "Theo dõi phản ánh theo lĩnh vực, địa bàn — Sở Y tế" in page
    assert 'data-late-total="2"' in page and 'data-total="3"' in page
    late_table = page[page.index("data-late"):page.index("data-by-state")]
    assert codes_in(late_table) == [latest, later]  # the most overdue first
    assert "UBND huyện Long Thành" in late_table and "Trễ" in late_table
    assert page.index("Phiếu trễ hạn") < page.index("Số phiếu theo trạng thái") \
        < page.index("Theo đơn vị đang xử lý")
    assert re.search(r'<tr data-state="forwarded"><td>Đã chuyển đơn vị</td>\s*'
                     r'<td data-count="3">', page)
    holders = page[page.index("data-by-holder"):]
    assert re.findall(r'data-holder="([^"]*)"', holders)[2] == "so_y_te"  # not late: last
    assert 'data-late="1"' in holders and "Lĩnh vực: Y tế, Giá vật tư y tế" in page
    # Another unit's overview: the unit user's own, whatever it asks for.
    other = await (await client.get("/console/oversight?unit=ubnd_long_thanh")).text()
    assert "— Sở Y tế" in other

    sup = await lists.client("giamsat.binh")
    chooser = await (await sup.get("/console/oversight")).text()
    assert "data-choose-unit" in chooser and "data-no-oversight" in chooser
    district = await (await sup.get("/console/oversight?unit=ubnd_long_thanh")).text()
    assert 'data-total="2"' in district and "Địa bàn: Huyện Long Thành" in district
    assert (await sup.get("/console/oversight?unit=vp_ubnd_tinh")).status == 404
    operator = await lists.client("tdv.an")
    assert (await operator.get("/console/oversight", allow_redirects=False)).status == 403
    none = await lists.client("quantri")
    assert (await none.get("/console/oversight")).status == 200
