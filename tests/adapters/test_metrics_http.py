"""/metrics against real parts: the collector reads a real private Redis (line pools, the
operators' queue) and a real journal folder; only the ARI/AMI connection flags are fakes. The
handler runs in the console's app (real user store, real tokens) under aiohttp's test client."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from callcenter.calls import CallState
from callcenter.config.model import HotlineConfig
from callcenter.console.errors import Handler
from callcenter.console.metrics import (
    AGENT_STATES,
    CONTENT_TYPE,
    CallMetrics,
    MetricsSample,
    OutcomeCount,
    OutcomeCounter,
    add_metrics_route,
    collect,
    render_metrics,
)
from callcenter.lines.redis import LinePool
from callcenter.queue import agent as ag
from callcenter.queue.policy import Operator, QueuePolicy, SecretRef
from callcenter.queue.redis import AcdQueue
from callcenter.runtime.loop_lag import LoopLag
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.data import CallRecordData
from callcenter.store.journal import RecordJournal
from callcenter.store.migrate import upgrade_head
from callcenter.store.recorder import RecordWriter
from callcenter.store.records import CallRecordStore
from callcenter.store.users import UserStore
from tests.support import api as support
from tests.support.api import make_app, make_tokens

T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)  # 08:00 in Đồng Nai: the day shift (15)
NIGHT = dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC)  # 20:00: the night shift (2)
hotline_config = support.hotline_config  # Đồng Nai and Thanh Hóa


@dataclass
class FakeStasis:
    """StasisService's connection flag and sessions, nothing else."""

    connected: asyncio.Event = field(default_factory=asyncio.Event)
    sessions: dict[str, object] = field(default_factory=dict)


@dataclass
class FakeAmi:
    connected: bool = False


@pytest.fixture
async def client(redis_server: PrivateRedis) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_server.url)
    await c.flushall()
    yield c
    await c.aclose()


def record(n: int) -> CallRecordData:
    at = T0 - dt.timedelta(minutes=n)
    return CallRecordData(
        id=f"pbx1:1762129800.{n}", node="pbx1", tenant="dongnai", dialled="1022",
        caller=f"09{n:08d}", shift="day", pool_limit=15, arrived_at=at, answered_at=None,
        ended_at=at + dt.timedelta(seconds=30), outcome="busy", cause="17 User busy",
        cause_code=17, linkedid=f"1762129800.{n}", extra=None)


@dataclass
class Parts:
    """Everything the collector reads, real where it can be."""

    config: HotlineConfig
    pool: LinePool
    acd: AcdQueue
    stasis: FakeStasis
    ami: FakeAmi
    lag: LoopLag
    journal: RecordJournal
    outcomes: OutcomeCounter
    now: dt.datetime = T0

    async def collect(self, **kw: object) -> MetricsSample:
        return await collect(config=self.config, pool=self.pool, acd=self.acd,
                             stasis=self.stasis, ami=self.ami, lag=self.lag,
                             journal=self.journal, outcomes=self.outcomes, now=self.now,
                             **kw)  # type: ignore[arg-type]


def make_parts(redis: aioredis.Redis, config: HotlineConfig, journal_dir: Path) -> Parts:
    clock = lambda: T0  # noqa: E731 - Redis's clock, fixed
    return Parts(config, LinePool(redis, "inst-a", "pbx1"),
                 AcdQueue(redis, "inst-a", "pbx1", {"dongnai": QueuePolicy()}, clock=clock),
                 FakeStasis(), FakeAmi(), LoopLag(), RecordJournal(journal_dir),
                 OutcomeCounter())


async def busy_hotline(p: Parts) -> None:
    """Đồng Nai: 3 lines held (2 by another instance), 3 calls queued of which one rings,
    operators 101-104: 101 and 102 logged in (one rings), 103 paused, 104 unreachable."""
    other = LinePool(p.pool.redis, "inst-b", "pbx1")
    for i in range(2):
        assert await other.acquire("dongnai", f"b-{i}", 15, "day")
    assert await p.pool.acquire("dongnai", "a-0", 15, "day")
    await p.acd.sync_operators("dongnai", [Operator(str(e), f"Tổng đài viên {e}",
                                                    SecretRef("env", f"OP_{e}"))
                                           for e in (101, 102, 103, 104)])
    for ext in ("101", "102", "103"):
        await p.acd.agent_event("dongnai", ext, ag.Reachable())
        await p.acd.agent_event("dongnai", ext, ag.LogIn())
    await p.acd.agent_event("dongnai", "103", ag.Pause("break"))
    await p.acd.agent_event("dongnai", "102", ag.Pause("break"))
    for i in range(3):
        assert await p.acd.enqueue("dongnai", f"q-{i}", caller=f"09{i:08d}")
    assert await p.acd.offer_next("dongnai") is not None
    assert await p.acd.offer_next("dongnai") is None  # 102 and 103 are paused: one offer
    p.stasis.connected.set()
    p.stasis.sessions.update({"a-0": object(), "q-0": object()})
    p.lag.samples.extend([0.001] * 99 + [0.040])
    p.journal.append(record(1))
    p.journal.append(record(2))
    p.outcomes.count("dongnai", "answered")
    p.outcomes.count("dongnai", "busy")
    p.outcomes.count("dongnai", "answered")
    p.outcomes.count("-", "not_found")


# ---- the collector ---------------------------------------------------------------------------
async def test_given_busy_hotline_when_collected_then_every_figure_read_from_real_parts(
        client: aioredis.Redis, hotline_config: HotlineConfig, tmp_path: Path) -> None:
    p = make_parts(client, hotline_config, tmp_path / "journal")
    await busy_hotline(p)
    s = await p.collect()
    dn, th = s.live
    assert s.tenants == ("dongnai", "thanhhoa") and s.redis_up
    assert (dn.tenant, dn.shift, dn.lines_in_use, dn.lines_limit) == ("dongnai", "day", 3, 15)
    assert (dn.waiting, dn.ringing) == (2, 1)
    assert dict(dn.agents) == {"logged_out": 1, "available": 0, "ringing": 1, "on_call": 0,
                               "wrap_up": 0, "paused": 2}
    assert dn.agents_reachable == 3
    assert (th.tenant, th.shift, th.lines_in_use, th.lines_limit) == ("thanhhoa", "day", 0, 4)
    assert dict(th.agents) == dict.fromkeys(AGENT_STATES, 0) and th.waiting == 0
    assert s.outcomes == (OutcomeCount("-", "not_found", 1),
                          OutcomeCount("dongnai", "answered", 2),
                          OutcomeCount("dongnai", "busy", 1))
    assert (s.ari_connected, s.ami_connected) == (True, False)
    assert (s.loop_lag_p99_ms, s.loop_lag_max_ms) == (40.0, 40.0)
    assert (s.call_sessions, s.journal_pending) == (2, 2)


def with_day_minimum(config: HotlineConfig, tenant_id: str, minimum: int) -> HotlineConfig:
    """The config with ``min_operators`` of the tenant's day shift set to ``minimum``."""
    tenants = tuple(
        dataclasses.replace(t, shifts=tuple(
            dataclasses.replace(s, min_operators=minimum) if s.name == "day" else s
            for s in t.shifts)) if t.id == tenant_id else t
        for t in config.tenants)
    return dataclasses.replace(config, tenants=tenants)


async def test_given_three_logged_in_and_day_minimum_four_when_scraped_then_understaffed(
        client: aioredis.Redis, hotline_config: HotlineConfig, tmp_path: Path) -> None:
    p = make_parts(client, with_day_minimum(hotline_config, "dongnai", 4), tmp_path / "journal")
    await busy_hotline(p)  # 101 ringing, 102 and 103 paused: 3 logged in; 104 logged out
    day = (("shift", "day"), ("tenant", "dongnai"))
    f = families(render_metrics(await p.collect()))
    assert f["hotline_operators_min"][day] == 4
    assert f["hotline_shift_understaffed"][day] == 1
    assert f["hotline_shift_understaffed"][(("shift", "day"), ("tenant", "thanhhoa"))] == 0

    await p.acd.agent_event("dongnai", "104", ag.LogIn())  # unreachable, yet logged in
    f = families(render_metrics(await p.collect()))
    assert f["hotline_shift_understaffed"][day] == 0

    p.now = NIGHT  # the night shift sets no minimum
    f = families(render_metrics(await p.collect()))
    assert f["hotline_operators_min"][(("shift", "night"), ("tenant", "dongnai"))] == 0


async def test_given_night_and_journal_flushed_when_collected_then_night_limit_and_zero(
        client: aioredis.Redis, hotline_config: HotlineConfig, tmp_path: Path) -> None:
    p = make_parts(client, hotline_config, tmp_path / "journal")
    p.journal.append(record(1))
    p.journal.done(record(1).id)
    (tmp_path / "journal" / ".pbx1%3A9.json.1234.tmp").write_text("{}")  # a write in flight
    p.now = NIGHT
    p.ami.connected = True
    s = await p.collect()
    assert [(t.tenant, t.shift, t.lines_limit) for t in s.live] == \
        [("dongnai", "night", 2), ("thanhhoa", "night", 2)]
    assert (s.journal_pending, s.ari_connected, s.ami_connected) == (0, False, True)
    assert (s.loop_lag_p99_ms, s.call_sessions) == (0.0, 0)


async def test_given_redis_gone_when_collected_then_redis_down_and_process_figures_kept(
        hotline_config: HotlineConfig, tmp_path: Path) -> None:
    dead = aioredis.Redis.from_url(f"unix://{tmp_path / 'nobody.sock'}")
    p = make_parts(dead, hotline_config, tmp_path / "journal")
    p.journal.append(record(1))
    p.stasis.connected.set()
    s = await p.collect()
    await dead.aclose()
    assert (s.redis_up, s.live, s.journal_pending, s.ari_connected) == (False, (), 1, True)


async def test_given_redis_that_never_answers_when_collected_then_timeout_not_a_hang(
        hotline_config: HotlineConfig, tmp_path: Path) -> None:
    held: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read nothing, answer nothing

    sock = tmp_path / "mute.sock"
    server = await asyncio.start_unix_server(mute, path=str(sock))
    stuck = aioredis.Redis.from_url(f"unix://{sock}")
    p = make_parts(stuck, hotline_config, tmp_path / "journal")
    loop = asyncio.get_running_loop()
    t = loop.time()
    s = await p.collect(redis_timeout_s=0.3)
    elapsed = loop.time() - t
    for w in held:
        w.close()
    server.close()
    with contextlib.suppress(Exception):
        await stuck.aclose()
    assert s.redis_up is False and s.live == ()
    assert 0.25 <= elapsed < 2.0


# ---- the HTTP handler ------------------------------------------------------------------------
PEER = web.RequestKey("test_peer", str)


@web.middleware
async def fake_peer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tests only: ``X-Test-Peer`` stands for a request arriving from that address."""
    peer = request.headers.get("X-Test-Peer")
    if peer:
        request = request.clone(remote=peer)
    return await handler(request)


@dataclass
class Http:
    client: TestClient[web.Request, web.Application]
    tokens: dict[str, str]

    async def get(self, *, peer: str | None = None, user: str | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        h = dict(headers or {})
        if peer:
            h["X-Test-Peer"] = peer
        if user:
            h["Authorization"] = f"Bearer {self.tokens[user]}"
        async with self.client.get("/metrics", headers=h) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()


@pytest.fixture
async def http(client: aioredis.Redis, hotline_config: HotlineConfig,
               tmp_path: Path) -> AsyncIterator[Http]:
    """The console's app (users, tokens on SQLite) with /metrics over the real collector."""
    database_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    app = make_app(database_url, hotline_config, tmp_path / "files")
    app.middlewares.insert(0, fake_peer)
    tokens = make_tokens(database_url)
    users = UserStore(database_url)
    users.add_user("giamsat.th", "supervisor", "thanhhoa")
    tokens["giamsat.th"] = users.issue_token("giamsat.th")[1]
    users.close()
    parts = make_parts(client, hotline_config, tmp_path / "journal")
    await busy_hotline(parts)

    async def collect_fn(_app: web.Application) -> MetricsSample:
        return await parts.collect()

    add_metrics_route(app, collect_fn)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    async with TestClient(server) as c:
        yield Http(c, tokens)


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted labels: value}, by prometheus_client's own parser."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out.setdefault(smp.name, {})[tuple(sorted(smp.labels.items()))] = smp.value
    return out


async def test_given_loopback_scrape_when_get_metrics_then_text_format_with_all_tenants(
        http: Http) -> None:
    status, ctype, text = await http.get()
    assert status == 200 and ctype == CONTENT_TYPE
    f = families(text)
    assert f["hotline_pool_lines_in_use"] == {(("shift", "day"), ("tenant", "dongnai")): 3,
                                              (("shift", "day"), ("tenant", "thanhhoa")): 0}
    assert f["hotline_pool_lines_limit"][(("shift", "day"), ("tenant", "dongnai"))] == 15
    assert f["hotline_queue_calls"][(("state", "waiting"), ("tenant", "dongnai"))] == 2
    assert f["hotline_queue_calls"][(("state", "ringing"), ("tenant", "dongnai"))] == 1
    assert len(f["hotline_agents"]) == 12  # six states for each of the two tenants
    assert f["hotline_agents"][(("state", "paused"), ("tenant", "dongnai"))] == 2
    assert f["hotline_agents_reachable"][(("tenant", "dongnai"),)] == 3
    assert f["hotline_calls_total"][(("outcome", "answered"), ("tenant", "dongnai"))] == 2
    assert f["hotline_calls_total"][(("outcome", "callback"), ("tenant", "thanhhoa"))] == 0
    assert f["hotline_calls_total"][(("outcome", "not_found"), ("tenant", "-"))] == 1
    assert {k: v[()] for k, v in f.items() if () in v and k.startswith("hotline_")} == {
        "hotline_redis_up": 1, "hotline_ari_connected": 1, "hotline_ami_connected": 0,
        "hotline_event_loop_lag_p99_seconds": 0.04, "hotline_event_loop_lag_max_seconds": 0.04,
        "hotline_call_sessions": 2, "hotline_journal_records_pending": 2,
        "hotline_journal_write_failures_total": 0, "hotline_call_records_held": 0,
        "hotline_call_records_dropped_total": 0, "hotline_config_reload_failed": 0,
        "hotline_lines_degraded": 0, "hotline_redis_outages_total": 0,
        "hotline_degraded_admissions_total": 0, "hotline_asterisk_restarts_total": 0,
        "hotline_sip_account_probes_total": 0, "hotline_sip_scanner_requests_total": 0,
        "hotline_sip_refusals_total": 0, "hotline_sip_refusals_evicted_total": 0,
        "hotline_sip_sources_refused": 0}


async def test_given_outside_peer_without_token_when_get_then_401_auth_required(
        http: Http) -> None:
    status, _, text = await http.get(peer="192.0.2.10")
    assert status == 401 and '"id": "auth.required"' in text
    status, _, text = await http.get(peer="192.0.2.10", headers={"Authorization": "Bearer x"})
    assert status == 401 and "auth.required" in text


async def test_given_proxy_header_on_loopback_when_get_without_token_then_401(
        http: Http) -> None:
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        status, _, text = await http.get(headers={header: "198.51.100.7"})
        assert status == 401 and "auth.required" in text, header


async def test_given_outside_operator_or_unit_token_when_get_then_403_forbidden(
        http: Http) -> None:
    for user in ("tdv.an", "syt.dongnai"):
        status, _, text = await http.get(peer="192.0.2.10", user=user)
        assert status == 403 and "auth.forbidden" in text, user


async def test_given_outside_supervisor_token_when_get_then_only_own_tenant_series(
        http: Http) -> None:
    status, ctype, text = await http.get(peer="192.0.2.10", user="giamsat.th")
    assert status == 200 and ctype == CONTENT_TYPE
    f = families(text)
    assert "dongnai" not in text and 'tenant="-"' not in text
    assert f["hotline_pool_lines_limit"] == {(("shift", "day"), ("tenant", "thanhhoa")): 4}
    assert f["hotline_call_sessions"][()] == 2  # process-wide figures stay
    status, _, text = await http.get(peer="2001:db8::5", user="quantri")
    assert status == 200 and 'tenant="dongnai"' in text and "thanhhoa" not in text


# ---- finished calls through the record hook --------------------------------------------------
def finished(n: int, outcome: str, tenant: str | None = "dongnai", operator: str | None = None,
             **seconds: float) -> CallState:
    """A finished call's state; its times are ``T0`` plus the given seconds."""
    at = {k: T0 + dt.timedelta(seconds=v) for k, v in seconds.items()}
    return CallState(call_id=f"1762129900.{n}", node="pbx1", dialled="1022",
                     caller=f"09{n:08d}", linkedid=f"1762129900.{n}", arrived_at=T0,
                     tenant_id=tenant, shift="day", limit=15, outcome=outcome,
                     operator=operator, ended_at=T0 + dt.timedelta(seconds=1000),
                     **at)  # type: ignore[arg-type]


async def test_given_calls_written_through_record_writer_when_scraped_then_histograms(
        client: aioredis.Redis, hotline_config: HotlineConfig, tmp_path: Path) -> None:
    """The app's wiring: RecordWriter(on_record=CallMetrics.record), then a real scrape."""
    database_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    store = CallRecordStore(database_url)
    calls = CallMetrics()
    parts = make_parts(client, hotline_config, tmp_path / "journal")
    writer = RecordWriter(parts.journal, store, functools.partial(upgrade_head, database_url),
                          on_record=calls.record)
    await writer.write(finished(1, "answered", answered_at=0.2, queued_at=3, bridged_at=13,
                                talk_ended_at=193, operator="101"))
    await writer.write(finished(2, "answered", answered_at=0.7, queued_at=2, bridged_at=47,
                                talk_ended_at=50, operator="102"))
    await writer.write(finished(3, "abandoned", answered_at=0.4, queued_at=2))
    await writer.write(finished(4, "not_found", tenant=None))
    assert await writer.flush_once() == 0  # the same records reached the database
    store.close()
    parts.outcomes = calls.outcomes

    async def collect_fn(_app: web.Application) -> MetricsSample:
        return await parts.collect()

    app = web.Application()
    add_metrics_route(app, collect_fn, calls)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    async with TestClient(server) as c, c.get("/metrics") as r:
        assert r.status == 200
        f = families(await r.text())
    dn = (("tenant", "dongnai"),)

    def bucket(name: str, le: str) -> float:
        return f[f"{name}_bucket"][(("le", le), ("tenant", "dongnai"))]

    assert [bucket("hotline_call_answer_seconds", le) for le in ("0.1", "0.25", "0.5", "1.0")] \
        == [0, 1, 2, 3]
    assert f["hotline_call_answer_seconds_count"][dn] == 3
    assert [bucket("hotline_queue_wait_seconds", le) for le in ("5.0", "10.0", "20.0", "60.0")] \
        == [0, 1, 1, 2]  # 10 s and 45 s; the abandoned caller was never bridged
    assert f["hotline_queue_wait_seconds_sum"][dn] == 55
    assert [bucket("hotline_talk_seconds", le) for le in ("30.0", "60.0", "300.0", "+Inf")] \
        == [1, 1, 2, 2]
    assert f["hotline_calls_total"][(("outcome", "abandoned"), ("tenant", "dongnai"))] == 1
    assert f["hotline_calls_total"][(("outcome", "not_found"), ("tenant", "-"))] == 1
    assert not any(k[0][0] == "tenant" and k[0][1] == "-" for k in
                   f["hotline_call_answer_seconds_count"])  # not answered: nothing observed
    (build,) = f["hotline_build_info"]
    assert dict(build)["version"] and dict(build)["python"]
    assert f["process_cpu_seconds_total"][()] > 0 and f["process_open_fds"][()] > 0
