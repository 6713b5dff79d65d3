"""The call machine with the operators' queue: queued, ringing, bridged, callback, abandon."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter import calls as cm
from callcenter.ivr import menu as mn
from callcenter.ivr.tree import Prompt
from callcenter.queue.rules import CALLBACK_CONFIRM_TEXT

T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def queued(urgent: bool = False) -> cm.CallState:
    """A call of a tenant with operators, greeted (no menus) and now in the queue."""
    state = cm.new_call("c1", "pbx1", "1022", "0909123456", "c1", T0)
    state, _ = cm.step(state, cm.Routed(T0, "dongnai", "day", 15, queue=True))
    state, _ = cm.step(state, cm.LineGranted(at(0)))
    state, _ = cm.step(state, cm.Answered(at(0.1)))
    state = cm.CallState(**{**state.__dict__, "urgent": urgent})
    state, cmds = cm.step(state, cm.PlaybackFinished(at(5)))
    assert cmds == [cm.StartMoh(), cm.Enqueue("dongnai", urgent)]
    return state


def ringing(ext: str = "101") -> cm.CallState:
    state, _ = cm.step(queued(), cm.Offered(at(6), ext, 15, 10))
    return state


def bridged() -> cm.CallState:
    state, _ = cm.step(ringing(), cm.OperatorAnswered(at(9), "101"))
    return state


def test_given_greeting_when_tenant_has_operators_then_queued_with_music() -> None:
    state = queued()
    assert state.phase is cm.Phase.QUEUED and state.queued_at == at(5)


def test_given_greeting_when_tenant_has_no_operators_then_hold_as_before() -> None:
    state = cm.new_call("c1", "pbx1", "1022", "0909123456", "c1", T0)
    state, _ = cm.step(state, cm.Routed(T0, "dongnai", "day", 15))
    state, _ = cm.step(state, cm.LineGranted(at(0)))
    state, cmds = cm.step(state, cm.PlaybackFinished(at(5)))
    assert state.phase is cm.Phase.HOLDING and cmds == [cm.StartMoh()]


def test_given_queued_when_offered_then_ring_operator_on_a_named_leg() -> None:
    state, cmds = cm.step(queued(), cm.Offered(at(6), "101", 15, 10))
    assert state.phase is cm.Phase.RINGING and state.ringing == "101"
    assert cmds == [cm.RingOperator("101", "c1-op1", 15)]
    assert state.operator_channel == "c1-op1" and state.wrap_up_s == 10


def test_given_ringing_when_same_offer_arrives_again_then_nothing() -> None:
    state = ringing()
    again, cmds = cm.step(state, cm.Offered(at(6.1), "101", 15, 10))
    assert again == state and cmds == []


def test_given_ringing_when_operator_leg_ends_then_back_in_queue_keeping_place() -> None:
    state, cmds = cm.step(ringing(), cm.OperatorGone(at(21), "c1-op1", 19))
    assert state.phase is cm.Phase.QUEUED and state.no_answers == 1
    assert state.queued_at == at(5)  # the place in the queue is not lost
    assert cmds == [cm.ReturnOffer("dongnai", "101")]
    state, cmds = cm.step(state, cm.Offered(at(22), "102", 15, 10))
    assert cmds == [cm.RingOperator("102", "c1-op2", 15)]


def test_given_ringing_when_operator_answers_then_bridge_and_record() -> None:
    state, cmds = cm.step(ringing(), cm.OperatorAnswered(at(9), "101"))
    assert state.phase is cm.Phase.BRIDGED and state.operator == "101"
    assert state.bridged_at == at(9) and state.bridge == "c1-bridge"
    assert state.recording == "dongnai-20261123-c1.wav"
    assert cmds == [cm.StopMoh(), cm.BridgeOperator("c1-bridge", "c1-op1",
                                                    "dongnai-20261123-c1")]


def test_given_ringing_when_another_operator_answers_then_illegal() -> None:
    with pytest.raises(cm.IllegalTransition):
        cm.step(ringing("101"), cm.OperatorAnswered(at(9), "102"))


def test_given_bridged_when_caller_hangs_up_then_operator_leg_ends_and_wrap_up() -> None:
    """The operator is freed only once their leg is gone (``after``): freed at once, the queue
    could ring the phone with the next call before the BYE of this one (issue 19.3)."""
    state, cmds = cm.step(bridged(), cm.HungUp(at(70), 16, "16 Normal Clearing"))
    assert state.phase is cm.Phase.ENDED and state.outcome == "answered"
    assert state.talk_ended_at == at(70) and state.wrap_up_s == 10
    # The bridge and the line go at once; freeing the operator (which waits for the leg) last.
    assert cmds == [cm.HangupChannel("c1-op1"), cm.DestroyBridge("c1-bridge"),
                    cm.ReleaseLine("dongnai"),
                    cm.EndOperatorCall("dongnai", "101", after=("c1-op1",)), cm.WriteRecord()]


def test_given_bridged_when_operator_hangs_up_then_caller_is_hung_up() -> None:
    state, cmds = cm.step(bridged(), cm.OperatorGone(at(60), "c1-op1", 16))
    assert state.phase is cm.Phase.CLOSING and state.talk_ended_at == at(60)
    # Their leg is gone already: nothing to wait for before freeing them.
    assert cmds == [cm.EndOperatorCall("dongnai", "101", after=()), cm.Hangup("normal")]
    state, cmds = cm.step(state, cm.HungUp(at(60.1), 16))
    assert state.outcome == "answered" and state.talk_ended_at == at(60)
    assert cmds == [cm.DestroyBridge("c1-bridge"), cm.ReleaseLine("dongnai"), cm.WriteRecord()]


def test_given_queued_when_caller_hangs_up_then_abandoned_and_dequeued() -> None:
    state, cmds = cm.step(queued(), cm.HungUp(at(30), 16))
    assert state.outcome == "abandoned"  # even though the greeting answered the call
    assert cmds == [cm.Dequeue("dongnai", "abandoned", None), cm.ReleaseLine("dongnai"),
                    cm.WriteRecord()]


def test_given_ringing_when_caller_hangs_up_then_the_phone_stops_ringing() -> None:
    state, cmds = cm.step(ringing(), cm.HungUp(at(8), 16))
    assert state.outcome == "abandoned" and state.operator is None and state.wrap_up_s is None
    # Out of the queue (the operator free) only once the phone's leg is gone (issue 19.3).
    # The line goes at once, whatever the wait for the leg.
    assert cmds == [cm.HangupChannel("c1-op1"), cm.ReleaseLine("dongnai"),
                    cm.Dequeue("dongnai", "abandoned", "101", after=("c1-op1",)),
                    cm.WriteRecord()]


def test_given_queued_when_announcement_due_then_music_stops_for_it_and_resumes() -> None:
    state, cmds = cm.step(queued(), cm.WaitTick(at(50), "announce", "vị trí thứ 2"))
    token = state.announcing
    assert token is not None and token > cm.QUEUE_TOKENS and state.announced_at == at(50)
    assert cmds == [cm.StopMoh(), mn.Say(Prompt("queue_position", "vị trí thứ 2"), token)]
    state, cmds = cm.step(state, cm.PlaybackFinished(at(54), token))
    assert state.announcing is None and cmds == [cm.StartMoh()]


def test_given_announcing_when_operator_answers_then_announcement_stops() -> None:
    state, _ = cm.step(queued(), cm.WaitTick(at(50), "announce", "x"))
    token = state.announcing
    assert token is not None
    state, _ = cm.step(state, cm.Offered(at(51), "101", 15, 0))
    state, cmds = cm.step(state, cm.OperatorAnswered(at(52), "101"))
    assert cmds[0] == mn.StopSaying(token) and state.announcing is None


def test_given_callback_offered_when_caller_presses_1_then_request_saved_and_goodbye() -> None:
    state, _ = cm.step(queued(), cm.WaitTick(at(300), "callback", "bấm phím 1"))
    assert state.callback_offered
    offer_token = state.announcing
    state, cmds = cm.step(state, mn.Digit(at(303), "1"))
    assert state.phase is cm.Phase.CLOSING and state.outcome == "callback"
    token = state.closing_token
    assert token is not None
    assert cmds == [cm.Dequeue("dongnai", "callback", None), cm.SaveCallback("dongnai"),
                    mn.StopSaying(offer_token), cm.StopMoh(),
                    mn.Say(Prompt("queue_callback_confirm", CALLBACK_CONFIRM_TEXT), token)]
    state, cmds = cm.step(state, cm.PlaybackFinished(at(308), token))
    assert cmds == [cm.Hangup("normal")]
    state, cmds = cm.step(state, cm.HungUp(at(308.1), 16))
    assert state.outcome == "callback"
    assert cmds == [cm.ReleaseLine("dongnai"), cm.WriteRecord()]


def test_given_phone_ringing_when_caller_takes_callback_then_operator_freed_after_ring_stops(
) -> None:
    state, _ = cm.step(queued(), cm.WaitTick(at(300), "callback", "bấm phím 1"))
    state, _ = cm.step(state, cm.Offered(at(301), "101", 15, 10))
    state, cmds = cm.step(state, mn.Digit(at(303), "1"))
    assert state.phase is cm.Phase.CLOSING and state.outcome == "callback"
    assert cmds[:3] == [cm.HangupChannel("c1-op1"),
                        cm.Dequeue("dongnai", "callback", "101", after=("c1-op1",)),
                        cm.SaveCallback("dongnai")]


def test_given_no_callback_offer_when_caller_presses_1_then_nothing() -> None:
    state = queued()
    again, cmds = cm.step(state, mn.Digit(at(20), "1"))
    assert again == state and cmds == []


def test_given_ringing_adopted_when_resumed_then_stale_leg_hung_up_and_music() -> None:
    state, cmds = cm.step(ringing(), cm.Resume(at(10)))
    assert state.phase is cm.Phase.QUEUED and state.ringing is None
    assert cmds == [cm.HangupChannel("c1-op1"), cm.StartMoh()]


def test_given_bridged_adopted_when_resumed_then_keeps_talking() -> None:
    state = bridged()
    again, cmds = cm.step(state, cm.Resume(at(10)))
    assert again == state and cmds == []


EVENTS = st.sampled_from([
    cm.Offered(at(1), "101", 15, 5), cm.Offered(at(1), "102", 15, 5),
    cm.OperatorGone(at(1), "c1-op1"), cm.OperatorGone(at(1), "c1-op2"),
    cm.OperatorAnswered(at(1), "101"), cm.WaitTick(at(1), "announce", "a"),
    cm.WaitTick(at(1), "callback", "b"), cm.PlaybackFinished(at(1), cm.QUEUE_TOKENS + 1),
    mn.Digit(at(1), "1"), mn.Digit(at(1), "5"), cm.HungUp(at(1), 16),
])


@given(st.lists(EVENTS, max_size=25))
def test_any_queue_sequence_ends_with_one_record_and_no_operator_left_behind(
        events: list[cm.Event]) -> None:
    state = queued()
    records = 0
    on_call: set[str] = set()
    for ev in [*events, cm.HungUp(at(2), 16)]:
        try:
            state, cmds = cm.step(state, ev)
        except cm.IllegalTransition:
            continue
        records += sum(isinstance(c, cm.WriteRecord) for c in cmds)
        if isinstance(ev, cm.OperatorAnswered):
            on_call.add(ev.extension)
        for c in cmds:
            if isinstance(c, cm.EndOperatorCall):
                on_call.discard(c.extension)
    assert state.phase is cm.Phase.ENDED and records == 1
    assert not on_call  # every operator who answered was moved on to wrap-up
