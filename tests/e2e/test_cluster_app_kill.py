"""Losing one app instance in the cluster (issue 19, item 4): SIGKILL of an app process while
calls are up on both nodes behind Kamailio.

A node's calls live in its own Asterisk, so only an app connected to that Asterisk can take
them over; the other node's app cannot (and need not: the calls are not lost with the app).
Two honest cases, both here:

* node1 runs two app instances (``service.app_instances: 2``, as `make cluster` starts them):
  one is SIGKILLed, the node's other instance adopts its calls (they go on, their lines are
  counted once), node2's calls are untouched;
* node2 runs one: its app is SIGKILLed and started again, as `make cluster`'s supervisor does
  within a second; the new process adopts the calls left in its Asterisk (lines counted
  again, the calls go on), node1's calls are untouched.

Every call keeps exactly one record, its caller's own hang-up (none ended by the kill). The
nodes: tests/e2e/cluster_stack.py; the second instance: tests/e2e/test_fault_two_instances.py's
``Second``.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from callcenter.lines.redis import lines_key
from callcenter.tools.softphone import PhoneGroup
from tests.e2e.cluster_stack import Cluster, node_of, running_cluster
from tests.e2e.scenarios import caller_rtp, records_of
from tests.e2e.stack import Stack, wait_until
from tests.e2e.test_fault_two_instances import Second, in_app

NODE1_APPS = ("hotline-node1-1", "hotline-node1-2")


def _two_apps_on_node1(node: Stack) -> None:
    if node.config_data["service"]["node"] == "node1":
        node.config_data["service"]["app_instances"] = 2
        node.write_config(node.config_data)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster-app-kill"), _two_apps_on_node1) as c:
        second = Second(c.nodes[0])
        second.start()
        c.second = second  # type: ignore[attr-defined]
        try:
            yield c
        finally:
            second.stop()


def holders(cluster: Cluster, node: str) -> set[str]:
    """The app instances holding ``node``'s lines now."""
    client = redis.Redis.from_url(cluster.nodes[0].redis.url)
    try:
        entries = [json.loads(v) for v in client.hvals(lines_key("dongnai"))]
        return {e["i"] for e in entries if e["n"] == node}
    finally:
        client.close()


def calls_until(cluster: Cluster, prefix: str, enough: object) -> list[PhoneGroup]:
    """One call at a time through the edge until ``enough()`` (at most 12)."""
    phones: list[PhoneGroup] = []
    for i in range(12):
        phone = cluster.phone(1, hold=90, caller=f"{prefix}{i:02d}")
        phones.append(phone)
        assert phone.wait_for("answered", 1, 20), (
            f"call {i} not answered; edge: {cluster.edge.node_states()}\n{cluster.edge.log_tail()}"
            f"\n-- node1:\n{cluster.nodes[0].app_log_tail()}"
            f"\n-- node2:\n{cluster.nodes[1].app_log_tail()}")
        if enough():  # type: ignore[operator]
            break
    return phones


def still_talking(phones: list[PhoneGroup]) -> None:
    for phone in phones:
        assert phone.of("disconnected") == [], "a call was dropped"
        before = caller_rtp(phone)
        assert wait_until(lambda p=phone, b=before: caller_rtp(p) > b + 25, 5)  # audio flows


def channels(node: Stack) -> list[str]:
    return [c["id"] for c in node.ari("/channels")]


def test_given_two_apps_on_a_node_when_one_is_killed_then_its_peer_adopts_and_other_node_goes_on(
        cluster: Cluster) -> None:
    node1, node2 = cluster.nodes
    second: Second = cluster.second  # type: ignore[attr-defined]
    phones = calls_until(cluster, "09195101", lambda: in_app(node1, NODE1_APPS[0])
                         and in_app(node1, NODE1_APPS[1]) and channels(node2))
    try:
        theirs = in_app(node1, NODE1_APPS[1])
        assert theirs and in_app(node1, NODE1_APPS[0]) and channels(node2)
        before = cluster.line_nodes()
        assert len(before) == len(phones) and set(before) == {"node1", "node2"}, before
        second.stop(signal.SIGKILL)
        killed = time.monotonic()
        text = lambda: node1.app_log.read_text(errors="replace")  # noqa: E731
        moved = wait_until(lambda: set(theirs) <= set(in_app(node1, NODE1_APPS[0]))
                           and all(f"call={c} adopted in phase" in text() for c in theirs),
                           25, 0.2)
        assert moved, node1.app_log_tail()
        assert time.monotonic() - killed < 22
        still_talking(phones)  # node1's adopted calls and node2's alike
        assert cluster.line_nodes() == before  # adopted lines: none lost, none counted twice
    finally:
        for phone in phones:
            phone.finish()
        if second.proc is not None and second.proc.poll() is not None:
            second.start()  # for the next test: node1 with its two instances again
    assert wait_until(lambda: cluster.line_nodes() == [], 10)
    callers = [f"09195101{i:02d}" for i in range(len(phones))]
    rows = records_of(node1, callers)
    assert sorted(r["caller"] for r in rows) == callers, rows  # one record each
    # Answered, queued for operator 101 (not logged in): the callers hung up waiting. None
    # ended by the kill.
    assert {r["outcome"] for r in rows} == {"abandoned"}, rows
    assert {node_of(r) for r in rows} == {"node1", "node2"}, rows


def test_given_one_app_on_a_node_when_killed_and_restarted_then_it_adopts_its_nodes_calls(
        cluster: Cluster) -> None:
    node1, node2 = cluster.nodes
    phones = calls_until(cluster, "09195102", lambda: channels(node1) and channels(node2))
    try:
        before = cluster.line_nodes()
        assert set(before) == {"node1", "node2"}, before
        mine = before.count("node2")
        dead = holders(cluster, "node2")
        node2.kill_app(signal.SIGKILL)
        # Without its app, node2 refuses a call with 503 at once (no prompt first): the
        # edge's cue to try the next node (a 6xx, final everywhere, would end the call).
        direct = node2.phone("1022", 1, 2.0, "0919510299")
        assert direct.wait_for("disconnected", 1, 10), direct.events
        assert [r["final_code"] for r in direct.finish(10)] == [503], direct.events
        node2.start_app()  # what `make cluster`'s supervisor does, a second after the death
        # Its calls stayed in node2's Asterisk; the new process adopts them and holds their
        # lines itself (the dead process's entries replaced, never counted twice).
        assert wait_until(lambda: cluster.line_nodes().count("node2") == mine
                          and holders(cluster, "node2").isdisjoint(dead)
                          and len(holders(cluster, "node2")) == 1, 15), (
            cluster.line_nodes(), node2.app_log_tail())
        still_talking(phones)
        assert cluster.line_nodes() == before
    finally:
        for phone in phones:
            phone.finish()
    assert wait_until(lambda: cluster.line_nodes() == [], 10)
    callers = [f"09195102{i:02d}" for i in range(len(phones))]
    rows = records_of(node1, callers)
    assert sorted(r["caller"] for r in rows) == callers, rows
    assert {r["outcome"] for r in rows} == {"abandoned"}, rows  # as above: none failed
    assert {node_of(r) for r in rows} == {"node1", "node2"}, rows
    cluster.nothing_left()
