"""The dispatcher: takes due messages from the outbox and hands them to Kannel's sendsms.

Outbox first, dispatcher second: a text exists as a row before any gateway sees it, and the
row says what happened to it.

*Nothing lost.* A message leaves "sending" only on evidence: Kannel's 2xx (it has the
message in its spool: "accepted" is "sent"), a delivery report, or a refusal. Connection
refused or a 5xx means Kannel did not take it: back to "queued", due again after an
exponential back-off with jitter (capped), for as long as it takes.

*Nothing sent twice.* Claims are atomic (see `SmsOutbox.claim_due`), so two dispatchers
(two app instances) never take the same row. The one window left is between Kannel's answer
and our commit of "sent" (a crash there, or a timeout after the request went out, when we
cannot know whether Kannel took it). Such a row stays "sending"; every message asks for all
delivery reports, and the SMSC's ack (type 8) or any later report marks it sent. Only when
no report came within `stuck_after` is it requeued and sent again: we prefer a rare second
copy of a notice to a lost one. Requests that never reached Kannel (connection refused) are
not ambiguous and are retried at once after their back-off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from sqlalchemy.exc import SQLAlchemyError
from yarl import URL

from callcenter.backoff import backoff_delay
from callcenter.clock import utcnow
from callcenter.sms.batching import GroupCommit
from callcenter.sms.dlr import DLR_MASK, dlr_url
from callcenter.sms.store import OutboxMessage, SmsOutbox

log = logging.getLogger(__name__)

KANNEL_CODING = {"gsm7": "0", "ucs2": "2"}


@dataclass(frozen=True)
class SendsmsTarget:
    """Kannel's sendsms endpoint, its user, and where delivery reports must go."""

    url: str  # http://127.0.0.1:13113/cgi-bin/sendsms
    username: str
    password: str
    sender: str = "1022"
    dlr_base_url: str | None = None  # http://127.0.0.1:8088/sms/dlr; None: no reports
    dlr_key: str = ""


class SmsDispatcher:
    """Sends due outbox messages through Kannel, `concurrency` requests in flight."""

    def __init__(self, outbox: SmsOutbox, target: SendsmsTarget, *, concurrency: int = 32,
                 poll_interval: float = 1.0, stuck_after: dt.timedelta = dt.timedelta(minutes=5),
                 backoff_base: float = 2.0, backoff_cap: float = 300.0,
                 request_timeout: float = 30.0, drain_timeout: float = 5.0,
                 clock: Callable[[], dt.datetime] = utcnow,
                 rand: Callable[[], float] = random.random):
        self.outbox = outbox
        self.target = target
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.stuck_after = stuck_after
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.request_timeout = request_timeout
        self.drain_timeout = drain_timeout
        self.clock = clock
        self.rand = rand
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._gateway_ok: bool | None = None
        self._task: asyncio.Task[None] | None = None
        self._sent = GroupCommit(self._mark_sent_many, name="sms-mark-sent")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run in a named task owned by this dispatcher (`stop` ends it)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="sms-dispatcher")
        return self._task

    async def stop(self) -> None:
        """Stop claiming, let requests in flight finish (up to drain_timeout), end the task."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        """Look for due messages now (after an enqueue in this process) instead of polling."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and send until cancelled; database or gateway trouble never ends the loop."""
        connector = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=30)
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            try:
                await self._loop(session)
            finally:
                await self._drain()

    async def _loop(self, session: aiohttp.ClientSession) -> None:
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        db_failures = 0
        while True:
            try:
                if loop.time() >= next_sweep:
                    stuck = await asyncio.to_thread(self.outbox.requeue_stuck, self.clock(),
                                                    self.stuck_after)
                    if stuck:
                        log.warning("SMS: %d message(s) without outcome for %s requeued",
                                    stuck, self.stuck_after)
                    next_sweep = loop.time() + min(60.0, self.stuck_after.total_seconds() / 4)
                free = self.concurrency - len(self._inflight)
                # Refill when half the slots are free: one claim per batch, not per message.
                batch: list[OutboxMessage] = []
                if free >= max(1, self.concurrency // 2):
                    batch = await self._claim(free)
                db_failures = 0
            except Exception as e:  # database away (or a bug): the rows wait, so do we
                db_failures += 1
                if isinstance(e, SQLAlchemyError):
                    log.warning("SMS outbox unavailable (%s); retrying", str(e).splitlines()[0])
                else:
                    log.exception("SMS dispatcher: unexpected error; retrying")
                await asyncio.sleep(min(30.0, self.poll_interval * 2 ** min(db_failures, 5)))
                continue
            for msg in batch:
                task = asyncio.create_task(self._send(session, msg), name=f"sms-send-{msg.id}")
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if batch and len(batch) == free:
                # Full batch: more may be due; wait for slots, not for the poll interval.
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            elif not batch:
                await self._idle()

    async def _claim(self, limit: int) -> list[OutboxMessage]:
        """Claim due messages; if cancelled meanwhile, hand the claimed ones straight back."""
        claim = asyncio.ensure_future(
            asyncio.to_thread(self.outbox.claim_due, self.clock(), limit))
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            batch = await claim  # the thread commits anyway: do not strand its rows
            if batch:
                await asyncio.to_thread(self.outbox.release, [m.id for m in batch],
                                        batch[0].claim_token or "")
            raise

    async def _idle(self) -> None:
        """Wait for a wake-up, the poll interval, or (if sends are in flight) a free slot."""
        self._wake.clear()
        waiter = asyncio.create_task(self._wake.wait(), name="sms-dispatcher-wake")
        try:
            await asyncio.wait({waiter, *self._inflight}, timeout=self.poll_interval,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    async def _drain(self) -> None:
        if not self._inflight:
            return
        _, pending = await asyncio.wait(set(self._inflight), timeout=self.drain_timeout)
        for task in pending:  # their rows stay "sending": reports or the sweep settle them
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._sent.close()

    # -- one message -------------------------------------------------------------------------

    def _url(self, msg: OutboxMessage) -> URL:
        t = self.target
        params = {
            "username": t.username, "password": t.password, "from": t.sender,
            "to": msg.to_number, "text": msg.text, "coding": KANNEL_CODING[msg.coding],
            "charset": "UTF-8",
        }
        if t.dlr_base_url:
            params["dlr-mask"] = str(DLR_MASK)
            params["dlr-url"] = dlr_url(t.dlr_base_url, t.dlr_key, msg.id)
        # Encoded here, not by yarl: the dlr-url's %d, %A ... must reach Kannel as "%25d".
        query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        return URL(f"{t.url}?{query}", encoded=True)

    async def _send(self, session: aiohttp.ClientSession, msg: OutboxMessage) -> None:
        token = msg.claim_token
        assert token is not None
        try:
            async with session.get(self._url(msg)) as resp:
                status, body = resp.status, (await resp.text(errors="replace")).strip()[:200]
        except aiohttp.ClientConnectorError as e:  # never reached Kannel: certainly not sent
            self._gateway(False, str(e))
            await self._retry(msg, token, f"gateway unreachable: {e}")
            return
        except (TimeoutError, aiohttp.ClientError) as e:
            # The request may have reached Kannel: leave it "sending" for a report to settle.
            self._gateway(False, repr(e))
            await self._db(self.outbox.note_unknown, msg.id, token, f"outcome unknown: {e!r}")
            return
        except Exception:  # a bug, not the gateway: the row stays "sending" for the sweep
            log.exception("SMS %d: sending failed unexpectedly", msg.id)
            return
        self._gateway(True)
        if 200 <= status < 300:
            try:
                await self._sent.submit((msg.id, token))
            except SQLAlchemyError as e:  # stays "sending": its reports or the sweep settle it
                log.error("SMS %d: could not record it as sent: %s", msg.id,
                          str(e).splitlines()[0])
        elif status >= 500 or status in (401, 403, 429):
            # Kannel busy, or our credentials out of step with its config: not the text's
            # fault, so it waits (403 is logged: someone has to look).
            if status in (401, 403):
                log.error("SMS %d: Kannel refused our sendsms user (%d %s)", msg.id, status, body)
            await self._retry(msg, token, f"HTTP {status}: {body}")
        else:
            log.error("SMS %d to %s refused by Kannel: %d %s", msg.id, msg.to_number, status,
                      body)
            await self._db(self.outbox.mark_failed, msg.id, token, self.clock(),
                           f"HTTP {status}: {body}")

    def _mark_sent_many(self, claims: list[tuple[int, str]]) -> list[None]:
        self.outbox.mark_sent_many(claims, self.clock())
        return [None] * len(claims)

    async def _retry(self, msg: OutboxMessage, token: str, error: str) -> None:
        delay = backoff_delay(msg.attempts, self.backoff_base, self.backoff_cap, self.rand())
        await self._db(self.outbox.mark_retry, msg.id, token, self.clock(),
                       dt.timedelta(seconds=delay), error)

    async def _db(self, fn: Callable[..., object], *args: object) -> None:
        try:
            await asyncio.to_thread(fn, *args)
        except SQLAlchemyError as e:  # the row stays "sending": the sweep requeues it
            log.error("SMS outbox update failed: %s", str(e).splitlines()[0])

    def _gateway(self, ok: bool, why: str = "") -> None:
        """Log the gateway going away and coming back once, not once per message."""
        if ok != self._gateway_ok:
            if ok:
                log.info("SMS gateway %s answers", self.target.url)
            else:
                log.warning("SMS gateway %s unavailable (%s): texts wait in the outbox",
                            self.target.url, why)
            self._gateway_ok = ok
