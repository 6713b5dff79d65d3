"""A tenant's web-form settings (the ``webform:`` key); pure parsing.

Schema (every key optional; left out, the defaults below)::

    webform:
      enabled: true               # /public/{tenant}/petition is served (false: 404)
      per_address_per_hour: 5     # petitions accepted from one client address per hour
      per_phone_per_day: 3        # petitions accepted for one mobile number per 24 hours
      min_fill_seconds: 5         # a form sent back sooner than this is a robot's

The counts are sliding windows (the last hour, the last 24 hours), not calendar ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from callcenter.config.base import BaseParser, join_key

WEBFORM_KEYS: Final = ("webform",)
MAX_PER_ADDRESS: Final = 1000
MAX_PER_PHONE: Final = 100
MAX_FILL_SECONDS: Final = 600


@dataclass(frozen=True)
class WebFormPolicy:
    """A tenant's public petition form: on or off, rate limits, the least time to fill it."""

    enabled: bool = True
    per_address_per_hour: int = 5
    per_phone_per_day: int = 3
    min_fill_seconds: int = 5


DEFAULT_WEBFORM: Final = WebFormPolicy()


def parse_webform_section(p: BaseParser, m: Mapping[str, object],
                          key: str) -> WebFormPolicy | None:
    """Validate the tenant's ``webform`` key; errors go to ``p`` (None when invalid)."""
    raw = m.get("webform")
    if raw is None:
        return DEFAULT_WEBFORM
    wk = join_key(key, "webform")
    section = p.mapping(raw, wk, ("enabled", "per_address_per_hour", "per_phone_per_day",
                                  "min_fill_seconds"))
    if section is None:
        return None
    d = DEFAULT_WEBFORM
    enabled: bool | None = d.enabled
    if section.get("enabled") is not None:
        enabled = p.boolean(section["enabled"], join_key(wk, "enabled"))

    def number(name: str, default: int, low: int, high: int) -> int | None:
        if section.get(name) is None:
            return default
        return p.integer(section[name], join_key(wk, name), low, high)

    per_address = number("per_address_per_hour", d.per_address_per_hour, 1, MAX_PER_ADDRESS)
    per_phone = number("per_phone_per_day", d.per_phone_per_day, 1, MAX_PER_PHONE)
    min_fill = number("min_fill_seconds", d.min_fill_seconds, 0, MAX_FILL_SECONDS)
    if enabled is None or per_address is None or per_phone is None or min_fill is None:
        return None
    return WebFormPolicy(enabled=enabled, per_address_per_hour=per_address,
                         per_phone_per_day=per_phone, min_fill_seconds=min_fill)
