"""Oversight on SQLite and PostgreSQL: what an overseeing unit lists, reads and may not do, and
its overview (the shipped config: Sở Y tế oversees the health group, each district UBND its
district)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.tickets.rules import (
    Accept,
    Actor,
    Close,
    Forward,
    LinkCall,
    Reclassify,
    Reopen,
    Resolve,
    Return,
    SetPublishable,
    Ticket,
    TicketError,
    TicketState,
)
from callcenter.tickets.service import TicketService
from tests.support.tickets import GT, OP, SUP, T0, YT, Clock, make_service, pdf_bytes

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
S = TicketState
LT = Actor("lt1", "unit", "ubnd_long_thanh")  # oversees the district of Long Thành
PYT = Actor("pyt1", "unit", "phong_y_te_long_thanh")  # oversees nothing


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def svc(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[TicketService]:
    s = make_service(database_url, tmp_path / "files", clock)
    yield s
    s.close()


def _open(svc: TicketService, field: str, place: str | None, *, unit: str | None = None,
          urgent: bool = False, answer: str | None = None, minute: int = 0) -> Ticket:
    t = svc.open("dongnai", OP, channel="phone", content=f"Phản ánh {field} {place}",
                 field=field, place=place, citizen_phone="0912345678", urgent=urgent,
                 at=T0 + minute * M, answer=answer)
    if unit is not None:
        t = svc.act(t.code, OP, Forward(T0 + (minute + 1) * M, OP, unit))
    return t


@pytest.fixture
def tickets(svc: TicketService) -> dict[str, Ticket]:
    """One ticket of each kind an overseer must (or must not) see."""
    return {
        # health in Long Thành: held by the district's Phòng Y tế, urgent (4 h)
        "health_lt": _open(svc, "health", "long_thanh.an_phuoc",
                           unit="phong_y_te_long_thanh", urgent=True, minute=1),
        # health answered at level 1 and never forwarded
        "health_l1": _open(svc, "suspected_infection", "bien_hoa",
                           answer="Liên hệ trạm y tế phường", minute=2),
        # medical goods prices: Sở Công Thương holds it, health group all the same
        "prices": _open(svc, "prices_fraud", "nhon_trach", unit="so_cong_thuong", minute=3),
        # transport in Long Thành: the district sees it, Sở Y tế does not
        "road_lt": _open(svc, "transport", "long_thanh", unit="so_gtvt", minute=4),
        # transport in Biên Hòa: neither
        "road_bh": _open(svc, "transport", "bien_hoa", unit="so_gtvt", minute=5),
        # Sở Y tế's own
        "health_own": _open(svc, "health", "bien_hoa", unit="so_y_te", minute=6),
    }


def _codes(found: list[Ticket]) -> set[str]:
    return {t.code for t in found}


def test_given_lead_department_when_listing_then_its_whole_field_wherever_held(
        svc: TicketService, tickets: dict[str, Ticket]) -> None:
    want = {tickets[k].code for k in ("health_lt", "health_l1", "prices", "health_own")}
    assert _codes(svc.list(YT, "dongnai")) == want
    assert _codes(svc.list(YT)) == want  # no tenant named: the same (per tenant scopes)
    assert svc.count(YT, "dongnai") == 4
    # the holder filter narrows to one holder, lateness and state filters still apply
    assert _codes(svc.list(YT, "dongnai", unit="phong_y_te_long_thanh")) == {
        tickets["health_lt"].code}
    assert _codes(svc.list(YT, "dongnai", state="answered")) == {tickets["health_l1"].code}
    assert svc.list(YT, "thanhhoa") == []


def test_given_district_office_when_listing_then_its_district_and_communes_any_field(
        svc: TicketService, tickets: dict[str, Ticket]) -> None:
    assert _codes(svc.list(LT, "dongnai")) == {tickets["health_lt"].code,
                                               tickets["road_lt"].code}
    assert svc.count(LT, "dongnai") == 2


def test_given_unit_overseeing_nothing_when_listing_then_only_what_it_held(
        svc: TicketService, tickets: dict[str, Ticket]) -> None:
    assert _codes(svc.list(PYT, "dongnai")) == {tickets["health_lt"].code}
    assert _codes(svc.list(GT, "dongnai")) == {tickets["road_lt"].code, tickets["road_bh"].code}


def test_given_overseen_ticket_when_listed_then_with_the_holders_deadline(
        svc: TicketService, tickets: dict[str, Ticket]) -> None:
    seen = {t.code: t for t in svc.list(YT, "dongnai")}
    held = svc.get(tickets["health_lt"].code, PYT)
    assert seen[held.code].unit == "phong_y_te_long_thanh"
    assert seen[held.code].resolve_due == held.resolve_due == held.received_at + 4 * H


def test_given_overseer_when_reading_then_ticket_audit_and_attachments(
        svc: TicketService, tickets: dict[str, Ticket]) -> None:
    code = tickets["health_lt"].code
    att = svc.attach(code, PYT, "bao-cao.pdf", "application/pdf", pdf_bytes())
    assert svc.get(code, YT) == svc.get(code, SUP)
    assert [e.event for e in svc.audit(code, YT)] == ["open", "forward", "attach"]
    assert [a.id for a in svc.attachments(code, YT)] == [att.id]
    assert svc.attachment_file(code, str(att.id), YT)[1].read_bytes() == pdf_bytes()
    assert svc.access(code, YT) == "overseer" and svc.access(code, LT) == "overseer"
    assert svc.access(code, PYT) == "holder" and svc.access(code, SUP) == "all"
    with pytest.raises(TicketError) as info:
        svc.get(tickets["road_bh"].code, YT)
    assert info.value.id == "ticket.forbidden"


@pytest.mark.parametrize("make", [
    lambda a, at: Accept(at, a), lambda a, at: Resolve(at, a, "Đã xử lý"),
    lambda a, at: Return(at, a, "Không thuộc thẩm quyền"),
    lambda a, at: Forward(at, a, "so_y_te"), lambda a, at: Close(at, a, "trùng"),
    lambda a, at: Reopen(at, a, "chưa thỏa đáng"),
    lambda a, at: Reclassify(at, a, "health", None, False),
    lambda a, at: SetPublishable(at, a, True), lambda a, at: LinkCall(at, a, "pbx1:9.9"),
])
def test_given_overseer_when_acting_then_refused_in_any_state_and_nothing_changes(
        svc: TicketService, tickets: dict[str, Ticket], make: object) -> None:
    for key in ("health_lt", "health_l1", "prices"):
        before = svc.get(tickets[key].code, SUP)
        with pytest.raises(TicketError) as info:
            svc.act(before.code, YT, make(YT, T0 + H))  # type: ignore[operator]
        assert info.value.id == "ticket.forbidden", key
        assert "may only read" in info.value.message
        assert svc.get(before.code, SUP) == before


def test_given_overseer_when_attaching_then_refused(
        svc: TicketService, tickets: dict[str, Ticket]) -> None:
    code = tickets["health_lt"].code
    with pytest.raises(TicketError) as info:
        svc.attach(code, YT, "x.pdf", "application/pdf", pdf_bytes())
    assert info.value.id == "ticket.forbidden"
    with pytest.raises(TicketError) as info:
        svc.resolve_with_document(code, YT, Resolve(T0 + H, YT, "xong"), "x.pdf",
                                  "application/pdf", pdf_bytes())
    assert info.value.id == "ticket.forbidden"
    assert svc.attachments(code, SUP) == []


def test_given_late_tickets_when_overview_then_late_first_counts_by_state_and_holder(
        svc: TicketService, tickets: dict[str, Ticket], clock: Clock) -> None:
    clock.now = T0 + 5 * H  # the urgent one (4 h) is late; the others have 24 h
    svc.act(tickets["prices"].code, Actor("ct", "unit", "so_cong_thuong"),
            Accept(T0 + 4 * H, Actor("ct", "unit", "so_cong_thuong")))
    o = svc.oversight(YT, "dongnai")
    assert [t.code for t in o.late] == [tickets["health_lt"].code] and o.late_total == 1
    assert o.total == 4
    assert o.by_state["forwarded"] == 2 and o.by_state["in_progress"] == 1
    assert o.by_state["answered"] == 1 and o.by_state["resolved"] == 0
    holders = [(h.unit, h.total, h.late) for h in o.by_holder]
    assert holders[0] == ("phong_y_te_long_thanh", 1, 1)  # the late holder first
    assert sorted(holders[1:], key=str) == sorted(
        [("so_cong_thuong", 1, 0), ("so_y_te", 1, 0), (None, 1, 0)], key=str)
    clock.now = T0 + 30 * H
    later = svc.oversight(SUP, "dongnai", "so_y_te")
    assert [t.code for t in later.late] == [tickets["health_lt"].code, tickets["prices"].code,
                                            tickets["health_own"].code]  # most overdue first
    district = svc.oversight(SUP, "dongnai", "ubnd_long_thanh")
    assert district.total == 2 and district.late_total == 2


def test_given_who_asks_when_overview_then_own_unit_only_and_no_operators(
        svc: TicketService, tickets: dict[str, Ticket]) -> None:
    assert svc.oversight(YT, "dongnai", "so_y_te").unit == "so_y_te"
    for actor, unit in ((YT, "ubnd_long_thanh"), (OP, "so_y_te")):
        with pytest.raises(TicketError) as info:
            svc.oversight(actor, "dongnai", unit)
        assert info.value.id == "ticket.forbidden"
    with pytest.raises(TicketError) as info:
        svc.oversight(SUP, "dongnai", "khong_co")
    assert info.value.id == "ticket.unknown_unit"
    empty = svc.oversight(PYT, "dongnai")
    assert empty.total == 0 and empty.late == () and not empty.scope
