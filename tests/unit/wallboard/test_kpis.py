"""Today's wallboard figures (callcenter.wallboard.kpis): pure, from call records."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config.model import Shift, Tenant
from callcenter.store.data import CallRecordData
from callcenter.wallboard.kpis import (
    SERVICE_LEVEL_TARGET,
    CallTimes,
    _hourly_peaks,
    day_kpis,
    local_day_bounds,
)

UTC = dt.UTC
TENANT = Tenant(id="dongnai", name="Đồng Nai", timezone="Asia/Ho_Chi_Minh", numbers=("1022",),
                shifts=(Shift("day", dt.time(7), dt.time(18), 15),
                        Shift("night", dt.time(18), dt.time(7), 2)))
# 2026-11-26 10:00 local (UTC+7)
NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
_n = 0


def rec(arrived: dt.datetime, outcome: str = "answered", *, queued_s: float | None = None,
        bridged_s: float | None = None, talk_s: float | None = None, wrap_up_s: int | None = None,
        ended_s: float = 60) -> CallRecordData:
    """A call arriving at ``arrived``; the other moments in seconds after arrival."""
    global _n
    _n += 1

    def at(s: float | None) -> dt.datetime | None:
        return None if s is None else arrived + dt.timedelta(seconds=s)

    extra: dict[str, Any] = {}
    if bridged_s is not None and talk_s is not None:
        extra["talk_ended_at"] = at(bridged_s + talk_s)
    return CallRecordData(
        id=f"pbx1:{_n}", node="pbx1", tenant="dongnai", dialled="1022", caller="0909123456",
        shift="day", pool_limit=15, arrived_at=arrived, answered_at=at(0) if outcome != "busy"
        else None, ended_at=at(ended_s), outcome=outcome, cause=None, cause_code=None,
        linkedid=f"x{_n}", operator="101" if bridged_s is not None else None,
        queued_at=at(queued_s), bridged_at=at(bridged_s), wrap_up_s=wrap_up_s, **extra)


def test_given_no_calls_when_day_kpis_then_zeros_no_ratios_and_the_shift_limit_per_hour() -> None:
    k = day_kpis([], NOW, TENANT)
    assert (k.offered, k.queued, k.answered, k.abandoned, k.rejected_busy) == (0, 0, 0, 0, 0)
    assert k.service_level is None and k.service_level_ok is None
    assert k.asa_s is None and k.aht_s is None
    assert k.service_level_target == SERVICE_LEVEL_TARGET == 0.8
    assert k.day == dt.date(2026, 11, 26)
    assert k.day_start == dt.datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    assert [h.hour for h in k.hours] == list(range(24))
    assert [h.limit for h in k.hours] == [2] * 7 + [15] * 11 + [2] * 6
    assert [h.future for h in k.hours] == [False] * 11 + [True] * 13
    assert all(h.calls == h.busy == h.peak_lines == 0 for h in k.hours)


def test_given_midnight_in_ho_chi_minh_when_day_kpis_then_only_calls_of_the_new_local_day() -> None:
    now = dt.datetime(2026, 11, 26, 17, 0, 30, tzinfo=UTC)  # 00:00:30 on the 27th, local
    before = rec(dt.datetime(2026, 11, 26, 16, 59, 59, tzinfo=UTC), "abandoned")  # 23:59:59
    after = rec(dt.datetime(2026, 11, 26, 17, 0, 0, tzinfo=UTC), "abandoned", queued_s=5,
                ended_s=20)
    k = day_kpis([before, after], now, TENANT)
    assert k.day == dt.date(2026, 11, 27)
    assert k.day_start == dt.datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    assert (k.offered, k.queued, k.abandoned) == (1, 1, 1)
    assert k.hours[0].calls == 1 and k.hours[0].limit == 2 and not k.hours[0].future
    assert local_day_bounds("Asia/Ho_Chi_Minh", now) == (
        dt.datetime(2026, 11, 26, 17, 0, tzinfo=UTC), dt.datetime(2026, 11, 27, 17, 0, tzinfo=UTC))


def test_given_caller_hangs_up_in_queue_when_day_kpis_then_abandoned_and_misses_service_level(
) -> None:
    t = dt.datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 09:00 local
    in_queue = rec(t, "abandoned", queued_s=10, ended_s=45)
    in_menus = rec(t + dt.timedelta(minutes=1), "abandoned", ended_s=8)  # never queued
    k = day_kpis([in_queue, in_menus], NOW, TENANT)
    assert (k.offered, k.queued, k.answered, k.abandoned) == (2, 1, 0, 1)
    assert k.service_level == 0.0 and k.service_level_ok is False
    assert k.asa_s is None and k.aht_s is None


def test_given_answered_calls_when_day_kpis_then_service_level_asa_and_aht() -> None:
    t = dt.datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # 08:00 local
    calls = [
        rec(t, queued_s=5, bridged_s=15, talk_s=100, wrap_up_s=20, ended_s=200),  # waited 10 s
        rec(t, queued_s=5, bridged_s=25, talk_s=50, wrap_up_s=10, ended_s=200),  # 20 s: in target
        rec(t, queued_s=5, bridged_s=35, talk_s=30, wrap_up_s=0, ended_s=200),  # 30 s: late
        rec(t, queued_s=5, bridged_s=10, ended_s=200),  # talk end unknown: no handle time
        rec(t, "callback", queued_s=5, ended_s=100),  # chose a callback: queued, not answered
    ]
    k = day_kpis(calls, NOW, TENANT)
    assert (k.offered, k.queued, k.answered, k.abandoned) == (5, 5, 4, 0)
    assert k.answered_in_target == 3
    assert k.service_level == pytest.approx(3 / 5) and k.service_level_ok is False
    assert k.asa_s == pytest.approx((10 + 20 + 30 + 5) / 4)
    assert k.aht_s == pytest.approx((120 + 60 + 30) / 3)


def test_given_busy_refusals_when_day_kpis_then_counted_apart_and_in_the_hour_demand() -> None:
    t = dt.datetime(2026, 11, 26, 2, 10, tzinfo=UTC)  # 09:10 local
    calls = [rec(t, "busy", ended_s=0), rec(t, "busy", ended_s=0), rec(t, "not_found"),
             rec(t, queued_s=1, bridged_s=2, talk_s=3)]
    k = day_kpis(calls, NOW, TENANT)
    assert k.rejected_busy == 2 and k.offered == 1 and k.answered == 1
    assert (k.hours[9].calls, k.hours[9].busy, k.hours[9].peak_lines) == (4, 2, 1)


def test_given_pool_full_callback_offers_when_day_kpis_then_refusals_not_offered_calls(
        ) -> None:
    t = dt.datetime(2026, 11, 26, 2, 10, tzinfo=UTC)  # 09:10 local
    calls = [rec(t, queued_s=1, bridged_s=2, talk_s=300, ended_s=400),  # holds the line
             rec(t, "callback", ended_s=15),  # lines full: pressed 1 (answered, never queued)
             rec(t, "busy", ended_s=12),  # lines full: heard the offer, no key
             rec(t, "callback", queued_s=1, ended_s=301)]  # waited, then pressed 1: offered
    k = day_kpis(calls, NOW, TENANT)
    assert (k.rejected_busy, k.offered, k.queued) == (2, 2, 2)
    assert (k.hours[9].calls, k.hours[9].busy, k.hours[9].peak_lines) == (4, 2, 2)


def test_given_overlapping_calls_when_day_kpis_then_peak_lines_per_hour() -> None:
    nine = dt.datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 09:00 local
    calls = [rec(nine + dt.timedelta(minutes=10), "abandoned", ended_s=600),
             rec(nine + dt.timedelta(minutes=15), "abandoned", ended_s=60),
             rec(nine + dt.timedelta(minutes=16), "abandoned", ended_s=60),  # starts as one ends
             rec(nine + dt.timedelta(minutes=55), "abandoned", ended_s=600)]  # into the 10:00 hour
    k = day_kpis(calls, NOW, TENANT, lines_in_use_now=3)
    assert k.hours[9].peak_lines == 2
    assert k.hours[9].calls == 4
    assert k.hours[10].peak_lines == 3  # the current hour: the calls in progress now
    assert k.hours[10].calls == 0 and k.hours[8].peak_lines == 0


def test_given_records_of_other_days_or_later_when_day_kpis_then_ignored() -> None:
    calls = [rec(NOW - dt.timedelta(days=1), "abandoned"),
             rec(NOW + dt.timedelta(minutes=1), "abandoned")]
    assert day_kpis(calls, NOW, TENANT).offered == 0


def test_given_a_naive_now_when_day_kpis_then_value_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        day_kpis([], dt.datetime(2026, 11, 26, 3, 0), TENANT)


def live(arrived: dt.datetime, *, queued_s: float | None = None,
         bridged_s: float | None = None) -> CallTimes:
    """A call still in progress at NOW; its moments in seconds after arrival."""

    def at(s: float | None) -> dt.datetime | None:
        return None if s is None else arrived + dt.timedelta(seconds=s)

    return CallTimes(arrived, queued_at=at(queued_s), bridged_at=at(bridged_s))


def test_given_calls_in_progress_when_day_kpis_then_counted_at_once() -> None:
    t = NOW - dt.timedelta(minutes=2)
    in_menus = live(t)
    answered_fast = live(t, queued_s=5, bridged_s=15)  # waited 10 s
    answered_late = live(t, queued_s=5, bridged_s=40)  # waited 35 s
    k = day_kpis([], NOW, TENANT, live=[in_menus, answered_fast, answered_late])
    assert (k.offered, k.queued, k.answered, k.abandoned) == (3, 2, 2, 0)
    assert k.answered_in_target == 1 and k.service_level == pytest.approx(1 / 2)
    assert k.asa_s == pytest.approx((10 + 35) / 2)
    assert k.aht_s is None  # nobody has finished talking
    hour = next(h for h in k.hours if h.start <= t < h.start + dt.timedelta(hours=1))
    assert hour.calls == 3 and hour.peak_lines == 3


@pytest.mark.parametrize(("waiting_s", "decided"), [(20, False), (21, True)])
def test_given_live_call_waiting_when_day_kpis_then_it_counts_against_the_target_only_past_20_s(
        waiting_s: int, decided: bool) -> None:
    answered = rec(NOW - dt.timedelta(minutes=10), queued_s=5, bridged_s=10, ended_s=100)
    waiting = live(NOW - dt.timedelta(seconds=waiting_s + 3), queued_s=3)
    k = day_kpis([answered], NOW, TENANT, live=[waiting])
    assert (k.offered, k.queued, k.answered) == (2, 2, 1)
    assert k.service_level == (0.5 if decided else 1.0)


def test_given_live_call_from_yesterday_when_day_kpis_then_not_today() -> None:
    start, _ = local_day_bounds(TENANT.timezone, NOW)
    k = day_kpis([], NOW, TENANT, live=[live(start - dt.timedelta(seconds=1), queued_s=0,
                                             bridged_s=1)])
    assert (k.offered, k.answered) == (0, 0)


def _peak_by_brute_force(intervals: list[tuple[dt.datetime, dt.datetime]],
                         h_start: dt.datetime, h_end: dt.datetime) -> int:
    """The most intervals open at one instant of [h_start, h_end), instant by instant."""
    spans = [(a, max(b, a + dt.timedelta(microseconds=1))) for a, b in intervals]
    instants = {h_start} | {t for a, b in spans for t in (a, b) if h_start <= t < h_end}
    return max(sum(1 for a, b in spans if a <= x < b) for x in instants)


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 90)), max_size=25))
def test_given_any_calls_when_hourly_peaks_then_equal_to_counting_instant_by_instant(
        calls: list[tuple[int, int]]) -> None:
    day = dt.datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    # Starts and lengths in whole minutes, so calls often start as others end (and at
    # the hour's first instant): the edge cases of the sweep.
    intervals = [(day + dt.timedelta(minutes=s), day + dt.timedelta(minutes=s + n))
                 for s, n in calls]
    hours = [(day + dt.timedelta(hours=k), day + dt.timedelta(hours=k + 1)) for k in range(3)]
    assert _hourly_peaks(intervals, hours) == [
        _peak_by_brute_force(intervals, a, b) for a, b in hours]
