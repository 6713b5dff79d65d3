"""Refusing SIP sources after repeated authentication failures; pure.

A source (IP address) that fails authentication ``max_failures`` times within ``window_s``
seconds is refused for ``ban_s`` seconds. Sources inside the trusted networks (the carrier
trunk's ``trusted_networks``) are never refused, whatever they send: cutting the carrier off
would cut every citizen off; their failures are still reported so the log shows them.

Each failure event counts once. With Asterisk 22 one REGISTER from an unknown account raises
three failure events (see devices.py), one with a wrong password raises one: an unknown
account is refused after two attempts, a wrong password after five (defaults). A request
refused for carrying a SIP scanner's User-Agent (``AuthFailure.scanner``) refuses its source at
once: no phone of ours sends one.
Time is the caller's clock (``now``), for the window and the bans alike.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from callcenter.phones.devices import AuthFailure

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Failure times kept per trusted source (only counted for the log): bounds memory under a flood.
TRUSTED_KEEP = 1000


@dataclass(frozen=True)
class GuardPolicy:
    """How many failures in how long refuse a source, and for how long."""

    max_failures: int = 5
    window_s: float = 60.0
    ban_s: float = 600.0

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window_s <= 0 or self.ban_s <= 0:
            raise ValueError("max_failures >= 1, window_s > 0 and ban_s > 0 expected")


@dataclass(frozen=True)
class GuardState:
    """Recent failure times per source and refused sources with the time each ban ends."""

    failures: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    banned: Mapping[str, datetime] = field(default_factory=dict)

    def banned_sources(self) -> tuple[str, ...]:
        """The refused sources in address order."""
        return sort_sources(self.banned)


@dataclass(frozen=True)
class Verdict:
    """What one failure did: the new state, failures counted, and any ban it started."""

    state: GuardState
    failures: int
    trusted: bool
    banned_until: datetime | None
    changed: bool


def sort_sources(sources: Iterable[str]) -> tuple[str, ...]:
    """Addresses in numeric order (IPv4 before IPv6)."""
    def key(s: str) -> tuple[int, int, str]:
        try:
            ip = ipaddress.ip_address(s)
        except ValueError:
            return (9, 0, s)
        return (ip.version, int(ip), s)
    return tuple(sorted(set(sources), key=key))


def parse_networks(networks: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings -> networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def is_trusted(source: str, trusted: Iterable[Network]) -> bool:
    """True when the source lies inside one of the trusted networks."""
    try:
        ip = ipaddress.ip_address(source)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in trusted)


def record_failure(state: GuardState, failure: AuthFailure, now: datetime,
                   trusted: Iterable[Network], policy: GuardPolicy = GuardPolicy()) -> Verdict:
    """Count one failure at ``now``; refuse the source once it reaches the policy's limit
    (at the first request with a scanner's User-Agent)."""
    if failure.scanner:
        policy = replace(policy, max_failures=1)
    source = failure.source_ip
    window_start = now - timedelta(seconds=policy.window_s)
    recent = tuple(t for t in state.failures.get(source, ()) if t > window_start) + (now,)
    if source in state.banned and state.banned[source] > now:
        # Already refused (the failure raced the reload): the ban stands as it is.
        return Verdict(state, len(recent), False, None, False)
    if is_trusted(source, trusted):
        failures = {**state.failures, source: recent[-TRUSTED_KEEP:]}
        return Verdict(GuardState(failures, state.banned), len(recent), True, None, False)
    if len(recent) >= policy.max_failures:
        until = now + timedelta(seconds=policy.ban_s)
        failures = {k: v for k, v in state.failures.items() if k != source}
        return Verdict(GuardState(failures, {**state.banned, source: until}), len(recent),
                       False, until, True)
    failures = {**state.failures, source: recent}
    return Verdict(GuardState(failures, state.banned), len(recent), False, None, False)


def expire(state: GuardState, now: datetime,
           policy: GuardPolicy = GuardPolicy()) -> tuple[GuardState, tuple[str, ...]]:
    """Lift bans that ended at or before ``now`` and forget failures older than the window."""
    lifted = sort_sources(s for s, until in state.banned.items() if until <= now)
    banned = {s: until for s, until in state.banned.items() if until > now}
    window_start = now - timedelta(seconds=policy.window_s)
    failures = {s: kept for s, times in state.failures.items()
                if (kept := tuple(t for t in times if t > window_start))}
    return GuardState(failures, banned), lifted
