"""The call machine when every line is taken and the shift offers "press 1 to be called back"
(Shift.callback_when_full): given a state and an event, exactly this state and these commands."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter import calls as cm
from callcenter.calls.full_offer import dialable
from callcenter.ivr import menu as mn
from callcenter.store.recorder import record_of

T0 = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)  # 22:00 in Đồng Nai: the night shift
OFFER = cm.QUEUE_TOKENS + 1  # the offer's playback token (the call's first named prompt)
NODE = cm.FULL_OFFER_NODE


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def refused(offer: bool = True, caller: str = "0909123456") -> cm.CallState:
    """Routed in a shift with (or without) the offer; the pool then refused a line."""
    state = cm.new_call("c1", "pbx1", "1022", caller, "c1", T0)
    state, cmds = cm.step(state, cm.Routed(T0, "dongnai", "night", 3, callback_when_full=offer))
    assert cmds == [cm.AcquireLine("dongnai", 3)] and state.callback_when_full is offer
    state, _ = cm.step(state, cm.LineRefused(at(0.01)))
    return state


def offering() -> cm.CallState:
    """Answered; the offer is being said."""
    state, _ = cm.step(refused(), cm.OfferGranted(at(0.02)))
    state, _ = cm.step(state, cm.Answered(at(0.05)))
    return state


def waiting_key() -> cm.CallState:
    """The offer was said; the key's timer runs."""
    state, cmds = cm.step(offering(), cm.PlaybackFinished(at(6), OFFER))
    assert cmds == [mn.StartTimer(OFFER, cm.FULL_OFFER_KEY_S)]
    return state


def test_given_shift_without_offer_when_lines_full_then_early_media_busy_as_before() -> None:
    state = refused(offer=False)
    assert state.phase is cm.Phase.BUSY_MESSAGE and state.outcome == "busy"
    state, cmds = cm.step(state, cm.PlaybackFinished(at(5)))
    assert cmds == [cm.Hangup("busy")]


def test_given_shift_with_offer_when_lines_full_then_asks_for_an_offer_slot_not_a_line() -> None:
    state = cm.new_call("c1", "pbx1", "1022", "0909123456", "c1", T0)
    state, _ = cm.step(state, cm.Routed(T0, "dongnai", "night", 3, callback_when_full=True))
    state, cmds = cm.step(state, cm.LineRefused(at(0.01)))
    assert state.phase is cm.Phase.OFFER_ADMITTING and not state.line_held
    assert cmds == [cm.HoldOffer("dongnai", cm.FULL_OFFER_SLOTS)]


def test_given_offer_slots_all_taken_when_refused_then_plain_busy_message_never_answered() -> None:
    state, cmds = cm.step(refused(), cm.OfferRefused(at(0.02)))
    assert state.phase is cm.Phase.BUSY_MESSAGE and state.outcome == "busy"
    assert cmds == [cm.Progress(), cm.Play("dongnai", "all_busy")]
    state, cmds = cm.step(state, cm.PlaybackFinished(at(5)))
    assert cmds == [cm.Hangup("busy")]
    state, cmds = cm.step(state, cm.HungUp(at(5.1), 17, "17 User busy"))
    assert cmds == [cm.WriteRecord()]  # neither a line nor an offer slot was held


@pytest.mark.parametrize("caller", ["anonymous", "", "Unknown", "12", "0909abc"])
def test_given_caller_we_cannot_dial_when_lines_full_then_busy_message_without_offer(
        caller: str) -> None:
    state = refused(caller=caller)
    assert state.phase is cm.Phase.BUSY_MESSAGE


def test_given_offer_slot_when_granted_then_answer_and_say_the_offer() -> None:
    state, cmds = cm.step(refused(), cm.OfferGranted(at(0.02)))
    assert state.phase is cm.Phase.CALLBACK_OFFER and state.offer_held and not state.line_held
    assert cmds == [cm.Answer(), cm.Play("dongnai", "callback_offer", OFFER)]
    assert state.offer_path == (mn.Step(at(0.02), "callback_offer", node=NODE),)
    state, cmds = cm.step(state, cm.Answered(at(0.05)))
    assert state.answered_at == at(0.05) and cmds == []


def test_given_offer_said_when_caller_presses_1_then_pool_full_callback_confirmed_then_hangup(
        ) -> None:
    state, cmds = cm.step(waiting_key(), mn.Digit(at(8), "1"))
    confirm = OFFER + 1
    assert state.phase is cm.Phase.CLOSING and state.outcome == "callback"
    assert cmds == [mn.CancelTimer(), cm.SaveCallback("dongnai", "pool_full"),
                    cm.Play("dongnai", "callback_confirm", confirm)]
    assert state.offer_path[1:] == (mn.Step(at(8), "digit", node=NODE, digit="1"),
                                    mn.Step(at(8), "callback", node=NODE))
    state, cmds = cm.step(state, mn.Digit(at(9), "1"))  # pressed again: nothing more
    assert cmds == []
    state, cmds = cm.step(state, cm.PlaybackFinished(at(12), confirm))
    assert cmds == [cm.Hangup("normal")]
    state, cmds = cm.step(state, cm.HungUp(at(12.1), 16, "16 Normal Clearing"))
    assert state.phase is cm.Phase.ENDED and state.outcome == "callback"
    assert cmds == [cm.ReleaseOffer("dongnai"), cm.WriteRecord()]
    assert not state.offer_held


def test_given_offer_still_playing_when_caller_presses_1_then_offer_stopped_barge_in() -> None:
    state, cmds = cm.step(offering(), mn.Digit(at(2), "1"))
    assert cmds == [mn.StopSaying(OFFER), cm.SaveCallback("dongnai", "pool_full"),
                    cm.Play("dongnai", "callback_confirm", OFFER + 1)]
    assert state.outcome == "callback"
    # The stopped offer's end is not the confirmation's: no hang-up yet.
    state, cmds = cm.step(state, cm.PlaybackFinished(at(2.1), OFFER))
    assert cmds == []


@pytest.mark.parametrize("digit", ["2", "0", "9", "*", "#"])
def test_given_offer_said_when_other_key_then_busy_message_and_hangup_no_request(
        digit: str) -> None:
    state, cmds = cm.step(waiting_key(), mn.Digit(at(8), digit))
    assert state.phase is cm.Phase.CLOSING and state.outcome == "busy"
    assert cmds == [mn.CancelTimer(), cm.Play("dongnai", "all_busy", OFFER + 1)]
    assert [s.event for s in state.offer_path] == ["callback_offer", "digit", "goodbye"]
    state, cmds = cm.step(state, cm.PlaybackFinished(at(13), OFFER + 1))
    assert cmds == [cm.Hangup("normal")]


def test_given_offer_said_when_no_key_in_time_then_busy_message_and_hangup() -> None:
    state, cmds = cm.step(waiting_key(), mn.TimerFired(at(12), OFFER))
    assert state.phase is cm.Phase.CLOSING and state.outcome == "busy"
    assert cmds == [cm.Play("dongnai", "all_busy", OFFER + 1)]
    assert state.offer_path[1:] == (mn.Step(at(12), "timeout", node=NODE),
                                    mn.Step(at(12), "goodbye", node=NODE))


def test_given_offer_when_stale_timer_or_other_prompt_ends_then_nothing() -> None:
    state = waiting_key()
    for event in (mn.TimerFired(at(9), 7), cm.PlaybackFinished(at(9), 3)):
        again, cmds = cm.step(state, event)
        assert again == state and cmds == []


def test_given_offer_when_caller_hangs_up_then_slot_released_and_recorded_busy() -> None:
    state, cmds = cm.step(waiting_key(), cm.HungUp(at(9), 16, "16 Normal Clearing"))
    assert state.phase is cm.Phase.ENDED and state.outcome == "busy"
    assert cmds == [cm.ReleaseOffer("dongnai"), cm.WriteRecord()]


def test_given_asking_for_a_slot_when_caller_hangs_up_then_slot_released_anyway() -> None:
    # The slot may have been granted by a reply that never reached us: releasing is idempotent.
    state, cmds = cm.step(refused(), cm.HungUp(at(0.03), 16))
    assert cmds == [cm.ReleaseOffer("dongnai"), cm.WriteRecord()]
    state, cmds = cm.step(state, cm.OfferGranted(at(0.04)))  # the late grant goes back too
    assert cmds == [cm.ReleaseOffer("dongnai")]
    state, cmds = cm.step(state, cm.OfferRefused(at(0.04)))
    assert cmds == []


def test_given_asking_for_a_slot_when_keys_arrive_then_ignored() -> None:
    state = refused()
    again, cmds = cm.step(state, mn.Digit(at(0.03), "1"))
    assert again == state and cmds == []


def test_given_accepted_offer_when_recorded_then_outcome_callback_and_offer_steps_in_path(
        ) -> None:
    state, _ = cm.step(waiting_key(), mn.Digit(at(8), "1"))
    state, _ = cm.step(state, cm.PlaybackFinished(at(12), OFFER + 1))
    state, _ = cm.step(state, cm.HungUp(at(12.1), 16, "16 Normal Clearing"))
    rec = record_of(state)
    assert (rec.outcome, rec.answered_at, rec.shift) == ("callback", at(0.05), "night")
    assert rec.ivr_path == [
        {"at": at(0.02).isoformat(), "event": "callback_offer", "node": NODE},
        {"at": at(8).isoformat(), "event": "digit", "node": NODE, "digit": "1"},
        {"at": at(8).isoformat(), "event": "callback", "node": NODE}]


def test_given_offer_in_progress_when_shared_then_read_back_equal() -> None:
    from callcenter.calls.codec import state_from_json, state_to_json

    state, _ = cm.step(waiting_key(), mn.Digit(at(8), "1"))
    assert state_from_json(state_to_json(state)) == state


@given(st.text(max_size=24))
def test_given_any_caller_id_then_dialable_only_if_digits(caller: str) -> None:
    digits = caller.removeprefix("+")
    expected = 3 <= len(digits) <= 20 and all(c in "0123456789" for c in digits)
    assert dialable(caller) is expected
