"""Chasing late units (pure): chase slots, working mornings, weekends, holidays, escalation
once, the schedule agreeing with the decision; the Chase event's SMS, e-mails and audit; focal
persons chosen by field."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.tickets import deadlines as dl
from callcenter.tickets import rules as tk
from callcenter.tickets.config import (
    ChasingPolicy,
    Contact,
    FocalPerson,
    Level2Unit,
    TicketError,
    TicketPolicy,
)
from callcenter.tickets.rules import S

VN = ZoneInfo("Asia/Ho_Chi_Minh")
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)
SYSTEM = tk.Actor("deadline-job", "system")
OP = tk.Actor("op1", "operator")


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=VN)


# 2026-11-23 is a Monday.
MON_10 = local(2026, 11, 23, 10)
TUE_0730 = local(2026, 11, 24, 7, 30)
WED_0730 = local(2026, 11, 25, 7, 30)
THU_0730 = local(2026, 11, 26, 7, 30)
FRI_10 = local(2026, 11, 27, 10)
MON2_0730 = local(2026, 11, 30, 7, 30)

HEALTH_PERSON = FocalPerson("Y tế", "0900000401", ("health",), "yte@lt.example")
SOCIAL_PERSON = FocalPerson("An sinh", "0900000201", ("social_security",))
GENERALIST = FocalPerson("Chung", "0900000999")
HEAD = Contact("Chủ tịch UBND huyện", "0900000501", "ct@lt.example")
OFFICE = Contact("Văn phòng UBND tỉnh", "0900000100", "vp@dn.example")
UNIT = Level2Unit("ubnd_lt", "UBND huyện Long Thành", "district",
                  (SOCIAL_PERSON, HEALTH_PERSON), email="ubnd@lt.example", head=HEAD)
CHASING = ChasingPolicy()  # at the deadline, 07:30 Mon-Fri, escalate after 2 days
POLICY = TicketPolicy(code_prefix="DN", units=(UNIT,), fallback_unit="ubnd_lt",
                      chasing=CHASING, province_office=OFFICE)


def late_ticket(due: dt.datetime = MON_10, *, forwarded: dt.datetime | None = None,
                field: str = "health", **kw: object) -> tk.Ticket:
    """A ticket at UBND Long Thành, due at ``due`` (received 24 h before)."""
    received = due - D
    t = tk.Ticket(code="DN-20261122-0001", tenant="dongnai", channel="phone",
                  content="Chưa được hỗ trợ", field=field, received_at=received.astimezone(dt.UTC),
                  state=S.FORWARDED, unit="ubnd_lt",
                  forwarded_at=(forwarded or received + H).astimezone(dt.UTC),
                  resolve_due=due.astimezone(dt.UTC))
    return replace(t, **kw)  # type: ignore[arg-type]


def due_at(t: tk.Ticket, now: dt.datetime, policy: TicketPolicy = POLICY) -> dl.ChaseDue | None:
    return dl.chase_due(policy, t, now)


def slot(t: tk.Ticket, now: dt.datetime, policy: TicketPolicy = POLICY) -> dt.datetime | None:
    d = due_at(t, now, policy)
    return d.slot if d is not None else None


def with_chasing(**kw: object) -> TicketPolicy:
    return replace(POLICY, chasing=replace(CHASING, **kw))  # type: ignore[arg-type]


# ---- when a chase is due ----------------------------------------------------------------------
def test_given_deadline_ahead_when_checked_then_nothing_due() -> None:
    t = late_ticket()
    assert slot(t, MON_10 - dt.timedelta(seconds=1)) is None
    assert dl.next_chase_at(POLICY, t) == MON_10.astimezone(dt.UTC)


def test_given_the_exact_deadline_minute_when_checked_then_chase_at_the_deadline() -> None:
    t = late_ticket()
    assert slot(t, MON_10) == MON_10
    assert slot(t, MON_10 + 59 * M) == MON_10
    assert due_at(t, MON_10) == dl.ChaseDue(MON_10.astimezone(dt.UTC), False)


def test_given_at_deadline_off_when_deadline_passes_then_first_chase_next_working_morning() -> None:
    p = with_chasing(at_deadline=False)
    t = late_ticket()
    assert slot(t, MON_10, p) is None and slot(t, TUE_0730 - M, p) is None
    assert slot(t, TUE_0730, p) == TUE_0730
    assert dl.next_chase_at(p, t) == TUE_0730


def test_given_chased_at_deadline_when_next_morning_comes_then_chased_again_at_0730_local() -> None:
    t = late_ticket(chased_at=MON_10.astimezone(dt.UTC))
    assert slot(t, MON_10 + 5 * H) is None  # the same evening: done for today
    assert slot(t, TUE_0730 - M) is None
    assert slot(t, TUE_0730) == TUE_0730
    assert TUE_0730.astimezone(dt.UTC).hour == 0 and TUE_0730.astimezone(dt.UTC).minute == 30
    assert dl.next_chase_at(POLICY, t) == TUE_0730


def test_given_deadline_before_0730_when_checked_then_same_morning_is_a_slot() -> None:
    due = local(2026, 11, 24, 6, 0)  # Tuesday 06:00
    t = late_ticket(due, chased_at=due.astimezone(dt.UTC))
    assert slot(t, TUE_0730) == TUE_0730


def test_given_deadline_after_0730_when_that_morning_passes_then_next_morning_is_first() -> None:
    p = with_chasing(at_deadline=False)
    t = late_ticket(local(2026, 11, 24, 8, 0))  # Tuesday 08:00: Tuesday's 07:30 was before it
    assert slot(t, local(2026, 11, 24, 23, 59), p) is None
    assert slot(t, WED_0730, p) == WED_0730


def test_given_friday_deadline_when_weekend_then_no_chase_until_monday_morning() -> None:
    t = late_ticket(FRI_10, chased_at=FRI_10.astimezone(dt.UTC))
    for day in (28, 29):  # Saturday, Sunday
        assert slot(t, local(2026, 11, day, 7, 30)) is None
        assert slot(t, local(2026, 11, day, 23, 59)) is None
    assert slot(t, MON2_0730) == MON2_0730
    assert dl.next_chase_at(POLICY, t) == MON2_0730


def test_given_saturday_deadline_when_it_passes_then_at_deadline_chase_still_goes() -> None:
    # The clocks run 24/7: at_deadline tells the unit when its deadline passes, even on Saturday.
    sat = local(2026, 11, 28, 14)
    assert slot(late_ticket(sat), sat + M) == sat


def test_given_monday_holiday_when_weekend_passes_then_chase_tuesday() -> None:
    p = with_chasing(holidays=(dt.date(2026, 11, 30),))
    t = late_ticket(FRI_10, chased_at=FRI_10.astimezone(dt.UTC))
    assert slot(t, local(2026, 11, 30, 12), p) is None
    assert slot(t, local(2026, 12, 1, 7, 30), p) == local(2026, 12, 1, 7, 30)
    assert dl.next_chase_at(p, t) == local(2026, 12, 1, 7, 30)


def test_given_custom_working_days_when_checked_then_saturday_chased() -> None:
    p = with_chasing(working_days=(0, 1, 2, 3, 4, 5))
    t = late_ticket(FRI_10, chased_at=FRI_10.astimezone(dt.UTC))
    assert slot(t, local(2026, 11, 28, 7, 30), p) == local(2026, 11, 28, 7, 30)


def test_given_several_days_late_and_no_sweep_when_checked_then_one_chase_for_latest_slot() -> None:
    t = late_ticket(chased_at=MON_10.astimezone(dt.UTC))
    thu_noon = local(2026, 11, 26, 12)
    assert slot(t, thu_noon) == THU_0730  # not Tuesday's, not Wednesday's: no backlog
    done = replace(t, chased_at=THU_0730.astimezone(dt.UTC))
    assert slot(done, thu_noon) is None
    assert slot(done, FRI_10) == local(2026, 11, 27, 7, 30)


def test_given_forwarded_after_the_deadline_when_checked_then_earlier_slots_skipped() -> None:
    fwd = MON_10 + 2 * H  # forwarded when already late: the forward SMS gave the deadline
    t = late_ticket(forwarded=fwd)
    assert slot(t, fwd + M) is None
    assert slot(t, TUE_0730) == TUE_0730


def test_given_forwarded_exactly_at_a_slot_when_checked_then_that_slot_skipped() -> None:
    t = late_ticket(forwarded=MON_10)
    assert slot(t, MON_10 + M) is None


@pytest.mark.parametrize("change", [
    {"state": S.RESOLVED, "resolved_at": MON_10.astimezone(dt.UTC) + H},
    {"state": S.RETURNED, "unit": None},
    {"resolve_due": None},
])
def test_given_ticket_not_late_at_a_unit_when_checked_then_nothing_due(change: dict[str, object]
                                                                       ) -> None:
    t = replace(late_ticket(), **change)  # type: ignore[arg-type]
    assert slot(t, THU_0730) is None and dl.next_chase_at(POLICY, t) is None


def test_given_no_chasing_when_checked_then_nothing_due() -> None:
    p = replace(POLICY, chasing=None)
    assert slot(late_ticket(), THU_0730, p) is None and dl.next_chase_at(p, late_ticket()) is None


# ---- escalation -------------------------------------------------------------------------------
def test_given_two_days_late_when_mornings_pass_then_escalation_once_at_first_slot_after() -> None:
    t = late_ticket(chased_at=WED_0730.astimezone(dt.UTC))  # due Mon 10:00, E = Wed 10:00
    assert due_at(late_ticket(), WED_0730) == dl.ChaseDue(WED_0730.astimezone(dt.UTC), False)
    thu = due_at(t, THU_0730)
    assert thu == dl.ChaseDue(THU_0730.astimezone(dt.UTC), True)
    escalated = replace(t, chased_at=THU_0730.astimezone(dt.UTC),
                        escalated_at=THU_0730.astimezone(dt.UTC))
    fri = due_at(escalated, local(2026, 11, 27, 7, 30))
    assert fri is not None and fri.escalate is False  # once only


def test_given_escalation_due_on_saturday_when_weekend_then_escalated_monday_morning() -> None:
    thu = local(2026, 11, 26, 10)  # E = Saturday 10:00
    t = late_ticket(thu, chased_at=local(2026, 11, 27, 7, 30).astimezone(dt.UTC))
    assert due_at(t, local(2026, 11, 28, 10)) is None
    assert due_at(t, MON2_0730) == dl.ChaseDue(MON2_0730.astimezone(dt.UTC), True)


def test_given_only_at_deadline_and_escalation_when_checked_then_escalation_has_own_slot() -> None:
    p = with_chasing(daily_at=None)
    t = late_ticket(chased_at=MON_10.astimezone(dt.UTC))
    e = MON_10 + 2 * D
    assert due_at(t, e - M, p) is None
    assert due_at(t, e, p) == dl.ChaseDue(e.astimezone(dt.UTC), True)
    assert dl.next_chase_at(p, t) == e


def test_given_escalation_off_when_long_late_then_never_escalates() -> None:
    p = with_chasing(escalate_after=None)
    t = late_ticket(chased_at=MON_10.astimezone(dt.UTC))
    d = due_at(t, local(2026, 12, 10, 7, 30), p)
    assert d is not None and not d.escalate


# ---- the schedule agrees with the decision (what the sweep relies on) -------------------------
chasings = st.builds(
    ChasingPolicy,
    at_deadline=st.booleans(),
    daily_at=st.one_of(st.none(), st.times().map(lambda t: t.replace(second=0, microsecond=0))),
    escalate_after=st.one_of(st.none(), st.integers(1, 6 * 24 * 60).map(
        lambda m: dt.timedelta(minutes=m))),
    working_days=st.lists(st.integers(0, 6), min_size=1, unique=True).map(
        lambda d: tuple(sorted(d))),
    holidays=st.lists(st.dates(dt.date(2026, 11, 20), dt.date(2026, 12, 20)), max_size=4).map(
        lambda d: tuple(sorted(set(d)))),
)


@settings(max_examples=300, deadline=None)
@given(chasing=chasings,
       due_min=st.integers(0, 14 * 24 * 60),
       fwd_before=st.integers(-3 * 24 * 60, 3 * 24 * 60),
       chased_after=st.one_of(st.none(), st.integers(0, 10 * 24 * 60)),
       now_after=st.integers(-24 * 60, 12 * 24 * 60))
def test_given_any_policy_when_scheduled_then_next_chase_at_is_due_exactly_when_decided(
        chasing: ChasingPolicy, due_min: int, fwd_before: int, chased_after: int | None,
        now_after: int) -> None:
    due = (MON_10 + due_min * M).astimezone(dt.UTC)
    t = late_ticket(due, forwarded=due - fwd_before * M)
    if chased_after is not None:
        t = replace(t, chased_at=due + chased_after * M)
    p = replace(POLICY, chasing=chasing)
    now = due + now_after * M
    nxt = dl.next_chase_at(p, t)
    decided = dl.chase_due(p, t, now)
    assert (decided is not None) == (nxt is not None and nxt <= now)
    if decided is not None:
        assert nxt is not None and nxt <= decided.slot <= now and decided.slot >= due
        floor = max(x for x in (t.forwarded_at, t.chased_at) if x is not None)
        assert decided.slot > floor
        # chasing that slot leaves nothing due at the same moment
        assert dl.chase_due(p, replace(t, chased_at=decided.slot), now) is None


# ---- the Chase event --------------------------------------------------------------------------
def apply_chase(t: tk.Ticket, now: dt.datetime,
                policy: TicketPolicy = POLICY) -> tuple[tk.Ticket, list[tk.Effect]]:
    return tk.apply(t, tk.Chase(now, SYSTEM), policy)


def test_given_late_health_ticket_when_chased_then_health_person_texted_keyed_by_slot() -> None:
    t = late_ticket()
    new, effects = apply_chase(t, MON_10 + 3 * M)
    assert new.version == t.version + 1 and new.chased_at == MON_10.astimezone(dt.UTC)
    assert new.escalated_at is None and new.state is S.FORWARDED
    sms = [e for e in effects if isinstance(e, tk.NotifyUnit)]
    assert [(e.template, e.phones, e.at) for e in sms] == [
        ("chase", ("0900000401",), MON_10.astimezone(dt.UTC))]
    assert "DN-20261122-0001" in sms[0].text and "UBND huyện Long Thành" in sms[0].text
    assert "trễ 1 ngày" in sms[0].text
    audit = [e for e in effects if isinstance(e, tk.AuditEntry)]
    assert [a.event for a in audit] == ["chase", "email", "email"]
    assert audit[0].actor == SYSTEM and "slot" in audit[0].detail
    mails = [e for e in effects if isinstance(e, tk.SendEmail)]
    assert [(m.purpose, m.to) for m in mails] == [("chase", "ubnd@lt.example"),
                                                  ("chase", "yte@lt.example")]
    assert mails[0].dedupe_key == (f"{t.code}:chase:{MON_10.astimezone(dt.UTC).isoformat()}"
                                   ":ubnd@lt.example")
    with pytest.raises(TicketError) as info:  # the same slot again
        apply_chase(new, MON_10 + 4 * M)
    assert info.value.id == "ticket.chase_not_due"


def test_given_two_days_late_when_chased_then_head_and_office_texted_and_mailed_once() -> None:
    t = late_ticket(chased_at=WED_0730.astimezone(dt.UTC), field="social_security")
    now = THU_0730 + 2 * M
    new, effects = apply_chase(t, now)
    assert new.escalated_at == now.astimezone(dt.UTC)
    sms = {e.template: e for e in effects if isinstance(e, tk.NotifyUnit)}
    assert sms["chase"].phones == ("0900000201",)  # the social security person
    assert sms["escalation"].phones == ("0900000501", "0900000100")
    assert sms["escalation"].at == THU_0730.astimezone(dt.UTC)
    assert "trễ hạn 3 ngày" in sms["escalation"].text
    mails = [(m.purpose, m.to) for m in effects if isinstance(m, tk.SendEmail)]
    assert mails == [("chase", "ubnd@lt.example"), ("escalation", "ct@lt.example"),
                     ("escalation", "vp@dn.example")]
    subject = next(m for m in effects if isinstance(m, tk.SendEmail)
                   and m.purpose == "escalation").subject
    assert "trễ hạn 3 ngày" in subject
    events = [e.event for e in effects if isinstance(e, tk.AuditEntry)]
    assert events == ["chase", "escalate", "email", "email", "email"]
    again, effects2 = apply_chase(replace(new), local(2026, 11, 27, 7, 31))
    assert again.escalated_at == new.escalated_at
    assert [e.template for e in effects2 if isinstance(e, tk.NotifyUnit)] == ["chase"]
    assert "escalate" not in [e.event for e in effects2 if isinstance(e, tk.AuditEntry)]


def test_given_no_head_or_office_when_escalating_then_audited_that_nobody_was_told() -> None:
    bare = replace(UNIT, head=None, email=None)
    p = replace(POLICY, units=(bare,), province_office=None)
    _, effects = apply_chase(late_ticket(chased_at=WED_0730.astimezone(dt.UTC)), THU_0730, p)
    esc = [e for e in effects if isinstance(e, tk.AuditEntry) and e.event == "escalate"]
    assert len(esc) == 1 and "nobody" in esc[0].detail
    assert [e.template for e in effects if isinstance(e, tk.NotifyUnit)] == ["chase"]


def test_given_chased_and_escalated_when_forwarded_elsewhere_then_new_unit_starts_fresh() -> None:
    other = Level2Unit("vp", "Văn phòng UBND tỉnh", "department", (GENERALIST,))
    p = replace(POLICY, units=(UNIT, other))
    t = late_ticket(chased_at=THU_0730.astimezone(dt.UTC),
                    escalated_at=THU_0730.astimezone(dt.UTC))
    sup = tk.Actor("sup1", "supervisor")
    moved, _ = tk.apply(t, tk.Forward(local(2026, 11, 26, 9), sup, "vp"), p)
    assert moved.chased_at is None and moved.escalated_at is None
    d = dl.chase_due(p, moved, local(2026, 11, 27, 7, 30))
    assert d is not None and d.escalate  # long late at the new unit too: its head is told


def test_given_not_late_when_supervisor_chases_then_refused() -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(late_ticket(), tk.Chase(MON_10 - M, tk.Actor("s", "supervisor")), POLICY)
    assert info.value.id == "ticket.chase_not_due"


# ---- focal persons by field -------------------------------------------------------------------
GROUP_PERSON = FocalPerson("Nhóm y tế", "0900000402", ("health",))  # a group name
MIXED = Level2Unit("u", "U", "district", (SOCIAL_PERSON, HEALTH_PERSON, GENERALIST))
SPECIALISTS = Level2Unit("u", "U", "district", (SOCIAL_PERSON, HEALTH_PERSON))
PLAIN = Level2Unit("u", "U", "district", (GENERALIST, FocalPerson("B", "0900000998")))


@pytest.mark.parametrize(("unit", "field", "group", "expected"), [
    (SPECIALISTS, "health", "health", [HEALTH_PERSON]),
    (SPECIALISTS, "social_security", None, [SOCIAL_PERSON]),
    (SPECIALISTS, "transport", None, [SOCIAL_PERSON, HEALTH_PERSON]),  # none match, none general
    (MIXED, "transport", None, [GENERALIST]),  # none match: those listing no fields
    (MIXED, "health", "health", [HEALTH_PERSON]),
    (PLAIN, "health", "health", list(PLAIN.focal_persons)),  # nobody lists fields: all
    (Level2Unit("u", "U", "district", (SOCIAL_PERSON, GROUP_PERSON)),
     "suspected_infection", "health", [GROUP_PERSON]),  # listed by group
])
def test_given_focal_fields_when_ticket_field_varies_then_matching_persons(
        unit: Level2Unit, field: str, group: str | None, expected: list[FocalPerson]) -> None:
    assert list(unit.focal_for(field, group)) == expected


def test_given_district_with_two_field_persons_when_forwarded_then_only_matching_texted() -> None:
    received = local(2026, 11, 23, 9)
    t, _ = tk.open_ticket(POLICY, code="DN-20261123-0001", tenant="dongnai", channel="phone",
                          content="Xin hỗ trợ trợ cấp", field="social_security", at=received,
                          actor=OP)
    _, effects = tk.apply(t, tk.Forward(received + M, OP, "ubnd_lt"), POLICY)
    sms = [e for e in effects if isinstance(e, tk.NotifyUnit)]
    assert [(e.template, e.phones) for e in sms] == [("forwarded", ("0900000201",))]


def test_given_reminder_when_due_then_only_matching_person_texted() -> None:
    t = late_ticket(local(2026, 11, 24, 10))  # due Tuesday 10:00; reminder 2 h before
    t2, effects = tk.apply(t, tk.Remind(local(2026, 11, 24, 8, 1), SYSTEM), POLICY)
    assert [e.phones for e in effects if isinstance(e, tk.NotifyUnit)] == [("0900000401",)]
    assert t2.reminded_at is not None
