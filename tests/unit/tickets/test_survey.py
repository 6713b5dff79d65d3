"""The satisfaction survey's pure rules: reading a reply, matching it to a notice, its config."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.tickets.config import SURVEY_QUESTION, SurveyPolicy
from callcenter.tickets.survey import ReplyMatch, SurveyAsk, match_reply, parse_reply
from tests.unit.tickets.test_config import error_at, policy, with_tickets

T0 = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
PHONE = "0912345678"


def ask(i: int, asked: dt.datetime, answer: Any = None, days: int = 7,
        code: str | None = None) -> SurveyAsk:
    return SurveyAsk(i, code or f"DN-20261123-{i:04d}", "dongnai", PHONE, asked,
                     asked + days * DAY, answer)


# ---- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "answer"), [
    ("1", "satisfied"), (" 1 ", "satisfied"), ("1.", "satisfied"), ("1!", "satisfied"),
    ("\n2\n", "not_resolved"), ("2", "not_resolved"), (" 2)", "not_resolved"),
    ("１", "satisfied"), ("２", "not_resolved"),  # full-width digits (NFKC)
])
def test_given_the_digit_alone_when_parsed_then_the_answer(text: str, answer: str) -> None:
    assert parse_reply(text) == answer


@pytest.mark.parametrize("text", [
    "", " ", "hai", "Hai", "một", "hài lòng", "12", "1 2", "3", "0", "21", "1 cảm ơn",
    "chưa được giải quyết", "11", "2.5", "+1", "٢",  # Arabic-Indic two: not our digit
])
def test_given_anything_else_when_parsed_then_not_an_answer(text: str) -> None:
    assert parse_reply(text) is None


def test_given_no_text_when_parsed_then_not_an_answer() -> None:
    assert parse_reply(None) is None


@given(st.text(max_size=12))
def test_given_any_text_when_parsed_then_an_answer_only_if_one_digit_1_or_2(text: str) -> None:
    got = parse_reply(text)
    if got is not None:
        digits = [c for c in unicodedata.normalize("NFKC", text) if c.isdigit()]
        assert digits in (["1"], ["2"])
        assert got == ("satisfied" if digits == ["1"] else "not_resolved")


# ---- matching ---------------------------------------------------------------------------------
def test_given_two_open_notices_when_replying_then_the_most_recent_gets_it() -> None:
    older, newer = ask(1, T0), ask(2, T0 + DAY)
    m = match_reply("2", [newer, older], T0 + 2 * DAY)
    assert (m.outcome, m.ask) == ("not_resolved", newer)


def test_given_the_recent_one_answered_when_replying_then_the_older_open_one_gets_it() -> None:
    older, newer = ask(1, T0), ask(2, T0 + DAY, "satisfied")
    m = match_reply("1", [older, newer], T0 + 2 * DAY)
    assert (m.outcome, m.ask) == ("satisfied", older)


def test_given_the_window_passed_when_replying_then_no_survey() -> None:
    a = ask(1, T0)
    assert match_reply("1", [a], T0 + 7 * DAY).ask == a  # the last moment still counts
    m = match_reply("1", [a], T0 + 7 * DAY + dt.timedelta(seconds=1))
    assert (m.outcome, m.ask) == ("no_survey", None)


def test_given_a_custom_window_when_replying_then_it_applies() -> None:
    a = ask(1, T0, days=1)
    assert match_reply("2", [a], T0 + 2 * DAY).outcome == "no_survey"


def test_given_no_notice_when_replying_then_no_survey() -> None:
    assert match_reply("1", [], T0) == ReplyMatch("no_survey", None)


def test_given_an_answered_notice_when_replying_again_then_already_answered() -> None:
    a = ask(1, T0, "satisfied")
    m = match_reply("2", [a], T0 + DAY)
    assert (m.outcome, m.ask) == ("already_answered", a)


def test_given_other_text_when_replying_then_unrecognised_with_the_open_notice() -> None:
    a = ask(1, T0)
    m = match_reply("hai", [a], T0 + DAY)
    assert (m.outcome, m.ask) == ("unrecognised", a)
    assert match_reply("cảm ơn", [], T0).outcome == "unrecognised"


def test_given_a_notice_from_the_future_when_replying_then_it_does_not_count() -> None:
    # Clocks of two instances differ a little: a reply cannot answer a notice not yet sent.
    assert match_reply("1", [ask(1, T0 + DAY)], T0).outcome == "no_survey"


# ---- config -----------------------------------------------------------------------------------
def test_given_no_survey_section_when_parsed_then_off() -> None:
    assert policy(with_tickets()).survey == SurveyPolicy(enabled=False)


def test_given_an_empty_survey_section_when_parsed_then_on_with_the_defaults() -> None:
    t = with_tickets()
    t["tickets"]["survey"] = {"reply_days": 7}
    assert policy(t).survey == SurveyPolicy(True, SURVEY_QUESTION, 7)


def test_given_survey_values_when_parsed_then_kept() -> None:
    t = with_tickets()
    t["tickets"]["survey"] = {"enabled": False, "question": " Nhắn 1 nếu hài lòng. ",
                              "reply_days": 3}
    assert policy(t).survey == SurveyPolicy(False, "Nhắn 1 nếu hài lòng.", 3)


@pytest.mark.parametrize(("key", "value"), [
    ("enabled", "yes"), ("reply_days", 0), ("reply_days", 61), ("reply_days", "7"),
    ("reply_days", True), ("question", ""), ("question", "x" * 161),
    ("question", "Mã {code}: nhắn 1"), ("colour", "red"),
])
def test_given_a_bad_survey_value_when_parsed_then_error_names_the_key(key: str,
                                                                       value: object) -> None:
    t = with_tickets()
    t["tickets"]["survey"] = {key: value}
    where = f"tenants[0].tickets.survey.{key}"
    assert error_at(t, where).key == where
    assert error_at(t, where).source == "test.yaml"
