"""The national config on a real Asterisk (issue 19, item 6): the 63 provinces of
`callcenter config provinces` on one hotline, several provinces called at once, each answering
exactly its own line limit while the rest of its callers hear busy.

Once with one app process and once with two (``service.app_instances: 2``: each call goes to
one of them at random), so a province's burst is admitted by two processes sharing its pool in
Redis, as app instances on several nodes do. One Asterisk: the cluster (Kamailio in front of
several nodes) is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from callcenter.config.national import national_config
from callcenter.config.provinces import PROVINCES, by_code
from callcenter.lines.redis import lines_key
from tests.e2e.scenarios import assert_nothing_left, nothing_left_after, running
from tests.e2e.stack import Stack, control_get, wait_until
from tests.e2e.test_fault_two_instances import Second

# Three provinces with small pools (both shifts, so the time of day does not matter) and a
# burst of calls each, larger than the pool.
LINES = {"0237": 2, "028": 3, "0251": 1}  # Thanh Hóa, Hồ Chí Minh, Đồng Nai
CALLS = {"0237": 5, "028": 6, "0251": 4}
HOLD_S = 60.0  # hung up by the test once it has looked


def _province(code: str) -> Any:
    p = by_code(code)
    assert p is not None
    return p


@pytest.fixture(scope="module", params=[1, 2], ids=["one-app", "two-apps"])
def national(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of this module's own running the 63-province config; with two app processes
    (``service.app_instances: 2``, the second as in test_fault_two_instances.py), calls are
    spread over both at random and the pools are shared through Redis, as across nodes."""
    stack = Stack(tmp_path_factory.mktemp("provinces"))
    tenants = national_config()["tenants"]
    for code, lines in LINES.items():
        tenant = next(t for t in tenants if t["id"] == _province(code).id)
        for shift in tenant["shifts"]:
            shift["lines"] = lines
    stack.config_data["tenants"] = tenants
    stack.config_data["service"]["app_instances"] = request.param
    stack.write_config(stack.config_data)
    with running(stack):
        second = None
        if request.param == 2:
            second = Second(stack)
            second.start()
        stack.second = second  # type: ignore[attr-defined]
        try:
            yield stack
        finally:
            if second is not None:
                second.stop()


nothing_left = nothing_left_after("national")


def lines_in_use(stack: Stack, tenant: str) -> int:
    """Lines the tenant holds now, read straight from Redis."""
    client = redis.Redis.from_url(stack.redis.url)
    try:
        return int(client.hlen(lines_key(tenant)))
    finally:
        client.close()


def test_given_the_national_config_when_running_then_all_63_pools_are_in_force(
        national: Stack) -> None:
    pools = control_get(national.http_port, "/api/pool", national.control_token)
    assert pools is not None, national.app_log_tail()
    by_tenant = {p["tenant"]: p for p in pools}
    assert len(by_tenant) == 63, sorted(by_tenant)
    for code, lines in LINES.items():
        assert by_tenant[_province(code).id]["lines"] == lines
    assert by_tenant["hanoi"]["lines"] in (15, 2)  # the defaults, day or night


def test_given_three_provinces_when_each_gets_a_burst_at_once_then_each_answers_exactly_its_limit(
        national: Stack) -> None:
    before = len(national.records(500))
    second = national.second  # type: ignore[attr-defined]
    logs = [national.app_log] + ([second.log] if second is not None else [])
    seen = [len(log.read_text(errors="replace")) for log in logs]
    # The phones number their calls' callers: the last two digits are the call's index.
    callers = {code: f"0912{code.lstrip('0'):0>4}00" for code in LINES}

    def of(code: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r["caller"][:-2] == callers[code][:-2]]

    phones = {code: national.phone(_province(code).number, count=CALLS[code], hold=HOLD_S,
                                   caller=callers[code])
              for code in LINES}  # all three bursts in flight together

    def busy_recorded() -> bool:
        records = national.records(100)
        return all(sum(r["outcome"] == "busy" for r in of(code, records))
                   >= CALLS[code] - LINES[code] for code in LINES)

    try:
        for code, phone in phones.items():
            phone.wait_for("answered", LINES[code], timeout=20)
        # The callers over the limit hear the busy message (~9 s), then 486; their records
        # are written as they end. (The phones report their finals only when they quit.)
        assert wait_until(busy_recorded, 45, interval=1.0), national.app_log_tail()
        for code, phone in phones.items():
            tenant = _province(code).id
            answered = phone.of("answered")
            assert len(answered) == LINES[code], (tenant, answered, national.app_log_tail())
            # While they talk, the province holds exactly its lines, no more, no fewer.
            assert lines_in_use(national, tenant) == LINES[code], tenant
        # The 60 other provinces were not touched.
        others = [p.id for p in PROVINCES if p.area_code not in LINES]
        assert len(others) == 60
        assert [t for t in others if lines_in_use(national, t)] == []
    finally:
        results = {code: phone.finish() for code, phone in phones.items()}
    for code, finals in results.items():
        codes = sorted(r["final_code"] for r in finals)
        limit = LINES[code]
        assert codes == [200] * limit + [486] * (CALLS[code] - limit), (code, finals)
        for r in finals:
            if r["final_code"] == 486:
                assert r["early_media"] and not r["answered"], r  # the busy message was heard
    total = sum(CALLS.values())
    assert wait_until(lambda: len(national.records(500)) >= before + total, 15)
    records = national.records(total)
    for code in LINES:
        mine = of(code, records)
        assert len(mine) == CALLS[code], (code, mine)
        assert {r["tenant"] for r in mine} == {_province(code).id}, mine
        assert {r["dialled"] for r in mine} == {_province(code).number}
        assert {r["pool_limit"] for r in mine} == {LINES[code]}, mine
        outcomes = sorted(r["outcome"] for r in mine)
        assert outcomes == (["answered"] * LINES[code]
                            + ["busy"] * (CALLS[code] - LINES[code])), (code, mine)
    for code in LINES:
        assert wait_until(lambda c=code: lines_in_use(national, _province(c).id) == 0, 5)
    # Which process took the calls: with two, both did (15 calls at random: all on one has
    # a chance of 1 in 16 384).
    served = [log.read_text(errors="replace")[at:].count(" arrived dialled=")
              for log, at in zip(logs, seen, strict=True)]
    assert sum(served) == total and all(served), served
    assert_nothing_left(national)
