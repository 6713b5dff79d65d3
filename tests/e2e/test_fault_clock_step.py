"""Fault: the app's wall clock steps across a shift boundary with calls in progress (issue 15,
item 7).

The app runs under libfaketime (Debian's ``faketime``): its wall clock (CLOCK_REALTIME) is the
real one plus an offset read from a file the test rewrites, its monotonic clock is left alone
(``FAKETIME_DONT_FAKE_MONOTONIC``). The clock starts a little before 18:00 in the tenant's
time zone and is stepped an hour forward, past 18:00, while a caller waits in a menu whose
timeout is running: the next calls get the night shift's limit, and the menu's timer fires
after its own seconds, neither at once nor never.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.scenarios import ivr_in_force, nothing_left_after, record, running
from tests.e2e.stack import Stack, wait_until

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the test tenant's (tests/e2e/stack.py base_config)
MENU_TIMEOUT_S = 10
TREE = {
    "root": "main", "timeout": MENU_TIMEOUT_S, "retries": 1, "inter_digit": 1,
    "fallback": "bye",
    "nodes": {
        "main": {"type": "menu", "prompt": "Bấm 1 để kết thúc.", "options": {"1": "bye"}},
        "bye": {"type": "goodbye", "prompt": "Xin chào."},
    },
}


def offset_file(stack: Stack) -> Path:
    """The file libfaketime reads the app's clock offset from (``+SECONDS``)."""
    return stack.workdir / "faketime"


def offset_to(local: dt.time) -> int:
    """Seconds to add to the real clock for the tenant's local time to read ``local`` now."""
    now = dt.datetime.now(TZ)
    target = now.replace(hour=local.hour, minute=local.minute, second=local.second,
                         microsecond=0)
    return round((target - now).total_seconds())


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of this module's own, day 3 lines / night 2, a menu with a 10 s timeout; the
    app restarted under libfaketime at 17:59:00 local (offset in ``offset_file(stack)``)."""
    if not LIBFAKETIME.exists():
        pytest.skip(f"{LIBFAKETIME} missing: Debian's faketime package (make deps installs it)")
    stack = Stack(tmp_path_factory.mktemp("clock-step"))
    for shift in stack.config_data["tenants"][0]["shifts"]:
        shift["lines"] = 3 if shift["name"] == "day" else 2
    stack.config_data["tenants"][0]["ivr"] = TREE
    stack.write_config(stack.config_data)
    offset = offset_file(stack)
    with running(stack):
        offset.write_text(f"{offset_to(dt.time(17, 59, 0)):+d}\n")
        stack.kill_app(signal.SIGTERM)
        stack.start_app(LD_PRELOAD=str(LIBFAKETIME), FAKETIME_TIMESTAMP_FILE=str(offset),
                        FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_CACHE_DURATION="1")
        assert wait_until(lambda: ivr_in_force(stack)[0]["root"] == "main", 30)
        built = stack.cli("prompts", "build")
        assert built.returncode == 0, built.stderr
        yield stack


nothing_left = nothing_left_after("clocked")


def test_given_call_in_menu_when_wall_clock_steps_past_18h_then_night_limit_and_timer_on_time(
        clocked: Stack) -> None:
    stack = clocked
    assert stack.app_lines() == 3  # the day shift, by the app's (faked) clock
    waiting = stack.phone("1022", hold=60, caller="0919300100")
    later = None
    try:
        assert waiting.wait_for("answered", 1, 20), stack.app_log_tail()
        # Step the wall clock one hour forward (17:59 -> 18:59) while the caller hears the
        # menu (its prompt, then the 10 s timeout), before its timer could have fired.
        log_size = len(stack.app_log.read_text(errors="replace"))
        offset = int(offset_file(stack).read_text())
        offset_file(stack).write_text(f"{offset + 3600:+d}\n")
        stepped = time.monotonic()
        # The next call gets the night shift's limit (2 lines; one is taken by the waiting
        # caller, so one more is answered and the third is busy).
        assert wait_until(lambda: stack.app_lines() == 2, 5), stack.app_log_tail()
        later = stack.phone("1022", count=2, hold=30, caller="0919300200")
        # one answered, the other hears the busy message and is refused (it hangs up itself)
        assert wait_until(lambda: later.of("answered") and later.of("disconnected"), 30)
        # The menu's timer (started when the greeting and the menu's prompt ended, seconds
        # after the step) fires after its own 10 s: not at once because the wall clock jumped
        # an hour, not "in an hour". Its log line has the faked wall time; the test times it
        # on its own monotonic clock.
        call_id = re.search(r"call=(\S+) arrived dialled=1022 caller=\*+100 ",
                            stack.app_log.read_text(errors="replace"))
        assert call_id, stack.app_log_tail()
        line = f"call={call_id[1]} tenant=dongnai dialled=1022: ivr main -[TimerFired]-> bye"
        fired = wait_until(lambda: line in stack.app_log.read_text(errors="replace")[log_size:],
                           MENU_TIMEOUT_S + 30, 0.1)
        after = time.monotonic() - stepped
        assert fired, stack.app_log_tail()
        assert MENU_TIMEOUT_S <= after <= MENU_TIMEOUT_S + 20, after
        assert waiting.wait_for("disconnected", 1, 20), "the goodbye did not end the call"
    finally:
        waiting.finish()
        codes = sorted(r["final_code"] for r in later.finish()) if later is not None else []
    assert codes == [200, 486], codes
    first = record(stack, caller="0919300100", last=20)
    assert first["shift"] == "day" and first["outcome"] == "answered", first
    night = [record(stack, caller=c, last=20) for c in ("0919300200", "0919300201")]
    assert sorted((r["shift"], r["outcome"]) for r in night) == [("night", "answered"),
                                                                 ("night", "busy")], night
