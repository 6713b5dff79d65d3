"""One citizen's call as a pure state machine: (state, event) -> (new state, commands)."""

# The ARI adapter turns Asterisk events into these events and carries out the commands. Nothing
# here does I/O or reads the clock: every event carries its time. Callers write
# `from callcenter import calls as cm` and use `cm.step`, `cm.CallState`, `cm.Answered`, ...

from callcenter.calls.commands import (
    AcquireLine,
    Answer,
    AnswerLeg,
    BridgeMoh,
    BridgeOperator,
    Command,
    CreateBridge,
    Dequeue,
    DestroyBridge,
    DialUnit,
    EndOperatorCall,
    Enqueue,
    Hangup,
    HangupChannel,
    HoldOffer,
    MoveToBridge,
    Play,
    Progress,
    ReleaseLine,
    ReleaseOffer,
    ReturnOffer,
    RingOperator,
    SaveCallback,
    StartMoh,
    StopMoh,
    TransferProgress,
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
    OfferGranted,
    OfferRefused,
    OperatorAnswered,
    OperatorGone,
    PlaybackFinished,
    Resume,
    Routed,
    TransferCancelled,
    TransferCompleted,
    TransferRequested,
    UnitAnswered,
    UnitGone,
    WaitTick,
)
from callcenter.calls.machine import (
    step,
)
from callcenter.calls.queueing import bridge_id
from callcenter.calls.state import (
    BUSY_CAUSE,
    FULL_OFFER_KEY_S,
    FULL_OFFER_NODE,
    FULL_OFFER_SLOTS,
    OUTCOMES,
    QUEUE_PHASES,
    QUEUE_TOKENS,
    TRANSFER_KINDS,
    TRANSFER_SOURCES,
    UNIT_RING_TIMEOUT_S,
    CallState,
    IllegalTransition,
    IvrContext,
    Phase,
    Transfer,
    TransferRecord,
    new_call,
)

__all__ = [
    # state
    "BUSY_CAUSE", "FULL_OFFER_KEY_S", "FULL_OFFER_NODE", "FULL_OFFER_SLOTS", "OUTCOMES",
    "QUEUE_PHASES", "QUEUE_TOKENS", "TRANSFER_KINDS", "TRANSFER_SOURCES",
    "UNIT_RING_TIMEOUT_S", "CallState", "IllegalTransition", "IvrContext", "Phase", "Transfer",
    "TransferRecord", "new_call",
    # events
    "Answered", "Event", "Failed", "HungUp", "LineGranted", "LineRefused", "OfferGranted",
    "OfferRefused", "Offered", "OperatorAnswered", "OperatorGone", "PlaybackFinished", "Resume",
    "Routed", "TransferCancelled", "TransferCompleted", "TransferRequested", "UnitAnswered",
    "UnitGone", "WaitTick",
    # commands
    "AcquireLine", "Answer", "AnswerLeg", "BridgeMoh", "BridgeOperator", "Command", "CreateBridge",
    "Dequeue", "DestroyBridge", "DialUnit", "EndOperatorCall", "Enqueue", "Hangup",
    "HangupChannel", "HoldOffer", "MoveToBridge", "Play", "Progress", "ReleaseLine",
    "ReleaseOffer", "ReturnOffer", "RingOperator", "SaveCallback", "StartMoh", "StopMoh",
    "TransferProgress", "WriteRecord",
    # machine
    "bridge_id", "step",
]
