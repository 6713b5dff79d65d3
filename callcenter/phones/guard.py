"""Refuses SIP sources after repeated wrong passwords (rules in phones/guard_rules.py).

Fed by ``AmiWatcher(on_auth_failure=guard.record)``. Whenever the refused set changes it awaits
``apply(sources)`` with every refused source in address order; the composition root makes that
rewrite only the refused-sources file (pjsip_refused.conf) and reload res_pjsip.so, never a
full PBX render. A failed ``apply`` is logged and tried again on the next ``expire()`` tick, so
a ban is never lost silently. Failures that never refuse (unknown-account probes, scanners'
User-Agents: their source may be forged) are counted for /metrics and summed up in the log
once per tick, so a flood of forged packets cannot flood the log either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from callcenter.clock import steady_now
from callcenter.config.model import SipGuardConfig
from callcenter.phones import guard_rules as auth_guard
from callcenter.phones.devices import AuthFailure
from callcenter.phones.guard_rules import GuardPolicy, GuardState

log = logging.getLogger(__name__)

Apply = Callable[[tuple[str, ...]], Awaitable[None]]


def guard_policy(config: SipGuardConfig) -> GuardPolicy:
    """The guard's policy from the ``sip_guard`` config section."""
    return GuardPolicy(max_failures=config.max_failures, window_s=config.window_s,
                       ban_s=config.ban_s, max_refused=config.max_refused)


class AuthGuard:
    """Counts failures per source, refuses a source for a while, never a trusted network.
    Windows and bans run on the steady clock (a wall-clock step changes neither)."""

    def __init__(self, trusted_networks: Iterable[str], apply: Apply,
                 clock: Callable[[], datetime] = steady_now, *,
                 policy: GuardPolicy | None = None, never_refuse: Iterable[str] = ()):
        self.configure(trusted_networks, never_refuse, policy or GuardPolicy())
        self._apply = apply
        self._clock = clock
        self._state = GuardState()
        self._applied: tuple[str, ...] = ()
        self._lock = asyncio.Lock()
        # For /metrics: requests denied for a scanner's User-Agent, unknown-account probes,
        # refusals started, refusals lifted early to stay within max_refused.
        self.scanner_requests = 0
        self.account_probes = 0
        self.refusals = 0
        self.refusals_evicted = 0
        self._probes_logged = 0
        self._last_probe: AuthFailure | None = None

    def configure(self, trusted_networks: Iterable[str], never_refuse: Iterable[str],
                  policy: GuardPolicy) -> None:
        """The carrier's trusted networks, ``sip_guard.never_refuse`` and the policy in force
        (at start and on every config reload); refusals already made stand."""
        self.trusted = auth_guard.parse_networks((*trusted_networks, *never_refuse))
        self.policy = policy

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
            if not verdict.counted:
                self._count_uncounted(failure, verdict)
                return
            if verdict.trusted:
                log.warning("SIP authentication failure from trusted %s (account %r, %s), "
                            "%d in %.0f s: never refused (carrier or never_refuse network)",
                            failure.source_ip, failure.account, failure.kind,
                            verdict.failures, self.policy.window_s)
            elif verdict.banned_until is not None:
                self.refusals += 1
                log.warning("SIP source %s refused for %.0f s: %d wrong passwords in "
                            "%.0f s (last account %r, %s)", failure.source_ip,
                            self.policy.ban_s, verdict.failures, self.policy.window_s,
                            failure.account, failure.kind)
                if verdict.evicted:
                    self.refusals_evicted += len(verdict.evicted)
                    log.warning("SIP refused list full (%d): lifted the oldest refusal(s) of "
                                "%s", self.policy.max_refused, ", ".join(verdict.evicted))
            else:
                log.info("SIP authentication failure from %s (account %r, %s), %d of %d in "
                         "%.0f s", failure.source_ip, failure.account, failure.kind,
                         verdict.failures, self.policy.max_failures, self.policy.window_s)
            await self._sync()

    def _count_uncounted(self, failure: AuthFailure, verdict: auth_guard.Verdict) -> None:
        """A failure that never refuses its source (it may be forged): counted and logged."""
        if failure.scanner:
            self.scanner_requests += 1
            log.warning("SIP scanner User-Agent from %s%s: request denied, the source not "
                        "refused (one packet proves no source address)", failure.source_ip,
                        " (trusted)" if verdict.trusted else "")
            return
        self.account_probes += 1
        self._last_probe = failure
        log.debug("SIP probe from %s (account %r, %s): counted, never refused",
                  failure.source_ip, failure.account, failure.kind)

    def log_probes(self) -> None:
        """One line for the probes since the last call (the run() tick), if any."""
        new = self.account_probes - self._probes_logged
        if new and self._last_probe is not None:
            last = self._last_probe
            log.info("%d SIP unknown-account probe(s) since the last tick (last from %s, "
                     "account %r, %s): counted, never refused (the source may be forged)",
                     new, last.source_ip, last.account, last.kind)
        self._probes_logged = self.account_probes

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
                self.log_probes()
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
