"""Two Asterisk nodes behind a Kamailio edge (issue 19, items 1-4): the carrier's calls enter
at Kamailio only, are spread over both nodes, share one line pool exactly (Redis keyed per
tenant), scanners and floods get no answer, and losing a node (its Asterisk, or all of it)
loses only its calls: the survivor takes the new ones, the lost calls' lines come back and
their records say failed. The nodes: tests/e2e/cluster_stack.py."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.ari_app.service import PBX_LOST_CAUSE
from callcenter.calls.node_loss import NODE_LOST_CAUSE
from callcenter.ops.processes import release_guard
from callcenter.tools.softphone import PhoneGroup
from tests.e2e.cluster_stack import LINES, Cluster, node_of, running_cluster
from tests.e2e.rawsip import sip_request
from tests.e2e.scenarios import caller_rtp, records_of
from tests.e2e.stack import Stack, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


def test_given_two_nodes_when_burst_of_20_on_10_lines_through_edge_then_exactly_10_answered_on_both(
        cluster: Cluster) -> None:
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, cluster.in_use())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # Held 14 s: a busy caller hears the 9 s busy message before its 486, and under load that
    # can end after 10 s (with hold=10 the phone CANCELled it first: 487, CI-6).
    group = cluster.phone(20, hold=14, caller="0919500100")
    try:
        assert wait_until(lambda: len(group.of("answered")) >= LINES, 20)
        assert wait_until(lambda: len(group.of("disconnected")) >= 20, 30)
    finally:
        results = group.finish(40)
        stop.set()
        watcher.join(5)
    codes = sorted(r["final_code"] for r in results)
    assert codes == [200] * LINES + [486] * LINES, codes  # exact across the two nodes
    assert peak == LINES, peak
    rows = records_of(cluster.nodes[0], [f"09195001{i:02d}" for i in range(20)])
    assert len(rows) == 20, rows
    assert {node_of(r) for r in rows} == {"node1", "node2"}, rows  # round robin over both
    # Answered by the hotline (then queued for operator 101, not logged in: the callers hung
    # up waiting), or refused as busy: ten each.
    outcomes = sorted(r["outcome"] for r in rows)
    assert outcomes.count("busy") == LINES, outcomes
    cluster.nothing_left()


def test_given_scanner_user_agent_when_it_calls_or_registers_at_edge_then_no_answer(
        cluster: Cluster) -> None:
    port = cluster.edge.settings.listen_port
    for method in ("INVITE", "REGISTER", "OPTIONS"):
        assert sip_request(port, method, "1022", user_agent="friendly-scanner",
                           timeout=3) is None, method
    assert sip_request(port, "INVITE", "1022", user_agent="VaxSIPUserAgent/3.1",
                       timeout=3) is None
    # The same request with an ordinary user agent is answered (challenged), so the silence
    # above is the filter's.
    answer = sip_request(port, "REGISTER", "101", user_agent="Zoiper 5", timeout=3)
    assert answer is not None and answer.code == 401
    assert "scanner dropped" in cluster.edge.log_tail(200)


def channels(node: Stack) -> int:
    return len(node.ari("/channels"))


def test_given_calls_on_both_nodes_when_one_asterisk_killed_then_others_go_on_and_lines_freed(
        cluster: Cluster) -> None:
    """Issue 19 point 4, the part a restarted Asterisk covers (systemd's Restart=, the
    cluster run's supervisor): the calls on the other node go on, the dead node's lines are
    free again within 10 s, its calls' records are closed as failed with a cause."""
    one, two = cluster.nodes
    phones: list[tuple[PhoneGroup, Stack]] = []
    try:
        for i in range(4):
            before = (channels(one), channels(two))
            phone = cluster.phone(1, hold=90, caller=f"09195004{i:02d}")
            assert phone.wait_for("answered", 1, 20)
            assert wait_until(lambda b=before: (channels(one), channels(two)) != b, 5)
            phones.append((phone, one if channels(one) > before[0] else two))
        mine = [p for p, node in phones if node is one]
        assert len(mine) == 2 and cluster.in_use() == 4, phones
        assert two.pbx is not None and two.pbx.proc is not None
        two.pbx.proc.send_signal(signal.SIGKILL)
        two.pbx.proc.wait(10)
        killed = time.monotonic()
        release_guard(two.pbx.proc)
        two.pbx.start()  # as the supervisor does
        assert wait_until(lambda: cluster.in_use() == 2, 10, 0.2), (cluster.in_use(),
                                                                   two.app_log_tail())
        print(f"node2's lines free {time.monotonic() - killed:.2f} s after SIGKILL")
        for phone in mine:  # the survivor's calls go on, with audio
            assert phone.of("disconnected") == []
            before_rtp = caller_rtp(phone)
            assert wait_until(lambda p=phone, b=before_rtp: caller_rtp(p) > b + 25, 5)
    finally:
        for phone, _node in phones:
            phone.finish()
    rows = records_of(one, [f"09195004{i:02d}" for i in range(4)])
    assert len(rows) == 4, rows
    on = {n: [r for r in rows if node_of(r) == n] for n in ("node1", "node2")}
    # The survivor's calls ended by their callers (they waited in the queue for operator 101,
    # who is not logged in); the dead node's are closed as lost, with the cause.
    assert [r["outcome"] for r in on["node1"]] == ["abandoned", "abandoned"], rows
    assert [(r["outcome"], r["cause"]) for r in on["node2"]] == [
        ("failed", PBX_LOST_CAUSE)] * 2, rows
    assert wait_until(lambda: cluster.in_use() == 0, 5)
    assert wait_until(lambda: two.health().get("ari_connected"), 30)
    cluster.nothing_left()


def test_given_whole_node_lost_when_its_heartbeat_lapses_then_its_lines_serve_the_survivor(
        cluster: Cluster) -> None:
    """A whole node lost (its Asterisk and its app SIGKILLed, nothing restarting them): the
    survivor's calls go on, and once the dead node's beat has lapsed (the pool's instance
    TTL, 10 s) its lines serve the next admissions: exact again. The lost calls' records are
    closed as failed by the survivor (tests/e2e/test_cluster_node_lost.py for the rest), and
    the node, back, writes none again."""
    one, two = cluster.nodes
    full = cluster.phone(LINES, hold=60, caller="0919500500")
    late: PhoneGroup | None = None
    try:
        assert len(full.wait_for("answered", LINES, 20)) == LINES
        assert wait_until(lambda: cluster.in_use() == LINES, 5)
        survivors = channels(one)
        assert 0 < survivors < LINES
        assert two.pbx is not None and two.pbx.proc is not None
        two.kill_app(signal.SIGKILL)
        two.pbx.proc.send_signal(signal.SIGKILL)
        two.pbx.proc.wait(10)
        lost = time.monotonic()
        assert wait_until(lambda: cluster.edge.node_states()["node2"] == "down", 10, 0.1)
        time.sleep(max(0.0, lost + 11 - time.monotonic()))
        freed = LINES - survivors
        late = cluster.phone(freed + 1, hold=15, caller="0919500600")  # room for the busy message
        assert wait_until(lambda: len(late.of("disconnected")) >= 1, 25)  # the busy one
        assert len(late.of("answered")) == freed, late.events[-5:]
        assert channels(one) == survivors + freed  # all on the survivor
        assert cluster.in_use() == LINES
        results = late.finish(30)
        assert sorted(r["final_code"] for r in results) == [200] * freed + [486]
    finally:
        if late is not None:
            late.finish(30)
        full.finish(30)
        cluster.bring_back(two)  # for the next tests
    assert wait_until(lambda: cluster.edge.node_states()["node2"] == "up", 10, 0.2)

    callers = [f"09195005{i:02d}" for i in range(LINES)]

    def lost_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if node_of(r) == "node2"]

    # Closed by the survivor while the node was lost (one record each: the store keeps one).
    # The records go through the batched writer, so the last may land a moment later (CI-6
    # read 4 of 5 at once).
    wait_until(lambda: len(lost_records(records_of(one, callers))) >= LINES - survivors,
               10, 0.2)
    every = records_of(one, callers)
    lost_rows = lost_records(every)
    assert lost_rows and {(r["outcome"], r["cause"]) for r in lost_rows} == {
        ("failed", NODE_LOST_CAUSE)}, lost_rows
    assert len(lost_rows) == LINES - survivors, (
        f"{len(lost_rows)} node-lost records of {LINES - survivors} lost calls; every record "
        "of these callers (CI-4 and CI-6 each saw one short): "
        + "; ".join(f"{r['id']} {r['caller']} {r['outcome']} {r['cause']}" for r in every))
    cluster.nothing_left()


def test_given_node_asterisk_killed_when_calls_arrive_then_survivor_answers_and_node_returns(
        cluster: Cluster) -> None:
    second = cluster.nodes[1]
    assert second.pbx is not None and second.pbx.proc is not None
    second.pbx.proc.send_signal(signal.SIGKILL)
    second.pbx.proc.wait(10)
    killed = time.monotonic()
    assert wait_until(lambda: cluster.edge.node_states()["node2"] == "down", 10, 0.1), (
        cluster.edge.node_states())
    out_after = time.monotonic() - killed
    print(f"node2 out of the edge's set {out_after:.2f} s after SIGKILL")
    assert out_after < 5, out_after
    group = cluster.phone(4, hold=2, caller="0919500200")
    try:
        assert len(group.wait_for("answered", 4, 20)) == 4
    finally:
        group.finish(30)
    rows = records_of(cluster.nodes[0], [f"09195002{i:02d}" for i in range(4)])
    assert {node_of(r) for r in rows} == {"node1"} and len(rows) == 4, rows
    # Back: Asterisk answers the probes again, the edge takes it back, calls reach it.
    release_guard(second.pbx.proc)  # the dead one's watcher has nothing left to stop
    second.pbx.start()
    restarted = time.monotonic()
    assert wait_until(lambda: cluster.edge.node_states()["node2"] == "up", 10, 0.1)
    print(f"node2 back in the set {time.monotonic() - restarted:.2f} s after its Asterisk "
          f"answered ARI")
    assert wait_until(lambda: second.health().get("ari_connected"), 30), second.app_log_tail()
    # Every call is answered; node2 takes some again. A just-restarted node may fail one call
    # over to node1 (a slow first answer under load, then marked out until the next probe, 1 s):
    # CI once saw a whole burst of 4 on node1. So up to three bursts, each once it is "up".
    nodes: set[str] = set()
    for burst in range(3):
        assert wait_until(lambda: cluster.edge.node_states()["node2"] == "up", 10, 0.1)
        group = cluster.phone(4, hold=2, caller=f"0919503{burst}00")
        try:
            assert len(group.wait_for("answered", 4, 20)) == 4
        finally:
            group.finish(30)
        rows = records_of(cluster.nodes[0], [f"0919503{burst}{i:02d}" for i in range(4)])
        assert len(rows) == 4, rows
        nodes |= {node_of(r) for r in rows}
        if "node2" in nodes:
            break
    assert "node2" in nodes, (nodes, cluster.edge.log_tail(40))
    cluster.nothing_left()


def test_edge_config_lists_every_node(cluster: Cluster) -> None:
    listing = (cluster.edge.workdir / "dispatcher.list").read_text()
    for node in cluster.nodes:
        assert f"sip:127.0.0.1:{node.sip_port}" in listing
    assert Path(cluster.edge.workdir / "kamailio.cfg").read_text().startswith("#!KAMAILIO")


def burst_answers(edge_port: int, bind: str, count: int) -> int:
    """Send ``count`` OPTIONS for a user (each its own transaction) from ``bind`` at once; how
    many were answered within a second after the last."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, 0))
        port = sock.getsockname()[1]
        for i in range(count):
            sock.sendto("\r\n".join([
                f"OPTIONS sip:1022@127.0.0.1:{edge_port} SIP/2.0",
                f"Via: SIP/2.0/UDP {bind}:{port};branch=z9hG4bKflood{i}x{port};rport",
                "Max-Forwards: 70", f"From: <sip:flood@{bind}>;tag=f{i}",
                "To: <sip:1022@127.0.0.1>", f"Call-ID: flood-{i}-{port}@{bind}",
                "CSeq: 1 OPTIONS", "User-Agent: flood-test", "Content-Length: 0", "", ""]).encode(),
                ("127.0.0.1", edge_port))
        answered = 0
        sock.settimeout(1.0)
        try:
            while True:
                sock.recvfrom(65535)
                answered += 1
        except TimeoutError:
            return answered


def test_given_flood_from_one_source_when_not_the_carrier_then_pike_drops_it(
        cluster: Cluster) -> None:
    port = cluster.edge.settings.listen_port
    assert burst_answers(port, "127.0.0.3", 5) == 5  # a few from anyone: answered (403)
    # 30 requests per 2 s are let through per source; beyond, the source gets nothing.
    flooded = burst_answers(port, "127.0.0.2", 80)
    assert flooded < 80, flooded
    assert "flood from 127.0.0.2" in cluster.edge.log_tail(300)
    # The carrier (one address carrying every citizen's call) is never rate limited.
    assert burst_answers(port, "127.0.0.1", 80) == 80
