"""Reachability and auth-failure facts from AMI events (shapes captured from Asterisk 22)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from callcenter.phones.devices import (
    SCANNER_ENDPOINT,
    AuthFailure,
    ContactChange,
    Reachability,
    auth_failure,
    contact_change,
    parse_event_tv,
    parse_remote_address,
    reachability,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ami"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def messages(name: str) -> list[dict[str, str]]:
    """The messages of a captured AMI fixture as plain header dicts."""
    out = []
    for block in (FIXTURES / name).read_text().split("\n\n"):
        headers = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if headers:
            out.append(headers)
    return out


@pytest.mark.parametrize(("event", "expected"), [
    ({"Event": "PeerStatus", "ChannelType": "PJSIP", "Peer": "PJSIP/101",
      "PeerStatus": "Reachable"}, Reachability("101", True)),
    ({"Event": "PeerStatus", "ChannelType": "PJSIP", "Peer": "PJSIP/101",
      "PeerStatus": "Unreachable"}, Reachability("101", False)),
    ({"Event": "PeerStatus", "ChannelType": "IAX2", "Peer": "IAX2/101",
      "PeerStatus": "Reachable"}, None),
    ({"Event": "PeerStatus", "ChannelType": "PJSIP", "Peer": "PJSIP/101",
      "PeerStatus": "Lagged"}, None),
    ({"Event": "DeviceStateChange", "Device": "PJSIP/101", "State": "NOT_INUSE"},
     Reachability("101", True)),
    ({"Event": "DeviceStateChange", "Device": "PJSIP/101", "State": "INUSE"},
     Reachability("101", True)),
    ({"Event": "DeviceStateChange", "Device": "PJSIP/101", "State": "RINGING"},
     Reachability("101", True)),
    ({"Event": "DeviceStateChange", "Device": "PJSIP/101", "State": "UNAVAILABLE"},
     Reachability("101", False)),
    ({"Event": "DeviceStateChange", "Device": "PJSIP/101", "State": "INVALID"},
     Reachability("101", False)),
    ({"Event": "DeviceStateChange", "Device": "PJSIP/101", "State": "UNKNOWN"}, None),
    ({"Event": "DeviceStateChange", "Device": "Queue:sales", "State": "INUSE"}, None),
    ({"Event": "DeviceStateChange", "Device": "PJSIP/", "State": "INUSE"}, None),
    ({"Event": "EndpointList", "ObjectName": "102", "DeviceState": "Unknown"},
     Reachability("102", False)),
    ({"Event": "Newchannel", "Channel": "PJSIP/101-00000001"}, None),
])
def test_given_an_ami_event_when_read_then_the_endpoint_reachability_or_none(
        event: dict[str, str], expected: Reachability | None) -> None:
    assert reachability(event) == expected


def test_given_header_names_in_another_case_when_read_then_still_understood() -> None:
    event = {"event": "peerstatus", "channeltype": "pjsip", "peer": "pjsip/101",
             "peerstatus": "REACHABLE"}
    assert reachability({**event, "event": "PeerStatus"}) == Reachability("101", True)


def test_given_the_captured_registration_when_read_then_101_becomes_reachable() -> None:
    facts = [f for m in messages("events_101_registers.txt") if (f := reachability(m))]
    assert facts and set(facts) == {Reachability("101", True)}


def test_given_the_captured_unregistration_when_read_then_101_becomes_unreachable() -> None:
    facts = [f for m in messages("events_101_unregisters.txt") if (f := reachability(m))]
    assert facts and set(facts) == {Reachability("101", False)}


def test_given_a_phone_that_stops_answering_qualify_when_read_then_reachable_then_not() -> None:
    facts = [f for m in messages("events_102_registers_then_stops_answering.txt")
             if (f := reachability(m))]
    assert facts[0] == Reachability("102", True)
    assert facts[-1] == Reachability("102", False)


def test_given_the_captured_endpoint_listing_when_read_then_each_endpoint_seeded() -> None:
    facts = [f for m in messages("pjsip_show_endpoints_101_registered.txt")
             if (f := reachability(m))]
    assert facts == [Reachability("101", True), Reachability("102", False),
                     Reachability("trunk", False)]


def test_given_contact_status_events_when_read_then_contact_changes_not_reachability() -> None:
    events = [m for m in messages("events_101_registers.txt") if m["Event"] == "ContactStatus"]
    assert [reachability(e) for e in events] == [None, None]
    assert [contact_change(e) for e in events] == [
        ContactChange("101", "101", "sip:101@127.0.0.1:60989;ob", "NonQualified"),
        ContactChange("101", "101", "sip:101@127.0.0.1:60989;ob", "Reachable"),
    ]


def test_given_a_contact_list_row_when_read_then_its_aor_is_the_name_before_the_hash() -> None:
    row = {"Event": "ContactList", "ObjectName": "102;@8a0e", "Endpoint": "102",
           "Uri": "sip:102@127.0.0.1:59006;ob", "Status": "Unreachable"}
    assert contact_change(row) == ContactChange("102", "102", "sip:102@127.0.0.1:59006;ob",
                                                "Unreachable")


def test_given_the_captured_auth_failures_when_read_then_one_failure_per_event() -> None:
    failures = [f for m in messages("events_auth_failures_from_127.0.0.2.txt")
                if (f := auth_failure(m, NOW))]
    assert [(f.kind, f.account) for f in failures] == [
        ("ChallengeResponseFailed", "102"),   # known account, wrong password
        ("InvalidAccountID", "999"),          # unknown account: before the challenge
        ("InvalidAccountID", "999"),          # ... and after it
        ("ChallengeResponseFailed", "<unknown>"),
    ]
    assert {f.source_ip for f in failures} == {"127.0.0.2"}
    assert {f.service for f in failures} == {"PJSIP"}
    assert failures[0].at == datetime(2026, 11, 23, 13, 11, 30, 607000, tzinfo=UTC)
    assert failures[0].session == "DDxqSxLpRzsaPEYx0Pyp1Uw-GOD4cPj0"


def test_given_successful_auth_and_challenges_when_read_then_no_failure() -> None:
    ok = [m for m in messages("events_101_registers.txt")
          if m["Event"] in ("ChallengeSent", "SuccessfulAuth")]
    assert len(ok) == 2
    assert [auth_failure(m, NOW) for m in ok] == [None, None]


def test_given_a_failure_without_event_tv_when_read_then_timestamp_or_now_is_used() -> None:
    base = {"Event": "InvalidPassword", "RemoteAddress": "IPV4/TCP/127.0.0.1/40000",
            "AccountID": "admin", "Service": "AMI"}
    stamped = auth_failure({**base, "Timestamp": "1795439490.5"}, NOW)
    assert stamped is not None
    assert stamped.at == datetime.fromtimestamp(1795439490.5, UTC)
    assert stamped.service == "AMI"
    assert auth_failure(base, NOW) == AuthFailure("127.0.0.1", "admin", NOW,
                                                  "InvalidPassword", "AMI", "")


def test_given_an_unparsable_remote_address_when_read_then_no_failure() -> None:
    event = {"Event": "ChallengeResponseFailed", "RemoteAddress": "garbage"}
    assert auth_failure(event, NOW) is None


@pytest.mark.parametrize(("value", "expected"), [
    ("IPV4/UDP/127.0.0.2/5060", "127.0.0.2"),
    ("IPV4/TCP/10.1.2.3/45000", "10.1.2.3"),
    ("IPV6/UDP/::1/5060", "::1"),
    ("IPV6/UDP/[2001:db8::1]/5060", "2001:db8::1"),
    ("IPV4/UDP/not-an-ip/5060", None),
    ("", None),
])
def test_given_remote_addresses_when_parsed_then_the_ip(value: str, expected: str | None) -> None:
    assert parse_remote_address(value) == expected


def test_given_event_tv_without_fraction_when_parsed_then_aware_datetime() -> None:
    assert parse_event_tv("2026-11-23T13:11:30+0000") == datetime(2026, 11, 23, 13, 11, 30,
                                                                  tzinfo=UTC)
    assert parse_event_tv("yesterday") is None


def failed_acl(account: str, acl: str = "not_match_endpoint_acl") -> dict[str, str]:
    """A FailedACL security event in the shape Asterisk 22's res_pjsip raises it."""
    return {"Event": "FailedACL", "Privilege": "security,all", "Severity": "Error",
            "Service": "PJSIP", "EventVersion": "1", "AccountID": account,
            "SessionID": "5f1c@127.0.0.3", "LocalAddress": "IPV4/UDP/127.0.0.1/5060",
            "RemoteAddress": "IPV4/UDP/127.0.0.3/40112", "ACLName": acl,
            "EventTV": "2026-12-07T01:20:00.000+0000"}


def test_given_a_scanner_user_agent_denied_when_read_then_a_scanner_failure_of_its_source(
        ) -> None:
    failure = auth_failure(failed_acl(SCANNER_ENDPOINT), NOW)
    assert failure is not None and failure.scanner
    assert (failure.source_ip, failure.kind) == ("127.0.0.3", "FailedACL")


def test_given_other_acl_denials_when_read_then_not_counted_as_failures() -> None:
    # An operator's own permit, and the refused sources' ACL (already refused).
    assert auth_failure(failed_acl("101"), NOW) is None
    assert auth_failure(failed_acl("<unknown>", "refused-sources"), NOW) is None
    assert not AuthFailure("127.0.0.2", SCANNER_ENDPOINT, NOW).scanner  # a wrong password
