"""The call machine itself: ``step`` applies one event to a call's state."""

from __future__ import annotations

from dataclasses import replace

from callcenter.calls.commands import (
    AcquireLine,
    Answer,
    Command,
    Dequeue,
    DestroyBridge,
    EndOperatorCall,
    Hangup,
    HangupChannel,
    Play,
    Progress,
    ReleaseLine,
    WriteRecord,
)
from callcenter.calls.events import (
    Answered,
    Event,
    Failed,
    HungUp,
    LineGranted,
    LineRefused,
    Offered,
    OperatorGone,
    PlaybackFinished,
    Resume,
    Routed,
    UnitAnswered,
    UnitGone,
    WaitTick,
)
from callcenter.calls.queueing import bridged, queued, to_queue
from callcenter.calls.state import QUEUE_PHASES, CallState, IllegalTransition, IvrContext, Phase
from callcenter.calls.transfer_phases import give_up, transferred, transferring
from callcenter.domain import menu as mn


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
            state, transfer_commands = give_up(state, "failed", back=False)
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
            state, queue_commands = to_queue(state, event.at)
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
        handled = queued(state, event)
        if handled is not None:
            return handled
    if phase is Phase.BRIDGED:
        handled = transferring(state, event)
        if handled is not None:
            return handled
        handled = bridged(state, event)
        if handled is not None:
            return handled
    if phase is Phase.TRANSFERRED:
        return transferred(state, event)
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
        return to_queue(state, event.at)
    if phase is Phase.BUSY_MESSAGE and isinstance(event, PlaybackFinished):
        return replace(state, phase=Phase.REJECTING), [Hangup("busy")]
    if phase in (Phase.HOLDING, Phase.REJECTING, Phase.CLOSING) \
            and isinstance(event, PlaybackFinished):
        return state, []  # a playback stopped by MOH or by our hang-up
    raise IllegalTransition(f"{type(event).__name__} in phase {phase.value}")
