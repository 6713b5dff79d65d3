"""The call machine when every line is taken: the busy message, or "press 1 to be called back".

A shift with ``callback_when_full`` (config) offers a callback instead of only the busy message.
The offer answers the call (keys are not trusted in early media: see ``FULL_OFFER_SLOTS``),
so it holds one of the tenant's few offer slots rather than a line: the pool's limit stays the
province's paid lines, and a flood can never hold more than ``FULL_OFFER_SLOTS`` answered
channels per tenant. No slot free (or Redis cannot say): the busy message, as without the offer.

    ADMITTING -[LineRefused]-> OFFER_ADMITTING -[OfferGranted]-> CALLBACK_OFFER (answered)
      key 1 -> CLOSING: callback request (source pool_full), confirmation, hang up
      other key, or no key within FULL_OFFER_KEY_S -> CLOSING: busy message, hang up
    OFFER_ADMITTING -[OfferRefused]-> BUSY_MESSAGE (early media, 486 as before)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from callcenter.calls.commands import (
    Answer,
    Command,
    HoldOffer,
    Play,
    Progress,
    SaveCallback,
)
from callcenter.calls.events import (
    Answered,
    Event,
    LineRefused,
    OfferGranted,
    OfferRefused,
    PlaybackFinished,
)
from callcenter.calls.state import (
    FULL_OFFER_KEY_S,
    FULL_OFFER_NODE,
    FULL_OFFER_SLOTS,
    QUEUE_TOKENS,
    CallState,
    Phase,
)
from callcenter.ivr import menu as mn

CALLBACK_SOURCE = "pool_full"  # the callback request's source (callbacks.store)


def dialable(caller: str) -> bool:
    """A caller id we could call back: digits, an optional leading +, 3 to 20 of them."""
    digits = caller[1:] if caller.startswith("+") else caller
    return 3 <= len(digits) <= 20 and digits.isdigit() and digits.isascii()


def busy_message(state: CallState) -> tuple[CallState, list[Command]]:
    """Early media "all lines busy" without answering, then 486 (PlaybackFinished)."""
    assert state.tenant_id is not None
    new = replace(state, phase=Phase.BUSY_MESSAGE, outcome="busy")
    return new, [Progress(), Play(state.tenant_id, "all_busy")]


def line_refused(state: CallState, event: LineRefused) -> tuple[CallState, list[Command]]:
    """The pool is full: with the shift's offer (and a number to call back) ask for an offer
    slot, else the busy message."""
    assert state.tenant_id is not None
    if state.callback_when_full and dialable(state.caller):
        new = replace(state, phase=Phase.OFFER_ADMITTING, outcome="busy")
        return new, [HoldOffer(state.tenant_id, FULL_OFFER_SLOTS)]
    return busy_message(state)


def _token(state: CallState) -> int:
    return max(state.queue_seq, QUEUE_TOKENS) + 1


def _step(at: dt.datetime, event: str, digit: str | None = None) -> mn.Step:
    return mn.Step(at=at, event=event, node=FULL_OFFER_NODE, digit=digit)


def _stop(state: CallState) -> list[Command]:
    """Stop the offer if it is still being said (barge-in), else the key's timer."""
    if state.announcing is not None:
        return [mn.StopSaying(state.announcing)]
    return [mn.CancelTimer()]


def _close(state: CallState, prompt_id: str, outcome: str, steps: tuple[mn.Step, ...],
           first: list[Command]) -> tuple[CallState, list[Command]]:
    """Say ``prompt_id`` and hang up when it ends (CLOSING's closing_token)."""
    assert state.tenant_id is not None
    token = _token(state)
    new = replace(state, phase=Phase.CLOSING, outcome=outcome, announcing=None,
                  closing_token=token, queue_seq=token, offer_path=state.offer_path + steps)
    return new, [*first, Play(state.tenant_id, prompt_id, token)]


def offering(state: CallState, event: Event) -> tuple[CallState, list[Command]] | None:
    """Events of phases OFFER_ADMITTING and CALLBACK_OFFER; None: no move for this one."""
    assert state.tenant_id is not None
    if state.phase is Phase.OFFER_ADMITTING:
        if isinstance(event, OfferRefused):
            return busy_message(state)
        if isinstance(event, OfferGranted):
            token = _token(state)
            new = replace(state, phase=Phase.CALLBACK_OFFER, offer_held=True, announcing=token,
                          queue_seq=token,
                          offer_path=(*state.offer_path, _step(event.at, "callback_offer")))
            return new, [Answer(), Play(state.tenant_id, "callback_offer", token)]
        return None
    if isinstance(event, Answered):
        return replace(state, answered_at=state.answered_at or event.at), []
    if isinstance(event, PlaybackFinished) and event.token == state.announcing \
            and state.announcing is not None:
        # The offer was said: the caller has FULL_OFFER_KEY_S to press a key.
        return replace(state, announcing=None), [mn.StartTimer(event.token, FULL_OFFER_KEY_S)]
    if isinstance(event, mn.Digit):
        pressed = _step(event.at, "digit", event.digit)
        if event.digit == "1":
            return _close(state, "callback_confirm", "callback",
                          (pressed, _step(event.at, "callback")),
                          [*_stop(state), SaveCallback(state.tenant_id, CALLBACK_SOURCE)])
        return _close(state, "all_busy", "busy", (pressed, _step(event.at, "goodbye")),
                      _stop(state))
    if isinstance(event, mn.TimerFired) and state.announcing is None \
            and event.token == state.queue_seq:
        return _close(state, "all_busy", "busy",
                      (_step(event.at, "timeout"), _step(event.at, "goodbye")), [])
    return None
