"""End to end: real SIP calls from pjsua2 phones to a real Asterisk driven by the app."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.scenarios import record
from tests.e2e.stack import Stack, wait_until


@pytest.mark.parametrize("number", ["1022", "02511022"])
def test_given_free_lines_when_citizen_dials_then_answered_with_audio(hotline: Stack,
                                                                      number: str) -> None:
    phone = hotline.phone(number, caller="0909123456")
    answered = phone.wait_for("answered", 1)
    assert answered, f"not answered:\n{hotline.app_log_tail()}"
    time.sleep(2.0)  # greeting then music on hold: both are audio
    assert wait_until(lambda: hotline.pool_in_use() == 1, 2)
    (row,) = hotline.cli_pool()  # the administrator's view agrees
    assert (row["tenant"], row["lines"], row["in_use"]) == ("dongnai", 3, 1)
    assert row["shift"] in ("day", "night")
    (result,) = phone.finish()
    assert result["final_code"] == 200
    assert result["rtp_rx_packets"] > 50, result  # 20 ms packets: 2 s of audio is ~100
    rec = record(hotline, caller="0909123456", dialled=number, last=50, timeout=5,
                 interval=0.05, cli=True)
    assert rec["outcome"] == "answered"
    assert rec["tenant"] == "dongnai"
    assert rec["answered_at"] and rec["ended_at"]


def test_given_three_lines_when_six_call_at_once_then_three_answered_three_busy(
        hotline: Stack) -> None:
    before = len(hotline.records())
    phone = hotline.phone("1022", count=6, caller="0912000100")
    busy = phone.wait_for("final", 3, timeout=30)  # the busy ones end by themselves
    answered = phone.of("answered")
    assert len(answered) == 3, (answered, busy)
    time.sleep(0.5)
    results = phone.finish()
    codes = sorted(r["final_code"] for r in results)
    assert codes == [200, 200, 200, 486, 486, 486], results
    for r in results:
        if r["final_code"] == 486:
            assert r["ms_to_183"] is not None, r  # early media: 183 Session Progress
            assert r["early_media"], r
            assert r["rtp_rx_before_answer"] > 20, r  # the busy message was heard
            assert not r["answered"]
    assert wait_until(lambda: len(hotline.records()) >= before + 6, 5)
    outcomes = sorted(r["outcome"] for r in hotline.records(6))
    assert outcomes == ["answered"] * 3 + ["busy"] * 3
    assert all(r["shift"] in ("day", "night") for r in hotline.records(6))


def test_given_unknown_number_when_dialled_then_404_and_recorded(hotline: Stack) -> None:
    phone = hotline.phone("5550199", caller="0909555000")
    (result,) = phone.finish() if phone.wait_for("final", 1, 10) else phone.finish()
    assert result["final_code"] == 404
    rec = record(hotline, dialled="5550199", last=10, timeout=5, interval=0.05, cli=True)
    assert rec["outcome"] == "not_found"


def test_given_answered_call_when_caller_hangs_up_then_line_free_within_a_second(
        hotline: Stack) -> None:
    phone = hotline.phone("1022")
    assert phone.wait_for("answered", 1)
    assert wait_until(lambda: hotline.pool_in_use() == 1, 2)
    phone.send("hangup")
    hung = time.monotonic()
    assert wait_until(lambda: hotline.pool_in_use() == 0, 1.0)
    assert time.monotonic() - hung <= 1.0
    phone.finish()


def test_given_calls_in_progress_when_limit_lowered_then_none_dropped_and_next_is_busy(
        hotline: Stack) -> None:
    first = hotline.phone("1022", count=2, caller="0913000200")
    assert len(first.wait_for("answered", 2)) == 2
    hotline.set_lines(1)
    assert wait_until(lambda: hotline.app_lines() == 1, 2.0)  # in force within two seconds
    second = hotline.phone("1022", caller="0913000299")
    (late,) = second.finish() if second.wait_for("final", 1, 15) else second.finish()
    assert late["final_code"] == 486
    assert first.of("disconnected") == [], "a call in progress was dropped"
    assert hotline.pool_in_use() == 2
    results = first.finish()
    assert [r["final_code"] for r in results] == [200, 200]


def test_given_bad_config_when_reloaded_then_old_limits_kept_and_key_named(
        hotline: Stack) -> None:
    data = hotline.config_data
    bad = {**data, "tenants": [{**data["tenants"][0], "shifts": [
        {"name": "day", "start": "07:00", "end": "18:00", "lines": -4},
        {"name": "night", "start": "18:00", "end": "07:00", "lines": 3}]}]}
    hotline.write_config(bad)
    err = wait_until(lambda: hotline.health().get("config_error"), 3)
    assert err and "lines" in err and "-4" in err, err
    assert hotline.logged("refused, keeping the previous config", 200), hotline.app_log_tail()
    phone = hotline.phone("1022", count=3, caller="0914000300")
    assert len(phone.wait_for("answered", 3)) == 3  # still three lines
    phone.finish()
    hotline.write_config(data)
    assert wait_until(lambda: hotline.health().get("config_error") is None, 3)


def test_given_app_killed_when_citizen_calls_then_fallback_and_restart_rebuilds_pool(
        hotline: Stack) -> None:
    kept = hotline.phone("1022", caller="0915000400")
    assert kept.wait_for("answered", 1)
    assert wait_until(lambda: hotline.pool_in_use() == 1, 2)
    hotline.kill_app()
    during = hotline.phone("1022", caller="0915000401")
    (fallback,) = during.finish() if during.wait_for("final", 1, 20) else during.finish()
    assert fallback["ms_to_183"] is not None and fallback["rtp_rx_before_answer"] > 20, fallback
    assert fallback["final_code"] >= 400 and not fallback["answered"], fallback
    hotline.start_app()
    # The restarted app adopts the call still on hold and counts its line again.
    assert wait_until(lambda: hotline.pool_in_use() == 1, 5)
    assert kept.of("disconnected") == []
    (kept_result,) = kept.finish()
    assert kept_result["final_code"] == 200
    assert wait_until(lambda: hotline.pool_in_use() == 0, 2)
    rec = record(hotline, caller="0915000400", last=20, timeout=5, interval=0.05, cli=True)
    assert rec["outcome"] == "answered"


@pytest.mark.parametrize("from_user", ["0916000500", "trunk"])
def test_given_stranger_outside_trusted_networks_when_inviting_then_refused(
        hotline: Stack, from_user: str) -> None:
    """Also when it pretends to be the trunk by name (From: sip:trunk@...)."""
    phone = hotline.phone("1022", caller=from_user, bind="127.0.0.9")
    (result,) = phone.finish() if phone.wait_for("final", 1, 10) else phone.finish()
    assert result["final_code"] in (401, 403), result
    assert not result["answered"]


def test_given_half_open_ari_socket_when_pbx_freezes_then_app_notices_and_reconnects(
        hotline: Stack) -> None:
    """SIGSTOP leaves the TCP connection open but silent: only ping/pong can tell."""
    assert hotline.pbx is not None and hotline.pbx.proc is not None
    pid = hotline.pbx.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: hotline.health().get("ari_connected") is False, 15), (
            "a frozen Asterisk was not detected")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_until(lambda: hotline.health().get("ari_connected") is True, 15)
    phone = hotline.phone("1022", caller="0917000600")
    assert phone.wait_for("answered", 1)
    phone.finish()
