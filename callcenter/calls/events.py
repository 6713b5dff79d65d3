"""The events a call's state machine reacts to; every event carries its time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from callcenter.ivr import menu as mn


@dataclass(frozen=True)
class Routed:
    """The dialled number was looked up; tenant_id None means no province owns it."""

    at: dt.datetime
    tenant_id: str | None
    shift: str | None = None
    limit: int | None = None
    queue: bool = False  # the tenant has operators: callers wanting one are queued
    callback_when_full: bool = False  # the shift offers a callback when its lines are full


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
class OfferGranted:
    """One of the tenant's pool-full offer slots was taken for this call."""

    at: dt.datetime


@dataclass(frozen=True)
class OfferRefused:
    """Every offer slot is taken (or Redis cannot say): the plain busy message."""

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
    callback (``callback``), or the queue could not take the call (``unavailable``: Redis is
    gone; the caller is told and offered a callback at once); ``text`` is what they hear."""

    at: dt.datetime
    kind: str  # "announce" | "callback" | "unavailable"
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
    """The unit's hotline picked up the leg we dialled; ``ticket``: the code of the call's
    ticket the unit is told about (warm transfer, callcenter.transfers.rules.announcement)."""

    at: dt.datetime
    channel: str
    ticket: str | None = None


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


Event = (Routed | LineGranted | Answered | LineRefused | OfferGranted | OfferRefused
         | PlaybackFinished | HungUp | Failed
         | mn.Digit | mn.TimerFired | mn.LookupDone | Resume | Offered | OperatorAnswered
         | OperatorGone | WaitTick | TransferRequested | UnitAnswered | UnitGone | TransferCompleted
         | TransferCancelled)
