"""SMS billing rules (pure): purpose -> audience, what is billed, periods, the fold."""

from __future__ import annotations

import datetime as dt

import pytest

from callcenter.sms.billing import (
    AUDIENCE_OF_PURPOSE,
    BillingPeriodError,
    OutboxGroup,
    audience_of,
    billing_period,
    billing_report,
    is_billed,
    month_utc_bounds,
)

TZ = "Asia/Ho_Chi_Minh"


def test_given_ticket_purposes_when_mapped_then_citizens_and_officials_apart() -> None:
    assert audience_of("resolve_notice") == "citizen"
    assert audience_of("unit_notice") == "official"
    assert audience_of("reminder") == "official"
    assert audience_of("chase") == audience_of("escalation") == "official"
    assert set(AUDIENCE_OF_PURPOSE) == {"resolve_notice", "unit_notice", "reminder", "chase",
                                        "escalation"}


@pytest.mark.parametrize("purpose", ["test", "", "Resolve_Notice", "callback_notice"])
def test_given_unknown_purpose_when_mapped_then_other(purpose: str) -> None:
    assert audience_of(purpose) == "other"


@pytest.mark.parametrize(("status", "billed"), [
    ("sent", True), ("delivered", True), ("failed", False), ("queued", False),
    ("sending", False), ("expired", False)])
def test_given_status_when_asked_billed_then_only_accepted_and_not_failed(
        status: str, billed: bool) -> None:
    assert is_billed(status) is billed


def test_given_month_or_quarter_when_parsed_then_its_months() -> None:
    assert billing_period("2026-11").months == ("2026-11",)
    q = billing_period(quarter="2026-Q4")
    assert (q.label, q.kind, q.months) == ("2026-Q4", "quarter",
                                           ("2026-10", "2026-11", "2026-12"))
    assert q.describe() == "quý IV/2026"
    assert billing_period(quarter="2027-q1").months == ("2027-01", "2027-02", "2027-03")
    assert billing_period("2026-11").describe() == "tháng 11/2026"


@pytest.mark.parametrize(("month", "quarter"), [
    ("2026-13", None), ("2026-1", None), (None, "2026-Q5"), (None, "2026"), (None, None),
    ("2026-11", "2026-Q4")])
def test_given_bad_period_when_parsed_then_error(month: str | None,
                                                 quarter: str | None) -> None:
    with pytest.raises(BillingPeriodError):
        billing_period(month, quarter)


def test_given_vietnam_month_when_bounds_then_local_midnights_in_utc() -> None:
    start, end = month_utc_bounds("2026-12", TZ)
    assert start == dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 12, 31, 17, 0, tzinfo=dt.UTC)


def test_given_groups_when_folded_then_parts_billed_per_audience_and_month() -> None:
    period = billing_period(quarter="2026-Q4")
    groups = [
        OutboxGroup("2026-10", "resolve_notice", "delivered", 3, 6),
        OutboxGroup("2026-10", "resolve_notice", "sent", 1, 2),
        OutboxGroup("2026-10", "resolve_notice", "failed", 2, 4),
        OutboxGroup("2026-10", "unit_notice", "delivered", 5, 10),
        OutboxGroup("2026-11", "reminder", "sent", 2, 2),
        OutboxGroup("2026-11", "test", "delivered", 1, 1),
        OutboxGroup("2026-09", "resolve_notice", "sent", 9, 9),  # outside: ignored
    ]
    r = billing_report("dongnai", period, TZ, groups)
    cell = {(x.month, x.audience): x for x in r.months}
    assert len(r.months) == 9  # 3 months x 3 audiences, zeros kept
    citizen_oct = cell[("2026-10", "citizen")]
    assert (citizen_oct.messages, citizen_oct.parts, citizen_oct.delivered_parts,
            citizen_oct.failed_messages, citizen_oct.failed_parts) == (4, 8, 6, 2, 4)
    assert cell[("2026-10", "official")].parts == 10
    assert cell[("2026-11", "official")].parts == 2
    assert cell[("2026-11", "other")].parts == 1
    assert cell[("2026-12", "citizen")].parts == 0
    totals = {x.audience: x.parts for x in r.totals}
    assert totals == {"citizen": 8, "official": 12, "other": 1}
    assert (r.total.messages, r.total.parts, r.total.failed_parts) == (12, 21, 4)
