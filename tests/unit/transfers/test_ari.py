"""The transfer-specific ARI events: the phone's transfer button (ChannelTransfer), an
operator's consultation (Stasis verb consult) and a unit's leg answering (verb unit)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from types import SimpleNamespace
from typing import Any, cast

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.ari_app.client import AriClient, AriError
from callcenter.config.model import HotlineConfig
from callcenter.ivr.prompt_library import PromptLibrary
from callcenter.ivr.tree import Prompt
from callcenter.tickets.rules import Actor
from callcenter.transfers import rules as xf
from callcenter.transfers.ari import WARM_TRANSFER, CallTickets, TransferEvents
from tests.unit.calls.test_queueing import bridged, ringing
from tests.unit.transfers.test_rules import OP, UNITS, attended_api, blind_button

CALL = "c1"
CONSULT = "PJSIP/101-0000002b"


class FakeAri:
    def __init__(self, gone: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.gone = gone

    async def transfer_progress(self, channel: str, state: str) -> None:
        self.calls.append(("transfer_progress", channel, state))
        if self.gone:
            raise AriError("POST", "/channels", 404, "Channel not found")

    async def play(self, channel: str, media: str, playback_id: str) -> None:
        self.calls.append(("play", channel, media, playback_id))
        if self.gone:
            raise AriError("POST", "/channels", 404, "Channel not found")

    async def hangup(self, channel: str, reason: str = "normal") -> None:
        self.calls.append(("hangup", channel, reason))
        if self.gone:
            raise AriError("POST", "/channels", 404, "Channel not found")


def config() -> HotlineConfig:
    tenant = SimpleNamespace(tickets=SimpleNamespace(units=UNITS))
    return cast(HotlineConfig, SimpleNamespace(
        tenant=lambda tid: tenant if tid == "dongnai" else None))


def events(state: cm.CallState | None = None,
           gone: bool = False) -> tuple[TransferEvents, FakeAri, CallSession | None]:
    ari = FakeAri(gone)
    deps = CallDeps(ari=cast(AriClient, ari), pool=cast(Any, None), redis=cast(Any, None),
                    sounds_dir="/sounds", write_record=cast(Any, None))
    sessions: dict[str, CallSession] = {}
    session = None
    if state is not None:
        session = CallSession(state, deps)
        sessions[state.call_id] = session
        deps.legs[OP] = state.call_id
    return TransferEvents(cast(AriClient, ari), deps, sessions, config), ari, session


def queued(session: CallSession | None) -> list[cm.Event]:
    assert session is not None
    out = []
    while not session.events.empty():
        out.append(session.events.get_nowait())
    return out


def refer(source: str, destination: str = "", replaces: str | None = None) -> dict[str, Any]:
    refer_to: dict[str, Any] = {"requested_destination": {"destination": destination}}
    if replaces:
        refer_to["destination_channel"] = {"id": replaces}
    return {"type": "ChannelTransfer", "referred_by": {"source_channel": {"id": source}},
            "refer_to": refer_to}


def test_units_of_a_tenant_are_those_with_a_hotline() -> None:
    te, _ari, _s = events()
    assert [u.id for u in te.units_of("dongnai")] == ["so_y_te", "dien"]
    assert te.units_of("nowhere") == () and te.units_of(None) == ()


def test_the_operators_call_is_the_one_bridged_with_them() -> None:
    te, _ari, session = events(bridged())
    assert te.session_of_operator("101") is session
    assert te.session_of_operator("102") is None
    te, _ari, _s = events(ringing())
    assert te.session_of_operator("101") is None


async def test_given_button_blind_transfer_to_a_units_number_then_requested() -> None:
    te, ari, session = events(bridged())
    await te.on_transfer(refer(OP, "0251 3822 000"))
    [req] = queued(session)
    assert isinstance(req, cm.TransferRequested)
    assert (req.by_extension, req.unit_id, req.number, req.kind, req.source, req.refer_channel) == (
        "101", "so_y_te", "02513822000", "blind", "button", OP)
    assert ari.calls == []


async def test_given_button_with_replaces_then_the_consultation_completed() -> None:
    te, _ari, session = events(bridged())
    await te.on_transfer(refer(OP, replaces="PJSIP/unit-1"))
    [done] = queued(session)
    assert isinstance(done, cm.TransferCompleted) and done.refer_channel == OP


async def test_given_the_echo_of_our_own_progress_then_ignored() -> None:
    te, ari, session = events(bridged())
    await te.on_transfer({**refer(OP, "02513822000"), "state": "channel_progress"})
    assert queued(session) == [] and ari.calls == []


async def test_given_a_refused_transfer_then_declined_and_the_call_untouched() -> None:
    te, ari, session = events(bridged())
    await te.on_transfer(refer(OP, "0909000111"))  # no unit's hotline
    await te.on_transfer(refer("PJSIP/999-1", "02513822000"))  # no leg of ours
    assert queued(session) == []
    assert ari.calls == [("transfer_progress", OP, "channel_declined"),
                         ("transfer_progress", "PJSIP/999-1", "channel_declined")]
    te, ari, _s = events(bridged(), gone=True)
    await te.on_transfer(refer("PJSIP/999-1", "02513822000"))  # the leg went meanwhile
    assert ari.calls == [("transfer_progress", "PJSIP/999-1", "channel_declined")]


async def test_given_an_operator_on_a_call_dials_a_unit_then_a_consultation() -> None:
    te, ari, session = events(bridged())
    await te.on_consult({"id": CONSULT, "name": "PJSIP/101-0000002b"}, "02513822000")
    [req] = queued(session)
    assert isinstance(req, cm.TransferRequested)
    assert (req.by_extension, req.unit_id, req.kind, req.source, req.consult_channel) == (
        "101", "so_y_te", "attended", "button", CONSULT)
    assert te.deps.legs[CONSULT] == CALL and ari.calls == []


async def test_given_a_consultation_without_a_call_or_unit_then_refused_with_congestion(
        ) -> None:
    te, ari, session = events(bridged())
    await te.on_consult({"id": "x1", "name": "PJSIP/102-00000001"}, "02513822000")  # no call
    await te.on_consult({"id": "x2", "name": "PJSIP/101-00000002"}, "0909000111")  # no unit
    assert queued(session) == [] and set(te.deps.legs) == {OP}
    assert ari.calls == [("hangup", "x1", "congestion"), ("hangup", "x2", "congestion")]


async def test_given_a_units_leg_answers_then_the_call_hears_of_it() -> None:
    te, ari, session = events(bridged())
    await te.on_unit_answer({"id": "c1-unit1"}, CALL)
    [answered] = queued(session)
    assert isinstance(answered, cm.UnitAnswered) and answered.channel == "c1-unit1"
    assert ari.calls == []


async def test_given_a_units_leg_answers_after_the_call_ended_then_hung_up() -> None:
    te, ari, _s = events(dataclasses.replace(bridged(), call_id="other"))
    await te.on_unit_answer({"id": "c1-unit1"}, CALL)
    te2, ari2, _s = events(gone=True)
    await te2.on_unit_answer({"id": "c1-unit1"}, CALL)  # already gone: quietly
    assert ari.calls == ari2.calls == [("hangup", "c1-unit1", "normal")]


# ---- warm transfer: the unit hears the call's ticket --------------------------------------
TICKET = xf.WarmTicket("DN-20261207-0042", "y_te", "Y tế")


class FakeLibrary:
    def __init__(self, broken: bool = False) -> None:
        self.broken = broken

    async def media(self, tenant: str, prompt: Prompt) -> str:
        if self.broken:
            raise OSError("espeak-ng: not found")
        return f"sound:/s/{tenant}/{prompt.id}"


Warm = tuple[TransferEvents, FakeAri, CallSession, list[tuple[str, str]]]


def warm(state: cm.CallState, ticket: xf.WarmTicket | None = TICKET, gone: bool = False,
         broken: bool = False) -> Warm:
    te, ari, session = events(state, gone)
    asked: list[tuple[str, str]] = []

    async def call_ticket(tenant: str, record_id: str) -> xf.WarmTicket | None:
        asked.append((tenant, record_id))
        return ticket

    te.deps.call_ticket = call_ticket
    te.deps.prompts = cast(PromptLibrary, FakeLibrary(broken))
    assert session is not None
    return te, ari, session, asked


async def answer(te: TransferEvents) -> None:
    """The unit's leg answers; the warm transfer's own task (if any) done."""
    await te.on_unit_answer({"id": "c1-unit1"}, CALL)
    await asyncio.gather(*te.pending)


def consulting() -> cm.CallState:
    state, _ = cm.step(bridged(), attended_api())
    return state


async def test_given_attended_and_a_linked_ticket_when_unit_answers_then_it_hears_the_ticket(
        ) -> None:
    te, ari, session, asked = warm(consulting())
    await answer(te)
    assert asked == [("dongnai", f"{session.state.node}:{CALL}")]  # the call record's id
    [answered] = queued(session)
    assert isinstance(answered, cm.UnitAnswered) and answered.ticket == TICKET.code
    media = ",".join(f"sound:/s/dongnai/{p.id}" for p in xf.announcement(TICKET))
    assert ari.calls == [("play", "c1-unit1", media, "warm-c1-unit1")]
    assert media.split(",")[1:5] == [f"sound:/s/dongnai/st-n-{d}" for d in (0, 0, 4, 2)]


async def test_given_no_linked_ticket_or_blind_then_the_unit_hears_nothing() -> None:
    te, ari, session, asked = warm(consulting(), ticket=None)
    await answer(te)
    [answered] = queued(session)
    assert isinstance(answered, cm.UnitAnswered) and answered.ticket is None
    assert ari.calls == []
    blind, _ = cm.step(bridged(), blind_button())
    te, ari, session, asked = warm(blind)
    await answer(te)
    assert asked == [] and ari.calls == []  # not even looked up
    [answered] = queued(session)
    assert isinstance(answered, cm.UnitAnswered) and answered.ticket is None


async def test_given_prompts_or_channel_failing_then_the_consultation_goes_on() -> None:
    te, ari, session, _ = warm(consulting(), broken=True)
    await answer(te)  # no prompt files: logged
    [answered] = queued(session)
    assert isinstance(answered, cm.UnitAnswered) and ari.calls == []
    te, ari, session, _ = warm(consulting(), gone=True)
    await answer(te)  # the unit hung up at once: logged
    [answered] = queued(session)
    assert isinstance(answered, cm.UnitAnswered) and [c[0] for c in ari.calls] == ["play"]


class FakeTickets:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def tickets_of_call(self, call_id: str) -> list[Any]:
        if self.fail:
            raise OSError("database is away")
        assert call_id == "pbx1:c1"
        return [SimpleNamespace(code="DN-20261206-0003", field="dien", tenant="dongnai"),
                SimpleNamespace(code="DN-20261207-0042", field="y_te", tenant="dongnai"),
                SimpleNamespace(code="BD-20261207-0001", field="y_te", tenant="binhduong")]

    def policy(self, tenant: str) -> Any:
        return SimpleNamespace(field_name=lambda f: {"y_te": "Y tế"}.get(f))


async def test_the_call_ticket_is_the_tenants_newest_and_store_failures_mean_none() -> None:
    assert await CallTickets(FakeTickets())("dongnai", "pbx1:c1") == TICKET
    assert await CallTickets(FakeTickets(fail=True))("dongnai", "pbx1:c1") is None


async def test_a_slow_ticket_store_does_not_hold_the_ari_events() -> None:
    te, ari, session, _ = warm(consulting())
    release = asyncio.Event()

    async def slow(tenant: str, record_id: str) -> xf.WarmTicket | None:
        await release.wait()
        return TICKET

    te.deps.call_ticket = slow
    await te.on_unit_answer({"id": "c1-unit1"}, CALL)  # returns at once: the next event
    assert queued(session) == [] and len(te.pending) == 1
    release.set()
    await asyncio.gather(*te.pending)
    [answered] = queued(session)
    assert isinstance(answered, cm.UnitAnswered) and answered.ticket == TICKET.code
    assert [c[0] for c in ari.calls] == ["play"]


# ---- warm transfer: the unit may read the ticket (its console shows it) --------------------
class RecordingTickets(FakeTickets):
    """The ticket service's ``transfer_call``: recorded, failing, or slow."""

    def __init__(self, fail: bool = False, transfer_fails: bool = False,
                 slow: threading.Event | None = None) -> None:
        super().__init__(fail)
        self.transfer_fails = transfer_fails
        self.slow = slow
        self.transfers: list[tuple[str, str, str, Actor]] = []

    def transfer_call(self, code: str, unit: str, call_id: str, actor: Actor) -> bool:
        if self.slow is not None:
            self.slow.wait(5)
        if self.transfer_fails:
            raise OSError("database is locked")
        self.transfers.append((code, unit, call_id, actor))
        return len(self.transfers) == 1


def with_record(w: Warm, tickets: RecordingTickets) -> Warm:
    w[0].deps.call_transferred = CallTickets(tickets, timeout_s=0.2).transferred
    return w


async def test_given_attended_and_a_linked_ticket_when_unit_answers_then_transfer_recorded(
        ) -> None:
    tickets = RecordingTickets()
    te, ari, session, _ = with_record(warm(consulting()), tickets)
    unit = session.state.transfer.unit if session.state.transfer else None
    assert unit is not None
    await answer(te)
    assert tickets.transfers == [(TICKET.code, unit, f"{session.state.node}:{CALL}",
                                  WARM_TRANSFER)]
    assert WARM_TRANSFER.role == "system"
    [answered] = queued(session)
    assert isinstance(answered, cm.UnitAnswered) and [c[0] for c in ari.calls] == ["play"]


async def test_given_no_ticket_or_blind_when_unit_answers_then_nothing_recorded() -> None:
    tickets = RecordingTickets()
    te, _, session, _ = with_record(warm(consulting(), ticket=None), tickets)
    await answer(te)
    blind, _ = cm.step(bridged(), blind_button())
    te, _, session, _ = with_record(warm(blind), tickets)
    await answer(te)
    assert tickets.transfers == []


async def test_given_the_store_failing_or_slow_when_recording_then_the_transfer_goes_on(
        ) -> None:
    for tickets in (RecordingTickets(transfer_fails=True),
                    RecordingTickets(slow=threading.Event())):
        te, ari, session, _ = with_record(warm(consulting()), tickets)
        await answer(te)  # logged, not raised; at most the time limit
        [answered] = queued(session)
        assert isinstance(answered, cm.UnitAnswered) and answered.ticket == TICKET.code
        assert [c[0] for c in ari.calls] == ["play"] and tickets.transfers == []
        if tickets.slow is not None:
            tickets.slow.set()  # let the worker thread end


async def test_recording_a_transfer_reports_whether_it_was_kept() -> None:
    tickets = RecordingTickets()
    calls = CallTickets(tickets)
    assert await calls.transferred("DN-20261207-0042", "so_y_te", "pbx1:c1") is True
    assert await calls.transferred("DN-20261207-0042", "so_y_te", "pbx1:c1") is True  # again
    assert len(tickets.transfers) == 2  # the service decides it is the same (idempotent)
    assert await CallTickets(RecordingTickets(transfer_fails=True)).transferred(
        "DN-20261207-0042", "so_y_te", "pbx1:c1") is False
