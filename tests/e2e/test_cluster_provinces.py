"""The national config on two nodes behind Kamailio (issue 19, items 3 and 6): the 63 provinces
of `callcenter config provinces` on both nodes, three provinces called at once through the edge,
each answering exactly its own line limit with its calls on both nodes; and a province whose
calls are up on both nodes is shown as one (its total, not a node's share) by either node's
pool API and wallboard. The nodes: tests/e2e/cluster_stack.py."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import redis

from callcenter.config.national import national_config
from callcenter.config.provinces import by_code
from callcenter.lines.redis import lines_key
from callcenter.tools.softphone import PhoneGroup
from tests.e2e.cluster_stack import Cluster, node_of, running_cluster
from tests.e2e.scenarios import records_of
from tests.e2e.stack import ROOT, Stack, control_get, wait_until

LINES = {"0237": 2, "028": 3, "0251": 1, "024": 4}  # Thanh Hóa, HCM, Đồng Nai, Hà Nội
CALLS = {"0237": 5, "028": 6, "0251": 4}  # the burst (Hà Nội: the wallboard test's)
HOLD_S = 60.0  # hung up by the test once it has looked
PASSWORD = "giam-sat-ha-noi-2026"


def _tenant(code: str) -> str:
    p = by_code(code)
    assert p is not None
    return p.id


def _number(code: str) -> str:
    p = by_code(code)
    assert p is not None
    return p.number


def _national(node: Stack) -> None:
    tenants = national_config()["tenants"]
    for code, lines in LINES.items():
        tenant = next(t for t in tenants if t["id"] == _tenant(code))
        for shift in tenant["shifts"]:
            shift["lines"] = lines
    node.config_data["tenants"] = tenants
    node.write_config(node.config_data)


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster-provinces"), _national) as c:
        yield c


def held(cluster: Cluster, tenant: str) -> list[str]:
    """The node holding each of the tenant's lines now (the shared pool in Redis)."""
    client = redis.Redis.from_url(cluster.nodes[0].redis.url)
    try:
        return [json.loads(v)["n"] for v in client.hvals(lines_key(tenant))]
    finally:
        client.close()


def phone(cluster: Cluster, code: str, count: int, caller: str) -> PhoneGroup:
    return PhoneGroup(f"127.0.0.1:{cluster.edge.settings.listen_port}", _number(code), count,
                      HOLD_S, caller)


def pool_of(node: Stack, tenant: str) -> dict[str, Any]:
    pools = control_get(node.http_port, "/api/pool", node.control_token)
    assert pools is not None, node.app_log_tail()
    return next(p for p in pools if p["tenant"] == tenant)


def test_given_three_provinces_when_bursts_through_edge_at_once_then_each_exact_on_both_nodes(
        national: Cluster) -> None:
    pools = control_get(national.nodes[1].http_port, "/api/pool",
                        national.nodes[1].control_token)
    assert pools is not None and len(pools) == 63
    callers = {code: f"0913{code.lstrip('0'):0>4}00" for code in CALLS}
    phones = {code: phone(national, code, CALLS[code], callers[code]) for code in CALLS}
    try:
        for code, group in phones.items():
            group.wait_for("answered", LINES[code], timeout=25)
        for code, group in phones.items():
            tenant = _tenant(code)
            assert len(group.of("answered")) == LINES[code], (tenant, group.of("answered"))
            assert len(held(national, tenant)) == LINES[code], tenant
            # Either node's pool API: the province's total, both nodes' calls together.
            for node in national.nodes:
                assert pool_of(node, tenant)["in_use"] == LINES[code], (tenant, node.http_port)
        # The callers over the limit hear the busy message (~9 s), then 486.
        assert wait_until(lambda: all(len(g.of("disconnected")) >= CALLS[c] - LINES[c]
                                      for c, g in phones.items()), 40, 0.5)
    finally:
        results = {code: group.finish(40) for code, group in phones.items()}
    all_callers: list[str] = []
    for code, finals in results.items():
        codes = sorted(r["final_code"] for r in finals)
        assert codes == [200] * LINES[code] + [486] * (CALLS[code] - LINES[code]), (code, codes)
        all_callers += [f"{callers[code][:-2]}{i:02d}" for i in range(CALLS[code])]
    rows = records_of(national.nodes[0], all_callers, last=100, timeout=20)
    assert len(rows) == sum(CALLS.values()), rows
    assert {node_of(r) for r in rows} == {"node1", "node2"}, rows  # spread over both nodes
    for code in CALLS:
        mine = [r for r in rows if r["caller"][:-2] == callers[code][:-2]]
        assert {r["tenant"] for r in mine} == {_tenant(code)}, mine
        assert {r["pool_limit"] for r in mine} == {LINES[code]}, mine
        assert sorted(r["outcome"] for r in mine) == sorted(
            ["answered"] * LINES[code] + ["busy"] * (CALLS[code] - LINES[code])), (code, mine)
    for code in CALLS:
        assert wait_until(lambda c=code: held(national, _tenant(c)) == [], 10), code


async def wallboard_lines(node: Stack, name: str, tenant: str) -> dict[str, Any]:
    """The ``lines`` of the first ``state`` the node's wallboard sends a supervisor."""
    base = f"http://127.0.0.1:{node.http_port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{base}/console/login") as r:
            token = re.search(r'name="csrf" value="([^"]+)"', await r.text())
        assert token is not None
        async with session.post(f"{base}/console/login", allow_redirects=False,
                                data={"username": name, "password": PASSWORD,
                                      "csrf": token[1]}) as r:
            assert r.status == 303, await r.text()
        async with session.ws_connect(f"{base}/console/wallboard/ws?tenant={tenant}") as ws:
            while True:
                msg = await ws.receive(timeout=10)
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                data = json.loads(msg.data)
                if data.get("type") == "state":
                    assert data["tenant"] == tenant
                    return dict(data["lines"])


def test_given_province_calls_on_both_nodes_then_each_nodes_wallboard_shows_the_total(
        national: Cluster) -> None:
    tenant, limit = _tenant("024"), LINES["024"]
    done = subprocess.run([sys.executable, "-m", "callcenter", "user", "add", "giamsat.hn",
                           "--role", "supervisor", "--tenant", tenant, "--password-stdin"],
                          input=PASSWORD + "\n", env=national.nodes[0].env(),
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    groups: list[PhoneGroup] = []
    try:
        # One call after another: the edge's round robin puts them on both nodes.
        for i in range(limit):
            group = phone(national, "024", 1, f"09130241{i:02d}")
            groups.append(group)
            assert group.wait_for("answered", 1, 20)
        nodes = held(national, tenant)
        assert set(nodes) == {"node1", "node2"}, nodes
        assert len(nodes) == limit
        for node in national.nodes:
            lines = asyncio.run(wallboard_lines(node, "giamsat.hn", tenant))
            assert lines == {"in_use": limit, "limit": limit, "full": True}, (
                node.http_port, lines)
            assert pool_of(node, tenant)["in_use"] == limit
    finally:
        for group in groups:
            group.finish(20)
    assert wait_until(lambda: held(national, tenant) == [], 10)
