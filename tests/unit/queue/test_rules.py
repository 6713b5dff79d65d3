"""The pure ACD: who rings for which call, no-answer keeps the place, estimates, snapshot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.queue import agent as ag
from callcenter.queue import rules as acd
from callcenter.queue.policy import QueuePolicy
from callcenter.queue.rules import Match, QueueConflict, QueueEntry, TenantQueue

S = ag.AgentStatus
T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
POLICY = QueuePolicy()  # ring 15 s, retry 5 s, wrap-up 10 s
X = TypeVar("X")


def sec(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def available(ext: str, idle: float, reachable: bool = True) -> ag.AgentState:
    return ag.AgentState(ext, S.AVAILABLE, sec(idle), reachable=reachable, idle_since=sec(idle))


def entry(call_id: str, at: float, urgent: bool = False, **kw: object) -> QueueEntry:
    e = QueueEntry(call_id, "dongnai", sec(at), acd.priority_of(urgent))
    return replace(e, **kw)  # type: ignore[arg-type]


def queue(entries: list[QueueEntry], agents: list[ag.AgentState]) -> TenantQueue:
    return TenantQueue("dongnai", tuple(entries), tuple(agents))


# ---- selection ------------------------------------------------------------------------------
def test_given_two_available_when_call_waits_then_longest_idle_rings() -> None:
    m = acd.choose_next([entry("c1", 0)], [available("101", -10), available("102", -60)],
                        sec(1), POLICY)
    assert m == Match("c1", "102")


def test_given_equal_idle_when_choosing_then_lowest_extension_numerically() -> None:
    agents = [available("1001", -10), available("999", -10), available("101", -10)]
    assert acd.choose_next([entry("c1", 0)], agents, sec(1), POLICY) == Match("c1", "101")
    assert [m.extension for m in acd.choose_all(
        [entry("c1", 0), entry("c2", 1), entry("c3", 2)], agents, sec(3), POLICY)] == \
        ["101", "999", "1001"]


def test_given_urgent_call_behind_normal_ones_when_choosing_then_urgent_first() -> None:
    entries = [entry("c1", 0), entry("c2", 1), entry("u1", 5, urgent=True)]
    assert acd.choose_next(entries, [available("101", -10)], sec(6), POLICY) == Match("u1", "101")


def test_given_fifo_within_priority_when_choosing_all_then_in_enqueue_order() -> None:
    entries = [entry("c3", 3), entry("c1", 1), entry("u2", 4, urgent=True), entry("c2", 2),
               entry("u1", 3.5, urgent=True)]
    agents = [available(str(100 + i), -i) for i in range(1, 6)]
    assert acd.choose_all(entries, agents, sec(5), POLICY) == [
        Match("u1", "105"), Match("u2", "104"), Match("c1", "103"), Match("c2", "102"),
        Match("c3", "101")]


@pytest.mark.parametrize("status", [S.LOGGED_OUT, S.RINGING, S.ON_CALL, S.WRAP_UP, S.PAUSED])
def test_given_agent_not_available_when_choosing_then_never_offered(status: S) -> None:
    a = replace(available("101", -60), status=status)
    assert acd.choose_next([entry("c1", 0)], [a], sec(1), POLICY) is None


def test_given_unreachable_agent_when_choosing_then_never_offered() -> None:
    agents = [available("101", -60, reachable=False), available("102", -1)]
    assert acd.choose_next([entry("c1", 0)], agents, sec(1), POLICY) == Match("c1", "102")
    assert acd.choose_next([entry("c1", 0)], agents[:1], sec(1), POLICY) is None


def test_given_ringing_call_when_choosing_then_next_call_gets_the_agent() -> None:
    entries = [entry("c1", 0, ringing="102"), entry("c2", 1)]
    assert acd.choose_next(entries, [available("101", -5)], sec(2), POLICY) == Match("c2", "101")


def test_given_agent_let_call_ring_out_when_other_agent_free_then_other_rings() -> None:
    e = entry("c1", 0, declined=("101",), declined_at=sec(20))
    agents = [available("101", -60), available("102", -1)]
    assert acd.choose_next([e], agents, sec(21), POLICY) == Match("c1", "102")


def test_given_only_decliner_free_when_retry_not_elapsed_then_waits_then_rings_again() -> None:
    e = entry("c1", 0, declined=("101",), declined_at=sec(20))
    agents = [available("101", -60)]
    assert acd.choose_next([e], agents, sec(24), POLICY) is None
    assert acd.choose_next([e], agents, sec(25), POLICY) == Match("c1", "101")


def test_given_decliner_skipped_for_first_call_when_next_call_waits_then_it_takes_him() -> None:
    entries = [entry("c1", 0, declined=("101",), declined_at=sec(20)), entry("c2", 1)]
    assert acd.choose_next(entries, [available("101", -60)], sec(21), POLICY) == \
        Match("c2", "101")


def test_given_three_agents_when_each_lets_it_ring_out_then_all_tried_before_any_again() -> None:
    q = queue([entry("c1", 0)], [available("101", -30), available("102", -20),
                                 available("103", -10)])
    rung: list[str] = []
    now = sec(1)
    for _ in range(4):
        q, m = acd.offer_next(q, now, POLICY)
        if m is None:
            now += dt.timedelta(seconds=POLICY.retry_s)
            q, m = acd.offer_next(q, now, POLICY)
        assert m is not None
        rung.append(m.extension)
        now += dt.timedelta(seconds=15)
        q = acd.no_answer(q, "c1", m.extension, now, POLICY)
    assert rung == ["101", "102", "103", "101"]  # then a new cycle, longest idle first
    e = q.entry("c1")
    assert e is not None and e.offered_to == ("101", "102", "103", "101")
    assert e.declined == ("101",)


# ---- the queue as a value -------------------------------------------------------------------
def test_given_no_answer_when_returned_then_same_place_and_enqueue_time() -> None:
    q = queue([entry("c1", 0), entry("c2", 1), entry("c3", 2)],
              [available("101", -60), available("102", -30)])
    q, m1 = acd.offer_next(q, sec(3), POLICY)
    assert m1 == Match("c1", "101")
    assert acd.position(q, "c1") == 1
    q = acd.no_answer(q, "c1", "101", sec(18), POLICY)
    e = q.entry("c1")
    assert e is not None and e.enqueued_at == sec(0) and e.ringing is None
    assert [x.call_id for x in q.ordered()] == ["c1", "c2", "c3"]
    a = q.agent("101")
    assert a is not None and a.status is S.AVAILABLE and a.idle_since == sec(-60)
    q, m2 = acd.offer_next(q, sec(18), POLICY)
    assert m2 == Match("c1", "102")  # its place first, the other agent
    q, m3 = acd.offer_next(q, sec(18), POLICY)
    assert m3 == Match("c2", "101")  # skipped for c1 only


def test_given_auto_pause_when_rings_out_then_agent_paused_call_back_in_place() -> None:
    policy = QueuePolicy(auto_pause_on_no_answer=True)
    q, _ = acd.offer_next(queue([entry("c1", 0)], [available("101", -1)]), sec(1), policy)
    q = acd.no_answer(q, "c1", "101", sec(16), policy)
    a = q.agent("101")
    assert a is not None and (a.status, a.reason) == (S.PAUSED, "no_answer")
    assert acd.position(q, "c1") == 1


def test_given_offer_when_answered_then_call_leaves_agent_on_call() -> None:
    q, m = acd.offer_next(queue([entry("c1", 0)], [available("101", -1)]), sec(1), POLICY)
    assert m is not None
    q, e = acd.answered(q, "c1", "101", sec(4))
    assert e.offered_to == ("101",) and e.waited(sec(4)) == dt.timedelta(seconds=4)
    assert q.entries == ()
    a = q.agent("101")
    assert a is not None and (a.status, a.call_id, a.since) == (S.ON_CALL, "c1", sec(4))


def test_given_stale_offer_when_answered_then_conflict_offer_gone() -> None:
    q, _ = acd.offer_next(queue([entry("c1", 0)], [available("101", -1)]), sec(1), POLICY)
    q = acd.no_answer(q, "c1", "101", sec(16), POLICY)
    with pytest.raises(QueueConflict) as info:
        acd.answered(q, "c1", "101", sec(17))
    assert info.value.id == "offer_gone"


def test_given_call_ended_when_wrap_up_then_not_offered_until_it_ends() -> None:
    q, _ = acd.offer_next(queue([entry("c1", 0)], [available("101", -1)]), sec(1), POLICY)
    q, _ = acd.answered(q, "c1", "101", sec(2))
    q = acd.call_ended(q, "101", "c1", sec(62), POLICY)
    assert q.handle_ms == (70_000,)  # 60 s talk + 10 s wrap-up
    q, _ = acd.enqueue(q, entry("c2", 50))
    q, m = acd.offer_next(q, sec(71), POLICY)
    assert m is None
    q, m = acd.offer_next(q, sec(72), POLICY)
    assert m == Match("c2", "101")
    a = q.agent("101")
    assert a is not None and a.last_call_end == sec(62)


def test_given_wrong_call_when_call_ended_then_conflict_not_on_call() -> None:
    with pytest.raises(QueueConflict) as info:
        acd.call_ended(queue([], [available("101", 0)]), "101", "c1", sec(1), POLICY)
    assert info.value.id == "not_on_call"
    with pytest.raises(QueueConflict) as info:
        acd.call_ended(queue([], []), "109", "c1", sec(1), POLICY)
    assert info.value.id == "unknown_agent"


def test_given_ringing_call_when_caller_hangs_up_then_agent_free_and_call_gone() -> None:
    q, _ = acd.offer_next(queue([entry("c1", 0)], [available("101", -5)]), sec(1), POLICY)
    q, e = acd.dequeue(q, "c1", sec(3))
    assert e is not None and e.ringing == "101"
    a = q.agent("101")
    assert a is not None and a.status is S.AVAILABLE and a.idle_since == sec(-5)
    assert acd.dequeue(q, "c1", sec(4)) == (q, None)


def test_given_lost_offer_when_next_offer_then_taken_back_without_counting_a_decline() -> None:
    q, _ = acd.offer_next(queue([entry("c1", 0)], [available("101", -5)]), sec(1), POLICY)
    e = q.entry("c1")
    assert e is not None and e.offer_expires_at == sec(1 + 15 + acd.OFFER_MARGIN_S)
    q, m = acd.offer_next(q, sec(20), POLICY)
    assert m is None  # still within ring timeout + margin
    q, m = acd.offer_next(q, sec(21), POLICY)
    assert m == Match("c1", "101")  # taken back and offered again: no ring-out recorded
    e = q.entry("c1")
    assert e is not None and e.declined == ()


def test_given_unreachable_while_ringing_when_event_then_call_back_not_declined() -> None:
    q, _ = acd.offer_next(queue([entry("c1", 0)], [available("101", -5), available("102", 0)]),
                          sec(1), POLICY)
    q, cmds = acd.agent_event(q, "101", ag.Unreachable(), sec(2), POLICY)
    assert ag.RequeueCall("c1") in cmds
    e = q.entry("c1")
    assert e is not None and e.ringing is None and e.declined == ()
    q, m = acd.offer_next(q, sec(2), POLICY)
    assert m == Match("c1", "102")


def test_given_enqueued_twice_when_enqueue_then_second_is_ignored() -> None:
    q, added = acd.enqueue(queue([], []), entry("c1", 0))
    assert added
    q2, added = acd.enqueue(q, entry("c1", 5, urgent=True))
    assert not added and q2 == q


def test_sync_agents_adds_renames_and_drops_only_logged_out() -> None:
    busy = replace(available("103", 0), status=S.ON_CALL, call_id="c9", idle_since=None)
    q = queue([], [ag.new_agent("101", T0, "Old"), ag.new_agent("102", T0), busy])
    q = acd.sync_agents(q, [("101", "Lan"), ("104", "Minh")], sec(1))
    assert [(a.extension, a.name, a.status) for a in q.agents] == [
        ("101", "Lan", S.LOGGED_OUT), ("103", "", S.ON_CALL), ("104", "Minh", S.LOGGED_OUT)]


def test_callback_offers_are_counted() -> None:
    q = acd.callback_offered(queue([entry("c1", 0)], []), "c1")
    e = q.entry("c1")
    assert e is not None and e.callback_offers == 1
    with pytest.raises(QueueConflict):
        acd.callback_offered(q, "c2")


# ---- announcements, estimates, callback ----------------------------------------------------
def test_estimated_wait() -> None:
    assert acd.estimated_wait_s(1, 1, 3, 200) == 0
    assert acd.estimated_wait_s(2, 1, 3, 200) == 100  # agents on calls finish in AHT/2
    assert acd.estimated_wait_s(3, 0, 3, 200) == 100
    assert acd.estimated_wait_s(4, 0, 3, 200) == 300
    assert acd.estimated_wait_s(5, 1, 3, 200) == 300  # one more round of three calls
    assert acd.estimated_wait_s(3, 0, 0, 200) is None
    assert acd.estimated_wait_s(1, 0, 1, None) == acd.DEFAULT_HANDLE_S // 2


def test_average_handle_time_over_the_window() -> None:
    assert acd.average_handle_s(()) is None
    assert acd.average_handle_s((100_000, 200_000)) == 150.0
    q = queue([entry("c1", 0)], [available("101", -1)])
    policy = QueuePolicy(handle_time_window=2, wrap_up_s=0)
    for i in range(3):
        q, _ = acd.enqueue(q, entry(f"x{i}", i))
        q, m = acd.offer_next(q, sec(100 * i), policy)
        assert m is not None
        q, _ = acd.answered(q, m.call_id, "101", sec(100 * i))
        q = acd.call_ended(q, "101", m.call_id, sec(100 * i + 10 * (i + 1)), policy)
    assert q.handle_ms == (30_000, 20_000)


def test_wait_actions_announce_and_offer_callback() -> None:
    e = entry("c1", 0)
    assert acd.wait_action(e, sec(44), POLICY) is acd.WaitAction.NONE
    assert acd.wait_action(e, sec(45), POLICY) is acd.WaitAction.ANNOUNCE
    assert acd.wait_action(e, sec(60), POLICY, announced_at=sec(45)) is acd.WaitAction.NONE
    assert acd.next_wait_check(e, POLICY, announced_at=sec(45)) == sec(90)
    assert acd.wait_action(e, sec(300), POLICY, announced_at=sec(270)) is \
        acd.WaitAction.OFFER_CALLBACK
    e2 = replace(e, callback_offers=1)  # caller chose to keep waiting
    assert acd.wait_action(e2, sec(300), POLICY, announced_at=sec(270)) is acd.WaitAction.NONE
    assert acd.next_wait_check(e2, POLICY, announced_at=sec(585)) == sec(600)
    assert acd.wait_action(replace(e, ringing="101"), sec(300), POLICY) is acd.WaitAction.NONE
    quiet = QueuePolicy(callback_offer=False, announce_every_s=0)
    assert acd.wait_action(e, sec(9999), quiet) is acd.WaitAction.NONE
    assert acd.next_wait_check(e, quiet) is None


def test_announcement_text_in_vietnamese() -> None:
    assert acd.announcement_text(3, 150) == (
        "Quý khách đang ở vị trí thứ 3 trong hàng chờ. Thời gian chờ dự kiến khoảng 3 phút. "
        "Xin quý khách vui lòng giữ máy.")
    assert "dưới một phút" in acd.announcement_text(1, 20)
    assert "dự kiến" not in acd.announcement_text(2, None)


def test_priority_bounds() -> None:
    with pytest.raises(ValueError, match="priority"):
        QueueEntry("c1", "dongnai", T0, 10)
    assert entry("u", 0, urgent=True).urgent and not entry("n", 0).urgent


# ---- snapshot -------------------------------------------------------------------------------
def test_snapshot_shape() -> None:
    q = queue([entry("c1", 0, caller="0912345678"), entry("u1", 10, urgent=True),
               entry("c2", 20)],
              [available("101", -30), replace(available("102", 0), status=S.PAUSED,
                                              reason="meeting", idle_since=None),
               ag.new_agent("103", T0, "Minh")])
    q, _ = acd.offer_next(q, sec(30), POLICY)
    snap = acd.snapshot(q, sec(40), POLICY)
    assert snap["type"] == "snapshot" and snap["tenant"] == "dongnai"
    assert snap["at_ms"] == acd.to_ms(sec(40))
    assert snap["counts"] == {
        "queued": 3, "waiting": 2, "ringing": 1, "urgent": 1, "longest_wait_s": 40,
        "agents": {"logged_out": 1, "available": 0, "ringing": 1, "on_call": 0, "wrap_up": 0,
                   "paused": 1},
        "agents_reachable": 2, "agents_free": 0, "agents_serving": 1,
    }
    calls = snap["calls"]
    assert isinstance(calls, list)
    assert [(c["call_id"], c["position"], c["state"], c["wait_s"]) for c in calls] == [
        ("u1", 1, "ringing", 30), ("c1", 2, "waiting", 40), ("c2", 3, "waiting", 20)]
    assert calls[0]["ringing_extension"] == "101" and calls[0]["offered_to"] == ["101"]
    assert calls[0]["estimated_wait_s"] is None
    assert calls[1]["estimated_wait_s"] == 90 + 180  # AHT default: half, then one more round
    agents = snap["agents"]
    assert isinstance(agents, list)
    assert agents[1] == {
        "extension": "102", "name": "", "state": "paused", "reason": "meeting",
        "reason_label": "Họp", "pending": None, "pending_reason": None, "reachable": True,
        "since_ms": acd.to_ms(sec(0)), "time_in_state_s": 40, "idle_since_ms": None,
        "call_id": None, "wrap_up_until_ms": None, "last_call_end_ms": None,
    }
    assert agents[0]["state"] == "ringing" and agents[0]["time_in_state_s"] == 10


# ---- properties -----------------------------------------------------------------------------
agent_st = st.builds(
    lambda ext, status, reachable, idle: ag.AgentState(
        ext, status, sec(idle), reachable=reachable,
        idle_since=sec(idle) if status is S.AVAILABLE else None,
        call_id="zz" if status in (S.RINGING, S.ON_CALL, S.WRAP_UP) else None),
    st.sampled_from(["101", "102", "103", "104", "1001", "999", "205", "206"]),
    st.sampled_from(list(S)), st.booleans(), st.integers(-100, 0))
entry_st = st.builds(
    lambda cid, urgent, at, declined: entry(cid, at, urgent, declined=declined,
                                            declined_at=sec(at) if declined else None),
    st.text("abcdef", min_size=1, max_size=3), st.booleans(), st.integers(0, 50),
    st.lists(st.sampled_from(["101", "102", "999"]), unique=True, max_size=2).map(tuple))


def _unique_by(items: list[X], key: Callable[[X], str]) -> list[X]:
    seen: set[str] = set()
    out: list[X] = []
    for x in items:
        if key(x) not in seen:
            seen.add(key(x))
            out.append(x)
    return out


@settings(max_examples=400)
@given(st.lists(entry_st, max_size=8), st.lists(agent_st, max_size=8), st.integers(50, 70))
def test_property_no_double_offer_urgent_first_fifo_within_priority(
        entries: list[QueueEntry], agents: list[ag.AgentState], now_s: int) -> None:
    entries = _unique_by(entries, lambda e: e.call_id)
    agents = _unique_by(agents, lambda a: a.extension)
    now = sec(now_s)
    matches = acd.choose_all(entries, agents, now, POLICY)
    calls = [m.call_id for m in matches]
    exts = [m.extension for m in matches]
    assert len(set(calls)) == len(calls)  # no call offered to two agents
    assert len(set(exts)) == len(exts)  # no agent offered two calls
    offerable = {a.extension for a in agents if a.offerable}
    assert set(exts) <= offerable
    by_id = {e.call_id: e for e in entries}
    matched = {m.call_id: m.extension for m in matches}
    for m in matches:
        e = by_id[m.call_id]
        for f in entries:
            if f.call_id in matched or acd.queue_order(f) > acd.queue_order(e):
                continue
            # An unmatched call ahead of a matched one (urgent ahead of normal, or earlier in
            # the same priority) was skipped only because this agent let it ring out.
            assert m.extension in f.declined, (f, e, m)
    if not any(e.declined for e in entries):
        ordered = sorted(entries, key=acd.queue_order)
        free = sorted((a for a in agents if a.offerable), key=acd.agent_order)
        k = min(len(ordered), len(free))
        pairs = zip(ordered, free, strict=False)
        assert matches == [Match(e.call_id, a.extension) for e, a in pairs][:k]


op_st = st.one_of(
    st.tuples(st.just("enqueue"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("offer"), st.just(0), st.just(False)),
    st.tuples(st.just("answer"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("ring_out"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("hangup"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("end"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("agent"), st.integers(0, 3), st.integers(0, 5)),
    st.tuples(st.just("wait"), st.integers(1, 30), st.just(False)),
)
AGENT_EVENTS: list[ag.Event] = [ag.LogIn(), ag.LogOut(), ag.Pause("break"), ag.Unpause(),
                                ag.Unreachable(), ag.Reachable()]


@settings(max_examples=300)
@given(st.lists(op_st, max_size=80))
def test_property_any_operations_keep_offers_one_to_one_and_places(
        ops: list[tuple[str, int, Any]]) -> None:
    exts = ["101", "102", "103", "104"]
    q = acd.sync_agents(TenantQueue("dongnai"), [(x, "") for x in exts], T0)
    for x in exts:
        q, _ = acd.agent_event(q, x, ag.Reachable(), T0, POLICY)
        q, _ = acd.agent_event(q, x, ag.LogIn(), T0, POLICY)
    now = T0
    n = 0
    for kind, a, b in ops:
        before_order = [e.call_id for e in q.ordered()]
        try:
            if kind == "enqueue":
                n += 1
                q, _ = acd.enqueue(q, entry(f"c{n}", (now - T0).total_seconds(), b))
            elif kind == "offer":
                q, _ = acd.offer_next(q, now, POLICY)
            elif kind in ("answer", "ring_out", "hangup"):
                ringing = [e for e in q.ordered() if e.ringing]
                if kind == "hangup" and q.entries:
                    victim = q.ordered()[a % len(q.entries)]
                    q, _ = acd.dequeue(q, victim.call_id, now)
                elif ringing:
                    e = ringing[a % len(ringing)]
                    assert e.ringing is not None
                    if kind == "answer":
                        q, _ = acd.answered(q, e.call_id, e.ringing, now)
                    else:
                        q = acd.no_answer(q, e.call_id, e.ringing, now, POLICY)
                        # a ring-out keeps the call's place among the others
                        assert [x.call_id for x in q.ordered()] == before_order
            elif kind == "end":
                ag_ = q.agents[a]
                if ag_.status is S.ON_CALL and ag_.call_id:
                    q = acd.call_ended(q, ag_.extension, ag_.call_id, now, POLICY)
            elif kind == "agent":
                q, _ = acd.agent_event(q, exts[a], AGENT_EVENTS[b], now, POLICY)
            else:
                now += dt.timedelta(seconds=a)
        except ag.IllegalTransition:
            pass
        ringing_calls = {e.call_id: e.ringing for e in q.entries if e.ringing}
        ringing_agents = {x.extension: x.call_id for x in q.agents if x.status is S.RINGING}
        assert len(set(ringing_calls.values())) == len(ringing_calls)
        # every ringing call rings exactly one agent that rings for it, and back
        assert {v: k for k, v in ringing_calls.items()} == ringing_agents
