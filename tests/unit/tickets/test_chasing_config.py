"""Config of item 17 (4, 6): focal persons' fields and e-mail, unit e-mail and head,
tickets.chasing, tickets.province_office; errors name the key."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from callcenter.config.file import load_config
from callcenter.tickets.config import (
    ChasingPolicy,
    Contact,
    FocalPerson,
    policy_of,
)
from tests.unit.tickets.test_config import SHIPPED, T, error_at, policy, with_tickets


def chasing_tenant(chasing: object = None, **tickets: Any) -> dict[str, Any]:
    tenant = with_tickets()
    if chasing is not None:
        tenant["tickets"]["chasing"] = chasing
    tenant["tickets"].update(tickets)
    return tenant


# ---- focal persons, unit e-mail and head ------------------------------------------------------
def test_given_focal_fields_and_email_when_parsed_then_kept() -> None:
    tenant = with_tickets()
    tenant["units"][2]["focal_persons"] = [
        {"name": "An sinh", "phone": "0903111222", "fields": ["social_security"],
         "email": "ansinh@longthanh.gov.vn"},
        {"name": "Y tế", "phone": "0903111223", "fields": ["health", "health"]},
    ]
    tenant["units"][2]["email"] = " ubnd@longthanh.gov.vn "
    tenant["units"][2]["head"] = {"name": "Chủ tịch UBND huyện", "phone": "0903000000",
                                  "email": "ct@longthanh.gov.vn"}
    lt = policy(tenant).unit("ubnd_lt")
    assert lt is not None
    assert lt.focal_persons == (
        FocalPerson("An sinh", "0903111222", ("social_security",), "ansinh@longthanh.gov.vn"),
        FocalPerson("Y tế", "0903111223", ("health",)))  # group name accepted, once
    assert lt.email == "ubnd@longthanh.gov.vn"
    assert lt.head == Contact("Chủ tịch UBND huyện", "0903000000", "ct@longthanh.gov.vn")


def test_given_no_fields_email_or_head_when_parsed_then_defaults() -> None:
    so = policy(with_tickets()).unit("so_y_te")
    assert so is not None and so.email is None and so.head is None
    assert so.focal_persons[0].fields == () and so.focal_persons[0].email is None


def test_given_focal_field_unknown_when_parsed_then_error_names_index_and_suggests() -> None:
    tenant = with_tickets()
    tenant["units"][0]["focal_persons"][0]["fields"] = ["health", "socal_security"]
    err = error_at(tenant, f"{T}.units[0].focal_persons[0].fields[1]")
    assert "social_security" in err.reason


def test_given_focal_fields_not_a_list_when_parsed_then_error_names_key() -> None:
    tenant = with_tickets()
    tenant["units"][0]["focal_persons"][0]["fields"] = "health"
    assert "list" in error_at(tenant, f"{T}.units[0].focal_persons[0].fields").reason


@pytest.mark.parametrize("email", ["not-an-address", "a@b", "two@x.vn, three@y.vn", ""])
def test_given_bad_email_when_parsed_then_error_names_key(email: str) -> None:
    tenant = with_tickets()
    tenant["units"][0]["focal_persons"][0]["email"] = email
    tenant["units"][1]["email"] = email
    for key in (f"{T}.units[0].focal_persons[0].email", f"{T}.units[1].email"):
        assert error_at(tenant, key)


def test_given_head_without_phone_and_email_when_parsed_then_error_names_head() -> None:
    tenant = with_tickets()
    tenant["units"][1]["head"] = {"name": "Giám đốc"}
    assert "phone and/or an email" in error_at(tenant, f"{T}.units[1].head").reason


def test_given_head_phone_not_a_mobile_when_parsed_then_error_names_key() -> None:
    tenant = with_tickets()
    tenant["units"][1]["head"] = {"name": "Giám đốc", "phone": "02513822000"}
    assert "mobile" in error_at(tenant, f"{T}.units[1].head.phone").reason


def test_given_unknown_head_key_when_parsed_then_error_names_it() -> None:
    tenant = with_tickets()
    tenant["units"][1]["head"] = {"name": "Giám đốc", "mobile": "0912000000"}
    assert error_at(tenant, f"{T}.units[1].head.mobile")


# ---- chasing -----------------------------------------------------------------------------------
def test_given_no_chasing_when_parsed_then_chasing_off() -> None:
    p = policy(with_tickets())
    assert p.chasing is None and p.province_office is None


def test_given_empty_chasing_when_parsed_then_defaults_on() -> None:
    p = policy(chasing_tenant({}))
    assert p.chasing == ChasingPolicy()
    assert p.chasing.daily_at == dt.time(7, 30)
    assert p.chasing.escalate_after == dt.timedelta(days=2)
    assert p.chasing.working_days == (0, 1, 2, 3, 4) and p.chasing.at_deadline


def test_given_full_chasing_when_parsed_then_values() -> None:
    p = policy(chasing_tenant(
        {"at_deadline": False, "daily_at": "08:05", "escalate_after": "1d12h",
         "working_days": ["sat", "mon", "tue"], "holidays": ["2027-02-08", dt.date(2027, 2, 5)]},
        province_office={"name": "Văn phòng UBND tỉnh", "phone": "0912000001",
                         "email": "vp@dongnai.gov.vn"}))
    assert p.chasing == ChasingPolicy(False, dt.time(8, 5), dt.timedelta(days=1, hours=12),
                                      (0, 1, 5), (dt.date(2027, 2, 5), dt.date(2027, 2, 8)))
    assert p.province_office == Contact("Văn phòng UBND tỉnh", "0912000001",
                                        "vp@dongnai.gov.vn")


def test_given_null_daily_and_escalation_when_parsed_then_only_at_deadline() -> None:
    p = policy(chasing_tenant({"daily_at": None, "escalate_after": None}))
    assert p.chasing == ChasingPolicy(True, None, None)


@pytest.mark.parametrize(("key", "value", "words"), [
    ("daily_at", "7:30", "HH:MM"), ("daily_at", "24:00", "HH:MM"), ("daily_at", 730, "HH:MM"),
    ("escalate_after", 2, "no unit"), ("escalate_after", "2 days", "duration"),
    ("at_deadline", "yes", "true or false"), ("working_days", ["monday"], "mon"),
])
def test_given_bad_chasing_value_when_parsed_then_error_names_key(key: str, value: object,
                                                                  words: str) -> None:
    err = error_at(chasing_tenant({key: value}), f"{T}.tickets.chasing.{key}"
                   + ("[0]" if key == "working_days" else ""))
    assert words in err.reason


def test_given_bad_holiday_when_parsed_then_error_names_index() -> None:
    err = error_at(chasing_tenant({"holidays": ["2027-02-08", "8/2/2027"]}),
                   f"{T}.tickets.chasing.holidays[1]")
    assert "YYYY-MM-DD" in err.reason


def test_given_unknown_chasing_key_when_parsed_then_error_names_it() -> None:
    assert error_at(chasing_tenant({"escalate_afer": "2d"}), f"{T}.tickets.chasing.escalate_afer")


def test_given_chasing_that_chases_nothing_when_parsed_then_error() -> None:
    err = error_at(chasing_tenant({"at_deadline": False, "daily_at": None,
                                   "escalate_after": None}), f"{T}.tickets.chasing")
    assert "chases nothing" in err.reason


def test_given_province_office_without_contact_when_parsed_then_error_names_it() -> None:
    err = error_at(chasing_tenant(province_office={"name": "VP"}),
                   f"{T}.tickets.province_office")
    assert "phone and/or an email" in err.reason


def test_given_chase_template_with_days_late_when_parsed_then_kept() -> None:
    text = "Nhắc {code}: trễ {days_late} ngày"
    p = policy(chasing_tenant(sms={"chase": text, "escalation": "Báo cáo {code} {unit}"}))
    assert p.sms.chase == text and p.sms.escalation == "Báo cáo {code} {unit}"


def test_given_chase_template_with_unknown_placeholder_when_parsed_then_error() -> None:
    err = error_at(chasing_tenant(sms={"chase": "{code} {late}"}), f"{T}.tickets.sms.chase")
    assert "{days_late}" in err.reason


# ---- the shipped config (item 11) --------------------------------------------------------------
def test_given_shipped_config_when_loaded_then_chasing_and_province_office_set() -> None:
    p = policy_of(load_config(str(SHIPPED)).tenants[0])
    assert p.chasing is not None and p.chasing.daily_at == dt.time(7, 30)
    assert p.chasing.escalate_after == dt.timedelta(days=2)
    assert p.province_office is not None and p.province_office.email


DISTRICTS = ("bien_hoa", "long_khanh", "long_thanh", "nhon_trach", "trang_bom", "thong_nhat",
             "cam_my", "vinh_cuu", "xuan_loc", "dinh_quan", "tan_phu")


def test_given_shipped_config_when_loaded_then_every_district_has_its_peoples_committee() -> None:
    p = policy_of(load_config(str(SHIPPED)).tenants[0])
    assert {d.id for d in p.districts} == set(DISTRICTS)
    covering = {place: u for u in p.units for place in u.places}
    for district in DISTRICTS:
        unit = covering[district]
        assert unit.kind == "district" and unit.name.startswith("UBND")
        # "UBND cấp huyện cử 02 nhân sự": one for social security, one for health
        fields = sorted(f for person in unit.focal_persons for f in person.fields)
        assert fields == ["health", "social_security"], unit.id
        assert unit.head is not None and unit.head.phone


def test_given_shipped_config_when_loaded_then_orders_units_present() -> None:
    p = policy_of(load_config(str(SHIPPED)).tenants[0])
    for uid in ("so_tai_chinh", "bhxh_tinh", "phong_kinh_te_long_thanh"):
        unit = p.unit(uid)
        assert unit is not None and unit.focal_persons, uid
    routes = {(r.field, r.place): r.unit for r in p.routing}
    assert routes[("essential_goods", "long_thanh")] == "phong_kinh_te_long_thanh"
