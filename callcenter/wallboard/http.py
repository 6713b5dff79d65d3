"""The supervisors' wallboard: a live page per tenant, fed over a websocket from Redis pub/sub.

* ``GET /console/wallboard?tenant=`` -- the page (supervisor, admin; a unit or operator user
  gets 403 ``auth.forbidden``, nobody logged in a redirect to the login page). ``tenant``
  defaults to the user's own; another tenant's board is refused (403 ``auth.forbidden``),
  an unknown one is 404 ``tenant.not_found``.
* ``GET /console/wallboard/ws?tenant=`` -- a websocket sending JSON: the full ``state`` on
  connect, a fresh one when an event of that tenant arrives on ``hotline:events`` (debounced:
  at most one every ``DEBOUNCE_S``), and every ``TICK_S`` for the clocks. When the live state
  cannot be read it sends ``{"type": "unavailable", "error": {"id":
  "wallboard.live_unavailable"}}`` instead and the page shows itself stale. The session is
  checked again every ``SESSION_CHECK_S``: after logout, expiry or a disabled user the socket
  closes with code 4401 (the page reloads, so the login page shows).
* ``GET /console/static/wallboard.{js,css}`` -- the page's script and style (no build step).

One Redis subscription per app process (``WallboardHub``), started with the first browser
and shared by all; one state is built per tenant and sent to every browser watching it, so
ten wall screens cost what one does. Nothing here asks Asterisk: pool, queue and operators
come from Redis (kept by the call tasks and AMI), the figures from the call records.

The ``state`` message (times: ``*_ms`` epoch milliseconds UTC; the page shows them in the
tenant's ``timezone``)::

  {"type": "state", "tenant", "tenant_name", "timezone", "at_ms", "local_date",
   "shift": {"name", "start", "end", "lines", "override"},
   "staffing": {"logged_in", "minimum", "understaffed"},  # operators logged in (any state but
                                     # logged_out) against the shift's min_operators (0: none)
   "lines": {"in_use", "limit", "full"},
   "queue": {"waiting", "ringing", "queued", "longest_wait_s", "calls": [{"position",
             "wait_s", "urgent", "state", "caller"}]},             # caller masked: ***456
   "agents": [{"extension", "name", "state", "state_label", "reason_label", "reachable",
               "time_in_state_s"}],
   "agent_counts": {state: n},
   "kpis": {"offered", "queued", "answered", "abandoned", "rejected_busy",
            "answered_in_target", "service_level", "service_level_target",
            "service_level_ok", "asa_s", "aht_s"},
   "hours": [{"hour", "start_ms", "calls", "busy", "peak_lines", "limit", "future"}],
   "tickets": [{"code", "field", "field_name", "unit_name", "state", "state_label",
                "resolve_due_ms", "late", "time_left_s"}]}
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
import sqlalchemy as sa
from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from callcenter.calls import Phase
from callcenter.calls.codec import CALL_KEY, state_from_json
from callcenter.config.model import Tenant
from callcenter.console import listing
from callcenter.console.auth import USERS, in_thread
from callcenter.console.context import (
    CLOCK,
    CONSOLE_PREFIX,
    SERVICE,
    ConsoleApps,
    find_tenant,
    sub_path,
)
from callcenter.console.rendering import environment
from callcenter.console.sessions import (
    POLICY,
    SESSION_ID,
    console_csrf,
    error_page,
    require_console_role,
)
from callcenter.lines.redis import EVENTS, LinePool, lines_key
from callcenter.lines.shifts import active_shift, staffing
from callcenter.numbers import mask_number
from callcenter.queue.agent import AgentStatus, logged_in_count
from callcenter.queue.redis import ACD, AcdQueue
from callcenter.queue.texts import STATE_LABELS
from callcenter.store.data import DIALBACK
from callcenter.store.database import DatabaseRef
from callcenter.store.models import CallRecord
from callcenter.store.records import CallRecordStore
from callcenter.tickets import store as st
from callcenter.tickets.config import policy_of
from callcenter.wallboard.kpis import CallTimes, DayKpis, day_kpis, local_day_bounds

log = logging.getLogger("callcenter.wallboard.http")

PAGE_PATH: Final = "/console/wallboard"
WS_PATH: Final = "/console/wallboard/ws"
ROLES: Final = ("supervisor", "admin")
DEBOUNCE_S: Final = 0.5
TICK_S: Final = 5.0
# The day's records are read whole once, then only those written since (by created_at, with
# an overlap for commits landing out of order and instances' clocks apart), and whole again
# every FULL_READ_S so that anything missed (a clock far off) is caught.
RECORDS_OVERLAP: Final = dt.timedelta(minutes=2)
FULL_READ_S: Final = 300.0
SESSION_CHECK_S: Final = 60.0
SEND_TIMEOUT_S: Final = 5.0
MAX_TICKETS: Final = 20
MAX_CALLS_SHOWN: Final = 30
NEAR_DEADLINE_DEFAULT: Final = dt.timedelta(hours=2)
UNAVAILABLE_ID: Final = "wallboard.live_unavailable"
CLOSE_SESSION_ENDED: Final = 4401
_LEVEL1_NAME: Final = "Tổng đài 1022 (cấp 1)"
TICKET_STATE_LABELS: Final = listing.TICKET_STATE_LABELS  # the one table (desk.py reads it here)
_CALL_TABLE = CallRecord.__table__
# What the figures need of a record: not the whole row (a busy day has thousands).
_KPI_COLUMNS = tuple(_CALL_TABLE.c[name] for name in (
    "id", "outcome", "arrived_at", "ended_at", "queued_at", "bridged_at", "talk_ended_at",
    "wrap_up_s"))


def _ms(t: dt.datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


# ---- the state (pure given its inputs) -------------------------------------------------------
@dataclass(frozen=True)
class DueTicket:
    """An open ticket close to or past its resolve deadline."""

    code: str
    field: str
    field_name: str
    unit_name: str
    state: str
    resolve_due: dt.datetime


def _agent_row(a: Mapping[str, Any]) -> dict[str, Any]:
    try:
        label = STATE_LABELS[AgentStatus(a["state"])]
    except (KeyError, ValueError):
        label = str(a.get("state"))
    on_call = a.get("state") == AgentStatus.ON_CALL.value
    return {"extension": a.get("extension"), "name": a.get("name"), "state": a.get("state"),
            "state_label": label, "reason_label": a.get("reason_label"),
            "reachable": a.get("reachable"), "time_in_state_s": a.get("time_in_state_s"),
            # the live call a supervisor may listen in on (POST /api/v1/calls/{id}/listen)
            "call_id": a.get("call_id") if on_call else None}


def _kpis_json(k: DayKpis) -> dict[str, Any]:
    return {"offered": k.offered, "queued": k.queued, "answered": k.answered,
            "abandoned": k.abandoned, "rejected_busy": k.rejected_busy,
            "answered_in_target": k.answered_in_target,
            "service_level": None if k.service_level is None else round(k.service_level, 4),
            "service_level_target": k.service_level_target,
            "service_level_ok": k.service_level_ok,
            "asa_s": None if k.asa_s is None else round(k.asa_s, 1),
            "aht_s": None if k.aht_s is None else round(k.aht_s, 1)}


def build_state(tenant: Tenant, now: dt.datetime, *, in_use: int,
                snapshot: Mapping[str, Any], records: Sequence[CallTimes],
                tickets: Sequence[DueTicket],
                live: Mapping[str, CallTimes] | None = None) -> dict[str, Any]:
    """The ``state`` message of one tenant at ``now`` from what was read; ``live``: the calls
    in progress by record id (one already recorded counts as its record)."""
    counts = snapshot.get("counts") or {}
    try:
        shift, override = active_shift(tenant, now)
        shift_json: dict[str, Any] | None = {
            "name": shift.name, "start": shift.start.strftime("%H:%M"),
            "end": shift.end.strftime("%H:%M"), "lines": shift.lines,
            "override": override.name if override is not None else None}
        limit: int | None = shift.lines
        staffed = staffing(tenant, logged_in_count(counts.get("agents") or {}), now)
        staffing_json: dict[str, Any] | None = {
            "logged_in": staffed.logged_in, "minimum": staffed.minimum,
            "understaffed": staffed.understaffed}
    except LookupError:  # ruled out by a validated config
        shift_json, limit, staffing_json = None, None, None
    calls = [{"position": c.get("position"), "wait_s": c.get("wait_s"),
              "urgent": bool(c.get("urgent")), "state": c.get("state"),
              "caller": mask_number(str(c.get("caller") or ""))}
             for c in list(snapshot.get("calls") or [])[:MAX_CALLS_SHOWN]]
    recorded = {r.id for r in records}
    in_progress = [c for rid, c in (live or {}).items() if rid not in recorded]
    kpis = day_kpis(records, now, tenant, lines_in_use_now=in_use, live=in_progress)
    return {
        "type": "state", "tenant": tenant.id, "tenant_name": tenant.name,
        "timezone": tenant.timezone, "at_ms": _ms(now), "local_date": kpis.day.isoformat(),
        "shift": shift_json,
        "staffing": staffing_json,
        "lines": {"in_use": in_use, "limit": limit,
                  "full": limit is not None and in_use >= limit},
        "queue": {"waiting": int(counts.get("waiting", 0)),
                  "ringing": int(counts.get("ringing", 0)),
                  "queued": int(counts.get("queued", 0)),
                  "longest_wait_s": int(counts.get("longest_wait_s", 0)), "calls": calls},
        "agents": [_agent_row(a) for a in snapshot.get("agents") or []],
        "agent_counts": dict(counts.get("agents") or {}),
        "kpis": _kpis_json(kpis),
        "hours": [{"hour": h.hour, "start_ms": _ms(h.start), "calls": h.calls, "busy": h.busy,
                   "peak_lines": h.peak_lines, "limit": h.limit, "future": h.future}
                  for h in kpis.hours],
        "tickets": [{"code": t.code, "field": t.field, "field_name": t.field_name,
                     "unit_name": t.unit_name, "state": t.state,
                     "state_label": TICKET_STATE_LABELS.get(t.state, t.state),
                     "resolve_due_ms": _ms(t.resolve_due), "late": t.resolve_due <= now,
                     "time_left_s": int((t.resolve_due - now).total_seconds())}
                    for t in tickets],
    }


async def live_calls(redis: aioredis.Redis, tenant_id: str) -> dict[str, CallTimes]:
    """The tenant's calls in progress (those holding a line), by record id, from their state
    in Redis; a call whose state is gone or unreadable is left out."""
    ids = await redis.hkeys(lines_key(tenant_id))
    if not ids:
        return {}
    texts = await redis.mget([CALL_KEY.format(i.decode() if isinstance(i, bytes) else i)
                              for i in ids])
    out: dict[str, CallTimes] = {}
    for text in texts:
        if text is None:
            continue
        try:
            state = state_from_json(text)
        except (ValueError, KeyError, TypeError) as e:  # a state written by another version
            log.debug("wallboard %s: a live call state not read: %r", tenant_id, e)
            continue
        if state.tenant_id == tenant_id and state.phase is not Phase.ENDED:
            out[f"{state.node}:{state.call_id}"] = CallTimes(
                state.arrived_at, queued_at=state.queued_at, bridged_at=state.bridged_at)
    return out


# ---- reading the stores (blocking; run in the console's pool) --------------------------------
def records_between(store: CallRecordStore, tenant: str, start: dt.datetime,
                    end: dt.datetime, written_after: dt.datetime | None = None
                    ) -> tuple[list[CallTimes], dt.datetime | None]:
    """The times and outcome of the tenant's calls recorded as arriving in [start, end)
    (only those written after ``written_after``, when given), and the latest write time.
    Calls back (outcome ``dialback``) are the hotline's outbound calls: not counted."""
    c = _CALL_TABLE.c
    q = sa.select(*_KPI_COLUMNS, c.created_at).where(c.tenant == tenant, c.arrived_at >= start,
                                                     c.arrived_at < end,
                                                     c.outcome != DIALBACK)
    if written_after is not None:
        q = q.where(c.created_at > written_after)
    out: list[CallTimes] = []
    latest: dt.datetime | None = None
    with store.engine.connect() as conn:
        for row in conn.execute(q):
            # By position (the order of _KPI_COLUMNS, then created_at): the fastest way in.
            rid, outcome, arrived, ended, queued, bridged, talk_ended, wrap_up = row[:8]
            out.append(CallTimes(arrived_at=arrived, queued_at=queued, bridged_at=bridged,
                                 outcome=outcome, ended_at=ended, talk_ended_at=talk_ended,
                                 wrap_up_s=wrap_up, id=rid))
            latest = row[8] if latest is None or row[8] > latest else latest
    return out, latest


@dataclass
class DayRecords:
    """One tenant's finished calls of the local day, kept between wallboard updates."""

    day_start: dt.datetime
    by_id: dict[str, CallTimes] = field(default_factory=dict)
    written_until: dt.datetime | None = None  # latest created_at seen
    full_read_at: float = 0.0  # monotonic time of the last whole read

    def add(self, rows: Sequence[CallTimes], latest: dt.datetime | None) -> None:
        """Keep ``rows`` (a record read twice counts once) and move the high-water mark."""
        self.by_id.update((r.id, r) for r in rows)
        if latest is not None and (self.written_until is None or latest > self.written_until):
            self.written_until = latest


def due_tickets(db: st.TicketDatabase, tenant: Tenant, now: dt.datetime,
                limit: int = MAX_TICKETS) -> list[DueTicket]:
    """Open tickets whose resolve deadline is past or within the tenant's reminder lead
    (2 h when none), soonest first."""
    policy = policy_of(tenant)
    near = policy.deadlines.reminder_before or NEAR_DEADLINE_DEFAULT
    t = st.TICKETS.c
    q = (sa.select(t.code, t.field, t.unit, t.state, t.resolve_due)
         .where(t.tenant == tenant.id, t.state.in_(st.OPEN_STATES),
                t.resolve_due.is_not(None), t.resolve_due < now + near)
         .order_by(t.resolve_due, t.code).limit(limit))
    with db.reading() as conn:
        rows = conn.execute(q).all()
    out = []
    for r in rows:
        unit = policy.unit(r.unit) if r.unit else None
        due = r.resolve_due if r.resolve_due.tzinfo else r.resolve_due.replace(tzinfo=dt.UTC)
        out.append(DueTicket(r.code, r.field, policy.field_name(r.field) or r.field,
                             unit.name if unit else (r.unit or _LEVEL1_NAME), r.state, due))
    return out


# ---- the hub: one subscription, one state per tenant, many browsers --------------------------
@dataclass(eq=False)
class _Feed:
    """The browsers watching one tenant and the task that keeps them fed."""

    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class WallboardHub:
    """One Redis subscription to ``hotline:events`` per process, fanned out per tenant."""

    def __init__(self, app: web.Application, redis_key: web.AppKey[aioredis.Redis] | None,
                 records: CallRecordStore) -> None:
        self.app = app
        self.redis_key = redis_key
        self.records = records
        self.feeds: dict[str, _Feed] = {}
        self.days: dict[str, DayRecords] = {}  # per tenant
        self.subscribed = asyncio.Event()  # set while the subscription is up (tests wait on it)
        self._listener: asyncio.Task[None] | None = None
        self._closing = False

    # -- live sources ------------------------------------------------------------------------
    def _acd(self) -> AcdQueue:
        return self.app[ACD]

    def _redis(self) -> aioredis.Redis:
        if self.redis_key is not None:
            return self.app[self.redis_key]
        return self._acd().redis

    async def state(self, tenant: Tenant) -> dict[str, Any]:
        """A fresh ``state`` (or ``unavailable``) message for ``tenant``."""
        app = self.app
        now = app[CLOCK]()
        try:
            acd = self._acd()
            async with asyncio.timeout(3.0):
                use = await LinePool(acd.redis, acd.instance, acd.node).use(tenant.id)
                snapshot = await acd.snapshot(tenant.id)
                live = await live_calls(acd.redis, tenant.id)
        except (TimeoutError, OSError, RedisError, KeyError) as e:
            log.warning("wallboard %s: live state not read: %s", tenant.id,
                        str(e) or type(e).__name__)
            return {"type": "unavailable", "tenant": tenant.id, "at_ms": _ms(now),
                    "error": {"id": UNAVAILABLE_ID,
                              "message": "Không đọc được trạng thái trực tiếp."}}
        start, end = local_day_bounds(tenant.timezone, now)
        records = await self._day_records(tenant.id, start, end)
        tickets: list[DueTicket] = []
        if SERVICE in app:
            tickets = await in_thread(app, due_tickets, app[SERVICE].db, tenant, now)
        return build_state(tenant, now, in_use=use.in_use, snapshot=snapshot, records=records,
                           tickets=tickets, live=live)

    async def _day_records(self, tenant_id: str, start: dt.datetime,
                           end: dt.datetime) -> list[CallTimes]:
        """The tenant's finished calls of the day: read whole at first, at midnight and every
        FULL_READ_S; otherwise only those written since the last read (with an overlap)."""
        day = self.days.get(tenant_id)
        clock = time.monotonic()
        if day is None or day.day_start != start or clock - day.full_read_at > FULL_READ_S:
            day = DayRecords(start, full_read_at=clock)
            after = None
        else:
            after = (day.written_until - RECORDS_OVERLAP) if day.written_until else None
        rows, latest = await in_thread(self.app, records_between, self.records, tenant_id,
                                       start, end, after)
        day.add(rows, latest)
        self.days[tenant_id] = day
        return list(day.by_id.values())

    # -- browsers ----------------------------------------------------------------------------
    def watch(self, tenant_id: str, ws: web.WebSocketResponse) -> None:
        """Add a browser to the tenant's feed (starting the subscription if need be)."""
        self._ensure_listener()
        feed = self.feeds.setdefault(tenant_id, _Feed())
        feed.sockets.add(ws)
        if feed.task is None or feed.task.done():
            feed.task = asyncio.create_task(self._feed(tenant_id, feed),
                                            name=f"wallboard-feed-{tenant_id}")

    def unwatch(self, tenant_id: str, ws: web.WebSocketResponse) -> None:
        """Remove a browser; the feed's task ends when its last browser left."""
        feed = self.feeds.get(tenant_id)
        if feed is not None:
            feed.sockets.discard(ws)
            feed.dirty.set()  # wake the task so it notices

    def mark(self, tenant_id: str | None) -> None:
        """Something of this tenant changed (None: maybe anything, e.g. after a reconnect)."""
        for tid, feed in self.feeds.items():
            if tenant_id is None or tid == tenant_id:
                feed.dirty.set()

    async def _feed(self, tenant_id: str, feed: _Feed) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()  # the browser got its first state when it connected
        try:
            while feed.sockets and not self._closing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_S):
                        await feed.dirty.wait()
                if not feed.sockets:
                    break
                # Debounce: a burst of events (a call answered: pool, queue, agent) is one send.
                await asyncio.sleep(max(0.0, last + DEBOUNCE_S - loop.time()))
                feed.dirty.clear()
                last = loop.time()
                tenant = find_tenant(self.app, tenant_id)
                if tenant is None:  # removed from the config
                    for ws in list(feed.sockets):
                        await ws.close(code=4404, message=b"tenant gone")
                    break
                try:
                    text = json.dumps(await self.state(tenant), ensure_ascii=False)
                except Exception:  # a store hiccup must not end the feed
                    log.exception("wallboard %s: state not built", tenant_id)
                    continue
                await asyncio.gather(*(self._send(ws, text) for ws in list(feed.sockets)))
        finally:
            if self.feeds.get(tenant_id) is feed and not feed.sockets:
                del self.feeds[tenant_id]

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):  # a stuck browser holds up no other
                await ws.send_str(text)
        except (TimeoutError, ConnectionError, RuntimeError) as e:
            log.info("wallboard: a browser dropped (%s)", str(e) or type(e).__name__)
            for feed in self.feeds.values():
                feed.sockets.discard(ws)

    # -- the subscription --------------------------------------------------------------------
    def _ensure_listener(self) -> None:
        if not self._closing and (self._listener is None or self._listener.done()):
            self._listener = asyncio.create_task(self._listen(), name="wallboard-events")

    async def _listen(self) -> None:
        backoff = 0.5
        while not self._closing:
            pubsub = None
            try:
                pubsub = self._redis().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(EVENTS)
                self.subscribed.set()
                backoff = 0.5
                self.mark(None)  # events may have been missed while not subscribed
                while not self._closing:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_event(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis away: the pages show stale until it is back
                self.subscribed.clear()
                log.warning("wallboard: subscription to %s lost (%s); again in %.1f s", EVENTS,
                            str(e) or type(e).__name__, backoff)
                self.mark(None)
                await asyncio.sleep(backoff * (1 + random.random() / 2))
                backoff = min(backoff * 2, 15.0)
            finally:
                self.subscribed.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

    def _on_event(self, data: Any) -> None:
        try:
            event = json.loads(data)
        except (TypeError, ValueError):
            return
        if isinstance(event, dict) and isinstance(event.get("tenant"), str):
            self.mark(event["tenant"])

    async def close(self) -> None:
        """Stop the subscription and the feeds; close every browser's socket."""
        self._closing = True
        sockets = [ws for feed in self.feeds.values() for ws in feed.sockets]
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutdown")
        tasks = [t for t in [self._listener, *(f.task for f in self.feeds.values())]
                 if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


HUB = web.AppKey("wallboard_hub", WallboardHub)


# ---- HTTP ------------------------------------------------------------------------------------
def _tenant_of(request: web.Request) -> Tenant:
    user = require_console_role(request, ROLES)
    wanted = request.query.get("tenant") or user.tenant
    if wanted != user.tenant:
        log.info("wallboard: %s (%s) refused tenant %s", user.name, user.tenant, wanted)
        page = error_page(403, "auth.forbidden", "Không có quyền truy cập",
                          "Bạn chỉ được xem màn hình giám sát của tỉnh mình.")
        raise web.HTTPForbidden(text=page.text, content_type="text/html")
    tenant = find_tenant(request.config_dict, wanted)
    if tenant is None:
        page = error_page(404, "tenant.not_found", "Không tìm thấy",
                          "Không có tổng đài của tỉnh này trong cấu hình.")
        raise web.HTTPNotFound(text=page.text, content_type="text/html")
    return tenant


_ENV: Final = environment("callcenter.wallboard")  # templates/wallboard.html


async def wallboard_page(request: web.Request) -> web.StreamResponse:
    """GET /console/wallboard: the page; its script opens the websocket."""
    tenant = _tenant_of(request)
    body = _ENV.get_template("wallboard.html").render(
        csrf=console_csrf(request), tenant=tenant.id, tenant_name=tenant.name,
        timezone=tenant.timezone, ws=f"{WS_PATH}?tenant={tenant.id}")
    return web.Response(text=body, content_type="text/html", charset="utf-8")


async def wallboard_ws(request: web.Request) -> web.StreamResponse:
    """GET /console/wallboard/ws: the tenant's live state, pushed."""
    tenant = _tenant_of(request)
    hub = request.config_dict[HUB]
    raw_session = request[SESSION_ID]
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    await ws.prepare(request)
    await ws.send_str(json.dumps(await hub.state(tenant), ensure_ascii=False))
    hub.watch(tenant.id, ws)
    app = request.config_dict
    try:
        while not ws.closed:
            try:
                msg = await ws.receive(timeout=SESSION_CHECK_S)
            except TimeoutError:
                alive = await in_thread(app, app[USERS].find_session, raw_session,
                                        now=app[CLOCK](), idle=app[POLICY].idle)
                if alive is None:
                    await ws.close(code=CLOSE_SESSION_ENDED, message=b"session ended")
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                break
    finally:
        hub.unwatch(tenant.id, ws)
    return ws


def add_wallboard_routes(apps: ConsoleApps, *, database: DatabaseRef,
                         redis_key: web.AppKey[aioredis.Redis] | None = None) -> None:
    """Add the wallboard page and its websocket to the console sub-app, the hub's cleanup
    context to the root (not yet started).

    The root's ``queue.redis.ACD`` must be set before the first browser connects (the app's Redis
    context); events are read over ``app[redis_key]`` when given, else over the AcdQueue's client.
    Needs the console's user store and pool (``setup_console``, which calls this).
    """

    async def wallboard_ctx(app: web.Application) -> AsyncIterator[None]:
        records = CallRecordStore(database)
        app[HUB] = WallboardHub(app, redis_key, records)
        try:
            yield
        finally:
            await app[HUB].close()
            records.close()

    async def on_shutdown(app: web.Application) -> None:
        # Before the runner waits for handlers: open websockets would hold up the stop.
        if HUB in app:
            await app[HUB].close()

    apps.root.cleanup_ctx.append(wallboard_ctx)
    apps.root.on_shutdown.append(on_shutdown)
    pages = apps.console
    pages.router.add_get(sub_path(CONSOLE_PREFIX, PAGE_PATH), wallboard_page,
                         name="console_wallboard")
    pages.router.add_get(sub_path(CONSOLE_PREFIX, WS_PATH), wallboard_ws,
                         name="console_wallboard_ws")
