"""End to end: every line is taken and the shift offers "press 1 to be called back".

One stack for the module: one line per shift and ``callback_when_full`` on both shifts (the
time of day picks one). A first citizen holds the only line; a second one is answered with the
offer (no line taken), presses 1 on a real pjsua2 phone (RFC 2833, which this phone, like most,
sends only once the call is answered), hears the confirmation and is hung up on. The request is
stored with source ``pool_full`` and listed first (CLI and API) ahead of an older request of a
caller who pressed 1 in the queue; the call record says ``callback`` with the offer's steps.
A caller who presses another key hears the busy message and is hung up on, with no request.
With the flag off (the config reloaded), the next caller gets the busy message in early media
and 486, never answered, as before.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.callbacks.store import CallbackStore
from callcenter.tools.softphone import PhoneGroup
from tests.e2e.scenarios import TENANT, api, api_token, nothing_left_after, record, running
from tests.e2e.stack import Stack, wait_until

pytestmark = pytest.mark.pbx

nothing_left = nothing_left_after("fstack")

HOLDER = "0909300001"  # holds the only line


def offer(stack: Stack, on: bool) -> None:
    """One line per shift; the callback offer on or off in both shifts."""
    for shift in stack.config_data["tenants"][0]["shifts"]:
        shift["lines"] = 1
        shift["callback_when_full"] = on
    stack.write_config(stack.config_data)


def reloads(stack: Stack) -> int:
    return stack.app_log.read_text(errors="replace").count("config reloaded")


@pytest.fixture(scope="module")
def fstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("cbfull")))
    offer(s, True)
    with running(s):
        s.token = api_token(s, "sup1", "supervisor")  # type: ignore[attr-defined]
        yield s


def hold_the_line(stack: Stack) -> PhoneGroup:
    """A citizen answered and holding the only line (before anyone else dials)."""
    holder = stack.phone("1022", caller=HOLDER)
    try:
        assert holder.wait_for("answered", 1), stack.app_log_tail()
        assert wait_until(lambda: stack.pool_in_use() == 1, 5)
    except BaseException:
        holder.finish()
        raise
    return holder


def callbacks_cli(stack: Stack) -> list[dict[str, Any]]:
    out = stack.cli("callbacks", "--json")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def test_given_lines_full_and_offer_on_when_caller_presses_1_then_pool_full_request_first(
        fstack: Stack) -> None:
    # A caller who pressed 1 in the queue twenty minutes ago: older, yet listed after.
    store = CallbackStore(fstack.database_url)
    try:
        older = store.request(TENANT, "testpbx:e2e-queue.1", "0909300099",
                              dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))
    finally:
        store.close()
    holder = hold_the_line(fstack)
    caller = fstack.phone("1022", caller="0918300001")
    try:
        # The pool is full: the offer answers (the line stays the holder's).
        assert caller.wait_for("answered", 1, 10), fstack.app_log_tail()
        assert fstack.pool_in_use() == 1
        time.sleep(1.0)  # the offer is being said
        caller.send("dtmf 1")
        pressed = time.monotonic()
        assert caller.wait_for("disconnected", 1, 30), "the hotline did not end the call"
        assert time.monotonic() - pressed > 2  # the confirmation was said first
    finally:
        (result,) = caller.finish()
        holder.finish()
    assert result["answered"] and result["rtp_rx_packets"] > 50, result
    rec = record(fstack, caller="0918300001", last=50)
    assert rec["outcome"] == "callback", rec
    assert [(s["event"], s.get("node"), s.get("digit")) for s in rec["ivr_path"]] == [
        ("callback_offer", "pool_full", None), ("digit", "pool_full", "1"),
        ("callback", "pool_full", None)], rec["ivr_path"]
    rows = callbacks_cli(fstack)
    assert [(r["caller"], r["source"]) for r in rows][:2] == [
        ("0918300001", "pool_full"), ("0909300099", "queue")], rows
    assert rows[0]["call_id"] == rec["id"]  # the request names its call record
    status, body = api(fstack, "GET", "/callbacks", token=fstack.token)  # type: ignore[attr-defined]
    assert status == 200, body
    assert [r["id"] for r in body["items"]][1] == older.id
    assert body["items"][0]["source"] == "pool_full"
    assert record(fstack, caller=HOLDER, last=50)["outcome"] == "answered"


def test_given_lines_full_and_offer_on_when_caller_presses_2_then_busy_message_no_request(
        fstack: Stack) -> None:
    holder = hold_the_line(fstack)
    caller = fstack.phone("1022", caller="0918300002")
    try:
        assert caller.wait_for("answered", 1, 10), fstack.app_log_tail()
        time.sleep(1.0)
        caller.send("dtmf 2")
        assert caller.wait_for("disconnected", 1, 30), "the hotline did not end the call"
    finally:
        caller.finish()
        holder.finish()
    rec = record(fstack, caller="0918300002", last=50)
    assert rec["outcome"] == "busy" and rec["answered_at"], rec
    assert [s["event"] for s in rec["ivr_path"]] == ["callback_offer", "digit", "goodbye"]
    assert all(r["caller"] != "0918300002" for r in callbacks_cli(fstack))


def test_given_lines_full_and_offer_off_when_citizen_calls_then_busy_in_early_media_as_before(
        fstack: Stack) -> None:
    before = reloads(fstack)
    offer(fstack, False)
    assert wait_until(lambda: reloads(fstack) > before, 10), fstack.app_log_tail()
    holder = hold_the_line(fstack)
    try:
        late = fstack.phone("1022", caller="0918300003")
        assert late.wait_for("final", 1, 30), fstack.app_log_tail()
        (result,) = late.finish()
    finally:
        holder.finish()
        offer(fstack, True)
    assert result["final_code"] == 486 and not result["answered"], result
    assert result["early_media"] and result["rtp_rx_before_answer"] > 20, result
    rec = record(fstack, caller="0918300003", last=50)
    assert rec["outcome"] == "busy" and rec["answered_at"] is None and not rec["ivr_path"], rec
    assert all(r["caller"] != "0918300003" for r in callbacks_cli(fstack))
