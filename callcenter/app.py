"""The composition root: builds every resource of the hotline service with aiohttp cleanup_ctx.

No module-level singletons: everything hangs off the aiohttp Application under typed AppKeys.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.ari_app.client import AriClient
from callcenter.ari_app.service import STASIS, StasisService
from callcenter.callbacks.store import CallbackStore
from callcenter.calls import CallState
from callcenter.clock import utcnow
from callcenter.config.file import load_config
from callcenter.config.live import LiveConfig, summary
from callcenter.config.model import HotlineConfig
from callcenter.config.secrets import Secrets, load_secrets
from callcenter.config.settings import Settings
from callcenter.config.tls import load_pair, server_ssl_context
from callcenter.console.auth import guarded
from callcenter.console.health import ReadinessParts, add_health_routes
from callcenter.console.metrics import (
    CallMetrics,
    FaultCounts,
    MetricsSample,
    add_metrics_route,
    collect,
)
from callcenter.console.ops_access import OPS_ROLES
from callcenter.console.setup import setup_console
from callcenter.faq.store import FaqStore
from callcenter.intake.webform import add_webform_routes, load_secret
from callcenter.ivr.lookup import TicketLookup
from callcenter.ivr.prompt_library import PromptLibrary
from callcenter.ivr.runtime import IvrRuntime
from callcenter.lines.fallback import REDIS_DOWN, ResilientPool
from callcenter.lines.offers import OfferSlots
from callcenter.lines.redis import LinePool
from callcenter.lines.shifts import active_shift
from callcenter.ops.systemd import systemd_ctx, systemd_ready
from callcenter.pbx.install import ProvisionError, installed_asterisk
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.render import render, write_refused_sources
from callcenter.phones.ami import AmiError, AmiWatcher
from callcenter.phones.guard import Apply, AuthGuard, guard_policy
from callcenter.phones.requalify import (
    SETTLE_S,
    ReachabilityNews,
    RequalifyLimiter,
    news_of,
    reassert_reachable,
)
from callcenter.queue import agent as ag
from callcenter.queue.driver import QueueDriver
from callcenter.queue.features import handle_feature
from callcenter.queue.redis import ACD, AcdQueue
from callcenter.redis_clients import RedisTarget, async_client, blocking_pool
from callcenter.runtime.loop_lag import LoopLag
from callcenter.runtime.memory import heap_trim_job
from callcenter.sms.dlr import add_routes as add_sms_routes
from callcenter.sms.mo import add_routes as add_sms_mo_routes
from callcenter.sms.service import dlr_base_url, sms_context
from callcenter.store.database import Database
from callcenter.store.journal import RecordJournal
from callcenter.store.migrate import upgrade_head
from callcenter.store.recorder import RecordWriter
from callcenter.store.records import CallRecordStore
from callcenter.tickets.files import DOCUMENT_MAX_BYTES
from callcenter.tickets.jobs import deadline_job
from callcenter.tickets.replies import reply_handler
from callcenter.tickets.rules import Actor
from callcenter.tickets.service import TicketService
from callcenter.transfers.ari import CallTickets

log = logging.getLogger("callcenter.app")

SETTINGS = web.AppKey("settings", Settings)
CONFIG = web.AppKey("config", LiveConfig)
REDIS_URL = web.AppKey("redis_url", str)
REDIS = web.AppKey("redis", aioredis.Redis)
POOL = web.AppKey("pool", ResilientPool)
WRITER = web.AppKey("writer", RecordWriter)
LAYOUT = web.AppKey("layout", PbxLayout)
DATABASE = web.AppKey("database", Database)
IVR = web.AppKey("ivr", IvrRuntime)
TICKETS = web.AppKey("tickets", TicketService)
SECRETS = web.AppKey("secrets", Secrets)
TASKS = web.AppKey("tasks", list)
LAG = web.AppKey("loop_lag", LoopLag)
DRIVER = web.AppKey("acd_driver", QueueDriver)
AMI = web.AppKey("ami", AmiWatcher)
SIP_GUARD = web.AppKey("sip_guard", AuthGuard)
OUTCOMES = web.AppKey("outcomes", CallMetrics)
# Who links a call back's record to its request's ticket (the ticket's history names it).
DIALBACK_ACTOR = Actor("dialback", "system")
METRICS_POOL = web.AppKey("metrics_pool", LinePool)
MAIL_WAKE: web.AppKey[Callable[[], None]] = web.AppKey("mail_wake")  # dispatcher.wake


def _owned(app: web.Application, coro: Coroutine[Any, Any, None],
           name: str) -> asyncio.Task[None]:
    """Start a named background task owned by the app (cancelled on cleanup)."""
    task = asyncio.create_task(coro, name=name)

    def done(t: asyncio.Task[None]) -> None:
        if t in app[TASKS]:
            app[TASKS].remove(t)  # finished tasks (e.g. one reload per SIGHUP) do not pile up
        if not t.cancelled() and t.exception() is not None:
            log.error("background task %s died: %r", name, t.exception())

    task.add_done_callback(done)
    app[TASKS].append(task)
    return task


async def _tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    app[TASKS] = []
    app[LAG] = LoopLag()
    _owned(app, app[LAG].run(), "loop-lag")
    _owned(app, heap_trim_job(), "heap-trim")  # RSS flat over long runs (runtime/memory.py)
    yield
    for task in app[TASKS]:
        task.cancel()
    await asyncio.gather(*app[TASKS], return_exceptions=True)


# Calls share their state in Redis after every event. Under load (hundreds of calls while the
# CPU is saturated) an unbounded burst of writes made redis-py open connection after
# connection and fail at its default cap of 100 (MaxConnectionsError: state writes lost); a
# bounded pool that waits for a free connection keeps them all. driver_info=None: no CLIENT
# SETINFO, so no connection looks up redis-py's version on the event loop (bench/ivr_capacity).
REDIS_CONNECTIONS = 32
# Opened at start and kept: the shared pool opens a connection whenever more requests are in
# flight than ever before, so an app that only grew its pool under a burst showed its fds
# creeping up through a long run (soak, P9: 24 -> 26). Eight cover the soak's 5 calls/s.
REDIS_WARM_CONNECTIONS = 8
REDIS_WAIT_S = 10
REDIS_CONNECT_S = 2.0  # a connection not made by then: Redis counts as unreachable
REDIS_POOL_TIMEOUT_S = 2.0  # a line pool script not answered by then: likewise


async def warm_up(pool: aioredis.ConnectionPool, count: int) -> None:
    """Open ``count`` connections of ``pool`` now and give them back to it, connected."""
    taken: list[Any] = []
    try:
        for _ in range(count):
            taken.append(await pool.get_connection())  # type: ignore[no-untyped-call]
        for connection in taken:
            await connection.connect()  # a no-op when the pool connected it already
    finally:
        for connection in taken:
            await pool.release(connection)


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    # REDIS_URL, or the primary the sentinels name (REDIS_SENTINELS; redis_clients.py).
    target = RedisTarget.of(app[SETTINGS], app[REDIS_URL])
    shared = blocking_pool(target, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT_S,
                           driver_info=None, socket_connect_timeout=REDIS_CONNECT_S)
    client = aioredis.Redis(connection_pool=shared)
    app[REDIS] = client
    # The pool has its own single, already open connection: admissions reach Redis in the
    # order calls arrived (first come, first served within a burst) and no caller waits for
    # a new connection's handshake. Each script takes well under a millisecond; a Redis that
    # stopped answering is given up on after REDIS_POOL_TIMEOUT_S (the call is then admitted
    # on the local count, lines/fallback.py).
    # (The scripts' timeout is the pool's, not the client's socket_timeout: LinePool.)
    pool_client = async_client(target, single_connection_client=True,
                               socket_connect_timeout=REDIS_CONNECT_S)
    cfg = app[CONFIG]()
    shared_pool = LinePool(pool_client, instance=f"{cfg.service.node}-{uuid.uuid4().hex[:8]}",
                           node=cfg.service.node, timeout_s=REDIS_POOL_TIMEOUT_S)
    pool = app[POOL] = ResilientPool(shared_pool)
    # The operators' queue shares the pool's instance name: one id per app process.
    app[ACD] = AcdQueue(client, pool.instance, cfg.service.node)
    # /metrics reads pools over the shared client, never the admissions' single connection.
    app[METRICS_POOL] = LinePool(client, pool.instance, cfg.service.node)
    try:
        await warm_up(shared, REDIS_WARM_CONNECTIONS)
        await client.ping()
        await shared_pool.heartbeat()
        await apply_queue_config(app[ACD], cfg)
    except REDIS_DOWN as e:  # answer calls all the same; the heartbeat finds Redis again
        pool.lost(e)
    yield
    await pool_client.aclose()
    await client.aclose()
    await shared.disconnect()  # a pool given to Redis() is not closed by it


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Close the shared connection pool once every store is done with it."""
    yield
    app[DATABASE].close()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    store = CallRecordStore(app[DATABASE])
    try:
        await asyncio.to_thread(upgrade_head, s.database_url)
        prepare = None
    except Exception as e:  # calls must still be answered: records wait in the journal
        log.error("database unavailable at start (%s): call records go to the journal %s "
                  "until it is back", str(e).splitlines()[0][:200], s.journal_dir)
        prepare = functools.partial(upgrade_head, s.database_url)
    writer = RecordWriter(RecordJournal(s.journal_dir), store, prepare,
                          on_record=app[OUTCOMES].record)
    app[WRITER] = writer
    _owned(app, writer.run(), "record-writer")
    yield
    await writer.close()  # a last try; records only in memory are logged by id if left
    store.close()


async def _tickets_ctx(app: web.Application) -> AsyncIterator[None]:
    """Petition tickets: the service (HTTP API, CLI share its rules) and the deadline job."""
    from callcenter.mail.store import MailOutbox

    s = app[SETTINGS]
    # Chase and escalation e-mails go to the mail outbox; without a ``mail:`` section they
    # wait there (``callcenter mail list``) until one is configured.
    mail = MailOutbox(app[DATABASE])
    service = TicketService(s.database_url, app[CONFIG], s.state_dir / "ticket-files",
                            mail=mail)
    app[TICKETS] = service
    job = _owned(app, deadline_job(service), "ticket-deadlines")
    yield
    job.cancel()  # before the engine closes (_tasks_ctx's own cleanup runs last)
    await asyncio.gather(job, return_exceptions=True)
    service.close()
    mail.close()


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Recording retention: the daily job deleting recordings past their keep_days."""
    from callcenter.recordings.audit import RecordingStore
    from callcenter.recordings.purge import JOB_ACTOR, purge_recordings, retention_job

    store = RecordingStore(app[DATABASE])
    job = _owned(app, retention_job(lambda: purge_recordings(
        store, app[LAYOUT].recordings(), app[CONFIG](), utcnow(), actor=JOB_ACTOR)),
        "recording-retention")
    yield
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)
    store.close()


async def _mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """Mail: the outbox's dispatcher and the mailed reports' schedule (callcenter/mail/).
    Without a ``mail:`` section (or with ``enabled: false``) nothing is queued or sent."""
    from callcenter.mail.dispatcher import MailDispatcher
    from callcenter.mail.reports import ReportMailer, report_job
    from callcenter.mail.sender import server_of
    from callcenter.mail.store import MailOutbox

    outbox = MailOutbox(app[DATABASE])
    dispatcher = MailDispatcher(outbox, lambda: server_of(app[CONFIG]().mail))
    mailer = ReportMailer(outbox, lambda: app[TICKETS].reports, app[CONFIG])
    app[MAIL_WAKE] = dispatcher.wake
    tasks = [_owned(app, dispatcher.run(), "mail-dispatcher"),
             _owned(app, report_job(mailer, dispatcher.wake), "report-mails")]
    yield
    for task in tasks:  # before the engine closes (_tasks_ctx's own cleanup runs last)
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    outbox.close()


async def _mail_in_ctx(app: web.Application) -> AsyncIterator[None]:
    """E-mail in (callcenter/mailin/): the SMTP intake the province's mail server relays the
    tenants' addresses to. Without a ``mail_in:`` section nothing listens; bind and port are
    read at start (a reload changes the addresses and limits, not the socket)."""
    cfg = app[CONFIG]().mail_in
    if cfg is None:
        yield
        return
    from callcenter.mailin.intake import IntakeHandler, MailIntake, start_intake

    def own_sender() -> str | None:
        mail = app[CONFIG]().mail
        return mail.sender if mail is not None else None

    intake = MailIntake(app[TICKETS], lambda: app[CONFIG]().mail_in, own_sender)
    server = await start_intake(IntakeHandler(intake, lambda: app[MAIL_WAKE]()), cfg)
    log.info("mail in: listening on %s:%d for %d address(es)", cfg.bind, cfg.port,
             len(cfg.addresses))
    yield
    server.close()  # stops listening; a session still open is cut after a short wait
    try:
        await asyncio.wait_for(server.wait_closed(), 5)
    except TimeoutError:
        log.warning("mail in: sessions still open at shutdown")


async def _config_ctx(app: web.Application) -> AsyncIterator[None]:
    live = app[CONFIG]
    loop = asyncio.get_running_loop()

    async def apply(old: HotlineConfig, new: HotlineConfig) -> None:
        await _apply_to_pbx(app, new)
        await apply_queue_config(app[ACD], new)
        # New menus or prompt texts: new calls use them; build their sounds now.
        await app[IVR].load([t.id for t in new.tenants], "config reloaded")
        app[IVR].want_build()

    unsubscribe = live.subscribe(apply)
    if app[SETTINGS].watch_config:
        _owned(app, live.watch(), "config-watch")
    loop.add_signal_handler(signal.SIGHUP, lambda: _owned(app, _reload(live, "SIGHUP"), "reload"))
    yield
    loop.remove_signal_handler(signal.SIGHUP)
    unsubscribe()


async def apply_queue_config(acd_queue: AcdQueue, config: HotlineConfig) -> None:
    """Queue policies and the operator list of every tenant, from the config in force."""
    for t in config.tenants:
        acd_queue.set_policy(t.id, t.operators.queue)
        changed = await acd_queue.sync_operators(t.id, t.operators.operators)
        if changed:
            log.info("queue %s: %d operator(s) added, renamed or removed", t.id, changed)


async def _reload(live: LiveConfig, why: str) -> None:
    await live.reload(why)


async def _apply_to_pbx(app: web.Application, config: HotlineConfig) -> None:
    """Numbers, trunk and prompts live in Asterisk's files: re-render and reload what changed."""
    s = app[SETTINGS]
    layout = app[LAYOUT]
    # banned_sources=None: the refused-sources file stays as the SIP guard last wrote it.
    changed = await asyncio.to_thread(render, config, layout, app[SECRETS],
                                      prompt_cache=s.prompt_cache,
                                      sounds_override=s.sounds_override,
                                      bench_plain_number=s.bench_plain_number,
                                      banned_sources=None, state_dir=s.state_dir)
    if SIP_GUARD in app:
        app[SIP_GUARD].configure(config.trunk.trusted_networks, config.sip_guard.never_refuse,
                                 guard_policy(config.sip_guard))
    ari = app[STASIS].ari
    if "extensions.conf" in changed:
        await ari.reload_module("pbx_config.so")
    if "pjsip.conf" in changed:
        await ari.reload_module("res_pjsip.so")
    if changed:
        log.info("PBX configuration re-rendered: %s", ", ".join(changed))


async def _ari_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    cfg = app[CONFIG]()
    secrets = app[SECRETS] = load_secrets(s.state_dir, s.secrets_file)
    # Found, never built nor run here: provisioning is `callcenter run`'s (or the installer's).
    install = await asyncio.to_thread(installed_asterisk)
    if install is None:
        raise ProvisionError("no Asterisk on PATH and no ready rootfs (HOTLINE_ROOTFS, else "
                             "the cache's rootfs/): start the hotline with `callcenter run`, "
                             "or build it as root with `callcenter pbx render`")
    app[LAYOUT] = PbxLayout.for_instance(install, s.instance, s.state_dir)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=10),
    )
    apps = cfg.service.stasis_apps
    if s.app_slot > len(apps):
        raise ValueError(f"HOTLINE_APP_SLOT={s.app_slot} but service.app_instances is "
                         f"{len(apps)}: slots go from 1 to {len(apps)}")
    app_name = apps[s.app_slot - 1]
    ari = AriClient(f"http://{cfg.service.ari_bind}:{cfg.service.ari_port}",
                    secrets.ari_user, secrets.ari_password, app_name, session)
    library = PromptLibrary(app[LAYOUT].host("sounds"), app[LAYOUT].pbx("sounds"),
                            s.sounds_override)
    runtime = app[IVR] = IvrRuntime(FaqStore(app[DATABASE]), library, app[CONFIG])
    await asyncio.to_thread(library.scan_recorded, [t.id for t in cfg.tenants])
    ivr_tasks = [_owned(app, runtime.watch(app[REDIS]), "faq-watch"),
                 _owned(app, runtime.builder(), "prompt-builder")]
    runtime.want_build()
    callbacks = CallbackStore(app[DATABASE])
    lookup = TicketLookup(app[TICKETS])  # status by phone (IVR status_lookup nodes)

    async def save_callback(state: CallState, source: str) -> None:
        assert state.tenant_id is not None
        await asyncio.to_thread(functools.partial(
            callbacks.request, state.tenant_id,
            f"{state.node}:{state.call_id}",  # the call record id
            state.caller, utcnow(), source=source))

    async def link_dialback(code: str, record_id: str) -> None:
        # A call back of a request linked to a ticket goes on the ticket's history.
        await asyncio.to_thread(app[TICKETS].link_call, code, record_id, DIALBACK_ACTOR)

    async def features(channel: dict[str, Any], args: list[str]) -> None:
        await handle_feature(ari, app[ACD], app[CONFIG](), library, channel, args)

    # The calls this instance owns: the Stasis service adds and removes them, the queue driver
    # reads them; both get the same map, and each call's task can kick the driver.
    sessions: dict[str, CallSession] = {}
    driver = app[DRIVER] = QueueDriver(app[ACD], app[REDIS], sessions, app[CONFIG])
    warm = CallTickets(app[TICKETS])  # warm transfers
    deps = CallDeps(ari=ari, pool=app[POOL], redis=app[REDIS],
                    sounds_dir=app[LAYOUT].pbx("sounds"), write_record=app[WRITER].write,
                    prompts=library, acd=app[ACD], save_callback=save_callback,
                    offers=OfferSlots(app[REDIS]), write_dialback=app[WRITER].write_data,
                    link_dialback=link_dialback,
                    kick=driver.kick, offered=driver.deliver, lookup=lookup,
                    call_ticket=warm, call_transferred=warm.transferred)
    service = StasisService(ari, deps, app[CONFIG], runtime.context, features,
                            sessions=sessions, peers=tuple(a for a in apps if a != app_name))
    app[STASIS] = service
    driver.start()
    service.start()
    beat = _owned(app, _heartbeat(app), "pool-heartbeat")
    yield
    beat.cancel()
    for task in ivr_tasks:  # before Redis closes under the FAQ watcher's subscription
        task.cancel()
    await asyncio.gather(*ivr_tasks, return_exceptions=True)
    await service.close()
    await driver.close()
    await session.close()
    callbacks.close()
    lookup.close()


class _ModuleReloader(Protocol):
    async def reload_module(self, module: str) -> None: ...


def refused_sources_applier(layout: PbxLayout, ari: _ModuleReloader) -> Apply:
    """The SIP guard's ``apply``: rewrite only pjsip_refused.conf and reload res_pjsip.so when
    it changed; no full render (no prompts, no ownership walk, no dialplan reload)."""
    async def apply_bans(sources: tuple[str, ...]) -> None:
        if await asyncio.to_thread(write_refused_sources, layout, sources):
            await ari.reload_module("res_pjsip.so")
    return apply_bans


async def _ami_ctx(app: web.Application) -> AsyncIterator[None]:
    """AMI: operators' phones reachable or not (never offered a call when not), and sources
    refused after repeated SIP authentication failures."""
    cfg = app[CONFIG]()
    secrets = app[SECRETS]

    async def on_reachability(endpoint: str, reachable: bool) -> None:
        tenant = next((t.id for t in app[CONFIG]().tenants
                       for op in t.operators.operators if op.extension == endpoint), None)
        if tenant is None:
            return  # the trunk, or an endpoint no longer configured
        event = ag.Reachable() if reachable else ag.Unreachable()
        try:
            await app[ACD].agent_event(tenant, endpoint, event)
        except Exception as e:  # e.g. configured a moment ago, not yet synced
            log.warning("operator %s reachability not recorded: %r", endpoint, e)
        if reachable:
            app[DRIVER].kick(tenant)

    apply_bans = refused_sources_applier(app[LAYOUT], app[STASIS].ari)
    try:  # refusals of an earlier app process are not ours to keep (their clocks are gone)
        await apply_bans(())
    except Exception as e:
        log.warning("refused SIP sources of an earlier run not cleared: %r", e)
    guard = app[SIP_GUARD] = AuthGuard(cfg.trunk.trusted_networks, apply_bans,
                                       never_refuse=cfg.sip_guard.never_refuse,
                                       policy=guard_policy(cfg.sip_guard))
    watcher = app[AMI] = AmiWatcher(cfg.service.ami_bind, cfg.service.ami_port,
                                    secrets.ami_user, secrets.ami_password,
                                    on_reachability=on_reachability,
                                    on_auth_failure=guard.record)
    tasks = [_owned(app, watcher.run(), "ami"), _owned(app, guard.run(), "sip-guard")]
    limiter = RequalifyLimiter()

    async def qualify(news: ReachabilityNews) -> None:
        endpoint = news.extension
        try:
            await watcher.qualify(endpoint)
        except AmiError as e:  # AMI away: the periodic qualify still comes
            log.info("PJSIP/%s not qualified on another node's news: %s", endpoint, e)
            return
        if news.reachable:
            return
        await asyncio.sleep(SETTLE_S)
        if reassert_reachable(news, watcher.reachable.get(endpoint)):
            log.info("PJSIP/%s still reachable from this node: reachable again", endpoint)
            await on_reachability(endpoint, True)

    def on_agent_event(event: Mapping[str, Any]) -> None:
        """Another node saw an operator's phone go (un)reachable: qualify it here now rather
        than within qualify_frequency (requalify.py; nothing when this node agrees)."""
        news = news_of(event)
        if news is None or not watcher.connected:
            return
        if limiter.decide(news, watcher.reachable.get(news.extension),
                          asyncio.get_running_loop().time()):
            log.info("PJSIP/%s %s elsewhere: qualifying it here now", news.extension,
                     "reachable" if news.reachable else "unreachable")
            _owned(app, qualify(news), f"qualify:{news.extension}")

    app[DRIVER].on_agent_event = on_agent_event
    yield
    app[DRIVER].on_agent_event = None
    for task in tasks:
        task.cancel()
    await watcher.close()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _heartbeat(app: web.Application) -> None:
    """Every second: keep our lines alive, publish the shift in force; after a lapse of our
    heartbeat (Redis away, or restarted empty) write our calls' lines back. While Redis is
    unreachable (DEGRADED), look for it; once back, rebuild the live state (_redis_back)."""
    pool, service, config = app[POOL], app[STASIS], app[CONFIG]
    while True:
        try:
            if pool.degraded:
                if await pool.recover() is not None:
                    await _redis_back(app)
            elif await pool.heartbeat():
                await pool.write_back(service.held_lines)
            # Sentinel promoted another primary: what the old one acknowledged but had not yet
            # copied to its replica is gone (a line taken or freed, a queue place). Rebuild as
            # after an outage: our lines written back, stale ones dropped (reconcile).
            if not pool.degraded and pool.primary_switched():
                await pool.write_back(service.held_lines)
                await _redis_back(app)
            if not pool.degraded:
                now = utcnow()
                for t in config().tenants:
                    shift, _ = active_shift(t, now)
                    await pool.set_in_force(t.id, shift.name, shift.lines)
                await service.announce()
                await service.take_over_peers()
                await service.close_lost_nodes()
        except REDIS_DOWN as e:  # calls are admitted on the local count from now on
            pool.lost(e)
        except Exception as e:  # the next beat retries well within the TTL
            log.warning("pool heartbeat failed: %r", e)
        await asyncio.sleep(1.0)


async def _redis_back(app: web.Application) -> None:
    """After an outage (Redis may have restarted empty): the operators and queue policies from
    the config, our calls' state, lines and queue places from our own view and Asterisk's
    channels, and the phones' reachability from AMI."""
    await apply_queue_config(app[ACD], app[CONFIG]())
    await app[STASIS].redis_back()
    if AMI in app:
        await app[AMI].replay()
    for t in app[CONFIG]().tenants:
        app[DRIVER].kick(t.id)


# -- HTTP --------------------------------------------------------------------------------
async def _metrics_sample(app: web.Application) -> MetricsSample:
    pool = app[POOL]
    return await collect(config=app[CONFIG](), pool=app[METRICS_POOL], acd=app[ACD],
                         stasis=app[STASIS], ami=app.get(AMI), lag=app[LAG],
                         journal=app[WRITER].journal, writer=app[WRITER].status(),
                         outcomes=app[OUTCOMES].outcomes,
                         now=utcnow(), config_error=app[CONFIG].last_error,
                         asterisk=app[LAYOUT].install.version if LAYOUT in app else "",
                         faults=FaultCounts(degraded=pool.degraded,
                                            redis_outages=pool.outages,
                                            degraded_admissions=pool.local_admissions,
                                            asterisk_restarts=app[STASIS].asterisk_restarts,
                                            **_guard_counts(app.get(SIP_GUARD))))


def _guard_counts(guard: AuthGuard | None) -> dict[str, int]:
    if guard is None:
        return {}
    return {"sip_scanner_requests": guard.scanner_requests,
            "sip_sources_refused": len(guard.banned),
            "sip_account_probes": guard.account_probes,
            "sip_refusals": guard.refusals,
            "sip_refusals_evicted": guard.refusals_evicted}


def _readiness(app: web.Application) -> ReadinessParts:
    """What /readyz checks (callcenter.console.health); parts not set up yet read as down."""
    stasis = app.get(STASIS)
    writer = app.get(WRITER)
    return ReadinessParts(
        ari_connected=stasis is not None and stasis.connected.is_set(),
        calls=len(stasis.sessions) if stasis is not None else 0, redis=app.get(REDIS),
        database_url=app[SETTINGS].database_url,
        journal=writer.journal if writer is not None else None,
        writer=writer.status() if writer is not None else None,
        config_error=app[CONFIG].last_error, fallback=_fallback_figures(app))


def _fallback_figures(app: web.Application) -> dict[str, Any] | None:
    """While the line pool counts locally: for how long, and this instance's lines per tenant."""
    pool = app.get(POOL)
    away = pool.degraded_for() if pool is not None else None
    if pool is None or away is None:
        return None
    return {"degraded_s": round(away, 1),
            "lines_here": {t.id: pool.local_use(t.id) for t in app[CONFIG]().tenants}}


async def pool_view(request: web.Request) -> web.Response:
    app = request.app
    out = []
    for t in app[CONFIG]().tenants:
        use = await app[POOL].use(t.id)
        shift, _ = active_shift(t, utcnow())
        out.append({"tenant": t.id, "name": t.name, "shift": shift.name, "lines": shift.lines,
                    "in_use": use.in_use, "degraded": app[POOL].degraded})
    return web.json_response(out)


async def ivr_view(request: web.Request) -> web.Response:
    """Per tenant: the menus in force for new calls and the FAQ items they can read."""
    app = request.app
    out = []
    for t in app[CONFIG]().tenants:
        ctx = app[IVR].context(t)
        faq = ctx.faq if ctx else None
        items = {f.id: len(faq.for_field(f.id)) for f in t.fields} if faq else {}
        out.append({"tenant": t.id, "root": t.ivr.root if t.ivr else None,
                    "nodes": len(t.ivr.nodes) if t.ivr else 0,
                    "faq_items": {k: v for k, v in items.items() if v}})
    return web.json_response(out)


async def lag_view(request: web.Request) -> web.Response:
    """Event-loop lag over the last two minutes; POST resets it (benchmark steps)."""
    lag = request.app[LAG]
    if request.method == "POST":
        lag.reset()
    return web.json_response(lag.summary())


async def reload_view(request: web.Request) -> web.Response:
    ok = await request.app[CONFIG].reload("HTTP reload")
    return web.json_response({"reloaded": ok, "error": request.app[CONFIG].last_error},
                             status=200 if ok else 422)


def build_app(settings: Settings, redis_url: str) -> web.Application:
    """Wire the whole service; resources start in order and stop in reverse."""
    config = load_config(settings.config_path)
    # Console forms are read whole (request.post(), for their CSRF field): room for a document
    # and the form's other fields. The ticket reply form takes a video (console/limits.py's
    # large_body); the API's attachment route streams and has its own limits.
    app = web.Application(client_max_size=DOCUMENT_MAX_BYTES + 256 * 1024)
    app[SETTINGS] = settings
    app[REDIS_URL] = redis_url
    app[CONFIG] = LiveConfig(settings.config_path, config)
    log.info("config %s: %s", settings.config_path, summary(config))
    # One database, one connection pool for every store of the process (tickets keep their own
    # stricter engine, see store/database.py); closed after every store (cleanup in reverse).
    app[DATABASE] = database = Database(settings.database_url)
    sms = sms_context(settings.sms, settings.state_dir, database,
                      dlr_base_url(config.service.http_bind, config.service.http_port,
                                   https=config.console.tls),
                      mo_handler=reply_handler(lambda: app[TICKETS]))  # survey answers
    # SMS after the store (which migrates the database), before calls start.
    app.cleanup_ctx.extend([_tasks_ctx, _database_ctx, _redis_ctx, _store_ctx, sms, _tickets_ctx,
                            _ari_ctx, _ami_ctx, _config_ctx])
    app.cleanup_ctx.append(_retention_ctx)  # after _ari_ctx, which locates the recordings
    app.cleanup_ctx.append(_mail_ctx)  # after _tickets_ctx: reports read the tickets
    app.cleanup_ctx.append(_mail_in_ctx)  # after _mail_ctx: wakes its dispatcher
    app.cleanup_ctx.append(systemd_ctx)  # last: its cleanup (STOPPING=1) runs first
    add_sms_routes(app)
    add_sms_mo_routes(app)  # GET /sms/mo: citizens' SMS from Kannel (key, loopback)
    setup_console(app, database_url=settings.database_url, database=database, config=app[CONFIG],
                  tickets=TICKETS, queue=True, live_config=CONFIG, redis=REDIS,
                  recordings=lambda: app[LAYOUT].recordings() if LAYOUT in app else None,
                  # the citizens' petition form, /public/{tenant}/petition (intake/webform.py)
                  extra_routes=[functools.partial(add_webform_routes,
                                                  secret=load_secret(settings.state_dir),
                                                  redis=REDIS)])
    app[OUTCOMES] = CallMetrics()
    add_metrics_route(app, _metrics_sample, app[OUTCOMES])
    add_health_routes(app, _readiness)  # /healthz (liveness), /readyz (readiness)
    add_control_routes(app)
    return app


def add_control_routes(app: web.Application) -> None:
    """The control routes, behind the console's API authentication (a session or a bearer
    token): supervisors and admins read the pool, the IVR in force and the loop lag; only
    admins reset the lag or reload the config (which re-renders the PBX)."""
    read, admin = OPS_ROLES, ("admin",)
    app.router.add_get("/api/pool", guarded(pool_view, read, "the line pools"))
    app.router.add_get("/api/ivr", guarded(ivr_view, read, "the IVR in force"))
    app.router.add_get("/api/loop-lag", guarded(lag_view, read, "the event-loop lag"))
    app.router.add_post("/api/loop-lag", guarded(lag_view, admin, "resetting the loop lag"))
    app.router.add_post("/api/reload", guarded(reload_view, admin, "a config reload"))


async def serve(app: web.Application, stop: asyncio.Event,
                on_ready: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run the app's HTTP site (HTTPS with ``console.tls_cert``) until stop is set."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    try:
        # A stop asked for while the contexts start (the database migrating, Redis or
        # Asterisk slow to answer) is obeyed then, not once they are all up: the start is
        # cancelled and what it opened is closed below.
        if not await _unless_stopped(runner.setup(), stop):
            log.info("stop requested during start-up: stopping before serving")
            await runner.cleanup()
            return
        await _serve(app, runner, stop, on_ready)
    except BaseException:
        # A failed start (no Asterisk, port taken): the contexts already entered (Redis
        # clients, the database) are closed here, not left to the garbage collector once the
        # loop is gone ("Event loop is closed" tracebacks under the real error), which stays
        # the error reported.
        try:
            await runner.cleanup()
        except Exception as e:
            log.warning("clean-up after the failed run: %r", e)
        raise
    await runner.cleanup()


async def _unless_stopped(start: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``start`` unless ``stop`` is set first (then cancel it); True: it finished."""
    task = asyncio.ensure_future(start)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()  # the start's own error, if any
    return True


async def _serve(app: web.Application, runner: web.AppRunner, stop: asyncio.Event,
                 on_ready: Callable[[], Awaitable[None]] | None) -> None:
    cfg = app[CONFIG]()
    port = app[SETTINGS].http_port(cfg.service.http_port)
    ssl_context = server_ssl_context(cfg.console)  # console.tls_cert/tls_key: HTTPS
    site = web.TCPSite(runner, cfg.service.http_bind, port, ssl_context=ssl_context)
    await site.start()
    unsubscribe = app[CONFIG].subscribe(functools.partial(apply_tls, ssl_context))
    pid_file = app[SETTINGS].pid_file
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    log.info("hotline service up: %s on %s:%d (Stasis application %s)",
             "HTTPS" if ssl_context else "HTTP", cfg.service.http_bind, port,
             app[STASIS].ari.app)
    await systemd_ready(app, app[STASIS].connected)  # READY=1 once ARI is connected
    if on_ready:
        await on_ready()
    try:
        await stop.wait()
    finally:
        unsubscribe()
        pid_file.unlink(missing_ok=True)


async def apply_tls(context: ssl.SSLContext | None, old: HotlineConfig,
                    new: HotlineConfig) -> None:
    """After a reload (SIGHUP after a certificate renewal) the next TLS handshakes use the
    files now configured; turning HTTPS on or off needs a restart (the socket is open)."""
    if new.console.tls != (context is not None):
        log.warning("console.tls_cert/tls_key: HTTPS %s in the config; restart the service "
                    "to apply it", "turned on" if new.console.tls else "turned off")
        return
    if context is not None and new.console.tls_cert and new.console.tls_key:
        load_pair(context, new.console.tls_cert, new.console.tls_key)  # checked by the reload
        log.info("console: TLS certificate %s loaded", new.console.tls_cert)
