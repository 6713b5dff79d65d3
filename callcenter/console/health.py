"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness) of the app process.

``/healthz`` answers 200 ``{"status": "ok"}`` whenever the event loop runs the handler: it
says the process is alive, nothing more, and never touches Redis, the database or Asterisk
(a supervisor restarting the app because PostgreSQL is down would only add an outage).

``/readyz`` runs five checks at once and answers 200 ``{"status": "ready"}`` or 503
``{"status": "not_ready"}``:

=========  ========  ===========================================================================
check      critical  what it reads
=========  ========  ===========================================================================
ari        yes       this process's ARI websocket is connected (no call is answered without it)
redis      no        ``PING`` within ``REDIS_TIMEOUT_S`` (line pools and the operators' queue
                     live there; without it each instance admits calls on its own line count
                     and offers callers a callback: ``lines.fallback``, DEGRADED)
database   no        ``SELECT 1`` in a thread within ``DATABASE_TIMEOUT_S``
journal    no        call records not yet in the database; fails above ``JOURNAL_BACKLOG_WARN``,
                     and while the journal cannot be written or records wait in memory
config     no        the last configuration reload was refused (``LiveConfig.last_error``)
=========  ========  ===========================================================================

Ready means "this instance answers and routes calls now": only the critical checks decide.
Redis is not critical since issue 15: during its outage the instance goes on answering (lines
counted locally, callers offered a callback instead of the queue), so taking it out of a
load balancer would refuse citizens for nothing.
A failing non-critical check is reported (``degraded`` in the details, the metrics, the alert
rules) but keeps the instance ready, decided so because: during a database outage calls are
still answered and their records wait in the journal (nothing is lost), and the database is
shared by every instance, so failing readiness on it would take all of them out of a load
balancer at once -- the public pages and the console's live views with them -- while fixing
nothing; a refused reload leaves the previous, valid configuration in force, and every
instance reading the same file would refuse it alike.

Details (each check: ``ok``, ``critical``, ``error`` text, figures) go only to requests the
operations access rule lets in (``callcenter.console.ops_access``: loopback without proxy
headers, or a supervisor/admin bearer token); every other request gets the bare status, with
the same status code (a load balancer outside needs no more).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import sqlalchemy as sa
from aiohttp import web

from callcenter.console.metrics import journal_count
from callcenter.console.ops_access import ops_access
from callcenter.store.journal import RecordJournal
from callcenter.store.recorder import WriterStatus
from callcenter.store.urls import normalise_url, sqlite_file

log = logging.getLogger("callcenter.console.health")

REDIS_TIMEOUT_S = 1.0
DATABASE_TIMEOUT_S = 2.0
JOURNAL_BACKLOG_WARN = 100  # records; a few calls' worth is a normal moment, 100 is an outage
CRITICAL = frozenset({"ari"})
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class ReadinessParts:
    """What the checks read of the running app (None: that part is not set up)."""

    ari_connected: bool
    calls: int
    redis: aioredis.Redis | None
    database_url: str
    journal: RecordJournal | None
    config_error: str | None
    # While the line pool counts locally (Redis lost): figures for the redis check.
    fallback: dict[str, Any] | None = None
    writer: WriterStatus | None = None  # the record writer's view: held records, last error


PartsFn = Callable[[web.Application], ReadinessParts]


@dataclass(frozen=True)
class Check:
    """One check's result."""

    name: str
    ok: bool
    error: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def critical(self) -> bool:
        """True when a failure of this check makes the instance not ready."""
        return self.name in CRITICAL

    def as_dict(self) -> dict[str, Any]:
        """The check in the details' JSON."""
        return {"ok": self.ok, "critical": self.critical, "error": self.error, **self.figures}


@dataclass(frozen=True)
class Readiness:
    """All checks of one probe."""

    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        """True when every critical check passed."""
        return all(c.ok for c in self.checks if c.critical)

    def body(self, details: bool) -> dict[str, Any]:
        """The JSON answer: the bare status, or the status with every check."""
        out: dict[str, Any] = {"status": "ready" if self.ready else "not_ready"}
        if details:
            out["degraded"] = [c.name for c in self.checks if not c.ok and not c.critical]
            out["checks"] = {c.name: c.as_dict() for c in self.checks}
        return out


def _error_text(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# ---- the checks ------------------------------------------------------------------------------
def check_ari(parts: ReadinessParts) -> Check:
    """This process's ARI websocket; the calls it serves as a figure."""
    return Check("ari", parts.ari_connected,
                 None if parts.ari_connected else
                 "ARI websocket not connected: is Asterisk running and its ARI user right?",
                 {"calls": parts.calls})


async def check_redis(redis: aioredis.Redis | None, timeout_s: float = REDIS_TIMEOUT_S,
                      fallback: dict[str, Any] | None = None) -> Check:
    """``PING`` within ``timeout_s``; the round trip as a figure. ``fallback``: the line pool
    counts locally (its figures are added, and the error says so)."""
    if redis is None:
        return Check("redis", False, "Redis client not set up (the app is starting)")
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            await redis.ping()
    except TimeoutError:
        error = f"no answer to PING within {timeout_s:g} s"
    except Exception as e:  # any failure of the probe is the check's answer, not a 500
        error = _error_text(e)
    else:
        return Check("redis", True, figures={"seconds": round(time.monotonic() - t0, 6),
                                             **({"fallback": fallback} if fallback else {})})
    if fallback is not None:
        error += ("; DEGRADED: calls admitted on this instance's own line count, callers "
                  "offered a callback instead of the queue")
    return Check("redis", False, error, {"fallback": fallback} if fallback else {})


def _sqlite_rw(path: Path) -> Callable[[], sqlite3.Connection]:
    # mode=rw: a probe never creates an empty database where the real one went missing.
    uri = f"file:{path.resolve()}?mode=rw"
    return lambda: sqlite3.connect(uri, uri=True, timeout=DATABASE_TIMEOUT_S,
                                   check_same_thread=False)


class DatabaseProbe:
    """``SELECT 1`` on the app's database, one probe at a time, in its own thread."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        url = normalise_url(database_url)
        path = sqlite_file(url)
        if path is not None:
            self.engine = sa.create_engine("sqlite://", creator=_sqlite_rw(path),
                                           poolclass=sa.pool.NullPool)
        else:
            args = ({"connect_timeout": max(1, int(DATABASE_TIMEOUT_S))}
                    if url.get_backend_name() == "postgresql" else {})
            # NullPool: each probe opens a real connection, so it tests reachability now.
            self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=args)
        # One worker: a hung database holds one thread, never the default pool that the
        # call records' writer uses.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="readyz-db")
        self._running: asyncio.Future[None] | None = None

    def ping(self) -> None:
        """Blocking: one ``SELECT 1``."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    async def check(self, timeout_s: float = DATABASE_TIMEOUT_S) -> Check:
        """The probe's result; probes arriving meanwhile share the one in flight."""
        if self._running is None or self._running.done():
            loop = asyncio.get_running_loop()
            self._running = loop.run_in_executor(self._executor, self.ping)
            # A probe that outlived its waiters still has its error read (no asyncio warning).
            self._running.add_done_callback(lambda f: f.cancelled() or f.exception())
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(self._running), timeout_s)
        except TimeoutError:
            return Check("database", False, f"no answer to SELECT 1 within {timeout_s:g} s")
        except Exception as e:  # the database's own error is the check's answer
            return Check("database", False, _error_text(e))
        return Check("database", True, figures={"seconds": round(time.monotonic() - t0, 6)})

    def close(self) -> None:
        """Release the engine and the thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


async def check_journal(journal: RecordJournal | None,
                        warn_above: int = JOURNAL_BACKLOG_WARN,
                        writer: WriterStatus | None = None) -> Check:
    """Records waiting for the database; fails (not critically) above ``warn_above``, while
    records are held in memory, and while the journal cannot be written."""
    if journal is None:
        return Check("journal", False, "call record journal not set up (the app is starting)")
    pending = await asyncio.to_thread(journal_count, journal)
    figures: dict[str, Any] = {"pending": pending, "warn_above": warn_above}
    if writer is not None:
        figures |= {"held_in_memory": writer.held, "not_journalled": writer.not_journalled,
                    "dropped": writer.dropped}
        if writer.held:
            return Check("journal", False,
                         f"{writer.held} call records held in memory only: the journal is "
                         f"unwritable ({writer.journal_error or 'see the log'}) and the "
                         f"database unavailable; a restart now would lose them", figures)
        if writer.journal_error is not None:
            return Check("journal", False,
                         f"call record journal unwritable ({writer.journal_error}): records go "
                         f"to the database directly, unprotected; is the disk full?", figures)
    ok = pending <= warn_above
    return Check("journal", ok,
                 None if ok else f"{pending} call records wait for the database "
                 f"(more than {warn_above}): is the database reachable?", figures)


def check_config(error: str | None) -> Check:
    """The last configuration reload: refused or not."""
    return Check("config", error is None,
                 None if error is None else f"last reload refused, previous config in force: "
                 f"{error}")


async def readiness(parts: ReadinessParts, database: DatabaseProbe) -> Readiness:
    """Run every check at once."""
    redis, db, journal = await asyncio.gather(
        check_redis(parts.redis, fallback=parts.fallback), database.check(),
        check_journal(parts.journal, writer=parts.writer))
    return Readiness((check_ari(parts), redis, db, journal, check_config(parts.config_error)))


# ---- HTTP ------------------------------------------------------------------------------------
PARTS: web.AppKey[PartsFn] = web.AppKey("readiness_parts")


class _Probes:
    """The app's database probe, made on first use (the URL comes with the parts)."""

    def __init__(self) -> None:
        self.database: DatabaseProbe | None = None

    def for_url(self, database_url: str) -> DatabaseProbe:
        if self.database is None or self.database.database_url != database_url:
            if self.database is not None:
                self.database.close()
            self.database = DatabaseProbe(database_url)
        return self.database

    def close(self) -> None:
        if self.database is not None:
            self.database.close()
            self.database = None


PROBES = web.AppKey("readiness_probes", _Probes)


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: liveness only, 200 while the event loop answers."""
    return web.json_response({"status": "ok"}, headers=NO_STORE)


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 ready or 503 not ready; details to loopback or an admin."""
    app = request.app
    parts = app[PARTS](app)
    result = await readiness(parts, app[PROBES].for_url(parts.database_url))
    try:
        granted = (await ops_access(request, "readiness details")).granted
    except Exception as e:  # the token's lookup needs the database: no details, still an answer
        log.warning("readyz: token not checked (%s): details withheld", _error_text(e))
        granted = False
    return web.json_response(result.body(details=granted),
                             status=200 if result.ready else 503, headers=NO_STORE)


def add_health_routes(app: web.Application, parts_fn: PartsFn) -> None:
    """Serve ``/healthz`` and ``/readyz`` on ``app``; ``parts_fn(app)`` gives what to check."""
    app[PARTS] = parts_fn
    probes = app[PROBES] = _Probes()

    async def close_probes(_app: web.Application) -> None:
        probes.close()

    app.on_cleanup.append(close_probes)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
