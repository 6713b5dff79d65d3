"""A node lost whole (its Asterisk and every app instance of it gone): which calls another
node's instance closes for it. Pure.

A node is alive while any of its app instances beats (``hotline:nodes``, lines/nodes.py): an
instance killed while a sibling on the same node lives is no lost node (the sibling adopts its
calls from the node's own Asterisk, ari_app/service.py ``take_over_peers``), and neither is a
node whose only app is restarted within the beat's TTL (it adopts them itself). A node with no
beat for the TTL has lost its calls as far as the hotline can tell: nobody can serve them.
"""

from __future__ import annotations

from collections.abc import Mapping

from callcenter.calls.state import CallState, Phase

# The cause on the record of a call closed by another node after its own node was lost (the
# record's ``node`` names the lost node); cf. "Asterisk restarted: call lost".
NODE_LOST_CAUSE = "node lost: call lost"


def lost_nodes(beats: Mapping[str, int], now_ms: int, own: str) -> frozenset[str]:
    """Nodes whose last beat expired (``beats``: node -> expiry, ms, Redis's clock); never our
    own node (we beat for it: a lapse of ours is Redis away, not our node lost)."""
    return frozenset(node for node, expiry in beats.items()
                     if node != own and expiry < now_ms)


def to_close(state: CallState, lost: frozenset[str] | set[str]) -> bool:
    """A call state found in Redis that a survivor closes: of a lost node, not yet ended (an
    ended one is the mark of a call closed already, kept for the node's return)."""
    return state.node in lost and state.phase is not Phase.ENDED


def closed_elsewhere(state: CallState, own: str) -> bool:
    """A call of our node found ended in Redis when we come back (or adopt it): closed by a
    survivor while this node was lost; its record is written, it must not get another."""
    return state.node == own and state.phase is Phase.ENDED
