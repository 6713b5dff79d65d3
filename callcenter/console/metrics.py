"""``GET /metrics``: the hotline's operational figures in the Prometheus text format 0.0.4.

Three parts, so each is tested on its own:

* ``render_metrics(sample)`` -- pure: a ``MetricsSample`` (frozen dataclasses) to the text.
* ``collect(...)`` -- async: reads the line pools and the queue in Redis, the shift in force
  from the config, and the process's own state (ARI/AMI connection, call sessions, event-loop
  lag, call records waiting in the journal, outcomes counted since start).
* ``metrics_view`` / ``add_metrics_route(app, collect_fn)`` -- the aiohttp handler.

Families (all prefixed ``hotline_``)::

  hotline_pool_lines_in_use{tenant,shift}      gauge    lines held now (Redis, all instances)
  hotline_pool_lines_limit{tenant,shift}       gauge    lines of the shift in force
  hotline_queue_calls{tenant,state}            gauge    queued calls, state waiting|ringing
  hotline_agents{tenant,state}                 gauge    operators per state, all six states
  hotline_agents_reachable{tenant}             gauge    operators whose phone is reachable
  hotline_calls_total{tenant,outcome}          counter  finished calls by outcome (this process)
  hotline_redis_up                             gauge    1 when this scrape could read Redis
  hotline_ari_connected / hotline_ami_connected gauge   1 while this process's session is up
  hotline_event_loop_lag_p99_ms / _max_ms      gauge    over LoopLag's recent window
  hotline_call_sessions                        gauge    calls this process is serving
  hotline_journal_records_pending              gauge    call records not yet in the database

Pool, queue and agent figures are shared state (Redis): every app instance reports the same
values, so aggregate them with ``max``, not ``sum``. Outcomes, sessions, connections, lag and
the journal belong to the process: ``sum`` them across instances. Calls refused before a
tenant is known (``not_found``) count under the tenant ``-``, as their call record does.
When Redis does not answer within ``redis_timeout_s`` the scrape still answers, with
``hotline_redis_up 0`` and no pool/queue/agent series (never stale numbers).

Access (decided here): the service binds HTTP to loopback by default, and Prometheus usually
scrapes from the same host. A request is let in without credentials only when its peer is a
loopback address **and** it carries no proxy header (``Forwarded``, ``X-Forwarded-For``,
``X-Real-IP``): a reverse proxy on the same host would otherwise make every outside request
look local. Any other request needs ``Authorization: Bearer <token>`` of an active user
whose role is supervisor or admin (the console's API tokens, ``callcenter.console.auth``);
such a scrape sees only its own tenant's tenant-labelled series (the process-wide ones stay).
Refusals are JSON with stable ids: 401 ``auth.required`` (no, unknown, expired or revoked
token, or the console's user store is not wired), 403 ``auth.forbidden`` (another role).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sized
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from redis.exceptions import RedisError

from callcenter.console.auth import CHALLENGE, USERS, bearer_token, in_thread
from callcenter.console.errors import error_response
from callcenter.domain.agents import AgentStatus
from callcenter.domain.call import OUTCOMES
from callcenter.domain.model import HotlineConfig
from callcenter.domain.shifts import active_shift
from callcenter.loop_lag import LoopLag
from callcenter.queue.acd import AcdQueue
from callcenter.queue.linepool import LinePool
from callcenter.store.journal import SUFFIX, RecordJournal

log = logging.getLogger("callcenter.console.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
AGENT_STATES: tuple[str, ...] = tuple(s.value for s in AgentStatus)
QUEUE_STATES = ("waiting", "ringing")
SCRAPE_ROLES = frozenset({"supervisor", "admin"})
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
NO_TENANT = "-"  # the call record's tenant when the dialled number matched none


# ---- the sample ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TenantLive:
    """One tenant's shared live state: pool, queue and operators."""

    tenant: str
    shift: str
    lines_in_use: int
    lines_limit: int
    waiting: int
    ringing: int
    agents: tuple[tuple[str, int], ...]  # (state, count); states missing here render as 0
    agents_reachable: int


@dataclass(frozen=True)
class OutcomeCount:
    """Finished calls of one tenant with one outcome since the process started."""

    tenant: str
    outcome: str
    count: int


@dataclass(frozen=True)
class MetricsSample:
    """Everything one scrape shows, read at one moment."""

    tenants: tuple[str, ...]  # configured tenants: their outcome counters always render
    live: tuple[TenantLive, ...]  # empty when Redis did not answer
    outcomes: tuple[OutcomeCount, ...]
    redis_up: bool
    ari_connected: bool
    ami_connected: bool
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    call_sessions: int
    journal_pending: int


def only_tenant(sample: MetricsSample, tenant: str) -> MetricsSample:
    """The sample with tenant-labelled figures of ``tenant`` only (process-wide ones kept)."""
    return dataclasses.replace(
        sample,
        tenants=tuple(t for t in sample.tenants if t == tenant),
        live=tuple(t for t in sample.live if t.tenant == tenant),
        outcomes=tuple(o for o in sample.outcomes if o.tenant == tenant))


# ---- rendering (pure) ------------------------------------------------------------------------
def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote, newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """A HELP text as the text format wants it: backslash and newline escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float | int | bool) -> str:
    """A sample value: integers without a point, floats shortest, NaN and infinities named."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


Labels = tuple[tuple[str, str], ...]


def _family(name: str, kind: str, help_text: str,
            samples: Iterable[tuple[Labels, float | int | bool]]) -> list[str]:
    lines = [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
        lines.append(f"{name}{{{inner}}} {format_value(value)}" if inner
                     else f"{name} {format_value(value)}")
    return lines


def _outcome_rows(sample: MetricsSample) -> list[tuple[Labels, int]]:
    counted = {(o.tenant, o.outcome): o.count for o in sample.outcomes}
    keys = {(t, o) for t in sample.tenants for o in OUTCOMES} | set(counted)
    known = {o: i for i, o in enumerate(OUTCOMES)}
    tenant_order = {t: i for i, t in enumerate(sample.tenants)}
    ordered = sorted(keys, key=lambda k: (tenant_order.get(k[0], len(tenant_order)), k[0],
                                          known.get(k[1], len(known)), k[1]))
    return [((("tenant", t), ("outcome", o)), counted.get((t, o), 0)) for t, o in ordered]


def render_metrics(sample: MetricsSample) -> str:
    """The exposition text (format 0.0.4) of one sample, newline-terminated."""
    live = sample.live
    lines: list[str] = []
    lines += _family(
        "hotline_pool_lines_in_use", "gauge",
        "Lines of the tenant's shift pool held by calls now (all instances).",
        [((("tenant", t.tenant), ("shift", t.shift)), t.lines_in_use) for t in live])
    lines += _family(
        "hotline_pool_lines_limit", "gauge",
        "Lines of the tenant's shift in force (the pool's size).",
        [((("tenant", t.tenant), ("shift", t.shift)), t.lines_limit) for t in live])
    lines += _family(
        "hotline_queue_calls", "gauge",
        "Calls in the operators' queue: waiting, or ringing an operator.",
        [((("tenant", t.tenant), ("state", s)), t.waiting if s == "waiting" else t.ringing)
         for t in live for s in QUEUE_STATES])
    lines += _family(
        "hotline_agents", "gauge", "Operators by state.",
        [((("tenant", t.tenant), ("state", s)), dict(t.agents).get(s, 0))
         for t in live for s in AGENT_STATES])
    lines += _family(
        "hotline_agents_reachable", "gauge",
        "Operators whose softphone is registered and answers qualify.",
        [((("tenant", t.tenant),), t.agents_reachable) for t in live])
    lines += _family(
        "hotline_calls_total", "counter",
        "Finished calls by outcome since this process started.", _outcome_rows(sample))
    lines += _family("hotline_redis_up", "gauge",
                     "1 when this scrape read the live state from Redis.",
                     [((), sample.redis_up)])
    lines += _family("hotline_ari_connected", "gauge",
                     "1 while this process's ARI websocket is connected.",
                     [((), sample.ari_connected)])
    lines += _family("hotline_ami_connected", "gauge",
                     "1 while this process's AMI session is logged in.",
                     [((), sample.ami_connected)])
    lines += _family("hotline_event_loop_lag_p99_ms", "gauge",
                     "Event-loop lag, 99th percentile over the recent window, milliseconds.",
                     [((), sample.loop_lag_p99_ms)])
    lines += _family("hotline_event_loop_lag_max_ms", "gauge",
                     "Event-loop lag, maximum over the recent window, milliseconds.",
                     [((), sample.loop_lag_max_ms)])
    lines += _family("hotline_call_sessions", "gauge",
                     "Calls this process is serving now.", [((), sample.call_sessions)])
    lines += _family("hotline_journal_records_pending", "gauge",
                     "Call records in the journal, not yet written to the database.",
                     [((), sample.journal_pending)])
    return "\n".join(lines) + "\n"


# ---- collecting ------------------------------------------------------------------------------
class OutcomeCounter:
    """Finished calls per (tenant, outcome) since the process started; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def count(self, tenant: str, outcome: str) -> None:
        """One more finished call of ``tenant`` with ``outcome``."""
        with self._lock:
            key = (tenant, outcome)
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> tuple[OutcomeCount, ...]:
        """The counts so far, sorted by tenant then outcome."""
        with self._lock:
            items = sorted(self._counts.items())
        return tuple(OutcomeCount(t, o, n) for (t, o), n in items)


class StasisLike(Protocol):
    """What the collector reads of ``StasisService``."""

    @property
    def connected(self) -> asyncio.Event: ...

    @property
    def sessions(self) -> Sized: ...


class AmiLike(Protocol):
    """What the collector reads of ``AmiWatcher``."""

    @property
    def connected(self) -> bool: ...


def journal_count(journal: RecordJournal) -> int:
    """Files waiting in the journal (counted, not parsed: cheap while the database is down)."""
    try:
        return sum(1 for p in journal.directory.iterdir()
                   if p.name.endswith(SUFFIX) and not p.name.startswith(".") and p.is_file())
    except FileNotFoundError:
        return 0


async def _tenant_live(config: HotlineConfig, tenant_id: str, pool: LinePool,
                       acd: AcdQueue, now: dt.datetime) -> TenantLive:
    use = await pool.use(tenant_id)
    snap = await acd.snapshot(tenant_id)
    counts = snap["counts"]
    assert isinstance(counts, Mapping)
    tenant = next(t for t in config.tenants if t.id == tenant_id)
    try:
        shift, _ = active_shift(tenant, now)
        shift_name, limit = shift.name, shift.lines
    except LookupError:  # ruled out by validation; fall back on what Redis says is in force
        shift_name, limit = use.shift or "", use.limit or 0
    by_state = counts["agents"]
    assert isinstance(by_state, Mapping)
    return TenantLive(
        tenant=tenant_id, shift=shift_name, lines_in_use=use.in_use, lines_limit=limit,
        waiting=int(counts["waiting"]), ringing=int(counts["ringing"]),
        agents=tuple((s, int(by_state.get(s, 0))) for s in AGENT_STATES),
        agents_reachable=int(counts["agents_reachable"]))


async def collect(*, config: HotlineConfig, pool: LinePool, acd: AcdQueue,
                  stasis: StasisLike, ami: AmiLike | None, lag: LoopLag,
                  journal: RecordJournal, outcomes: OutcomeCounter, now: dt.datetime,
                  redis_timeout_s: float = 2.0) -> MetricsSample:
    """Read every figure of one scrape; Redis trouble gives ``redis_up`` False, not an error."""
    tenant_ids = tuple(t.id for t in config.tenants)
    pending = asyncio.create_task(asyncio.to_thread(journal_count, journal),
                                  name="metrics-journal-count")
    try:
        async with asyncio.timeout(redis_timeout_s):
            live = tuple(await asyncio.gather(
                *(_tenant_live(config, t, pool, acd, now) for t in tenant_ids)))
        redis_up = True
    except (TimeoutError, OSError, RedisError) as e:
        live, redis_up = (), False
        log.warning("metrics: live state not read from Redis: %s", str(e) or type(e).__name__)
    summary = lag.summary()
    return MetricsSample(
        tenants=tenant_ids, live=live, outcomes=outcomes.snapshot(), redis_up=redis_up,
        ari_connected=stasis.connected.is_set(),
        ami_connected=bool(ami.connected) if ami is not None else False,
        loop_lag_p99_ms=float(summary["p99_ms"]), loop_lag_max_ms=float(summary["max_ms"]),
        call_sessions=len(stasis.sessions), journal_pending=await pending)


# ---- HTTP ------------------------------------------------------------------------------------
CollectFn = Callable[[web.Application], Awaitable[MetricsSample]]
COLLECT: web.AppKey[CollectFn] = web.AppKey("metrics_collect")


def is_local(request: web.Request) -> bool:
    """True when the peer is a loopback address and no proxy forwarded the request."""
    if any(h in request.headers for h in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:  # a unix socket or an unknown peer: not trusted
        return False


def _refuse_401(message: str) -> web.Response:
    return error_response("auth.required", message, 401, headers=CHALLENGE)


async def metrics_view(request: web.Request) -> web.Response:
    """``GET /metrics``: all series for loopback, the token's tenant for supervisors/admins."""
    app = request.app
    tenant: str | None = None
    if not is_local(request):
        token = bearer_token(request.headers.get("Authorization"))
        if token is None or USERS not in app:
            return _refuse_401("metrics from outside loopback need "
                               "Authorization: Bearer <token> of a supervisor or admin")
        user = await in_thread(app, app[USERS].authenticate, token,
                               now=dt.datetime.now(dt.UTC))
        if user is None:
            return _refuse_401("the token is not valid (unknown, expired or revoked)")
        if user.role not in SCRAPE_ROLES:
            return error_response("auth.forbidden", f"metrics need the role admin or "
                                  f"supervisor; {user.name} is {user.role}", 403)
        tenant = user.tenant
    sample = await app[COLLECT](app)
    if tenant is not None:
        sample = only_tenant(sample, tenant)
    return web.Response(body=render_metrics(sample).encode("utf-8"),
                        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


def add_metrics_route(app: web.Application, collect_fn: CollectFn) -> None:
    """Serve ``GET /metrics`` on ``app``; ``collect_fn(app)`` reads one sample per scrape."""
    app[COLLECT] = collect_fn
    app.router.add_get("/metrics", metrics_view)
