"""End to end, issue 15 item 4: hostile and malformed SIP from the trunk side (the trusted trunk
address 127.0.0.1) on the session's real stack (3 lines, no operators: an answered call hears the
greeting, then music on hold).

The INVITEs are made by hand (tests/e2e/rawsip.py) from a fixed loopback port: SIPp and pjsua2
escape or refuse what these tests must send (raw UTF-8 or bytes that are no UTF-8 at all in a
URI, dialplan syntax, an SDP that does not parse). Every wait is bounded (5 s at most per
INVITE). After each case: no channel in Asterisk (and ``GET /channels`` answers), no line held,
and the next normal call (valid SDP) is answered.

What each kind gets, and why:
- an SDP that does not parse: 400; an offer of G.729 alone: 488 (the trunk takes ulaw, alaw);
- a dialled number that is not a number (dialplan syntax, letters, %-escaped UTF-8 or bytes that
  are no UTF-8): 404 from the dialplan itself, before Stasis (no record: the app never sees it);
  one that is digits, however long (Asterisk keeps 79), reaches the app: 404 and a not_found
  record;
- a Request-URI (or From URI) that is not SIP syntax at all (``{``, raw UTF-8 or other bytes
  unescaped): PJSIP's parser drops the packet with a warning and cannot answer it, so the
  asserted outcome is "no answer, nothing created", not a 4xx;
- a caller ID (From user or display name) with dialplan syntax, 300 characters or non-ASCII, to
  the valid number 1022: answered, as a citizen's call must be whatever their carrier writes in
  the caller ID; asserted: the record keeps the number literally (``${LEN(abc)}`` is not turned
  into 3), the log shows it masked, and a number that is no UTF-8 is stored as "anonymous"
  (Asterisk cannot pass it to ARI and gives none).
"""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.rawsip import BROKEN_SDP, G729_ONLY_SDP, RawSipCaller
from tests.e2e.scenarios import record
from tests.e2e.stack import Stack, wait_until

pytestmark = pytest.mark.pbx

INVITE_TIMEOUT = 5.0


@pytest.fixture
def trunk(hotline: Stack) -> Iterator[RawSipCaller]:
    """A hand-made SIP caller on the trunk's trusted address, its own fixed port."""
    with RawSipCaller(hotline.sip_port) as caller:
        yield caller


def channels(stack: Stack) -> list[Any] | str:
    """ARI's channel list; while a channel whose name holds bytes that are not UTF-8 still
    exists (the caller's garbage, before its 404 is out), ARI answers 500: not empty yet."""
    try:
        return list(stack.ari("/channels"))
    except urllib.error.HTTPError as e:
        if e.code != 500:
            raise
        return f"ARI 500 listing channels: {e.read().decode(errors='replace')}"


def assert_nothing_held(stack: Stack) -> None:
    """No channel and no line held, within 5 s."""
    assert wait_until(lambda: channels(stack) == [], 5), channels(stack)
    assert wait_until(lambda: stack.pool_in_use() == 0, 5), stack.pool_in_use()


def assert_next_call_answered(stack: Stack, trunk: RawSipCaller) -> None:
    """A normal call right after: answered (200, line taken), then hung up (line back)."""
    call = trunk.invite("1022", from_user="0909000333", timeout=INVITE_TIMEOUT)
    assert call.code == 200, ([r.code for r in call.responses], stack.app_log_tail())
    assert wait_until(lambda: stack.pool_in_use() == 1, 3)
    assert trunk.bye(call) == 200
    assert_nothing_held(stack)


def test_given_broken_sdp_when_invite_then_400_nothing_held_and_next_call_answered(
        hotline: Stack, trunk: RawSipCaller) -> None:
    call = trunk.invite("1022", sdp=BROKEN_SDP, timeout=INVITE_TIMEOUT)
    assert call.code == 400, [r.code for r in call.responses]
    assert_nothing_held(hotline)
    assert_next_call_answered(hotline, trunk)


def test_given_g729_only_offer_when_invite_then_488_nothing_held_and_next_call_answered(
        hotline: Stack, trunk: RawSipCaller) -> None:
    call = trunk.invite("1022", sdp=G729_ONLY_SDP, timeout=INVITE_TIMEOUT)
    assert call.code == 488, [r.code for r in call.responses]
    assert_nothing_held(hotline)
    assert_next_call_answered(hotline, trunk)


# Request-URI users that are valid SIP but no number: %-escapes arrive decoded in Asterisk.
NOT_A_NUMBER = {
    "dial_app": "1022&Dial(PJSIP/101)",
    "shell_function": "%24%7BSHELL(id)%7D",  # ${SHELL(id)}
    "digits_then_function": "1022%24%7BLEN(abc)%7D",  # 1022${LEN(abc)}: not 10223
    "pattern": "_X.",
    "priority_comma": "1022,1",
    "newline": "1022%0Ainjected",
    "vietnamese_utf8": "1022%C4%90%C6%B0%E1%BB%9Dng%20d%C3%A2y",  # 1022Đường dây
    "not_utf8": "1022%FF%FE",  # once: stuck in Stasis() unanswered, GET /channels 500
}


@pytest.mark.parametrize("user", NOT_A_NUMBER.values(), ids=NOT_A_NUMBER.keys())
def test_given_dialled_number_not_a_number_when_invite_then_404_nothing_held_and_next_answered(
        hotline: Stack, trunk: RawSipCaller, user: str) -> None:
    log_size = len(hotline.app_log.read_bytes())
    call = trunk.invite(user, timeout=INVITE_TIMEOUT)
    assert call.code == 404, [r.code for r in call.responses]
    assert_nothing_held(hotline)
    # Refused by the dialplan before Stasis: the app never had the call.
    assert "arrived" not in hotline.app_log.read_bytes()[log_size:].decode(errors="replace")
    assert_next_call_answered(hotline, trunk)


def test_given_300_digits_dialled_when_invite_then_404_not_found_record_and_next_answered(
        hotline: Stack, trunk: RawSipCaller) -> None:
    digits = "0251" + "7" * 296
    call = trunk.invite(digits, from_user="0909000444", timeout=INVITE_TIMEOUT)
    assert call.code == 404, [r.code for r in call.responses]
    assert_nothing_held(hotline)
    rec = record(hotline, caller="0909000444", last=20, timeout=5, cli=True)
    # Asterisk keeps the first 79 characters of an extension (AST_MAX_EXTENSION).
    assert rec["outcome"] == "not_found" and digits.startswith(rec["dialled"])
    assert len(rec["dialled"]) == 79
    assert_next_call_answered(hotline, trunk)


# Not SIP syntax: the parser drops the whole packet (it cannot even answer it).
NOT_SIP = {
    "uri_braces": dict(user=b"${SHELL(id)}"),
    "uri_raw_utf8": dict(user="1022Đường".encode()),
    "uri_raw_bytes": dict(user=b"1022\xff\xfe"),
    "from_raw_utf8": dict(user=b"1022", from_user="Đường".encode()),
}


@pytest.mark.parametrize("parts", NOT_SIP.values(), ids=NOT_SIP.keys())
def test_given_uri_not_sip_syntax_when_invite_then_dropped_unanswered_and_next_answered(
        hotline: Stack, trunk: RawSipCaller, parts: dict[str, bytes]) -> None:
    pbx_log = hotline.layout.host("log") / "messages.log"
    size = pbx_log.stat().st_size
    call = trunk.invite(timeout=2.0, **parts)  # type: ignore[arg-type]
    assert call.responses == [], [r.code for r in call.responses]
    dropped = pbx_log.read_bytes()[size:].decode(errors="replace")
    assert "Dropping" in dropped and "PJSIP syntax error" in dropped, dropped
    assert_nothing_held(hotline)
    assert_next_call_answered(hotline, trunk)


# Caller IDs to the valid number 1022: (From user as sent, display name as sent, what the
# record keeps as the caller).
CALLER_IDS = {
    "number_function": ("0909%24%7BLEN(abc)%7D", None, "0909${LEN(abc)}"),
    "number_dial_app": ("0909&Dial(PJSIP/101)", None, "0909&Dial(PJSIP/101)"),
    "number_300": ("9" * 300, None, "9" * 79),  # PJSIP keeps the first 79 characters
    "number_vietnamese": ("%C4%90%C6%B0%E1%BB%9Dng", None, "Đường"),
    "number_not_utf8": ("0909%FF%FE", None, "anonymous"),
    "name_function": ("0909000555", b"${LEN(abc)}&Dial(x)", "0909000555"),
    "name_300": ("0909000556", b"A" * 300, "0909000556"),
    "name_vietnamese": ("0909000557", "Nguyễn Văn Đức".encode(), "0909000557"),
    "name_not_utf8": ("0909000558", b"\xff\xfe\xc3", "0909000558"),
}


@pytest.mark.parametrize(("from_user", "display", "stored"), CALLER_IDS.values(),
                         ids=CALLER_IDS.keys())
def test_given_hostile_caller_id_to_1022_when_invite_then_answered_stored_literally_not_evaluated(
        hotline: Stack, trunk: RawSipCaller, from_user: str, display: bytes | None,
        stored: str) -> None:
    log_size = len(hotline.app_log.read_bytes())
    call = trunk.invite("1022", from_user=from_user, display=display, timeout=INVITE_TIMEOUT)
    assert call.code == 200, ([r.code for r in call.responses], hotline.app_log_tail())
    assert wait_until(lambda: hotline.pool_in_use() == 1, 3)
    assert trunk.bye(call) == 200
    assert_nothing_held(hotline)
    rec = record(hotline, caller=stored, dialled="1022", last=20, timeout=5)
    assert rec["outcome"] == "answered"
    # Logged masked (last three characters), on one line: the caller never appears whole.
    def arrivals() -> list[str]:  # the log thread writes in batches: wait for the line
        logged = hotline.app_log.read_bytes()[log_size:].decode(errors="replace")
        return [ln for ln in logged.splitlines() if " arrived dialled=1022 " in ln]

    (arrived,) = wait_until(arrivals, 10) or arrivals()
    assert f"caller={'*' * (len(stored) - 3)}{stored[-3:]} " in arrived, arrived
    if len(stored) > 5:
        assert stored not in hotline.app_log.read_bytes()[log_size:].decode(errors="replace")
    assert_next_call_answered(hotline, trunk)


def test_given_answered_call_when_carrier_sends_refer_then_declined_and_call_stays(
        hotline: Stack, trunk: RawSipCaller) -> None:
    call = trunk.invite("1022", from_user="0909000444", timeout=INVITE_TIMEOUT)
    assert call.code == 200, ([r.code for r in call.responses], hotline.app_log_tail())
    # A REFER from the carrier side would move the citizen's call to any number it names.
    code = trunk.refer(call, f"sip:0999888777@127.0.0.1:{hotline.sip_port}")
    assert code == 603, code  # allow_transfer = no on the trunk endpoint
    assert wait_until(lambda: hotline.pool_in_use() == 1, 3)  # still the hotline's call
    assert trunk.bye(call) == 200
    assert_nothing_held(hotline)
