"""The call machine's transfers of a bridged caller to a level-2 unit's hotline."""

from __future__ import annotations

import datetime as dt

from callcenter.calls.commands import (
    AnswerLeg,
    BridgeMoh,
    Command,
    CreateBridge,
    DestroyBridge,
    DialUnit,
    EndOperatorCall,
    Hangup,
    HangupChannel,
    MoveToBridge,
    TransferProgress,
    legs_hung_up,
)
from callcenter.calls.events import (
    Event,
    OperatorGone,
    Resume,
    TransferCancelled,
    TransferCompleted,
    TransferRequested,
    UnitAnswered,
    UnitGone,
)
from callcenter.calls.evolve import replace
from callcenter.calls.state import (
    BUSY_CAUSE,
    TRANSFER_KINDS,
    TRANSFER_SOURCES,
    UNIT_RING_TIMEOUT_S,
    CallState,
    IllegalTransition,
    Phase,
    Transfer,
    TransferRecord,
)


def _record(t: Transfer, answered: bool, result: str) -> TransferRecord:
    return TransferRecord(t.at, t.by, t.unit, t.number, t.kind, answered, result, t.ticket)


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
        # Freed once the phone's legs are gone (EndOperatorCall.after).
        after = legs_hung_up(commands, state.operator_channel, t.consult_channel)
        commands.append(EndOperatorCall(state.tenant_id, state.operator, after))
    new = replace(state, phase=Phase.TRANSFERRED, transfer=None, operator_channel=None,
                  unit_channel=t.unit_channel, talk_ended_at=state.talk_ended_at or at,
                  transfers=(*state.transfers, _record(t, True, "completed")))
    return new, commands


def give_up(state: CallState, result: str, cause_code: int | None = None,
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


def transferring(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """Transfer events while caller and operator talk; None: no move for this one."""
    t = state.transfer
    if isinstance(event, TransferRequested):
        return _start_transfer(state, event)
    if isinstance(event, UnitAnswered):
        if t is None or event.channel != t.unit_channel or t.unit_answered:
            return state, [HangupChannel(event.channel)]  # answered after we gave up on it
        if t.kind == "blind":
            return _complete(state, event.at)
        assert t.consult_bridge is not None
        new = replace(state, transfer=replace(t, unit_answered=True, ticket=event.ticket))
        return new, [MoveToBridge(event.channel, t.consult_bridge)]
    if isinstance(event, UnitGone) and t is not None and event.channel == t.unit_channel:
        if t.operator_left:
            # Blind, the operator gone, the unit not answering: nobody is left for the caller.
            new, commands = give_up(state, "no_answer", event.cause_code, hang_up_unit=False,
                                     back=False)
            return replace(new, phase=Phase.CLOSING), [*commands, Hangup("normal")]
        return give_up(state, "returned" if t.unit_answered else "no_answer",
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
        return give_up(state, "returned" if t.unit_answered else "no_answer")
    if isinstance(event, OperatorGone) and t is not None:
        assert state.tenant_id is not None and state.operator is not None
        if event.channel == t.consult_channel:
            # The operator hung up the consultation without transferring: back to the caller.
            return give_up(state, "returned" if t.unit_answered else "no_answer",
                            hang_up_consult=False)
        if event.channel != state.operator_channel:
            return None  # an old leg
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
        new, commands = give_up(state, "failed")
        new = replace(new, phase=Phase.CLOSING, talk_ended_at=event.at, operator_channel=None)
        # The phone's consultation call, if any, goes first (EndOperatorCall.after).
        after = legs_hung_up(commands, t.consult_channel)
        return new, [*commands, EndOperatorCall(state.tenant_id, state.operator, after),
                     Hangup("normal")]
    if isinstance(event, Resume) and t is not None:
        # Adopted mid-transfer: the other instance's legs and answers are lost; give it up.
        return give_up(replace(state, transfer=replace(t, refer_channel=None)), "failed")
    return None


def transferred(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """The caller talks with the unit; the unit hanging up ends the call; None: no move for
    this event (``machine.IGNORED`` tells whether it is ignored or illegal)."""
    if isinstance(event, UnitGone) and event.channel == state.unit_channel:
        return replace(state, phase=Phase.CLOSING, unit_channel=None), [Hangup("normal")]
    if isinstance(event, UnitAnswered):
        return state, [HangupChannel(event.channel)]
    if isinstance(event, TransferRequested):
        return state, _refuse(event, "the call was already transferred")
    if isinstance(event, TransferCompleted) and event.source == "button":
        return state, _refuse(event, "the call was already transferred")
    return None
