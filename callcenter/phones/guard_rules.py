"""Refusing SIP sources after repeated wrong passwords; pure.

A source (IP address) that answers our digest challenge wrongly for an account that exists
``max_failures`` times within ``window_s`` seconds is refused for ``ban_s`` seconds. Sources
inside the trusted networks (the carrier trunk's ``trusted_networks`` and ``sip_guard.
never_refuse``) are never refused, whatever they send: cutting the carrier (or the operators'
office) off would cut every citizen off; their failures are still reported for the log. At most
``max_refused`` sources are refused at once: a new refusal beyond that lifts the oldest ones.

Only that one kind of failure counts (``counts_toward_refusal``). A UDP source address is
trivially forged, so an event that fires on a single packet must never refuse anyone: else
anybody could cut an operator off by sending packets "from" the operator's address. So
``InvalidAccountID`` (no such account: fires before any challenge), a digest answer for no
account (ChallengeResponseFailed with AccountID ``<unknown>``, Asterisk's artificial endpoint)
and a scanner's User-Agent (``FailedACL`` of the scanner endpoint) are only counted and logged
(``/metrics``), never refused, at any threshold: a threshold of N would only mean N forged
packets, a millisecond's work. Such probes cannot take over an account anyway: Asterisk
challenges unknown accounts like known ones and the scanner endpoint denies every request.

Limit, checked against Asterisk 22: a ChallengeResponseFailed does not prove a round trip either.
Asterisk checks the nonce only after a correct digest, so a forged REGISTER carrying an
``Authorization`` header with a made-up nonce for a real extension raises it too; and the nonce
is keyed by a secret UUID inside Asterisk, so we cannot tell a nonce we issued from a made-up
one. Such forged answers still count: telling them apart needs the operators on TCP/TLS (the
handshake proves the address) or the operators' networks in ``never_refuse``.
Time is the caller's clock (``now``), for the window and the bans alike.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from callcenter.phones.devices import AuthFailure

# AccountID of a digest answer Asterisk could not match to an account (its artificial endpoint).
UNKNOWN_ACCOUNT = "<unknown>"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Failure times kept per trusted source (only counted for the log): bounds memory under a flood.
TRUSTED_KEEP = 1000


@dataclass(frozen=True)
class GuardPolicy:
    """How many wrong passwords in how long refuse a source, for how long, and how many
    sources may be refused at once."""

    max_failures: int = 5
    window_s: float = 60.0
    ban_s: float = 600.0
    max_refused: int = 1000

    def __post_init__(self) -> None:
        if (self.max_failures < 1 or self.window_s <= 0 or self.ban_s <= 0
                or self.max_refused < 1):
            raise ValueError("max_failures >= 1, window_s > 0, ban_s > 0 and max_refused >= 1 "
                             "expected")


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
    """What one failure did: the new state, failures counted, any ban it started and the
    oldest refusals it lifted to stay within ``max_refused``; ``counted`` False for a failure
    that never counts (see ``counts_toward_refusal``)."""

    state: GuardState
    failures: int
    trusted: bool
    banned_until: datetime | None
    changed: bool
    counted: bool = True
    evicted: tuple[str, ...] = ()


def _address_key(s: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return (9, 0, s)
    return (ip.version, int(ip), s)


def sort_sources(sources: Iterable[str]) -> tuple[str, ...]:
    """Addresses in numeric order (IPv4 before IPv6)."""
    return tuple(sorted(set(sources), key=_address_key))


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


def counts_toward_refusal(failure: AuthFailure) -> bool:
    """A wrong digest answer for an account that exists: the only failure that may refuse
    its source (see the module's docs for why the others never do)."""
    return (failure.kind == "ChallengeResponseFailed" and not failure.scanner
            and failure.account not in ("", UNKNOWN_ACCOUNT))


def record_failure(state: GuardState, failure: AuthFailure, now: datetime,
                   trusted: Iterable[Network], policy: GuardPolicy = GuardPolicy()) -> Verdict:
    """Count one failure at ``now``; refuse the source once it reaches the policy's limit.
    A failure that does not count (``counts_toward_refusal``) leaves the state as it is."""
    source = failure.source_ip
    if not counts_toward_refusal(failure):
        return Verdict(state, 0, is_trusted(source, trusted), None, False, counted=False)
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
        # The new refusal always stays: room is made among the earlier ones.
        kept, evicted = cap_refused(state.banned, policy.max_refused - 1)
        return Verdict(GuardState(failures, {**kept, source: until}), len(recent), False, until,
                       True, evicted=evicted)
    failures = {**state.failures, source: recent}
    return Verdict(GuardState(failures, state.banned), len(recent), False, None, False)


def cap_refused(banned: Mapping[str, datetime],
                max_refused: int) -> tuple[dict[str, datetime], tuple[str, ...]]:
    """At most ``max_refused`` refusals: the oldest (earliest end; all last ``ban_s``) go
    first. The kept refusals and the sources lifted, in address order."""
    by_age = sorted(banned, key=lambda s: (banned[s], _address_key(s)))
    evicted = by_age[:max(0, len(by_age) - max_refused)]
    gone = set(evicted)
    return ({s: t for s, t in banned.items() if s not in gone}, sort_sources(gone))


def expire(state: GuardState, now: datetime,
           policy: GuardPolicy = GuardPolicy()) -> tuple[GuardState, tuple[str, ...]]:
    """Lift bans that ended at or before ``now`` and forget failures older than the window."""
    lifted = sort_sources(s for s, until in state.banned.items() if until <= now)
    banned = {s: until for s, until in state.banned.items() if until > now}
    window_start = now - timedelta(seconds=policy.window_s)
    failures = {s: kept for s, times in state.failures.items()
                if (kept := tuple(t for t in times if t > window_start))}
    return GuardState(failures, banned), lifted
