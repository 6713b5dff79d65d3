"""An operator over TLS behind the cluster's Kamailio edge (issue 19, item 2: "with the same
credentials as today", TLS operators included): operator 101 must use TLS
(``operators_require_tls``); it registers at the edge's TLS port with its usual password,
each node rings it through the edge (UDP node to edge, the phone's own TLS connection edge to
phone) and it answers with SRTP; over UDP at the edge it is never let in. The nodes:
tests/e2e/cluster_stack.py (``tls=True``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.cluster_stack import OPERATOR_PW, Cluster, running_cluster
from tests.e2e.phones import OperatorPhone
from tests.e2e.scenarios import since
from tests.e2e.stack import Stack, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster-tls-ops"), tls=True) as c:
        yield c


def endpoint_state(node: Stack, extension: str) -> str:
    return str(node.ari(f"/endpoints/PJSIP/{extension}").get("state"))


def test_given_tls_operator_registered_at_edge_when_either_node_rings_then_it_answers_over_srtp(
        cluster: Cluster) -> None:
    assert cluster.edge.settings.tls is not None
    tls_port = cluster.edge.settings.tls.port
    wrong = OperatorPhone(tls_port, "101", "not-the-password", transport="tls")
    try:
        assert wrong.wait_registered() == 401
    finally:
        wrong.close()
    phone = OperatorPhone(tls_port, "101", OPERATOR_PW, auto_answer=0.2, transport="tls")
    try:
        assert phone.wait_registered() == 200, cluster.edge.log_tail(30)
        # Each node's qualify reaches the phone through the edge, down its TLS connection.
        for node in cluster.nodes:
            assert wait_until(lambda n=node: endpoint_state(n, "101") == "online", 25, 0.5), (
                node.pbx.rx("pjsip show aor 101") if node.pbx else "", cluster.edge.log_tail(30))
        for index, node in enumerate(cluster.nodes):
            assert node.pbx is not None
            mark = len(phone.events)
            node.ari("/channels?endpoint=PJSIP/101&context=hotline-busy&extension=dongnai"
                     "&priority=1", method="POST")
            assert phone.wait_for("answered", index + 1, 10), (phone.events[-5:],
                                                               cluster.edge.log_tail(30))
            # The phone takes SRTP as mandatory: its media is an active SRTP session.
            assert wait_until(lambda m=mark, i=index: since(phone, m, "media", index=i,
                                                            status="active"), 5)
            active = since(phone, mark, "media", index=index, status="active")
            assert active and all(e["srtp"] for e in active), active
            assert wait_until(lambda n=node: len(n.ari("/channels")) == 1, 5)
            phone.hangup()
            assert phone.wait_for("disconnected", index + 1, 10)
            assert wait_until(lambda n=node: n.ari("/channels") == [], 5)
    finally:
        phone.close()
    for node in cluster.nodes:
        assert wait_until(lambda n=node: endpoint_state(n, "101") == "offline", 40, 0.5)
    cluster.nothing_left()


def test_given_operator_who_must_use_tls_when_it_registers_at_the_edge_over_udp_then_refused(
        cluster: Cluster) -> None:
    phone = OperatorPhone(cluster.edge.settings.listen_port, "101", OPERATOR_PW)  # plain UDP
    try:
        assert phone.wait_registered() == 401  # the right password, but not over TLS
    finally:
        phone.close()
    assert "TLS only" in cluster.edge.log_tail(200)
