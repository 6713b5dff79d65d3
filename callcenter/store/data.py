"""The call record as plain data: what the app hands to the journal and the store (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from callcenter import calls

# How a call ended, as the hotline counts it: the call state machine's set, one source
# (the database enforces the same set; a migration widens its check when this grows), and
# "dialback": the hotline calling a citizen back from the console (ari_app/dialback.py,
# migration 0021), an outbound call kept out of the inbound figures (wallboard, metrics).
DIALBACK: Final = "dialback"
OUTCOMES: tuple[str, ...] = (*calls.OUTCOMES, DIALBACK)
ID_MAX_LENGTH = 64  # "<node>:<asterisk uniqueid>"; the primary key is String(64)
OPERATOR_MAX_LENGTH = 32  # an operator's extension ("101"); the column is String(32)
TRANSFER_KEYS: tuple[str, ...] = ("at", "by", "unit", "number", "kind", "answered", "result")

_TIME_FIELDS = ("arrived_at", "answered_at", "ended_at", "queued_at", "bridged_at",
                "talk_ended_at", "created_at", "recording_deleted_at")
JSON_KEYS: tuple[str, ...] = (
    "id", "tenant", "dialled", "caller", "shift", "pool_limit", "outcome", "arrived_at",
    "answered_at", "ended_at", "cause", "cause_code", "linkedid", "node", "ivr_path",
    "operator", "queued_at", "bridged_at", "talk_ended_at", "wrap_up_s", "no_answers",
    "recording", "transfers", "wait_s", "talk_s",
)


def _utc(name: str, value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time is ambiguous between the PBX clock, UTC and Asia/Ho_Chi_Minh.
        raise ValueError(f"{name}: expected a timezone-aware datetime, got naive {value!r}")
    return value.astimezone(dt.UTC)


@dataclass(frozen=True)
class CallRecordData:
    """One finished call, exactly as it is journalled and stored (times aware, in UTC)."""

    id: str
    node: str
    tenant: str
    dialled: str
    caller: str
    shift: str | None
    pool_limit: int | None
    arrived_at: dt.datetime
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    outcome: str
    cause: str | None
    cause_code: int | None
    linkedid: str
    extra: dict[str, Any] | None = None
    # The caller's way through the IVR, one step a dict: {"at": ISO 8601 with offset,
    # "event": ..., and optionally "node", "digit", "faq" (an FAQ item key), "answer"}.
    ivr_path: list[dict[str, Any]] | None = None
    # The operators' part (issue 5); a record journalled before these existed has none.
    operator: str | None = None  # extension of the operator who answered
    queued_at: dt.datetime | None = None  # entered the operators' queue
    bridged_at: dt.datetime | None = None  # caller and operator connected
    talk_ended_at: dt.datetime | None = None  # the operator's part of the call ended
    wrap_up_s: int | None = None  # after-call work granted to the operator
    no_answers: int = 0  # operators' phones that rang out for this call
    recording: str | None = None  # file relative to the PBX's recordings folder
    # Transfers to level-2 units, oldest first, one a dict with TRANSFER_KEYS ("at" is
    # ISO 8601 with offset; kind blind|attended; result completed|returned|no_answer|...).
    transfers: list[dict[str, Any]] | None = None
    created_at: dt.datetime | None = field(default=None, compare=False)  # set by the store
    # When retention deleted the recording (``recording`` is then None; migration 0011).
    recording_deleted_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > ID_MAX_LENGTH:
            raise ValueError(f"id: expected 1..{ID_MAX_LENGTH} characters, got {self.id!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome: expected one of {', '.join(OUTCOMES)}, "
                             f"got {self.outcome!r}")
        if self.arrived_at is None:
            raise ValueError("arrived_at: required")
        if self.extra is not None and not isinstance(self.extra, dict):
            raise TypeError(f"extra: expected a dict or None, got {type(self.extra).__name__}")
        if self.ivr_path is not None and (
                not isinstance(self.ivr_path, list)
                or not all(isinstance(step, dict) for step in self.ivr_path)):
            raise TypeError("ivr_path: expected a list of objects or None")
        if self.operator is not None and not 0 < len(self.operator) <= OPERATOR_MAX_LENGTH:
            raise ValueError(f"operator: expected 1..{OPERATOR_MAX_LENGTH} characters, "
                             f"got {self.operator!r}")
        if self.transfers is not None and (
                not isinstance(self.transfers, list)
                or not all(isinstance(t, dict) for t in self.transfers)):
            raise TypeError("transfers: expected a list of objects or None")
        if not isinstance(self.no_answers, int) or self.no_answers < 0:
            raise ValueError(f"no_answers: expected a count >= 0, got {self.no_answers!r}")
        for name in _TIME_FIELDS:
            # Frozen: normalise in place once, so equal instants compare and serialise equal.
            object.__setattr__(self, name, _utc(name, getattr(self, name)))

    @property
    def wait_s(self) -> float | None:
        """Seconds in the operators' queue: until bridged, else until the call ended."""
        end = self.bridged_at or self.ended_at
        if self.queued_at is None or end is None:
            return None
        return max(0.0, (end - self.queued_at).total_seconds())

    @property
    def talk_s(self) -> float | None:
        """Seconds the caller talked with the operator (bridged until the talk ended)."""
        if self.bridged_at is None or self.talk_ended_at is None:
            return None
        return max(0.0, (self.talk_ended_at - self.bridged_at).total_seconds())

    def to_json_dict(self) -> dict[str, Any]:
        """The record for the console/CLI: fixed keys, ISO 8601 times with offset."""
        d = self.to_dict()
        d["transfers"] = d["transfers"] or []
        d["wait_s"] = None if self.wait_s is None else round(self.wait_s, 3)
        d["talk_s"] = None if self.talk_s is None else round(self.talk_s, 3)
        return {k: d[k] for k in JSON_KEYS}

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-serialisable (times as ISO 8601 with offset); see `from_dict`."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in _TIME_FIELDS:
            if d[name] is not None:
                d[name] = d[name].isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CallRecordData:
        """The inverse of `to_dict`; raises KeyError/ValueError/TypeError on a bad dict."""
        if not isinstance(d, dict):
            raise TypeError(f"expected an object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        values = dict(d)
        for name in _TIME_FIELDS:
            v = values.get(name)
            if isinstance(v, str):
                values[name] = dt.datetime.fromisoformat(v)
        return cls(**values)
