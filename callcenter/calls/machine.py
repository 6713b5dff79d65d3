"""The call machine itself: ``step`` applies one event to a call's state."""

from __future__ import annotations

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
    ReleaseLine,
    ReleaseOffer,
    WriteRecord,
    legs_hung_up,
)
from callcenter.calls.events import (
    Answered,
    Event,
    Failed,
    HungUp,
    LineGranted,
    LineRefused,
    Offered,
    OfferGranted,
    OfferRefused,
    OperatorGone,
    PlaybackFinished,
    Resume,
    Routed,
    UnitAnswered,
    UnitGone,
    WaitTick,
)
from callcenter.calls.evolve import replace
from callcenter.calls.full_offer import line_refused, offering
from callcenter.calls.queueing import bridged, queued, to_queue
from callcenter.calls.state import (
    QUEUE_PHASES,
    CallState,
    IllegalTransition,
    IvrContext,
    Phase,
    resume_tokens,
)
from callcenter.calls.transfer_phases import give_up, transferred, transferring
from callcenter.ivr import menu as mn


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
    # The command freeing the operator waits for their phone's legs to go (``after``): it comes
    # last but the record, so that the line, the offer slot and the bridge are let go at once
    # however long that takes (an end the app is not told of waits LEG_GONE_WAIT_S).
    freeing: Command | None = None
    talk_ended_at = state.talk_ended_at
    if phase in QUEUE_PHASES and state.tenant_id is not None:
        reason = "failed" if isinstance(event, Failed) else "abandoned"
        if phase is Phase.RINGING and state.operator_channel is not None:
            # The phone stops ringing first; the operator is free once it has (Dequeue.after).
            commands.append(HangupChannel(state.operator_channel))
            freeing = Dequeue(state.tenant_id, reason, state.ringing, (state.operator_channel,))
        else:
            commands.append(Dequeue(state.tenant_id, reason, state.ringing))
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
            # Freed once the phone's legs are gone (EndOperatorCall.after).
            legs = legs_hung_up(commands, state.operator_channel,
                                t.consult_channel if t is not None else None)
            freeing = EndOperatorCall(tenant_id, operator, legs)
    elif phase is Phase.TRANSFERRED and state.unit_channel is not None:
        commands.append(HangupChannel(state.unit_channel))
    if state.bridge is not None:
        commands.append(DestroyBridge(state.bridge))
    # In ADMITTING the pool may have granted a line whose answer never reached us (a lost
    # reply): releasing is idempotent, so release then too.
    if (state.line_held or phase is Phase.ADMITTING) and state.tenant_id is not None:
        commands.append(ReleaseLine(state.tenant_id))
    # The same for the pool-full offer's slot (held, or maybe granted by a lost reply).
    if (state.offer_held or phase is Phase.OFFER_ADMITTING) and state.tenant_id is not None:
        commands.append(ReleaseOffer(state.tenant_id))
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
    if freeing is not None:
        commands.append(freeing)
    commands.append(WriteRecord())
    new = replace(state, phase=Phase.ENDED, line_held=False, offer_held=False, ended_at=event.at,
                  outcome=outcome,
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


def _setting_up(state: CallState, event: Event,
                ivr: IvrContext | None) -> tuple[CallState, list[Command]] | None:
    """Routing, admission, greeting, hold, busy message (or the pool-full callback offer:
    full_offer.py), rejection; None: no move for this."""
    phase = state.phase
    if phase is Phase.ROUTING and isinstance(event, Routed):
        if event.tenant_id is None:
            return (replace(state, phase=Phase.REJECTING, outcome="not_found"),
                    [Hangup("unallocated")])
        if event.limit is None:
            raise IllegalTransition("a routed call needs the pool limit")
        new = replace(state, phase=Phase.ADMITTING, tenant_id=event.tenant_id,
                      shift=event.shift, limit=event.limit, queue_enabled=event.queue,
                      callback_when_full=event.callback_when_full)
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
        return line_refused(state, event)
    if phase is Phase.GREETING and isinstance(event, PlaybackFinished):
        return to_queue(state, event.at)
    if phase is Phase.BUSY_MESSAGE and isinstance(event, PlaybackFinished):
        return replace(state, phase=Phase.REJECTING), [Hangup("busy")]
    return None


def _in_menus(state: CallState, event: Event,
              ivr: IvrContext | None) -> tuple[CallState, list[Command]] | None:
    """Events of a call in the tenant's menus (IVR); None: no move for this one."""
    if isinstance(event, (mn.Digit, mn.TimerFired, mn.LookupDone)):
        return _menu(state, ivr, event)
    if isinstance(event, PlaybackFinished):
        return _menu(state, ivr, mn.PromptEnded(event.at, event.token))
    if isinstance(event, Answered):
        return replace(state, answered_at=state.answered_at or event.at), []
    if isinstance(event, Resume):
        if ivr is None or state.menu is None:
            raise IllegalTransition("Resume for a call without menus")
        menu = replace(mn.start_state(ivr.tree), path=state.menu.path,
                       seq=resume_tokens(state.menu.seq))
        return _menu(replace(state, menu=menu), ivr, mn.Start(event.at))
    return None


def _closing(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """Events of a call we are hanging up (CLOSING); None: no move for this one."""
    if isinstance(event, PlaybackFinished) and event.token == state.closing_token \
            and event.token is not None:
        return replace(state, closing_token=None), [Hangup("normal")]
    if isinstance(event, UnitAnswered):
        return state, [HangupChannel(event.channel)]
    return None


def _ended(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """Events after the call ended that still need an answer; None: no move for this one."""
    if isinstance(event, LineGranted):
        # The caller hung up while the pool was being asked: give the line straight back.
        assert state.tenant_id is not None
        return state, [ReleaseLine(state.tenant_id)]
    if isinstance(event, OfferGranted):
        assert state.tenant_id is not None  # the same for an offer slot
        return state, [ReleaseOffer(state.tenant_id)]
    if isinstance(event, UnitAnswered):
        return state, [HangupChannel(event.channel)]  # the caller left as the unit answered
    return None


def _act(state: CallState, event: Event,
         ivr: IvrContext | None) -> tuple[CallState, list[Command]] | None:
    """The phase's own move for the event; None: the phase does not act on it."""
    match state.phase:
        case Phase.QUEUED | Phase.RINGING:
            return queued(state, event)
        case Phase.BRIDGED:
            handled = transferring(state, event)
            return handled if handled is not None else bridged(state, event)
        case Phase.TRANSFERRED:
            return transferred(state, event)
        case Phase.IVR:
            return _in_menus(state, event, ivr)
        case Phase.OFFER_ADMITTING | Phase.CALLBACK_OFFER:
            return offering(state, event)
        case Phase.CLOSING:
            return _closing(state, event)
        case Phase.ENDED:
            return _ended(state, event)
        case _:
            return _setting_up(state, event, ivr)


# Keys pressed outside the menus (on hold, in a message, while talking) do nothing; a menu timer
# can fire, and a status lookup answer, as the call leaves the menus. Every phase but IVR
# ignores them.
_KEYS: tuple[type[Event], ...] = (mn.Digit, mn.TimerFired, mn.LookupDone)

# What each phase ignores: an event of a type listed here that the phase's handler did not act
# on (see _act) changes nothing and asks for nothing; any other event the handler did not act on
# is an IllegalTransition. HungUp and Failed end the call in every phase but ENDED.
IGNORED: dict[Phase, tuple[type[Event], ...]] = {
    # Waiting for the number's lookup, for the pool, in the greeting or the busy message: keys.
    Phase.ROUTING: _KEYS,
    Phase.ADMITTING: _KEYS,
    Phase.GREETING: _KEYS,
    Phase.BUSY_MESSAGE: _KEYS,
    # Asking for a pool-full offer slot: keys. Offering: a timer or the end of a prompt that is
    # not the offer's (stopped, replaced), a lookup answer (never asked here); keys all count.
    Phase.OFFER_ADMITTING: _KEYS,
    Phase.CALLBACK_OFFER: (mn.TimerFired, mn.LookupDone, PlaybackFinished),
    # The menus take every key, timer and prompt end.
    Phase.IVR: (),
    # On hold, and as we hang up after the busy message or an unknown number: keys, and the
    # end of a prompt that music on hold or our hang-up stopped.
    Phase.HOLDING: (*_KEYS, PlaybackFinished),
    Phase.REJECTING: (*_KEYS, PlaybackFinished),
    # Waiting for an operator: keys other than 1 after the callback offer; the end of a prompt
    # we stopped (or of the IVR's last one); an operator's leg we already gave up on.
    Phase.QUEUED: (*_KEYS, PlaybackFinished, OperatorGone),
    # ... and, while an operator's phone rings, the same offer again (its pub/sub announcement).
    Phase.RINGING: (*_KEYS, PlaybackFinished, OperatorGone, Offered),
    # Talking with the operator: late queue events (an offer, a wait tick, a prompt's end, the
    # answer's confirmation), keys; adopted without a transfer in progress: talk on; a leg that
    # is neither the operator's nor the consultation, a unit leg we gave up on.
    Phase.BRIDGED: (*_KEYS, PlaybackFinished, Offered, WaitTick, Answered, Resume,
                    OperatorGone, UnitGone),
    # Talking with a unit: the same late queue events and keys; adopted: talk on; the
    # operator's legs we hung up at the transfer, a unit leg that is not the one talking.
    Phase.TRANSFERRED: (*_KEYS, PlaybackFinished, Offered, WaitTick, Answered, Resume,
                        OperatorGone, UnitGone),
    # We are hanging up: whatever the caller, the queue or the other legs still send, except
    # the end of the callback confirmation (it triggers the hang-up) and a unit answering.
    Phase.CLOSING: (*_KEYS, PlaybackFinished, Offered, WaitTick, Answered, OperatorGone,
                    UnitGone),
    # Late echoes of a call already over (a late line grant and a unit answering still get an
    # answer: see _ended).
    Phase.ENDED: (*_KEYS, HungUp, Failed, LineRefused, PlaybackFinished, Answered, Resume,
                  Offered, OperatorGone, WaitTick, UnitGone, OfferRefused),
}


def step(state: CallState, event: Event,
         ivr: IvrContext | None = None) -> tuple[CallState, list[Command]]:
    """Apply one event; return the new state and exactly the commands to carry out.

    ``ivr`` is the tenant's menus for a call that has them (None: greeting, then hold).
    """
    phase = state.phase
    if phase is not Phase.ENDED and isinstance(event, (HungUp, Failed)):
        return _end(state, event, ivr)
    handled = _act(state, event, ivr)
    if handled is not None:
        return handled
    if isinstance(event, IGNORED[phase]):
        return state, []
    if phase is Phase.ENDED:
        raise IllegalTransition(f"{type(event).__name__} after the call ended")
    raise IllegalTransition(f"{type(event).__name__} in phase {phase.value}")
