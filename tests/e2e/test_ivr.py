"""End to end: callers drive the IVR with RFC 2833 digits on the real Asterisk; the call record
keeps the path, the FAQ statistics count what was heard."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.scenarios import caller_rtp, ivr_in_force, record
from tests.e2e.stack import Stack, wait_until

TREE = {
    "root": "main",
    "timeout": 3,
    "retries": 3,
    "inter_digit": 1,
    "fallback": "operator",
    "nodes": {
        "main": {"type": "menu",
                 "prompt": "Bấm 1 y tế. Bấm 4 menu phụ. Bấm 9 gặp tổng đài viên.",
                 "options": {"1": "faq_health", "4": "sub", "9": "operator"}},
        "sub": {"type": "menu", "prompt": "Menu phụ. Bấm 1 để kết thúc cuộc gọi.",
                "options": {"1": "bye"}, "fallback": "bye"},
        "faq_health": {"type": "faq", "field": "health", "prompt": "Y tế."},
        "operator": {"type": "operator", "prompt": "Xin giữ máy."},
        "bye": {"type": "goodbye", "prompt": "Xin chào."},
    },
}

FAQ_CSV = """Lĩnh vực;Câu hỏi;Trả lời
Y tế;Tiêm chủng ở đâu?;Quý khách đến trạm y tế xã gần nhất. Mang theo căn cước công dân.
Y tế;Khám bệnh ngoài giờ thế nào?;Bệnh viện tỉnh khám ngoài giờ từ 17 giờ. Không cần hẹn trước.
"""


@pytest.fixture
def ivr(hotline: Stack, tmp_path) -> Iterator[Stack]:
    """The test tenant with menus and a two-item health FAQ, prompts built ahead of time."""
    sheet = tmp_path / "faq-yte.csv"
    sheet.write_text(FAQ_CSV, encoding="utf-8")
    out = hotline.cli("faq", "import", str(sheet), "--tenant", "dongnai")
    assert out.returncode == 0, out.stdout + out.stderr
    hotline.config_data["tenants"][0]["ivr"] = TREE
    hotline.write_config(hotline.config_data)
    try:
        ok = wait_until(lambda: ivr_in_force(hotline)[0].get("faq_items") == {"health": 2}
                        and ivr_in_force(hotline)[0]["root"] == "main", 40, 0.2)
        assert ok, (ivr_in_force(hotline), hotline.app_log_tail())
        built = hotline.cli("prompts", "build")
        assert built.returncode == 0, built.stderr
        yield hotline
    finally:
        del hotline.config_data["tenants"][0]["ivr"]
        hotline.write_config(hotline.config_data)
        assert wait_until(lambda: ivr_in_force(hotline)[0]["root"] is None, 10)


def record_of(stack: Stack, caller: str) -> dict[str, Any]:
    """The caller's record, as ``callcenter calls --json`` lists it."""
    return record(stack, caller=caller, last=30, timeout=10, interval=0.05, cli=True)


def steps(record: dict[str, Any], *events: str) -> list[tuple[str, str]]:
    """(event, detail) of the path, for the events asked."""
    return [(s["event"], s.get("digit") or s.get("answer") or s.get("node") or "")
            for s in record["ivr_path"] if not events or s["event"] in events]


def test_given_menus_when_caller_picks_faq_and_says_yes_then_path_recorded_and_counted(
        ivr: Stack) -> None:
    caller = "0909555001"
    phone = ivr.phone("1022", caller=caller)
    assert phone.wait_for("answered", 1), ivr.app_log_tail()
    time.sleep(1.5)
    heard_greeting = caller_rtp(phone)
    assert heard_greeting > 40  # 1.5 s of the greeting
    phone.send("dtmf 1")  # barge-in: the greeting (about 8 s) is cut short
    time.sleep(1.5)
    heard_list = caller_rtp(phone)
    assert heard_list > heard_greeting + 40  # the FAQ list is playing
    phone.send("dtmf 2")  # "Khám bệnh ngoài giờ thế nào?"
    time.sleep(1.0)
    phone.send("dtmf 5")  # skip to the second sentence
    time.sleep(1.0)
    phone.send("dtmf 5")  # skip: the feedback question
    time.sleep(1.0)
    phone.send("dtmf 1")  # yes: thanks, goodbye, the hotline hangs up
    (final,) = phone.wait_for("disconnected", 1, timeout=15)
    assert final["final_code"] == 200 and final["answered"]
    phone.finish()
    rec = record_of(ivr, caller)
    assert rec["outcome"] == "answered"
    assert steps(rec, "enter", "faq", "feedback", "goodbye") == [
        ("enter", "main"), ("enter", "faq_health"), ("faq", "faq_health"),
        ("feedback", "yes"), ("goodbye", "faq_health")]
    assert [d for e, d in steps(rec, "digit")] == ["1", "2", "5", "5", "1"]
    # Barge-in: the choice came 1.5 s into a greeting of several seconds, and the next menu
    # was entered at once (Asterisk's DTMF event -> our next prompt).
    path = rec["ivr_path"]
    t = {i: dt.datetime.fromisoformat(s["at"]) for i, s in enumerate(path)}
    answered = dt.datetime.fromisoformat(rec["answered_at"])
    first_digit = next(i for i, s in enumerate(path) if s["event"] == "digit")
    assert (t[first_digit] - answered).total_seconds() < 4
    assert (t[first_digit + 1] - t[first_digit]).total_seconds() < 0.5
    heard = next(s for s in path if s["event"] == "faq")["faq"]
    stats = ivr.cli("faq", "stats", "--tenant", "dongnai", "--json")
    assert stats.returncode == 0, stats.stderr
    row = next(r for r in json.loads(stats.stdout) if r["key"] == heard)
    assert row["heard"] >= 1 and row["yes"] >= 1


def test_given_menu_when_three_invalid_digits_then_fallback_operator_and_hold(
        ivr: Stack) -> None:
    caller = "0909555002"
    phone = ivr.phone("1022", caller=caller)
    assert phone.wait_for("answered", 1), ivr.app_log_tail()
    time.sleep(0.5)
    for _ in range(3):
        phone.send("dtmf 7")
        time.sleep(0.8)
    time.sleep(2.0)  # the operator prompt, then music on hold
    before = caller_rtp(phone)
    time.sleep(1.0)
    assert caller_rtp(phone) > before + 30, "music on hold is playing"
    phone.finish()
    rec = record_of(ivr, caller)
    assert steps(rec, "invalid") == [("invalid", "7")] * 3
    assert steps(rec, "enter", "operator")[-2:] == [("enter", "operator"),
                                                    ("operator", "operator")]
    assert rec["outcome"] == "answered"


def test_given_sub_menu_when_0_then_operator_node(ivr: Stack) -> None:
    caller = "0909555003"
    phone = ivr.phone("1022", caller=caller)
    assert phone.wait_for("answered", 1), ivr.app_log_tail()
    time.sleep(0.5)
    phone.send("dtmf 4")
    time.sleep(0.8)
    phone.send("dtmf 0")
    time.sleep(1.0)
    phone.finish()
    rec = record_of(ivr, caller)
    assert steps(rec, "enter") == [("enter", "main"), ("enter", "sub"), ("enter", "operator")]


def test_given_caller_hangs_up_mid_prompt_then_record_says_so_and_nothing_leaks(
        ivr: Stack) -> None:
    caller = "0909555004"
    phone = ivr.phone("1022", caller=caller)
    assert phone.wait_for("answered", 1), ivr.app_log_tail()
    phone.send("dtmf 1")
    time.sleep(0.3)
    phone.finish()
    rec = record_of(ivr, caller)
    assert rec["ivr_path"][-1]["event"] == "hangup"
    assert rec["outcome"] == "answered"


def test_given_call_in_menus_when_menus_change_then_it_keeps_its_tree_and_new_calls_get_new(
        ivr: Stack) -> None:
    first = ivr.phone("1022", caller="0909555005")
    assert first.wait_for("answered", 1), ivr.app_log_tail()
    time.sleep(0.5)
    # The administrator repoints option 4 of the main menu straight to the operators.
    changed = json.loads(json.dumps(TREE))
    changed["nodes"]["main"]["options"]["4"] = "operator"

    def reloads() -> int:
        return ivr.app_log.read_text(errors="replace").count("config reloaded")

    before = reloads()
    ivr.config_data["tenants"][0]["ivr"] = changed
    ivr.write_config(ivr.config_data)
    assert wait_until(lambda: reloads() > before, 10)
    second = ivr.phone("1022", caller="0909555006")
    assert second.wait_for("answered", 1), ivr.app_log_tail()
    time.sleep(0.5)
    first.send("dtmf 4")
    second.send("dtmf 4")
    time.sleep(1.0)
    first.finish()
    second.finish()
    old = record_of(ivr, "0909555005")
    new = record_of(ivr, "0909555006")
    assert steps(old, "enter")[-1] == ("enter", "sub")  # the tree it started with
    assert steps(new, "enter")[-1] == ("enter", "operator")  # the new tree
