"""AMI adapter (panoramisk): operators' phone reachability, SIP auth failures, raw actions.

``AmiWatcher.run()`` keeps one AMI session up for ever: connect, log in, seed the state of every
PJSIP endpoint (``PJSIPShowEndpoints``: ``on_reachability(endpoint, reachable)`` for each one,
on every (re)connect, since anything may have changed while we were away), then follow
``PeerStatus``/``DeviceStateChange`` (calling ``on_reachability`` only when an endpoint's value
changes) and the security events (``on_auth_failure``). Events are handled one at a time, in
the order Asterisk sent them; events that arrive while the seed is running wait for it.

A lost session (Asterisk stopped or restarted, ``Shutdown`` event, socket closed, or no answer
to the keep-alive ``Ping``) is retried with exponential backoff, logged once per outage (and
once when it is back), not on every retry.

panoramisk quirks handled here: its Manager reconnects on its own and re-sends unanswered
actions after a reconnect (an action may then run twice); ``AmiManager`` turns both off, fails
unanswered actions with ``AmiUnavailable`` and lets the watcher decide when to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from panoramisk import Manager
from panoramisk.message import Message

from callcenter.backoff import Backoff
from callcenter.phones import devices
from callcenter.phones.devices import AuthFailure

log = logging.getLogger(__name__)

OnReachability = Callable[[str, bool], Awaitable[None]]
OnAuthFailure = Callable[[AuthFailure], Awaitable[None]]
Connector = Callable[[], Awaitable["AmiManager"]]  # connected, Login sent

_SESSION_LOST = object()  # queue marker: the session ended, stop following events


class AmiError(Exception):
    """Base of this adapter's errors."""


class AmiUnavailable(AmiError):
    """No AMI session now (not connected, lost while waiting, or no answer in time)."""


class AmiLoginRefused(AmiError):
    """Asterisk refused our AMI username/secret (manager.conf and secrets disagree)."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error`` to an action; carries its Message."""


class AmiManager(Manager):  # type: ignore[misc]  # panoramisk is untyped
    """panoramisk's Manager without its own reconnect loop and action replay."""

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.lost: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: object) -> None:
        """Called by the protocol when the socket closed or Asterisk sent Shutdown."""
        self._connected = False
        pinger: Any = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        # The protocol queued unanswered actions for replay after a reconnect: fail them
        # instead, an Originate or Redirect must never run twice.
        while self.awaiting_actions:
            action = self.awaiting_actions.popleft()
            if not action.future.done():
                action.future.set_exception(AmiUnavailable("AMI connection lost"))
        if not self.lost.done():
            self.lost.set_result(exc)

    def close(self) -> None:
        """Close the socket; unanswered actions fail with AmiUnavailable."""
        super().close()
        self.connection_lost(None)


def _as_dict(message: Any) -> dict[str, Any]:
    return {k: v for k, v in message.items()}


class AmiWatcher:
    """One AMI session kept up for ever; reports reachability and auth failures."""

    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 on_reachability: OnReachability,
                 on_auth_failure: OnAuthFailure | None = None,
                 connector: Connector | None = None,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 keepalive_s: float = 10.0, action_timeout_s: float = 10.0,
                 clock: Callable[[], datetime] | None = None):
        self.host, self.port = host, port
        self._username, self._secret = username, secret
        self._on_reachability = on_reachability
        self._on_auth_failure = on_auth_failure
        self._connector: Connector = connector or self._connect
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.keepalive_s = keepalive_s
        self.action_timeout_s = action_timeout_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._manager: AmiManager | None = None
        self._connected = False
        self._closing = asyncio.Event()
        self._reachable: dict[str, bool] = {}
        self.sessions = 0  # sessions established so far (reconnects = sessions - 1)

    # -- public ---------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while an AMI session is logged in."""
        return self._connected

    @property
    def reachable(self) -> Mapping[str, bool]:
        """Last known reachability per endpoint (as reported to on_reachability)."""
        return dict(self._reachable)

    async def run(self) -> None:
        """Connect, seed, follow events; reconnect with backoff until close()."""
        backoff = Backoff(initial=self.backoff_initial_s, cap=self.backoff_max_s, jitter=0.2)
        outage_since: float | None = None
        while not self._closing.is_set():
            try:
                manager = await self._login(await self._connector())
            except (OSError, AmiError) as e:  # TimeoutError is an OSError
                if outage_since is None:
                    outage_since = time.monotonic()
                    level = logging.ERROR if isinstance(e, AmiLoginRefused) else logging.WARNING
                    log.log(level, "AMI %s:%d unavailable (%s); retrying with backoff up to "
                            "%g s", self.host, self.port, e or type(e).__name__,
                            self.backoff_max_s)
                await self._sleep(backoff.next())
                continue
            if self._closing.is_set():
                manager.close()
                break
            if outage_since is not None:
                log.warning("AMI %s:%d connected again after %.1f s", self.host, self.port,
                            time.monotonic() - outage_since)
            else:
                log.info("AMI %s:%d connected", self.host, self.port)
            outage_since = None
            backoff.reset()
            reason = await self._session(manager)
            if self._closing.is_set():
                break
            outage_since = time.monotonic()
            log.warning("AMI %s:%d session lost (%s); reconnecting", self.host, self.port,
                        reason)
            await self._sleep(backoff.current)

    async def close(self) -> None:
        """Stop run(): close the session and do not reconnect."""
        self._closing.set()
        if self._manager is not None:
            self._manager.close()

    async def send_action(self, action: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Send one AMI action; every message of its answer (list actions: each event).

        Raises AmiUnavailable when not connected or no answer within action_timeout_s,
        AmiActionError when Asterisk answers ``Response: Error``.
        """
        manager = self._manager
        if manager is None or not self._connected:
            raise AmiUnavailable("AMI not connected")
        return await self._send(manager, action)

    async def qualify(self, endpoint: str) -> None:
        """Ask Asterisk to qualify ``endpoint``'s contacts now (``PJSIPQualify``); a change
        comes back as the usual events. Raises as send_action."""
        await self.send_action({"Action": "PJSIPQualify", "Endpoint": endpoint})

    # -- internals ------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _connect(self) -> AmiManager:
        """Open the socket and log in (events on); raise on failure."""
        loop = asyncio.get_running_loop()
        manager = AmiManager(host=self.host, port=self.port, username=self._username,
                             secret=self._secret, events="on", loop=loop,
                             # our own keep-alive (below) notices a silent Asterisk; theirs
                             # only sends, so keep it out of the way
                             ping_delay=86400, ping_interval=86400,
                             log=logging.getLogger(f"{__name__}.panoramisk"))
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(manager.config["protocol_factory"], self.host, self.port),
            self.action_timeout_s)
        done: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        done.set_result((transport, protocol))
        manager.connection_made(done)  # sends Login; run() awaits the answer
        return manager

    async def _login(self, manager: AmiManager) -> AmiManager:
        pending = manager.authenticated_future
        try:
            if pending is not None:
                resp = await asyncio.wait_for(asyncio.shield(pending), self.action_timeout_s)
                ok = bool(resp.success)
                message = resp.message
            else:
                ok, message = bool(manager.authenticated), "login failed"
        except BaseException:
            manager.close()
            raise
        if not ok:
            manager.close()
            raise AmiLoginRefused(f"login refused: {message}")
        return manager

    async def _send(self, manager: AmiManager, action: Mapping[str, Any]) -> list[dict[str, Any]]:
        future = manager.send_action(dict(action))
        lost = manager.lost
        done, _ = await asyncio.wait({future, lost}, timeout=self.action_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if future not in done:
            raise AmiUnavailable(f"no answer to {action.get('Action')} "
                                 f"{'(connection lost)' if lost in done else 'in time'}")
        result = future.result()
        messages = result if isinstance(result, list) else [result]
        first = messages[0]
        if str(first.get("Response", "")).lower() in ("error", "fail", "failure"):
            raise AmiActionError(str(first.get("Message", "")) or "Response: Error")
        return [_as_dict(m) for m in messages]

    async def _session(self, manager: AmiManager) -> str:
        """Seed, then follow events until the session ends; return why it ended."""
        events: asyncio.Queue[object] = asyncio.Queue()

        def enqueue(_manager: object, message: Message) -> None:
            events.put_nowait(message)

        for name in (*devices.REACHABILITY_EVENTS, "ContactStatus",
                     *devices.AUTH_FAILURE_EVENTS):
            manager.register_event(name, enqueue)
        manager.lost.add_done_callback(lambda _f: events.put_nowait(_SESSION_LOST))
        self._manager = manager
        self._connected = True
        self.sessions += 1
        keepalive = asyncio.create_task(self._keepalive(manager), name="ami-keepalive")
        try:
            try:
                await self._seed(manager)
            except AmiError as e:
                manager.close()
                return f"seeding failed: {e}"
            while True:
                item = await events.get()
                if item is _SESSION_LOST:
                    break
                await self._handle(item)
            lost = manager.lost.result() if manager.lost.done() else None
            if isinstance(lost, Message):
                return f"Asterisk sent {lost.get('Event')}"
            return str(lost) if lost else "connection closed"
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
            self._connected = False
            manager.close()

    async def _seed(self, manager: AmiManager) -> None:
        try:
            rows = await self._send(manager, {"Action": "PJSIPShowEndpoints"})
        except AmiActionError as e:
            if "no endpoints" not in str(e).lower():
                raise
            rows = []  # Asterisk answers an empty listing with an error
        seeded = 0
        for row in rows:
            fact = devices.reachability(row)
            if fact is None:
                continue
            self._reachable[fact.endpoint] = fact.reachable
            seeded += 1
            await self._report(fact.endpoint, fact.reachable)
        log.info("AMI seeded %d PJSIP endpoints (%d reachable)", seeded,
                 sum(self._reachable.values()))

    async def _keepalive(self, manager: AmiManager) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self._send(manager, {"Action": "Ping"})
            except AmiActionError:
                continue
            except AmiUnavailable:
                if not manager.lost.done():
                    log.warning("AMI %s:%d does not answer Ping within %.0f s", self.host,
                                self.port, self.action_timeout_s)
                    manager.close()
                return

    async def _handle(self, event: Message) -> None:
        fact = devices.reachability(event)
        if fact is not None:
            if self._reachable.get(fact.endpoint) != fact.reachable:
                self._reachable[fact.endpoint] = fact.reachable
                log.info("PJSIP/%s %s (%s)", fact.endpoint,
                         "reachable" if fact.reachable else "unreachable", event.get("Event"))
                await self._report(fact.endpoint, fact.reachable)
            return
        contact = devices.contact_change(event)
        if contact is not None:
            log.debug("contact %s of %s: %s", contact.uri, contact.endpoint, contact.status)
            return
        failure = devices.auth_failure(event, self._clock())
        if failure is not None and self._on_auth_failure is not None:
            try:
                await self._on_auth_failure(failure)
            except Exception:
                log.exception("on_auth_failure failed for %s", failure.source_ip)

    async def replay(self) -> int:
        """Report every endpoint's last known reachability again (the live state was lost,
        e.g. Redis restarted empty); how many were reported."""
        known = dict(self._reachable)
        for endpoint, reachable in known.items():
            await self._report(endpoint, reachable)
        return len(known)

    async def _report(self, endpoint: str, reachable: bool) -> None:
        try:
            await self._on_reachability(endpoint, reachable)
        except Exception:
            # One failing consumer call (Redis hiccup) must not end the AMI session; the next
            # (re)connect seeds every endpoint again.
            log.exception("on_reachability(%s, %s) failed", endpoint, reachable)
