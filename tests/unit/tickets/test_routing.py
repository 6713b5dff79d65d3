"""Routing a ticket to a level-2 unit: the most specific rule wins, then the fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config.file import load_config
from callcenter.tickets.config import (
    Commune,
    District,
    FocalPerson,
    Level2Unit,
    RoutingRule,
    TicketError,
    TicketPolicy,
    policy_of,
)
from callcenter.tickets.routing import SPECIFICITY, explain_route, resolve_place, route

SHIPPED = Path(__file__).resolve().parents[3] / "config" / "hotline.yaml"
UNIT_IDS = ("u_field_commune", "u_field_district", "u_field", "u_commune", "u_district", "fb",
            "other")
DISTRICTS = (
    District("a", "Huyện A", (Commune("a.1", "Xã A1", "a"), Commune("a.2", "Xã A2", "a"))),
    District("b", "Huyện B", (Commune("b.1", "Xã B1", "b"),)),
)
ALL_RULES = (
    RoutingRule("u_district", None, "a"),
    RoutingRule("u_commune", None, "a.1"),
    RoutingRule("u_field", "health", None),
    RoutingRule("u_field_district", "health", "a"),
    RoutingRule("u_field_commune", "health", "a.1"),
)


def make(rules: tuple[RoutingRule, ...] = ALL_RULES, fallback: str | None = "fb") -> TicketPolicy:
    units = tuple(Level2Unit(u, u, "department", (FocalPerson("X", "0912345678"),))
                  for u in UNIT_IDS)
    return TicketPolicy(units=units, districts=DISTRICTS, routing=rules, fallback_unit=fallback)


# ---- the order --------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "place", "unit", "level"), [
    ("health", "a.1", "u_field_commune", "field+commune"),
    ("health", "a.2", "u_field_district", "field+district"),  # commune inherits its district
    ("health", "a", "u_field_district", "field+district"),
    ("health", "b.1", "u_field", "field"),
    ("health", None, "u_field", "field"),
    ("transport", "a.1", "u_commune", "commune"),
    ("transport", "a.2", "u_district", "district"),
    ("transport", "a", "u_district", "district"),
    ("transport", "b.1", "fb", "fallback"),
    ("transport", None, "fb", "fallback"),
])
def test_given_all_levels_of_rules_when_routed_then_most_specific_wins(
        field: str, place: str | None, unit: str, level: str) -> None:
    r = explain_route(make(), field, place)
    assert (r.unit, r.level) == (unit, level)
    assert route(make(), field, place) == unit


@pytest.mark.parametrize("drop", range(len(ALL_RULES)))
def test_given_the_best_rule_removed_when_routed_then_the_next_level_decides(drop: int) -> None:
    rules = tuple(r for i, r in enumerate(ALL_RULES) if i != drop)
    got = explain_route(make(rules), "health", "a.1")
    expected = next((r for r in reversed(rules)
                     if r.field in (None, "health") and r.place in (None, "a", "a.1")), None)
    assert expected is not None and got.rule == expected


def test_given_field_rule_and_place_rule_when_routed_then_field_beats_place() -> None:
    rules = (RoutingRule("u_commune", None, "a.1"), RoutingRule("u_field", "health", None))
    assert route(make(rules), "health", "a.1") == "u_field"


def test_given_no_rule_matches_and_no_fallback_when_routed_then_none() -> None:
    r = explain_route(make((), fallback=None), "health", "a")
    assert r.unit is None and r.level == "none" and r.describe() == "no unit"


def test_given_fallback_when_described_then_says_fallback() -> None:
    assert explain_route(make(()), "health", "a").describe() == "fallback unit"
    assert explain_route(make(), "health", "a.1").describe() == \
        "field+commune rule field health + place a.1 -> u_field_commune"


def test_given_unknown_place_when_routed_then_ticket_error() -> None:
    with pytest.raises(TicketError) as info:
        route(make(), "health", "c")
    assert info.value.id == "ticket.unknown_place"


def test_given_unknown_field_when_routed_then_ticket_error() -> None:
    with pytest.raises(TicketError) as info:
        route(make(), "helth", "a")
    assert info.value.id == "ticket.unknown_field"


def test_given_place_ids_when_resolved_then_district_and_commune() -> None:
    d, c = resolve_place(make(), "a.2")
    assert d is not None and d.id == "a" and c is not None and c.id == "a.2"
    assert resolve_place(make(), "b") == (DISTRICTS[1], None)
    assert resolve_place(make(), None) == (None, None)


def test_given_specificity_when_listed_then_order_is_documented_one() -> None:
    assert SPECIFICITY == ("field+commune", "field+district", "field", "commune", "district",
                           "fallback")


# ---- the shipped Đồng Nai rules ---------------------------------------------------------------
@pytest.mark.parametrize(("field", "place", "unit"), [
    ("health", "long_thanh.an_phuoc", "phong_y_te_long_thanh"),  # Long Thành's Phòng Y tế
    ("health", "bien_hoa.tan_phong", "so_y_te"),
    ("social_security", "long_thanh", "phong_ldtbxh_long_thanh"),
    ("social_security", "nhon_trach.phu_hoi", "so_ldtbxh"),
    ("admin_procedures", "long_thanh.an_phuoc", "ubnd_long_thanh"),
    ("other", "bien_hoa", "ubnd_bien_hoa"),
    ("other", "vinh_cuu", "ubnd_vinh_cuu"),  # every district's People's Committee is a unit
    ("essential_goods", "long_thanh.an_phuoc", "phong_kinh_te_long_thanh"),  # 9567 item 5
    ("essential_goods", "bien_hoa", "so_cong_thuong"),
    ("civil_servant_conduct", "cam_my", "so_noi_vu"),
    ("other", None, "vp_ubnd_tinh"),
])
def test_given_dong_nai_config_when_routed_then_seeds_units(
        field: str, place: str | None, unit: str) -> None:
    p = policy_of(load_config(str(SHIPPED)).tenants[0])
    assert route(p, field, place) == unit


# ---- properties -------------------------------------------------------------------------------
FIELDS = ("health", "transport")
PLACES = (None, "a", "a.1", "a.2", "b", "b.1")
rule_st = st.builds(RoutingRule, st.sampled_from(UNIT_IDS[:-1]), st.sampled_from((None, *FIELDS)),
                    st.sampled_from(PLACES)).filter(lambda r: r.field or r.place)


def _matches(rule: RoutingRule, field: str, place: str | None) -> bool:
    here = {None} if place is None else {place, place.split(".")[0]}
    return rule.field in (None, field) and (rule.place is None or rule.place in here)


def _rank(rule: RoutingRule) -> int:
    commune = rule.place is not None and "." in rule.place
    if rule.field:
        return 2 if rule.place is None else (0 if commune else 1)
    return 3 if commune else 4


@given(rules=st.lists(rule_st, max_size=8, unique_by=lambda r: (r.field, r.place)),
       field=st.sampled_from(FIELDS), place=st.sampled_from(PLACES))
def test_given_any_rules_when_routed_then_result_matches_and_none_is_more_specific(
        rules: list[RoutingRule], field: str, place: str | None) -> None:
    r = explain_route(make(tuple(rules)), field, place)
    matching = [x for x in rules if _matches(x, field, place)]
    if not matching:
        assert r.rule is None and r.unit == "fb"
        return
    assert r.rule is not None and _matches(r.rule, field, place)
    assert _rank(r.rule) == min(_rank(x) for x in matching)
    assert SPECIFICITY.index(r.level) == _rank(r.rule)


@given(rules=st.lists(rule_st, max_size=6, unique_by=lambda r: (r.field, r.place)),
       extra=rule_st, field=st.sampled_from(FIELDS), place=st.sampled_from(PLACES))
def test_given_a_rule_not_matching_when_added_then_route_unchanged(
        rules: list[RoutingRule], extra: RoutingRule, field: str, place: str | None) -> None:
    if _matches(extra, field, place) or any((x.field, x.place) == (extra.field, extra.place)
                                            for x in rules):
        return
    before = route(make(tuple(rules)), field, place)
    assert route(make((*rules, extra)), field, place) == before
