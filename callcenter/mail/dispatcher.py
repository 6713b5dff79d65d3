"""The mail dispatcher: takes due mails from the outbox and hands them to the SMTP server.

Outbox first, dispatcher second (as for SMS): a mail exists as a row before any server sees
it, and the row says what happened to it.

* *Not lost.* Server down, connection lost, 4xx: the mail goes back to "queued", due again
  after an exponential back-off with jitter (30 s doubling to 1 h, ``rules.retry_delay``),
  each failure logged as an ERROR; after ``MAX_ATTEMPTS`` tries it is "failed". A 5xx refusal
  is "failed" at once. No ``mail:`` config (or ``enabled: false``): nothing is claimed, the
  mails wait.
* *Sent once.* Claims are atomic (``MailOutbox.claim_due``): two dispatchers (two app
  instances) never take the same row. The window left is between the server's "250 OK" to
  DATA and our commit of "sent": a crash there leaves the row "sending", and after
  ``stuck_after`` it is sent again (SMTP has no way to ask whether a mail arrived). The
  Message-ID is the same on every try, so a recipient's mail system can tell the copies.
  Stopping the app does not open that window: the mail in flight gets up to
  ``drain_timeout`` to have its outcome recorded.

Several mails go one after the other, each on its own SMTP connection, in a worker thread:
reports are a handful a day. ``stuck_after`` (30 min) is well above a batch's worst case
(``batch`` 10 x the 60 s SMTP timeout), so a slow server does not make a live claim look dead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import random
from collections.abc import Callable

from callcenter.clock import utcnow
from callcenter.mail.rules import gives_up, retry_delay, sender_address
from callcenter.mail.sender import (
    MailError,
    MailServer,
    PartlySent,
    PermanentMailError,
    TemporaryMailError,
    send_mail,
)
from callcenter.mail.store import MailOutbox, OutboxMail

log = logging.getLogger(__name__)

SendFn = Callable[..., None]


def message_id(mail: OutboxMail, sender: str) -> str:
    """The same Message-ID on every try of one outbox row."""
    digest = hashlib.sha256(mail.dedupe_key.encode()).hexdigest()[:16]
    domain = sender_address(sender).rpartition("@")[2] or "hotline1022.invalid"
    return f"<hotline1022.{mail.id}.{digest}@{domain}>"


class MailDispatcher:
    """Sends due outbox mails until cancelled (`run`), or once (`run_once`)."""

    def __init__(self, outbox: MailOutbox, server: Callable[[], MailServer | None], *,
                 poll_interval: float = 5.0, batch: int = 10,
                 stuck_after: dt.timedelta = dt.timedelta(minutes=30),
                 drain_timeout: float = 5.0,
                 clock: Callable[[], dt.datetime] = utcnow,
                 rand: Callable[[], float] = random.random, send: SendFn = send_mail):
        self.outbox = outbox
        self.server = server
        self.poll_interval = poll_interval
        self.batch = batch
        self.stuck_after = stuck_after
        self.drain_timeout = drain_timeout
        self.clock = clock
        self.rand = rand
        self.send = send
        self._wake = asyncio.Event()
        self._config_problem: str | None = None

    def wake(self) -> None:
        """Look for due mails now (after an enqueue in this process) instead of polling."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and send until cancelled; database or server trouble never ends the loop."""
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            done = 0
            # Cleared before looking, not after: a wake while a batch is being sent (a report
            # queued meanwhile) must make the next wait return at once, not be lost to it.
            self._wake.clear()
            try:
                if loop.time() >= next_sweep:
                    stuck = await asyncio.to_thread(self.outbox.requeue_stuck, self.clock(),
                                                    self.stuck_after)
                    if stuck:
                        log.warning("mail: %d mail(s) without outcome for %s requeued", stuck,
                                    self.stuck_after)
                    next_sweep = loop.time() + 60.0
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # database away (or a bug): the rows wait, so do we
                log.error("mail dispatcher: %s; retrying", str(e).splitlines()[0][:300]
                          if str(e) else repr(e))
            if done < self.batch:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                except TimeoutError:
                    pass

    def _server(self) -> MailServer | None:
        server: MailServer | None = None
        problem: str | None
        try:
            server = self.server()
        except MailError as e:
            problem = str(e)
        else:
            problem = None if server is not None else "no mail server configured"
        if problem != self._config_problem:  # say it once, not every poll
            if server is None and problem is not None and self._config_problem is None \
                    and problem.startswith("no mail server"):
                log.info("mail: no mail server configured (mail: in the config); mails wait "
                         "in the outbox")
            elif problem is not None:
                log.error("mail: not sending (%s); mails wait in the outbox", problem)
            elif self._config_problem is not None:
                log.info("mail: sending again")
            self._config_problem = problem
        return None if problem is not None else server

    async def run_once(self, ids: list[int] | None = None) -> int:
        """Send the mails due now (up to `batch`; of `ids` only, if given); how many were
        claimed."""
        server = self._server()
        if server is None:
            return 0
        mails = await asyncio.to_thread(self.outbox.claim_due, self.clock(), self.batch, ids)
        for i, mail in enumerate(mails):
            sending = asyncio.ensure_future(self._send(server, mail))
            try:
                await asyncio.shield(sending)
            except asyncio.CancelledError:
                await self._drain(sending)
                rest = [m.id for m in mails[i + 1:]]
                if rest:
                    await asyncio.to_thread(self.outbox.release, rest, mail.claim_token or "")
                raise
        return len(mails)

    async def _drain(self, sending: asyncio.Future[None]) -> None:
        """Stopping mid-send: the SMTP exchange runs on in its thread whatever we do, so wait
        (up to `drain_timeout`) for its outcome to be recorded. Cut short, a mail the server
        took stays "sending" and the stuck sweep sends it a second time."""
        done, _ = await asyncio.wait({sending}, timeout=self.drain_timeout)
        if not done:
            sending.cancel()
            log.warning("mail: stopping before the mail in flight had an outcome; it stays "
                        "\"sending\" and is sent again after %s", self.stuck_after)
        await asyncio.gather(sending, return_exceptions=True)

    async def _send(self, server: MailServer, mail: OutboxMail) -> None:
        token = mail.claim_token
        assert token is not None
        files = await asyncio.to_thread(self.outbox.attachments, mail.id)
        try:
            await asyncio.to_thread(self.send, server, mail.to, mail.subject, mail.body, files,
                                    message_id(mail, server.sender))
        except PartlySent as e:
            log.error("mail %d (%s) sent, but some recipients were refused: %s", mail.id,
                      mail.dedupe_key, e)
            await asyncio.to_thread(self.outbox.mark_sent, mail.id, token, self.clock())
            return
        except PermanentMailError as e:
            log.error("mail %d (%s) to %s refused for good: %s", mail.id, mail.dedupe_key,
                      ", ".join(mail.to), e)
            await asyncio.to_thread(self.outbox.mark_failed, mail.id, token, str(e))
            return
        except (TemporaryMailError, MailError, OSError) as e:
            if gives_up(mail.attempts):
                log.error("mail %d (%s) not sent after %d tries, given up: %s", mail.id,
                          mail.dedupe_key, mail.attempts, e)
                await asyncio.to_thread(self.outbox.mark_failed, mail.id, token,
                                        f"given up after {mail.attempts} tries: {e}")
                return
            delay = retry_delay(mail.attempts, self.rand())
            log.error("mail %d (%s) not sent (try %d): %s; next try in %ds", mail.id,
                      mail.dedupe_key, mail.attempts, e, delay.total_seconds())
            await asyncio.to_thread(self.outbox.mark_retry, mail.id, token, self.clock(), delay,
                                    str(e))
            return
        await asyncio.to_thread(self.outbox.mark_sent, mail.id, token, self.clock())
        log.info("mail %d (%s) sent to %s", mail.id, mail.dedupe_key, ", ".join(mail.to))
