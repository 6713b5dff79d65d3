"""The IVR interpreter: given this state and this event, expect this state and these commands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.config.base import BaseParser
from callcenter.config.model import DEFAULT_FIELDS
from callcenter.ivr import menu as m
from callcenter.ivr.config import parse_ivr
from callcenter.ivr.tree import IvrTree, Prompt

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)

TREE_YAML = """
root: main
retries: 3
timeout: 5
inter_digit: 2
nodes:
  main:
    type: menu
    prompt: "Bấm 1 y tế, bấm 2 an sinh, bấm 3 câu hỏi về khẩu trang, bấm 12 tin giả."
    options: {"1": health, "2": social, "3": mask, "12": news, "4": sub}
  sub:
    type: menu
    prompt: "Menu phụ. Bấm 1 để gặp tổng đài viên."
    options: {"1": operator}
    fallback: bye
  health: {type: faq, field: health, prompt: "Các câu hỏi về y tế."}
  social: {type: faq, field: social_security}
  mask: {type: faq, item: "YT-01"}
  news: {type: faq, field: information}
  operator: {type: operator, prompt: "Xin quý khách vui lòng giữ máy."}
  bye: {type: goodbye, prompt: "Xin chào."}
"""


@dataclass(frozen=True)
class Item:
    key: str
    question: str
    sentences: tuple[str, ...]
    code: str | None = None


class Faq:
    def __init__(self, items: dict[str, list[Item]]):
        self.items = items

    def for_field(self, field: str) -> Sequence[Item]:
        return self.items.get(field, [])

    def find(self, ref: str) -> Item | None:
        for items in self.items.values():
            for it in items:
                if ref in (it.key, it.code):
                    return it
        return None


HEALTH = [Item(f"h{i:02d}", f"Câu hỏi y tế số {i}", (f"Câu {i} ý một.", f"Câu {i} ý hai."),
               code="YT-01" if i == 1 else None) for i in range(1, 11)]
SOCIAL = [Item("s01", "Trợ cấp thất nghiệp", ("Một câu duy nhất.",))]
FAQ = Faq({"health": HEALTH, "social_security": SOCIAL})


def tree_of(text: str = TREE_YAML) -> IvrTree:
    p = BaseParser("test.yaml")
    tree = parse_ivr(p, yaml.safe_load(text), "tenants[0].ivr", DEFAULT_FIELDS)
    assert not p.errors, [e.line_text() for e in p.errors]
    assert tree is not None
    return tree


TREE = tree_of()


class Caller:
    """Drives the interpreter like the ARI adapter would: ends prompts, fires timers."""

    def __init__(self, tree: IvrTree = TREE, faq: m.FaqSource = FAQ):
        self.tree, self.faq = tree, faq
        self.state = m.start_state(tree)
        self.said: list[str] = []
        self.commands: list[m.MenuCommand] = []
        self.now = T0

    def send(self, event: m.MenuEvent) -> list[m.MenuCommand]:
        self.state, out = m.step(self.tree, self.faq, self.state, event)
        self.commands += out
        self.said += [c.prompt.id for c in out if isinstance(c, m.Say)]
        return out

    def tick(self, seconds: float = 0.1) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now

    def start(self) -> list[m.MenuCommand]:
        return self.send(m.Start(self.tick(), Prompt("greeting", "Xin chào")))

    def press(self, digits: str) -> list[m.MenuCommand]:
        out: list[m.MenuCommand] = []
        for d in digits:
            out += self.send(m.Digit(self.tick(), d))
        return out

    def finish_prompt(self) -> list[m.MenuCommand]:
        assert self.state.playing is not None, "nothing is playing"
        return self.send(m.PromptEnded(self.tick(), self.state.playing))

    def finish_all(self) -> list[m.MenuCommand]:
        out: list[m.MenuCommand] = []
        while self.state.playing is not None:
            out += self.finish_prompt()
        return out

    def wait(self) -> list[m.MenuCommand]:
        assert self.state.timer is not None, "no timer armed"
        return self.send(m.TimerFired(self.tick(5), self.state.timer))

    def events(self) -> list[str]:
        return [s.event for s in self.state.path]


def test_given_a_new_call_when_started_then_greeting_then_root_prompt_then_timer():
    c = Caller()
    out = c.start()
    assert out == [m.Say(Prompt("greeting", "Xin chào"), 1)]
    assert c.state.queue == (TREE.node("main").prompt,)  # type: ignore[union-attr]
    assert c.finish_prompt() == [m.Say(TREE.node("main").prompt, 2)]  # type: ignore[union-attr]
    assert c.finish_prompt() == [m.StartTimer(3, 5.0)]
    assert c.state.mode is m.Mode.CHOOSING and c.state.node == "main"
    assert c.events() == ["enter"]


def test_given_greeting_playing_when_digit_then_barge_in_and_choice_taken():
    c = Caller()
    c.start()
    out = c.press("2")
    assert out[0] == m.StopSaying(1)
    assert isinstance(out[-1], m.Say) and out[-1].prompt.id == "faqlist-social-1"
    assert c.state.node == "social" and c.state.history == ("main",)


def test_given_menu_when_unknown_digit_then_invalid_prompt_and_menu_again():
    c = Caller()
    c.start()
    c.finish_all()
    out = c.press("7")
    assert [x.prompt.id for x in out if isinstance(x, m.Say)] == ["invalid"]
    assert c.state.queue == (TREE.node("main").prompt,)  # type: ignore[union-attr]
    assert c.state.failures == 1
    assert c.events() == ["enter", "digit", "invalid"]


def test_given_three_invalid_inputs_then_fallback_operator():
    c = Caller()
    c.start()
    c.finish_all()
    for _ in range(2):
        c.press("7")
        c.finish_all()
    out = c.press("8")
    assert c.state.node == "operator" and c.state.mode is m.Mode.TO_OPERATOR
    assert isinstance(out[-1], m.Say) and out[-1].prompt.id == "operator"
    assert c.finish_prompt() == [m.ToOperator("operator", False)]
    assert c.state.mode is m.Mode.DONE


def test_given_silence_then_timeouts_count_as_failures_and_reach_fallback():
    c = Caller()
    c.start()
    c.finish_all()
    c.wait()
    assert c.state.failures == 1 and c.events()[-1] == "timeout"
    c.finish_all()
    c.wait()
    c.finish_all()
    c.wait()
    assert c.state.node == "operator"


def test_given_sub_menu_with_goodbye_fallback_when_retries_exhausted_then_goodbye_and_end():
    c = Caller()
    c.start()
    c.press("4")
    for _ in range(3):
        c.finish_all()
        c.wait()
    assert c.state.node == "bye" and c.state.mode is m.Mode.LEAVING
    assert c.finish_prompt() == [m.EndCall()]


def test_given_sub_menu_when_0_then_operator_from_anywhere():
    c = Caller()
    c.start()
    c.press("4")
    c.press("0")
    assert c.state.node == "operator"
    assert "operator" in c.events()


def test_given_sub_menu_when_hash_then_back_to_previous_menu():
    c = Caller()
    c.start()
    c.press("4")
    out = c.press("#")
    assert c.state.node == "main" and c.state.history == ()
    assert isinstance(out[-1], m.Say) and out[-1].prompt.id == "main"


def test_given_root_when_hash_then_root_repeats():
    c = Caller()
    c.start()
    c.finish_all()
    out = c.press("#")
    assert c.state.node == "main"
    assert [x.prompt.id for x in out if isinstance(x, m.Say)] == ["main"]


def test_given_menu_when_star_then_prompt_repeats_and_no_failure_counted():
    c = Caller()
    c.start()
    c.finish_all()
    out = c.press("*")
    assert out == [m.CancelTimer(), m.Say(TREE.node("main").prompt, 4)]  # type: ignore[union-attr]
    assert c.state.failures == 0


def test_given_two_digit_option_when_1_then_waits_inter_digit_then_12_selects():
    c = Caller()
    c.start()
    c.finish_all()
    out = c.press("1")
    assert out[-1] == m.StartTimer(c.state.timer or 0, 2.0) and c.state.buffer == "1"
    c.press("2")
    entered = [s.node for s in c.state.path if s.event == "enter"]
    assert entered[-2:] == ["news", "main"]  # "news" has no FAQ yet: told so, back in main


def test_given_two_digit_option_when_1_and_pause_then_1_selected():
    c = Caller()
    c.start()
    c.finish_all()
    c.press("1")
    c.wait()
    assert c.state.node == "health" and c.state.ask is m.Ask.LIST


def test_given_prefix_when_hash_then_choice_ends_early():
    c = Caller()
    c.start()
    c.press("1#")
    assert c.state.node == "health"


def test_given_faq_list_when_item_chosen_then_sentences_then_feedback_yes_ends_call():
    c = Caller()
    c.start()
    c.press("2")
    c.finish_all()
    c.press("1")
    assert c.state.mode is m.Mode.ANSWERING and c.state.item == "s01"
    assert c.said[-1] == "faq-s01-1"
    c.finish_all()
    assert c.state.ask is m.Ask.FEEDBACK and c.said[-1] == "feedback"
    c.press("1")
    assert c.state.mode is m.Mode.LEAVING and c.said[-1] == "thanks"
    assert c.finish_prompt() == [m.EndCall()]
    path = m.path_dicts(c.state)
    assert {"event": "faq", "faq": "s01", "node": "social"}.items() <= path[-4].items()
    assert path[-3]["event"] == "digit"
    assert path[-2] == path[-2] | {"event": "feedback", "faq": "s01", "answer": "yes"}


def test_given_feedback_when_2_then_operator_and_no_recorded():
    c = Caller()
    c.start()
    c.press("3")  # single item node
    c.finish_all()
    c.press("2")
    assert c.state.node == "operator"
    fb = [s for s in c.state.path if s.event == "feedback"]
    assert fb[0].answer == "no" and fb[0].faq == "h01"


def test_given_answer_playing_when_other_digit_then_next_sentence():
    c = Caller()
    c.start()
    c.press("3")
    # intro-less item node: sentence 1 is playing
    assert c.said[-1] == "faq-h01-1"
    c.press("5")
    assert c.said[-1] == "faq-h01-2" and c.state.sentence == 1
    c.press("5")
    assert c.state.ask is m.Ask.FEEDBACK


def test_given_answer_when_star_then_answer_from_the_start():
    c = Caller()
    c.start()
    c.press("3")
    c.finish_prompt()
    assert c.said[-1] == "faq-h01-2"
    c.press("*")
    assert c.said[-1] == "faq-h01-1" and c.state.sentence == 0


def test_given_answer_from_list_when_hash_then_back_to_list():
    c = Caller()
    c.start()
    c.press("1#")
    c.finish_all()
    c.press("2")
    assert c.state.item == "h02"
    c.press("#")
    assert c.state.ask is m.Ask.LIST and c.state.node == "health"


def test_given_long_field_list_when_9_then_next_page():
    c = Caller()
    c.start()
    c.press("1#")
    assert c.said[-1] == "health" and [p.id for p in c.state.queue] == ["faqlist-health-1"]
    c.finish_all()
    c.press("9")
    assert c.said[-1] == "faqlist-health-2" and c.state.page == 1
    c.press("2")
    assert c.state.item == "h10"


def test_given_page_text_then_it_reads_choices_and_more():
    pages = m.list_pages(TREE, TREE.node("health"), HEALTH)  # type: ignore[arg-type]
    assert len(pages) == 2
    assert pages[0].text is not None and "Bấm phím 1: Câu hỏi y tế số 1?" in pages[0].text
    assert pages[0].text.endswith(TREE.texts.more)
    assert pages[1].text is not None and TREE.texts.more not in pages[1].text


def test_given_field_without_items_when_chosen_then_told_and_back_in_menu():
    c = Caller()
    c.start()
    c.press("12")
    assert c.state.node == "main"
    assert c.said[-1] == "no_items" and [p.id for p in c.state.queue] == ["main"]


def test_given_missing_item_node_then_told_and_back():
    c = Caller(faq=Faq({}))
    c.start()
    c.press("3")
    assert c.state.node == "main"
    assert c.said[-1] == "no_items" and [p.id for p in c.state.queue] == ["main"]


def test_given_prompt_playing_when_caller_hangs_up_then_done_and_recorded():
    c = Caller()
    c.start()
    out = c.send(m.CallerLeft(c.tick()))
    assert out == []
    assert c.state.mode is m.Mode.DONE and c.events()[-1] == "hangup"
    assert c.send(m.PromptEnded(c.tick(), 1)) == []


def test_given_timer_armed_when_caller_hangs_up_then_timer_cancelled():
    c = Caller()
    c.start()
    c.finish_all()
    assert c.send(m.CallerLeft(c.tick())) == [m.CancelTimer()]


def test_given_stale_tokens_then_ignored():
    c = Caller()
    c.start()
    c.press("4")  # greeting token 1 stopped
    before = c.state
    assert c.send(m.PromptEnded(c.tick(), 1)) == []
    assert c.send(m.TimerFired(c.tick(), 99)) == []
    assert c.state == before


def test_given_garbage_keys_then_ignored():
    c = Caller()
    c.start()
    before = c.state
    for junk in ("A", "", "12", "x", "\x00"):
        assert c.send(m.Digit(c.tick(), junk)) == []
    assert c.state == before


def test_given_leaving_when_digits_then_ignored():
    c = Caller()
    c.start()
    c.press("0")
    out = c.press("5")
    assert out == [] and c.state.mode is m.Mode.TO_OPERATOR


def test_given_tree_without_operator_when_0_then_invalid():
    tree = tree_of("""
root: main
nodes:
  main: {type: menu, prompt: "Bấm 1", options: {"1": bye}}
  bye: {type: goodbye, prompt: "Xin chào"}
""")
    c = Caller(tree)
    c.start()
    c.finish_all()
    c.press("0")
    assert c.state.failures == 1 and c.events()[-1] == "invalid"


def test_given_path_cap_then_path_stops_growing():
    c = Caller()
    c.start()
    for _ in range(m.MAX_PATH):
        c.press("*")
    assert len(c.state.path) == m.MAX_PATH


KEYS = st.sampled_from(list("0123456789*#"))
ACTIONS = st.lists(st.one_of(KEYS, st.sampled_from(["end", "timer", "stale", "left"])),
                   max_size=60)


@settings(max_examples=300, deadline=None)
@given(ACTIONS)
def test_given_any_key_sequence_then_machine_never_raises_and_stays_consistent(actions):
    c = Caller()
    c.start()
    tokens: set[int] = {1}
    for a in actions:
        if a == "end" and c.state.playing is not None:
            c.finish_prompt()
        elif a == "timer" and c.state.timer is not None:
            c.wait()
        elif a == "stale":
            assert c.send(m.PromptEnded(c.tick(), -1)) == []
        elif a == "left":
            c.send(m.CallerLeft(c.tick()))
        elif len(a) == 1:
            c.press(a)
        for cmd in c.commands:
            if isinstance(cmd, m.Say):
                tokens.add(cmd.token)
        s = c.state
        assert s.node in TREE.by_id
        # At most one thing pending: a prompt playing, or a timer, or nothing when leaving.
        if s.mode is m.Mode.CHOOSING:
            assert (s.playing is None) != (s.timer is None) or s.playing is not None
        if s.mode is m.Mode.DONE:
            assert s.playing is None or any(isinstance(x, (m.ToOperator, m.EndCall))
                                            for x in c.commands)
    says = [x.token for x in c.commands if isinstance(x, m.Say)]
    assert len(says) == len(set(says)), "every playback gets its own token"


@pytest.mark.parametrize("digit", list("123456789"))
def test_given_every_root_digit_then_defined_outcome(digit):
    c = Caller()
    c.start()
    c.finish_all()
    c.press(digit)
    if c.state.buffer:
        c.wait()
    assert c.state.node in TREE.by_id
    assert c.events()[-1] in ("enter", "invalid", "faq")
