"""Fault: Redis's primary dies behind Sentinel while citizens call (issue 19, point 5).

The app runs against a private Sentinel set (runtime/sentinel.py: a primary, a replica, three
sentinels) through REDIS_SENTINELS. The primary is SIGKILLed with two calls up: a citizen who
calls meanwhile is answered (the degraded mode covers the seconds of the failover), the app
follows the promoted replica, writes its lines back, and the shift's limit is exact again
after the switch: the lines held are counted once, and the next caller over the limit is busy.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.runtime.sentinel import SentinelSet
from tests.e2e.scenarios import nothing_left_after, running
from tests.e2e.stack import Stack, wait_until


class SentinelRedis:
    """Stands in for a Stack's private Redis: a Sentinel set; ``url`` names its primary now
    (for the tests' own reads; the app is given the sentinels)."""

    def __init__(self, folder: Path):
        self.sentinel_set = SentinelSet(folder, down_after_ms=1000, failover_timeout_ms=5000)
        self.proc = None

    @property
    def url(self) -> str:
        addr = self.sentinel_set.master()
        return f"redis://{addr[0]}:{addr[1]}/0" if addr else "redis://127.0.0.1:1/0"

    def start(self) -> None:
        if not self.sentinel_set.procs:
            self.sentinel_set.start()

    def stop(self) -> None:
        self.sentinel_set.stop()


class SentinelStack(Stack):
    """The e2e stack with its live state behind Sentinel."""

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        self.redis = SentinelRedis(workdir / "redis")  # type: ignore[assignment]

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.redis.sentinel_set.env}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def ss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of this module's own, 3 lines per shift, no operator (callers hear the IVR)."""
    with running(SentinelStack(tmp_path_factory.mktemp("redis-sentinel"))) as s:
        yield s


nothing_left = nothing_left_after("ss")


def readyz(stack: Stack) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.http_port}/readyz",
                                    timeout=5) as r:
            return dict(json.loads(r.read()), code=r.status)
    except urllib.error.HTTPError as e:
        return dict(json.loads(e.read()), code=e.code)


def test_given_calls_up_when_redis_primary_killed_then_answered_followed_and_limit_exact(
        ss: Stack) -> None:
    sentinels: SentinelSet = ss.redis.sentinel_set  # type: ignore[attr-defined]
    assert readyz(ss)["degraded"] == [], readyz(ss)
    held = ss.phone("1022", count=2, hold=90, caller="0918300100")
    during = late = None
    try:
        assert len(held.wait_for("answered", 2, 20)) == 2, ss.app_log_tail()
        assert wait_until(lambda: ss.pool_in_use() == 2, 5)
        old = sentinels.kill_primary()
        t0 = time.monotonic()
        # A citizen calls while the sentinels have not yet promoted the replica.
        during = ss.phone("1022", hold=90, caller="0918300200")
        assert during.wait_for("answered", 1, 20), ss.app_log_tail()
        new = sentinels.wait_failover(old, 30)
        promoted_s = time.monotonic() - t0
        # The app follows: its lines (the two, and the one admitted meanwhile) in the new
        # primary once each, not degraded any more.
        assert wait_until(lambda: ss.pool_in_use() == 3, 15), ss.app_log_tail()
        assert wait_until(lambda: readyz(ss)["degraded"] == [], 10), ss.app_log_tail()
        assert ss.logged(f"to 127.0.0.1:{new[1]} (Sentinel failover)"), ss.app_log_tail()
        # The limit is exact after the switch: the fourth caller is busy.
        late = ss.phone("1022", caller="0918300300")
        (busy,) = late.finish() if late.wait_for("final", 1, 20) else late.finish()
        assert busy["final_code"] == 486, busy
        assert ss.pool_in_use() == 3
        log = ss.app_log_tail(400)
        print(f"\nprimary {old[1]} killed; replica {new[1]} promoted after {promoted_s:.2f} s; "
              f"admitted on the local count meanwhile: "
              f"{ss.metric('hotline_degraded_admissions_total')}; "
              f"rebuilt: {'after an outage' if 'Redis is back after' in log else 'on the switch'}"
              f"; lines after the switch {ss.pool_in_use()} of 3")
    finally:
        held.finish()
        if during is not None:
            during.finish()
    assert wait_until(lambda: ss.pool_in_use() == 0, 5), ss.app_log_tail()
