"""One citizen's call as a pure state machine: (state, event) -> (new state, commands).

The ARI adapter turns Asterisk events into these events and carries out the commands. Nothing here
does I/O or reads the clock: every event carries its time.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, replace

from callcenter.ivr import menu as mn
from callcenter.ivr.tree import IvrTree, Prompt
from callcenter.queue.rules import CALLBACK_CONFIRM_TEXT


class Phase(enum.Enum):
    ROUTING = "routing"  # in Stasis, not yet matched to a tenant
    ADMITTING = "admitting"  # asking the tenant's line pool for a line
    GREETING = "greeting"  # answered, greeting playing (tenants without IVR menus)
    IVR = "ivr"  # answered, in the tenant's menus (callcenter.ivr.menu)
    HOLDING = "holding"  # music on hold; no operator queue (the tenant has no operators)
    QUEUED = "queued"  # waiting for an operator: music on hold, announcements, callback offer
    RINGING = "ringing"  # an operator's phone rings for the call (the caller keeps waiting)
    BRIDGED = "bridged"  # talking with the operator, recorded
    TRANSFERRED = "transferred"  # talking with a level-2 unit's hotline (the operator left)
    BUSY_MESSAGE = "busy_message"  # pool full: early media "all lines busy", never answered
    REJECTING = "rejecting"  # hang-up requested by us (busy after message, unknown number)
    CLOSING = "closing"  # hang-up requested by us after the IVR said goodbye
    ENDED = "ended"


# answered: served (by the IVR or an operator); abandoned: the caller left before being served
# (in the menus' greeting never, in the queue or while an operator's phone rang yes); callback:
# the caller chose to be called back instead of waiting.
OUTCOMES = ("answered", "busy", "abandoned", "not_found", "failed", "callback")


# Queue prompts' tokens start here, far above the menus' own (which count from 1 per call).
QUEUE_TOKENS = 1_000_000
QUEUE_PHASES = (Phase.QUEUED, Phase.RINGING)


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
    queue: bool = False  # the tenant has operators: callers wanting one are queued


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


@dataclass(frozen=True)
class Offered:
    """The queue chose an operator for this call: ring their phone (this instance owns the call)."""

    at: dt.datetime
    extension: str
    ring_timeout_s: int
    wrap_up_s: int = 0  # the tenant's after-call work time, kept on the record


@dataclass(frozen=True)
class OperatorAnswered:
    """The operator's phone answered the offer (the queue already confirmed the offer stood)."""

    at: dt.datetime
    extension: str


@dataclass(frozen=True)
class OperatorGone:
    """The operator's leg ended: before the answer a ring-out/decline, after it the operator
    hung up."""

    at: dt.datetime
    channel: str
    cause_code: int | None = None


@dataclass(frozen=True)
class WaitTick:
    """While queued: time to tell the caller their position (``announce``) or to offer a
    callback (``callback``); ``text`` is what they hear."""

    at: dt.datetime
    kind: str  # "announce" | "callback"
    text: str


@dataclass(frozen=True)
class TransferRequested:
    """Transfer the bridged caller to a unit's hotline (the service checked the number is one of
    the tenant's units). ``source`` "button": the phone's REFER on ``refer_channel`` (blind) or
    its consultation call ``consult_channel`` (attended); "api": the HTTP API."""

    at: dt.datetime
    by_extension: str
    unit_id: str
    number: str
    kind: str  # "blind" | "attended"
    source: str  # "button" | "api"
    refer_channel: str | None = None
    consult_channel: str | None = None


@dataclass(frozen=True)
class UnitAnswered:
    """The unit's hotline picked up the leg we dialled."""

    at: dt.datetime
    channel: str


@dataclass(frozen=True)
class UnitGone:
    """The unit's leg ended: before the answer no answer/busy, after it the unit hung up."""

    at: dt.datetime
    channel: str
    cause_code: int | None = None


@dataclass(frozen=True)
class TransferCompleted:
    """Finish an attended transfer: the phone's REFER with Replaces, or the HTTP API."""

    at: dt.datetime
    source: str  # "button" | "api"
    refer_channel: str | None = None


@dataclass(frozen=True)
class TransferCancelled:
    """Give up the transfer in progress: the operator goes back to the caller."""

    at: dt.datetime


Event = (Routed | LineGranted | Answered | LineRefused | PlaybackFinished | HungUp | Failed
         | mn.Digit | mn.TimerFired | Resume | Offered | OperatorAnswered | OperatorGone
         | WaitTick | TransferRequested | UnitAnswered | UnitGone | TransferCompleted
         | TransferCancelled)


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


@dataclass(frozen=True)
class StopMoh:
    pass


@dataclass(frozen=True)
class Enqueue:
    """Put the call in the tenant's operator queue (urgent calls go first)."""

    tenant_id: str
    urgent: bool


@dataclass(frozen=True)
class Dequeue:
    """Take the call out of the queue; ``extension`` is the operator whose phone was ringing
    (if the queue already counted the answer, the adapter ends that operator's call instead)."""

    tenant_id: str
    reason: str  # abandoned | callback | failed
    extension: str | None = None


@dataclass(frozen=True)
class RingOperator:
    """Originate ``channel`` to the operator's phone; it enters the app when answered."""

    extension: str
    channel: str
    timeout_s: int


@dataclass(frozen=True)
class ReturnOffer:
    """The operator's phone rang out or declined: the call keeps its place in the queue."""

    tenant_id: str
    extension: str


@dataclass(frozen=True)
class HangupChannel:
    """Hang up one of the call's other legs (the operator's)."""

    channel: str


@dataclass(frozen=True)
class BridgeOperator:
    """Connect caller and operator in ``bridge`` (created by id) and record it to ``recording``."""

    bridge: str
    operator_channel: str
    recording: str


@dataclass(frozen=True)
class EndOperatorCall:
    """The operator's part is over: the queue moves them to wrap-up."""

    tenant_id: str
    extension: str


@dataclass(frozen=True)
class DestroyBridge:
    bridge: str


@dataclass(frozen=True)
class SaveCallback:
    """Store the caller's callback request (their number, listed for operators)."""

    tenant_id: str


@dataclass(frozen=True)
class DialUnit:
    """Originate ``channel`` to ``PJSIP/<number>@trunk-out``; it enters the app when answered."""

    number: str
    channel: str
    timeout_s: int


@dataclass(frozen=True)
class TransferProgress:
    """Answer the phone's REFER (NOTIFY): channel_progress | channel_answered |
    channel_declined | channel_unavailable."""

    channel: str
    state: str


@dataclass(frozen=True)
class AnswerLeg:
    """Answer one of the call's other legs (the operator's consultation call)."""

    channel: str


@dataclass(frozen=True)
class CreateBridge:
    """A bridge without recording (the operator's consultation with a unit)."""

    bridge: str


@dataclass(frozen=True)
class MoveToBridge:
    """Put ``channel`` into ``bridge``, out of ``from_bridge`` first when given."""

    channel: str
    bridge: str
    from_bridge: str | None = None


@dataclass(frozen=True)
class BridgeMoh:
    """Music on hold in a bridge on (the caller waits for a consultation) or off."""

    bridge: str
    on: bool


Command = (AcquireLine | ReleaseLine | Answer | Progress | Play | StartMoh | Hangup | WriteRecord
           | mn.Say | mn.StopSaying | mn.StartTimer | mn.CancelTimer | StopMoh | Enqueue
           | Dequeue | RingOperator | ReturnOffer | HangupChannel | BridgeOperator
           | EndOperatorCall | DestroyBridge | SaveCallback | DialUnit | TransferProgress
           | AnswerLeg | CreateBridge | MoveToBridge | BridgeMoh)

# How long a unit's hotline may ring before "no answer" (the caller goes back to the operator).
UNIT_RING_TIMEOUT_S = 20
TRANSFER_KINDS = ("blind", "attended")
TRANSFER_SOURCES = ("button", "api")
BUSY_CAUSE = 17  # User busy: the phone's REFER gets 503 (channel_unavailable), else 603


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
class Transfer:
    """The transfer in progress (one at a time); ``consult_bridge`` for attended ones."""

    at: dt.datetime
    by: str
    unit: str
    number: str
    kind: str
    source: str
    unit_channel: str
    refer_channel: str | None = None  # the operator leg whose REFER we answer (button)
    consult_channel: str | None = None  # the phone's consultation call (button, attended)
    consult_bridge: str | None = None
    unit_answered: bool = False
    operator_left: bool = False  # blind: the operator hung up while the unit rang
    moh: bool = False  # music on hold started in the caller's bridge


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
    queue_enabled: bool = False  # the tenant has operators: the operator node queues the call
    ringing: str | None = None  # extension whose phone rings for the call (phase RINGING)
    operator_channel: str | None = None  # the operator's leg (ringing or bridged)
    legs: int = 0  # operator legs originated so far (names the next one)
    bridge: str | None = None  # the caller-operator bridge, once created
    announcing: int | None = None  # token of the queue announcement playing
    announced_at: dt.datetime | None = None  # last position announcement
    callback_offered: bool = False  # "press 1 to be called back" was said
    closing_token: int | None = None  # hang up when this prompt ends (callback confirmation)
    queue_seq: int = 0  # last token handed to a queue prompt (above QUEUE_TOKENS)
    transfer: Transfer | None = None  # a transfer to a unit in progress (phase BRIDGED)
    unit_channel: str | None = None  # the unit's leg once the caller was transferred
    unit_legs: int = 0  # unit legs originated so far (names the next one)


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
    phase = state.phase
    if state.outcome is not None:
        outcome = state.outcome
    elif isinstance(event, Failed):
        outcome = "failed"
    elif phase in QUEUE_PHASES:
        outcome = "abandoned"  # left before an operator answered, whatever the IVR did
    elif state.answered_at is not None:
        outcome = "answered"
    else:
        outcome = "abandoned"
    commands: list[Command] = []
    talk_ended_at = state.talk_ended_at
    if phase in QUEUE_PHASES and state.tenant_id is not None:
        commands.append(Dequeue(state.tenant_id, "failed" if isinstance(event, Failed)
                                else "abandoned", state.ringing))
        if phase is Phase.RINGING and state.operator_channel is not None:
            commands.append(HangupChannel(state.operator_channel))
    elif phase is Phase.BRIDGED and state.tenant_id is not None and state.operator is not None:
        t, tenant_id, operator = state.transfer, state.tenant_id, state.operator
        if t is not None:
            # The caller left mid-transfer: the unit's leg and any consultation go too.
            state, transfer_commands = _give_up(state, "failed", back=False)
            commands += transfer_commands
        talk_ended_at = state.talk_ended_at if t is not None and t.operator_left else event.at
        if state.operator_channel is not None:
            commands.append(HangupChannel(state.operator_channel))
        if t is None or not t.operator_left:
            commands.append(EndOperatorCall(tenant_id, operator))
    elif phase is Phase.TRANSFERRED and state.unit_channel is not None:
        commands.append(HangupChannel(state.unit_channel))
    if state.bridge is not None:
        commands.append(DestroyBridge(state.bridge))
    # In ADMITTING the pool may have granted a line whose answer never reached us (a lost
    # reply): releasing is idempotent, so release then too.
    if (state.line_held or phase is Phase.ADMITTING) and state.tenant_id is not None:
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
                  cause_code=cause_code, cause=cause, menu=menu, talk_ended_at=talk_ended_at,
                  ringing=None, announcing=None,
                  wrap_up_s=state.wrap_up_s if state.operator is not None else None)
    return new, commands


def _to_queue(state: CallState, at: dt.datetime) -> tuple[CallState, list[Command]]:
    """The caller asked for (or is sent to) an operator: queue with music on hold."""
    assert state.tenant_id is not None
    if not state.queue_enabled:
        # No operators configured for the tenant: the caller waits with music on hold.
        return replace(state, phase=Phase.HOLDING), [StartMoh()]
    new = replace(state, phase=Phase.QUEUED, queued_at=state.queued_at or at)
    return new, [StartMoh(), Enqueue(state.tenant_id, state.urgent)]


def _queue_say(state: CallState, prompt: Prompt) -> tuple[CallState, list[Command], int]:
    """Stop music (and any queue prompt still playing) and say ``prompt``."""
    token = max(state.queue_seq, QUEUE_TOKENS) + 1
    commands: list[Command] = []
    if state.announcing is not None:
        commands.append(mn.StopSaying(state.announcing))
    commands += [StopMoh(), mn.Say(prompt, token)]
    return replace(state, queue_seq=token), commands, token


def _queued(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """Events of a caller waiting for an operator (QUEUED, RINGING); None: not one of them."""
    assert state.tenant_id is not None
    if isinstance(event, Offered):
        if state.phase is Phase.RINGING:
            return state, []  # the same offer again (its announcement on pub/sub)
        legs = state.legs + 1
        channel = f"{state.call_id}-op{legs}"
        new = replace(state, phase=Phase.RINGING, ringing=event.extension,
                      operator_channel=channel, legs=legs, wrap_up_s=event.wrap_up_s)
        return new, [RingOperator(event.extension, channel, event.ring_timeout_s)]
    if isinstance(event, OperatorAnswered):
        if state.phase is not Phase.RINGING or event.extension != state.ringing:
            raise IllegalTransition(f"operator {event.extension} answered a call ringing "
                                    f"{state.ringing}")
        assert state.operator_channel is not None
        bridge = f"{state.call_id}-bridge"
        local = event.at.astimezone(dt.UTC)
        # One folder: Asterisk does not create sub-folders for a bridge recording.
        recording = f"{state.tenant_id}-{local:%Y%m%d}-{state.call_id}"
        commands: list[Command] = []
        if state.announcing is not None:
            commands.append(mn.StopSaying(state.announcing))
        commands += [StopMoh(), BridgeOperator(bridge, state.operator_channel, recording)]
        new = replace(state, phase=Phase.BRIDGED, operator=event.extension, ringing=None,
                      bridged_at=event.at, bridge=bridge, recording=recording + ".wav",
                      announcing=None, answered_at=state.answered_at or event.at)
        return new, commands
    if isinstance(event, OperatorGone):
        if state.phase is Phase.RINGING and event.channel == state.operator_channel:
            assert state.ringing is not None
            new = replace(state, phase=Phase.QUEUED, ringing=None, operator_channel=None,
                          no_answers=state.no_answers + 1)
            return new, [ReturnOffer(state.tenant_id, state.ringing)]
        return state, []  # a leg we already gave up on
    if isinstance(event, WaitTick):
        prompt_id = "queue_callback_offer" if event.kind == "callback" else "queue_position"
        new, commands, token = _queue_say(state, Prompt(prompt_id, event.text))
        if event.kind == "callback":
            new = replace(new, announcing=token, callback_offered=True)
        else:
            new = replace(new, announcing=token, announced_at=event.at)
        return new, commands
    if isinstance(event, PlaybackFinished):
        if state.announcing is not None and event.token == state.announcing:
            return replace(state, announcing=None), [StartMoh()]
        return state, []  # a prompt we stopped, or the IVR's last one
    if isinstance(event, mn.Digit):
        if not (state.callback_offered and event.digit == "1"):
            return state, []  # keys while waiting do nothing, except 1 after the offer
        new, say, token = _queue_say(state, Prompt("queue_callback_confirm",
                                                   CALLBACK_CONFIRM_TEXT))
        commands = [Dequeue(state.tenant_id, "callback", state.ringing)]
        if state.phase is Phase.RINGING and state.operator_channel is not None:
            commands.append(HangupChannel(state.operator_channel))
        commands += [SaveCallback(state.tenant_id), *say]
        new = replace(new, phase=Phase.CLOSING, outcome="callback", ringing=None,
                      announcing=None, closing_token=token)
        return new, commands
    if isinstance(event, mn.TimerFired):
        return state, []  # a menu timer that fired as the call left the menus
    if isinstance(event, Resume):
        # Adopted after its instance died: the queue entry was taken over (AcdQueue.reconcile);
        # a phone the dead instance was ringing is hung up (the offer lapses by itself).
        commands = [HangupChannel(state.operator_channel)] \
            if state.phase is Phase.RINGING and state.operator_channel is not None else []
        new = replace(state, phase=Phase.QUEUED, ringing=None, operator_channel=None,
                      announcing=None)
        return new, [*commands, StartMoh()]
    if isinstance(event, Answered):
        return replace(state, answered_at=state.answered_at or event.at), []
    return None


def _bridged(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """Events while caller and operator talk; None: not one of them."""
    if isinstance(event, OperatorGone):
        if event.channel != state.operator_channel:
            return state, []
        assert state.tenant_id is not None and state.operator is not None
        new = replace(state, phase=Phase.CLOSING, talk_ended_at=event.at,
                      operator_channel=None)
        return new, [EndOperatorCall(state.tenant_id, state.operator), Hangup("normal")]
    if isinstance(event, (PlaybackFinished, mn.Digit, mn.TimerFired, Offered, WaitTick,
                          Answered, Resume)):
        return state, []  # late queue events; keys pressed while talking; adopted: talk on
    return None

# ---- transfers to level-2 units -----------------------------------------------------------
def _record(t: Transfer, answered: bool, result: str) -> TransferRecord:
    return TransferRecord(t.at, t.by, t.unit, t.number, t.kind, answered, result)


def _refuse(event: TransferRequested | TransferCompleted, why: str) -> list[Command]:
    """A transfer the call cannot make now: the phone hears 603; the API checked before."""
    if event.source != "button":
        raise IllegalTransition(why)
    commands: list[Command] = []
    if event.refer_channel is not None:
        commands.append(TransferProgress(event.refer_channel, "channel_declined"))
    if isinstance(event, TransferRequested) and event.consult_channel is not None:
        commands.append(HangupChannel(event.consult_channel))
    return commands


def _start_transfer(state: CallState,
                    event: TransferRequested) -> tuple[CallState, list[Command]]:
    if state.transfer is not None:
        return state, _refuse(event, "a transfer is already in progress")
    if event.kind not in TRANSFER_KINDS or event.source not in TRANSFER_SOURCES:
        raise IllegalTransition(f"transfer kind {event.kind!r} from {event.source!r}")
    assert state.bridge is not None and state.operator_channel is not None
    n = state.unit_legs + 1
    unit_channel = f"{state.call_id}-unit{n}"
    t = Transfer(event.at, event.by_extension, event.unit_id, event.number, event.kind,
                 event.source, unit_channel, event.refer_channel, event.consult_channel)
    commands: list[Command] = []
    if event.kind == "blind":
        # The caller keeps talking with the operator while the unit rings: if it does not
        # answer, nothing has changed for them.
        if event.refer_channel is not None:
            commands.append(TransferProgress(event.refer_channel, "channel_progress"))
    else:
        # Consultation: the operator (their own leg from the API, or the phone's second call)
        # talks with the unit in a bridge of their own; the caller hears music meanwhile.
        consult = f"{state.call_id}-consult{n}"
        t = replace(t, consult_bridge=consult, moh=True)
        commands.append(CreateBridge(consult))
        if event.consult_channel is not None:
            commands += [AnswerLeg(event.consult_channel),
                         MoveToBridge(event.consult_channel, consult)]
        else:
            commands.append(MoveToBridge(state.operator_channel, consult, state.bridge))
        commands.append(BridgeMoh(state.bridge, True))
    commands.append(DialUnit(event.number, unit_channel, UNIT_RING_TIMEOUT_S))
    return replace(state, transfer=t, unit_legs=n), commands


def _complete(state: CallState, at: dt.datetime) -> tuple[CallState, list[Command]]:
    """The unit takes the caller; the operator's part of the call is over (wrap-up)."""
    t = state.transfer
    assert t is not None and state.bridge is not None and state.tenant_id is not None
    commands: list[Command] = [MoveToBridge(t.unit_channel, state.bridge, t.consult_bridge)]
    if t.refer_channel is not None:
        commands.append(TransferProgress(t.refer_channel, "channel_answered"))
    if t.moh:
        commands.append(BridgeMoh(state.bridge, False))
    for leg in (state.operator_channel, t.consult_channel):
        if leg is not None:
            commands.append(HangupChannel(leg))
    if t.consult_bridge is not None:
        commands.append(DestroyBridge(t.consult_bridge))
    if not t.operator_left and state.operator is not None:
        commands.append(EndOperatorCall(state.tenant_id, state.operator))
    new = replace(state, phase=Phase.TRANSFERRED, transfer=None, operator_channel=None,
                  unit_channel=t.unit_channel, talk_ended_at=state.talk_ended_at or at,
                  transfers=(*state.transfers, _record(t, True, "completed")))
    return new, commands


def _give_up(state: CallState, result: str, cause_code: int | None = None,
             hang_up_unit: bool = True, back: bool = True,
             hang_up_consult: bool = True) -> tuple[CallState, list[Command]]:
    """The transfer ends without the unit taking the caller: back to the operator."""
    t = state.transfer
    assert t is not None and state.bridge is not None
    commands: list[Command] = []
    if t.refer_channel is not None and not t.unit_answered:
        reply = "channel_unavailable" if cause_code == BUSY_CAUSE else "channel_declined"
        commands.append(TransferProgress(t.refer_channel, reply))
    if hang_up_unit:
        commands.append(HangupChannel(t.unit_channel))
    if t.consult_channel is not None and hang_up_consult:
        commands.append(HangupChannel(t.consult_channel))  # the phone's held call goes on
    if t.moh and back:
        commands.append(BridgeMoh(state.bridge, False))
    if t.consult_bridge is not None:
        if back and t.consult_channel is None and state.operator_channel is not None:
            commands.append(MoveToBridge(state.operator_channel, state.bridge, t.consult_bridge))
        commands.append(DestroyBridge(t.consult_bridge))
    new = replace(state, transfer=None,
                  transfers=(*state.transfers, _record(t, t.unit_answered, result)))
    return new, commands


def _transferring(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """Transfer events while caller and operator talk; None: not one of them."""
    t = state.transfer
    if isinstance(event, TransferRequested):
        return _start_transfer(state, event)
    if isinstance(event, UnitAnswered):
        if t is None or event.channel != t.unit_channel or t.unit_answered:
            return state, [HangupChannel(event.channel)]  # answered after we gave up on it
        if t.kind == "blind":
            return _complete(state, event.at)
        assert t.consult_bridge is not None
        new = replace(state, transfer=replace(t, unit_answered=True))
        return new, [MoveToBridge(event.channel, t.consult_bridge)]
    if isinstance(event, UnitGone):
        if t is None or event.channel != t.unit_channel:
            return state, []
        if t.operator_left:
            # Blind, the operator gone, the unit not answering: nobody is left for the caller.
            new, commands = _give_up(state, "no_answer", event.cause_code, hang_up_unit=False,
                                     back=False)
            return replace(new, phase=Phase.CLOSING), [*commands, Hangup("normal")]
        return _give_up(state, "returned" if t.unit_answered else "no_answer",
                        event.cause_code, hang_up_unit=False)
    if isinstance(event, TransferCompleted):
        if t is None or t.kind != "attended" or not t.unit_answered:
            return state, _refuse(event, "no answered consultation to complete")
        if event.refer_channel is not None:
            t = replace(t, refer_channel=event.refer_channel)
        return _complete(replace(state, transfer=t), event.at)
    if isinstance(event, TransferCancelled):
        if t is None:
            raise IllegalTransition("no transfer to cancel")
        return _give_up(state, "returned" if t.unit_answered else "no_answer")
    if isinstance(event, OperatorGone) and t is not None:
        assert state.tenant_id is not None and state.operator is not None
        if event.channel == t.consult_channel:
            # The operator hung up the consultation without transferring: back to the caller.
            return _give_up(state, "returned" if t.unit_answered else "no_answer",
                            hang_up_consult=False)
        if event.channel != state.operator_channel:
            return state, []
        if t.kind == "attended" and t.unit_answered:
            return _complete(replace(state, operator_channel=None), event.at)
        if t.kind == "blind" and not t.operator_left:
            # The operator left before the unit answered: the caller waits for it with music.
            commands = [EndOperatorCall(state.tenant_id, state.operator)]
            if not t.moh:
                commands.append(BridgeMoh(state.bridge or "", True))
            new = replace(state, operator_channel=None, talk_ended_at=event.at,
                          transfer=replace(t, operator_left=True, moh=True, refer_channel=None))
            return new, commands
        new, commands = _give_up(state, "failed")
        new = replace(new, phase=Phase.CLOSING, talk_ended_at=event.at, operator_channel=None)
        return new, [*commands, EndOperatorCall(state.tenant_id, state.operator),
                     Hangup("normal")]
    if isinstance(event, Resume) and t is not None:
        # Adopted mid-transfer: the other instance's legs and answers are lost; give it up.
        return _give_up(replace(state, transfer=replace(t, refer_channel=None)), "failed")
    return None


def _transferred(state: CallState, event: Event) -> tuple[CallState, list[Command]]:
    """The caller talks with the unit; the unit hanging up ends the call."""
    if isinstance(event, UnitGone) and event.channel == state.unit_channel:
        return replace(state, phase=Phase.CLOSING, unit_channel=None), [Hangup("normal")]
    if isinstance(event, UnitAnswered):
        return state, [HangupChannel(event.channel)]
    if isinstance(event, TransferRequested):
        return state, _refuse(event, "the call was already transferred")
    if isinstance(event, TransferCompleted) and event.source == "button":
        return state, _refuse(event, "the call was already transferred")
    if isinstance(event, (UnitGone, OperatorGone, PlaybackFinished, mn.Digit, mn.TimerFired,
                          Offered, WaitTick, Answered, Resume)):
        return state, []
    raise IllegalTransition(f"{type(event).__name__} in phase {state.phase.value}")


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
            state = replace(state, operator_node=c.node, urgent=c.urgent)
            state, queue_commands = _to_queue(state, event.at)
            commands += queue_commands
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
        if isinstance(event, UnitAnswered):
            return state, [HangupChannel(event.channel)]  # the caller left as the unit answered
        if isinstance(event, (HungUp, LineRefused, PlaybackFinished, Answered, Failed,
                              mn.Digit, mn.TimerFired, Resume, Offered, OperatorGone,
                              WaitTick, UnitGone)):
            return state, []  # late echoes of a call already over
        raise IllegalTransition(f"{type(event).__name__} after the call ended")
    if isinstance(event, HungUp):
        return _end(state, event, ivr)
    if isinstance(event, Failed):
        return _end(state, event, ivr)
    if phase in QUEUE_PHASES:
        handled = _queued(state, event)
        if handled is not None:
            return handled
    if phase is Phase.BRIDGED:
        handled = _transferring(state, event)
        if handled is not None:
            return handled
        handled = _bridged(state, event)
        if handled is not None:
            return handled
    if phase is Phase.TRANSFERRED:
        return _transferred(state, event)
    if phase is Phase.CLOSING:
        if isinstance(event, PlaybackFinished) and event.token == state.closing_token \
                and event.token is not None:
            return replace(state, closing_token=None), [Hangup("normal")]
        if isinstance(event, UnitAnswered):
            return state, [HangupChannel(event.channel)]
        if isinstance(event, (PlaybackFinished, Offered, OperatorGone, WaitTick, mn.Digit,
                              mn.TimerFired, Answered, UnitGone)):
            return state, []  # the call is being hung up
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
    if phase is Phase.ROUTING and isinstance(event, Routed):
        if event.tenant_id is None:
            return (replace(state, phase=Phase.REJECTING, outcome="not_found"),
                    [Hangup("unallocated")])
        if event.limit is None:
            raise IllegalTransition("a routed call needs the pool limit")
        new = replace(state, phase=Phase.ADMITTING, tenant_id=event.tenant_id,
                      shift=event.shift, limit=event.limit, queue_enabled=event.queue)
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
        return _to_queue(state, event.at)
    if phase is Phase.BUSY_MESSAGE and isinstance(event, PlaybackFinished):
        return replace(state, phase=Phase.REJECTING), [Hangup("busy")]
    if phase in (Phase.HOLDING, Phase.REJECTING, Phase.CLOSING) \
            and isinstance(event, PlaybackFinished):
        return state, []  # a playback stopped by MOH or by our hang-up
    raise IllegalTransition(f"{type(event).__name__} in phase {phase.value}")
