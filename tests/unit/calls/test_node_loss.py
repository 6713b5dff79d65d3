"""Which nodes are lost and which of their calls a survivor closes (calls/node_loss.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from callcenter import calls as cm
from callcenter.calls.node_loss import closed_elsewhere, lost_nodes, to_close

T0 = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)


def state(node: str, phase: cm.Phase) -> cm.CallState:
    return dataclasses.replace(cm.new_call("c1", node, "1022", "0919", "c1", T0), phase=phase)


def test_given_beats_when_one_expired_then_only_it_is_lost() -> None:
    beats = {"node1": 999, "node2": 1000, "node3": 1001}
    assert lost_nodes(beats, 1000, own="node3") == {"node1"}


def test_given_our_own_beat_expired_then_our_node_is_never_lost_to_us() -> None:
    assert lost_nodes({"node1": 5, "node2": 5}, 1000, own="node1") == {"node2"}


def test_given_no_beats_then_no_node_is_lost() -> None:
    assert lost_nodes({}, 1000, own="node1") == frozenset()


def test_given_call_of_lost_node_when_live_then_closed_when_ended_then_not() -> None:
    lost = frozenset({"node2"})
    for phase in cm.Phase:
        assert to_close(state("node2", phase), lost) is (phase is not cm.Phase.ENDED)
        assert not to_close(state("node1", phase), lost)


def test_given_own_call_found_ended_then_closed_elsewhere_else_not() -> None:
    assert closed_elsewhere(state("node1", cm.Phase.ENDED), "node1")
    assert not closed_elsewhere(state("node1", cm.Phase.QUEUED), "node1")
    assert not closed_elsewhere(state("node2", cm.Phase.ENDED), "node1")
