"""``GET /metrics``: the hotline's operational figures, exposed through ``prometheus-client``.

Parts, so each is tested on its own:

* ``sample_families(sample)`` -- pure: a ``MetricsSample`` (frozen dataclasses, read at one
  moment) to prometheus-client metric families. ``SampleCollector`` is the custom collector
  that yields them: one is made per scrape around the sample just read, so two scrapes at
  once never share mutable state.
* ``CallMetrics`` -- what finished calls add: outcomes per tenant and the answer, queue-wait
  and talk histograms, fed by ``RecordWriter(on_record=...)`` with each call record.
* ``collect(...)`` -- async: reads the line pools and the queue in Redis, the shift in force
  from the config, and the process's own state (ARI/AMI connection, call sessions, event-loop
  lag, call records waiting in the journal, the last config reload).
* ``metrics_view`` / ``add_metrics_route(app, collect_fn, calls)`` -- the aiohttp handler and
  the app's own ``CollectorRegistry`` (never the library's global one: several apps run in one
  test process): ``CallMetrics``, process and platform collectors.

Families (prefix ``hotline_``; the process collectors add ``process_*`` and ``python_info``)::

  hotline_pool_lines_in_use{tenant,shift}      gauge    lines held now (Redis, all instances)
  hotline_pool_lines_limit{tenant,shift}       gauge    lines of the shift in force
  hotline_queue_calls{tenant,state}            gauge    queued calls, state waiting|ringing
  hotline_agents{tenant,state}                 gauge    operators per state, all six states
  hotline_agents_reachable{tenant}             gauge    operators whose phone is reachable
  hotline_operators_min{tenant,shift}          gauge    operators the shift in force requires
                                                        logged in (min_operators; 0: none)
  hotline_shift_understaffed{tenant,shift}     gauge    1 while fewer operators are logged in
                                                        (any state but logged_out) than that
  hotline_calls_total{tenant,outcome}          counter  finished calls by outcome (this process)
  hotline_call_answer_seconds{tenant}          histogram  arrival -> answered by the hotline
  hotline_queue_wait_seconds{tenant}           histogram  queued -> bridged to an operator
  hotline_talk_seconds{tenant}                 histogram  bridged -> the operator's part ended
  hotline_redis_up                             gauge    1 when this scrape could read Redis
  hotline_ari_connected / hotline_ami_connected gauge   1 while this process's session is up
  hotline_event_loop_lag_p99_seconds / _max_seconds  gauge  over LoopLag's recent window
  hotline_call_sessions                        gauge    calls this process is serving
  hotline_journal_records_pending              gauge    call records not yet in the database
  hotline_journal_write_failures_total         counter  records the journal could not take
  hotline_call_records_held                    gauge    records only in memory (journal and
                                                        database both failed; retried)
  hotline_call_records_dropped_total           counter  records lost beyond the memory bound
  hotline_config_reload_failed                 gauge    1 when the last reload was refused
  hotline_build_info{version,python,asterisk}  gauge    always 1
  hotline_lines_degraded                       gauge    1 while this process admits calls on
                                                        its own line count (Redis unreachable)
  hotline_redis_outages_total                  counter  times this process lost Redis
  hotline_degraded_admissions_total            counter  calls admitted on the local count
  hotline_asterisk_restarts_total              counter  Asterisk found restarted on reconnect
  hotline_sip_scanner_requests_total           counter  SIP requests denied for a scanner's
                                                        User-Agent (source never refused)
  hotline_sip_account_probes_total             counter  failures for accounts that do not
                                                        exist (source never refused)
  hotline_sip_refusals_total                   counter  sources refused for wrong passwords
  hotline_sip_refusals_evicted_total           counter  refusals lifted early (list full)
  hotline_sip_sources_refused                  gauge    sources the SIP guard refuses now

Base units: the event-loop lag was ``hotline_event_loop_lag_p99_ms``/``_max_ms`` before it
became ``_seconds``; no alias is kept (no rule, dashboard or test outside this repository used
the old names, and an alias would double the series). Histograms observe only what a record
has: no ``answered_at``, no answer time; a caller who left the queue unbridged adds no queue
wait (``hotline_calls_total{outcome="abandoned"}`` counts them).

Pool, queue and agent figures are shared state (Redis): every app instance reports the same
values, so aggregate them with ``max``, not ``sum``. Outcomes, histograms, sessions,
connections, lag and the journal belong to the process: ``sum`` them across instances. Calls
refused before a tenant is known (``not_found``) count under the tenant ``-``, as their call
record does. When Redis does not answer within ``redis_timeout_s`` the scrape still answers,
with ``hotline_redis_up 0`` and no pool/queue/agent series (never stale numbers).

Access: ``callcenter.console.ops_access`` (loopback without proxy headers, or a supervisor or
admin bearer token). A token's scrape sees only its own tenant's tenant-labelled series
(the process-wide ones stay).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
import platform
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from callcenter.calls import OUTCOMES
from callcenter.config.model import HotlineConfig
from callcenter.console.ops_access import ops_access
from callcenter.lines.redis import LinePool
from callcenter.lines.shifts import Staffing, active_shift
from callcenter.queue.agent import AgentStatus, logged_in_count
from callcenter.queue.redis import AcdQueue
from callcenter.runtime.loop_lag import LoopLag
from callcenter.store.data import CallRecordData
from callcenter.store.journal import SUFFIX, RecordJournal
from callcenter.store.recorder import WriterStatus

log = logging.getLogger("callcenter.console.metrics")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # text/plain; version=0.0.4; charset=utf-8
AGENT_STATES: tuple[str, ...] = tuple(s.value for s in AgentStatus)
QUEUE_STATES = ("waiting", "ringing")
NO_TENANT = "-"  # the call record's tenant when the dialled number matched none

# Buckets (seconds) around what the hotline promises: the app answers within a second once a
# line is free; citizens wait for an operator seconds to minutes; a call lasts minutes.
ANSWER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
QUEUE_WAIT_BUCKETS = (1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TALK_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


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
    operators_min: int = 0  # the shift's min_operators


@dataclass(frozen=True)
class OutcomeCount:
    """Finished calls of one tenant with one outcome since the process started."""

    tenant: str
    outcome: str
    count: int


@dataclass(frozen=True)
class FaultCounts:
    """This process's own view of the faults it survived (issue 15)."""

    degraded: bool = False  # admitting on the local line count now
    redis_outages: int = 0
    degraded_admissions: int = 0
    asterisk_restarts: int = 0
    sip_scanner_requests: int = 0  # refused for a SIP scanner's User-Agent (the SIP guard)
    sip_sources_refused: int = 0  # sources the SIP guard refuses now
    sip_account_probes: int = 0  # failures for accounts that do not exist (never refuse)
    sip_refusals: int = 0  # sources refused for wrong passwords, since start
    sip_refusals_evicted: int = 0  # refusals lifted early to stay within max_refused


@dataclass(frozen=True)
class MetricsSample:
    """Everything one scrape shows of the live state, read at one moment."""

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
    config_reload_failed: bool = False
    asterisk: str = ""  # "Asterisk 22.x" once located; empty before
    records_not_journalled: int = 0  # the journal refused them (disk full, read-only ...)
    records_held: int = 0  # only in memory now: neither the journal nor the database took them
    records_dropped: int = 0  # lost beyond the memory bound (each logged at ERROR by id)
    faults: FaultCounts = field(default_factory=FaultCounts)


def only_tenant(sample: MetricsSample, tenant: str) -> MetricsSample:
    """The sample with tenant-labelled figures of ``tenant`` only (process-wide ones kept)."""
    return dataclasses.replace(
        sample,
        tenants=tuple(t for t in sample.tenants if t == tenant),
        live=tuple(t for t in sample.live if t.tenant == tenant),
        outcomes=tuple(o for o in sample.outcomes if o.tenant == tenant))


@functools.cache
def hotline_version() -> str:
    """The installed package's version (``unknown`` when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("hotline1022")
    except PackageNotFoundError:
        return "unknown"


# ---- families (pure) -------------------------------------------------------------------------
def _gauge(name: str, help_text: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, labels=list(labels))


def _outcome_rows(sample: MetricsSample) -> list[tuple[str, str, int]]:
    counted = {(o.tenant, o.outcome): o.count for o in sample.outcomes}
    keys = {(t, o) for t in sample.tenants for o in OUTCOMES} | set(counted)
    known = {o: i for i, o in enumerate(OUTCOMES)}
    tenant_order = {t: i for i, t in enumerate(sample.tenants)}
    ordered = sorted(keys, key=lambda k: (tenant_order.get(k[0], len(tenant_order)), k[0],
                                          known.get(k[1], len(known)), k[1]))
    return [(t, o, counted.get((t, o), 0)) for t, o in ordered]


def sample_families(sample: MetricsSample) -> list[Metric]:
    """The metric families of one sample, in a fixed order."""
    live = sample.live
    in_use = _gauge("hotline_pool_lines_in_use",
                    "Lines of the tenant's shift pool held by calls now (all instances).",
                    ("tenant", "shift"))
    limit = _gauge("hotline_pool_lines_limit",
                   "Lines of the tenant's shift in force (the pool's size).", ("tenant", "shift"))
    queue = _gauge("hotline_queue_calls",
                   "Calls in the operators' queue: waiting, or ringing an operator.",
                   ("tenant", "state"))
    agents = _gauge("hotline_agents", "Operators by state.", ("tenant", "state"))
    reachable = _gauge("hotline_agents_reachable",
                       "Operators whose softphone is registered and answers qualify.",
                       ("tenant",))
    minimum = _gauge("hotline_operators_min",
                     "Operators the tenant's shift in force requires logged in (0: no minimum).",
                     ("tenant", "shift"))
    understaffed = _gauge("hotline_shift_understaffed",
                          "1 while fewer operators are logged in than the shift's minimum.",
                          ("tenant", "shift"))
    for t in live:
        in_use.add_metric([t.tenant, t.shift], t.lines_in_use)
        limit.add_metric([t.tenant, t.shift], t.lines_limit)
        for s in QUEUE_STATES:
            queue.add_metric([t.tenant, s], t.waiting if s == "waiting" else t.ringing)
        by_state = dict(t.agents)
        for s in AGENT_STATES:
            agents.add_metric([t.tenant, s], by_state.get(s, 0))
        reachable.add_metric([t.tenant], t.agents_reachable)
        staffed = Staffing(t.shift, logged_in_count(by_state), t.operators_min)
        minimum.add_metric([t.tenant, t.shift], staffed.minimum)
        understaffed.add_metric([t.tenant, t.shift], float(staffed.understaffed))
    calls = CounterMetricFamily("hotline_calls",
                                "Finished calls by outcome since this process started.",
                                labels=["tenant", "outcome"])
    for tenant, outcome, n in _outcome_rows(sample):
        calls.add_metric([tenant, outcome], n)
    not_journalled = CounterMetricFamily(
        "hotline_journal_write_failures",
        "Call records the journal could not take (disk full, read-only, unwritable) since "
        "this process started; each went to the database directly or was held in memory.",
        value=sample.records_not_journalled)
    dropped = CounterMetricFamily(
        "hotline_call_records_dropped",
        "Call records lost because the journal and the database failed and the memory bound "
        "was reached, since this process started.", value=sample.records_dropped)
    single: list[Metric | tuple[str, str, float]] = [
        ("hotline_redis_up", "1 when this scrape read the live state from Redis.",
         sample.redis_up),
        ("hotline_ari_connected", "1 while this process's ARI websocket is connected.",
         sample.ari_connected),
        ("hotline_ami_connected", "1 while this process's AMI session is logged in.",
         sample.ami_connected),
        ("hotline_event_loop_lag_p99_seconds",
         "Event-loop lag, 99th percentile over the recent window, seconds.",
         sample.loop_lag_p99_ms / 1000),
        ("hotline_event_loop_lag_max_seconds",
         "Event-loop lag, maximum over the recent window, seconds.",
         sample.loop_lag_max_ms / 1000),
        ("hotline_call_sessions", "Calls this process is serving now.", sample.call_sessions),
        ("hotline_journal_records_pending",
         "Call records in the journal, not yet written to the database.",
         sample.journal_pending),
        not_journalled,
        ("hotline_call_records_held",
         "Call records held only in memory (the journal and the database both failed), "
         "retried until they land.", sample.records_held),
        dropped,
        ("hotline_config_reload_failed",
         "1 when the last configuration reload was refused (the previous one stays in force).",
         sample.config_reload_failed),
    ]
    f = sample.faults
    single.append(("hotline_lines_degraded", "1 while this process admits calls on its own "
                   "line count because Redis is unreachable.", f.degraded))
    single.append(("hotline_sip_sources_refused", "SIP source addresses this process's SIP "
                   "guard refuses now (wrong passwords).",
                   f.sip_sources_refused))
    counters = [
        ("hotline_redis_outages", "Times this process lost Redis (and went DEGRADED).",
         f.redis_outages),
        ("hotline_degraded_admissions", "Calls admitted on this process's own line count "
         "while Redis was unreachable.", f.degraded_admissions),
        ("hotline_asterisk_restarts", "Times this process found Asterisk restarted when its "
         "ARI session came back.", f.asterisk_restarts),
        ("hotline_sip_scanner_requests", "SIP requests denied for carrying a known SIP "
         "scanner's User-Agent (their source is never refused for it: it may be forged).",
         f.sip_scanner_requests),
        ("hotline_sip_account_probes", "SIP authentication failures for accounts that do "
         "not exist (their source is never refused for them: it may be forged).",
         f.sip_account_probes),
        ("hotline_sip_refusals", "SIP sources refused for repeated wrong passwords.",
         f.sip_refusals),
        ("hotline_sip_refusals_evicted", "SIP refusals lifted before their end because the "
         "refused list was full (sip_guard.max_refused).", f.sip_refusals_evicted),
    ]
    out: list[Metric] = [in_use, limit, queue, agents, reachable, minimum, understaffed, calls]
    for item in single:
        if isinstance(item, Metric):
            out.append(item)
            continue
        name, help_text, value = item
        out.append(GaugeMetricFamily(name, help_text, value=float(value)))
    for name, help_text, value in counters:
        out.append(CounterMetricFamily(name, help_text, value=float(value)))
    build = _gauge("hotline_build_info", "Versions of this process: the hotline, Python, "
                   "and the Asterisk it drives (empty until located).",
                   ("version", "python", "asterisk"))
    build.add_metric([hotline_version(), platform.python_version(), sample.asterisk], 1)
    out.append(build)
    return out


class SampleCollector:
    """A prometheus-client collector over one sample read at scrape time."""

    def __init__(self, sample: MetricsSample):
        self.sample = sample

    def collect(self) -> Iterable[Metric]:
        """The sample's families."""
        return sample_families(self.sample)


class ScrapeView:
    """What one scrape exposes: collectors in order, tenant-labelled series of one tenant only
    when scoped (series without a tenant label are process-wide and stay)."""

    def __init__(self, collectors: Iterable[Collector], tenant: str | None = None):
        self.collectors = tuple(collectors)
        self.tenant = tenant

    def collect(self) -> Iterator[Metric]:
        """Every family of every collector, filtered to the scope."""
        for collector in self.collectors:
            for metric in collector.collect():
                if self.tenant is None:
                    yield metric
                    continue
                kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                kept.samples = [s for s in metric.samples
                                if s.labels.get("tenant", self.tenant) == self.tenant]
                yield kept


def render_metrics(sample: MetricsSample, registry: Collector | None = None,
                   tenant: str | None = None) -> str:
    """The exposition text (format 0.0.4) of a sample, then ``registry``'s families."""
    collectors: list[Collector] = [SampleCollector(sample)]
    if registry is not None:
        collectors.append(registry)
    return generate_latest(ScrapeView(collectors, tenant)).decode("utf-8")


# ---- finished calls --------------------------------------------------------------------------
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


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


class CallMetrics:
    """Outcomes and timing histograms of finished calls; a collector for the app's registry."""

    def __init__(self) -> None:
        self.outcomes = OutcomeCounter()
        # registry=None: these belong to this object, which the app's registry collects.
        self.answer = Histogram(
            "hotline_call_answer_seconds",
            "Time from the call's arrival until the hotline answered it.",
            ("tenant",), buckets=ANSWER_BUCKETS, registry=None)
        self.queue_wait = Histogram(
            "hotline_queue_wait_seconds",
            "Time from entering the operators' queue until bridged to an operator.",
            ("tenant",), buckets=QUEUE_WAIT_BUCKETS, registry=None)
        self.talk = Histogram(
            "hotline_talk_seconds",
            "Time the caller talked with the operator (bridged until the talk ended).",
            ("tenant",), buckets=TALK_BUCKETS, registry=None)

    def record(self, rec: CallRecordData) -> None:
        """Count one finished call and observe the times its record has."""
        self.outcomes.count(rec.tenant, rec.outcome)
        for histogram, value in (
                (self.answer, _seconds(rec.arrived_at, rec.answered_at)),
                (self.queue_wait, _seconds(rec.queued_at, rec.bridged_at)),
                (self.talk, rec.talk_s)):
            if value is not None:
                histogram.labels(tenant=rec.tenant).observe(value)

    def collect(self) -> Iterator[Metric]:
        """The three histograms, without the ``_created`` series (noise in format 0.0.4)."""
        for histogram in (self.answer, self.queue_wait, self.talk):
            for metric in histogram.collect():
                metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
                yield metric


def make_registry(calls: CallMetrics | None = None) -> CollectorRegistry:
    """The app's own registry: finished calls' figures, process and platform collectors."""
    registry = CollectorRegistry()
    if calls is not None:
        registry.register(calls)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


# ---- collecting ------------------------------------------------------------------------------
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
    tenant = config.require_tenant(tenant_id)
    try:
        shift, _ = active_shift(tenant, now)
        shift_name, limit, minimum = shift.name, shift.lines, shift.min_operators
    except LookupError:  # ruled out by validation; fall back on what Redis says is in force
        shift_name, limit, minimum = use.shift or "", use.limit or 0, 0
    by_state = counts["agents"]
    assert isinstance(by_state, Mapping)
    return TenantLive(
        tenant=tenant_id, shift=shift_name, lines_in_use=use.in_use, lines_limit=limit,
        waiting=int(counts["waiting"]), ringing=int(counts["ringing"]),
        agents=tuple((s, int(by_state.get(s, 0))) for s in AGENT_STATES),
        agents_reachable=int(counts["agents_reachable"]), operators_min=minimum)


async def collect(*, config: HotlineConfig, pool: LinePool, acd: AcdQueue,
                  stasis: StasisLike, ami: AmiLike | None, lag: LoopLag,
                  journal: RecordJournal, outcomes: OutcomeCounter, now: dt.datetime,
                  redis_timeout_s: float = 2.0, config_error: str | None = None,
                  asterisk: str = "", writer: WriterStatus | None = None,
                  faults: FaultCounts | None = None) -> MetricsSample:
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
        call_sessions=len(stasis.sessions), journal_pending=await pending,
        config_reload_failed=config_error is not None, asterisk=asterisk,
        records_not_journalled=writer.not_journalled if writer is not None else 0,
        records_held=writer.held if writer is not None else 0,
        records_dropped=writer.dropped if writer is not None else 0,
        faults=faults or FaultCounts())


# ---- HTTP ------------------------------------------------------------------------------------
CollectFn = Callable[[web.Application], Awaitable[MetricsSample]]
COLLECT: web.AppKey[CollectFn] = web.AppKey("metrics_collect")
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


async def metrics_view(request: web.Request) -> web.Response:
    """``GET /metrics``: all series for loopback, the token's tenant for supervisors/admins."""
    app = request.app
    access = await ops_access(request, "metrics")
    if access.refusal is not None:
        return access.refusal
    sample = await app[COLLECT](app)
    if access.tenant is not None:
        sample = only_tenant(sample, access.tenant)
    # Synchronous from here: the process collector reads /proc (microseconds), nothing waits.
    text = render_metrics(sample, app[REGISTRY], access.tenant)
    return web.Response(body=text.encode("utf-8"),
                        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


def add_metrics_route(app: web.Application, collect_fn: CollectFn,
                      calls: CallMetrics | None = None) -> None:
    """Serve ``GET /metrics`` on ``app``: ``collect_fn(app)`` reads one sample per scrape;
    ``calls`` (fed by the call records) and the process collectors join the app's registry."""
    app[COLLECT] = collect_fn
    app[REGISTRY] = make_registry(calls)
    app.router.add_get("/metrics", metrics_view)
