"""Closing the calls of a node lost whole (issue 19 point 4), from a surviving node.

A node's calls live in its own Asterisk: when that node is lost with every app instance of
it (the machine died), nobody can serve them, and nobody is left to write their records, free
their lines, take their places out of the operators' queue or free the operators they held.
Each surviving instance looks at the nodes' beats every second (``sweep``); for a node whose
beat lapsed (calls/node_loss.py) it claims each of its calls still shared in Redis (one
survivor per call, lines/nodes.py) and ends it with the call machine's own ``Failed`` end:
record ``failed`` with NODE_LOST_CAUSE (its ``node`` the lost one), line released, queue place
dropped (reason failed) and a ringing operator freed, a talking operator's call ended. What
the end asks of Asterisk (hang-ups, bridges) is skipped: that Asterisk is gone.

The ended state stays in Redis for a while (TOMBSTONE_S): a node that comes back with its
calls still up (its apps died, its Asterisk did not) hangs them up instead of adopting them,
and writes no second record (service._adopt, _close_orphans); the store keeps one record per
id in any case, the node's own replacing a "node lost" one (records.insert_once).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, cast

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.ari_app.client import AriClient, ChannelGone
from callcenter.calls.codec import CALL_KEY, state_from_json, state_to_json
from callcenter.calls.node_loss import NODE_LOST_CAUSE, lost_nodes, to_close
from callcenter.clock import utcnow
from callcenter.lines.nodes import NodeBeats

log = logging.getLogger("callcenter.node_loss")

TOMBSTONE_S = 3600
# Calls closed per sweep at most (the sweep runs in the heartbeat's loop, which must beat
# every second): the rest in the next ones.
SWEEP_MAX = 50


class GonePbx:
    """The lost node's Asterisk, as the call machine's end sees it: every channel gone."""

    def __getattr__(self, name: str) -> Any:
        async def gone(*args: Any, **kwargs: Any) -> None:
            raise ChannelGone("ARI", name, 404, "the node's Asterisk is lost")
        return gone


class LostNodeCloser:
    """One per app instance: closes the calls of nodes lost whole, with their records."""

    def __init__(self, deps: CallDeps, node: str, instance: str):
        self.node = node
        self.instance = instance
        self.beats = NodeBeats(deps.redis)
        # The calls' own end, against an Asterisk that is gone; no legs of ours.
        self.deps = dataclasses.replace(deps, ari=cast(AriClient, GonePbx()), legs={})
        # Lost node -> the beat expiry it had when we last found none of its calls left to
        # close: not looked at again until it beats again (and is lost once more).
        self._swept: dict[str, int] = {}

    async def sweep(self) -> int:
        """Close the calls of every node whose beat lapsed; how many this instance closed."""
        beats, now = await self.beats.beats()
        lost = lost_nodes(beats, now, self.node)
        pending = {n for n in lost if self._swept.get(n) != beats[n]}
        if not pending:
            return 0
        closed, left = 0, False
        redis = self.deps.redis
        async for key in redis.scan_iter(match=CALL_KEY.format("*"), count=500):
            raw = await redis.get(key)
            if not raw:
                continue
            state = state_from_json(raw)
            if not to_close(state, pending):
                continue
            if closed >= SWEEP_MAX:
                left = True
                break
            claim = await self.beats.claim(state.call_id, self.instance)
            if claim.outcome == "taken":
                left = True  # another survivor closes it (or did and died: retried later)
                continue
            if claim.state is None:
                continue  # ended meanwhile, or its node beats again
            await self._close(state_from_json(claim.state))
            closed += 1
        if not left:
            for n in pending:
                self._swept[n] = beats[n]
        if closed:
            log.warning("closed %d call(s) of lost node(s) %s as failed", closed,
                        ", ".join(sorted(pending)))
        return closed

    async def _close(self, state: cm.CallState) -> None:
        """End the call as the machine does on a failure, then leave its ended state as the
        mark that it is closed."""
        log.warning("call=%s of lost node %s (phase %s): closing it as failed", state.call_id,
                    state.node, state.phase.value)
        session = CallSession(state, self.deps)
        await session.run([cm.Failed(utcnow(), NODE_LOST_CAUSE)])
        await self.deps.redis.set(CALL_KEY.format(state.call_id), state_to_json(session.state),
                                  ex=TOMBSTONE_S)
