"""Recording retention rules (callcenter.recordings.retention) and the tenant key that sets them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from callcenter.config.base import ConfigError
from callcenter.config.parse import parse_config
from callcenter.recordings.retention import (
    DEFAULT_KEEP_DAYS,
    Recorded,
    RecordingsPolicy,
    cutoff,
    due_recordings,
    is_due,
    keep_days_for,
    longest_keep_days,
    unnamed_old_files,
)
from tests.support.config_files import config_data

NOW = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)
HCM = dt.timezone(dt.timedelta(hours=7))


def _config(extra: str) -> Any:
    data = config_data("one_tenant_two_lines.yaml")
    if extra:
        data["tenants"][0].update(yaml.safe_load(extra))
    return parse_config(data, "hotline.yaml")


# -- the config key -------------------------------------------------------------------------


def test_given_no_recordings_key_when_parsed_then_default_keep_days() -> None:
    assert _config("").tenants[0].recordings == RecordingsPolicy(DEFAULT_KEEP_DAYS)
    assert _config("recordings: {}").tenants[0].recordings.keep_days == DEFAULT_KEEP_DAYS


@pytest.mark.parametrize(("given", "expected"), [("1", 1), ("90", 90), ("36500", 36500),
                                                 ("forever", None)])
def test_given_keep_days_when_parsed_then_policy(given: str, expected: int | None) -> None:
    assert _config(f"recordings: {{keep_days: {given}}}").tenants[0].recordings.keep_days \
        == expected


@pytest.mark.parametrize(("given", "reason"), [
    ("0", "expected a number of days 1..36500, or 'forever'"),
    ("-3", "expected a number of days 1..36500"),
    ("36501", "expected a number of days 1..36500"),
    ("'30'", "got a string"),
    ("30.5", "got a number"),
    ("true", "got a boolean"),
])
def test_given_bad_keep_days_when_parsed_then_error_names_file_key_value_expected(
        given: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        _config(f"recordings: {{keep_days: {given}}}")
    assert e.value.source == "hotline.yaml"
    assert e.value.key == "tenants[0].recordings.keep_days"
    assert reason in e.value.reason


def test_given_unknown_key_under_recordings_when_parsed_then_error_suggests_keep_days() -> None:
    with pytest.raises(ConfigError) as e:
        _config("recordings: {keep_day: 30}")
    assert e.value.key == "tenants[0].recordings.keep_day"
    assert "did you mean 'keep_days'" in e.value.reason


# -- the rules ------------------------------------------------------------------------------


def test_given_exactly_keep_days_old_when_checked_then_due_and_a_second_less_kept() -> None:
    ended = NOW - dt.timedelta(days=30)
    assert is_due(ended, 30, NOW)
    assert not is_due(ended + dt.timedelta(seconds=1), 30, NOW)
    assert cutoff(30, NOW) == ended


def test_given_tenant_without_limit_when_checked_then_never_due() -> None:
    assert not is_due(NOW - dt.timedelta(days=100_000), None, NOW)


def test_given_times_in_other_zones_when_checked_then_compared_as_instants() -> None:
    # 30 days before NOW is 2026-10-29 03:00 UTC = 10:00 in Ho Chi Minh City.
    ended_local = dt.datetime(2026, 10, 29, 10, 0, tzinfo=HCM)
    assert is_due(ended_local, 30, NOW)
    assert not is_due(ended_local + dt.timedelta(minutes=1), 30, NOW)
    assert is_due(ended_local, 30, NOW.astimezone(HCM))
    assert cutoff(30, NOW.astimezone(HCM)) == ended_local
    assert cutoff(30, NOW.astimezone(HCM)).tzinfo == dt.UTC


def test_given_naive_time_when_checked_then_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        is_due(dt.datetime(2026, 1, 1), 30, NOW)


def test_given_policies_when_longest_then_max_or_none_when_any_forever() -> None:
    assert longest_keep_days([RecordingsPolicy(30), RecordingsPolicy(90)]) == 90
    assert longest_keep_days([RecordingsPolicy(30), RecordingsPolicy(None)]) is None
    assert longest_keep_days([]) is None


def test_given_records_of_tenants_when_due_then_each_by_its_own_limit_unknown_by_longest(
) -> None:
    policies = {"dongnai": RecordingsPolicy(30), "binhduong": RecordingsPolicy(90)}

    def rec(tenant: str, days: int) -> Recorded:
        return Recorded(f"pbx1:{tenant}.{days}", tenant, f"{tenant}-{days}.wav",
                        NOW - dt.timedelta(days=days))

    records = [rec("dongnai", 29), rec("dongnai", 30), rec("binhduong", 60),
               rec("binhduong", 91), rec("gone", 89), rec("gone", 90)]
    due = due_recordings(records, policies, NOW)
    assert [(r.recording, days) for r, days in due] == [
        ("dongnai-30.wav", 30), ("binhduong-91.wav", 90), ("gone-90.wav", 90)]
    assert keep_days_for("gone", {"a": RecordingsPolicy(None)}) is None


def test_given_files_when_unnamed_old_then_only_unnamed_and_older_than_longest() -> None:
    policies = {"dongnai": RecordingsPolicy(30), "binhduong": RecordingsPolicy(90)}
    files = {"named-old.wav": NOW - dt.timedelta(days=200),
             "orphan-old.wav": NOW - dt.timedelta(days=90),
             "orphan-young.wav": NOW - dt.timedelta(days=89)}
    assert unnamed_old_files(files, {"named-old.wav"}, policies, NOW) == ["orphan-old.wav"]
    assert unnamed_old_files(files, set(), {"x": RecordingsPolicy(None)}, NOW) == []
