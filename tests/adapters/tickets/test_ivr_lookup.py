"""Status by phone against the real ticket store (SQLite, PostgreSQL): the caller's open
tickets newest first, keyed-in codes limited to the caller's own, outages and timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcenter.ivr import status as s
from callcenter.ivr.lookup import TicketLookup
from callcenter.ivr.menu import LookupTickets
from callcenter.tickets import store as tst
from callcenter.tickets.config import TicketPolicy
from callcenter.tickets.rules import Accept, Forward, Resolve
from callcenter.tickets.service import TicketService
from tests.support.tickets import OP, T0, YT, Clock, hotline_config, make_service

H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)
CALLER = "0912345678"
OTHER = "0987654321"


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def svc(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[TicketService]:
    service = make_service(database_url, tmp_path / "files", clock)
    yield service
    service.close()


@pytest.fixture
def lookup(svc: TicketService, clock: Clock) -> Iterator[TicketLookup]:
    finder = TicketLookup(svc, clock=clock)
    yield finder
    finder.close()


def opened(svc: TicketService, at: dt.datetime, phone: str = CALLER, tenant: str = "dongnai",
           unit: str | None = None) -> str:
    t = svc.open(tenant, OP, channel="phone", content="Đèn đường hỏng, người dân phản ánh.",
                 field="health", citizen_phone=phone, citizen_name="Nguyễn Văn A", at=at)
    if unit is not None:
        svc.act(t.code, OP, Forward(at + H / 2, OP, unit))
    return t.code


def test_given_five_open_tickets_then_total_five_and_newest_three_with_unit_and_due(
        svc: TicketService, lookup: TicketLookup) -> None:
    codes = [opened(svc, T0 - (5 - k) * D, unit="so_y_te" if k % 2 else None)
             for k in range(5)]  # oldest first
    done = opened(svc, T0 - 6 * D + H, unit="so_y_te")
    svc.act(done, YT, Accept(T0 - 6 * D + 2 * H, YT))
    svc.act(done, YT, Resolve(T0 - 6 * D + 3 * H, YT, "Đã sửa xong."))
    opened(svc, T0 - D, phone=OTHER)  # someone else's
    opened(svc, T0 - D, tenant="thanhhoa")  # the same number in another province
    result = lookup.find("dongnai", "+84 912 345 678", None)
    assert result.total == 5 and not result.failed
    assert [t.code for t in result.tickets] == codes[::-1][:3]
    newest = result.tickets[0]
    assert newest.state == "new" and newest.unit is None
    second = result.tickets[1]
    assert (second.state, second.unit, second.unit_name) == ("forwarded", "so_y_te", "Sở Y tế")
    stored = svc.get(second.code, OP)
    assert stored.resolve_due is not None
    local = stored.resolve_due.astimezone(dt.timezone(dt.timedelta(hours=7)))
    assert second.due == local.replace(tzinfo=None)  # the wall time in Đồng Nai
    assert second.late is (T0 > stored.resolve_due)


def test_given_no_open_ticket_or_withheld_number_then_nothing(
        svc: TicketService, lookup: TicketLookup) -> None:
    opened(svc, T0 - D, phone=OTHER)
    assert lookup.find("dongnai", CALLER, None) == s.LookupResult()
    assert lookup.find("dongnai", "anonymous", None) == s.LookupResult()
    assert lookup.find("dongnai", "", s.TypedCode(1)) == s.LookupResult()


def test_given_late_ticket_then_marked_late(svc: TicketService, lookup: TicketLookup,
                                            clock: Clock) -> None:
    code = opened(svc, T0 - 3 * D, unit="so_y_te")
    clock.now = T0 + 10 * D
    (t,) = lookup.find("dongnai", CALLER, None).tickets
    assert t.code == code and t.late is True


def test_given_keyed_in_sequence_then_only_the_callers_own_ticket_is_found(
        svc: TicketService, lookup: TicketLookup) -> None:
    mine = opened(svc, T0 - D, unit="so_y_te")  # sequence 1 of its day
    theirs = opened(svc, T0, phone=OTHER)  # sequence 1 of another day
    seq = int(mine.rsplit("-", 1)[1])
    assert int(theirs.rsplit("-", 1)[1]) == seq
    found = lookup.find("dongnai", CALLER, s.TypedCode(seq))
    assert [t.code for t in found.tickets] == [mine]
    # Someone else's whole code: not found for this caller (own), found with codes: any.
    date = dt.datetime.strptime(theirs.split("-")[1], "%Y%m%d").date()
    whole = s.TypedCode(seq, date)
    assert lookup.find("dongnai", CALLER, whole).tickets == ()
    anyone = lookup.find("dongnai", CALLER, whole, any_caller=True)
    assert [t.code for t in anyone.tickets] == [theirs]
    assert anyone.tickets[0].state == "new"
    # A sequence alone never reaches another citizen's ticket, even with codes: any.
    alone = lookup.find("dongnai", CALLER, s.TypedCode(seq), any_caller=True)
    assert [t.code for t in alone.tickets] == [mine]


def test_given_resolved_ticket_keyed_in_then_found_though_no_longer_open(
        svc: TicketService, lookup: TicketLookup) -> None:
    code = opened(svc, T0 - 2 * D, unit="so_y_te")
    svc.act(code, YT, Accept(T0 - 2 * D + H, YT))
    svc.act(code, YT, Resolve(T0 - 2 * D + 2 * H, YT, "Đã xử lý."))
    assert lookup.find("dongnai", CALLER, None).tickets == ()
    date = dt.datetime.strptime(code.split("-")[1], "%Y%m%d").date()
    (t,) = lookup.find("dongnai", CALLER, s.TypedCode(int(code.rsplit("-", 1)[1]), date)).tickets
    assert (t.state, t.unit_name) == ("resolved", "Sở Y tế")
    assert s.ticket_prompts(t)[5].id == "st-resolved"


def test_given_lookup_then_the_caller_number_index_is_used(svc: TicketService) -> None:
    index = {ix.name for ix in tst.TICKETS.indexes}
    assert "ix_tickets_citizen_phone" in index
    names = {ix["name"] for ix in sa.inspect(svc.db.engine).get_indexes("tickets")}
    assert "ix_tickets_citizen_phone" in names  # in the migrated database too


async def test_given_lookup_command_then_answered_in_a_thread(
        svc: TicketService, lookup: TicketLookup) -> None:
    code = opened(svc, T0 - D, unit="so_y_te")
    result = await lookup("dongnai", CALLER, LookupTickets(1))
    assert [t.code for t in result.tickets] == [code]


async def test_given_database_unreachable_then_failed_not_raised(tmp_path: Path) -> None:
    svc = TicketService(f"sqlite:///{tmp_path / 'missing' / 'nowhere' / 'x.db'}",
                        hotline_config, tmp_path)
    finder = TicketLookup(svc)
    try:
        result = await finder("dongnai", CALLER, LookupTickets(1))
    finally:
        finder.close()
        svc.close()
    assert result == s.UNAVAILABLE


class _Hanging:
    """A ticket store whose reads hang (a database that accepts but never answers)."""

    def __init__(self, real: TicketService) -> None:
        self.real = real

    @property
    def db(self) -> _Hanging:
        return self

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        time.sleep(1.0)
        raise RuntimeError("gave up")
        yield  # pragma: no cover

    def policy(self, tenant: str) -> TicketPolicy:
        return self.real.policy(tenant)


async def test_given_database_hangs_then_failed_after_the_timeout(svc: TicketService) -> None:
    finder = TicketLookup(_Hanging(svc), timeout_s=0.2)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        result = await finder("dongnai", CALLER, LookupTickets(1))
        waited = time.monotonic() - started
        other = await asyncio.to_thread(lambda: "the app's own threads are free")
    finally:
        finder.close()
    assert result.failed and waited < 0.8
    assert other
