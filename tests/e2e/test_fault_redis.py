"""Fault: the service's Redis stops while citizens call (issue 15, item 1).

The hotline keeps answering on each instance's own line count (DEGRADED, on /readyz and
/metrics), callers who would queue hear that the system has a fault and may leave a callback
request, and when Redis is back (restarted empty, as our private Redis keeps nothing) the live
state is rebuilt from the instance's own view and Asterisk: no line leaked or double counted.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.scenarios import nothing_left_after, record, records_of, running
from tests.e2e.stack import Stack, wait_until

OPERATORS = {"101": "redis-fault-e2e-101-password"}
OFFERED = "queue unreachable (Redis): callback offered"  # the app's log line


@pytest.fixture(scope="module")
def rs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of this module's own (its Redis is stopped here), one operator configured (so
    calls go to the queue), never registered (nobody answers): 3 lines per shift."""
    with running(Stack(tmp_path_factory.mktemp("redis-fault"), operators=OPERATORS)) as s:
        yield s


nothing_left = nothing_left_after("rs")


def readyz(stack: Stack) -> dict:
    """/readyz's full answer (details: loopback)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.http_port}/readyz",
                                    timeout=5) as r:
            return dict(json.loads(r.read()), code=r.status)
    except urllib.error.HTTPError as e:
        return dict(json.loads(e.read()), code=e.code)


def metric(stack: Stack, name: str) -> float | None:
    return stack.metric(name)


def test_given_redis_stopped_when_citizens_call_then_answered_on_local_count_busy_above_it(
        rs: Stack) -> None:
    rs.redis.stop()
    held = rs.phone("1022", count=3, hold=90, caller="0918200100")
    busy = None
    try:
        assert len(held.wait_for("answered", 3, 20)) == 3, rs.app_log_tail()
        busy = rs.phone("1022", caller="0918200199")
        (late,) = busy.finish() if busy.wait_for("final", 1, 20) else busy.finish()
        assert late["final_code"] == 486, late  # the shift's 3 lines, counted locally
        ready = readyz(rs)
        assert ready["code"] == 200 and ready["status"] == "ready", ready
        assert ready["degraded"] == ["redis"], ready
        assert ready["checks"]["redis"]["fallback"]["lines_here"] == {"dongnai": 3}, ready
        assert "DEGRADED" in ready["checks"]["redis"]["error"]
        assert metric(rs, "hotline_lines_degraded") == 1
        assert metric(rs, "hotline_degraded_admissions_total") == 3
        # The callers would queue for operator 101: told of the fault, offered a callback.
        assert wait_until(lambda: rs.app_log_tail(400).count(
            OFFERED) == 3, 20), rs.app_log_tail()
        held.send("hangup 0")  # one leaves: its line is free again for the next caller
        assert wait_until(lambda: readyz(rs)["checks"]["redis"]["fallback"]["lines_here"]
                          == {"dongnai": 2}, 5)

        # Redis back (empty): the two calls still up count again, nothing else.
        rs.redis.start()
        assert wait_until(lambda: readyz(rs)["degraded"] == [], 10), rs.app_log_tail()
        assert wait_until(lambda: rs.pool_in_use() == 2, 5), rs.app_log_tail()
        assert rs.logged("Redis is back after"), rs.app_log_tail()
        assert metric(rs, "hotline_lines_degraded") == 0
        assert metric(rs, "hotline_redis_outages_total") == 1
        # ...and wait in the queue again, in their place (nobody to answer them here).
        queued = wait_until(lambda: rs.app_log_tail(400).count(
            "put back in the queue dongnai after the Redis outage") == 2, 5)
        assert queued, rs.app_log_tail()
        assert len(held.of("disconnected")) == 1, "a call in progress was dropped"
    finally:
        if not rs.redis.proc or rs.redis.proc.poll() is not None:
            rs.redis.start()
        held.finish()
        if busy is not None:
            busy.finish()
    assert wait_until(lambda: rs.pool_in_use() == 0, 5)
    # The three waited for an operator and left: abandoned, each with its record.
    callers = {"0918200100", "0918200101", "0918200102"}  # softphone.caller_for
    recs = records_of(rs, callers, last=50)
    assert recs and sorted(r["outcome"] for r in recs) == ["abandoned"] * 3, recs
    assert record(rs, caller="0918200199", last=50)["outcome"] == "busy"


def test_given_redis_stopped_when_caller_presses_1_then_callback_kept_in_database(
        rs: Stack) -> None:
    rs.redis.stop()
    caller = rs.phone("1022", hold=60, caller="0918200300")
    try:
        offers_before = rs.app_log_tail(10_000).count(OFFERED)
        assert caller.wait_for("answered", 1, 20), rs.app_log_tail()
        offered = wait_until(lambda: rs.app_log_tail(10_000).count(OFFERED) > offers_before,
                             20)  # after the greeting
        assert offered, rs.app_log_tail()
        time.sleep(3.0)  # the message is being said
        caller.send("dtmf 1")
        assert caller.wait_for("disconnected", 1, 30), rs.app_log_tail()
    finally:
        rs.redis.start()
        caller.finish()
    assert record(rs, caller="0918200300", last=50)["outcome"] == "callback"
    out = rs.cli("callbacks", "--json")
    assert out.returncode == 0, out.stderr
    assert [r["caller"] for r in json.loads(out.stdout)] == ["0918200300"]
    assert wait_until(lambda: readyz(rs)["degraded"] == [], 10)
    normal = rs.phone("1022", caller="0918200301")  # and the next call is served normally
    try:
        assert normal.wait_for("answered", 1, 20)
        assert wait_until(lambda: rs.pool_in_use() == 1, 5)
    finally:
        normal.finish()
