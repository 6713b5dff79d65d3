"""One operator (agent) as a pure state machine: (state, event, now) -> (new state, commands).

States: logged_out, available, ringing, on_call, wrap_up, paused(reason). The phone's reachability
(AMI contact/device state) is kept beside the state: an unreachable agent may be "available" but
is never offered a call.

Rules worth knowing:

* **Pause or log out during a call** (ringing, on call, wrap-up) is *pending*: it takes effect
  when the call is over (ring-out, hang-up after wrap-up). The latest request wins; Unpause
  cancels a pending pause, LogIn cancels a pending log-out.
* **Idle since** is when the agent last became free for calls (log-in, unpause, end of wrap-up);
  longest-idle picks the smallest. A call that rang out (or the caller hanging up while it rang)
  does not reset it: the agent took no call.
* **Ring no-answer**: back to available (the ACD skips them for that call), or paused with
  reason ``no_answer`` when the tenant's ``auto_pause_on_no_answer`` is on.
* **Late echoes** never raise: WrapUpDone outside wrap-up (a timer that lost the race with a
  manual "ready"), Reachable/Unreachable in any state. Everything else out of place raises
  ``IllegalTransition`` naming the event and the state.

``callcenter.queue.redis`` keeps the same machine in Redis (its Lua scripts mirror ``_after_call``
and the Offer/Answered/NoAnswer/CallEnded/WrapUpDone rows); tests check they agree.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace

from callcenter.queue.policy import NO_ANSWER_REASON, QueuePolicy


class AgentStatus(enum.Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"  # a queued call is offered: the phone rings
    ON_CALL = "on_call"  # bridged with the caller
    WRAP_UP = "wrap_up"  # after-call work, until wrap_up_until
    PAUSED = "paused"  # logged in, takes no calls; reason says why


class IllegalTransition(ValueError):
    """An event that cannot happen in the agent's state."""


PENDING_PAUSE = "pause"
PENDING_LOGOUT = "logout"


@dataclass(frozen=True)
class AgentState:
    """What the hotline knows about one operator; serialisable (Redis keeps it per tenant)."""

    extension: str
    status: AgentStatus
    since: dt.datetime  # entered the current status
    name: str = ""
    reachable: bool = False  # phone registered and answering qualify (AMI); unknown = False
    reason: str | None = None  # pause reason id while PAUSED
    pending: str | None = None  # PENDING_PAUSE or PENDING_LOGOUT, applied after the call
    pending_reason: str | None = None  # pause reason of a pending pause
    call_id: str | None = None  # the call ringing, on call, or being wrapped up
    idle_since: dt.datetime | None = None  # set while AVAILABLE (and kept through RINGING)
    wrap_up_until: dt.datetime | None = None
    last_call_end: dt.datetime | None = None

    @property
    def offerable(self) -> bool:
        """Available with a reachable phone: the ACD may ring this agent."""
        return self.status is AgentStatus.AVAILABLE and self.reachable

    def time_in_state(self, now: dt.datetime) -> dt.timedelta:
        """How long the agent has been in the current status (never negative)."""
        return max(now - self.since, dt.timedelta(0))


def new_agent(extension: str, now: dt.datetime, name: str = "") -> AgentState:
    """A configured operator not logged in yet, phone reachability unknown (False)."""
    return AgentState(extension, AgentStatus.LOGGED_OUT, now, name=name)


def logged_in_count(by_state: Mapping[str, int]) -> int:
    """Operators logged in, from counts per status value: every status but ``logged_out``
    (paused, ringing, on a call and in wrap-up count: they are at their post)."""
    return sum(n for state, n in by_state.items() if state != AgentStatus.LOGGED_OUT.value)


# ---- events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogIn:
    pass


@dataclass(frozen=True)
class LogOut:
    pass


@dataclass(frozen=True)
class Pause:
    reason: str  # a pause reason id of the tenant's policy


@dataclass(frozen=True)
class Unpause:
    pass


@dataclass(frozen=True)
class Offer:
    """The ACD chose this agent for a queued call."""

    call_id: str


@dataclass(frozen=True)
class Answered:
    call_id: str


@dataclass(frozen=True)
class NoAnswer:
    """The offer rang out (ring timeout) or the phone declined it (486/603)."""

    call_id: str


@dataclass(frozen=True)
class OfferLost:
    """The offer expired without an answer or a no-answer (its instance died), or the caller hung
    up while it rang: no decline by the agent, so never an automatic pause."""

    call_id: str


@dataclass(frozen=True)
class CallEnded:
    """The bridged call is over (either side hung up, or a transfer completed)."""

    call_id: str


@dataclass(frozen=True)
class WrapUpDone:
    """Wrap-up time is up, or the operator said "ready" early."""


@dataclass(frozen=True)
class Unreachable:
    """AMI: the phone's contact is unreachable or unregistered."""


@dataclass(frozen=True)
class Reachable:
    """AMI: the phone registered / answers qualify again."""


Event = (LogIn | LogOut | Pause | Unpause | Offer | Answered | NoAnswer | OfferLost | CallEnded
         | WrapUpDone | Unreachable | Reachable)


# ---- commands -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RingPhone:
    """Originate to the agent's endpoint for this queued call."""

    call_id: str


@dataclass(frozen=True)
class StopRinging:
    """Hang up the agent's ringing leg (the offer is over)."""

    call_id: str


@dataclass(frozen=True)
class BridgeCall:
    """Put the caller and the agent's answered leg in one bridge (and start recording)."""

    call_id: str


@dataclass(frozen=True)
class RequeueCall:
    """The call goes back to its place in the queue (it keeps its enqueue time)."""

    call_id: str


@dataclass(frozen=True)
class StartWrapUpTimer:
    until: dt.datetime


@dataclass(frozen=True)
class OfferCalls:
    """The agent became free for calls: run the ACD (offer_next) now, not on the next tick."""


Command = RingPhone | StopRinging | BridgeCall | RequeueCall | StartWrapUpTimer | OfferCalls


# ---- transitions --------------------------------------------------------------------------
def _after_call(state: AgentState, now: dt.datetime, *, fresh: bool,
                auto_pause: bool = False) -> tuple[AgentState, list[Command]]:
    """Where an agent goes when a call (or an offer) is over: pending requests first.

    ``fresh``: the agent handled a call, so idle time starts now (else idle_since is kept).
    """
    base = replace(state, since=now, call_id=None, wrap_up_until=None, pending=None,
                   pending_reason=None, reason=None)
    if state.pending == PENDING_LOGOUT:
        return replace(base, status=AgentStatus.LOGGED_OUT, idle_since=None), []
    if state.pending == PENDING_PAUSE:
        return replace(base, status=AgentStatus.PAUSED, reason=state.pending_reason,
                       idle_since=None), []
    if auto_pause:
        return replace(base, status=AgentStatus.PAUSED, reason=NO_ANSWER_REASON.id,
                       idle_since=None), []
    idle = now if fresh or state.idle_since is None else state.idle_since
    return replace(base, status=AgentStatus.AVAILABLE, idle_since=idle), [OfferCalls()]


def _illegal(state: AgentState, event: Event, why: str) -> IllegalTransition:
    return IllegalTransition(
        f"agent {state.extension}: {type(event).__name__} in state {state.status.value}: {why}")


def _check_call(state: AgentState, event: Event, call_id: str) -> None:
    if state.call_id != call_id:
        raise _illegal(state, event, f"the agent's call is {state.call_id!r}, not {call_id!r}")


_IN_CALL = (AgentStatus.RINGING, AgentStatus.ON_CALL, AgentStatus.WRAP_UP)


def step(state: AgentState, event: Event, now: dt.datetime,
         policy: QueuePolicy | None = None) -> tuple[AgentState, list[Command]]:
    """Apply one event at ``now``; return the new state and exactly the commands to carry out."""
    policy = policy or QueuePolicy()
    s = state.status
    S = AgentStatus
    if isinstance(event, Reachable):
        return replace(state, reachable=True), ([OfferCalls()] if s is S.AVAILABLE else [])
    if isinstance(event, Unreachable):
        if s is S.RINGING:
            # The phone vanished while ringing: the offer is over, the call keeps its place.
            assert state.call_id is not None
            call = state.call_id
            new, _ = _after_call(replace(state, reachable=False), now, fresh=False)
            return new, [StopRinging(call), RequeueCall(call)]
        return replace(state, reachable=False), []
    if isinstance(event, LogIn):
        if s is S.LOGGED_OUT:
            return (replace(state, status=S.AVAILABLE, since=now, idle_since=now, reason=None),
                    [OfferCalls()])
        if s in _IN_CALL and state.pending == PENDING_LOGOUT:
            return replace(state, pending=None, pending_reason=None), []
        raise _illegal(state, event, "already logged in")
    if s is S.LOGGED_OUT:
        if isinstance(event, WrapUpDone):
            return state, []  # a wrap-up timer that lost the race with a log-out
        raise _illegal(state, event, "the agent is logged out")
    if isinstance(event, LogOut):
        if s in (S.AVAILABLE, S.PAUSED):
            return replace(state, status=S.LOGGED_OUT, since=now, idle_since=None, reason=None,
                           pending=None, pending_reason=None), []
        return replace(state, pending=PENDING_LOGOUT, pending_reason=None), []
    if isinstance(event, Pause):
        if policy.reason(event.reason) is None:
            known = ", ".join(r.id for r in policy.pause_reasons)
            raise _illegal(state, event, f"unknown pause reason {event.reason!r}; expected one "
                                         f"of: {known}")
        if s in (S.AVAILABLE, S.PAUSED):
            return replace(state, status=S.PAUSED, since=now, reason=event.reason,
                           idle_since=None), []
        return replace(state, pending=PENDING_PAUSE, pending_reason=event.reason), []
    if isinstance(event, Unpause):
        if s is S.PAUSED:
            return (replace(state, status=S.AVAILABLE, since=now, reason=None, idle_since=now),
                    [OfferCalls()])
        if state.pending == PENDING_PAUSE:
            return replace(state, pending=None, pending_reason=None), []
        raise _illegal(state, event, "the agent is not paused")
    if isinstance(event, Offer):
        if s is not S.AVAILABLE:
            raise _illegal(state, event, "only an available agent is offered a call")
        if not state.reachable:
            raise _illegal(state, event, "an unreachable agent is never offered a call")
        return (replace(state, status=S.RINGING, since=now, call_id=event.call_id),
                [RingPhone(event.call_id)])
    if isinstance(event, Answered):
        if s is not S.RINGING:
            raise _illegal(state, event, "only a ringing agent answers")
        _check_call(state, event, event.call_id)
        return (replace(state, status=S.ON_CALL, since=now, idle_since=None),
                [BridgeCall(event.call_id)])
    if isinstance(event, (NoAnswer, OfferLost)):
        if s is not S.RINGING:
            raise _illegal(state, event, "no offer is ringing")
        _check_call(state, event, event.call_id)
        auto = isinstance(event, NoAnswer) and policy.auto_pause_on_no_answer
        new, cmds = _after_call(state, now, fresh=False, auto_pause=auto)
        return new, [StopRinging(event.call_id), RequeueCall(event.call_id), *cmds]
    if isinstance(event, CallEnded):
        if s is S.RINGING:
            # The caller hung up while the agent's phone rang: no call taken, no wrap-up.
            _check_call(state, event, event.call_id)
            new, cmds = _after_call(state, now, fresh=False)
            return new, [StopRinging(event.call_id), *cmds]
        if s is not S.ON_CALL:
            raise _illegal(state, event, "the agent is not on a call")
        _check_call(state, event, event.call_id)
        ended = replace(state, last_call_end=now)
        if policy.wrap_up_s <= 0:
            return _after_call(ended, now, fresh=True)
        until = now + dt.timedelta(seconds=policy.wrap_up_s)
        return (replace(ended, status=S.WRAP_UP, since=now, wrap_up_until=until),
                [StartWrapUpTimer(until)])
    if isinstance(event, WrapUpDone):
        if s is not S.WRAP_UP:
            return state, []  # the timer fired after a manual "ready" (or the reverse)
        return _after_call(state, now, fresh=True)
    raise _illegal(state, event, "no such transition")


def describe(before: AgentState, event: Event, after: AgentState) -> str:
    """One log line: ``101: available -[Offer]-> ringing``."""
    def label(a: AgentState) -> str:
        text = a.status.value + (f"({a.reason})" if a.reason else "")
        if a.pending:
            text += f" +pending {a.pending}" + (f"({a.pending_reason})" if a.pending_reason else "")
        return text + ("" if a.reachable else " unreachable")
    return f"{before.extension}: {label(before)} -[{type(event).__name__}]-> {label(after)}"
