"""Deadlines: 24 h / 4 h / 5 min / 60 min, across midnight, month and year ends, and DST."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config.model import Field
from callcenter.tickets import deadlines as dl
from callcenter.tickets import rules as tk
from callcenter.tickets.config import (
    DeadlinePolicy,
    DeadlineRule,
    District,
    FocalPerson,
    Level2Unit,
    TicketError,
    TicketPolicy,
    default_policy,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
BERLIN = ZoneInfo("Europe/Berlin")
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
OP = tk.Actor("op1", "operator")
UNIT = tk.Actor("u1", "unit", "quan_1")
SUP = tk.Actor("sup", "supervisor")

UNITS = (Level2Unit("quan_1", "UBND Quận 1", "district", (FocalPerson("A", "0912345678"),)),
         Level2Unit("so_y_te", "Sở Y tế", "department", (FocalPerson("B", "0987654321"),)))
DN = TicketPolicy(code_prefix="DN", units=UNITS, districts=(District("q1", "Quận 1"),),
                  fallback_unit="quan_1")
HCMC = TicketPolicy(
    code_prefix="HCM", units=UNITS, districts=(District("q1", "Quận 1"),), fallback_unit="quan_1",
    deadlines=DeadlinePolicy(
        forward=5 * M,
        rules=(DeadlineRule("urgent_health", ("health",), True, 4 * H),
               DeadlineRule("violation", ("security_order",), None, 60 * M, None, "forwarded"))))


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=VN)


def opened(at: dt.datetime, field: str = "other", urgent: bool = False,
           policy: TicketPolicy = DN) -> tk.Ticket:
    code = tk.ticket_code(policy.code_prefix, tk.code_date(at, policy.timezone), 1)
    ticket, _ = tk.open_ticket(policy, code=code, tenant="t", channel="phone", content="Nội dung",
                               field=field, at=at, actor=OP, urgent=urgent,
                               citizen_phone="0912345678")
    return ticket


def step(t: tk.Ticket, e: tk.Event, policy: TicketPolicy = DN) -> tk.Ticket:
    return tk.apply(t, e, policy)[0]


# ---- elapsed-time arithmetic ------------------------------------------------------------------
def test_given_vietnam_time_when_24h_added_then_same_wall_clock_next_day_in_utc() -> None:
    due = dl.add_elapsed(vn(2026, 11, 23, 22, 30), 24 * H)
    assert due == vn(2026, 11, 24, 22, 30)
    assert due.tzinfo is dt.UTC


@pytest.mark.parametrize(("start", "local_due"), [
    # spring forward (02:00 -> 03:00 on 29 March 2026): 24 real hours end at 13:00 wall-clock
    (dt.datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), dt.datetime(2026, 3, 29, 13, 0)),
    # fall back (03:00 -> 02:00 on 25 October 2026): they end at 11:00
    (dt.datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN), dt.datetime(2026, 10, 25, 11, 0)),
])
def test_given_zone_with_dst_when_24h_added_then_real_hours_not_wall_clock(
        start: dt.datetime, local_due: dt.datetime) -> None:
    due = dl.add_elapsed(start, 24 * H)
    assert due.astimezone(BERLIN).replace(tzinfo=None) == local_due
    assert due - start == 24 * H
    # Python's own aware arithmetic is wall-clock and would be an hour off here:
    assert (start + 24 * H) - start == 24 * H and (start + 24 * H) != due


def test_given_naive_time_when_added_then_ticket_error() -> None:
    with pytest.raises(TicketError) as info:
        dl.add_elapsed(dt.datetime(2026, 1, 1), H)
    assert info.value.id == "ticket.naive_time"


@given(start=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 1, 1),
                          timezones=st.sampled_from([VN, BERLIN, ZoneInfo("America/New_York"),
                                                     ZoneInfo("Australia/Lord_Howe")])),
       minutes=st.integers(1, 60 * 24 * 60))
def test_given_any_zone_and_duration_when_added_then_exactly_that_much_later(
        start: dt.datetime, minutes: int) -> None:
    due = dl.add_elapsed(start, dt.timedelta(minutes=minutes))
    assert due - start == dt.timedelta(minutes=minutes)
    assert due.utcoffset() == dt.timedelta(0)


def test_given_utc_moment_when_formatted_then_vietnam_wall_clock() -> None:
    at = dt.datetime(2026, 11, 23, 7, 30, tzinfo=dt.UTC)
    assert dl.format_local(at, "Asia/Ho_Chi_Minh") == "14:30 23/11/2026"
    assert dl.local(at, "Asia/Ho_Chi_Minh").hour == 14


# ---- due times --------------------------------------------------------------------------------
@pytest.mark.parametrize(("received", "due"), [
    (vn(2026, 11, 23, 22, 30), vn(2026, 11, 24, 22, 30)),  # across midnight
    (vn(2026, 1, 31, 20, 0), vn(2026, 2, 1, 20, 0)),  # month end
    (vn(2027, 2, 28, 23, 0), vn(2027, 3, 1, 23, 0)),  # February, common year
    (vn(2028, 2, 28, 23, 0), vn(2028, 2, 29, 23, 0)),  # February, leap year
    (vn(2026, 12, 31, 23, 59), vn(2027, 1, 1, 23, 59)),  # year end
])
def test_given_ordinary_ticket_when_received_then_due_24h_later(
        received: dt.datetime, due: dt.datetime) -> None:
    t = opened(received)
    assert t.resolve_due == due and t.forward_due is None


@pytest.mark.parametrize(("received", "due"), [
    (vn(2026, 11, 23, 22, 30), vn(2026, 11, 24, 2, 30)),
    (vn(2026, 4, 30, 21, 0), vn(2026, 5, 1, 1, 0)),
    (vn(2026, 12, 31, 22, 0), vn(2027, 1, 1, 2, 0)),
])
def test_given_urgent_health_when_received_then_due_4h_later(
        received: dt.datetime, due: dt.datetime) -> None:
    assert opened(received, "health", urgent=True).resolve_due == due


@pytest.mark.parametrize(("field", "urgent"), [("health", False), ("transport", True)])
def test_given_health_not_urgent_or_urgent_other_when_received_then_24h(
        field: str, urgent: bool) -> None:
    received = vn(2026, 11, 23, 8, 0)
    assert opened(received, field, urgent).resolve_due == received + 24 * H


@pytest.mark.parametrize("field", ["suspected_infection", "prices_fraud"])
def test_given_urgent_suspected_infection_when_opened_then_due_in_4_hours(field: str) -> None:
    # The orders' 4 h is for urgent petitions "thuộc lĩnh vực y tế": every health-group field.
    received = vn(2026, 11, 23, 22, 30)
    assert opened(received, field, urgent=True).resolve_due == vn(2026, 11, 24, 2, 30)


@pytest.mark.parametrize("field", ["essential_goods", "social_security", "other"])
def test_given_urgent_field_outside_health_group_when_opened_then_due_in_24_hours(
        field: str) -> None:
    received = vn(2026, 11, 23, 8, 0)
    assert opened(received, field, urgent=True).resolve_due == received + 24 * H


def test_given_urgent_ticket_reclassified_to_suspected_infection_then_due_moves_to_4_hours(
        ) -> None:
    t = opened(vn(2026, 11, 23, 8, 0), "other", urgent=True)
    t = step(t, tk.Reclassify(vn(2026, 11, 23, 8, 5), OP, "suspected_infection", None, True))
    assert t.resolve_due == vn(2026, 11, 23, 12, 0)


def test_given_rule_naming_a_group_when_computed_then_only_fields_of_that_group_match() -> None:
    fields = (Field("covid", "Nghi nhiễm", "health"), Field("land", "Đất đai"))
    policy = TicketPolicy(fields=fields, deadlines=DeadlinePolicy(rules=(
        DeadlineRule("urgent_health", urgent=True, resolve=4 * H, groups=("health",)),)))
    start = vn(2026, 1, 1)
    due = {f.id: dl.compute_deadlines(policy, field=f.id, urgent=True, clock_start=start,
                                      level1_since=start, forwarded_at=None).resolve_due
           for f in fields}
    assert due == {"covid": vn(2026, 1, 1, 4), "land": vn(2026, 1, 2)}


# ---- receipt: when the citizen called ---------------------------------------------------------
def test_given_call_arrival_when_ticket_opened_later_then_clocks_start_at_the_arrival(
        ) -> None:
    code = tk.ticket_code("DN", vn(2026, 11, 23).date(), 1)
    ticket, effects = tk.open_ticket(
        DN, code=code, tenant="t", channel="phone", content="Nội dung", field="suspected_infection",
        at=vn(2026, 11, 23, 9, 12), actor=OP, urgent=True, call_ids=("pbx1:1.1",),
        call_arrivals=(vn(2026, 11, 23, 9, 0),))
    assert ticket.received_at == vn(2026, 11, 23, 9, 0)
    assert ticket.resolve_due == vn(2026, 11, 23, 13, 0)
    opened_entry = effects[0]
    assert isinstance(opened_entry, tk.AuditEntry)
    assert opened_entry.at == vn(2026, 11, 23, 9, 12)  # the log says when it was recorded
    assert "received 2026-11-23T02:00:00+00:00 (the call's arrival)" in opened_entry.detail


def test_given_several_calls_when_receipt_computed_then_earliest_arrival() -> None:
    saved = vn(2026, 11, 23, 9, 12)
    assert dl.receipt_time(saved, [vn(2026, 11, 23, 8, 50), vn(2026, 11, 22, 16, 0)]) == vn(
        2026, 11, 22, 16, 0)
    assert dl.receipt_time(saved) == saved


def test_given_arrival_after_saving_when_receipt_computed_then_save_time_stands() -> None:
    saved = vn(2026, 11, 23, 9, 12)
    assert dl.receipt_time(saved, [vn(2026, 11, 23, 9, 13)]) == saved


def test_given_naive_arrival_when_receipt_computed_then_ticket_error() -> None:
    with pytest.raises(TicketError) as info:
        dl.receipt_time(vn(2026, 11, 23, 9, 12), [dt.datetime(2026, 11, 23, 9, 0)])
    assert info.value.id == "ticket.naive_time"


def test_given_hcmc_when_received_before_midnight_then_forward_due_5_min_after() -> None:
    t = opened(vn(2026, 12, 31, 23, 58), policy=HCMC)
    assert t.forward_due == vn(2027, 1, 1, 0, 3)
    assert t.resolve_due == vn(2027, 1, 1, 23, 58)


def test_given_hcmc_violation_when_forwarded_then_result_due_60_min_after_forwarding() -> None:
    t = opened(vn(2026, 11, 23, 23, 30), "security_order", policy=HCMC)
    assert t.resolve_due is None  # counts from the unit's receipt
    t = step(t, tk.Forward(vn(2026, 11, 23, 23, 34), OP, "quan_1"), HCMC)
    assert t.resolve_due == vn(2026, 11, 24, 0, 34)
    assert not dl.is_forward_late(t, vn(2026, 11, 24, 9, 0))


def test_given_late_forwarding_when_measured_then_forward_late_by_the_excess() -> None:
    t = opened(vn(2026, 11, 23, 10, 0), policy=HCMC)
    assert dl.is_forward_late(t, vn(2026, 11, 23, 10, 6))
    t = step(t, tk.Forward(vn(2026, 11, 23, 10, 7), OP, "quan_1"), HCMC)
    assert dl.forward_lateness(t, vn(2026, 11, 30)) == 2 * M


def test_given_two_matching_rules_when_computed_then_earliest_due_wins() -> None:
    policy = TicketPolicy(deadlines=DeadlinePolicy(rules=(
        DeadlineRule("a", ("health",), None, 8 * H), DeadlineRule("b", (), True, 2 * H))))
    d = dl.compute_deadlines(policy, field="health", urgent=True, clock_start=vn(2026, 1, 1),
                             level1_since=vn(2026, 1, 1), forwarded_at=None)
    assert d.resolve_due == vn(2026, 1, 1, 2) and d.rules == ("a", "b")


def test_given_rule_longer_than_default_when_computed_then_it_replaces_the_default() -> None:
    policy = TicketPolicy(deadlines=DeadlinePolicy(rules=(
        DeadlineRule("land", ("other",), None, 72 * H),)))
    d = dl.compute_deadlines(policy, field="other", urgent=False, clock_start=vn(2026, 1, 1),
                             level1_since=vn(2026, 1, 1), forwarded_at=None)
    assert d.resolve_due == vn(2026, 1, 4)


def test_given_rule_setting_forward_when_computed_then_it_replaces_default_forward() -> None:
    policy = TicketPolicy(deadlines=DeadlinePolicy(forward=30 * M, rules=(
        DeadlineRule("fast", ("health",), None, None, 5 * M),)))
    d = dl.compute_deadlines(policy, field="health", urgent=False, clock_start=vn(2026, 1, 1),
                             level1_since=vn(2026, 1, 1), forwarded_at=None)
    assert d.forward_due == vn(2026, 1, 1, 0, 5)
    assert d.resolve_due == vn(2026, 1, 2)


# ---- lateness ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("late_by", "days"), [
    (dt.timedelta(0), 0), (M, 1), (24 * H, 1), (24 * H + M, 2), (72 * H, 3),
])
def test_given_time_past_due_when_measured_then_started_days_count(
        late_by: dt.timedelta, days: int) -> None:
    t = opened(vn(2026, 11, 23, 9, 0))
    assert t.resolve_due is not None
    now = t.resolve_due + late_by
    assert dl.days_late(t, now) == days
    assert dl.is_late(t, now) is (days > 0)


def test_given_due_at_month_end_when_late_into_next_month_then_calendar_days_counted() -> None:
    t = opened(vn(2026, 1, 30, 10, 0))  # due 31 January 10:00
    assert dl.days_late(t, vn(2026, 3, 2, 10, 0)) == 30  # February 2026 has 28 days
    t = opened(vn(2026, 12, 30, 10, 0))  # due 31 December 10:00
    assert dl.days_late(t, vn(2027, 1, 1, 9, 0)) == 1
    assert dl.days_late(t, vn(2027, 1, 1, 10, 1)) == 2


def test_given_resolved_late_when_measured_later_then_still_late_by_the_same() -> None:
    t = step(opened(vn(2026, 11, 23, 9, 0)), tk.Forward(vn(2026, 11, 23, 9, 5), OP, "quan_1"))
    t = step(t, tk.Resolve(vn(2026, 11, 24, 12, 0), UNIT, "Đã xử lý"))
    assert dl.lateness(t, vn(2027, 1, 1)) == 3 * H
    assert dl.is_late(t, vn(2027, 1, 1)) and dl.days_late(t, vn(2027, 1, 1)) == 1
    assert dl.time_left(t, vn(2027, 1, 1)) is None


def test_given_resolved_on_time_when_measured_later_then_not_late() -> None:
    t = step(opened(vn(2026, 11, 23, 9, 0)), tk.Forward(vn(2026, 11, 23, 9, 5), OP, "quan_1"))
    t = step(t, tk.Resolve(vn(2026, 11, 24, 8, 0), UNIT, "Đã xử lý"))
    assert not dl.is_late(t, vn(2027, 1, 1)) and dl.days_late(t, vn(2027, 1, 1)) == 0


def test_given_open_ticket_when_time_left_then_counts_down_through_zero() -> None:
    t = opened(vn(2026, 11, 23, 9, 0))
    assert dl.time_left(t, vn(2026, 11, 23, 10, 0)) == 23 * H
    assert dl.time_left(t, vn(2026, 11, 24, 10, 0)) == -H


def test_given_hcmc_ticket_when_time_left_then_nearest_clock_is_forward() -> None:
    t = opened(vn(2026, 11, 23, 9, 0), policy=HCMC)
    assert dl.time_left(t, vn(2026, 11, 23, 9, 2)) == 3 * M
    assert set(dl.running_clocks(t)) == {"forward", "resolve"}


def test_given_naive_now_when_measured_then_ticket_error() -> None:
    with pytest.raises(TicketError):
        dl.is_late(opened(vn(2026, 1, 1)), dt.datetime(2026, 1, 3))


@given(minutes=st.lists(st.integers(-3000, 6000), min_size=2, max_size=6))
def test_given_later_moments_when_measured_then_days_late_never_decreases(
        minutes: list[int]) -> None:
    t = opened(vn(2026, 12, 31, 20, 0))
    assert t.resolve_due is not None
    days = [dl.days_late(t, t.resolve_due + m * M) for m in sorted(minutes)]
    assert days == sorted(days)
    assert all((d == 0) == (m <= 0) for d, m in zip(days, sorted(minutes), strict=True))


# ---- returned and reopened tickets ------------------------------------------------------------
def test_given_returned_ticket_when_clocks_recomputed_then_resolve_keeps_running() -> None:
    t = opened(vn(2026, 11, 23, 9, 0), policy=HCMC)
    due = t.resolve_due
    t = step(t, tk.Forward(vn(2026, 11, 23, 9, 3), OP, "quan_1"), HCMC)
    t = step(t, tk.Return(vn(2026, 11, 23, 15, 0), UNIT, "Không thuộc thẩm quyền"), HCMC)
    assert t.resolve_due == due  # from receipt at the hotline, not reset
    assert t.forward_due == vn(2026, 11, 23, 15, 5)  # level 1 must pass it on again
    assert dl.is_late(t, vn(2026, 11, 24, 9, 1))


def test_given_returned_violation_when_reforwarded_then_new_unit_gets_full_60_min() -> None:
    t = opened(vn(2026, 11, 23, 9, 0), "security_order", policy=HCMC)
    t = step(t, tk.Forward(vn(2026, 11, 23, 9, 3), OP, "quan_1"), HCMC)
    t = step(t, tk.Return(vn(2026, 11, 23, 9, 30), UNIT, "Sai địa bàn"), HCMC)
    assert t.resolve_due is None
    t = step(t, tk.Forward(vn(2026, 11, 23, 9, 40), OP, "so_y_te"), HCMC)
    assert t.resolve_due == vn(2026, 11, 23, 10, 40)


def test_given_reopened_ticket_when_clocks_recomputed_then_fresh_from_reopening() -> None:
    t = step(opened(vn(2026, 11, 23, 9, 0)), tk.Answer(vn(2026, 11, 23, 9, 5), OP, "Trả lời"))
    t = step(t, tk.Reopen(vn(2026, 11, 30, 8, 0), OP, "Người dân chưa đồng ý"))
    assert t.resolve_due == vn(2026, 12, 1, 8, 0)
    assert not dl.is_late(t, vn(2026, 11, 30, 9, 0))


# ---- reminders --------------------------------------------------------------------------------
def test_given_forwarded_ticket_when_reminder_then_two_hours_before_due() -> None:
    t = step(opened(vn(2026, 11, 23, 9, 0)), tk.Forward(vn(2026, 11, 23, 9, 5), OP, "quan_1"))
    assert dl.reminder_at(DN, t) == vn(2026, 11, 24, 7, 0)
    assert not dl.reminder_due(DN, t, vn(2026, 11, 24, 6, 59))
    assert dl.reminder_due(DN, t, vn(2026, 11, 24, 7, 0))


def test_given_ticket_at_level_1_when_reminder_then_none() -> None:
    assert dl.reminder_at(DN, opened(vn(2026, 11, 23, 9, 0))) is None


def test_given_forwarding_after_reminder_time_when_reminder_then_none() -> None:
    t = opened(vn(2026, 11, 23, 9, 0), "health", urgent=True)  # due 13:00
    t = step(t, tk.Forward(vn(2026, 11, 23, 11, 30), OP, "so_y_te"))
    assert dl.reminder_at(DN, t) is None  # the forward SMS carries the deadline


def test_given_reminders_off_when_reminder_then_none() -> None:
    policy = TicketPolicy(units=UNITS, fallback_unit="quan_1",
                          deadlines=DeadlinePolicy(reminder_before=None))
    t = step(opened(vn(2026, 11, 23, 9, 0), policy=policy),
             tk.Forward(vn(2026, 11, 23, 9, 5), OP, "quan_1"), policy)
    assert dl.reminder_at(policy, t) is None


def test_given_default_policy_when_no_rule_for_field_then_24h_default() -> None:
    d = dl.compute_deadlines(default_policy(), field="transport", urgent=True,
                             clock_start=vn(2026, 6, 30, 23), level1_since=vn(2026, 6, 30, 23),
                             forwarded_at=None)
    assert d == dl.Deadlines(None, vn(2026, 7, 1, 23), ())
