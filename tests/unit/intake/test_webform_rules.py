"""The web form's pure rules (callcenter.intake.rules, .policy): the tenant's ``webform`` key,
field validation with Vietnamese errors per field, the signed form token, the spam screen,
rate-limit keys, the place list, and the receipt SMS (tickets.rules.receipt_notice)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from callcenter.config.base import ConfigError
from callcenter.config.parse import parse_config
from callcenter.intake import rules
from callcenter.intake.policy import DEFAULT_WEBFORM, WebFormPolicy
from callcenter.tickets.config import (
    WEB_RECEIPT_TEXT,
    Commune,
    District,
    TicketPolicy,
    policy_of,
)
from callcenter.tickets.rules import Actor, open_ticket, receipt_notice
from tests.support.config_files import config_data

T0 = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
SECRET = b"s" * 32
POLICY = TicketPolicy(
    code_prefix="DN",
    districts=(District("long_thanh", "Huyện Long Thành",
                        (Commune("long_thanh.an_phuoc", "Xã An Phước", "long_thanh"),)),
               District("bien_hoa", "Thành phố Biên Hòa")))
GOOD = rules.FormValues(name="Nguyễn Thị Hoa", phone="0912 345 678", email="",
                        field="transport", place="long_thanh.an_phuoc",
                        content="Đường ĐT769 đoạn qua xã An Phước ngập sâu.")


def _config(extra: str) -> Any:
    data = config_data("one_tenant_two_lines.yaml")
    if extra:
        data["tenants"][0].update(yaml.safe_load(extra))
    return parse_config(data, "hotline.yaml")


# -- the tenant's webform key --------------------------------------------------------------------
def test_given_no_webform_key_when_parsed_then_defaults_5_per_hour_3_per_day() -> None:
    policy = _config("").tenants[0].webform
    assert policy == DEFAULT_WEBFORM
    assert (policy.enabled, policy.per_address_per_hour, policy.per_phone_per_day,
            policy.min_fill_seconds) == (True, 5, 3, 5)


def test_given_webform_key_when_parsed_then_policy() -> None:
    got = _config("webform: {enabled: false, per_address_per_hour: 20, per_phone_per_day: 1, "
                  "min_fill_seconds: 0}").tenants[0].webform
    assert got == WebFormPolicy(enabled=False, per_address_per_hour=20, per_phone_per_day=1,
                                min_fill_seconds=0)


@pytest.mark.parametrize(("extra", "key", "reason"), [
    ("webform: {per_phone_per_day: 0}", "tenants[0].webform.per_phone_per_day",
     "expected an integer 1..100"),
    ("webform: {per_address_per_hour: '5'}", "tenants[0].webform.per_address_per_hour",
     "got a string"),
    ("webform: {enabled: 'yes'}", "tenants[0].webform.enabled", "expected true or false"),
    ("webform: {per_phone_per_dya: 2}", "tenants[0].webform.per_phone_per_dya",
     "did you mean 'per_phone_per_day'"),
])
def test_given_bad_webform_key_when_parsed_then_error_names_file_and_key(
        extra: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        _config(extra)
    assert e.value.source == "hotline.yaml" and e.value.key == key
    assert reason in e.value.reason


def test_given_web_receipt_template_when_parsed_then_tenant_text_used() -> None:
    cfg = _config("tickets: {sms: {web_receipt: 'Đã nhận phản ánh {code}.'}}")
    assert policy_of(cfg.tenants[0]).sms.web_receipt == "Đã nhận phản ánh {code}."
    assert policy_of(_config("").tenants[0]).sms.web_receipt == WEB_RECEIPT_TEXT


# -- validation ----------------------------------------------------------------------------------
def test_given_good_values_when_validated_then_petition_with_national_mobile() -> None:
    petition, errors = rules.validate(GOOD, POLICY)
    assert errors == {}
    assert petition == rules.Petition("Nguyễn Thị Hoa", "0912345678", "transport",
                                      "long_thanh.an_phuoc", GOOD.content)


def test_given_email_when_validated_then_appended_to_content() -> None:
    petition, _ = rules.validate(rules.FormValues(**{**GOOD.__dict__, "email": "hoa@x.vn"}),
                                 POLICY)
    assert petition is not None
    assert petition.content == GOOD.content + "\n\nE-mail liên hệ: hoa@x.vn"


def test_given_every_field_wrong_when_validated_then_one_vietnamese_error_per_field() -> None:
    bad = rules.FormValues(name="", phone="02513822000", email="không-phải-email",
                           field="astrology", place="ha_noi", content="ngắn")
    petition, errors = rules.validate(bad, POLICY)
    assert petition is None
    assert set(errors) == {"name", "phone", "email", "field", "place", "content"}
    assert "di động" in errors["phone"]  # a fixed line cannot get the receipt SMS
    assert "e-mail" in errors["email"] and "Lĩnh vực" in errors["field"]
    assert "Địa bàn" in errors["place"] and "ít nhất 10" in errors["content"]


def test_given_missing_values_when_validated_then_asked_for() -> None:
    _, errors = rules.validate(rules.FormValues(), POLICY)
    assert errors["name"] == "Vui lòng nhập họ và tên."
    assert errors["field"] == "Vui lòng chọn lĩnh vực."
    assert errors["place"].startswith("Vui lòng chọn nơi xảy ra sự việc")
    assert "email" not in errors  # optional


def test_given_tenant_without_places_when_validated_then_place_not_required() -> None:
    petition, errors = rules.validate(rules.FormValues(**{**GOOD.__dict__, "place": ""}),
                                      TicketPolicy(code_prefix="DN"))
    assert errors == {} and petition is not None and petition.place is None


def test_given_content_too_long_when_validated_then_error_with_limit() -> None:
    long = rules.FormValues(**{**GOOD.__dict__, "content": "a" * (rules.MAX_CONTENT + 1)})
    assert "tối đa 9000" in rules.validate(long, POLICY)[1]["content"]


def test_given_raw_fields_when_read_then_nfc_control_chars_gone_lines_kept() -> None:
    values = rules.FormValues.of({"name": "  Nguye\u0302\u0303n\x00  Hoa ",
                                  "content": "Dòng 1\r\nDòng\t2\x07"})
    assert values.name == "Nguyễn Hoa"
    assert values.content == "Dòng 1\nDòng\t2"
    assert values.phone == ""


def test_given_policy_places_when_grouped_then_district_then_its_communes() -> None:
    groups = rules.place_groups(POLICY)
    assert [(g.district_id, g.communes) for g in groups] == [
        ("long_thanh", (("long_thanh.an_phuoc", "Xã An Phước"),)), ("bien_hoa", ())]


# -- the form token ------------------------------------------------------------------------------
def test_given_signed_token_when_read_then_issue_time() -> None:
    token = rules.sign_token(SECRET, "dongnai", T0)
    assert rules.read_token(SECRET, "dongnai", token) == T0


@pytest.mark.parametrize("tamper", ["other_tenant", "other_secret", "time_moved", "garbage",
                                    "empty"])
def test_given_forged_token_when_read_then_none(tamper: str) -> None:
    token = rules.sign_token(SECRET, "dongnai", T0)
    at, mac = token.split(".")
    if tamper == "other_tenant":
        assert rules.read_token(SECRET, "thanhhoa", token) is None
    elif tamper == "other_secret":
        assert rules.read_token(b"x" * 32, "dongnai", token) is None
    elif tamper == "time_moved":  # an older time, to get past the fill time: the MAC breaks
        assert rules.read_token(SECRET, "dongnai", f"{int(at) - 60}.{mac}") is None
    elif tamper == "garbage":
        assert rules.read_token(SECRET, "dongnai", "1.abc<script>") is None
    else:
        assert rules.read_token(SECRET, "dongnai", "") is None


# -- the spam screen ----------------------------------------------------------------------------
@pytest.mark.parametrize(("honeypot", "issued", "now", "verdict"), [
    ("", T0, T0 + dt.timedelta(seconds=5), "ok"),
    ("", T0, T0 + dt.timedelta(seconds=4), "too_fast"),
    ("http://spam.example", T0, T0 + dt.timedelta(minutes=5), "honeypot"),
    ("x", None, T0, "honeypot"),  # the honeypot wins: a robot learns nothing
    ("", None, T0, "bad_token"),
    ("", T0 + dt.timedelta(minutes=5), T0, "bad_token"),  # issued in the future
    ("", T0, T0 + dt.timedelta(hours=12, seconds=1), "expired"),
    ("", T0, T0 + dt.timedelta(hours=12), "ok"),
])
def test_given_form_when_screened_then_verdict(honeypot: str, issued: dt.datetime | None,
                                               now: dt.datetime, verdict: str) -> None:
    assert rules.screen(honeypot=honeypot, issued=issued, now=now,
                        policy=DEFAULT_WEBFORM) == verdict


def test_given_min_fill_zero_when_screened_at_once_then_ok() -> None:
    assert rules.screen(honeypot="", issued=T0, now=T0,
                        policy=WebFormPolicy(min_fill_seconds=0)) == "ok"


# -- rate limits ------------------------------------------------------------------------------
def test_given_values_when_keyed_then_no_number_or_address_in_key() -> None:
    key = rules.limit_key(SECRET, "phone", "dongnai", "0912345678")
    assert key.startswith("webform:dongnai:phone:") and "0912345678" not in key
    assert key != rules.limit_key(SECRET, "phone", "thanhhoa", "0912345678")
    assert key != rules.limit_key(SECRET, "address", "dongnai", "0912345678")
    assert rules.limit_of(DEFAULT_WEBFORM, "address") == (5, dt.timedelta(hours=1))
    assert rules.limit_of(DEFAULT_WEBFORM, "phone") == (3, dt.timedelta(days=1))


def test_given_limit_reached_when_told_then_wait_in_minutes_or_hours() -> None:
    assert "sau 2 phút" in rules.rate_limited_text("address", DEFAULT_WEBFORM, 61)
    text = rules.rate_limited_text("phone", DEFAULT_WEBFORM, 5 * 3600)
    assert "3 phản ánh trong 24 giờ" in text and "sau 5 giờ" in text


def test_given_file_errors_when_told_then_file_named() -> None:
    assert "«virus.jpg»" in rules.file_type_text("virus.jpg")
    assert rules.file_too_large_text("clip.mp4", "video", 100 * 1024 * 1024) == \
        "Tệp «clip.mp4» quá lớn: đoạn phim tối đa 100 MB."


def test_given_receipt_signature_when_code_changed_then_differs() -> None:
    a = rules.receipt_signature(SECRET, "dongnai", "DN-20261207-0001")
    assert a == rules.receipt_signature(SECRET, "dongnai", "DN-20261207-0001")
    assert a != rules.receipt_signature(SECRET, "dongnai", "DN-20261207-0002")


# -- the receipt SMS ------------------------------------------------------------------------------
def _ticket(phone: str | None) -> Any:
    ticket, _ = open_ticket(POLICY, code="DN-20261207-0042", tenant="dongnai", channel="web",
                            content="Đường ngập.", field="transport", at=T0,
                            actor=Actor("web-form", "system"), citizen_phone=phone)
    return ticket


def test_given_web_ticket_with_mobile_when_receipt_then_code_in_text() -> None:
    notice = receipt_notice(POLICY, _ticket("0912345678"), T0)
    assert notice is not None
    assert (notice.template, notice.phone, notice.at) == ("web_receipt", "0912345678", T0)
    assert notice.text == ("Tổng đài 1022 đã tiếp nhận phản ánh, kiến nghị của ông (bà) gửi qua "
                           "trang web, mã số DN-20261207-0042. Xin cảm ơn!")


def test_given_fixed_line_when_receipt_then_none() -> None:
    assert receipt_notice(POLICY, _ticket("02513822000"), T0) is None
    assert receipt_notice(POLICY, _ticket(None), T0) is None
