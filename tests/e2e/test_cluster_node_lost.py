"""Losing a node loses only its calls (issue 19 point 4): node2's Asterisk and its app both
SIGKILLed (the machine died) while it has a caller talking with operator 101, one waiting in the
queue and one in the menus, and node1 has callers in the menus.

Within about 15 s of the kill (the nodes' beat TTL, 10 s, then the survivor's next beat):
node1's callers are still connected with audio; node2's calls are recorded ``failed`` with the
cause "node lost: call lost" and node2's name, by node1 (nobody is left on node2); the shared
pool holds no line of node2; the queue has no place of node2's callers; operator 101, held by
node2's talking call, is free again. When node2 comes back it writes no second record for those
calls and takes calls again. The nodes: tests/e2e/cluster_stack.py."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from callcenter.calls.node_loss import NODE_LOST_CAUSE
from callcenter.queue import agent as ag
from callcenter.tools.softphone import PhoneGroup
from tests.e2e.cluster_stack import OPERATOR_PW, Cluster, node_of, running_cluster
from tests.e2e.phones import OperatorPhone
from tests.e2e.scenarios import agent, agent_event, records_of, snap
from tests.e2e.stack import Stack, wait_until

# Callers wait in the menus (a long timeout) unless they press 9 for an operator.
TREE = {
    "root": "main", "timeout": 60, "retries": 3, "inter_digit": 1, "fallback": "operator",
    "nodes": {
        "main": {"type": "menu", "prompt": "Bấm 9 gặp tổng đài viên.",
                 "options": {"9": "operator"}},
        "operator": {"type": "operator", "prompt": "Xin giữ máy."},
    },
}


def _menus(node: Stack) -> None:
    node.config_data["tenants"][0]["ivr"] = TREE
    node.write_config(node.config_data)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster-node-lost"), _menus) as c:
        yield c


def shared(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """The calls' states in Redis (hotline:call:*), by caller."""
    client = redis.Redis.from_url(cluster.nodes[0].redis.url)
    try:
        out = {}
        for key in client.scan_iter(match="hotline:call:*"):
            raw = client.get(key)
            if raw:
                state = json.loads(raw)
                out[state["caller"]] = state
        return out
    finally:
        client.close()


def phase_of(cluster: Cluster, caller: str) -> str | None:
    state = shared(cluster).get(caller)
    return None if state is None else str(state["phase"])


def test_given_node_lost_whole_under_calls_then_only_its_calls_lost_and_closed_within_15s(
        cluster: Cluster) -> None:
    one, two = cluster.nodes
    operator = OperatorPhone(cluster.edge.settings.listen_port, "101", OPERATOR_PW,
                             auto_answer=0.3)
    phones: dict[str, PhoneGroup] = {}
    roles: dict[str, str] = {}  # caller -> what node2's caller does: talk | queue | menus
    try:
        assert operator.wait_registered() == 200
        assert wait_until(lambda: agent(one, "101")["reachable"], 25), snap(one)
        agent_event(one, "101", ag.LogIn())
        wanted = ["talk", "queue", "menus"]
        for i in range(14):
            if not wanted and any(shared(cluster)[c]["node"] == "node1" for c in phones):
                break
            caller = f"09195200{i:02d}"
            phone = phones[caller] = cluster.phone(1, hold=120, caller=caller)
            assert phone.wait_for("answered", 1, 20), one.app_log_tail()
            assert wait_until(lambda c=caller: phase_of(cluster, c) == "ivr", 20), (
                shared(cluster).get(caller), one.app_log_tail())
            if shared(cluster)[caller]["node"] != "node2" or not wanted:
                continue  # node1's callers, and node2's once enough, stay in the menus
            role = roles[caller] = wanted.pop(0)
            if role == "menus":
                continue
            phone.send("dtmf 9")
            expect = "bridged" if role == "talk" else "queued"
            assert wait_until(lambda c=caller, e=expect: phase_of(cluster, c) == e, 30), (
                shared(cluster).get(caller), two.app_log_tail())
        assert sorted(roles.values()) == ["menus", "queue", "talk"], roles
        survivors = [c for c in phones if shared(cluster)[c]["node"] == "node1"]
        lost = sorted(roles)
        assert survivors and cluster.line_nodes().count("node2") == 3
        assert agent(one, "101")["state"] == "on_call"
        lost_ids = {shared(cluster)[c]["call_id"] for c in lost}

        assert two.pbx is not None and two.pbx.proc is not None
        two.kill_app(signal.SIGKILL)
        two.pbx.proc.send_signal(signal.SIGKILL)
        two.pbx.proc.wait(10)
        killed = time.monotonic()

        def closed() -> bool:
            states = shared(cluster)
            return all(states.get(c, {}).get("phase") == "ended" for c in lost)

        assert wait_until(closed, 16, 0.2), (shared(cluster), one.app_log_tail())
        took = time.monotonic() - killed
        print(f"node2's calls closed by node1 {took:.1f} s after the kill")
        assert took < 15, took
        rows = records_of(one, lost)
        assert sorted(r["caller"] for r in rows) == lost, rows
        # The record's id names its node ("node2:<uniqueid>"): written by node1 for node2.
        assert {(node_of(r), r["outcome"], r["cause"]) for r in rows} == {
            ("node2", "failed", NODE_LOST_CAUSE)}, rows
        talk = next(r for r in rows if roles[r["caller"]] == "talk")
        assert talk["operator"] == "101" and talk["bridged_at"], talk
        # Lines, queue places, the operator: nothing of node2's calls is held any more.
        assert cluster.line_nodes() == ["node1"] * len(survivors)
        queue = snap(one)
        assert lost_ids.isdisjoint(c["call_id"] for c in queue["calls"]), queue
        assert agent(one, "101")["state"] == "available", agent(one, "101")
        # node1's callers never noticed: still connected, their menus still served (silent
        # while a menu waits for a key: no audio to count). One presses 9: it is queued and
        # offered to 101, free again.
        for caller in survivors:
            assert phones[caller].of("disconnected") == [], caller
            assert phase_of(cluster, caller) == "ivr", shared(cluster).get(caller)
        phones[survivors[0]].send("dtmf 9")
        assert wait_until(lambda: phase_of(cluster, survivors[0]) in ("queued", "ringing",
                                                                      "bridged"), 20), (
            shared(cluster).get(survivors[0]), one.app_log_tail())
        assert phones[survivors[0]].of("disconnected") == []
    finally:
        for phone in phones.values():
            phone.finish(30)
        operator.close()
        agent_event(one, "101", ag.LogOut())
        cluster.bring_back(two)

    # node2 back: no second record for its lost calls (its reconcile finds them closed), and
    # it takes calls again.
    assert wait_until(lambda: cluster.edge.node_states()["node2"] == "up", 15, 0.2)
    assert wait_until(lambda: two.health().get("ari_connected"), 30), two.app_log_tail()
    assert wait_until(lambda: not any(s["node"] == "node2" for s in shared(cluster).values()),
                      10), shared(cluster)
    log = two.app_log.read_text(errors="replace")
    assert "ended while the service was away" not in log, two.app_log_tail()
    rows = records_of(one, lost)
    assert len(rows) == len(lost), rows
    again = cluster.phone(4, hold=2, caller="0919520100")
    try:
        assert len(again.wait_for("answered", 4, 20)) == 4
    finally:
        again.finish(30)
    rows = records_of(one, [f"09195201{i:02d}" for i in range(4)])
    assert "node2" in {node_of(r) for r in rows}, rows
    assert wait_until(lambda: cluster.line_nodes() == [], 10)
    cluster.nothing_left()
