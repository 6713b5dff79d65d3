"""The test softphone's key sender: keys typed at once go out one at a time, the next only once
every packet of the previous event has left, then after a pause (Asterisk doubles keys that
follow each other within 45 ms; docs/architecture.md, "Keys typed fast")."""

from __future__ import annotations

import pjsua2 as pj
import pytest

from callcenter.tools.softphone import (
    DTMF_END_REPEATS,
    DTMF_GAP_S,
    DTMF_STUCK_S,
    DTMF_TONE_MS,
    KeySender,
)

PTIME = 20
PACKETS = DTMF_TONE_MS // PTIME + DTMF_END_REPEATS - 1  # one key's packets


class Line:
    """A call's stream: keys handed to it, its packet counter (moved by the test)."""

    def __init__(self, refuse: bool = False):
        self.dialled: list[str] = []
        self.packets = 0
        self.refuse = refuse

    def send_key(self, key: str) -> None:
        if self.refuse:
            raise pj.Error()
        self.dialled.append(key)

    def tx_packets(self) -> int:
        return self.packets

    def ptime_ms(self) -> int:
        return PTIME


def test_given_keys_typed_at_once_when_pumped_then_one_in_flight_until_its_packets_left() -> None:
    line, keys = Line(), KeySender()
    keys.press("12")
    keys.press("3")
    assert keys.pump(0.0, line) == []
    assert line.dialled == ["1"]
    line.packets = PACKETS - 1  # the last end packet is still to go
    assert keys.pump(1.0, line) == [] and line.dialled == ["1"]
    line.packets = PACKETS
    assert keys.pump(1.01, line) == [("sent", "1")]
    assert line.dialled == ["1"]  # the pause first
    assert keys.pump(1.01 + DTMF_GAP_S / 2, line) == [] and line.dialled == ["1"]
    assert keys.pump(1.01 + DTMF_GAP_S, line) == []
    assert line.dialled == ["1", "2"] and keys.busy()


def test_given_every_key_sent_when_pumped_then_all_in_order_and_idle() -> None:
    line, keys = Line(), KeySender()
    keys.press("7202612070001#")
    sent, now = [], 0.0
    while keys.busy() and now < 60:
        for what, key in keys.pump(now, line):
            assert what == "sent"
            sent.append(key)
        line.packets += 1  # one packet per 20 ms tick while a key is queued
        now += 0.02
    assert "".join(sent) == "7202612070001#" == "".join(line.dialled)


def test_given_stream_that_sends_nothing_when_stuck_then_error_and_next_key() -> None:
    line, keys = Line(), KeySender()
    keys.press("45")
    keys.pump(0.0, line)
    assert keys.pump(DTMF_STUCK_S - 0.01, line) == []
    assert keys.pump(DTMF_STUCK_S, line) == [("error", f"key 4 not sent within "
                                                       f"{DTMF_STUCK_S:.0f} s")]
    keys.pump(DTMF_STUCK_S + DTMF_GAP_S, line)
    assert line.dialled == ["4", "5"]


@pytest.mark.parametrize("digits", ["9", "98"])
def test_given_call_without_media_when_key_refused_then_error_per_key(digits: str) -> None:
    line, keys = Line(refuse=True), KeySender()
    keys.press(digits)
    errors, now = [], 0.0
    while keys.busy() and now < 5:
        errors += keys.pump(now, line)
        now += 0.05
    assert [what for what, _ in errors] == ["error"] * len(digits)
    assert line.dialled == []
