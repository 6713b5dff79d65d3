"""The commands the call machine hands to the ARI adapter to carry out."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.ivr import menu as mn


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
    """Play the tenant's rendered prompt; ``token`` names the playback (its PlaybackFinished
    carries it, StopSaying stops it); 0: the call's own unnamed prompts."""

    tenant_id: str
    prompt_id: str
    token: int = 0


@dataclass(frozen=True)
class HoldOffer:
    """Take one of the tenant's pool-full offer slots (at most ``slots`` calls at a time)."""

    tenant_id: str
    slots: int


@dataclass(frozen=True)
class ReleaseOffer:
    """Give the call's offer slot back (idempotent)."""

    tenant_id: str


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
    # The ringing phone's leg, hung up just before: taking the call out frees the operator,
    # so it waits for that leg to go (as EndOperatorCall.after).
    after: tuple[str, ...] = ()


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
    """The operator's part is over: the queue moves them to wrap-up.

    ``after``: the operator's legs hung up in the same step (HangupChannel before this). The
    operator is freed only once those are gone (their ChannelDestroyed; a bounded wait in the
    adapter): freed at once, the queue could ring their phone with the next call (from another
    node, through the edge) before Asterisk has sent the BYE of this one, and the phone would
    hold two calls (issue 19.3; app_queue too frees a member only once its channel is gone).
    """

    tenant_id: str
    extension: str
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class DestroyBridge:
    bridge: str


@dataclass(frozen=True)
class SaveCallback:
    """Store the caller's callback request (their number, listed for operators); ``source``:
    queue (pressed 1 while waiting) | pool_full (pressed 1 when the lines were full)."""

    tenant_id: str
    source: str = "queue"


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


Command = (AcquireLine | ReleaseLine | HoldOffer | ReleaseOffer | Answer | Progress | Play
           | StartMoh | Hangup | WriteRecord
           | mn.Say | mn.StopSaying | mn.StartTimer | mn.CancelTimer | mn.LookupTickets | StopMoh
           | Enqueue | Dequeue | RingOperator | ReturnOffer | HangupChannel | BridgeOperator
           | EndOperatorCall | DestroyBridge | SaveCallback | DialUnit | TransferProgress
           | AnswerLeg | CreateBridge | MoveToBridge | BridgeMoh)


def legs_hung_up(commands: list[Command], *legs: str | None) -> tuple[str, ...]:
    """Those of ``legs`` that ``commands`` hang up (HangupChannel), in the order given: what an
    EndOperatorCall of the same step waits for."""
    hung = {c.channel for c in commands if isinstance(c, HangupChannel)}
    return tuple(leg for leg in legs if leg is not None and leg in hung)
