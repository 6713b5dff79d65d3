"""A call's phases and state (serialisable), the transfer it may be in, its outcomes and limits."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from callcenter.ivr import menu as mn
from callcenter.ivr.tree import IvrTree, Prompt


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
    # Pool full and the shift offers callbacks (Shift.callback_when_full):
    OFFER_ADMITTING = "offer_admitting"  # asking for one of the few offer slots (not a line)
    CALLBACK_OFFER = "callback_offer"  # answered: "press 1 to be called back", key awaited
    REJECTING = "rejecting"  # hang-up requested by us (busy after message, unknown number)
    CLOSING = "closing"  # hang-up requested by us after the IVR said goodbye
    ENDED = "ended"


# answered: served (by the IVR or an operator); abandoned: the caller left before being served
# (in the menus' greeting never, in the queue or while an operator's phone rang yes); callback:
# the caller chose to be called back instead of waiting.
OUTCOMES = ("answered", "busy", "abandoned", "not_found", "failed", "callback")


# Queue prompts' tokens start here, far above the menus' own (which count from 1 per call).
QUEUE_TOKENS = 1_000_000
# A call's token counters (the menus' and the queue's) are shared in Redis when they enter a
# new block of this many (codec.shared_view), not at every prompt: an adopted call goes on
# from the next block, above every token the instance that died could have handed out.
TOKEN_BLOCK = 64


def resume_tokens(seq: int) -> int:
    """An adopted call's token counter: the first of the block after the shared ``seq``."""
    return (seq // TOKEN_BLOCK + 1) * TOKEN_BLOCK
QUEUE_PHASES = (Phase.QUEUED, Phase.RINGING)


# The pool-full callback offer (phase CALLBACK_OFFER). The offer answers the call: callers'
# phones and carriers rarely send keys during early media (RFC 4733 events before the 200 OK
# are dropped by many), so a key can only be trusted once answered. Answered calls hold no line
# of the pool, so they are capped apart: at most FULL_OFFER_SLOTS per tenant at a time (in
# Redis, across instances; over it the plain busy message as before), and each waits at most
# FULL_OFFER_KEY_S for the key once the offer was said.
FULL_OFFER_SLOTS = 4
FULL_OFFER_KEY_S = 6
# The node name the offer's steps carry in the call record's ivr_path.
FULL_OFFER_NODE = "pool_full"


class IllegalTransition(ValueError):
    """An event that cannot happen in the call's phase."""


# How long a unit's hotline may ring before "no answer" (the caller goes back to the operator).
UNIT_RING_TIMEOUT_S = 20
TRANSFER_KINDS = ("blind", "attended")
TRANSFER_SOURCES = ("button", "api")
BUSY_CAUSE = 17  # User busy: the phone's REFER gets 503 (channel_unavailable), else 603


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
    ticket: str | None = None  # the ticket announced to the unit (warm transfer), if any


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
    ticket: str | None = None  # the ticket announced to the unit when it answered (attended)


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
    callback_when_full: bool = False  # the shift offers a callback when its lines are full
    line_held: bool = False
    offer_held: bool = False  # holds one of the tenant's FULL_OFFER_SLOTS (CALLBACK_OFFER)
    # The pool-full offer's steps (offer said, key, timeout, callback), for the record's ivr_path.
    offer_path: tuple[mn.Step, ...] = ()
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
