"""Mailed reports' rules (callcenter.mail.rules): the config keys, when a report is due,
which period it covers, its dedupe key and text, and the retry back-off."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config.base import ConfigError
from callcenter.config.parse import parse_config
from callcenter.mail.rules import (
    CATCH_UP,
    MAX_ATTEMPTS,
    MailConfig,
    ReportRule,
    attachment_name,
    day_period,
    gives_up,
    latest_due,
    next_due,
    period_before,
    period_containing,
    report_body,
    report_key,
    report_subject,
    retry_delay,
    to_send,
)
from tests.support.config_files import config_data

HCM = "Asia/Ho_Chi_Minh"
VN = dt.timezone(dt.timedelta(hours=7))
AT = dt.time(7, 30)


def _config(mail: str = "", reports: str = "") -> Any:
    data = config_data("one_tenant_two_lines.yaml")
    if mail:
        data["mail"] = yaml.safe_load(mail)
    if reports:
        data["tenants"][0]["reports"] = yaml.safe_load(reports)
    return parse_config(data, "hotline.yaml")


def _errors(mail: str = "", reports: str = "") -> list[str]:
    with pytest.raises(ConfigError) as e:
        _config(mail, reports)
    return [str(x.line_text()) for x in e.value.errors]


# ---- the mail key ---------------------------------------------------------------------------
def test_given_no_mail_section_when_parsed_then_no_mail_server() -> None:
    assert _config().mail is None


def test_given_mail_section_when_parsed_then_typed_with_defaults() -> None:
    cfg = _config("{host: 127.0.0.1, from: 'Tổng đài 1022 <tongdai@example.gov.vn>'}")
    assert cfg.mail == MailConfig(host="127.0.0.1", sender="Tổng đài 1022 <tongdai@example.gov.vn>",
                                  port=25, starttls=False, ca_file=None, username_env=None,
                                  password_env=None, enabled=True)


def test_given_full_mail_section_when_parsed_then_every_key_kept() -> None:
    cfg = _config("{host: smtp.example.gov.vn, port: 587, from: a@example.gov.vn, "
                  "starttls: true, ca_file: /etc/ca.pem, username_env: SMTP_USER, "
                  "password_env: SMTP_PASSWORD, enabled: false}")
    assert cfg.mail == MailConfig("smtp.example.gov.vn", "a@example.gov.vn", 587, True,
                                  "/etc/ca.pem", "SMTP_USER", "SMTP_PASSWORD", False)


@pytest.mark.parametrize(("mail", "key", "reason"), [
    ("{from: a@b.vn}", "mail.host", "required key is missing"),
    ("{host: h}", "mail.from", "required key is missing"),
    ("{host: h, from: not-an-address}", "mail.from", "expected a mail address"),
    ("{host: h, from: a@b.vn, port: 0}", "mail.port", "expected an integer 1..65535"),
    ("{host: h, from: a@b.vn, starttls: 'yes'}", "mail.starttls", "expected true or false"),
    ("{host: 'bad host', from: a@b.vn}", "mail.host", "expected an IP address or a host name"),
    ("{host: h, from: a@b.vn, password_env: P}", "mail.username_env",
     "an SMTP login needs both"),
    ("{host: h, from: a@b.vn, username_env: U, password_env: 'not a name'}",
     "mail.password_env", "expected an environment variable name"),
    ("{host: h, from: a@b.vn, prot: 25}", "mail.prot", "unknown key (did you mean 'port'?)"),
])
def test_given_bad_mail_key_when_parsed_then_error_names_file_and_key(
        mail: str, key: str, reason: str) -> None:
    errors = _errors(mail)
    assert any(e.startswith(f"hotline.yaml: {key} = ") and reason in e for e in errors), errors


def test_given_password_in_yaml_when_parsed_then_refused_without_echoing_it() -> None:
    errors = _errors("{host: h, from: a@b.vn, password: s3cret-pass}")
    assert any(e.startswith("hotline.yaml: mail.password = ") and "password_env" in e
               for e in errors), errors
    assert not any("s3cret-pass" in e for e in errors)


# ---- the reports key ------------------------------------------------------------------------
def test_given_reports_when_parsed_then_one_rule_per_kind() -> None:
    t = _config(reports="""
        daily: {at: "07:30", to: [vp@dongnai.gov.vn, bcd@dongnai.gov.vn]}
        weekly: {on: Monday, at: "08:00", to: [vp@dongnai.gov.vn]}
        monthly: {at: "07:00", to: [vp@dongnai.gov.vn]}
        quarterly: {at: "07:00", to: [vp@dongnai.gov.vn]}
    """).tenants[0]
    assert t.reports.rule("daily") == ReportRule("daily", AT, ("vp@dongnai.gov.vn",
                                                               "bcd@dongnai.gov.vn"))
    assert t.reports.rule("weekly") == ReportRule("weekly", dt.time(8), ("vp@dongnai.gov.vn",),
                                                  0)
    assert t.reports.rule("monthly") is not None and t.reports.rule("quarterly") is not None


def test_given_no_reports_key_when_parsed_then_no_rules() -> None:
    assert _config().tenants[0].reports.rules == ()


@pytest.mark.parametrize(("reports", "key", "reason"), [
    ("{daily: {at: '07:30'}}", "tenants[0].reports.daily.to", "required key is missing"),
    ("{daily: {at: '25:00', to: [a@b.vn]}}", "tenants[0].reports.daily.at", "expected a time"),
    ("{daily: {at: 18:00, to: [a@b.vn]}}", "tenants[0].reports.daily.at", "base-60"),
    ("{daily: {at: '07:30', to: [nobody]}}", "tenants[0].reports.daily.to[0]",
     "expected a mail address"),
    ("{daily: {at: '07:30', to: []}}", "tenants[0].reports.daily.to", "non-empty list"),
    ("{weekly: {at: '07:30', to: [a@b.vn]}}", "tenants[0].reports.weekly.on",
     "required key is missing"),
    ("{weekly: {on: funday, at: '07:30', to: [a@b.vn]}}", "tenants[0].reports.weekly.on",
     "expected one of: monday"),
    ("{daily: {on: monday, at: '07:30', to: [a@b.vn]}}", "tenants[0].reports.daily.on",
     "unknown key"),
    ("{yearly: {at: '07:30', to: [a@b.vn]}}", "tenants[0].reports.yearly", "unknown key"),
])
def test_given_bad_reports_key_when_parsed_then_error_names_file_and_key(
        reports: str, key: str, reason: str) -> None:
    errors = _errors(reports=reports)
    assert any(e.startswith(f"hotline.yaml: {key} = ") and reason in e for e in errors), errors


# ---- periods --------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "send_day", "label", "first", "last"), [
    ("daily", dt.date(2026, 12, 7), "2026-12-06", dt.date(2026, 12, 6), dt.date(2026, 12, 6)),
    ("daily", dt.date(2027, 1, 1), "2026-12-31", dt.date(2026, 12, 31), dt.date(2026, 12, 31)),
    ("daily", dt.date(2028, 3, 1), "2028-02-29", dt.date(2028, 2, 29), dt.date(2028, 2, 29)),
    # Monday 7/12/2026: the week of Mon 30/11 - Sun 6/12 (ISO week 49)
    ("weekly", dt.date(2026, 12, 7), "2026-W49", dt.date(2026, 11, 30), dt.date(2026, 12, 6)),
    # sent on a Friday: still the last whole ISO week
    ("weekly", dt.date(2026, 12, 11), "2026-W49", dt.date(2026, 11, 30), dt.date(2026, 12, 6)),
    # across the year: Monday 4/1/2027 -> ISO week 53 of 2026 (28/12/2026 - 3/1/2027)
    ("weekly", dt.date(2027, 1, 4), "2026-W53", dt.date(2026, 12, 28), dt.date(2027, 1, 3)),
    ("monthly", dt.date(2026, 12, 1), "2026-11", dt.date(2026, 11, 1), dt.date(2026, 11, 30)),
    ("monthly", dt.date(2027, 1, 1), "2026-12", dt.date(2026, 12, 1), dt.date(2026, 12, 31)),
    ("monthly", dt.date(2028, 3, 1), "2028-02", dt.date(2028, 2, 1), dt.date(2028, 2, 29)),
    ("quarterly", dt.date(2027, 1, 1), "2026-Q4", dt.date(2026, 10, 1), dt.date(2026, 12, 31)),
    ("quarterly", dt.date(2026, 4, 1), "2026-Q1", dt.date(2026, 1, 1), dt.date(2026, 3, 31)),
    ("quarterly", dt.date(2026, 7, 1), "2026-Q2", dt.date(2026, 4, 1), dt.date(2026, 6, 30)),
    ("quarterly", dt.date(2026, 10, 1), "2026-Q3", dt.date(2026, 7, 1), dt.date(2026, 9, 30)),
])
def test_given_send_day_when_period_before_then_last_whole_period(
        kind: Any, send_day: dt.date, label: str, first: dt.date, last: dt.date) -> None:
    p = period_before(kind, send_day)
    assert (p.kind, p.label, p.first_day, p.last_day) == (kind, label, first, last)


def test_given_day_when_period_containing_then_its_period() -> None:
    assert period_containing("quarterly", dt.date(2026, 11, 15)).label == "2026-Q4"
    assert period_containing("weekly", dt.date(2026, 12, 6)).label == "2026-W49"
    assert period_containing("monthly", dt.date(2026, 12, 31)).label == "2026-12"


# ---- due times (Asia/Ho_Chi_Minh: 07:30 local is 00:30 UTC) ---------------------------------
def _utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=VN).astimezone(dt.UTC)


def test_given_daily_before_its_time_when_latest_due_then_yesterdays_occurrence() -> None:
    rule = ReportRule("daily", AT, ("a@b.vn",))
    d = latest_due("dongnai", rule, HCM, _utc(2026, 12, 7, 7, 29))
    assert d is not None and d.due_at == _utc(2026, 12, 6, 7, 30)
    assert d.period.label == "2026-12-05"


def test_given_daily_at_its_time_when_latest_due_then_todays_covering_yesterday() -> None:
    rule = ReportRule("daily", AT, ("a@b.vn",))
    d = latest_due("dongnai", rule, HCM, _utc(2026, 12, 7, 7, 30))
    assert d is not None and d.due_at == dt.datetime(2026, 12, 7, 0, 30, tzinfo=dt.UTC)
    assert d.period.label == "2026-12-06"
    assert d.dedupe_key == "report:daily:dongnai:2026-12-06"


def test_given_utc_evening_when_daily_due_then_local_day_counts() -> None:
    # 2026-12-06 18:00 UTC is already 01:00 on the 7th in Vietnam: the report at 00:30 local
    # covers the 6th local day, whatever the UTC date says.
    rule = ReportRule("daily", dt.time(0, 30), ("a@b.vn",))
    d = latest_due("dongnai", rule, HCM, dt.datetime(2026, 12, 6, 18, 0, tzinfo=dt.UTC))
    assert d is not None and d.period.label == "2026-12-06"
    assert d.due_at == dt.datetime(2026, 12, 6, 17, 30, tzinfo=dt.UTC)


def test_given_weekly_monday_when_sunday_then_last_monday_due() -> None:
    rule = ReportRule("weekly", AT, ("a@b.vn",), weekday=0)
    d = latest_due("dongnai", rule, HCM, _utc(2026, 12, 13, 23, 59))
    assert d is not None and d.due_at == _utc(2026, 12, 7, 7, 30) and d.period.label == "2026-W49"
    n = next_due("dongnai", rule, HCM, _utc(2026, 12, 13, 23, 59))
    assert n.due_at == _utc(2026, 12, 14, 7, 30) and n.period.label == "2026-W50"


def test_given_monthly_when_end_of_month_then_due_on_the_first() -> None:
    rule = ReportRule("monthly", AT, ("a@b.vn",))
    n = next_due("dongnai", rule, HCM, _utc(2026, 11, 30, 23, 0))
    assert n.due_at == _utc(2026, 12, 1, 7, 30) and n.period.label == "2026-11"
    d = latest_due("dongnai", rule, HCM, _utc(2026, 12, 31, 23, 0))
    assert d is not None and d.period.label == "2026-11"


def test_given_quarterly_when_new_year_then_fourth_quarter_due_on_january_first() -> None:
    rule = ReportRule("quarterly", AT, ("a@b.vn",))
    n = next_due("dongnai", rule, HCM, _utc(2026, 12, 31, 7, 30))
    assert n.due_at == _utc(2027, 1, 1, 7, 30) and n.period.label == "2026-Q4"
    d = latest_due("dongnai", rule, HCM, _utc(2027, 3, 31, 23, 0))
    assert d is not None and d.period.label == "2026-Q4"
    assert d.dedupe_key == "report:quarterly:dongnai:2026-Q4"


def test_given_app_down_at_report_time_when_back_within_catch_up_then_latest_sent_late() -> None:
    rule = ReportRule("monthly", AT, ("a@b.vn",))
    late = to_send("dongnai", rule, HCM, _utc(2026, 12, 3, 10, 0))
    assert late is not None and late.period.label == "2026-11"


def test_given_occurrence_older_than_catch_up_when_to_send_then_nothing() -> None:
    rule = ReportRule("quarterly", AT, ("a@b.vn",))
    # A quarterly rule added mid-May does not mail the first quarter out of the blue.
    assert to_send("dongnai", rule, HCM, _utc(2026, 5, 15, 9, 0)) is None
    assert to_send("dongnai", rule, HCM, _utc(2026, 4, 1, 7, 30) + CATCH_UP) is not None


def test_given_naive_now_when_due_then_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        latest_due("dongnai", ReportRule("daily", AT, ("a@b.vn",)), HCM,
                   dt.datetime(2026, 12, 7, 7, 30))


# ---- what the mail says ---------------------------------------------------------------------
def test_given_counts_when_report_body_then_vietnamese_summary_sentence() -> None:
    p = day_period(dt.date(2026, 12, 6))
    counts = {"received": 12, "answered_l1": 4, "forwarded": 8, "resolved_on_time": 4,
              "resolved_late": 1, "still_open": 3, "late": 1, "closed_unhandled": 0}
    body = report_body("dongnai", "Đồng Nai", p, counts, _utc(2026, 12, 7, 7, 30), HCM)
    assert body.startswith(
        "Báo cáo ngày 06/12/2026 — Tổng đài 1022 Đồng Nai: tiếp nhận 12 phản ánh, kiến nghị; "
        "đã xử lý 9 (trả lời tại cấp 1: 4, giải quyết đúng hạn: 4, trễ hạn: 1); đang xử lý 3, "
        "trong đó quá hạn 1.\n")
    assert "bao-cao-ngay-dongnai-2026-12-06.xlsx" in body
    assert "lúc 07:30 ngày 07/12/2026 (giờ Asia/Ho_Chi_Minh)" in body


def test_given_period_when_subject_and_attachment_then_named_for_it() -> None:
    q = period_before("quarterly", dt.date(2027, 1, 1))
    assert report_subject("Đồng Nai", q) == "[Tổng đài 1022 Đồng Nai] Báo cáo quý IV/2026"
    assert attachment_name("dongnai", q) == "bao-cao-quy-dongnai-2026-Q4.xlsx"
    assert report_key("quarterly", "dongnai", q) == "report:quarterly:dongnai:2026-Q4"


def test_given_failures_when_retry_delay_then_doubles_to_one_hour_with_jitter() -> None:
    assert retry_delay(1, 0.0) == dt.timedelta(seconds=15)
    assert retry_delay(1, 0.999999) < dt.timedelta(seconds=30)
    assert retry_delay(2, 0.0) == dt.timedelta(seconds=30)
    assert retry_delay(20, 0.0) == dt.timedelta(minutes=30)
    assert retry_delay(20, 0.999999) < dt.timedelta(hours=1)
    assert not gives_up(MAX_ATTEMPTS - 1) and gives_up(MAX_ATTEMPTS)


# ---- properties over any instant ------------------------------------------------------------
_INSTANTS = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2030, 12, 31),
                         timezones=st.just(dt.UTC))
_RULES = st.builds(ReportRule, st.sampled_from(["daily", "weekly", "monthly", "quarterly"]),
                   st.times(), st.just(("a@b.vn",)), st.integers(0, 6))


@given(now=_INSTANTS, rule=_RULES)
def test_given_any_instant_when_due_then_latest_before_next_and_periods_end_before_sending(
        now: dt.datetime, rule: ReportRule) -> None:
    last = latest_due("dongnai", rule, HCM, now)
    nxt = next_due("dongnai", rule, HCM, now)
    assert last is not None and last.due_at <= now < nxt.due_at
    for d in (last, nxt):
        send_day = d.due_at.astimezone(VN).date()
        # the period is whole and over before the day the report is sent
        assert d.period.first_day <= d.period.last_day < send_day
        assert d.period.last_day + dt.timedelta(days=1) == {
            "daily": send_day,
            "weekly": send_day - dt.timedelta(days=send_day.weekday()),
            "monthly": send_day.replace(day=1),
            "quarterly": send_day.replace(day=1),
        }[rule.kind]
    # consecutive occurrences cover consecutive periods (nothing skipped, nothing twice)
    assert last.period.last_day + dt.timedelta(days=1) == nxt.period.first_day
