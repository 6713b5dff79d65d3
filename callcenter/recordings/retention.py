"""How long call recordings are kept, per tenant: the config key and the rules; pure.

Config (a tenant's key, validated like every other key)::

    recordings:
      keep_days: 365        # 1..36500 days after the call ended, or "forever"

Decisions:

* Absent (no ``recordings`` key, or no ``keep_days``): ``DEFAULT_KEEP_DAYS`` (365). Citizens'
  voices are personal data; an unset limit must not mean "kept for ever".
* ``keep_days: forever`` keeps them without limit. ``0`` is refused rather than read as
  "forever" or "delete at once": either reading would surprise someone.
* Age is counted from the call's end (its arrival when the end is unknown) in elapsed time,
  ``keep_days * 24 h`` on the instant (UTC), not in local calendar days. A recording exactly
  ``keep_days`` old is due: it has been kept the whole period.
* Records of a tenant no longer in the config, and files no record names, are kept as long
  as the longest limit in force (and never deleted for the latter: they are only reported).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from callcenter.config.base import BaseParser, join_key, type_name

RETENTION_KEYS: tuple[str, ...] = ("recordings",)
DEFAULT_KEEP_DAYS = 365
MAX_KEEP_DAYS = 36500  # a hundred years: anything more is a typo
FOREVER = "forever"


@dataclass(frozen=True)
class RecordingsPolicy:
    """A tenant's recording retention; ``keep_days`` None: kept without limit."""

    keep_days: int | None = DEFAULT_KEEP_DAYS


DEFAULT_RECORDINGS = RecordingsPolicy()


def parse_recordings_section(p: BaseParser, m: Mapping[str, object],
                             key: str) -> RecordingsPolicy | None:
    """Validate the tenant's ``recordings`` key; errors go to ``p`` (None when invalid)."""
    raw = m.get("recordings")
    if raw is None:
        return DEFAULT_RECORDINGS
    rk = join_key(key, "recordings")
    section = p.mapping(raw, rk, ("keep_days",))
    if section is None:
        return None
    if "keep_days" not in section:
        return DEFAULT_RECORDINGS
    value = section["keep_days"]
    vk = join_key(rk, "keep_days")
    expected = f"expected a number of days 1..{MAX_KEEP_DAYS}, or {FOREVER!r} to keep them " \
               f"without limit"
    if value == FOREVER:
        return RecordingsPolicy(keep_days=None)
    if isinstance(value, bool) or not isinstance(value, int):
        p.error(vk, value, f"{expected}; got {type_name(value)}")
        return None
    if not 1 <= value <= MAX_KEEP_DAYS:
        p.error(vk, value, expected)
        return None
    return RecordingsPolicy(keep_days=value)


def _aware(name: str, value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: expected an aware datetime, got naive {value!r}")
    return value


def is_due(ended_at: dt.datetime, keep_days: int | None, now: dt.datetime) -> bool:
    """True when a recording of a call that ended at ``ended_at`` must be deleted at ``now``."""
    if keep_days is None:
        return False
    return _aware("now", now) - _aware("ended_at", ended_at) >= dt.timedelta(days=keep_days)


def cutoff(keep_days: int, now: dt.datetime) -> dt.datetime:
    """Calls that ended at or before this instant are due (what a database query asks for)."""
    return _aware("now", now).astimezone(dt.UTC) - dt.timedelta(days=keep_days)


def longest_keep_days(policies: Iterable[RecordingsPolicy]) -> int | None:
    """The longest limit in force (None when any tenant keeps without limit, or no tenant)."""
    days: list[int] = []
    for policy in policies:
        if policy.keep_days is None:
            return None
        days.append(policy.keep_days)
    return max(days) if days else None


def keep_days_for(tenant: str, policies: Mapping[str, RecordingsPolicy]) -> int | None:
    """The tenant's limit; a tenant no longer configured gets the longest limit in force."""
    policy = policies.get(tenant)
    if policy is not None:
        return policy.keep_days
    return longest_keep_days(policies.values())


@dataclass(frozen=True)
class Recorded:
    """A call record that still names a recording file."""

    call_id: str
    tenant: str
    recording: str  # relative to the recordings folder
    ended_at: dt.datetime  # the call's end (its arrival when the end is unknown)


def due_recordings(records: Iterable[Recorded], policies: Mapping[str, RecordingsPolicy],
                   now: dt.datetime) -> list[tuple[Recorded, int]]:
    """The records whose recording must go now, each with the limit that applied."""
    out: list[tuple[Recorded, int]] = []
    for r in records:
        days = keep_days_for(r.tenant, policies)
        if days is not None and is_due(r.ended_at, days, now):
            out.append((r, days))
    return out


def unnamed_old_files(files: Mapping[str, dt.datetime], named: Iterable[str],
                      policies: Mapping[str, RecordingsPolicy],
                      now: dt.datetime) -> list[str]:
    """Files (name -> modification time) no record names and older than the longest limit."""
    longest = longest_keep_days(policies.values())
    if longest is None:
        return []
    known = set(named)
    return sorted(name for name, mtime in files.items()
                  if name not in known and is_due(mtime, longest, now))
