"""The operators' queue (ACD) of one tenant, pure: which waiting call rings which operator.

Rules (``callcenter.queue.redis`` keeps the same in Redis with Lua; tests check they agree):

* **Call order:** priority first (``URGENT`` = 0 before ``NORMAL`` = 5; 0-9, lower first), then
  enqueue time (FIFO), then call id. A call keeps its enqueue time for its whole stay, so a
  ring no-answer puts it back exactly where it was.
* **Agent order:** offerable agents (available, phone reachable) by longest idle
  (``idle_since``), ties by extension (shorter first, then digits: numeric order).
* **One offer at a time:** a ringing call is not offered again and a ringing agent is not
  available, so no call rings two agents and no agent rings for two calls.
* **Skip who let it ring out:** agents who let a call ring out since its last "cycle" began
  (``declined``) are skipped for that call while another offerable agent exists. When only
  such agents are left the cycle starts again, but only ``retry_s`` after the last ring-out (an
  operator who stepped away is not rung back instantly). A skipped call does not hold up the
  calls behind it: those may take the agent meanwhile.
* **Lost offers:** an offer carries an expiry (ring timeout + ``OFFER_MARGIN_S``); one still
  ringing after it (its app instance died, nobody reported the outcome) is taken back by the
  next ``offer_next`` without counting as the agent's ring-out.
* **Wrap-up** ends at ``wrap_up_until``; ``offer_next`` ends the wrap-ups that are due first,
  so no timer is needed for correctness (the ARI adapter still wakes up at that time to offer
  the next call without delay).

Estimated wait (for announcements): with ``free`` offerable agents and ``serving`` agents
logged in and not paused (reachable), the call at ``position`` waits 0 when
``position <= free``, else ``AHT/2 + ((position - free - 1) // serving) * AHT``: the agents on
calls finish on average half a handle time from now, and each further round of ``serving``
calls takes a whole one. AHT is the mean handle time (talk + wrap-up) of the last
``handle_time_window`` calls; with no history, ``DEFAULT_HANDLE_S``.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from callcenter.queue import agent as ag
from callcenter.queue.policy import QueuePolicy

URGENT = 0
NORMAL = 5
MAX_PRIORITY = 9
OFFER_MARGIN_S = 5  # an offer outlives its ring timeout by this much before it counts as lost
DEFAULT_HANDLE_S = 180  # assumed handle time before any call was handled
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class QueueConflict(ValueError):
    """A queue operation that no longer applies (a race lost to the caller or another instance).

    ``id`` is stable: ``not_queued``, ``offer_gone``, ``not_on_call``, ``unknown_agent``, and
    ``busy`` (Redis adapter: an agent kept changing under a compare-and-set).
    """

    def __init__(self, error_id: str, message: str) -> None:
        self.id = error_id
        self.message = message
        super().__init__(f"{error_id}: {message}")


def priority_of(urgent: bool) -> int:
    """The queue priority of a call the IVR handed over (urgent health: ahead of the rest)."""
    return URGENT if urgent else NORMAL


def to_ms(t: dt.datetime) -> int:
    """Milliseconds since the Unix epoch (the unit of every time in Redis and the live JSON)."""
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def from_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


@dataclass(frozen=True)
class QueueEntry:
    """One call waiting for an operator."""

    call_id: str
    tenant: str
    enqueued_at: dt.datetime
    priority: int = NORMAL
    caller: str = ""
    node: str = ""  # Asterisk node the call is on
    instance: str = ""  # app instance that owns the call's channel
    offered_to: tuple[str, ...] = ()  # every agent rung for it, in order (for the record)
    declined: tuple[str, ...] = ()  # agents it rang out on in the current cycle
    declined_at: dt.datetime | None = None  # last ring-out
    ringing: str | None = None  # extension ringing now
    offered_at: dt.datetime | None = None
    offer_expires_at: dt.datetime | None = None
    callback_offers: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be 0..{MAX_PRIORITY}, got {self.priority}")

    @property
    def urgent(self) -> bool:
        return self.priority < NORMAL

    def waited(self, now: dt.datetime) -> dt.timedelta:
        return max(now - self.enqueued_at, dt.timedelta(0))


def queue_order(e: QueueEntry) -> tuple[int, int, bytes]:
    """Sort key of the waiting order (the Redis zset's score, then member bytes)."""
    return (e.priority, to_ms(e.enqueued_at), e.call_id.encode())


def agent_order(a: ag.AgentState) -> tuple[dt.datetime, int, str]:
    """Sort key of longest idle first, ties by extension."""
    return (a.idle_since or a.since, len(a.extension), a.extension)


@dataclass(frozen=True)
class Match:
    """A queued call and the agent to ring for it."""

    call_id: str
    extension: str


def _pick(entry: QueueEntry, candidates: Sequence[ag.AgentState], now: dt.datetime,
          policy: QueuePolicy) -> ag.AgentState | None:
    for a in candidates:
        if a.extension not in entry.declined:
            return a
    if candidates and (entry.declined_at is None
                       or now >= entry.declined_at + dt.timedelta(seconds=policy.retry_s)):
        return candidates[0]  # everyone had it ring out: a new cycle
    return None


def choose_next(entries: Iterable[QueueEntry], agents: Iterable[ag.AgentState],
                now: dt.datetime, policy: QueuePolicy) -> Match | None:
    """The first (call, agent) pair to ring under the rules above, or None."""
    candidates = sorted((a for a in agents if a.offerable), key=agent_order)
    if not candidates:
        return None
    for e in sorted(entries, key=queue_order):
        if e.ringing is not None:
            continue
        a = _pick(e, candidates, now, policy)
        if a is not None:
            return Match(e.call_id, a.extension)
    return None


def choose_all(entries: Sequence[QueueEntry], agents: Sequence[ag.AgentState],
               now: dt.datetime, policy: QueuePolicy) -> list[Match]:
    """Every pair ``choose_next`` would give if called until None (each pair taken in turn)."""
    taken_calls: set[str] = set()
    taken_agents: set[str] = set()
    result: list[Match] = []
    while True:
        m = choose_next([e for e in entries if e.call_id not in taken_calls],
                        [a for a in agents if a.extension not in taken_agents], now, policy)
        if m is None:
            return result
        result.append(m)
        taken_calls.add(m.call_id)
        taken_agents.add(m.extension)


# ---- one tenant's queue as a value ---------------------------------------------------------
@dataclass(frozen=True)
class TenantQueue:
    """Everything the ACD keeps for one tenant (what Redis holds under its keys)."""

    tenant: str
    entries: tuple[QueueEntry, ...] = ()
    agents: tuple[ag.AgentState, ...] = ()
    handle_ms: tuple[int, ...] = ()  # handle times of the last calls, newest first

    def entry(self, call_id: str) -> QueueEntry | None:
        return next((e for e in self.entries if e.call_id == call_id), None)

    def agent(self, extension: str) -> ag.AgentState | None:
        return next((a for a in self.agents if a.extension == extension), None)

    def ordered(self) -> list[QueueEntry]:
        """Entries in queue order (ringing ones keep their place)."""
        return sorted(self.entries, key=queue_order)

    def _with_entry(self, entry: QueueEntry) -> TenantQueue:
        rest = tuple(e for e in self.entries if e.call_id != entry.call_id)
        return replace(self, entries=(*rest, entry))

    def _without_entry(self, call_id: str) -> TenantQueue:
        return replace(self, entries=tuple(e for e in self.entries if e.call_id != call_id))

    def _with_agent(self, agent: ag.AgentState) -> TenantQueue:
        rest = tuple(a for a in self.agents if a.extension != agent.extension)
        return replace(self, agents=tuple(sorted((*rest, agent), key=lambda a: a.extension)))


def _agent(q: TenantQueue, extension: str) -> ag.AgentState:
    a = q.agent(extension)
    if a is None:
        raise QueueConflict("unknown_agent", f"{q.tenant}: no agent {extension}")
    return a


def sync_agents(q: TenantQueue, operators: Iterable[tuple[str, str]],
                now: dt.datetime) -> TenantQueue:
    """Match the agents to the configured (extension, name) list: new ones logged out, names
    updated; agents no longer configured are dropped once logged out (never mid-call)."""
    wanted = dict(operators)
    result = q
    for a in q.agents:
        if a.extension not in wanted and a.status is ag.AgentStatus.LOGGED_OUT:
            result = replace(result, agents=tuple(x for x in result.agents
                                                  if x.extension != a.extension))
    for ext, name in wanted.items():
        known = result.agent(ext)
        result = result._with_agent(ag.new_agent(ext, now, name) if known is None
                                    else replace(known, name=name))
    return result


def enqueue(q: TenantQueue, entry: QueueEntry) -> tuple[TenantQueue, bool]:
    """Add a call; False (and no change) when it is already queued (a replayed hand-over)."""
    if q.entry(entry.call_id) is not None:
        return q, False
    return q._with_entry(replace(entry, tenant=q.tenant)), True


def dequeue(q: TenantQueue, call_id: str,
            now: dt.datetime) -> tuple[TenantQueue, QueueEntry | None]:
    """The caller left (abandon) or the call is taken away: drop it, stop its offer."""
    e = q.entry(call_id)
    if e is None:
        return q, None
    q = q._without_entry(call_id)
    if e.ringing is not None:
        a = q.agent(e.ringing)
        if a is not None and a.status is ag.AgentStatus.RINGING and a.call_id == call_id:
            a, _ = ag.step(a, ag.CallEnded(call_id), now)
            q = q._with_agent(a)
    return q, e


def set_agent(q: TenantQueue, agent: ag.AgentState) -> TenantQueue:
    """Store an agent's new state (after ``agents.step`` of a log-in, pause, ... event)."""
    return q._with_agent(agent)


def agent_event(q: TenantQueue, extension: str, event: ag.Event, now: dt.datetime,
                policy: QueuePolicy) -> tuple[TenantQueue, list[ag.Command]]:
    """An agent's own event (LogIn, LogOut, Pause, Unpause, Reachable, Unreachable, WrapUpDone).

    Unreachable while ringing takes the offer back (the call keeps its place, not counted as the
    agent's ring-out: they are unreachable, so not offered it anyway)."""
    a = _agent(q, extension)
    new, cmds = ag.step(a, event, now, policy)
    q = q._with_agent(new)
    for c in cmds:
        if isinstance(c, ag.RequeueCall):
            e = q.entry(c.call_id)
            if e is not None and e.ringing == extension:
                q = q._with_entry(replace(e, ringing=None, offered_at=None,
                                          offer_expires_at=None))
    return q, cmds


def _end_wrap_ups(q: TenantQueue, now: dt.datetime, policy: QueuePolicy) -> TenantQueue:
    for a in q.agents:
        if (a.status is ag.AgentStatus.WRAP_UP and a.wrap_up_until is not None
                and a.wrap_up_until <= now):
            new, _ = ag.step(a, ag.WrapUpDone(), now, policy)
            q = q._with_agent(new)
    return q


def _reap_offers(q: TenantQueue, now: dt.datetime, policy: QueuePolicy) -> TenantQueue:
    for e in q.ordered():
        if e.ringing is None or e.offer_expires_at is None or e.offer_expires_at > now:
            continue
        a = q.agent(e.ringing)
        if a is not None and a.status is ag.AgentStatus.RINGING and a.call_id == e.call_id:
            a, _ = ag.step(a, ag.OfferLost(e.call_id), now, policy)
            q = q._with_agent(a)
        q = q._with_entry(replace(e, ringing=None, offered_at=None, offer_expires_at=None))
    return q


def housekeep(q: TenantQueue, now: dt.datetime, policy: QueuePolicy) -> TenantQueue:
    """End due wrap-ups and take back lost offers (``offer_next`` does this first)."""
    return _reap_offers(_end_wrap_ups(q, now, policy), now, policy)


def offer_next(q: TenantQueue, now: dt.datetime,
               policy: QueuePolicy) -> tuple[TenantQueue, Match | None]:
    """Housekeeping, then choose one pair and mark both as offered (call ringing, agent
    RINGING). Call until None to ring every agent that can take a call now."""
    q = housekeep(q, now, policy)
    m = choose_next(q.entries, q.agents, now, policy)
    if m is None:
        return q, None
    e = q.entry(m.call_id)
    a = q.agent(m.extension)
    assert e is not None and a is not None
    declined = e.declined
    if m.extension in declined:
        declined = ()  # every offerable agent had let it ring out: a new cycle
    a, _ = ag.step(a, ag.Offer(m.call_id), now, policy)
    expires = now + dt.timedelta(seconds=policy.ring_timeout_s + OFFER_MARGIN_S)
    e = replace(e, ringing=m.extension, offered_to=(*e.offered_to, m.extension),
                declined=declined, offered_at=now, offer_expires_at=expires)
    return q._with_entry(e)._with_agent(a), m


def _ringing_pair(q: TenantQueue, call_id: str,
                  extension: str) -> tuple[QueueEntry, ag.AgentState]:
    e = q.entry(call_id)
    a = q.agent(extension)
    if (e is None or a is None or e.ringing != extension
            or a.status is not ag.AgentStatus.RINGING or a.call_id != call_id):
        raise QueueConflict("offer_gone", f"{q.tenant}: call {call_id} is not ringing "
                                          f"agent {extension} any more")
    return e, a


def answered(q: TenantQueue, call_id: str, extension: str,
             now: dt.datetime) -> tuple[TenantQueue, QueueEntry]:
    """The agent answered the offer: the call leaves the queue, the agent is on the call.

    Returns the entry as it was (enqueue time for the wait, offered_to for the record)."""
    e, a = _ringing_pair(q, call_id, extension)
    a, _ = ag.step(a, ag.Answered(call_id), now)
    return q._without_entry(call_id)._with_agent(a), e


def no_answer(q: TenantQueue, call_id: str, extension: str, now: dt.datetime,
              policy: QueuePolicy) -> TenantQueue:
    """The offer rang out or was declined: the call is back in its place, the agent is skipped
    for it (see the rules), and available again (or paused by policy or a pending request)."""
    e, a = _ringing_pair(q, call_id, extension)
    a, _ = ag.step(a, ag.NoAnswer(call_id), now, policy)
    declined = e.declined if extension in e.declined else (*e.declined, extension)
    e = replace(e, ringing=None, offered_at=None, offer_expires_at=None, declined=declined,
                declined_at=now)
    return q._with_entry(e)._with_agent(a)


def call_ended(q: TenantQueue, extension: str, call_id: str, now: dt.datetime,
               policy: QueuePolicy) -> TenantQueue:
    """The bridged call ended: the agent goes to wrap-up; its handle time joins the history."""
    a = _agent(q, extension)
    if a.status is not ag.AgentStatus.ON_CALL or a.call_id != call_id:
        raise QueueConflict("not_on_call", f"{q.tenant}: agent {extension} is not on call "
                                           f"{call_id}")
    talk_ms = max(to_ms(now) - to_ms(a.since), 0)
    handle = talk_ms + policy.wrap_up_s * 1000
    a, _ = ag.step(a, ag.CallEnded(call_id), now, policy)
    history = (handle, *q.handle_ms)[: policy.handle_time_window]
    return replace(q._with_agent(a), handle_ms=history)


def wrap_up_done(q: TenantQueue, extension: str, now: dt.datetime,
                 policy: QueuePolicy) -> TenantQueue:
    """The operator is ready before wrap-up ends (or the timer fired): no-op outside wrap-up."""
    a = _agent(q, extension)
    a, _ = ag.step(a, ag.WrapUpDone(), now, policy)
    return q._with_agent(a)


def callback_offered(q: TenantQueue, call_id: str) -> TenantQueue:
    """Count a callback offer made to the caller (the next one is due max_wait_s later)."""
    e = q.entry(call_id)
    if e is None:
        raise QueueConflict("not_queued", f"{q.tenant}: call {call_id} is not queued")
    return q._with_entry(replace(e, callback_offers=e.callback_offers + 1))


# ---- announcements and the callback offer --------------------------------------------------
def position(q: TenantQueue, call_id: str) -> int | None:
    """1-based place in the queue (calls ringing an agent count: they are still ahead)."""
    for i, e in enumerate(q.ordered(), start=1):
        if e.call_id == call_id:
            return i
    return None


def average_handle_s(handle_ms: Sequence[int]) -> float | None:
    """Mean handle time of the recorded calls, or None with no history."""
    if not handle_ms:
        return None
    return sum(handle_ms) / len(handle_ms) / 1000


def estimated_wait_s(position: int, free: int, serving: int, aht_s: float | None) -> int | None:
    """Seconds a caller at ``position`` will probably still wait (see the module docs);
    None when no agent is serving (nobody logged in, or all paused/unreachable)."""
    if position <= free:
        return 0
    if serving <= 0:
        return None
    aht = DEFAULT_HANDLE_S if aht_s is None else aht_s
    return math.ceil(aht / 2 + ((position - free - 1) // serving) * aht)


def _serving(agents: Iterable[ag.AgentState]) -> tuple[int, int]:
    """(free, serving): offerable agents; reachable agents logged in and not paused."""
    S = ag.AgentStatus
    free = serving = 0
    for a in agents:
        if not a.reachable:
            continue
        if a.status is S.AVAILABLE:
            free += 1
        if a.status in (S.AVAILABLE, S.RINGING, S.ON_CALL, S.WRAP_UP):
            serving += 1
    return free, serving


def estimate(q: TenantQueue, call_id: str) -> int | None:
    """Estimated wait of a queued call from the queue as it is now."""
    pos = position(q, call_id)
    if pos is None:
        return None
    free, serving = _serving(q.agents)
    return estimated_wait_s(pos, free, serving, average_handle_s(q.handle_ms))


class WaitAction(enum.Enum):
    NONE = "none"
    ANNOUNCE = "announce"  # play position and estimated wait
    OFFER_CALLBACK = "offer_callback"  # "press 1 for a callback, or keep waiting"


def _callback_at(entry: QueueEntry, policy: QueuePolicy) -> dt.datetime | None:
    if not policy.callback_offer:
        return None
    return entry.enqueued_at + dt.timedelta(seconds=policy.max_wait_s * (entry.callback_offers
                                                                          + 1))


def _announce_at(entry: QueueEntry, policy: QueuePolicy,
                 announced_at: dt.datetime | None) -> dt.datetime | None:
    if policy.announce_every_s <= 0:
        return None
    return (announced_at or entry.enqueued_at) + dt.timedelta(seconds=policy.announce_every_s)


def wait_action(entry: QueueEntry, now: dt.datetime, policy: QueuePolicy,
                announced_at: dt.datetime | None = None) -> WaitAction:
    """What the waiting caller should hear now. Nothing while an agent's phone rings for them
    (the answer may come any moment); the callback offer wins over an announcement."""
    if entry.ringing is not None:
        return WaitAction.NONE
    cb = _callback_at(entry, policy)
    if cb is not None and now >= cb:
        return WaitAction.OFFER_CALLBACK
    an = _announce_at(entry, policy, announced_at)
    if an is not None and now >= an:
        return WaitAction.ANNOUNCE
    return WaitAction.NONE


def next_wait_check(entry: QueueEntry, policy: QueuePolicy,
                    announced_at: dt.datetime | None = None) -> dt.datetime | None:
    """When ``wait_action`` may next have something to do (the caller's timer), or None."""
    times = [t for t in (_callback_at(entry, policy), _announce_at(entry, policy, announced_at))
             if t is not None]
    return min(times) if times else None


def announcement_text(position: int, wait_s: int | None) -> str:
    """The Vietnamese position/estimated-wait announcement."""
    text = f"Quý khách đang ở vị trí thứ {position} trong hàng chờ."
    if wait_s is not None:
        if wait_s < 60:
            text += " Thời gian chờ dự kiến dưới một phút."
        else:
            text += f" Thời gian chờ dự kiến khoảng {math.ceil(wait_s / 60)} phút."
    return text + " Xin quý khách vui lòng giữ máy."


CALLBACK_OFFER_TEXT = (
    "Quý khách đã chờ khá lâu. Để được tổng đài viên gọi lại theo số máy đang gọi, "
    "xin bấm phím 1. Để tiếp tục chờ, xin quý khách vui lòng giữ máy."
)
# Said when the queue cannot take the call (its live state, in Redis, is unreachable).
QUEUE_UNAVAILABLE_TEXT = (
    "Xin lỗi quý khách, hệ thống tổng đài đang gặp sự cố. Để được tổng đài viên gọi lại theo "
    "số máy đang gọi, xin bấm phím 1. Để tiếp tục chờ, xin quý khách vui lòng giữ máy."
)
CALLBACK_CONFIRM_TEXT = (
    "Tổng đài 1022 đã ghi nhận yêu cầu gọi lại. Tổng đài viên sẽ gọi lại cho quý khách "
    "trong thời gian sớm nhất. Xin cảm ơn."
)


# ---- the live-state JSON (docs/live-state.md) ----------------------------------------------
def _ms_or_none(t: dt.datetime | None) -> int | None:
    return None if t is None else to_ms(t)


def agent_json(a: ag.AgentState) -> dict[str, object]:
    """An agent as it appears in the snapshot and in ``agent`` events (no time-derived keys)."""
    return {
        "extension": a.extension,
        "name": a.name,
        "state": a.status.value,
        "reason": a.reason,
        "pending": a.pending,
        "pending_reason": a.pending_reason,
        "reachable": a.reachable,
        "since_ms": to_ms(a.since),
        "idle_since_ms": _ms_or_none(a.idle_since),
        "call_id": a.call_id,
        "wrap_up_until_ms": _ms_or_none(a.wrap_up_until),
        "last_call_end_ms": _ms_or_none(a.last_call_end),
    }


def call_json(e: QueueEntry) -> dict[str, object]:
    """A queued call as it appears in the snapshot (no time-derived keys)."""
    return {
        "call_id": e.call_id,
        "state": "ringing" if e.ringing is not None else "waiting",
        "priority": e.priority,
        "urgent": e.urgent,
        "caller": e.caller,
        "node": e.node,
        "instance": e.instance,
        "enqueued_ms": to_ms(e.enqueued_at),
        "ringing_extension": e.ringing,
        "offered_to": list(e.offered_to),
        "callback_offers": e.callback_offers,
    }


def snapshot(q: TenantQueue, now: dt.datetime,
             policy: QueuePolicy | None = None) -> dict[str, object]:
    """The tenant's live state as one JSON-ready dict (the shape of docs/live-state.md)."""
    policy = policy or QueuePolicy()
    ordered = q.ordered()
    free, serving = _serving(q.agents)
    aht = average_handle_s(q.handle_ms)
    calls: list[dict[str, object]] = []
    for pos, e in enumerate(ordered, start=1):
        c = call_json(e)
        c["position"] = pos
        c["wait_s"] = int(e.waited(now).total_seconds())
        c["estimated_wait_s"] = (None if e.ringing is not None
                                 else estimated_wait_s(pos, free, serving, aht))
        calls.append(c)
    agents: list[dict[str, object]] = []
    by_state = {s.value: 0 for s in ag.AgentStatus}
    for a in sorted(q.agents, key=lambda a: (len(a.extension), a.extension)):
        j = agent_json(a)
        j["time_in_state_s"] = int(a.time_in_state(now).total_seconds())
        reason = policy.reason(a.reason) if a.reason else None
        j["reason_label"] = reason.label if reason else a.reason
        agents.append(j)
        by_state[a.status.value] += 1
    ringing = sum(1 for e in ordered if e.ringing is not None)
    return {
        "type": "snapshot",
        "tenant": q.tenant,
        "at_ms": to_ms(now),
        "counts": {
            "queued": len(ordered),
            "waiting": len(ordered) - ringing,
            "ringing": ringing,
            "urgent": sum(1 for e in ordered if e.urgent),
            "longest_wait_s": max((int(e.waited(now).total_seconds()) for e in ordered),
                                  default=0),
            "agents": by_state,
            "agents_reachable": sum(1 for a in q.agents if a.reachable),
            "agents_free": free,
            "agents_serving": serving,
        },
        "average_handle_s": None if aht is None else round(aht, 1),
        "calls": calls,
        "agents": agents,
    }
