"""The call machine's queue phases: waiting for an operator, their phone ringing, talking."""

from __future__ import annotations

import datetime as dt

from callcenter.calls.commands import (
    BridgeOperator,
    Command,
    Dequeue,
    EndOperatorCall,
    Enqueue,
    Hangup,
    HangupChannel,
    ReturnOffer,
    RingOperator,
    SaveCallback,
    StartMoh,
    StopMoh,
)
from callcenter.calls.events import (
    Answered,
    Event,
    Offered,
    OperatorAnswered,
    OperatorGone,
    PlaybackFinished,
    Resume,
    WaitTick,
)
from callcenter.calls.evolve import replace
from callcenter.calls.state import (
    QUEUE_TOKENS,
    CallState,
    IllegalTransition,
    Phase,
    resume_tokens,
)
from callcenter.ivr import menu as mn
from callcenter.ivr.tree import Prompt
from callcenter.queue.rules import CALLBACK_CONFIRM_TEXT

# The prompt each kind of WaitTick says (a tenant may record its own file under that id).
WAIT_PROMPTS = {"announce": "queue_position", "callback": "queue_callback_offer",
                "unavailable": "queue_unavailable"}


def bridge_id(call_id: str) -> str:
    """The bridge a call's caller and operator talk in."""
    return f"{call_id}-bridge"


def to_queue(state: CallState, at: dt.datetime) -> tuple[CallState, list[Command]]:
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


def queued(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """Events of a caller waiting for an operator (QUEUED, RINGING); None: no move for this one
    (``machine.IGNORED`` tells whether it is ignored or illegal)."""
    assert state.tenant_id is not None
    if isinstance(event, Offered) and state.phase is Phase.QUEUED:
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
        bridge = bridge_id(state.call_id)
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
    if isinstance(event, OperatorGone) and state.phase is Phase.RINGING \
            and event.channel == state.operator_channel:
        assert state.ringing is not None
        new = replace(state, phase=Phase.QUEUED, ringing=None, operator_channel=None,
                      no_answers=state.no_answers + 1)
        return new, [ReturnOffer(state.tenant_id, state.ringing)]
    if isinstance(event, WaitTick):
        new, commands, token = _queue_say(state, Prompt(WAIT_PROMPTS[event.kind], event.text))
        if event.kind in ("callback", "unavailable"):
            new = replace(new, announcing=token, callback_offered=True)
        else:
            new = replace(new, announcing=token, announced_at=event.at)
        return new, commands
    if isinstance(event, PlaybackFinished) and state.announcing is not None \
            and event.token == state.announcing:
        return replace(state, announcing=None), [StartMoh()]
    if isinstance(event, mn.Digit) and state.callback_offered and event.digit == "1":
        new, say, token = _queue_say(state, Prompt("queue_callback_confirm",
                                                   CALLBACK_CONFIRM_TEXT))
        commands = []
        after: tuple[str, ...] = ()
        if state.phase is Phase.RINGING and state.operator_channel is not None:
            # The phone stops ringing first; the operator is free once it has (Dequeue.after).
            commands.append(HangupChannel(state.operator_channel))
            after = (state.operator_channel,)
        commands += [Dequeue(state.tenant_id, "callback", state.ringing, after),
                     SaveCallback(state.tenant_id), *say]
        new = replace(new, phase=Phase.CLOSING, outcome="callback", ringing=None,
                      announcing=None, closing_token=token)
        return new, commands
    if isinstance(event, Resume):
        # Adopted after its instance died: the queue entry was taken over (AcdQueue.reconcile);
        # a phone the dead instance was ringing is hung up (the offer lapses by itself).
        commands = [HangupChannel(state.operator_channel)] \
            if state.phase is Phase.RINGING and state.operator_channel is not None else []
        new = replace(state, phase=Phase.QUEUED, ringing=None, operator_channel=None,
                      announcing=None,
                      queue_seq=resume_tokens(max(state.queue_seq, QUEUE_TOKENS)))
        return new, [*commands, StartMoh()]
    if isinstance(event, Answered):
        return replace(state, answered_at=state.answered_at or event.at), []
    return None


def bridged(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """Events while caller and operator talk; None: no move for this one."""
    if isinstance(event, OperatorGone) and event.channel == state.operator_channel:
        assert state.tenant_id is not None and state.operator is not None
        new = replace(state, phase=Phase.CLOSING, talk_ended_at=event.at,
                      operator_channel=None)
        return new, [EndOperatorCall(state.tenant_id, state.operator), Hangup("normal")]
    return None
