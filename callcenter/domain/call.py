"""One citizen's call as a pure state machine: (state, event) -> (new state, commands).

The ARI adapter turns Asterisk events into these events and carries out the commands. Nothing here
does I/O or reads the clock: every event carries its time.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, replace

from callcenter.domain import menu as mn
from callcenter.domain.ivr import IvrTree, Prompt


class Phase(enum.Enum):
    ROUTING = "routing"  # in Stasis, not yet matched to a tenant
    ADMITTING = "admitting"  # asking the tenant's line pool for a line
    GREETING = "greeting"  # answered, greeting playing (tenants without IVR menus)
    IVR = "ivr"  # answered, in the tenant's menus (callcenter.domain.menu)
    HOLDING = "holding"  # music on hold until IVR/queue give the call somewhere to go
    BUSY_MESSAGE = "busy_message"  # pool full: early media "all lines busy", never answered
    REJECTING = "rejecting"  # hang-up requested by us (busy after message, unknown number)
    CLOSING = "closing"  # hang-up requested by us after the IVR said goodbye
    ENDED = "ended"


# answered: served (by the IVR or an operator); abandoned: the caller left before being served
# (in the menus' greeting never, in the queue or while an operator's phone rang yes); callback:
# the caller chose to be called back instead of waiting.
OUTCOMES = ("answered", "busy", "abandoned", "not_found", "failed", "callback")


class IllegalTransition(ValueError):
    """An event that cannot happen in the call's phase."""


# ---- events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Routed:
    """The dialled number was looked up; tenant_id None means no province owns it."""

    at: dt.datetime
    tenant_id: str | None
    shift: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class LineGranted:
    at: dt.datetime


@dataclass(frozen=True)
class Answered:
    """Asterisk confirmed the answer (200 OK sent): from now on the caller is billed."""

    at: dt.datetime


@dataclass(frozen=True)
class LineRefused:
    at: dt.datetime


@dataclass(frozen=True)
class PlaybackFinished:
    at: dt.datetime
    token: int = 0  # the IVR's prompt token; 0 for the call's own prompts


@dataclass(frozen=True)
class Resume:
    """An adopted call in the IVR (another instance died): start its menus again at the root."""

    at: dt.datetime


@dataclass(frozen=True)
class HungUp:
    """The channel is gone (caller hung up, or our hang-up completed)."""

    at: dt.datetime
    cause_code: int | None = None
    cause: str | None = None


@dataclass(frozen=True)
class Failed:
    """A command could not be carried out for a reason other than the caller leaving."""

    at: dt.datetime
    reason: str


Event = (Routed | LineGranted | Answered | LineRefused | PlaybackFinished | HungUp | Failed
         | mn.Digit | mn.TimerFired | Resume)


# ---- commands -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AcquireLine:
    tenant_id: str
    limit: int


@dataclass(frozen=True)
class ReleaseLine:
    tenant_id: str


@dataclass(frozen=True)
class Answer:
    pass


@dataclass(frozen=True)
class Progress:
    """183 Session Progress: early media without answering (the caller is not billed)."""


@dataclass(frozen=True)
class Play:
    tenant_id: str
    prompt_id: str


@dataclass(frozen=True)
class StartMoh:
    pass


@dataclass(frozen=True)
class Hangup:
    reason: str  # ARI hang-up reason: busy -> 486, unallocated -> 404, failure -> 500


@dataclass(frozen=True)
class WriteRecord:
    pass


Command = (AcquireLine | ReleaseLine | Answer | Progress | Play | StartMoh | Hangup | WriteRecord
           | mn.Say | mn.StopSaying | mn.StartTimer | mn.CancelTimer)


# ---- state --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransferRecord:
    """One transfer of the caller to a level-2 unit's hotline, as the call record keeps it."""

    at: dt.datetime
    by: str  # operator extension
    unit: str  # unit id (tenant config units[].id)
    number: str  # the unit's hotline as dialled
    kind: str  # "blind" | "attended"
    answered: bool = False  # the unit picked up
    result: str = "pending"  # completed | returned (to the operator) | no_answer | failed


@dataclass(frozen=True)
class CallState:
    """What the hotline knows about one call; serialisable so another instance can adopt it."""

    call_id: str
    node: str
    dialled: str
    caller: str
    linkedid: str
    arrived_at: dt.datetime
    phase: Phase = Phase.ROUTING
    tenant_id: str | None = None
    shift: str | None = None
    limit: int | None = None
    line_held: bool = False
    answered_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    outcome: str | None = None
    cause_code: int | None = None
    cause: str | None = None
    menu: mn.MenuState | None = None  # where the caller is in the IVR (phase IVR and after)
    operator_node: str | None = None  # IVR node that handed the call to the operators
    urgent: bool = False  # asked for an urgent operator (e.g. urgent health)
    queued_at: dt.datetime | None = None  # entered the operators' queue
    operator: str | None = None  # extension of the operator who answered
    bridged_at: dt.datetime | None = None  # caller and operator connected
    talk_ended_at: dt.datetime | None = None  # the operator's part of the call ended
    wrap_up_s: int | None = None  # after-call work granted to the operator (tenant policy)
    no_answers: int = 0  # operators' phones that rang out for this call
    recording: str | None = None  # recording file, relative to the recordings folder
    transfers: tuple[TransferRecord, ...] = ()


@dataclass(frozen=True)
class IvrContext:
    """The tenant's menus and FAQ as they were when the call arrived (a reload changes neither
    for calls already in the menus)."""

    tree: IvrTree
    faq: mn.FaqSource
    greeting: Prompt


def new_call(call_id: str, node: str, dialled: str, caller: str, linkedid: str,
             at: dt.datetime) -> CallState:
    """A call that has just entered the Stasis app."""
    return CallState(call_id, node, dialled, caller, linkedid, at)


def _end(state: CallState, event: HungUp | Failed,
         ivr: IvrContext | None) -> tuple[CallState, list[Command]]:
    if state.outcome is not None:
        outcome = state.outcome
    elif isinstance(event, Failed):
        outcome = "failed"
    elif state.answered_at is not None:
        outcome = "answered"
    else:
        outcome = "abandoned"
    commands: list[Command] = []
    # In ADMITTING the pool may have granted a line whose answer never reached us (a lost
    # reply): releasing is idempotent, so release then too.
    if (state.line_held or state.phase is Phase.ADMITTING) and state.tenant_id is not None:
        commands.append(ReleaseLine(state.tenant_id))
    cause_code: int | None
    cause: str | None
    if isinstance(event, Failed):
        commands.append(Hangup("failure"))
        cause_code, cause = state.cause_code, event.reason
    else:
        cause_code, cause = event.cause_code, event.cause
    menu = state.menu
    if menu is not None and ivr is not None:
        menu, menu_commands = mn.step(ivr.tree, ivr.faq, menu, mn.CallerLeft(event.at))
        # Only CancelTimer can come back from CallerLeft: cancel the menu's timer first.
        commands[:0] = [c for c in menu_commands if isinstance(c, mn.CancelTimer)]
    commands.append(WriteRecord())
    new = replace(state, phase=Phase.ENDED, line_held=False, ended_at=event.at, outcome=outcome,
                  cause_code=cause_code, cause=cause, menu=menu)
    return new, commands


def _menu(state: CallState, ivr: IvrContext | None,
          event: mn.MenuEvent) -> tuple[CallState, list[Command]]:
    """Feed the IVR; turn its hand-over and goodbye into the call's own moves."""
    if ivr is None or state.menu is None:
        raise IllegalTransition("an IVR event for a call without menus")
    menu, menu_commands = mn.step(ivr.tree, ivr.faq, state.menu, event)
    state = replace(state, menu=menu)
    commands: list[Command] = []
    for c in menu_commands:
        if isinstance(c, mn.ToOperator):
            # Until the operators' queue exists, the caller waits with music on hold.
            state = replace(state, phase=Phase.HOLDING, operator_node=c.node, urgent=c.urgent)
            commands.append(StartMoh())
        elif isinstance(c, mn.EndCall):
            state = replace(state, phase=Phase.CLOSING)
            commands.append(Hangup("normal"))
        else:
            commands.append(c)
    return state, commands


def step(state: CallState, event: Event,
         ivr: IvrContext | None = None) -> tuple[CallState, list[Command]]:
    """Apply one event; return the new state and exactly the commands to carry out.

    ``ivr`` is the tenant's menus for a call that has them (None: greeting, then hold).
    """
    phase = state.phase
    if phase is Phase.ENDED:
        if isinstance(event, LineGranted):
            # The caller hung up while the pool was being asked: give the line straight back.
            assert state.tenant_id is not None
            return state, [ReleaseLine(state.tenant_id)]
        if isinstance(event, (HungUp, LineRefused, PlaybackFinished, Answered, Failed,
                              mn.Digit, mn.TimerFired, Resume)):
            return state, []  # late echoes of a call already over
        raise IllegalTransition(f"{type(event).__name__} after the call ended")
    if isinstance(event, HungUp):
        return _end(state, event, ivr)
    if isinstance(event, Failed):
        return _end(state, event, ivr)
    if isinstance(event, (mn.Digit, mn.TimerFired)):
        if phase is Phase.IVR:
            return _menu(state, ivr, event)
        return state, []  # keys pressed outside the menus (on hold, in a message) do nothing
    if phase is Phase.IVR and isinstance(event, PlaybackFinished):
        return _menu(state, ivr, mn.PromptEnded(event.at, event.token))
    if phase is Phase.IVR and isinstance(event, Answered):
        return replace(state, answered_at=state.answered_at or event.at), []
    if phase is Phase.IVR and isinstance(event, Resume):
        if ivr is None or state.menu is None:
            raise IllegalTransition("Resume for a call without menus")
        menu = replace(mn.start_state(ivr.tree), path=state.menu.path, seq=state.menu.seq)
        return _menu(replace(state, menu=menu), ivr, mn.Start(event.at))
    if phase is Phase.CLOSING and isinstance(event, PlaybackFinished):
        return state, []
    if phase is Phase.ROUTING and isinstance(event, Routed):
        if event.tenant_id is None:
            return (replace(state, phase=Phase.REJECTING, outcome="not_found"),
                    [Hangup("unallocated")])
        if event.limit is None:
            raise IllegalTransition("a routed call needs the pool limit")
        new = replace(state, phase=Phase.ADMITTING, tenant_id=event.tenant_id,
                      shift=event.shift, limit=event.limit)
        return new, [AcquireLine(event.tenant_id, event.limit)]
    if phase is Phase.ADMITTING and isinstance(event, LineGranted):
        assert state.tenant_id is not None
        if ivr is not None:
            new = replace(state, phase=Phase.IVR, line_held=True,
                          menu=mn.start_state(ivr.tree))
            new, commands = _menu(new, ivr, mn.Start(event.at, ivr.greeting))
            return new, [Answer(), *commands]
        new = replace(state, phase=Phase.GREETING, line_held=True)
        return new, [Answer(), Play(state.tenant_id, "greeting")]
    if phase in (Phase.GREETING, Phase.HOLDING) and isinstance(event, Answered):
        return replace(state, answered_at=state.answered_at or event.at), []
    if phase is Phase.ADMITTING and isinstance(event, LineRefused):
        assert state.tenant_id is not None
        new = replace(state, phase=Phase.BUSY_MESSAGE, outcome="busy")
        return new, [Progress(), Play(state.tenant_id, "all_busy")]
    if phase is Phase.GREETING and isinstance(event, PlaybackFinished):
        return replace(state, phase=Phase.HOLDING), [StartMoh()]
    if phase is Phase.BUSY_MESSAGE and isinstance(event, PlaybackFinished):
        return replace(state, phase=Phase.REJECTING), [Hangup("busy")]
    if phase in (Phase.HOLDING, Phase.REJECTING, Phase.CLOSING) \
            and isinstance(event, PlaybackFinished):
        return state, []  # a playback stopped by MOH or by our hang-up
    raise IllegalTransition(f"{type(event).__name__} in phase {phase.value}")
