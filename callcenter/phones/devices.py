"""Operator phones' reachability and SIP authentication failures, read from AMI events; pure.

Field names and values as Asterisk 22 sends them (checked against a running 22.x and
main/stasis_endpoints.c, main/security_events.c, res/res_pjsip/pjsip_configuration.c):

* ``PeerStatus`` (class system): ``ChannelType: PJSIP``, ``Peer: PJSIP/101``,
  ``PeerStatus: Reachable|Unreachable``. This is Asterisk's own verdict for the whole endpoint
  (online while at least one contact of its AORs is available: a registered contact without
  qualify, or a qualified contact that answered), so it is the primary fact.
* ``DeviceStateChange`` (class call): ``Device: PJSIP/101``, ``State: NOT_INUSE|INUSE|BUSY|
  RINGING|RINGINUSE|ONHOLD|UNAVAILABLE|INVALID|UNKNOWN``. UNAVAILABLE follows an offline
  endpoint; UNKNOWN is transient (Asterisk asks the channel driver again) and says nothing.
* ``EndpointList`` (the ``PJSIPShowEndpoints`` listing): ``ObjectName: 101``,
  ``DeviceState: Not in use|In use|Busy|Ringing|Ring+Inuse|On Hold|Unavailable|Invalid|Unknown``;
  used to seed every endpoint's state on (re)connect. Unknown counts as unreachable there:
  a phone is offered calls only once Asterisk says it can take them.
* ``ContactStatus`` (class system): ``ContactStatus: Created|NonQualified|Reachable|Unreachable|
  Removed|Updated|Unknown``, ``AOR``, ``EndpointName``, ``URI``. It is per contact (an AOR may
  hold several), so it is read as a ``ContactChange`` for the log, never as the endpoint's state.
* Security events (class security): ``ChallengeResponseFailed`` (a known account, wrong
  password), ``InvalidPassword``, ``InvalidAccountID`` (no such account), with ``Service``
  (PJSIP, AMI), ``AccountID``, ``RemoteAddress: IPV4/UDP/127.0.0.2/5060``, ``SessionID``
  (SIP Call-ID) and ``EventTV: 2026-11-23T13:11:30.607+0000``. Seen with Asterisk 22: one
  REGISTER with an unknown account raises InvalidAccountID twice (before and after the
  challenge) and ChallengeResponseFailed once (AccountID ``<unknown>``); one REGISTER with a
  wrong password raises ChallengeResponseFailed once (with ``Challenge``, the nonce answered, and
  ``Response``). One forged packet raises any of them: a REGISTER without credentials for no
  account raises InvalidAccountID; one with a made-up ``Authorization`` (a nonce we never sent)
  raises ChallengeResponseFailed, for a real account too (Asterisk checks the nonce only after
  a correct digest). ``ChallengeSent`` carries no nonce, so nonces cannot be matched either.
* ``FailedACL`` (class security): a request refused by an ACL before any challenge, with
  ``AccountID`` the endpoint it was for and ``ACLName`` (``not_match_endpoint_acl`` for an
  endpoint's own deny/permit). Only those for ``SCANNER_ENDPOINT`` are kept: pjsip.conf
  sends every request carrying a known scanner's User-Agent there, and denies it everything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

AUTH_FAILURE_EVENTS = ("ChallengeResponseFailed", "InvalidPassword", "InvalidAccountID",
                       "FailedACL")
# The PJSIP endpoint that requests with a SIP scanner's User-Agent are identified as (its
# identify section matches the User-Agent header); it denies every source, so each gets 403.
SCANNER_ENDPOINT = "sip-scanner"
# User-Agent substrings of the SIP scanners seen on the Internet (SIPVicious and its forks,
# sipcli, VaxSIP's SDK, sundayddr, iWar, sip-scan); matched ignoring case.
SCANNER_USER_AGENTS = ("friendly-scanner", "sipvicious", "sipcli", "vaxsipuseragent",
                       "sundayddr", "iwar", "sip-scan", "sipscan")
REACHABILITY_EVENTS = ("PeerStatus", "DeviceStateChange")

# DeviceStateChange's State (ast_devstate2str's enum names) -> reachable; absent: no verdict.
_DEVICE_STATES: dict[str, bool] = {
    "NOT_INUSE": True, "INUSE": True, "BUSY": True, "RINGING": True, "RINGINUSE": True,
    "ONHOLD": True, "UNAVAILABLE": False, "INVALID": False,
}
# EndpointList's DeviceState (ast_devstate_str's labels) -> reachable.
_DEVICE_LABELS: dict[str, bool] = {
    "not in use": True, "in use": True, "busy": True, "ringing": True, "ring+inuse": True,
    "on hold": True, "unavailable": False, "invalid": False, "unknown": False,
}
_PEER_STATUS: dict[str, bool] = {"reachable": True, "unreachable": False}


@dataclass(frozen=True)
class Reachability:
    """Whether the PJSIP endpoint (an operator's extension) can be offered a call now."""

    endpoint: str
    reachable: bool


@dataclass(frozen=True)
class ContactChange:
    """One registered contact of an endpoint changed status (Created, Reachable, Removed...)."""

    endpoint: str
    aor: str
    uri: str
    status: str


@dataclass(frozen=True)
class AuthFailure:
    """A failed SIP (or AMI) authentication from one source address."""

    source_ip: str
    account: str
    at: datetime
    kind: str = "ChallengeResponseFailed"
    service: str = "PJSIP"
    session: str = ""

    @property
    def scanner(self) -> bool:
        """A request refused for carrying a SIP scanner's User-Agent (see SCANNER_ENDPOINT)."""
        return self.kind == "FailedACL" and self.account == SCANNER_ENDPOINT


def _get(event: Mapping[str, object], key: str) -> str:
    """A header's value whatever its case; repeated headers give their first value."""
    for k, v in event.items():
        if k.lower() == key.lower():
            if isinstance(v, list | tuple):
                return str(v[0]) if v else ""
            return str(v)
    return ""


def _pjsip_resource(device: str) -> str | None:
    tech, sep, resource = device.partition("/")
    if not sep or tech.upper() != "PJSIP" or not resource:
        return None
    return resource


def reachability(event: Mapping[str, object]) -> Reachability | None:
    """PeerStatus, DeviceStateChange or an EndpointList row -> the endpoint's reachability."""
    name = _get(event, "Event")
    if name == "PeerStatus":
        if _get(event, "ChannelType").upper() != "PJSIP":
            return None
        endpoint = _pjsip_resource(_get(event, "Peer"))
        verdict = _PEER_STATUS.get(_get(event, "PeerStatus").lower())
    elif name == "DeviceStateChange":
        endpoint = _pjsip_resource(_get(event, "Device"))
        verdict = _DEVICE_STATES.get(_get(event, "State").upper())
    elif name == "EndpointList":
        endpoint = _get(event, "ObjectName") or None
        verdict = _DEVICE_LABELS.get(_get(event, "DeviceState").lower(), False)
    else:
        return None
    if endpoint is None or verdict is None:
        return None
    return Reachability(endpoint, verdict)


def contact_change(event: Mapping[str, object]) -> ContactChange | None:
    """A ContactStatus event (or ContactList row) -> the contact's new status."""
    name = _get(event, "Event")
    if name == "ContactStatus":
        endpoint, status = _get(event, "EndpointName"), _get(event, "ContactStatus")
        aor, uri = _get(event, "AOR"), _get(event, "URI")
    elif name == "ContactList":
        endpoint, status = _get(event, "Endpoint"), _get(event, "Status")
        aor, uri = _get(event, "ObjectName").partition(";")[0], _get(event, "Uri")
    else:
        return None
    if not endpoint or not status:
        return None
    return ContactChange(endpoint, aor, uri, status)


def parse_remote_address(value: str) -> str | None:
    """``IPV4/UDP/127.0.0.2/5060`` (or ``IPV6/UDP/::1/5060``) -> the address, else None."""
    parts = value.split("/")
    if len(parts) < 3:
        return None
    host = parts[2].strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def parse_event_tv(value: str) -> datetime | None:
    """Asterisk's EventTV (``2026-11-23T13:11:30.607+0000``) -> an aware datetime."""
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
    return None


def auth_failure(event: Mapping[str, object], now: datetime) -> AuthFailure | None:
    """A security event that means a failed authentication -> AuthFailure; else None."""
    name = _get(event, "Event")
    if name not in AUTH_FAILURE_EVENTS:
        return None
    if name == "FailedACL" and _get(event, "AccountID") != SCANNER_ENDPOINT:
        return None  # the refused sources' ACL (already refused) or an operator's permit
    source = parse_remote_address(_get(event, "RemoteAddress"))
    if source is None:
        return None
    at = parse_event_tv(_get(event, "EventTV"))
    if at is None:
        stamp = _get(event, "Timestamp")
        try:
            at = datetime.fromtimestamp(float(stamp), UTC) if stamp else now
        except (ValueError, OverflowError, OSError):
            at = now
    return AuthFailure(source_ip=source, account=_get(event, "AccountID"), at=at, kind=name,
                       service=_get(event, "Service") or "PJSIP",
                       session=_get(event, "SessionID"))
