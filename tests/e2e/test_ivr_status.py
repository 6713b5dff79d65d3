"""End to end: status by phone. A citizen with an open petition calls 1022, presses 7 and hears
its state, read from the real ticket store; the call record's IVR path names the code read."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.ivr import status as s
from callcenter.ivr.tree import Prompt
from callcenter.pbx.prompts import synthesise
from tests.e2e.scenarios import caller_rtp, ivr_in_force, record
from tests.e2e.stack import Stack, wait_until

ROOT = Path(__file__).resolve().parents[2]
CALLER = "0909555701"
STRANGER = "0909555702"

TREE = {
    "root": "main",
    "timeout": 20,  # long: the measurements below wait in silence
    "retries": 3,
    "fallback": "operator",
    "nodes": {
        "main": {"type": "menu", "prompt": "Bấm 7 tra cứu phản ánh. Bấm 9 gặp tổng đài viên.",
                 "options": {"7": "status", "9": "operator"}},
        "status": {"type": "status_lookup", "prompt": "Tra cứu phản ánh."},
        "operator": {"type": "operator", "prompt": "Xin giữ máy."},
    },
}
UNITS = [{"id": "so_y_te", "name": "Sở Y tế", "kind": "department",
          "focal_persons": [{"name": "Nguyễn Văn An", "phone": "0912000001"}]}]


def ticket_cli(stack: Stack, *args: str) -> dict[str, Any]:
    """``callcenter ticket ... --json`` against the stack; its JSON answer."""
    done = subprocess.run([sys.executable, "-m", "callcenter", "ticket", *args, "--json"],
                          env=stack.env(), capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.fixture
def status_menu(hotline: Stack) -> Iterator[tuple[Stack, dict[str, Any]]]:
    """The tenant with a unit, menus with key 7, and a forwarded ticket of CALLER's number."""
    tenant = hotline.config_data["tenants"][0]
    tenant["units"] = UNITS
    tenant["tickets"] = {"fallback_unit": "so_y_te", "code_prefix": "DN"}
    tenant["ivr"] = TREE
    hotline.write_config(hotline.config_data)
    try:
        assert wait_until(lambda: ivr_in_force(hotline)[0]["root"] == "main", 40, 0.2), \
            hotline.app_log_tail()
        opened = ticket_cli(hotline, "open", "--as", "operator:dtv101", "--tenant", "dongnai",
                            "--field", "health", "--content", "Trạm y tế phường thiếu thuốc.",
                            "--name", "Trần Văn Bình", "--phone", CALLER)
        forwarded = ticket_cli(hotline, "act", opened["code"], "forward", "--unit", "so_y_te",
                               "--as", "operator:dtv101")
        built = hotline.cli("prompts", "build")
        assert built.returncode == 0, built.stderr
        yield hotline, forwarded
    finally:
        for key in ("units", "tickets", "ivr"):
            tenant.pop(key, None)
        hotline.write_config(hotline.config_data)
        assert wait_until(lambda: ivr_in_force(hotline)[0]["root"] is None, 10)


def quiet_rtp(phone: Any, settle: float = 1.5, timeout: float = 40.0) -> int:
    """The caller's RTP count once nothing has been played for ``settle`` seconds (Asterisk
    sends no RTP to a channel in Stasis that plays nothing)."""
    last, since = caller_rtp(phone), time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = caller_rtp(phone)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return now
    raise AssertionError("the caller kept hearing something")


def seconds_of(prompts: list[Any], cache: Path) -> float:
    """How long these prompts last, synthesised exactly as the hotline does."""
    total = 0.0
    for p in prompts:
        with wave.open(str(synthesise(p.text, cache, p.clip))) as w:
            total += w.getnframes() / w.getframerate()
    return total


def steps(rec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(x["event"], x.get("digit") or x.get("node") or "") for x in rec["ivr_path"]]


def test_given_open_ticket_when_caller_presses_7_then_hears_it_and_path_names_the_code(
        status_menu: tuple[Stack, dict[str, Any]], tmp_path: Path) -> None:
    stack, ticket = status_menu
    phone = stack.phone("1022", caller=CALLER)
    assert phone.wait_for("answered", 1), stack.app_log_tail()
    before = quiet_rtp(phone)  # greeting and main menu said; the menu waits for a key
    phone.send("dtmf 7")
    after = quiet_rtp(phone)  # intro, the ticket read out, then "enter a code or #"
    phone.send("dtmf #")  # back to the main menu
    time.sleep(1.0)
    phone.finish()
    rec = record(stack, caller=CALLER, last=30, timeout=10, interval=0.05, cli=True)
    status = [x for x in rec["ivr_path"] if x["event"] == "status"]
    assert status == [{"at": status[0]["at"], "event": "status", "node": "status",
                       "answer": "found", "codes": ticket["code"]}]
    assert steps(rec)[:4] == [("enter", "main"), ("digit", "7"), ("enter", "status"),
                              ("status", "status")]
    assert ("digit", "#") in steps(rec) and steps(rec)[-2:][0] == ("enter", "main")
    # What the caller heard lasted as long as what should have been said (20 ms per packet).
    resolve_due = dt.datetime.fromisoformat(ticket["resolve_due"])
    due = resolve_due.astimezone(dt.timezone(dt.timedelta(hours=7))).replace(tzinfo=None)
    said = [s.TicketStatus(ticket["code"], "forwarded", "so_y_te", "Sở Y tế", due)]
    intro = Prompt("status", TREE["nodes"]["status"]["prompt"])  # type: ignore[index]
    prompts = [intro, *s.readout(s.LookupResult(tuple(said), 1)), s.TEXTS.again, s.TEXTS.ask]
    want = seconds_of(prompts, tmp_path)
    heard = (after - before) * 0.020
    print(f"status readout: heard {heard:.1f} s, expected {want:.1f} s")
    assert 0.8 * want < heard < 1.2 * want, (heard, want)


def test_given_caller_without_tickets_when_keying_someone_elses_number_then_not_found(
        status_menu: tuple[Stack, dict[str, Any]]) -> None:
    stack, ticket = status_menu
    phone = stack.phone("1022", caller=STRANGER)
    assert phone.wait_for("answered", 1), stack.app_log_tail()
    time.sleep(0.5)
    typed = ticket["code"].split("-", 1)[1].replace("-", "")  # the whole numeric part
    # 7, then the code right away, as a caller types ahead: keys pressed while the caller's
    # own lookup runs are kept and applied once it answers. All typed at once: the phone
    # sends them one at a time, each once its previous one has left (docs/architecture.md,
    # "Keys typed fast").
    keys = f"7{typed}#"
    phone.send(f"dtmf {keys}")
    sent = phone.wait_for("dtmf_sent", len(keys), timeout=30)
    assert sent and sent[-1]["keys_sent"] == keys, phone.events[-5:]
    time.sleep(3.0)  # the lookup and "not found"
    phone.finish()
    rec = record(stack, caller=STRANGER, last=30, timeout=10, interval=0.05, cli=True)
    status = [(x.get("digit"), x["answer"], x.get("codes")) for x in rec["ivr_path"]
              if x["event"] == "status"]
    assert status == [(None, "none", None), (typed, "none", None)]  # codes: own
    # Every key reached the call once, in order (Asterisk doubles keys that come too close).
    assert "".join(x["digit"] for x in rec["ivr_path"] if x["event"] == "digit") == keys
