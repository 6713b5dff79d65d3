"""The call state machine: given a state and an event, exactly this state and these commands."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter import calls as cm

T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(seconds=1)


def fresh() -> cm.CallState:
    return cm.new_call("c1", "pbx1", "1022", "0909123456", "c1", T0)


def admitting() -> cm.CallState:
    state, _ = cm.step(fresh(), cm.Routed(T0, "dongnai", "day", 15))
    return state


def test_given_new_call_when_routed_to_tenant_then_asks_pool_for_a_line() -> None:
    state, cmds = cm.step(fresh(), cm.Routed(T0, "dongnai", "day", 15))
    assert state.phase is cm.Phase.ADMITTING
    assert (state.tenant_id, state.shift, state.limit) == ("dongnai", "day", 15)
    assert cmds == [cm.AcquireLine("dongnai", 15)]


def test_given_new_call_when_number_unknown_then_hangup_unallocated() -> None:
    state, cmds = cm.step(fresh(), cm.Routed(T0, None))
    assert state.phase is cm.Phase.REJECTING and state.outcome == "not_found"
    assert cmds == [cm.Hangup("unallocated")]


def test_given_admitting_when_line_granted_then_answer_and_greet() -> None:
    state, cmds = cm.step(admitting(), cm.LineGranted(T1))
    assert state.phase is cm.Phase.GREETING and state.line_held
    assert state.answered_at is None  # not billed until Asterisk confirms the answer
    assert cmds == [cm.Answer(), cm.Play("dongnai", "greeting")]


def test_given_greeting_when_answer_confirmed_then_answered_at_set_once() -> None:
    state, _ = cm.step(admitting(), cm.LineGranted(T0))
    state, cmds = cm.step(state, cm.Answered(T1))
    assert state.answered_at == T1 and cmds == []
    state, _ = cm.step(state, cm.Answered(T1 + dt.timedelta(seconds=5)))
    assert state.answered_at == T1


def test_given_line_granted_when_caller_gone_before_answer_then_abandoned_not_answered() -> None:
    state, _ = cm.step(admitting(), cm.LineGranted(T1))
    state, cmds = cm.step(state, cm.HungUp(T1, 16))
    assert state.outcome == "abandoned"
    assert cmds == [cm.ReleaseLine("dongnai"), cm.WriteRecord()]


def test_given_admitting_when_pool_call_fails_then_line_released_anyway() -> None:
    state, cmds = cm.step(admitting(), cm.Failed(T1, "redis reply lost"))
    assert state.outcome == "failed"
    assert cmds == [cm.ReleaseLine("dongnai"), cm.Hangup("failure"), cm.WriteRecord()]


def test_given_admitting_when_line_refused_then_early_media_busy_message_never_answer() -> None:
    state, cmds = cm.step(admitting(), cm.LineRefused(T1))
    assert state.phase is cm.Phase.BUSY_MESSAGE and state.outcome == "busy"
    assert cmds == [cm.Progress(), cm.Play("dongnai", "all_busy")]
    assert not any(isinstance(c, cm.Answer) for c in cmds)


def test_given_busy_message_when_finished_then_hangup_busy() -> None:
    state, _ = cm.step(admitting(), cm.LineRefused(T1))
    state, cmds = cm.step(state, cm.PlaybackFinished(T1))
    assert cmds == [cm.Hangup("busy")]
    state, cmds = cm.step(state, cm.HungUp(T1, 17, "17 User busy"))
    assert state.phase is cm.Phase.ENDED and state.outcome == "busy"
    assert cmds == [cm.WriteRecord()]  # no line was held, none is released


def test_given_greeting_when_finished_then_music_on_hold() -> None:
    state, _ = cm.step(admitting(), cm.LineGranted(T1))
    state, cmds = cm.step(state, cm.PlaybackFinished(T1))
    assert state.phase is cm.Phase.HOLDING and cmds == [cm.StartMoh()]


def test_given_holding_when_caller_hangs_up_then_release_line_and_record_answered() -> None:
    state, _ = cm.step(admitting(), cm.LineGranted(T1))
    state, _ = cm.step(state, cm.Answered(T1))
    state, _ = cm.step(state, cm.PlaybackFinished(T1))
    state, cmds = cm.step(state, cm.HungUp(T1, 16, "16 Normal Clearing"))
    assert state.phase is cm.Phase.ENDED and state.outcome == "answered"
    assert (state.cause_code, state.cause, state.ended_at) == (16, "16 Normal Clearing", T1)
    assert cmds == [cm.ReleaseLine("dongnai"), cm.WriteRecord()]


def test_given_admitting_when_caller_hangs_up_then_abandoned_and_late_grant_released() -> None:
    state, cmds = cm.step(admitting(), cm.HungUp(T1, 16))
    assert state.outcome == "abandoned"
    assert cmds == [cm.ReleaseLine("dongnai"), cm.WriteRecord()]
    state, cmds = cm.step(state, cm.LineGranted(T1))
    assert cmds == [cm.ReleaseLine("dongnai")]  # the race: pool said yes after the hang-up


def test_given_greeting_when_command_fails_then_failed_hangup_and_release() -> None:
    state, _ = cm.step(admitting(), cm.LineGranted(T1))
    state, cmds = cm.step(state, cm.Failed(T1, "internal error"))
    assert state.outcome == "failed"
    assert cmds == [cm.ReleaseLine("dongnai"), cm.Hangup("failure"), cm.WriteRecord()]


def test_given_ended_call_when_hangup_echo_arrives_then_nothing_happens() -> None:
    state, _ = cm.step(admitting(), cm.HungUp(T1))
    assert cm.step(state, cm.HungUp(T1)) == (state, [])


@pytest.mark.parametrize("event", [cm.LineGranted(T0), cm.LineRefused(T0),
                                   cm.PlaybackFinished(T0)])
def test_given_routing_when_out_of_order_event_then_illegal(event: cm.Event) -> None:
    with pytest.raises(cm.IllegalTransition):
        cm.step(fresh(), event)


def test_given_ended_call_when_routed_then_illegal() -> None:
    state, _ = cm.step(admitting(), cm.HungUp(T1))
    with pytest.raises(cm.IllegalTransition):
        cm.step(state, cm.Routed(T1, "dongnai", "day", 2))


EVENTS = st.sampled_from([
    cm.LineGranted(T1), cm.Answered(T1), cm.LineRefused(T1), cm.PlaybackFinished(T1),
    cm.HungUp(T1, 16), cm.Failed(T1, "x"),
])


@given(st.lists(EVENTS, max_size=8))
def test_given_any_event_sequence_then_lines_taken_equal_lines_released(
        events: list[cm.Event]) -> None:
    """Whatever Asterisk throws at a call, a granted line is always released."""
    state, cmds = cm.step(fresh(), cm.Routed(T0, "dongnai", "day", 3))
    held = 0
    acquired = 0
    for ev in events:
        try:
            state, cmds = cm.step(state, ev)
        except cm.IllegalTransition:
            continue
        if isinstance(ev, cm.LineGranted):
            acquired += 1
        held += sum(isinstance(c, cm.ReleaseLine) for c in cmds)
    if state.phase is not cm.Phase.ENDED:
        state, cmds = cm.step(state, cm.HungUp(T1))
        held += sum(isinstance(c, cm.ReleaseLine) for c in cmds)
    assert acquired <= held <= acquired + 1  # one extra, idempotent, release from ADMITTING
    assert state.outcome in cm.OUTCOMES
    if state.outcome == "answered":
        assert state.answered_at is not None


# ---- calls with IVR menus -------------------------------------------------------------------
def _ivr() -> cm.IvrContext:
    from callcenter.config.base import BaseParser
    from callcenter.config.model import DEFAULT_FIELDS
    from callcenter.ivr.config import parse_ivr
    from callcenter.ivr.menu import NoFaq
    from callcenter.ivr.tree import Prompt

    p = BaseParser("t.yaml")
    tree = parse_ivr(p, {"root": "main", "nodes": {
        "main": {"type": "menu", "prompt": "Bấm 1 gặp tổng đài viên, bấm 2 kết thúc",
                 "options": {"1": "op", "2": "bye"}},
        "op": {"type": "operator", "prompt": "Xin giữ máy", "urgent": True},
        "bye": {"type": "goodbye", "prompt": "Xin chào"}}}, "ivr", DEFAULT_FIELDS)
    assert tree is not None and not p.errors
    return cm.IvrContext(tree, NoFaq(), Prompt("greeting", "Kính chào"))


def in_ivr() -> tuple[cm.CallState, cm.IvrContext]:
    ivr = _ivr()
    state, cmds = cm.step(admitting(), cm.LineGranted(T1), ivr)
    return state, ivr


def test_given_tenant_with_menus_when_line_granted_then_answer_and_greeting_prompt() -> None:
    from callcenter.ivr import menu as mn
    from callcenter.ivr.tree import Prompt

    ivr = _ivr()
    state, cmds = cm.step(admitting(), cm.LineGranted(T1), ivr)
    assert state.phase is cm.Phase.IVR and state.line_held and state.menu is not None
    assert cmds == [cm.Answer(), mn.Say(Prompt("greeting", "Kính chào"), 1)]


def test_given_ivr_when_prompt_ends_then_menu_goes_on() -> None:
    from callcenter.ivr import menu as mn

    state, ivr = in_ivr()
    state, cmds = cm.step(state, cm.PlaybackFinished(T1, 1), ivr)
    assert cmds == [mn.Say(ivr.tree.node("main").prompt, 2)]  # type: ignore[union-attr]


def test_given_ivr_when_operator_chosen_then_hold_with_music_and_urgent_kept() -> None:
    from callcenter.ivr import menu as mn

    state, ivr = in_ivr()
    state, cmds = cm.step(state, mn.Digit(T1, "1"), ivr)
    assert cmds[0] == mn.StopSaying(1)
    playing = state.menu.playing if state.menu else None
    state, cmds = cm.step(state, cm.PlaybackFinished(T1, playing or 0), ivr)
    assert state.phase is cm.Phase.HOLDING and state.urgent and state.operator_node == "op"
    assert cmds == [cm.StartMoh()]


def test_given_ivr_when_goodbye_ends_then_normal_hangup_and_answered_record() -> None:
    from callcenter.ivr import menu as mn

    state, ivr = in_ivr()
    state, _ = cm.step(state, cm.Answered(T1), ivr)
    state, _ = cm.step(state, mn.Digit(T1, "2"), ivr)
    playing = state.menu.playing if state.menu else 0
    state, cmds = cm.step(state, cm.PlaybackFinished(T1, playing or 0), ivr)
    assert state.phase is cm.Phase.CLOSING and cmds == [cm.Hangup("normal")]
    state, cmds = cm.step(state, cm.HungUp(T1, 16, "16 Normal Clearing"), ivr)
    assert state.outcome == "answered"
    assert cmds == [cm.ReleaseLine("dongnai"), cm.WriteRecord()]
    assert [s.event for s in state.menu.path] == ["enter", "digit", "enter", "goodbye"]  # type: ignore[union-attr]


def test_given_ivr_waiting_when_caller_hangs_up_then_timer_cancelled_line_released() -> None:
    from callcenter.ivr import menu as mn

    state, ivr = in_ivr()
    state, _ = cm.step(state, cm.PlaybackFinished(T1, 1), ivr)
    state, cmds = cm.step(state, cm.PlaybackFinished(T1, 2), ivr)
    assert cmds == [mn.StartTimer(3, 6.0)]
    state, cmds = cm.step(state, cm.HungUp(T1, 16, "16 Normal Clearing"), ivr)
    assert cmds == [mn.CancelTimer(), cm.ReleaseLine("dongnai"), cm.WriteRecord()]
    assert state.phase is cm.Phase.ENDED and state.menu is not None
    assert state.menu.path[-1].event == "hangup"


def test_given_no_menus_when_digits_or_timers_then_ignored() -> None:
    from callcenter.ivr import menu as mn

    state, _ = cm.step(admitting(), cm.LineGranted(T1))
    assert cm.step(state, mn.Digit(T1, "5")) == (state, [])
    assert cm.step(state, mn.TimerFired(T1, 3)) == (state, [])


def test_given_adopted_ivr_call_when_resumed_then_root_again_with_path_kept() -> None:
    from callcenter.ivr import menu as mn

    state, ivr = in_ivr()
    state, _ = cm.step(state, mn.Digit(T1, "7"), ivr)
    before = len(state.menu.path)  # type: ignore[union-attr]
    state, cmds = cm.step(state, cm.Resume(T1), ivr)
    assert state.menu is not None and state.menu.node == "main"
    assert len(state.menu.path) == before + 1 and isinstance(cmds[-1], mn.Say)
