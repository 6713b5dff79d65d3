"""Parsing a tenant's ticket sections (units, places, routing, deadlines, SMS texts); pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callcenter.domain.config_base import BaseParser

if TYPE_CHECKING:
    from callcenter.domain.model import Field

# Tenant keys this module parses (config.py passes them on untouched).
TICKET_KEYS: tuple[str, ...] = ("units", "places", "tickets")


@dataclass(frozen=True)
class TicketSections:
    """What a tenant's ticket sections hold (filled in by the tickets work)."""


def parse_ticket_sections(p: BaseParser, m: Mapping[str, object], key: str,
                          fields: tuple[Field, ...]) -> TicketSections | None:
    """Validate the tenant's ticket keys found in ``m``; errors go to ``p``."""
    for k in TICKET_KEYS:
        if k in m:
            p.error(f"{key}.{k}", m[k], "ticket settings are not supported yet")
            return None
    return TicketSections()
