"""Status by phone, the pure part: the node's config, what is said, how keyed-in codes read, and
the interpreter's moves (given this state and this event, these commands)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
import yaml

from callcenter import calls as cm
from callcenter.ari_app.calls import CallDeps, CallSession
from callcenter.calls.codec import state_from_json, state_to_json
from callcenter.config.base import BaseParser
from callcenter.config.model import DEFAULT_FIELDS
from callcenter.desk.rules import step_text
from callcenter.ivr import menu as m
from callcenter.ivr import status as s
from callcenter.ivr.config import parse_ivr
from callcenter.ivr.tree import IvrTree, Prompt, StatusNode

REPO = Path(__file__).resolve().parents[3]
T0 = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
KEY = "tenants[0].ivr"

TREE_YAML = """
root: main
timeout: 5
nodes:
  main:
    type: menu
    prompt: "Bấm 7 để tra cứu phản ánh. Bấm 9 gặp tổng đài viên."
    options: {"7": status, "9": operator}
  status: {type: status_lookup, prompt: "Tra cứu phản ánh."}
  operator: {type: operator, prompt: "Xin giữ máy."}
"""


def parse(text: str) -> tuple[IvrTree | None, list[str]]:
    p = BaseParser("h.yaml")
    tree = parse_ivr(p, yaml.safe_load(text), KEY, DEFAULT_FIELDS)
    return tree, [e.line_text() for e in p.errors]


def tree_of(text: str = TREE_YAML) -> IvrTree:
    tree, errors = parse(text)
    assert not errors and tree is not None, errors
    return tree


TREE = tree_of()


def ticket(code: str = "DN-20261207-0042", state: str = "in_progress", **kw: object
           ) -> s.TicketStatus:
    values: dict[str, object] = {"unit": "so_y_te", "unit_name": "Sở Y tế",
                                 "due": dt.datetime(2026, 12, 8, 14, 30)}
    values.update(kw)
    return s.TicketStatus(code, state, **values)  # type: ignore[arg-type]


def ids(prompts: list[Prompt]) -> list[str]:
    return [p.id for p in prompts]


# ---- the node in the config ---------------------------------------------------------------
def test_given_status_lookup_node_then_parsed_with_defaults():
    node = TREE.node("status")
    assert node == StatusNode("status", Prompt("status", "Tra cứu phản ánh."), codes="own",
                              timeout_s=5.0, retries=3, fallback="")


def test_given_status_lookup_without_prompt_and_codes_any_then_parsed():
    tree = tree_of(TREE_YAML.replace('prompt: "Tra cứu phản ánh."', "codes: any"))
    node = tree.node("status")
    assert isinstance(node, StatusNode) and node.prompt is None and node.codes == "any"


def test_given_bad_codes_scope_then_error_names_the_key():
    _, errors = parse(TREE_YAML.replace('prompt: "Tra cứu phản ánh."', "codes: everyone"))
    assert len(errors) == 1
    assert "tenants[0].ivr.nodes.status.codes = 'everyone'" in errors[0]
    assert "expected own" in errors[0]


def test_given_unknown_key_on_status_node_then_error_names_it():
    _, errors = parse(TREE_YAML.replace('prompt: "Tra cứu phản ánh."', "field: health"))
    assert errors and "tenants[0].ivr.nodes.status" in errors[0] and "field" in errors[0]


def test_given_status_node_as_root_then_error():
    _, errors = parse(TREE_YAML.replace("root: main", "root: status"))
    assert len(errors) == 1 and "tenants[0].ivr.root = 'status'" in errors[0]


def test_given_status_fallback_pointing_nowhere_then_error():
    _, errors = parse(TREE_YAML.replace('prompt: "Tra cứu phản ánh."}',
                                        'prompt: "Tra cứu phản ánh.", fallback: nowhere}'))
    assert len(errors) == 1 and "nodes.status.fallback = 'nowhere'" in errors[0]


def test_given_shipped_dongnai_menu_then_key_7_is_a_status_lookup_and_prompt_says_so():
    tree = tree_of((REPO / "config" / "ivr-dongnai.yaml").read_text(encoding="utf-8"))
    main = tree.node("main")
    target = main.choices["7"]  # type: ignore[union-attr]
    node = tree.node(target)
    assert isinstance(node, StatusNode) and node.codes == "own"
    assert "bấm phím 7" in (main.prompt.text or "")  # type: ignore[union-attr]


# ---- words and codes ----------------------------------------------------------------------
@pytest.mark.parametrize(("n", "words"), [
    (0, "không"), (5, "năm"), (10, "mười"), (11, "mười một"), (15, "mười lăm"),
    (20, "hai mươi"), (21, "hai mươi mốt"), (24, "hai mươi tư"), (25, "hai mươi lăm"),
    (30, "ba mươi"), (59, "năm mươi chín"), (99, "chín mươi chín")])
def test_given_number_then_vietnamese_words(n: int, words: str):
    assert s.vi_number(n) == words


@pytest.mark.parametrize(("digits", "expected"), [
    ("42", s.TypedCode(42)), ("0042", s.TypedCode(42)), ("123456", s.TypedCode(123456)),
    ("202612070042", s.TypedCode(42, dt.date(2026, 12, 7))),
    ("2026120712345", s.TypedCode(12345, dt.date(2026, 12, 7))),
    ("0", None), ("0000", None), ("", None), ("1234567", None), ("12345678901", None),
    ("202613070042", None),  # month 13
    ("202612070000", None), ("202612071234567", None), ("4２", None)])
def test_given_keyed_in_digits_then_sequence_or_whole_code_or_nothing(digits, expected):
    assert s.parse_typed(digits) == expected


def test_given_typed_codes_then_suffixes_match_the_code_format():
    assert s.TypedCode(42).suffix() == "-0042"
    assert s.TypedCode(12345, dt.date(2026, 12, 7)).suffix() == "-20261207-12345"


# ---- what is said ---------------------------------------------------------------------------
def test_given_no_ticket_then_caller_hears_none():
    assert s.readout(s.LookupResult()) == [s.TEXTS.none]


def test_given_one_ticket_in_progress_then_count_number_state_unit_and_due_time():
    said = s.readout(s.LookupResult((ticket(),), 1))
    assert ids(said) == [
        "st-count-pre", "st-n-1", "st-count-post",
        "st-ticket", "st-n-0", "st-n-0", "st-n-4", "st-n-2",
        "st-in-progress", "st-unit-so_y_te", "st-in-progress-post",
        "st-due", "st-h-14", "st-min-30", "st-d-8", "st-mo-12"]
    text = " ".join(p.text or "" for p in said)
    assert text == ("Quý khách có một phản ánh đang được giải quyết. Phiếu số không không bốn "
                    "hai đang được Sở Y tế giải quyết. Hạn giải quyết: mười bốn giờ ba mươi "
                    "phút ngày tám tháng mười hai")


def test_given_three_tickets_then_all_three_read_newest_first_without_newest_notice():
    three = (ticket("DN-20261207-0003", "forwarded"), ticket("DN-20261206-0002", "new"),
             ticket("DN-20261205-0001", "in_progress", late=True,
                    due=dt.datetime(2026, 12, 6, 9, 0)))
    said = ids(s.readout(s.LookupResult(three, 3)))
    assert said[:3] == ["st-count-pre", "st-n-3", "st-count-post"]
    assert "st-newest" not in said
    assert said.count("st-ticket") == 3
    # In order: forwarded (unit), level 1 (no unit), late one with its due time on the hour.
    i = [k for k, x in enumerate(said) if x == "st-ticket"]
    assert said[i[0]:i[1]][5:9] == ["st-forwarded", "st-unit-so_y_te", "st-forwarded-post",
                                      "st-due"]
    assert "st-level1" in said[i[1]:i[2]] and "st-unit-so_y_te" not in said[i[1]:i[2]]
    assert said[i[2]:][-4:] == ["st-late", "st-h-9", "st-d-6", "st-mo-12"]  # on the hour


def test_given_five_tickets_then_count_five_and_only_the_newest_three_read():
    five = tuple(ticket(f"DN-2026120{7 - k}-000{5 - k}") for k in range(3))
    said = ids(s.readout(s.LookupResult(five, 5)))
    assert said[:4] == ["st-count-pre", "st-n-5", "st-count-post", "st-newest"]
    assert said.count("st-ticket") == 3
    assert s.codes_text(s.LookupResult(five, 5)) == \
        "DN-20261207-0005 DN-20261206-0004 DN-20261205-0003"


@pytest.mark.parametrize(("state", "expected"), [
    ("resolved", ["st-resolved", "st-unit-so_y_te", "st-resolved-post"]),
    ("answered", ["st-answered"]), ("closed", ["st-closed"]),
    ("returned", ["st-level1", "st-due"]), ("reopened", ["st-level1", "st-due"])])
def test_given_each_state_then_its_phrase_and_due_time_only_while_open(state, expected):
    said = ids(s.ticket_prompts(ticket(state=state)))[5:]  # after "Phiếu số" and 4 digits
    assert said[:len(expected)] == expected
    assert ("st-due" in said) == (state in s.OPEN_STATES)


def test_given_unit_not_in_config_then_a_generic_unit_is_said():
    said = ids(s.ticket_prompts(ticket(unit="gone", unit_name=None)))
    assert "st-some-unit" in said and not any(x.startswith("st-unit-") for x in said)


def test_given_any_readout_then_every_fragment_is_built_ahead():
    ahead = {p.id: p.text for p in s.fragments([("so_y_te", "Sở Y tế")])}
    states = ("new", "forwarded", "in_progress", "resolved", "answered", "closed", "returned",
              "reopened")
    for state in states:
        for hour, minute in ((0, 0), (9, 5), (23, 59)):
            for day, month in ((1, 1), (31, 12), (15, 4)):
                due = dt.datetime(2026, month, day, hour, minute)
                for t in (ticket(state=state, due=due),
                          ticket("DN-20261207-123456", state, unit=None, late=True, due=due)):
                    for p in [*s.readout(s.LookupResult((t,) * 5, 120)), *s.ticket_prompts(t)]:
                        assert ahead.get(p.id) == p.text, p
    assert len(ahead) == len(s.fragments([("so_y_te", "Sở Y tế")]))  # ids are unique


# ---- the interpreter ------------------------------------------------------------------------
class Caller:
    """Drives the interpreter like the ARI adapter: ends prompts, fires timers, answers lookups."""

    def __init__(self, tree: IvrTree = TREE) -> None:
        self.tree = tree
        self.state = m.start_state(tree)
        self.now = T0
        self.lookups: list[m.LookupTickets] = []

    def send(self, event: m.MenuEvent) -> list[m.MenuCommand]:
        self.now += dt.timedelta(seconds=0.1)
        self.state, out = m.step(self.tree, m.NoFaq(), self.state, event)
        self.lookups += [c for c in out if isinstance(c, m.LookupTickets)]
        return out

    def press(self, digits: str) -> list[m.MenuCommand]:
        out: list[m.MenuCommand] = []
        for d in digits:
            out += self.send(m.Digit(self.now, d))
        return out

    def finish_all(self) -> list[str]:
        heard = []
        while self.state.playing is not None:
            out = self.send(m.PromptEnded(self.now, self.state.playing))
            heard += [c.prompt.id for c in out if isinstance(c, m.Say)]
        return heard

    def answer(self, result: s.LookupResult) -> list[m.MenuCommand]:
        return self.send(m.LookupDone(self.now, self.lookups[-1].token, result))

    def wait(self) -> list[m.MenuCommand]:
        assert self.state.timer is not None
        return self.send(m.TimerFired(self.now, self.state.timer))

    def in_status(self) -> None:
        self.send(m.Start(self.now))
        self.finish_all()
        self.press("7")

    def steps(self, event: str) -> list[dict[str, str]]:
        return [
            {k: v for k, v in x.as_dict().items() if k != "at"}
            for x in self.state.path if x.event == event]


def says(out: list[m.MenuCommand]) -> list[str]:
    return [c.prompt.id for c in out if isinstance(c, m.Say)]


def test_given_main_menu_when_7_then_intro_said_and_lookup_by_caller_number_asked():
    c = Caller()
    c.send(m.Start(c.now))
    c.finish_all()
    out = c.press("7")
    assert says(out) == ["status"]
    look = [x for x in out if isinstance(x, m.LookupTickets)]
    assert look == [m.LookupTickets(look[0].token, None, False)]
    assert out.index(look[0]) > out.index(next(x for x in out if isinstance(x, m.Say)))
    assert c.state.mode is m.Mode.LOOKING and c.state.lookup == look[0].token


def test_given_lookup_answers_while_intro_plays_then_readout_follows_the_intro():
    c = Caller()
    c.in_status()
    out = c.answer(s.LookupResult((ticket(),), 1))
    assert says(out) == []  # the intro still plays: the answer is queued after it
    heard = c.finish_all()
    assert heard[:4] == ["st-count-pre", "st-n-1", "st-count-post", "st-ticket"]
    assert heard[-2:] == ["st-again", "st-ask"]
    assert c.state.mode is m.Mode.CHOOSING and c.state.ask is m.Ask.CODE
    assert c.state.timer is not None  # then it waits for a code, # or silence
    assert c.steps("status") == [{"event": "status", "node": "status", "answer": "found",
                                  "codes": "DN-20261207-0042"}]


def test_given_intro_ended_before_answer_then_answer_said_at_once():
    c = Caller()
    c.in_status()
    assert c.finish_all() == []  # intro over, nothing else yet: waiting for the store
    assert c.state.timer is None and c.state.mode is m.Mode.LOOKING
    assert says(c.answer(s.LookupResult()))[0] == "st-none"
    assert c.steps("status") == [{"event": "status", "node": "status", "answer": "none"}]


def test_given_readout_when_star_then_repeated_and_when_hash_then_back_to_main():
    c = Caller()
    c.in_status()
    c.answer(s.LookupResult((ticket(),), 1))
    c.finish_all()
    out = c.press("*")
    assert says(out) == ["st-count-pre"]
    assert c.finish_all()[-2:] == ["st-again", "st-ask"]
    out = c.press("#")
    assert says(out) == ["main"] and c.state.node == "main" and c.state.history == ()


def test_given_keyed_in_number_with_leading_zero_when_hash_then_looked_up_not_operator():
    c = Caller()
    c.in_status()
    c.answer(s.LookupResult())
    c.finish_all()
    c.press("0042#")
    assert c.state.node == "status" and c.state.mode is m.Mode.LOOKING
    assert c.lookups[-1].code == s.TypedCode(42) and c.lookups[-1].any_caller is False
    out = c.answer(s.LookupResult((ticket(state="resolved"),), 1))
    assert says(out) == ["st-ticket"] and c.state.queue[0].id == "st-n-0"
    assert c.steps("status")[-1] == {"event": "status", "node": "status", "digit": "0042",
                                     "answer": "found", "codes": "DN-20261207-0042"}


def test_given_digits_then_a_pause_then_the_number_is_looked_up():
    c = Caller()
    c.in_status()
    c.answer(s.LookupResult())
    c.finish_all()
    c.press("202612070042")
    c.wait()
    assert c.lookups[-1].code == s.TypedCode(42, dt.date(2026, 12, 7))


def test_given_codes_any_then_lookup_says_so():
    c = Caller(tree_of(TREE_YAML.replace('prompt: "Tra cứu phản ánh."', "codes: any")))
    c.in_status()
    assert c.lookups[-1].any_caller is True


def test_given_bad_or_unknown_codes_then_prompt_again_and_third_time_back_to_menu():
    c = Caller()
    c.in_status()
    c.answer(s.LookupResult())
    c.finish_all()
    out = c.press("1234567#")  # 7 digits: neither a sequence nor a whole code
    assert says(out) == ["st-bad-code"] and c.state.failures == 1
    assert c.finish_all() == ["st-ask"]
    c.press("99#")
    out = c.answer(s.LookupResult())  # not a ticket of this caller
    assert says(out) == ["st-not-found"] and c.state.failures == 2
    c.finish_all()
    c.wait()  # silence: the third failure
    assert c.state.node == "main" and c.state.mode is m.Mode.CHOOSING
    assert [x["event"] for x in c.steps("invalid")] == ["invalid"]
    assert c.steps("timeout") == [{"event": "timeout", "node": "status"}]


def test_given_silence_after_readout_then_ask_again_without_invalid_prompt():
    c = Caller()
    c.in_status()
    c.answer(s.LookupResult())
    c.finish_all()
    out = c.wait()
    assert says(out) == ["st-ask"]


def test_given_too_many_digits_then_bad_code():
    c = Caller()
    c.in_status()
    c.answer(s.LookupResult())
    c.finish_all()
    out = c.press("1" * 15)
    assert says(out) == ["st-bad-code"]


def test_given_store_unavailable_then_caller_told_and_back_in_the_menu():
    c = Caller()
    c.in_status()
    c.finish_all()
    out = c.answer(s.UNAVAILABLE)
    assert says(out) == ["st-unavailable"]
    assert c.state.node == "main"
    assert c.finish_all() == ["main"]
    assert c.steps("status") == [{"event": "status", "node": "status",
                                  "answer": "unavailable"}]
    assert "hệ thống tra cứu tạm thời gián đoạn" in (s.TEXTS.unavailable.text or "").lower()


def test_given_hash_while_looking_then_back_and_late_answer_ignored():
    c = Caller()
    c.in_status()
    c.press("#")
    assert c.state.node == "main"
    before = c.state
    assert c.answer(s.LookupResult((ticket(),), 1)) == [] and c.state == before


# ---- keys typed while the caller's own lookup runs (typed ahead, as on every IVR) -------------
CODE = "202612070042"  # the whole numeric part of DN-20261207-0042


def paths(c: Caller) -> list[dict[str, str]]:
    return [{k: v for k, v in x.as_dict().items() if k != "at"} for x in c.state.path]


def test_given_lookup_running_when_whole_code_and_hash_typed_then_it_is_looked_up_after():
    c = Caller()
    c.in_status()
    c.press(CODE + "#")  # while the store looks up the caller's own tickets
    assert c.state.mode is m.Mode.LOOKING and len(c.lookups) == 1
    c.answer(s.LookupResult())  # none of the caller's own
    assert c.state.mode is m.Mode.LOOKING and c.state.query == CODE
    assert c.lookups[-1].code == s.TypedCode(42, dt.date(2026, 12, 7))
    c.answer(s.LookupResult())
    assert [(x.get("digit"), x["answer"]) for x in c.steps("status")] == \
        [(None, "none"), (CODE, "none")]
    # Every key is in the path once, when it was pressed.
    assert "".join(x["digit"] for x in c.steps("digit")) == "7" + CODE + "#"


def test_given_code_typed_ahead_then_same_result_as_typed_after_the_readout():
    ahead, after = Caller(), Caller()
    for c in (ahead, after):
        c.in_status()
    ahead.press(CODE + "#")
    ahead.answer(s.LookupResult())
    after.answer(s.LookupResult())
    after.press(CODE + "#")
    assert [x.code for x in ahead.lookups] == [x.code for x in after.lookups]
    for c in (ahead, after):
        c.answer(s.LookupResult((ticket(),), 1))
    # The same steps; only where the keys stand differs (each is logged when it was pressed).
    for event in ("digit", "status", "enter", "invalid"):
        assert ahead.steps(event) == after.steps(event)
    assert len(paths(ahead)) == len(paths(after))
    assert (ahead.state.node, ahead.state.mode, ahead.state.ask, ahead.state.buffer) == \
        (after.state.node, after.state.mode, after.state.ask, after.state.buffer)
    assert ahead.finish_all() == after.finish_all()  # the ticket read, then "enter a code"


def test_given_0_while_looking_then_kept_as_the_first_digit_of_a_code_not_operator():
    c = Caller()
    c.in_status()
    c.press("00")  # sequence numbers start with 0: "0042"
    assert c.state.node == "status" and c.state.mode is m.Mode.LOOKING
    c.answer(s.LookupResult())
    c.press("42#")
    assert c.lookups[-1].code == s.TypedCode(42) and c.state.query == "0042"


def test_given_digits_typed_ahead_when_lookup_ends_then_only_a_code_timer_is_asked():
    c = Caller()
    c.in_status()
    c.press("004")
    out = c.answer(s.LookupResult((ticket(),), 1))
    # The readout would be cut by the first typed key at once: it is not started at all, and
    # of the timers armed key by key only the last is asked for.
    node = TREE.node("status")
    assert isinstance(node, StatusNode) and c.state.timer is not None
    assert out == [m.StartTimer(c.state.timer, node.timeout_s)]
    assert c.state.buffer == "004" and c.state.ask is m.Ask.CODE
    assert c.steps("status")[0]["answer"] == "found"  # the lookup is logged all the same
    c.wait()  # the pause ends the number, as if typed after
    assert c.lookups[-1].code == s.TypedCode(4) and c.state.query == "004"


def test_given_whole_code_typed_ahead_when_lookup_ends_then_exactly_the_code_lookup():
    c = Caller()
    c.in_status()
    c.press(CODE + "#")
    out = c.answer(s.LookupResult((ticket(),), 1))
    assert out == [m.LookupTickets(c.state.lookup, s.TypedCode(42, dt.date(2026, 12, 7)))]


def test_given_keys_typed_during_a_code_lookup_then_applied_to_the_next_code():
    c = Caller()
    c.in_status()
    c.answer(s.LookupResult())
    c.finish_all()
    c.press("99#")  # a code: looked up
    c.press("42#")  # the next one, typed while the first is looked up
    c.answer(s.LookupResult())  # 99: not found
    assert c.state.mode is m.Mode.LOOKING and c.state.query == "42"
    c.answer(s.LookupResult((ticket(),), 1))
    assert [(x.get("digit"), x["answer"]) for x in c.steps("status")] == \
        [(None, "none"), ("99", "none"), ("42", "found")]


def test_given_keys_typed_ahead_when_caller_hangs_up_during_lookup_then_ends_cleanly():
    c = Caller()
    c.in_status()
    c.press("0042")
    out = c.send(m.CallerLeft(c.now))
    assert out == [] and c.state.mode is m.Mode.DONE and c.state.typed == ""
    assert c.steps("hangup") == [{"event": "hangup", "node": "status"}]
    before = c.state
    assert c.answer(s.LookupResult((ticket(),), 1)) == [] and c.state == before


def test_given_keys_typed_ahead_when_store_unavailable_then_not_taken_as_menu_choices():
    c = Caller()
    c.in_status()
    c.press("90#")  # 9 and 0 would be the operator in the main menu
    out = c.answer(s.UNAVAILABLE)
    assert says(out) == ["st-unavailable"]
    assert c.state.node == "main" and c.state.mode is m.Mode.CHOOSING and c.state.typed == ""
    assert c.finish_all() == ["main"]


def test_given_hash_after_typed_digits_while_looking_then_it_ends_the_code_not_the_node():
    c = Caller()
    c.in_status()
    c.press("42#")
    assert c.state.node == "status" and c.state.typed == "42#"


# ---- the call machine and the records ---------------------------------------------------------
def test_given_call_in_menus_then_lookup_passes_through_and_its_answer_is_fed_back():
    ctx = cm.IvrContext(TREE, m.NoFaq(), Prompt("greeting", "Xin chào"))
    state = cm.CallState("c1", "pbx1", "1022", "0912345678", "c1", T0, phase=cm.Phase.IVR,
                         tenant_id="dongnai", line_held=True, menu=m.start_state(TREE))
    state, _ = cm.step(state, cm.Resume(T0), ctx)  # the menus start at the root
    state, out = cm.step(state, m.Digit(T0, "7"), ctx)
    (look,) = [x for x in out if isinstance(x, m.LookupTickets)]
    state, out = cm.step(state, m.LookupDone(T0, look.token, s.LookupResult((ticket(),), 1)), ctx)
    assert state.menu is not None and state.menu.ask is m.Ask.CODE
    again = state_from_json(state_to_json(state))
    assert again.menu is not None and again.menu.path == state.menu.path
    assert [x.codes for x in again.menu.path if x.event == "status"] == ["DN-20261207-0042"]


def test_given_call_left_menus_then_a_late_lookup_answer_is_ignored():
    state = cm.CallState("c1", "pbx1", "1022", "0912345678", "c1", T0, phase=cm.Phase.QUEUED,
                         tenant_id="dongnai")
    assert cm.step(state, m.LookupDone(T0, 3, s.LookupResult())) == (state, [])


def test_given_status_step_then_desk_reads_it_in_vietnamese():
    step = m.Step(T0, "status", node="status", answer="found",
                  codes="DN-20261207-0042 DN-20261206-0007")
    assert step_text(step, TREE, {}) == \
        "Tra cứu phản ánh (theo số điện thoại): nghe phiếu DN-20261207-0042, DN-20261206-0007"
    down = m.Step(T0, "status", node="status", digit="42", answer="unavailable")
    assert step_text(down, TREE, {}) == "Tra cứu phản ánh (mã số 42): hệ thống gián đoạn"


# ---- the call's task carries the lookup out -------------------------------------------------
async def test_given_lookup_command_then_call_task_asks_the_store_and_feeds_the_answer_back():
    import asyncio

    from callcenter.ari_app.calls import CallDeps, CallSession

    asked: list[tuple[str, str, m.LookupTickets]] = []
    found = s.LookupResult((ticket(),), 1)

    async def lookup(tenant: str, caller: str, command: m.LookupTickets) -> s.LookupResult:
        asked.append((tenant, caller, command))
        return found

    async def write(state: cm.CallState) -> None:
        return None

    state = cm.CallState("c1", "pbx1", "1022", "0912345678", "c1", T0, phase=cm.Phase.IVR,
                         tenant_id="dongnai")
    deps = CallDeps(ari=None, pool=None, redis=None, sounds_dir="/s",  # type: ignore[arg-type]
                    write_record=write, lookup=lookup)
    command = m.LookupTickets(7, s.TypedCode(42))

    async def answer() -> cm.Event:
        """The lookup runs as its own task: its answer comes back as the call's next event."""
        session = CallSession(state, deps)
        assert await session._execute(command) is None  # nothing awaited in the call's task
        return await asyncio.wait_for(session.events.get(), 1)

    back = await answer()
    assert asked == [("dongnai", "0912345678", command)]
    assert isinstance(back, m.LookupDone) and (back.token, back.result) == (7, found)
    deps.lookup = None  # no ticket store wired: the caller hears "interrupted", not silence
    back = await answer()
    assert isinstance(back, m.LookupDone) and back.result == s.UNAVAILABLE


async def test_given_slow_lookup_when_caller_types_a_code_meanwhile_then_every_key_counts():
    """The call's task: keys arriving while the caller's own lookup is awaited are not lost,
    whether they wait in the call's event queue or in the menu's typed-ahead keys."""
    import asyncio

    from callcenter.ari_app.calls import CallDeps, CallSession

    release = asyncio.Event()
    asked: list[m.LookupTickets] = []

    async def lookup(tenant: str, caller: str, command: m.LookupTickets) -> s.LookupResult:
        asked.append(command)
        if len(asked) == 1:
            await release.wait()  # the caller's own lookup, slow
        return s.LookupResult()

    class Ari:
        async def play(self, cid: str, media: str, pid: str) -> None:
            return None

        async def stop_playback(self, pid: str) -> bool:
            return True

        async def subscribe_channel(self, cid: str) -> None:
            return None

    class Prompts:
        async def media(self, tenant: str, prompt: Prompt) -> str:
            return f"sound:{prompt.id}"

    async def write(state: cm.CallState) -> None:
        return None

    class Redis:
        async def set(self, key: str, value: str, ex: int) -> None:
            return None

    class Pool:
        degraded = False

    ctx = cm.IvrContext(TREE, m.NoFaq(), Prompt("greeting", "Xin chào"))
    state = cm.CallState("c1", "pbx1", "1022", "0909555702", "c1", T0, phase=cm.Phase.IVR,
                         tenant_id="dongnai", line_held=True, menu=m.start_state(TREE))
    deps = CallDeps(ari=Ari(), pool=Pool(), redis=Redis(), sounds_dir="/s",  # type: ignore[arg-type]
                    write_record=write, lookup=lookup, prompts=Prompts())  # type: ignore[arg-type]
    session = CallSession(state, deps, ctx)
    task = asyncio.create_task(session.run([cm.Resume(T0)]))

    async def until(done: Callable[[], bool]) -> None:
        while not done() and not task.done():
            await asyncio.sleep(0.001)

    def in_menu() -> bool:
        return session.state.menu is not None and session.state.menu.mode is m.Mode.CHOOSING

    await asyncio.wait_for(until(in_menu), 2)  # the main menu says its prompt
    session.events.put_nowait(m.Digit(T0, "7"))
    await asyncio.wait_for(until(lambda: bool(asked)), 2)
    for key in CODE + "#":  # typed while the store is still looking
        session.events.put_nowait(m.Digit(T0, key))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.wait_for(until(lambda: len(asked) > 1), 2)
    assert not task.done(), session.state
    assert asked[1].code == s.TypedCode(42, dt.date(2026, 12, 7))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_given_status_step_then_calls_listing_shows_the_codes_read():
    from callcenter.cli import _ivr_step_text

    step = m.Step(T0, "status", node="status", answer="found",
                  codes="DN-20261207-0042 DN-20261206-0007").as_dict()
    assert _ivr_step_text(step) == "status:DN-20261207-0042,DN-20261206-0007"
    none = m.Step(T0, "status", node="status", digit="42", answer="none").as_dict()
    assert _ivr_step_text(none) == "status:42"


# ---- the lookup runs beside the call's task (its answer is an event) -------------------------
class _Ari:
    async def play(self, cid: str, media: str, pid: str) -> None:
        return None

    async def stop_playback(self, pid: str) -> bool:
        return True

    async def subscribe_channel(self, cid: str) -> None:
        return None


class _Prompts:
    async def media(self, tenant: str, prompt: Prompt) -> str:
        return f"sound:{prompt.id}"


class _Redis:
    async def set(self, key: str, value: str, ex: int) -> None:
        return None

    async def delete(self, key: str) -> None:
        return None


class _Pool:
    degraded = False

    def __init__(self) -> None:
        self.released: list[str] = []

    async def release(self, tenant: str, cid: str) -> bool:
        self.released.append(cid)
        return True


class _SlowStore:
    """The ticket store: the caller's own lookup (the first) answers only when ``release`` is
    set; ``cancelled`` once the call gave up on it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.asked: list[m.LookupTickets] = []
        self.cancelled = False

    async def lookup(self, tenant: str, caller: str, command: m.LookupTickets) -> s.LookupResult:
        self.asked.append(command)
        if len(self.asked) == 1:
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        return s.LookupResult()


Until = Callable[[Callable[[], bool]], Awaitable[None]]


async def _in_status_lookup(store: _SlowStore
                            ) -> tuple[CallSession, asyncio.Task[None], Until, list[cm.CallState]]:
    """A call in the main menu that pressed 7: (session, its task, until(), records written)."""
    written: list[cm.CallState] = []

    async def write(state: cm.CallState) -> None:
        written.append(state)

    ctx = cm.IvrContext(TREE, m.NoFaq(), Prompt("greeting", "Xin chào"))
    state = cm.CallState("c1", "pbx1", "1022", "0909555702", "c1", T0, phase=cm.Phase.IVR,
                         tenant_id="dongnai", line_held=True, menu=m.start_state(TREE))
    deps = CallDeps(ari=_Ari(), pool=_Pool(), redis=_Redis(),
                    sounds_dir="/s", write_record=write, lookup=store.lookup,
                    prompts=_Prompts())
    session = CallSession(state, deps, ctx)
    task = asyncio.create_task(session.run([cm.Resume(T0)]))

    async def until(done: Callable[[], bool]) -> None:
        async def poll() -> None:
            while not done() and not task.done():
                await asyncio.sleep(0.001)
        await asyncio.wait_for(poll(), 2)

    await until(lambda: session.state.menu is not None
                and session.state.menu.mode is m.Mode.CHOOSING)
    session.events.put_nowait(m.Digit(T0, "7"))
    await until(lambda: bool(store.asked))
    return session, task, until, written


async def test_given_slow_lookup_when_caller_hangs_up_then_call_ends_at_once_lookup_cancelled():
    """The store is slow (up to its timeout): a hang-up meanwhile ends the call now (line
    freed, one record), and the lookup is cancelled, not left running."""
    store = _SlowStore()
    session, task, _until, written = await _in_status_lookup(store)
    session.events.put_nowait(cm.HungUp(T0, 16, "16 Normal Clearing"))
    await asyncio.wait_for(task, 1)
    assert [w.phase for w in written] == [cm.Phase.ENDED]
    assert cast(_Pool, session.deps.pool).released == ["c1"]
    assert store.cancelled
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("lookup:")]


async def test_given_slow_lookup_when_code_typed_meanwhile_then_same_as_typed_after_it():
    """Keys pressed while the store looks reach the menu at once (typed ahead, in its buffer)
    and end in the same code lookup as the same keys pressed once it answered."""
    ahead = _SlowStore()
    session, task, until, _ = await _in_status_lookup(ahead)
    for key in CODE + "#":
        session.events.put_nowait(m.Digit(T0, key))
    await until(lambda: session.state.menu is not None and session.state.menu.typed == CODE + "#")
    assert len(ahead.asked) == 1  # the store has not answered yet
    ahead.release.set()
    await until(lambda: len(ahead.asked) > 1)

    after = _SlowStore()
    later, later_task, later_until, _ = await _in_status_lookup(after)
    after.release.set()
    await later_until(lambda: later.state.menu is not None and later.state.menu.lookup is None)
    for key in CODE + "#":
        later.events.put_nowait(m.Digit(T0, key))
    await later_until(lambda: len(after.asked) > 1)

    asked_ahead, asked_after = ahead.asked[1], after.asked[1]
    assert (asked_ahead.code, asked_ahead.any_caller) == (asked_after.code, asked_after.any_caller)
    assert asked_ahead.code == s.TypedCode(42, dt.date(2026, 12, 7))
    # Both callers then hear the same answer to it, and stand at the same point of the menu.
    await until(lambda: session.state.menu is not None and session.state.menu.lookup is None)
    await later_until(lambda: later.state.menu is not None and later.state.menu.lookup is None)
    assert session.state.menu is not None and later.state.menu is not None
    point = lambda mn: (mn.node, mn.mode, mn.ask, mn.failures, mn.typed)  # noqa: E731
    assert point(session.state.menu) == point(later.state.menu)
    for t in (task, later_task):
        t.cancel()
    await asyncio.gather(task, later_task, return_exceptions=True)
