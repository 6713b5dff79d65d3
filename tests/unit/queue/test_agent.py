"""The agent (operator) state machine: every (state, event) pair, pending requests, invariants."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.queue import agent as ag
from callcenter.queue.policy import QueuePolicy

S = ag.AgentStatus
T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(seconds=10)
IDLE = T0 - dt.timedelta(minutes=5)
POLICY = QueuePolicy()  # wrap-up 10 s, no auto-pause


def agent(status: S, **kw: object) -> ag.AgentState:
    base = ag.AgentState("101", status, T0, name="Lan", reachable=True)
    extra: dict[str, object] = {}
    if status is S.AVAILABLE:
        extra = {"idle_since": IDLE}
    elif status is S.RINGING:
        extra = {"idle_since": IDLE, "call_id": "c1"}
    elif status is S.ON_CALL:
        extra = {"call_id": "c1"}
    elif status is S.WRAP_UP:
        extra = {"call_id": "c1", "wrap_up_until": T0 + dt.timedelta(seconds=10),
                 "last_call_end": T0}
    elif status is S.PAUSED:
        extra = {"reason": "break"}
    extra.update(kw)
    return replace(base, **extra)  # type: ignore[arg-type]


EVENTS: dict[str, ag.Event] = {
    "LogIn": ag.LogIn(), "LogOut": ag.LogOut(), "Pause": ag.Pause("meeting"),
    "Unpause": ag.Unpause(), "Offer": ag.Offer("c1"), "Answered": ag.Answered("c1"),
    "NoAnswer": ag.NoAnswer("c1"), "OfferLost": ag.OfferLost("c1"),
    "CallEnded": ag.CallEnded("c1"), "WrapUpDone": ag.WrapUpDone(),
    "Unreachable": ag.Unreachable(), "Reachable": ag.Reachable(),
}
X = None  # IllegalTransition
OFFER: list[ag.Command] = [ag.OfferCalls()]
RING_BACK: list[ag.Command] = [ag.StopRinging("c1"), ag.RequeueCall("c1")]
# (state, event) -> (status after, pause reason, pending, reachable, commands) or X.
TABLE: dict[tuple[S, str], tuple[S, str | None, str | None, bool, list[ag.Command]] | None] = {
    (S.LOGGED_OUT, "LogIn"): (S.AVAILABLE, None, None, True, OFFER),
    (S.LOGGED_OUT, "LogOut"): X,
    (S.LOGGED_OUT, "Pause"): X,
    (S.LOGGED_OUT, "Unpause"): X,
    (S.LOGGED_OUT, "Offer"): X,
    (S.LOGGED_OUT, "Answered"): X,
    (S.LOGGED_OUT, "NoAnswer"): X,
    (S.LOGGED_OUT, "OfferLost"): X,
    (S.LOGGED_OUT, "CallEnded"): X,
    (S.LOGGED_OUT, "WrapUpDone"): (S.LOGGED_OUT, None, None, True, []),
    (S.LOGGED_OUT, "Unreachable"): (S.LOGGED_OUT, None, None, False, []),
    (S.LOGGED_OUT, "Reachable"): (S.LOGGED_OUT, None, None, True, []),

    (S.AVAILABLE, "LogIn"): X,
    (S.AVAILABLE, "LogOut"): (S.LOGGED_OUT, None, None, True, []),
    (S.AVAILABLE, "Pause"): (S.PAUSED, "meeting", None, True, []),
    (S.AVAILABLE, "Unpause"): X,
    (S.AVAILABLE, "Offer"): (S.RINGING, None, None, True, [ag.RingPhone("c1")]),
    (S.AVAILABLE, "Answered"): X,
    (S.AVAILABLE, "NoAnswer"): X,
    (S.AVAILABLE, "OfferLost"): X,
    (S.AVAILABLE, "CallEnded"): X,
    (S.AVAILABLE, "WrapUpDone"): (S.AVAILABLE, None, None, True, []),
    (S.AVAILABLE, "Unreachable"): (S.AVAILABLE, None, None, False, []),
    (S.AVAILABLE, "Reachable"): (S.AVAILABLE, None, None, True, OFFER),

    (S.RINGING, "LogIn"): X,
    (S.RINGING, "LogOut"): (S.RINGING, None, "logout", True, []),
    (S.RINGING, "Pause"): (S.RINGING, None, "pause", True, []),
    (S.RINGING, "Unpause"): X,
    (S.RINGING, "Offer"): X,
    (S.RINGING, "Answered"): (S.ON_CALL, None, None, True, [ag.BridgeCall("c1")]),
    (S.RINGING, "NoAnswer"): (S.AVAILABLE, None, None, True, [*RING_BACK, *OFFER]),
    (S.RINGING, "OfferLost"): (S.AVAILABLE, None, None, True, [*RING_BACK, *OFFER]),
    (S.RINGING, "CallEnded"): (S.AVAILABLE, None, None, True, [ag.StopRinging("c1"), *OFFER]),
    (S.RINGING, "WrapUpDone"): (S.RINGING, None, None, True, []),
    (S.RINGING, "Unreachable"): (S.AVAILABLE, None, None, False, RING_BACK),
    (S.RINGING, "Reachable"): (S.RINGING, None, None, True, []),

    (S.ON_CALL, "LogIn"): X,
    (S.ON_CALL, "LogOut"): (S.ON_CALL, None, "logout", True, []),
    (S.ON_CALL, "Pause"): (S.ON_CALL, None, "pause", True, []),
    (S.ON_CALL, "Unpause"): X,
    (S.ON_CALL, "Offer"): X,
    (S.ON_CALL, "Answered"): X,
    (S.ON_CALL, "NoAnswer"): X,
    (S.ON_CALL, "OfferLost"): X,
    (S.ON_CALL, "CallEnded"): (S.WRAP_UP, None, None, True,
                               [ag.StartWrapUpTimer(T1 + dt.timedelta(seconds=10))]),
    (S.ON_CALL, "WrapUpDone"): (S.ON_CALL, None, None, True, []),
    (S.ON_CALL, "Unreachable"): (S.ON_CALL, None, None, False, []),
    (S.ON_CALL, "Reachable"): (S.ON_CALL, None, None, True, []),

    (S.WRAP_UP, "LogIn"): X,
    (S.WRAP_UP, "LogOut"): (S.WRAP_UP, None, "logout", True, []),
    (S.WRAP_UP, "Pause"): (S.WRAP_UP, None, "pause", True, []),
    (S.WRAP_UP, "Unpause"): X,
    (S.WRAP_UP, "Offer"): X,
    (S.WRAP_UP, "Answered"): X,
    (S.WRAP_UP, "NoAnswer"): X,
    (S.WRAP_UP, "OfferLost"): X,
    (S.WRAP_UP, "CallEnded"): X,
    (S.WRAP_UP, "WrapUpDone"): (S.AVAILABLE, None, None, True, OFFER),
    (S.WRAP_UP, "Unreachable"): (S.WRAP_UP, None, None, False, []),
    (S.WRAP_UP, "Reachable"): (S.WRAP_UP, None, None, True, []),

    (S.PAUSED, "LogIn"): X,
    (S.PAUSED, "LogOut"): (S.LOGGED_OUT, None, None, True, []),
    (S.PAUSED, "Pause"): (S.PAUSED, "meeting", None, True, []),
    (S.PAUSED, "Unpause"): (S.AVAILABLE, None, None, True, OFFER),
    (S.PAUSED, "Offer"): X,
    (S.PAUSED, "Answered"): X,
    (S.PAUSED, "NoAnswer"): X,
    (S.PAUSED, "OfferLost"): X,
    (S.PAUSED, "CallEnded"): X,
    (S.PAUSED, "WrapUpDone"): (S.PAUSED, "break", None, True, []),
    (S.PAUSED, "Unreachable"): (S.PAUSED, "break", None, False, []),
    (S.PAUSED, "Reachable"): (S.PAUSED, "break", None, True, []),
}


def test_the_table_covers_every_state_and_event() -> None:
    assert set(TABLE) == {(s, e) for s in S for e in EVENTS}


@pytest.mark.parametrize(("status", "event"), [(s, e) for s in S for e in EVENTS],
                         ids=lambda v: v.value if isinstance(v, S) else str(v))
def test_given_state_when_event_then_exactly_this_state_and_commands(status: S,
                                                                     event: str) -> None:
    before = agent(status)
    expected = TABLE[(status, event)]
    if expected is None:
        with pytest.raises(ag.IllegalTransition) as info:
            ag.step(before, EVENTS[event], T1, POLICY)
        assert f"{event} in state {status.value}" in str(info.value)
        assert "agent 101" in str(info.value)
        return
    after, cmds = ag.step(before, EVENTS[event], T1, POLICY)
    new_status, reason, pending, reachable, commands = expected
    assert after.status is new_status
    assert after.reason == reason
    assert after.pending == pending
    assert after.reachable is reachable
    assert cmds == commands
    if new_status is not status:
        assert after.since == T1  # time in state restarts on every change of state
    else:
        assert after.since == (T1 if (status, event) == (S.PAUSED, "Pause") else T0)


def test_given_available_when_paused_then_reason_kept_and_not_offerable() -> None:
    after, _ = ag.step(agent(S.AVAILABLE), ag.Pause("paperwork"), T1)
    assert (after.status, after.reason, after.idle_since) == (S.PAUSED, "paperwork", None)
    assert not after.offerable


def test_given_unknown_pause_reason_when_paused_then_illegal_naming_the_known_ones() -> None:
    with pytest.raises(ag.IllegalTransition, match="unknown pause reason 'lunch'.*break"):
        ag.step(agent(S.AVAILABLE), ag.Pause("lunch"), T1, POLICY)


def test_given_available_unreachable_when_offered_then_illegal() -> None:
    with pytest.raises(ag.IllegalTransition, match="unreachable agent is never offered"):
        ag.step(agent(S.AVAILABLE, reachable=False), ag.Offer("c1"), T1)


@pytest.mark.parametrize("event", [ag.Answered("c2"), ag.NoAnswer("c2"), ag.OfferLost("c2"),
                                   ag.CallEnded("c2")])
def test_given_ringing_for_c1_when_event_names_another_call_then_illegal(event: ag.Event) -> None:
    with pytest.raises(ag.IllegalTransition, match="'c1', not 'c2'"):
        ag.step(agent(S.RINGING), event, T1)


def test_given_on_call_for_c1_when_other_call_ends_then_illegal() -> None:
    with pytest.raises(ag.IllegalTransition, match="'c1', not 'c2'"):
        ag.step(agent(S.ON_CALL), ag.CallEnded("c2"), T1)


def test_given_pause_during_call_when_call_and_wrap_up_end_then_paused_with_that_reason() -> None:
    a, _ = ag.step(agent(S.ON_CALL), ag.Pause("meeting"), T0)
    assert (a.status, a.pending, a.pending_reason) == (S.ON_CALL, "pause", "meeting")
    a, _ = ag.step(a, ag.CallEnded("c1"), T1)
    assert a.status is S.WRAP_UP and a.pending == "pause"
    a, cmds = ag.step(a, ag.WrapUpDone(), T1 + dt.timedelta(seconds=10))
    assert (a.status, a.reason, a.pending, a.call_id) == (S.PAUSED, "meeting", None, None)
    assert cmds == []  # paused: nothing to offer


def test_given_pause_while_ringing_when_rings_out_then_paused_not_available() -> None:
    a, _ = ag.step(agent(S.RINGING), ag.Pause("break"), T0)
    a, cmds = ag.step(a, ag.NoAnswer("c1"), T1)
    assert (a.status, a.reason) == (S.PAUSED, "break")
    assert cmds == RING_BACK


def test_given_logout_during_call_when_call_ends_without_wrap_up_then_logged_out() -> None:
    a, _ = ag.step(agent(S.ON_CALL), ag.LogOut(), T0)
    a, cmds = ag.step(a, ag.CallEnded("c1"), T1, QueuePolicy(wrap_up_s=0))
    assert a.status is S.LOGGED_OUT and a.last_call_end == T1 and cmds == []


def test_given_pending_logout_when_logged_in_again_then_cancelled() -> None:
    a, _ = ag.step(agent(S.ON_CALL), ag.LogOut(), T0)
    a, cmds = ag.step(a, ag.LogIn(), T0)
    assert (a.status, a.pending, cmds) == (S.ON_CALL, None, [])


def test_given_pending_pause_when_unpaused_then_cancelled_and_available_after_call() -> None:
    a, _ = ag.step(agent(S.WRAP_UP), ag.Pause("break"), T0)
    a, _ = ag.step(a, ag.Unpause(), T0)
    assert a.pending is None
    a, cmds = ag.step(a, ag.WrapUpDone(), T1)
    assert a.status is S.AVAILABLE and cmds == OFFER


def test_given_pending_logout_when_unpaused_then_illegal() -> None:
    a, _ = ag.step(agent(S.ON_CALL), ag.LogOut(), T0)
    with pytest.raises(ag.IllegalTransition, match="not paused"):
        ag.step(a, ag.Unpause(), T0)


def test_given_pending_pause_when_logout_requested_then_latest_request_wins() -> None:
    a, _ = ag.step(agent(S.ON_CALL), ag.Pause("break"), T0)
    a, _ = ag.step(a, ag.LogOut(), T0)
    assert (a.pending, a.pending_reason) == ("logout", None)


def test_given_auto_pause_policy_when_rings_out_then_paused_no_answer() -> None:
    a, cmds = ag.step(agent(S.RINGING), ag.NoAnswer("c1"), T1,
                      QueuePolicy(auto_pause_on_no_answer=True))
    assert (a.status, a.reason) == (S.PAUSED, "no_answer")
    assert cmds == RING_BACK


def test_given_auto_pause_policy_when_offer_lost_then_available() -> None:
    a, _ = ag.step(agent(S.RINGING), ag.OfferLost("c1"), T1,
                   QueuePolicy(auto_pause_on_no_answer=True))
    assert a.status is S.AVAILABLE


def test_given_ring_out_when_back_to_available_then_idle_since_kept() -> None:
    a, _ = ag.step(agent(S.RINGING), ag.NoAnswer("c1"), T1)
    assert a.idle_since == IDLE and a.since == T1


def test_given_wrap_up_when_done_then_idle_since_restarts() -> None:
    a, _ = ag.step(agent(S.WRAP_UP), ag.WrapUpDone(), T1)
    assert a.idle_since == T1 and a.call_id is None and a.wrap_up_until is None


def test_given_no_wrap_up_policy_when_call_ends_then_available_at_once() -> None:
    a, cmds = ag.step(agent(S.ON_CALL), ag.CallEnded("c1"), T1, QueuePolicy(wrap_up_s=0))
    assert (a.status, a.idle_since, a.last_call_end) == (S.AVAILABLE, T1, T1)
    assert cmds == OFFER


def test_given_call_ended_when_wrap_up_then_until_is_now_plus_policy() -> None:
    a, _ = ag.step(agent(S.ON_CALL), ag.CallEnded("c1"), T1, QueuePolicy(wrap_up_s=30))
    assert a.wrap_up_until == T1 + dt.timedelta(seconds=30)
    assert a.call_id == "c1"  # the console shows which call is being wrapped up


def test_given_pending_pause_when_phone_unreachable_while_ringing_then_paused() -> None:
    a, _ = ag.step(agent(S.RINGING), ag.Pause("break"), T0)
    a, cmds = ag.step(a, ag.Unreachable(), T1)
    assert (a.status, a.reason, a.reachable) == (S.PAUSED, "break", False)
    assert cmds == RING_BACK


def test_time_in_state_and_describe() -> None:
    a = agent(S.PAUSED)
    assert a.time_in_state(T1) == dt.timedelta(seconds=10)
    assert a.time_in_state(T0 - dt.timedelta(seconds=1)) == dt.timedelta(0)
    b, _ = ag.step(a, ag.Unpause(), T1)
    assert ag.describe(a, ag.Unpause(), b) == "101: paused(break) -[Unpause]-> available"
    c, _ = ag.step(agent(S.ON_CALL, reachable=False), ag.Pause("meeting"), T1)
    assert ag.describe(c, ag.LogOut(), c) == \
        "101: on_call +pending pause(meeting) unreachable -[LogOut]-> " \
        "on_call +pending pause(meeting) unreachable"


def test_new_agent_is_logged_out_and_unreachable_until_ami_says() -> None:
    a = ag.new_agent("101", T0, "Lan")
    assert (a.status, a.reachable, a.name, a.since) == (S.LOGGED_OUT, False, "Lan", T0)


# ---- invariants over any sequence of events -------------------------------------------------
event_st = st.sampled_from([
    ag.LogIn(), ag.LogOut(), ag.Pause("break"), ag.Pause("meeting"), ag.Unpause(),
    ag.Offer("c1"), ag.Offer("c2"), ag.Answered("c1"), ag.Answered("c2"), ag.NoAnswer("c1"),
    ag.OfferLost("c2"), ag.CallEnded("c1"), ag.CallEnded("c2"), ag.WrapUpDone(),
    ag.Unreachable(), ag.Reachable(),
])


@settings(max_examples=300)
@given(st.lists(st.tuples(event_st, st.integers(0, 100)), max_size=60),
       st.booleans(), st.integers(0, 30))
def test_given_any_events_then_state_stays_consistent(
        events: list[tuple[ag.Event, int]], auto_pause: bool, wrap_up: int) -> None:
    policy = QueuePolicy(auto_pause_on_no_answer=auto_pause, wrap_up_s=wrap_up)
    a = ag.new_agent("101", T0)
    now = T0
    for event, secs in events:
        now += dt.timedelta(seconds=secs)
        before = a
        try:
            a, cmds = ag.step(a, event, now, policy)
        except ag.IllegalTransition:
            assert a == before
            continue
        in_call = a.status in (S.RINGING, S.ON_CALL, S.WRAP_UP)
        assert (a.call_id is not None) == in_call
        assert a.pending is None or in_call
        assert (a.pending_reason is not None) == (a.pending == "pause")
        assert (a.reason is not None) == (a.status is S.PAUSED)
        assert (a.idle_since is not None) == (a.status in (S.AVAILABLE, S.RINGING))
        assert (a.wrap_up_until is not None) == (a.status is S.WRAP_UP)
        assert a.offerable == (a.status is S.AVAILABLE and a.reachable)
        assert a.since <= now
        if ag.RingPhone(event.call_id if isinstance(event, ag.Offer) else "") in cmds:
            assert before.offerable
        if any(isinstance(c, ag.OfferCalls) for c in cmds):
            assert a.status is S.AVAILABLE


def test_given_counts_per_state_when_logged_in_counted_then_every_state_but_logged_out() -> None:
    by_state = {s.value: 1 for s in ag.AgentStatus}
    by_state["logged_out"] = 7
    assert ag.logged_in_count(by_state) == len(ag.AgentStatus) - 1
    assert ag.logged_in_count({"logged_out": 3}) == 0
    assert ag.logged_in_count({}) == 0
