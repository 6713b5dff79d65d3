"""Which level-2 unit a ticket goes to, by field and place; pure.

The most specific matching rule wins (ticket_config's docstring gives the reasons):

1. field + commune   2. field + district   3. field only
4. commune only      5. district only      6. the tenant's fallback unit

A rule naming a district also matches tickets in any of its communes. The result is a
suggestion: the operator may forward elsewhere (``Forward(unit=...)``), and the state machine
records in the audit entry whether the ticket went where the rules said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from callcenter.tickets.config import (
    Commune,
    District,
    RoutingRule,
    TicketError,
    TicketPolicy,
)

Level = Literal["field+commune", "field+district", "field", "commune", "district", "fallback",
                "none"]
SPECIFICITY: tuple[Level, ...] = ("field+commune", "field+district", "field", "commune",
                                  "district", "fallback")


@dataclass(frozen=True)
class Route:
    """Where the rules send a ticket and why."""

    unit: str | None  # None: the tenant has no units (tickets stay at level 1)
    level: Level
    rule: RoutingRule | None = None  # None for the fallback

    def describe(self) -> str:
        """The reason, for operators and audit details."""
        if self.rule is not None:
            return f"{self.level} rule {self.rule.describe()}"
        return "fallback unit" if self.unit is not None else "no unit"


def resolve_place(policy: TicketPolicy,
                  place: str | None) -> tuple[District | None, Commune | None]:
    """The district and commune a place id names; TicketError ``ticket.unknown_place``."""
    if place is None:
        return None, None
    found = policy.place(place)
    if found is None:
        raise TicketError("ticket.unknown_place", f"unknown place {place!r}: expected a "
                                                  "district or commune id of the tenant")
    return found


def _level(rule: RoutingRule, policy: TicketPolicy) -> Level:
    found = policy.place(rule.place) if rule.place is not None else None
    on_commune = found is not None and found[1] is not None
    if rule.field is not None:
        if rule.place is None:
            return "field"
        return "field+commune" if on_commune else "field+district"
    return "commune" if on_commune else "district"


def explain_route(policy: TicketPolicy, field: str, place: str | None) -> Route:
    """The unit the rules give for a field and place (any district or commune id, or None)."""
    if policy.field_name(field) is None:
        raise TicketError("ticket.unknown_field", f"unknown field {field!r}: expected one of "
                                                  f"{', '.join(f.id for f in policy.fields)}")
    district, commune = resolve_place(policy, place)
    here = {p.id for p in (district, commune) if p is not None}
    best: tuple[int, RoutingRule, Level] | None = None
    for rule in policy.routing:
        if rule.field is not None and rule.field != field:
            continue
        if rule.place is not None and rule.place not in here:
            continue
        level = _level(rule, policy)
        rank = SPECIFICITY.index(level)
        if best is None or rank < best[0]:  # ties (only in hand-built policies): first wins
            best = (rank, rule, level)
    if best is not None:
        return Route(best[1].unit, best[2], best[1])
    if policy.fallback_unit is not None:
        return Route(policy.fallback_unit, "fallback")
    return Route(None, "none")


def route(policy: TicketPolicy, field: str, place: str | None) -> str | None:
    """The id of the unit the rules give (None only if the tenant has no units)."""
    return explain_route(policy, field, place).unit
