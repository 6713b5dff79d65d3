"""Ticket sections of a tenant (units, places, tickets): defaults, values, errors naming keys."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config.base import BaseParser, ConfigError
from callcenter.config.file import load_config
from callcenter.config.model import DEFAULT_FIELDS, Field, Tenant
from callcenter.config.parse import parse_config
from callcenter.tickets.config import (
    RESOLVED_TEXT,
    URGENT_HEALTH,
    DeadlineRule,
    FocalPerson,
    RoutingRule,
    TicketPolicy,
    default_policy,
    parse_ticket_sections,
    policy_of,
)
from callcenter.tickets.deadlines import matching_rules

SHIPPED = Path(__file__).resolve().parents[3] / "config" / "hotline.yaml"
SOURCE = "test.yaml"
T = "tenants[0]"


def base() -> dict[str, Any]:
    return {
        "id": "dongnai",
        "name": "Đồng Nai",
        "numbers": ["1022"],
        "shifts": [{"name": "all", "start": "00:00", "end": "00:00", "lines": 2}],
    }


def with_tickets() -> dict[str, Any]:
    tenant = base()
    tenant.update(copy.deepcopy({
        "units": [
            {"id": "vp", "name": "Văn phòng UBND tỉnh", "kind": "department",
             "focal_persons": [{"name": "Nguyễn Văn An", "phone": "0912345678"}]},
            {"id": "so_y_te", "name": "Sở Y tế", "kind": "department", "hotline": "0251 3822 000",
             "focal_persons": [{"name": "Trần Thị Bình", "phone": "+84 98 765 4321"}]},
            {"id": "ubnd_lt", "name": "UBND huyện Long Thành", "kind": "district",
             "places": ["long_thanh"],
             "focal_persons": [{"name": "Lê Văn Cường", "phone": "0903.111.222"}]},
        ],
        "places": [
            {"id": "long_thanh", "name": "Huyện Long Thành",
             "communes": [{"id": "long_thanh.an_phuoc", "name": "Xã An Phước"}]},
            {"id": "bien_hoa", "name": "Thành phố Biên Hòa"},
        ],
        "tickets": {
            "code_prefix": "DN",
            "fallback_unit": "vp",
            "routing": [{"field": "health", "unit": "so_y_te"}],
        },
    }))
    return tenant


def policy(tenant: dict[str, Any]) -> TicketPolicy:
    config = parse_config({"tenants": [tenant]}, SOURCE)
    return policy_of(config.tenants[0])


def errors(tenant: dict[str, Any]) -> list[ConfigError]:
    with pytest.raises(ConfigError) as info:
        parse_config({"tenants": [tenant]}, SOURCE)
    return info.value.errors


def error_at(tenant: dict[str, Any], key: str) -> ConfigError:
    found = [e for e in errors(tenant) if e.key == key]
    assert found, [e.line_text() for e in errors(tenant)]
    return found[0]


# ---- defaults ---------------------------------------------------------------------------------
def test_given_no_ticket_sections_when_parsed_then_default_policy_works() -> None:
    p = policy(base())
    assert p.units == () and p.districts == () and p.routing == ()
    assert p.fallback_unit is None
    assert p.code_prefix == "DONGNAI"
    assert p.timezone == "Asia/Ho_Chi_Minh"
    assert p.deadlines.resolve == dt.timedelta(hours=24)
    assert p.deadlines.forward is None
    assert p.deadlines.reminder_before == dt.timedelta(hours=2)
    assert p.deadlines.rules == (URGENT_HEALTH,)
    assert URGENT_HEALTH.resolve == dt.timedelta(hours=4)
    assert p.public_by_default is False


def test_given_defaults_when_read_then_resolve_sms_is_the_seeds_text_word_for_word() -> None:
    assert default_policy().sms.resolved == (
        "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!")
    assert RESOLVED_TEXT == default_policy().sms.resolved


def test_given_tenant_built_in_code_when_policy_of_then_defaults_from_tenant() -> None:
    tenant = Tenant("thanh-hoa", "Thanh Hóa", "Asia/Bangkok", ("1022",), ())
    p = policy_of(tenant)
    assert p.code_prefix == "THANHHOA" and p.timezone == "Asia/Bangkok"
    assert p.fields == DEFAULT_FIELDS


def test_given_tenant_fields_without_health_when_defaulted_then_no_urgent_health_rule() -> None:
    p = default_policy((Field("land", "Đất đai"),))
    assert p.deadlines.rules == ()


def test_given_numeric_tenant_id_when_defaulted_then_prefix_starts_with_a_letter() -> None:
    assert default_policy(tenant_id="1022").code_prefix == "TD"
    assert default_policy(tenant_id="hcm-1022").code_prefix == "HCM1022"


# ---- a full example ---------------------------------------------------------------------------
def test_given_units_places_rules_when_parsed_then_values_normalised() -> None:
    p = policy(with_tickets())
    assert [u.id for u in p.units] == ["vp", "so_y_te", "ubnd_lt"]
    so = p.unit("so_y_te")
    assert so is not None and so.hotline == "02513822000"
    assert so.focal_persons == (FocalPerson("Trần Thị Bình", "0987654321"),)
    lt = p.unit("ubnd_lt")
    assert lt is not None and lt.kind == "district" and lt.places == ("long_thanh",)
    assert lt.focal_persons[0].phone == "0903111222"
    assert p.code_prefix == "DN" and p.fallback_unit == "vp"
    # explicit rules first, then the ones implied by the units' places
    assert p.routing == (RoutingRule("so_y_te", "health", None),
                         RoutingRule("ubnd_lt", None, "long_thanh"))
    found = p.place("long_thanh.an_phuoc")
    assert found is not None and found[0].id == "long_thanh" and found[1] is not None
    assert found[1].district == "long_thanh" and found[1].name == "Xã An Phước"
    assert p.place("nowhere") is None
    assert p.field_name("health") == "Y tế"


def test_given_shipped_config_when_loaded_then_dong_nai_has_ticket_policy() -> None:
    config = load_config(str(SHIPPED))
    p = policy_of(config.tenants[0])
    assert p.code_prefix == "DN"
    assert p.fallback_unit == "vp_ubnd_tinh"
    assert p.unit("so_y_te") is not None
    assert p.place("long_thanh.an_phuoc") is not None
    assert p.sms.resolved == RESOLVED_TEXT
    assert p.public_by_default is False  # published only after review (/console/review)
    assert [r.name for r in p.deadlines.rules] == ["urgent_health"]


# ---- units ------------------------------------------------------------------------------------
@pytest.mark.parametrize("missing", ["id", "name", "kind", "focal_persons"])
def test_given_unit_without_required_key_when_parsed_then_error_names_it(missing: str) -> None:
    tenant = with_tickets()
    del tenant["units"][1][missing]
    err = error_at(tenant, f"{T}.units[1].{missing}")
    assert err.reason == "required key is missing"
    assert err.source == SOURCE


@pytest.mark.parametrize("phone", ["02513822000", "12345", "0112345678", "09123456789",
                                   "+1 415 555 0100", "abc"])
def test_given_focal_phone_not_a_mobile_when_parsed_then_error_names_it(phone: str) -> None:
    tenant = with_tickets()
    tenant["units"][0]["focal_persons"][0]["phone"] = phone
    err = error_at(tenant, f"{T}.units[0].focal_persons[0].phone")
    assert "Vietnamese mobile" in err.reason and "SMS" in err.reason


def test_given_unquoted_phone_when_parsed_then_error_says_to_quote_it() -> None:
    tenant = with_tickets()
    tenant["units"][0]["focal_persons"][0]["phone"] = 912345678
    err = error_at(tenant, f"{T}.units[0].focal_persons[0].phone")
    assert "quoted" in err.reason and "leading 0" in err.reason


def test_given_same_focal_phone_twice_when_parsed_then_error_names_the_second() -> None:
    tenant = with_tickets()
    tenant["units"][0]["focal_persons"].append({"name": "B", "phone": "+84912345678"})
    err = error_at(tenant, f"{T}.units[0].focal_persons[1].phone")
    assert "twice" in err.reason


def test_given_empty_focal_persons_when_parsed_then_error() -> None:
    tenant = with_tickets()
    tenant["units"][0]["focal_persons"] = []
    assert "non-empty" in error_at(tenant, f"{T}.units[0].focal_persons").reason


def test_given_duplicate_unit_id_when_parsed_then_error_names_the_second() -> None:
    tenant = with_tickets()
    tenant["units"][2]["id"] = "vp"
    tenant["units"][2].pop("places")
    err = error_at(tenant, f"{T}.units[2].id")
    assert "units[0]" in err.reason


@pytest.mark.parametrize("kind", ["ward", "", 3, None])
def test_given_bad_unit_kind_when_parsed_then_error_lists_kinds(kind: object) -> None:
    tenant = with_tickets()
    tenant["units"][0]["kind"] = kind
    err = error_at(tenant, f"{T}.units[0].kind")
    assert "department, district, other" in err.reason


@pytest.mark.parametrize("uid", ["Sở Y tế", "UPPER", "a" * 33])
def test_given_bad_unit_id_when_parsed_then_error_names_it(uid: str) -> None:
    tenant = with_tickets()
    tenant["units"][0]["id"] = uid
    assert any(e.key == f"{T}.units[0].id" for e in errors(tenant))


@pytest.mark.parametrize("hotline", ["1", "hotline", "+", "0251-ABC"])
def test_given_bad_hotline_when_parsed_then_error_names_it(hotline: str) -> None:
    tenant = with_tickets()
    tenant["units"][1]["hotline"] = hotline
    assert "2-20 digits" in error_at(tenant, f"{T}.units[1].hotline").reason


def test_given_unit_covering_unknown_place_when_parsed_then_error_names_it() -> None:
    tenant = with_tickets()
    tenant["units"][2]["places"] = ["long_thanh", "nhon_trach"]
    err = error_at(tenant, f"{T}.units[2].places[1]")
    assert "unit 'ubnd_lt' covers an unknown place" in err.reason


def test_given_two_units_covering_one_place_when_parsed_then_error_names_the_second() -> None:
    tenant = with_tickets()
    tenant["units"][1]["places"] = ["long_thanh"]
    err = error_at(tenant, f"{T}.units[2].places[0]")
    assert "already routed by tenants[0].units[1].places[0]" in err.reason


# ---- places -----------------------------------------------------------------------------------
def test_given_commune_id_equal_to_a_district_id_when_parsed_then_error_names_it() -> None:
    tenant = with_tickets()
    tenant["places"][0]["communes"].append({"id": "bien_hoa", "name": "Xã trùng"})
    err = error_at(tenant, f"{T}.places[1].id")
    assert "tenants[0].places[0].communes[1].id has it too" in err.reason


def test_given_place_without_name_when_parsed_then_error_names_it() -> None:
    tenant = with_tickets()
    del tenant["places"][0]["communes"][0]["name"]
    assert error_at(tenant, f"{T}.places[0].communes[0].name").reason == \
        "required key is missing"


@pytest.mark.parametrize("pid", ["Long Thành", "a/b", ""])
def test_given_bad_place_id_when_parsed_then_error_names_it(pid: str) -> None:
    tenant = with_tickets()
    tenant["places"][1]["id"] = pid
    assert any(e.key == f"{T}.places[1].id" for e in errors(tenant))


# ---- routing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("rule", "key", "words"), [
    ({"field": "helth", "unit": "so_y_te"}, "field", "unknown field"),
    ({"place": "nhon_trach", "unit": "so_y_te"}, "place", "unknown place"),
    ({"field": "health", "unit": "so_yte"}, "unit", "unknown unit"),
])
def test_given_rule_naming_unknown_thing_when_parsed_then_error_names_the_rule(
        rule: dict[str, str], key: str, words: str) -> None:
    tenant = with_tickets()
    tenant["tickets"]["routing"].append(rule)
    err = error_at(tenant, f"{T}.tickets.routing[1].{key}")
    assert f"routing rule 1 {rule}" in err.reason and words in err.reason


def test_given_rule_with_neither_field_nor_place_when_parsed_then_error() -> None:
    tenant = with_tickets()
    tenant["tickets"]["routing"].append({"unit": "so_y_te"})
    assert "fallback_unit" in error_at(tenant, f"{T}.tickets.routing[1]").reason


def test_given_two_rules_for_one_field_and_place_when_parsed_then_error_names_the_second() -> None:
    tenant = with_tickets()
    tenant["tickets"]["routing"].append({"field": "health", "unit": "vp"})
    err = error_at(tenant, f"{T}.tickets.routing[1]")
    assert "same field and place as routing rule 0" in err.reason


def test_given_place_rule_and_unit_covering_it_when_parsed_then_error_names_unit_place() -> None:
    tenant = with_tickets()
    tenant["tickets"]["routing"].append({"place": "long_thanh", "unit": "vp"})
    err = error_at(tenant, f"{T}.units[2].places[0]")
    assert "tenants[0].tickets.routing[1]" in err.reason


def test_given_units_without_fallback_when_parsed_then_fallback_is_required() -> None:
    tenant = with_tickets()
    del tenant["tickets"]["fallback_unit"]
    err = error_at(tenant, f"{T}.tickets.fallback_unit")
    assert "required once units are given" in err.reason


def test_given_no_tickets_section_but_units_when_parsed_then_fallback_is_required() -> None:
    tenant = with_tickets()
    del tenant["tickets"]
    assert any(e.key == f"{T}.tickets.fallback_unit" for e in errors(tenant))


def test_given_unknown_fallback_when_parsed_then_error_lists_units() -> None:
    tenant = with_tickets()
    tenant["tickets"]["fallback_unit"] = "van_phong"
    err = error_at(tenant, f"{T}.tickets.fallback_unit")
    assert "expected one of: so_y_te, ubnd_lt, vp" in err.reason


@pytest.mark.parametrize(("key", "value", "hint"), [
    ("unit", "so_yte", "so_y_te"), ("field", "helth", "health"),
    ("place", "long_thanh.an_phuoc_", "long_thanh.an_phuoc")])
def test_given_misspelt_reference_when_parsed_then_error_suggests(
        key: str, value: str, hint: str) -> None:
    tenant = with_tickets()
    rule = {"field": "health", "place": "bien_hoa", "unit": "vp", key: value}
    tenant["tickets"]["routing"].append(rule)
    err = error_at(tenant, f"{T}.tickets.routing[1].{key}")
    assert f"did you mean {hint!r}?" in err.reason


def test_given_places_only_when_parsed_then_no_fallback_needed() -> None:
    tenant = base()
    tenant["places"] = [{"id": "bien_hoa", "name": "Thành phố Biên Hòa"}]
    p = policy(tenant)
    assert p.fallback_unit is None and p.place("bien_hoa") is not None


@pytest.mark.parametrize("prefix", ["dn", "1DN", "DN-1", "ABCDEFGHIJK", ""])
def test_given_bad_code_prefix_when_parsed_then_error_names_it(prefix: str) -> None:
    tenant = with_tickets()
    tenant["tickets"]["code_prefix"] = prefix
    assert any(e.key == f"{T}.tickets.code_prefix" for e in errors(tenant))


def test_given_two_tenants_with_one_code_prefix_when_parsed_then_error_names_the_second() -> None:
    second = base()
    second.update({"id": "dong-nai", "numbers": ["02511022"]})  # default prefix DONGNAI too
    with pytest.raises(ConfigError) as info:
        parse_config({"tenants": [base(), second]}, SOURCE)
    err = info.value
    assert err.key == "tenants[1].tickets.code_prefix" and err.raw_value == "DONGNAI"
    assert "unique across tenants" in err.reason and "tenants[0]" in err.reason


def test_given_unknown_tickets_key_when_parsed_then_error_suggests() -> None:
    tenant = with_tickets()
    tenant["tickets"]["fallback"] = "vp"
    err = error_at(tenant, f"{T}.tickets.fallback")
    assert "did you mean 'fallback_unit'" in err.reason


# ---- deadlines --------------------------------------------------------------------------------
def with_deadlines(d: dict[str, Any]) -> dict[str, Any]:
    tenant = with_tickets()
    tenant["tickets"]["deadlines"] = d
    return tenant


@pytest.mark.parametrize(("text", "minutes"), [
    ("24h", 24 * 60), ("4h", 240), ("60m", 60), ("5m", 5), ("1h30m", 90), ("2d", 2880),
    ("1d 2h", 26 * 60), ("90M", 90),
])
def test_given_duration_text_when_parsed_then_timedelta(text: str, minutes: int) -> None:
    p = policy(with_deadlines({"resolve": text}))
    assert p.deadlines.resolve == dt.timedelta(minutes=minutes)


@pytest.mark.parametrize("value", [24, 1.5, "24", "h", "24 hours", "0m", "61d", True, "-5m"])
def test_given_bad_duration_when_parsed_then_error_names_key(value: object) -> None:
    err = error_at(with_deadlines({"resolve": value}), f"{T}.tickets.deadlines.resolve")
    assert "expected a duration such as" in err.reason


def test_given_bare_number_duration_when_parsed_then_error_says_it_has_no_unit() -> None:
    err = error_at(with_deadlines({"forward": 5}), f"{T}.tickets.deadlines.forward")
    assert "no unit" in err.reason


@given(d=st.integers(0, 20), h=st.integers(0, 23), m=st.integers(0, 59))
def test_given_any_d_h_m_duration_when_parsed_then_exact(d: int, h: int, m: int) -> None:
    total = dt.timedelta(days=d, hours=h, minutes=m)
    text = "".join(f"{n}{u}" for n, u in ((d, "d"), (h, "h"), (m, "m")) if n) or "0m"
    p = BaseParser(SOURCE)
    result = parse_ticket_sections(p, {"tickets": {"deadlines": {"resolve": text}}}, T,
                                   DEFAULT_FIELDS)
    if dt.timedelta(minutes=1) <= total:
        assert not p.errors and result is not None
        assert result.deadlines.resolve == total
    else:
        assert result is None and p.errors[0].key == f"{T}.tickets.deadlines.resolve"


def test_given_hcmc_style_deadlines_when_parsed_then_rules_and_forward_clock() -> None:
    p = policy(with_deadlines({
        "forward": "5m",
        "rules": [
            {"name": "urgent_health", "fields": ["health"], "urgent": True, "resolve": "4h"},
            {"name": "violation", "fields": ["security_order"], "resolve": "60m",
             "from": "forwarded"},
        ],
    }))
    assert p.deadlines.forward == dt.timedelta(minutes=5)
    assert p.deadlines.resolve == dt.timedelta(hours=24)
    assert p.deadlines.rules[1] == DeadlineRule(
        "violation", ("security_order",), None, dt.timedelta(minutes=60), None, "forwarded")


def test_given_deadlines_without_rules_when_parsed_then_built_in_rules_stay() -> None:
    p = policy(with_deadlines({"resolve": "48h"}))
    assert p.deadlines.rules == (URGENT_HEALTH,)


def test_given_empty_rules_when_parsed_then_no_rules() -> None:
    assert policy(with_deadlines({"rules": []})).deadlines.rules == ()


def test_given_reminder_null_when_parsed_then_reminders_off() -> None:
    assert policy(with_deadlines({"reminder_before": None})).deadlines.reminder_before is None


def test_given_rule_with_unknown_field_when_parsed_then_error_names_rule_and_index() -> None:
    tenant = with_deadlines({"rules": [{"name": "x", "fields": ["health", "helth"],
                                        "resolve": "1h"}]})
    err = error_at(tenant, f"{T}.tickets.deadlines.rules[0].fields[1]")
    assert "deadline rule 'x' names an unknown field" in err.reason


def with_fields(*fields: dict[str, Any]) -> dict[str, Any]:
    tenant = base()
    tenant["fields"] = [dict(f) for f in fields]
    return tenant


def test_given_field_with_group_when_parsed_then_group_kept_and_urgent_health_matches() -> None:
    p = policy(with_fields({"id": "covid", "name": "Nghi nhiễm", "group": "health"},
                           {"id": "land", "name": "Đất đai"}))
    assert p.field_group("covid") == "health" and p.field_group("land") is None
    assert p.deadlines.rules == (URGENT_HEALTH,)  # a health-group field brings the 4 h rule


def test_given_default_fields_when_loaded_then_health_fields_marked() -> None:
    marked = {f.id for f in DEFAULT_FIELDS if f.group == "health"}
    assert marked == {"health", "suspected_infection", "prices_fraud"}


@pytest.mark.parametrize(("group", "reason"), [
    ("helth", "expected one of: health"),  # unknown
    (["health"], "expected a string, got a list"),  # malformed
    (4, "expected a string"),
])
def test_given_field_with_unknown_or_malformed_group_when_parsed_then_error_names_key(
        group: object, reason: str) -> None:
    tenant = with_fields({"id": "health", "name": "Y tế"},
                         {"id": "covid", "name": "Nghi nhiễm", "group": group})
    err = error_at(tenant, f"{T}.fields[1].group")
    assert reason in err.reason


def test_given_rule_naming_groups_when_parsed_then_groups_kept() -> None:
    p = policy(with_deadlines({"rules": [
        {"name": "urgent_health", "groups": ["health"], "urgent": True, "resolve": "4h"}]}))
    assert p.deadlines.rules == (DeadlineRule("urgent_health", (), True, dt.timedelta(hours=4),
                                              groups=("health",)),)


@pytest.mark.parametrize(("groups", "key", "reason"), [
    (["helth"], "groups[0]", "expected one of: health"),
    (["health", 3], "groups[1]", "expected a string"),
    ("health", "groups", "expected a list"),
])
def test_given_rule_with_unknown_or_malformed_group_when_parsed_then_error_names_key(
        groups: object, key: str, reason: str) -> None:
    tenant = with_deadlines({"rules": [{"name": "x", "groups": groups, "resolve": "4h"}]})
    err = error_at(tenant, f"{T}.tickets.deadlines.rules[0].{key}")
    assert reason in err.reason


def test_given_shipped_config_when_urgent_suspected_infection_then_urgent_health_rule() -> None:
    p = policy_of(load_config(str(SHIPPED)).tenants[0])
    assert [r.name for r in matching_rules(p, "suspected_infection", True)] == ["urgent_health"]
    assert matching_rules(p, "essential_goods", True) == ()


def test_given_rule_setting_no_clock_when_parsed_then_error() -> None:
    err = error_at(with_deadlines({"rules": [{"name": "x", "urgent": True}]}),
                   f"{T}.tickets.deadlines.rules[0]")
    assert "sets no clock" in err.reason


def test_given_from_without_resolve_when_parsed_then_error_names_from() -> None:
    err = error_at(with_deadlines({"rules": [{"name": "x", "forward": "5m",
                                              "from": "forwarded"}]}),
                   f"{T}.tickets.deadlines.rules[0].from")
    assert "resolve clock" in err.reason


@pytest.mark.parametrize(("key", "value"), [("from", "receipt"), ("urgent", "yes")])
def test_given_bad_rule_value_when_parsed_then_error_names_it(key: str, value: str) -> None:
    rule = {"name": "x", "resolve": "1h", key: value}
    assert any(e.key == f"{T}.tickets.deadlines.rules[0].{key}"
               for e in errors(with_deadlines({"rules": [rule]})))


def test_given_duplicate_rule_names_when_parsed_then_error_names_the_second() -> None:
    rules = [{"name": "x", "resolve": "1h"}, {"name": "x", "resolve": "2h"}]
    err = error_at(with_deadlines({"rules": rules}), f"{T}.tickets.deadlines.rules[1].name")
    assert "rules[0] has it too" in err.reason


# ---- SMS and publication ----------------------------------------------------------------------
def test_given_sms_templates_with_placeholders_when_parsed_then_kept() -> None:
    tenant = with_tickets()
    tenant["tickets"]["sms"] = {"forwarded": "Phản ánh {code} ({field}) hạn {deadline}"}
    p = policy(tenant)
    assert p.sms.forwarded == "Phản ánh {code} ({field}) hạn {deadline}"
    assert p.sms.resolved == RESOLVED_TEXT


@pytest.mark.parametrize(("text", "words"), [
    ("Phản ánh {ma}", "unknown placeholder {ma}"),
    ("Phản ánh {code!r}", "unknown placeholder {code}"),
    ("Phản ánh {code:>10}", "unknown placeholder {code}"),
    ("Phản ánh {}", "unknown placeholder {}"),
    ("Phản ánh {code", "well-formed"),
    ("Phản ánh code}", "well-formed"),
])
def test_given_bad_template_when_parsed_then_error_names_template(text: str, words: str) -> None:
    tenant = with_tickets()
    tenant["tickets"]["sms"] = {"reminder": text}
    assert words in error_at(tenant, f"{T}.tickets.sms.reminder").reason


def test_given_literal_braces_doubled_when_parsed_then_accepted() -> None:
    tenant = with_tickets()
    tenant["tickets"]["sms"] = {"resolved": "Xong {{ {code} }}"}
    assert policy(tenant).sms.resolved == "Xong {{ {code} }}"


def test_given_public_by_default_not_boolean_when_parsed_then_error() -> None:
    tenant = with_tickets()
    tenant["tickets"]["public_by_default"] = "yes"
    assert error_at(tenant, f"{T}.tickets.public_by_default").reason == "expected true or false"


def test_given_one_bad_unit_and_commune_when_parsed_then_no_knock_on_reference_errors() -> None:
    tenant = with_tickets()
    tenant["units"][1]["focal_persons"][0]["phone"] = "123"  # so_y_te, named by a rule
    tenant["places"][0]["communes"][0]["name"] = ""  # long_thanh.an_phuoc
    tenant["tickets"]["routing"].append({"place": "long_thanh.an_phuoc", "unit": "so_y_te"})
    assert sorted(e.key for e in errors(tenant)) == [
        f"{T}.places[0].communes[0].name", f"{T}.units[1].focal_persons[0].phone"]


# ---- collecting -------------------------------------------------------------------------------
def test_given_several_ticket_errors_when_parsed_then_all_are_collected() -> None:
    tenant = with_tickets()
    tenant["units"][0]["focal_persons"][0]["phone"] = "123"
    tenant["tickets"]["routing"].append({"field": "health", "place": "x", "unit": "y"})
    tenant["tickets"]["deadlines"] = {"resolve": "soon"}
    keys = {e.key for e in errors(tenant)}
    assert {f"{T}.units[0].focal_persons[0].phone", f"{T}.tickets.routing[1].place",
            f"{T}.tickets.routing[1].unit", f"{T}.tickets.deadlines.resolve"} <= keys
    err = errors(tenant)[0]
    assert str(err).startswith(f"{SOURCE}: ") and "more error" in str(err)
