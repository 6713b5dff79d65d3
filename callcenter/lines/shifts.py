"""Which shift (and so how many lines) applies at a moment, and which province a number reaches.

Pure: the moment is always passed in, never read from the clock.

The one rule for dates: the *local date* of the moment (in the tenant's time zone) decides
which set of shifts applies. If that date lies within a date override, the override's shifts
apply, otherwise the tenant's normal shifts. So a normal night shift 18:00-07:00 that starts on
the eve of an override (say Tết from 2027-02-05) ends at midnight: from 2027-02-05 00:00 local
the override's shifts decide, and on the day after the override's last day the normal shifts
are back from 00:00. Each set of shifts covers the whole 24 hours, so every moment maps to
exactly one shift.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from callcenter.config.model import DateOverride, HotlineConfig, Shift, Tenant
from callcenter.numbers import normalise_number


def _seconds(t: dt.time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def shift_contains(shift: Shift, local_time: dt.time) -> bool:
    """True if the local wall-clock time falls in the shift (start inclusive, end exclusive).

    ``end <= start`` means the shift crosses midnight; ``start == end`` is the whole day.
    """
    start, end = shift.start.replace(tzinfo=None), shift.end.replace(tzinfo=None)
    t = local_time.replace(tzinfo=None)
    if start == end:
        return True
    if start < end:
        return start <= t < end
    return t >= start or t < end


def override_for_date(tenant: Tenant, local_date: dt.date) -> DateOverride | None:
    """The date override covering ``local_date`` (both ends inclusive), if any."""
    for override in tenant.overrides:
        if override.start_date <= local_date <= override.end_date:
            return override
    return None


def shifts_for_date(tenant: Tenant, local_date: dt.date) -> tuple[Shift, ...]:
    """The set of shifts that applies on a local date: an override's, or the normal ones."""
    override = override_for_date(tenant, local_date)
    return override.shifts if override is not None else tenant.shifts


def local_time(tenant: Tenant, now: dt.datetime) -> dt.datetime:
    """``now`` (timezone-aware) as wall-clock time in the tenant's zone."""
    if now.tzinfo is None or now.tzinfo.utcoffset(now) is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    return now.astimezone(ZoneInfo(tenant.timezone))


def active_shift(tenant: Tenant, now: dt.datetime) -> tuple[Shift, DateOverride | None]:
    """The shift in force at ``now`` and the date override it comes from (None: normal shifts).

    ``now`` must be timezone-aware (ValueError otherwise); it is converted to the tenant's zone
    and the local date picks the shift set (see the module docstring for the eve-of-override
    rule). Raises LookupError if no shift contains the time, which a validated config rules out.
    """
    local = local_time(tenant, now)
    override = override_for_date(tenant, local.date())
    shifts = override.shifts if override is not None else tenant.shifts
    t = local.time()
    for shift in shifts:
        if shift_contains(shift, t):
            return shift, override
    where = f"override {override.name!r}" if override is not None else "normal shifts"
    raise LookupError(f"tenant {tenant.id!r}: no shift of the {where} contains {t.isoformat()}")


@dataclass(frozen=True)
class Staffing:
    """Operators logged in against the minimum of the shift in force (orders: "02 người/ca")."""

    shift: str
    logged_in: int
    minimum: int  # the shift's ``min_operators``; 0: no minimum

    @property
    def understaffed(self) -> bool:
        """Fewer operators logged in than the shift's minimum."""
        return self.logged_in < self.minimum


def staffing(tenant: Tenant, logged_in: int, now: dt.datetime) -> Staffing:
    """How the shift in force at ``now`` is staffed with ``logged_in`` operators logged in.

    Raises ValueError for a negative count or a naive ``now``, LookupError as ``active_shift``.
    """
    if logged_in < 0:
        raise ValueError(f"logged_in must be >= 0, got {logged_in}")
    shift, _ = active_shift(tenant, now)
    return Staffing(shift=shift.name, logged_in=logged_in, minimum=shift.min_operators)


def tenant_for_number(config: HotlineConfig, dialled: str) -> Tenant | None:
    """The tenant whose numbers include ``dialled`` (both sides normalised), or None."""
    wanted = normalise_number(dialled)
    if not wanted:
        return None
    for tenant in config.tenants:
        for number in tenant.numbers:
            if normalise_number(number) == wanted:
                return tenant
    return None
