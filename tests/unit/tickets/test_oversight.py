"""Oversight (issue 17, item 3): units' ``oversees`` parsed and checked, and who may read what.

"Sở Y tế … theo dõi phản ánh … và hỗ trợ các địa phương"; "Văn phòng … theo dõi tình hình xử lý
… trên địa bàn": a lead department reads its whole field, a district office its district,
wherever the ticket is held, level-1 answers included; reading is all it may do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from callcenter.config.base import ConfigError
from callcenter.config.file import load_config
from callcenter.config.parse import parse_config
from callcenter.tickets import rules as tk
from callcenter.tickets.config import Oversight, TicketPolicy, policy_of
from tests.unit.tickets.test_config import SHIPPED, SOURCE, T, policy, with_tickets

T0 = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)
OP = tk.Actor("op1", "operator")
SUP = tk.Actor("sup1", "supervisor")


def errors(tenant: dict[str, Any]) -> list[ConfigError]:
    with pytest.raises(ConfigError) as info:
        parse_config({"tenants": [tenant]}, SOURCE)
    return info.value.errors


def error_at(tenant: dict[str, Any], key: str) -> ConfigError:
    found = [e for e in errors(tenant) if e.key == key]
    assert found, [e.line_text() for e in errors(tenant)]
    return found[0]


def overseeing() -> dict[str, Any]:
    """The test tenant: Sở Y tế oversees the health group, UBND Long Thành its district."""
    tenant = with_tickets()
    tenant["units"][1]["oversees"] = {"groups": ["health"]}
    tenant["units"][2]["oversees"] = {"places": ["long_thanh"]}
    return tenant


# ---- config -----------------------------------------------------------------------------------
def test_given_oversees_when_parsed_then_groups_become_their_fields_and_places_kept() -> None:
    p = policy(overseeing())
    yt, lt, vp = p.unit("so_y_te"), p.unit("ubnd_lt"), p.unit("vp")
    assert yt is not None and lt is not None and vp is not None
    assert yt.oversees == Oversight(fields=("health", "prices_fraud", "suspected_infection"),
                                    groups=("health",))
    assert lt.oversees == Oversight(places=("long_thanh",))
    assert vp.oversees is None


def test_given_fields_and_a_group_overlapping_when_parsed_then_each_field_once() -> None:
    tenant = overseeing()
    tenant["units"][1]["oversees"] = {"fields": ["health", "transport"], "groups": ["health"]}
    yt = policy(tenant).unit("so_y_te")
    assert yt is not None and yt.oversees is not None
    assert yt.oversees.fields == ("health", "transport", "prices_fraud", "suspected_infection")


@pytest.mark.parametrize(("oversees", "key", "says"), [
    ({"fields": ["health", "helth"]}, "units[1].oversees.fields[1]",
     "unit 'so_y_te' oversees an unknown field; did you mean 'health'?"),
    ({"places": ["nhon_trach"]}, "units[1].oversees.places[0]",
     "unit 'so_y_te' oversees an unknown place"),
    ({"groups": ["education"]}, "units[1].oversees.groups[0]",
     "unit 'so_y_te' oversees an unknown group"),
    ({"fields": ["health", "health"]}, "units[1].oversees.fields[1]", "expected each id once"),
    ({}, "units[1].oversees", "expected fields, groups and/or places"),
    ({"fields": []}, "units[1].oversees", "expected fields, groups and/or places"),
    ({"field": ["health"]}, "units[1].oversees", "field"),
    (["health"], "units[1].oversees", "mapping"),
])
def test_given_bad_oversees_when_parsed_then_error_names_the_key(
        oversees: object, key: str, says: str) -> None:
    tenant = with_tickets()
    tenant["units"][1]["oversees"] = oversees
    err = error_at(tenant, f"{T}.{key}")
    assert says in str(err)


def test_given_a_commune_when_overseen_then_accepted() -> None:
    tenant = with_tickets()
    tenant["units"][0]["oversees"] = {"places": ["long_thanh.an_phuoc"]}
    vp = policy(tenant).unit("vp")
    assert vp is not None and vp.oversees == Oversight(places=("long_thanh.an_phuoc",))


def test_given_shipped_config_then_departments_oversee_fields_and_districts_places() -> None:
    p = policy_of(load_config(SHIPPED).tenants[0])
    health = {f.id for f in p.fields if f.group == "health"}
    yt = p.unit("so_y_te")
    assert yt is not None and yt.oversees is not None
    assert set(yt.oversees.fields) == health and "prices_fraud" in health
    # Every unit routed a whole field oversees it; every district unit its district.
    for rule in p.routing:
        unit = p.unit(rule.unit)
        assert unit is not None
        if rule.field is not None and rule.place is None:
            assert unit.oversees is not None and rule.field in unit.oversees.fields, rule
    for unit in p.units:
        if unit.kind == "district":
            assert unit.oversees is not None and set(unit.oversees.places) == set(unit.places)


# ---- the rule ---------------------------------------------------------------------------------
def _policy() -> TicketPolicy:
    return policy(overseeing())


def ticket(field: str = "health", place: str | None = None, unit: str | None = None,
           state: tk.TicketState = tk.S.NEW) -> tk.Ticket:
    district = place.split(".")[0] if place else None
    commune = place if place and "." in place else None
    return tk.Ticket(code="DN-20261123-0001", tenant="dongnai", channel="phone",
                     content="Trạm y tế xã đóng cửa", field=field, received_at=T0, state=state,
                     district=district, commune=commune, unit=unit)


YT = tk.Actor("yt1", "unit", "so_y_te")
LT = tk.Actor("lt1", "unit", "ubnd_lt")
VP = tk.Actor("vp1", "unit", "vp")


@pytest.mark.parametrize(("actor", "t", "held", "expected"), [
    # a lead department: every ticket of its fields, wherever held, answered at level 1 too
    (YT, ticket("health", unit="ubnd_lt", state=tk.S.FORWARDED), False, "overseer"),
    (YT, ticket("suspected_infection", state=tk.S.ANSWERED), False, "overseer"),
    (YT, ticket("prices_fraud", "bien_hoa", "vp", tk.S.IN_PROGRESS), False, "overseer"),
    (YT, ticket("transport", "long_thanh", "ubnd_lt", tk.S.FORWARDED), False, None),
    # a district office: every ticket of its district and of its communes, any field
    (LT, ticket("transport", "long_thanh", "vp", tk.S.FORWARDED), False, "overseer"),
    (LT, ticket("health", "long_thanh.an_phuoc", "so_y_te", tk.S.RESOLVED), False, "overseer"),
    (LT, ticket("other", "long_thanh", state=tk.S.ANSWERED), False, "overseer"),
    (LT, ticket("health", "bien_hoa", "so_y_te", tk.S.FORWARDED), False, None),
    (LT, ticket("health", None, "so_y_te", tk.S.FORWARDED), False, None),
    # holding comes first; having held still reads; no oversight: nothing else
    (LT, ticket("transport", "long_thanh", "ubnd_lt", tk.S.FORWARDED), False, "holder"),
    (VP, ticket("health", "bien_hoa", "so_y_te", tk.S.FORWARDED), True, "held"),
    (VP, ticket("health", "bien_hoa", "so_y_te", tk.S.FORWARDED), False, None),
    (tk.Actor("x", "unit", None), ticket(), False, None),
    (tk.Actor("x", "unit", "nonexistent"), ticket(), False, None),
    (OP, ticket(), False, "all"),
    (SUP, ticket(), False, "all"),
])
def test_given_actor_and_ticket_when_read_access_then_expected(
        actor: tk.Actor, t: tk.Ticket, held: bool, expected: str | None) -> None:
    assert tk.read_access(_policy(), actor, t, held=held) == expected


# A call about the ticket transferred to the unit (TransferCall): read only, in every state,
# after holding and having held, before oversight; never for a user without a unit.
TRANSFER_CASES = [
    (actor, t, held, transferred, expected)
    for state in tk.S
    for actor, t, held, transferred, expected in [
        (VP, ticket("health", "bien_hoa", None, state), False, True, "transferred"),
        (VP, ticket("health", "bien_hoa", "so_y_te", state), False, True, "transferred"),
        (VP, ticket("health", "bien_hoa", "so_y_te", state), True, True, "held"),
        (VP, ticket("health", "bien_hoa", "vp", state), False, True, "holder"),
        (VP, ticket("health", "bien_hoa", "so_y_te", state), False, False, None),
        (LT, ticket("transport", "long_thanh", "vp", state), False, True, "transferred"),
        (YT, ticket("transport", "bien_hoa", None, state), False, True, "transferred"),
        (YT, ticket("transport", "bien_hoa", None, state), False, False, None),
        (tk.Actor("x", "unit", None), ticket(state=state), False, True, None),
        (OP, ticket(state=state), False, True, "all"),
        (SUP, ticket(state=state), False, False, "all"),
    ]]


@pytest.mark.parametrize(("actor", "t", "held", "transferred", "expected"), TRANSFER_CASES)
def test_given_call_transferred_when_read_access_then_read_only_grant(
        actor: tk.Actor, t: tk.Ticket, held: bool, transferred: bool,
        expected: str | None) -> None:
    assert tk.read_access(_policy(), actor, t, held=held,
                          transferred=transferred) == expected


@pytest.mark.parametrize("kind", sorted(tk.TRANSITIONS, key=lambda k: k.__name__),
                         ids=lambda k: k.__name__)
def test_given_unit_a_call_was_transferred_to_when_any_event_then_forbidden(
        kind: type[tk.Event]) -> None:
    # VP took a call about a ticket at level 1 or with another unit: it may not act on it.
    makers: dict[type[tk.Event], tk.Event] = {
        tk.Answer: tk.Answer(T0, VP, "Trả lời"), tk.Forward: tk.Forward(T0, VP, "vp"),
        tk.Accept: tk.Accept(T0, VP), tk.Resolve: tk.Resolve(T0, VP, "Đã xử lý"),
        tk.Return: tk.Return(T0, VP, "Không thuộc thẩm quyền"),
        tk.Close: tk.Close(T0, VP, "trùng"), tk.Reopen: tk.Reopen(T0, VP, "chưa thỏa đáng"),
        tk.Reclassify: tk.Reclassify(T0, VP, "health", None, True),
        tk.SetPublishable: tk.SetPublishable(T0, VP, True),
        tk.Publish: tk.Publish(T0, VP), tk.Decline: tk.Decline(T0, VP, "riêng tư"),
        tk.Remind: tk.Remind(T0, VP), tk.Chase: tk.Chase(T0, VP),
        tk.LinkCall: tk.LinkCall(T0, VP, "pbx1:1.5"), tk.Satisfied: tk.Satisfied(T0, VP),
        tk.TransferCall: tk.TransferCall(T0, VP, "vp", "pbx1:1.5"),
    }
    assert set(makers) == set(tk.TRANSITIONS)
    for state in tk.TRANSITIONS[kind][0]:
        holder = "so_y_te" if state in tk.AT_UNIT else None
        t = ticket("health", "bien_hoa", holder, state)
        if kind is tk.Chase:
            t = dataclasses.replace(t, resolve_due=T0 - dt.timedelta(hours=1))
        if kind in (tk.Publish, tk.Decline):
            t = dataclasses.replace(t, result="Kết quả")
        assert tk.read_access(_policy(), VP, t, held=False, transferred=True) == "transferred"
        with pytest.raises(tk.TicketError) as info:
            tk.apply(t, makers[kind], _policy())
        assert info.value.id == "ticket.forbidden", (kind, state)


def test_given_a_commune_overseen_when_scoped_then_only_that_commune() -> None:
    tenant = overseeing()
    tenant["units"][0]["oversees"] = {"places": ["long_thanh.an_phuoc"]}
    p = policy(tenant)
    scope = tk.oversight_scope(p, "vp")
    assert scope == tk.OversightScope(communes=frozenset({"long_thanh.an_phuoc"}))
    assert scope.covers(ticket("other", "long_thanh.an_phuoc"))
    assert not scope.covers(ticket("other", "long_thanh"))
    assert tk.read_access(p, VP, ticket("other", "long_thanh"), held=False) is None


def test_given_unit_without_oversight_when_scoped_then_empty_and_false() -> None:
    assert not tk.oversight_scope(_policy(), "vp")
    assert not tk.oversight_scope(_policy(), None)
    assert tk.oversight_scope(_policy(), "ubnd_lt") == tk.OversightScope(
        districts=frozenset({"long_thanh"}))


@pytest.mark.parametrize("event", [
    tk.Accept(T0, YT), tk.Resolve(T0, YT, "Đã xử lý"), tk.Return(T0, YT, "Không thuộc thẩm quyền"),
    tk.Forward(T0, YT, "vp"), tk.Close(T0, YT, "trùng"), tk.Reopen(T0, YT, "chưa thỏa đáng"),
    tk.Reclassify(T0, YT, "health", None, True), tk.SetPublishable(T0, YT, True),
    tk.Remind(T0, YT), tk.LinkCall(T0, YT, "pbx1:1.5"),
])
def test_given_overseer_when_any_event_on_a_ticket_it_does_not_hold_then_forbidden(
        event: tk.Event) -> None:
    # The state machine itself refuses an overseer (the service refuses before it, too).
    states = [s for s in tk.S if s in tk.TRANSITIONS[type(event)][0]]
    t = ticket("health", "long_thanh", "ubnd_lt", states[0])
    if states[0] in tk.LEVEL1 | {tk.S.ANSWERED}:
        t = ticket("health", "long_thanh", None, states[0])
    assert tk.read_access(_policy(), YT, t, held=False) == "overseer"
    with pytest.raises(tk.TicketError) as info:
        tk.apply(t, event, _policy())
    assert info.value.id == "ticket.forbidden"
