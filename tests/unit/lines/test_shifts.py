"""Shift selection in the tenant's time zone, date overrides, and number routing."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config.model import DateOverride, HotlineConfig, Shift, Tenant
from callcenter.lines.shifts import (
    Staffing,
    active_shift,
    shift_contains,
    shifts_for_date,
    staffing,
    tenant_for_number,
)

ICT = ZoneInfo("Asia/Ho_Chi_Minh")  # UTC+7, no DST
UTC = dt.UTC

DAY = Shift("day", dt.time(7, 0), dt.time(18, 0), 15)
NIGHT = Shift("night", dt.time(18, 0), dt.time(7, 0), 2)
TET_DAY = Shift("tet-day", dt.time(7, 0), dt.time(18, 0), 6)
TET_NIGHT = Shift("tet-night", dt.time(18, 0), dt.time(7, 0), 2)
TET = DateOverride("tet", dt.date(2027, 2, 5), dt.date(2027, 2, 10), (TET_DAY, TET_NIGHT))

DONGNAI = Tenant(
    id="dongnai",
    name="Đồng Nai",
    timezone="Asia/Ho_Chi_Minh",
    numbers=("1022", "02511022"),
    shifts=(DAY, NIGHT),
    overrides=(TET,),
)
BINHDUONG = Tenant(
    id="binhduong",
    name="Bình Dương",
    timezone="Asia/Ho_Chi_Minh",
    numbers=("+842741022", "0274-1022-9"),
    shifts=(Shift("all", dt.time(0), dt.time(0), 3),),
)
CONFIG = HotlineConfig(tenants=(DONGNAI, BINHDUONG))
MOMENTS = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)
)


def local(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=ICT)


# ---- day / night boundaries ---------------------------------------------------------------

BOUNDARIES = [
    ((6, 59, 59), NIGHT),
    ((7, 0, 0), DAY),
    ((17, 59, 59), DAY),
    ((18, 0, 0), NIGHT),
    ((23, 59, 59), NIGHT),
    ((0, 0, 0), NIGHT),
]


@pytest.mark.parametrize(("hms", "expected"), BOUNDARIES)
def test_given_local_time_when_active_shift_then_boundary_start_inclusive_end_exclusive(
    hms: tuple[int, int, int], expected: Shift,
) -> None:
    now = local(2026, 6, 15, *hms)
    assert active_shift(DONGNAI, now) == (expected, None)


@pytest.mark.parametrize(("hms", "expected"), BOUNDARIES)
def test_given_utc_time_when_active_shift_then_converted_to_vietnam_time(
    hms: tuple[int, int, int], expected: Shift,
) -> None:
    now_utc = local(2026, 6, 15, *hms).astimezone(UTC)
    assert now_utc.tzinfo is UTC
    assert active_shift(DONGNAI, now_utc) == (expected, None)


def test_given_utc_midnight_when_active_shift_then_it_is_07_00_in_vietnam_and_day() -> None:
    assert active_shift(DONGNAI, dt.datetime(2026, 6, 15, 0, 0, tzinfo=UTC)) == (DAY, None)
    assert active_shift(DONGNAI, dt.datetime(2026, 6, 14, 23, 59, 59, tzinfo=UTC)) == (
        NIGHT, None)


def test_given_other_fixed_offset_when_active_shift_then_same_instant_same_shift() -> None:
    paris_summer = dt.timezone(dt.timedelta(hours=2))
    now = dt.datetime(2026, 6, 15, 13, 0, tzinfo=paris_summer)  # 18:00 in Vietnam
    assert active_shift(DONGNAI, now) == (NIGHT, None)


def test_given_microseconds_before_the_end_when_active_shift_then_still_the_old_shift() -> None:
    now = dt.datetime(2026, 6, 15, 17, 59, 59, 999_999, tzinfo=ICT)
    assert active_shift(DONGNAI, now) == (DAY, None)


def test_given_naive_datetime_when_active_shift_then_value_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        active_shift(DONGNAI, dt.datetime(2026, 6, 15, 12, 0))


# ---- date overrides -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(2027, 2, 4, 12), (DAY, None)),            # the day before: normal
        (local(2027, 2, 4, 23, 59, 59), (NIGHT, None)),  # eve's night, before midnight: normal
        (local(2027, 2, 5, 0, 0), (TET_NIGHT, TET)),     # first day from 00:00: the override
        (local(2027, 2, 5, 6, 59, 59), (TET_NIGHT, TET)),
        (local(2027, 2, 5, 7, 0), (TET_DAY, TET)),       # first day
        (local(2027, 2, 10, 17, 59, 59), (TET_DAY, TET)),  # last day
        (local(2027, 2, 10, 23, 59, 59), (TET_NIGHT, TET)),
        (local(2027, 2, 11, 0, 0), (NIGHT, None)),       # the day after: normal again
        (local(2027, 2, 11, 7, 0), (DAY, None)),
    ],
)
def test_given_date_override_when_active_shift_then_local_date_decides_the_shift_set(
    now: dt.datetime, expected: tuple[Shift, DateOverride | None],
) -> None:
    assert active_shift(DONGNAI, now) == expected
    assert active_shift(DONGNAI, now.astimezone(UTC)) == expected


def test_given_utc_date_still_the_eve_when_active_shift_then_vietnam_date_is_used() -> None:
    # 2027-02-04 17:30 UTC is 2027-02-05 00:30 in Vietnam: Tết's shifts apply.
    assert active_shift(DONGNAI, dt.datetime(2027, 2, 4, 17, 30, tzinfo=UTC)) == (
        TET_NIGHT, TET)


def test_given_override_date_when_shifts_for_date_then_override_shifts() -> None:
    assert shifts_for_date(DONGNAI, dt.date(2027, 2, 6)) == (TET_DAY, TET_NIGHT)
    assert shifts_for_date(DONGNAI, dt.date(2027, 2, 11)) == (DAY, NIGHT)


# ---- other shift shapes -------------------------------------------------------------------

MORNING = Shift("morning", dt.time(6, 0), dt.time(14, 0), 5)
EVENING = Shift("evening", dt.time(14, 0), dt.time(22, 0), 4)
LATE = Shift("late", dt.time(22, 0), dt.time(6, 0), 1)
THREE = Tenant("three", "Three", "Asia/Ho_Chi_Minh", ("1022",), (MORNING, EVENING, LATE))


@pytest.mark.parametrize(
    ("hms", "expected"),
    [
        ((0, 0, 0), LATE), ((5, 59, 59), LATE), ((6, 0, 0), MORNING), ((13, 59, 59), MORNING),
        ((14, 0, 0), EVENING), ((21, 59, 59), EVENING), ((22, 0, 0), LATE),
        ((23, 59, 59), LATE),
    ],
)
def test_given_three_shifts_when_active_shift_then_the_containing_one(
    hms: tuple[int, int, int], expected: Shift,
) -> None:
    assert active_shift(THREE, local(2026, 1, 1, *hms)) == (expected, None)


@given(MOMENTS)
def test_given_whole_day_shift_when_any_moment_then_that_shift(now: dt.datetime) -> None:
    assert active_shift(BINHDUONG, now) == (BINHDUONG.shifts[0], None)


def test_given_whole_day_shift_not_at_midnight_when_any_time_then_contained() -> None:
    whole = Shift("all", dt.time(5, 30), dt.time(5, 30), 1)
    assert all(shift_contains(whole, dt.time(h, m)) for h in range(24) for m in (0, 29, 30, 59))


def test_given_shift_ending_at_midnight_when_contains_then_until_23_59_59() -> None:
    evening = Shift("evening", dt.time(18), dt.time(0), 1)
    assert shift_contains(evening, dt.time(23, 59, 59))
    assert not shift_contains(evening, dt.time(0, 0))
    assert shift_contains(evening, dt.time(18, 0))
    assert not shift_contains(evening, dt.time(17, 59, 59))


def test_given_shift_set_not_covering_the_time_when_active_shift_then_lookup_error() -> None:
    broken = Tenant("broken", "Broken", "Asia/Ho_Chi_Minh", ("1",), (DAY,))
    with pytest.raises(LookupError, match="broken"):
        active_shift(broken, local(2026, 1, 1, 20))


@given(MOMENTS)
def test_given_any_moment_when_active_shift_then_the_shift_contains_the_local_time(
    now: dt.datetime,
) -> None:
    shift, override = active_shift(DONGNAI, now)
    local_now = now.astimezone(ICT)
    assert shift_contains(shift, local_now.time())
    in_tet = TET.start_date <= local_now.date() <= TET.end_date
    assert (override is TET) == in_tet
    assert shift in ((TET_DAY, TET_NIGHT) if in_tet else (DAY, NIGHT))


# ---- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dialled", ["1022", "02511022", "+842511022", "0251.1022", "0251 1022", "0251-1022"]
)
def test_given_dongnai_number_in_any_form_when_routed_then_dongnai(dialled: str) -> None:
    assert tenant_for_number(CONFIG, dialled) is DONGNAI


@pytest.mark.parametrize("dialled", ["02741022", "+84 274 1022", "0274.1022", "027410229"])
def test_given_configured_number_in_another_form_when_routed_then_binhduong(dialled: str) -> None:
    assert tenant_for_number(CONFIG, dialled) is BINHDUONG


@pytest.mark.parametrize("dialled", ["", "113", "10222", "2511022", "+12511022", " "])
def test_given_unknown_number_when_routed_then_none(dialled: str) -> None:
    assert tenant_for_number(CONFIG, dialled) is None


# ---- minimum operators per shift (Thanh Hóa: "02 người/ca trực") ---------------------------

STAFFED = Tenant(
    id="thanhhoa", name="Thanh Hóa", timezone="Asia/Ho_Chi_Minh", numbers=("02371022",),
    shifts=(Shift("day", dt.time(7), dt.time(18), 4, min_operators=2),
            Shift("night", dt.time(18), dt.time(7), 2, min_operators=1)),
    overrides=(DateOverride("tet", dt.date(2027, 2, 5), dt.date(2027, 2, 10),
                            (Shift("tet-all", dt.time(0), dt.time(0), 2, min_operators=3),)),))


@pytest.mark.parametrize(("hms", "logged_in", "expected"), [
    ((6, 59, 59), 1, Staffing("night", 1, 1)),
    ((7, 0, 0), 1, Staffing("day", 1, 2)),
    ((17, 59, 59), 2, Staffing("day", 2, 2)),
    ((18, 0, 0), 0, Staffing("night", 0, 1)),
])
def test_given_shift_boundary_when_staffing_then_minimum_of_the_shift_in_force(
    hms: tuple[int, int, int], logged_in: int, expected: Staffing,
) -> None:
    assert staffing(STAFFED, logged_in, local(2026, 6, 15, *hms)) == expected


def test_given_one_of_two_logged_in_when_day_shift_starts_then_understaffed() -> None:
    assert not staffing(STAFFED, 1, local(2026, 6, 15, 6, 59, 59)).understaffed
    assert staffing(STAFFED, 1, local(2026, 6, 15, 7)).understaffed
    assert not staffing(STAFFED, 2, local(2026, 6, 15, 7)).understaffed
    assert not staffing(STAFFED, 5, local(2026, 6, 15, 7)).understaffed


def test_given_override_minimum_when_staffing_on_tet_then_the_override_decides() -> None:
    tet = staffing(STAFFED, 2, local(2027, 2, 5, 12))
    assert tet == Staffing("tet-all", 2, 3) and tet.understaffed


@given(st.integers(min_value=0, max_value=50), MOMENTS)
def test_given_no_minimum_when_any_count_at_any_moment_then_never_understaffed(
    logged_in: int, now: dt.datetime,
) -> None:
    result = staffing(DONGNAI, logged_in, now)
    assert result.minimum == 0 and not result.understaffed


def test_given_negative_count_or_naive_time_when_staffing_then_value_error() -> None:
    with pytest.raises(ValueError, match="logged_in"):
        staffing(STAFFED, -1, local(2026, 6, 15, 7))
    with pytest.raises(ValueError, match="timezone-aware"):
        staffing(STAFFED, 1, dt.datetime(2026, 6, 15, 7))
