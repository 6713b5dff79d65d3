"""Quality review rules (callcenter.quality.rules): the tenant key, periods, the deterministic
weekly sample, score validation, the per-operator report, and which requests start a play."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config.base import ConfigError
from callcenter.config.parse import parse_config
from callcenter.quality.rules import (
    DEFAULT_SAMPLE,
    CallFacts,
    ReviewFacts,
    Scores,
    operator_report,
    parse_period,
    shift_week,
    starts_a_play,
    validate_scores,
    week_of,
    weekly_sample,
)
from tests.support.config_files import config_data

HCM = "Asia/Ho_Chi_Minh"
W49 = parse_period("2026-W49", HCM)  # Mon 30/11 00:00 +07 .. Mon 07/12 00:00 +07
UTC = dt.UTC


def _config(extra: str) -> Any:
    data = config_data("one_tenant_two_lines.yaml")
    if extra:
        data["tenants"][0].update(yaml.safe_load(extra))
    return parse_config(data, "hotline.yaml")


# -- the config key ---------------------------------------------------------------------------


def test_given_no_quality_key_when_parsed_then_default_sample() -> None:
    assert _config("").tenants[0].quality.sample_per_operator == DEFAULT_SAMPLE
    assert _config("quality: {}").tenants[0].quality.sample_per_operator == DEFAULT_SAMPLE


def test_given_sample_per_operator_when_parsed_then_policy() -> None:
    assert _config("quality: {sample_per_operator: 12}").tenants[0].quality \
        .sample_per_operator == 12


@pytest.mark.parametrize(("given", "reason"), [("0", "expected an integer 1..100"),
                                                ("101", "expected an integer 1..100"),
                                                ("'5'", "got a string")])
def test_given_bad_sample_when_parsed_then_error_names_file_key(given: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        _config(f"quality: {{sample_per_operator: {given}}}")
    assert e.value.source == "hotline.yaml"
    assert e.value.key == "tenants[0].quality.sample_per_operator"
    assert reason in e.value.reason


def test_given_misspelt_key_when_parsed_then_error_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError) as e:
        _config("quality: {sample_per_operators: 5}")
    assert "did you mean 'sample_per_operator'" in e.value.reason


# -- periods ----------------------------------------------------------------------------------


def test_given_iso_week_when_parsed_then_local_monday_to_monday_in_utc() -> None:
    assert W49.start == dt.datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
    assert W49.end == dt.datetime(2026, 12, 6, 17, 0, tzinfo=UTC)
    assert W49.label == "tuần 49/2026 (30/11–06/12/2026)"


def test_given_month_when_parsed_then_local_calendar_month() -> None:
    dec = parse_period("2026-12", HCM)
    assert (dec.start, dec.end) == (dt.datetime(2026, 11, 30, 17, tzinfo=UTC),
                                    dt.datetime(2026, 12, 31, 17, tzinfo=UTC))
    assert dec.label == "tháng 12/2026"


@pytest.mark.parametrize("text", ["2026-W54", "2026-13", "49", "2026W49", "", "2026-W00"])
def test_given_bad_period_when_parsed_then_vietnamese_error(text: str) -> None:
    with pytest.raises(ValueError, match="không"):
        parse_period(text, HCM)


def test_given_sunday_late_evening_local_when_week_of_then_that_week_not_the_next() -> None:
    sunday_2330 = dt.datetime(2026, 12, 6, 16, 30, tzinfo=UTC)  # 23:30 Sunday in Đồng Nai
    assert week_of(sunday_2330, HCM).key == "2026-W49"
    assert week_of(sunday_2330 + dt.timedelta(hours=1), HCM).key == "2026-W50"
    assert shift_week(W49, -1, HCM).key == "2026-W48"
    assert shift_week(parse_period("2026-W53", HCM), 1, HCM).key == "2027-W01"


# -- the weekly sample ------------------------------------------------------------------------


def call(n: int, op: str | None = "101", *, outcome: str = "answered",
         at: dt.datetime | None = None, recording: str | None = "r.wav") -> CallFacts:
    return CallFacts(f"pbx1:1764500000.{n}", op, outcome,
                     at or W49.start + dt.timedelta(hours=n % 150), recording)


def test_given_more_calls_than_n_when_sampled_then_n_per_operator_same_whatever_order() -> None:
    calls = [call(n, "101") for n in range(20)] + [call(100 + n, "102") for n in range(3)]
    first = weekly_sample(calls, tenant="dongnai", week=W49, per_operator=5)
    shuffled = calls[:]
    random.Random(7).shuffle(shuffled)
    again = weekly_sample(shuffled, tenant="dongnai", week=W49, per_operator=5)

    assert first == again
    assert list(first) == ["101", "102"]
    assert len(first["101"]) == 5 and len(set(first["101"])) == 5
    assert sorted(first["102"]) == sorted(c.call_id for c in calls[20:])  # all 3 of them


def test_given_another_week_or_tenant_when_sampled_then_another_draw() -> None:
    calls = [call(n) for n in range(40)]
    w49 = weekly_sample(calls, tenant="dongnai", week=W49, per_operator=5)["101"]
    other_tenant = weekly_sample(calls, tenant="thanhhoa", week=W49, per_operator=5)["101"]
    assert w49 != other_tenant  # seeded by tenant, week and operator, not a fixed order


def test_given_unanswered_unrecorded_unassigned_or_other_week_calls_then_never_sampled() -> None:
    good = call(1)
    calls = [good, call(2, outcome="abandoned"), call(3, recording=None), call(4, op=None),
             call(5, at=W49.end), call(6, at=W49.start - dt.timedelta(seconds=1)),
             call(7, recording="")]
    assert weekly_sample(calls, tenant="dongnai", week=W49, per_operator=5) == {
        "101": [good.call_id]}


def test_given_a_late_call_when_resampled_then_sample_changes_by_at_most_one() -> None:
    calls = [call(n) for n in range(30)]
    before = weekly_sample(calls, tenant="dongnai", week=W49, per_operator=5)["101"]
    after = weekly_sample([*calls, call(99)], tenant="dongnai", week=W49,
                          per_operator=5)["101"]
    assert len(set(before) - set(after)) <= 1


@given(st.lists(st.integers(0, 500), max_size=60), st.integers(0, 8))
def test_sample_is_a_subset_of_the_operators_reviewable_calls(ns: list[int], n: int) -> None:
    calls = [call(i, op=f"10{i % 3}") for i in ns]
    drawn = weekly_sample(calls, tenant="t", week=W49, per_operator=n)
    for op, ids in drawn.items():
        mine = {c.call_id for c in calls if c.operator == op}
        assert set(ids) <= mine and len(ids) == min(n, len(mine))


# -- scores -----------------------------------------------------------------------------------

GOOD = {"greeting": "5", "accuracy": "4", "attitude": "3", "no_buck_passing": "dat",
        "notes": " Trả lời đúng quy trình. "}


def test_given_a_complete_form_when_validated_then_scores() -> None:
    assert validate_scores(GOOD) == Scores(5, 4, 3, True, "Trả lời đúng quy trình.")


@pytest.mark.parametrize(("change", "field"), [
    ({"greeting": "0"}, "greeting"), ({"accuracy": "6"}, "accuracy"),
    ({"attitude": ""}, "attitude"), ({"attitude": "3.5"}, "attitude"),
    ({"no_buck_passing": "maybe"}, "no_buck_passing"),
    ({"notes": "x" * 2001}, "notes"),
    ({"no_buck_passing": "khong_dat", "notes": "  "}, "notes"),
])
def test_given_a_bad_field_when_validated_then_its_vietnamese_error(
        change: dict[str, str], field: str) -> None:
    errors = validate_scores({**GOOD, **change})
    assert isinstance(errors, dict) and list(errors) == [field]


def test_given_buck_passing_with_a_note_when_validated_then_not_passed() -> None:
    got = validate_scores({**GOOD, "no_buck_passing": "khong_dat",
                           "notes": "Bảo công dân tự gọi Sở Y tế."})
    assert isinstance(got, Scores) and got.no_buck_passing is False


# -- the report -------------------------------------------------------------------------------


def review(call_id: str, op: str, who: str, g: int, a: int, t: int, ok: bool) -> ReviewFacts:
    return ReviewFacts(call_id, op, who, Scores(g, a, t, ok, "" if ok else "đùn đẩy"))


def test_given_reviews_when_reported_then_counts_averages_and_buck_passing_calls() -> None:
    rows = operator_report([
        review("c1", "101", "gs.a", 5, 4, 3, True),
        review("c1", "101", "gs.b", 4, 4, 4, False),  # the same call, a second reviewer
        review("c2", "101", "gs.a", 3, 2, 2, False),
        review("c3", "102", "gs.a", 5, 5, 5, True),
    ], operators=["103"])
    by = {r.operator: r for r in rows}
    assert [r.operator for r in rows] == ["101", "102", "103"]
    assert (by["101"].reviews, by["101"].calls) == (3, 2)
    assert (by["101"].greeting, by["101"].accuracy, by["101"].attitude) == (4.0, 3.33, 3.0)
    assert by["101"].no_buck_passing_rate == pytest.approx(1 / 3, abs=1e-4)
    assert by["101"].buck_passing_calls == ("c1", "c2")
    assert by["102"].buck_passing_calls == () and by["102"].no_buck_passing_rate == 1.0
    assert (by["103"].reviews, by["103"].greeting, by["103"].no_buck_passing_rate) == (
        0, None, None)


# -- plays --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "starts"), [
    (None, True), ("", True), ("bytes=0-", True), ("bytes=0-1023", True),
    ("bytes=44-", False), ("bytes=1000-2000", False), ("bytes=-500", False),
    ("items=0-3", True),
])
def test_given_range_header_when_asked_then_only_a_start_is_a_play(header: str | None,
                                                                   starts: bool) -> None:
    assert starts_a_play(header) is starts
