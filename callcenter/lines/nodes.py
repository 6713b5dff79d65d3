"""Nodes' beats and the claim on a lost node's calls, in Redis (one Redis for all nodes).

Keys:
  hotline:nodes                 hash    node -> expiry of its instances' last beat (ms, Redis's
                                        clock; written by every instance's heartbeat.lua)
  hotline:call:{id}             string  the call's shared state (calls/codec.py)
  hotline:lost_call:{id}        string  the instance closing it for its lost node (SET NX, PX):
                                        one survivor closes each call, once
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from callcenter.calls.codec import CALL_KEY
from callcenter.lines.redis import NODES
from callcenter.redis_scripts import lua_script

NODE_BEATS = lua_script("callcenter.lines", "node_beats")
CLAIM_LOST = lua_script("callcenter.lines", "claim_lost")
# A claimer that dies too leaves its calls to another survivor after this (its steps are
# idempotent: release, dequeue, free the operator, insert the record once).
CLAIM_MS = 60_000


def claim_key(call_id: str) -> str:
    return f"hotline:lost_call:{call_id}"


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: ``state`` (JSON) when ours, else why not (gone, ended, alive,
    taken)."""

    outcome: str
    state: bytes | str | None = None


class NodeBeats:
    """Reads the nodes' beats and claims a lost node's calls, atomically across instances."""

    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._beats = redis.register_script(NODE_BEATS)
        self._claim = redis.register_script(CLAIM_LOST)

    async def beats(self) -> tuple[dict[str, int], int]:
        """Every node's beat expiry and Redis's clock now (ms)."""
        out = await self._beats(keys=[NODES], args=[])
        now = int(out[0])
        flat = out[1:]
        return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}, now

    async def claim(self, call_id: str, claimer: str) -> Claim:
        """Take the call to close it for its lost node: only while that node's beat is still
        lapsed, the call not ended, and no other instance took it first."""
        out = await self._claim(keys=[NODES, CALL_KEY.format(call_id), claim_key(call_id)],
                                args=[claimer, CLAIM_MS])
        return Claim(_text(out[0]), out[1] if len(out) > 1 else None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
