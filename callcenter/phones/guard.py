"""Refuses SIP sources after repeated authentication failures (rules in phones/guard_rules.py).

Fed by ``AmiWatcher(on_auth_failure=guard.record)``. Whenever the refused set changes it awaits
``apply(sources)`` with every refused source in address order; the composition root makes that
re-render pjsip.conf with the refused sources and reload res_pjsip.so. A failed ``apply`` is
logged and tried again on the next ``expire()`` tick, so a ban is never lost silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from callcenter.clock import steady_now
from callcenter.phones import guard_rules as auth_guard
from callcenter.phones.devices import AuthFailure
from callcenter.phones.guard_rules import GuardPolicy, GuardState

log = logging.getLogger(__name__)

Apply = Callable[[tuple[str, ...]], Awaitable[None]]


class AuthGuard:
    """Counts failures per source, refuses a source for a while, never a trusted network.
    Windows and bans run on the steady clock (a wall-clock step changes neither)."""

    def __init__(self, trusted_networks: Iterable[str], apply: Apply,
                 clock: Callable[[], datetime] = steady_now, *,
                 policy: GuardPolicy | None = None):
        self.trusted = auth_guard.parse_networks(trusted_networks)
        self.policy = policy or GuardPolicy()
        self._apply = apply
        self._clock = clock
        self._state = GuardState()
        self._applied: tuple[str, ...] = ()
        self._lock = asyncio.Lock()
        self.scanner_requests = 0  # requests refused for a scanner's User-Agent (/metrics)

    @property
    def banned(self) -> tuple[str, ...]:
        """The sources refused now, in address order."""
        return self._state.banned_sources()

    async def record(self, failure: AuthFailure) -> None:
        """Count one authentication failure (the watcher's on_auth_failure)."""
        if failure.service.upper() != "PJSIP":
            # Only SIP sources can be refused in pjsip.conf; AMI listens on loopback only.
            log.warning("%s authentication failure from %s (account %r, %s)",
                        failure.service, failure.source_ip, failure.account, failure.kind)
            return
        async with self._lock:
            verdict = auth_guard.record_failure(self._state, failure, self._clock(),
                                                self.trusted, self.policy)
            self._state = verdict.state
            if failure.scanner:
                self.scanner_requests += 1
                self._log_scanner(failure, verdict)
            elif verdict.trusted:
                log.warning("SIP authentication failure from trusted %s (account %r, %s), "
                            "%d in %.0f s: never refused (carrier network)",
                            failure.source_ip, failure.account, failure.kind,
                            verdict.failures, self.policy.window_s)
            elif verdict.banned_until is not None:
                log.warning("SIP source %s refused for %.0f s: %d authentication failures in "
                            "%.0f s (last account %r, %s)", failure.source_ip,
                            self.policy.ban_s, verdict.failures, self.policy.window_s,
                            failure.account, failure.kind)
            else:
                log.info("SIP authentication failure from %s (account %r, %s), %d of %d in "
                         "%.0f s", failure.source_ip, failure.account, failure.kind,
                         verdict.failures, self.policy.max_failures, self.policy.window_s)
            await self._sync()

    def _log_scanner(self, failure: AuthFailure, verdict: auth_guard.Verdict) -> None:
        if verdict.trusted:
            log.warning("SIP scanner User-Agent from trusted %s: request denied, the source "
                        "never refused as a whole (carrier network)", failure.source_ip)
        elif verdict.banned_until is not None:
            log.warning("SIP source %s refused for %.0f s: a SIP scanner's User-Agent",
                        failure.source_ip, self.policy.ban_s)

    async def expire(self) -> tuple[str, ...]:
        """Lift the bans that ended; return the sources lifted."""
        async with self._lock:
            self._state, lifted = auth_guard.expire(self._state, self._clock(), self.policy)
            for source in lifted:
                log.warning("SIP source %s no longer refused (ban of %.0f s ended)",
                            source, self.policy.ban_s)
            await self._sync()
            return lifted

    async def run(self, interval_s: float = 5.0) -> None:
        """Call expire() every interval until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.expire()
            except Exception:  # noqa: BLE001 - the guard must outlive one bad tick
                log.exception("expiring SIP bans failed")

    async def _sync(self) -> None:
        wanted = self._state.banned_sources()
        if wanted == self._applied:
            return
        try:
            await self._apply(wanted)
        except Exception:
            log.exception("applying refused SIP sources %s failed; retried on the next tick",
                          ", ".join(wanted) or "(none)")
            return
        self._applied = wanted
