"""A call about a ticket transferred to a unit (warm transfer; SQLite and PostgreSQL): the
ticket's audit trail records it once per call, the unit may then read the ticket (read only:
every action 403), its console list shows it under "Cuộc gọi chuyển đến" for 24 h, other units
still may not see it."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from aiohttp import FormData

from callcenter.console.context import SERVICE
from callcenter.tickets.rules import Accept, Actor, Forward, Return, TicketError
from callcenter.tickets.service import TicketService
from tests.support import api as api_support
from tests.support import lists as lists_support
from tests.support.api import PDF, Api
from tests.support.lists import T0, Lists

api = api_support.api
lists = lists_support.lists
hotline_config = api_support.hotline_config
V1 = "/api/v1"
WARM = Actor("warm-transfer", "system")
OP = Actor("tdv.an", "operator")
LT = Actor("ubnd.longthanh", "unit", "ubnd_long_thanh")  # the unit the call goes to
YT = Actor("syt.dongnai", "unit", "so_y_te")  # another unit (health is routed to it)
CALL = "pbx1:1764910000.42"
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def _new(lists: Lists, minute: int = 0) -> str:
    """A health ticket in Biên Hòa at level 1 (not forwarded): no unit may read it yet."""
    return lists.ticket(at=T0 - H + minute * M, unit=None).code


def test_given_call_transferred_twice_when_recorded_then_once_and_unit_reads_only(
        lists: Lists) -> None:
    svc: TicketService = lists.service
    code = _new(lists)
    with pytest.raises(TicketError) as info:
        svc.get(code, LT)
    assert info.value.id == "ticket.forbidden"
    assert svc.transfer_call(code, "ubnd_long_thanh", CALL, WARM) is True
    assert svc.transfer_call(code, "ubnd_long_thanh", f" {CALL} ", WARM) is False
    entries = [e for e in svc.audit(code, OP) if e.event == "transfer_call"]
    assert [(e.actor, e.detail) for e in entries] == [
        (WARM, f"call {CALL} transferred to ubnd_long_thanh")]
    t = svc.get(code, LT)
    assert (t.state.value, t.unit, t.version) == ("new", None, 1)
    assert svc.access(code, LT) == "transferred"
    assert [e.event for e in svc.audit(code, LT)] == ["open", "transfer_call"]
    for event in (Accept(T0, LT), Return(T0, LT, "không thuộc thẩm quyền"),
                  Forward(T0, LT, "ubnd_long_thanh")):
        with pytest.raises(TicketError) as info:
            svc.act(code, LT, event)
        assert info.value.id == "ticket.forbidden"
    with pytest.raises(TicketError) as info:
        svc.attach(code, LT, "a.pdf", "application/pdf", PDF)
    assert info.value.id == "ticket.forbidden"
    with pytest.raises(TicketError) as info:  # another unit: as before
        svc.get(code, YT)
    assert info.value.id == "ticket.forbidden"
    assert svc.get(code, OP).version == 1  # nothing changed the ticket since
    # The operator forwards it as usual; the unit then holds it and acts.
    svc.act(code, OP, Forward(T0, OP, "ubnd_long_thanh"))
    assert svc.access(code, LT) == "holder"
    assert svc.act(code, LT, Accept(T0, LT)).state.value == "in_progress"


def test_given_another_call_or_unit_when_transferred_then_each_recorded(lists: Lists) -> None:
    svc = lists.service
    code = _new(lists)
    assert svc.transfer_call(code, "ubnd_long_thanh", CALL, WARM)
    assert svc.transfer_call(code, "ubnd_long_thanh", "pbx1:1764910999.1", WARM)
    assert svc.transfer_call(code, "so_y_te", CALL, WARM)
    assert sum(e.event == "transfer_call" for e in svc.audit(code, OP)) == 3
    assert svc.access(code, YT) == "transferred"


def test_given_unknown_unit_or_bad_call_when_transferred_then_refused_and_nothing_kept(
        lists: Lists) -> None:
    svc = lists.service
    code = _new(lists)
    for unit, call_id, why in (("nowhere", CALL, "ticket.unknown_unit"),
                               ("ubnd_long_thanh", "", "ticket.invalid_text"),
                               ("ubnd_long_thanh", "x" * 65, "ticket.invalid_text")):
        with pytest.raises(TicketError) as info:
            svc.transfer_call(code, unit, call_id, WARM)
        assert info.value.id == why
    with pytest.raises(TicketError) as info:
        svc.transfer_call(code, "ubnd_long_thanh", CALL, LT)  # a unit may not grant itself
    assert info.value.id == "ticket.forbidden"
    with pytest.raises(TicketError) as info:
        svc.transfer_call("DN-20261123-9999", "ubnd_long_thanh", CALL, WARM)
    assert info.value.id == "ticket.not_found"
    assert [e.event for e in svc.audit(code, OP)] == ["open"]
    with pytest.raises(TicketError):
        svc.get(code, LT)


def test_given_transfers_when_listed_then_last_24_h_newest_first_own_unit_only(
        lists: Lists) -> None:
    svc = lists.service
    old, first, second = _new(lists, 0), _new(lists, 1), _new(lists, 2)
    lists.clock.now = T0
    svc.transfer_call(old, "ubnd_long_thanh", "pbx1:1.1", WARM)
    lists.clock.now = T0 + 10 * H
    svc.transfer_call(second, "ubnd_long_thanh", "pbx1:1.3", WARM)
    lists.clock.now = T0 + 11 * H
    svc.transfer_call(first, "ubnd_long_thanh", "pbx1:1.2", WARM)
    svc.transfer_call(second, "so_y_te", "pbx1:1.4", WARM)
    lists.clock.now = T0 + 25 * H
    got = svc.transferred_to(LT, "dongnai")
    assert [(x.ticket.code, x.call_id, x.at) for x in got] == [
        (first, "pbx1:1.2", T0 + 11 * H), (second, "pbx1:1.3", T0 + 10 * H)]
    assert [x.ticket.code for x in svc.transferred_to(YT, "dongnai")] == [second]
    assert svc.transferred_to(LT, "thanhhoa") == []
    assert svc.get(old, LT).code == old  # out of the notice, still readable
    with pytest.raises(TicketError) as info:
        svc.transferred_to(OP, "dongnai")
    assert info.value.id == "ticket.forbidden"


# ---- the console and the API ------------------------------------------------------------------
async def test_given_call_transferred_when_unit_opens_console_then_notice_and_page_read_only(
        lists: Lists) -> None:
    code = _new(lists)
    other = _new(lists, 5)
    lists.clock.now = T0
    lists.service.transfer_call(code, "ubnd_long_thanh", CALL, WARM)
    client = await lists.client("ubnd.longthanh")
    page = await (await client.get("/console/tickets")).text()
    section = re.search(r'<section class="card" id="transferred".*?</section>', page, re.S)
    assert section is not None, page
    assert "Cuộc gọi chuyển đến" in section[0]
    row = re.search(rf'<tr data-transferred="{code}">.*?</tr>', section[0], re.S)
    assert row is not None and f'href="/console/tickets/{code}"' in row[0]
    assert ">Y tế<" in row[0] and "12:00" in row[0]  # the field; when (T0, 12:00 local)
    assert other not in page
    resp = await client.get(f"/console/tickets/{code}")
    detail = await resp.text()
    assert resp.status == 200
    assert "data-action" not in detail and "data-read-only" in detail
    assert "tổng đài chưa chuyển giao phiếu" in detail
    assert "Chuyển cuộc gọi đến UBND huyện Long Thành" in detail
    assert (await client.get(f"/console/tickets/{other}")).status == 404
    # Another unit: no notice, and the ticket is still not found for it.
    yt = await lists.client("syt.dongnai")
    assert 'id="transferred"' not in await (await yt.get("/console/tickets")).text()
    assert (await yt.get(f"/console/tickets/{code}")).status == 404
    # A day later the notice is gone; the page still opens.
    lists.clock.now = T0 + 25 * H
    assert 'id="transferred"' not in await (await client.get("/console/tickets")).text()
    assert (await client.get(f"/console/tickets/{code}")).status == 200


async def test_given_call_transferred_when_unit_acts_through_the_api_then_403(api: Api) -> None:
    t = await api.open_ticket(field="transport", place="bien_hoa")
    code = t["code"]
    await api.call("GET", f"{V1}/tickets/{code}", "ubnd.longthanh", 403)
    svc: TicketService = api.client.app[SERVICE]
    svc.transfer_call(code, "ubnd_long_thanh", CALL, WARM)
    for path in (f"/tickets/{code}", f"/tickets/{code}/audit", f"/tickets/{code}/attachments"):
        await api.call("GET", V1 + path, "ubnd.longthanh", 200)
    for action, body in (("accept", {}), ("resolve", {"result": "xong"}),
                         ("return", {"reason": "không thuộc thẩm quyền"}),
                         ("forward", {"unit": "ubnd_long_thanh"}),
                         ("answer", {"answer": "x"}), ("reclassify", {"urgent": True})):
        got = await api.call("POST", f"{V1}/tickets/{code}/actions", "ubnd.longthanh", 403,
                             json={"action": action, "version": 1, **body})
        assert got["error"]["id"] == "ticket.forbidden", (action, got)
    form = FormData()
    form.add_field("file", PDF, filename="x.pdf", content_type="application/pdf")
    await api.call("POST", f"{V1}/tickets/{code}/attachments", "ubnd.longthanh", 403, data=form)
    await api.call("GET", f"{V1}/tickets/{code}", "syt.dongnai", 403)
    after = await api.call("GET", f"{V1}/tickets/{code}", "tdv.an", 200)
    assert (after["state"], after["version"], after["unit"]) == ("new", 1, None)
