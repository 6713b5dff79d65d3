"""A call's state as shared in Redis (``CALL_KEY``) for another instance to adopt, and read by
the desk, the wallboard and the console's call routes. Pure: JSON and dataclasses only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import operator
from typing import Any

from callcenter.calls.state import (
    QUEUE_TOKENS,
    TOKEN_BLOCK,
    CallState,
    Phase,
    Transfer,
    TransferRecord,
)
from callcenter.ivr import menu as mn

CALL_KEY = "hotline:call:{}"
CALL_TTL_S = 24 * 3600


def state_to_json(state: CallState) -> str:
    """The call's state for Redis; of the IVR only the node, the token counter and the path
    are kept (an adopted call starts its menus again at the root, path kept)."""
    d = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    d["phase"] = state.phase.value
    for k, v in d.items():
        if isinstance(v, dt.datetime):
            d[k] = v.isoformat()
    d["transfers"] = [{**dataclasses.asdict(t), "at": t.at.isoformat()} for t in state.transfers]
    if state.transfer is not None:
        d["transfer"] = {**dataclasses.asdict(state.transfer),
                         "at": state.transfer.at.isoformat()}
    if state.menu is not None:
        d["menu"] = {"node": state.menu.node, "seq": state.menu.seq,
                     "path": mn.path_dicts(state.menu)}
    d["offer_path"] = [s.as_dict() for s in state.offer_path]
    return json.dumps(d)


# What changes often without anything another reader needs changing: the menus' state beyond
# its node, path and token block (below), the queue prompt playing and when the position was
# last said (an adopted call stops the prompt and announces again), the queue's token counter
# (its block below).
_VOLATILE = ("menu", "queue_seq", "announcing", "announced_at")
_SHARED = operator.attrgetter(*(f.name for f in dataclasses.fields(CallState)
                                if f.name not in _VOLATILE))


def shared_view(state: CallState) -> tuple[object, ...]:
    """What the shared state holds that another instance adopting the call (service._adopt),
    the desk, the wallboard and the console read: the call is written to Redis again only when
    this changes. Everything but _VOLATILE; of the menus the node, the path's length (each step
    goes into the call record) and the token block (state.resume_tokens)."""
    menu = state.menu
    return (_SHARED(state), max(state.queue_seq, QUEUE_TOKENS) // TOKEN_BLOCK,
            None if menu is None else (menu.node, len(menu.path), menu.seq // TOKEN_BLOCK))


def _step_of(d: dict[str, str]) -> mn.Step:
    return mn.Step(at=dt.datetime.fromisoformat(d["at"]), event=d["event"], node=d.get("node"),
                   digit=d.get("digit"), faq=d.get("faq"), answer=d.get("answer"),
                   codes=d.get("codes"))


def state_from_json(text: str | bytes) -> CallState:
    """The state ``state_to_json`` wrote (its menu, if any, DONE at its node)."""
    d: dict[str, Any] = json.loads(text)
    d["phase"] = Phase(d["phase"])
    for k in ("arrived_at", "answered_at", "ended_at", "queued_at", "bridged_at",
              "talk_ended_at", "announced_at"):
        if d.get(k):
            d[k] = dt.datetime.fromisoformat(d[k])
    d["transfers"] = tuple(TransferRecord(**{**t, "at": dt.datetime.fromisoformat(t["at"])})
                           for t in d.get("transfers") or ())
    if d.get("transfer"):
        t = d["transfer"]
        d["transfer"] = Transfer(**{**t, "at": dt.datetime.fromisoformat(t["at"])})
    d["offer_path"] = tuple(_step_of(s) for s in d.get("offer_path") or ())
    menu = d.pop("menu", None)
    if menu is not None:
        d["menu"] = mn.MenuState(node=menu["node"], mode=mn.Mode.DONE, seq=menu["seq"],
                                 path=tuple(_step_of(s) for s in menu["path"]))
    return CallState(**d)
