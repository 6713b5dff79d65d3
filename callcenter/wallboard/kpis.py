"""Today's call-centre figures for the wallboard, from finished call records: pure.

The day is the tenant's local calendar day containing ``now`` (midnight to midnight in its
time zone); a call belongs to the day it *arrived* on. Definitions (one place, so the
wallboard, reports and tests agree):

* ``offered``: calls the hotline took in (every arrival but those refused busy or to an
  unknown number); ``rejected_busy``: refused because the shift's line pool was full.
* ``queued``: offered calls that entered the operators' queue (``queued_at`` set).
* ``answered``: calls an operator took (``bridged_at`` set), the IVR's own answer does not
  count. ``abandoned``: queued calls that ended without an operator with outcome
  ``abandoned`` (the caller hung up while waiting; a hang-up in the menus is no abandon).
* ``service_level``: answered within ``SERVICE_LEVEL_S`` (20 s) of queueing / ``queued``;
  None without queued calls. Target ``SERVICE_LEVEL_TARGET`` (80 %).
* ``asa_s`` (average speed of answer): mean queue wait of the answered calls.
* ``aht_s`` (average handle time): mean talk + wrap-up of answered calls whose talk ended.
* ``hours``: per local hour, arrivals (busy included: the demand), busy refusals, the most
  lines held at once (finished calls, plus ``lines_in_use_now`` for the current hour) and
  the shift's line limit at the start of the hour, so a supervisor sees a pool too small.

Calls still in progress (``live``: read from the live call state, no record yet) count at
once: in ``offered`` and the hour's demand when they arrive, in ``queued`` when they queue, in
``answered`` and the ASA when an operator takes them. For the service level a live call counts
once it is decided: answered (within 20 s or not), or waiting longer than 20 s (it can no
longer be answered in target); one still waiting less is left out until then. Abandons and
handle times come from finished calls only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from callcenter.config.model import Tenant
from callcenter.lines.shifts import active_shift

SERVICE_LEVEL_S = 20
SERVICE_LEVEL_TARGET = 0.8
NOT_OFFERED = frozenset({"busy", "not_found"})


def refused_busy(r: CallLike) -> bool:
    """Turned away because every line was taken: the busy message, or the pool-full callback
    offer (answered, outside the pool: outcome ``busy``, or ``callback`` never queued)."""
    return r.outcome == "busy" or (r.outcome == "callback" and r.queued_at is None)
_HOUR = dt.timedelta(hours=1)
_INSTANT = dt.timedelta(microseconds=1)


class CallLike(Protocol):
    """What the figures read of a call record (``CallRecordData`` has it all)."""

    @property
    def outcome(self) -> str: ...
    @property
    def arrived_at(self) -> dt.datetime: ...
    @property
    def ended_at(self) -> dt.datetime | None: ...
    @property
    def queued_at(self) -> dt.datetime | None: ...
    @property
    def bridged_at(self) -> dt.datetime | None: ...
    @property
    def talk_ended_at(self) -> dt.datetime | None: ...
    @property
    def wrap_up_s(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class CallTimes:
    """What the figures read of one call: a finished one (its record: ``id`` and ``outcome``
    set) or one in progress (no outcome and no end yet)."""

    arrived_at: dt.datetime
    queued_at: dt.datetime | None = None
    bridged_at: dt.datetime | None = None
    outcome: str = ""
    ended_at: dt.datetime | None = None
    talk_ended_at: dt.datetime | None = None
    wrap_up_s: int | None = None
    id: str = ""  # the call record's id (finished calls)


@dataclass(frozen=True)
class HourFigures:
    """One local hour of the day: demand against the pool."""

    start: dt.datetime  # aware, UTC
    hour: int  # local wall-clock hour 0..23
    calls: int  # arrivals, busy refusals included
    busy: int
    peak_lines: int  # most calls holding a line at once during the hour
    limit: int | None  # the shift's lines at the start of the hour (None: no shift found)
    future: bool  # the hour has not begun yet


@dataclass(frozen=True)
class DayKpis:
    """Today's figures of one tenant (see the module docstring for the definitions)."""

    day: dt.date
    day_start: dt.datetime  # aware, UTC: local midnight
    offered: int
    queued: int
    answered: int
    abandoned: int
    answered_in_target: int
    rejected_busy: int
    service_level: float | None  # 0..1
    service_level_target: float
    asa_s: float | None
    aht_s: float | None
    hours: tuple[HourFigures, ...]

    @property
    def service_level_ok(self) -> bool | None:
        """True when the service level meets its target; None with no queued call."""
        if self.service_level is None:
            return None
        return self.service_level >= self.service_level_target


def _aware(value: dt.datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")


def local_day_bounds(timezone: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Local midnight before ``now`` and the next one, both aware in UTC."""
    _aware(now, "now")
    zone = ZoneInfo(timezone)
    day = now.astimezone(zone).date()
    start = dt.datetime.combine(day, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _hourly_peaks(intervals: Sequence[tuple[dt.datetime, dt.datetime]],
                  hours: Sequence[tuple[dt.datetime, dt.datetime]]) -> list[int]:
    """For each hour [start, end), the most intervals ([a, b)) open at one instant in it.

    One sweep over the day's sorted start/end points (not one per hour): a busy day has
    thousands of calls and the wallboard recomputes this on every update."""
    points: list[tuple[dt.datetime, int]] = []
    for a, b in intervals:
        b = max(b, a + _INSTANT)  # a call ended at once still held its line for an instant
        points += [(a, 1), (b, -1)]
    # At equal times ends come first: a line freed and retaken at once is one line.
    points.sort()
    peaks: list[int] = []
    i = cur = 0
    for h_start, h_end in hours:
        while i < len(points) and points[i][0] <= h_start:  # open at the hour's first instant
            cur += points[i][1]
            i += 1
        best = cur
        while i < len(points) and points[i][0] < h_end:
            cur += points[i][1]
            best = max(best, cur)
            i += 1
        peaks.append(best)
    return peaks


def _limit_at(tenant: Tenant, at: dt.datetime) -> int | None:
    try:
        return active_shift(tenant, at)[0].lines
    except LookupError:  # ruled out by a validated config
        return None


def _waited(call: CallLike) -> float | None:
    """Seconds from queueing to an operator, for a call that was answered after queueing."""
    if call.bridged_at is None or call.queued_at is None:
        return None
    return (call.bridged_at - call.queued_at).total_seconds()


def day_kpis(records: Iterable[CallLike], now: dt.datetime, tenant: Tenant, *,
             lines_in_use_now: int = 0, live: Iterable[CallLike] = ()) -> DayKpis:
    """Today's figures of ``tenant`` at ``now`` from its finished calls (``records``) and the
    calls in progress (``live``, none of them also in ``records``)."""
    _aware(now, "now")
    start, end = local_day_bounds(tenant.timezone, now)

    def of_today(calls: Iterable[CallLike]) -> list[CallLike]:
        return [r for r in calls if start <= r.arrived_at < end and r.arrived_at <= now]

    today, live_today = of_today(records), of_today(live)
    busy = [r for r in today if refused_busy(r)]
    offered = [r for r in today if r.outcome not in NOT_OFFERED and not refused_busy(r)]
    queued = [r for r in offered if r.queued_at is not None]
    answered = [r for r in offered if r.bridged_at is not None]
    abandoned = [r for r in queued if r.bridged_at is None and r.outcome == "abandoned"]
    live_queued = [r for r in live_today if r.queued_at is not None]
    live_answered = [r for r in live_queued if r.bridged_at is not None]
    # Waiting past the target: out of target whatever comes next (see the module docstring).
    live_missed = [r for r in live_queued if r.bridged_at is None and r.queued_at is not None
                   and (now - r.queued_at).total_seconds() > SERVICE_LEVEL_S]
    waits = [w for r in (*answered, *live_answered) if (w := _waited(r)) is not None]
    in_target = sum(1 for w in waits if w <= SERVICE_LEVEL_S)
    decided = len(queued) + len(live_answered) + len(live_missed)
    handles = [(r.talk_ended_at - r.bridged_at).total_seconds() + (r.wrap_up_s or 0)
               for r in answered if r.talk_ended_at is not None and r.bridged_at is not None]
    intervals = [(r.arrived_at, r.ended_at or r.arrived_at) for r in offered]
    intervals += [(r.arrived_at, now) for r in live_today]
    zone = ZoneInfo(tenant.timezone)
    bounds: list[tuple[dt.datetime, dt.datetime]] = []
    h = start
    while h < end:
        bounds.append((h, min(h + _HOUR, end)))
        h += _HOUR
    arrivals = [0] * len(bounds)
    refusals = [0] * len(bounds)
    for r in (*today, *live_today):  # whole hours from local midnight (zones keep minutes)
        k = min(int((r.arrived_at - start) / _HOUR), len(bounds) - 1)
        arrivals[k] += 1
        refusals[k] += refused_busy(r)
    peaks = _hourly_peaks(intervals, bounds)
    hours: list[HourFigures] = []
    for k, (h, h_end) in enumerate(bounds):
        peak = max(peaks[k], lines_in_use_now) if h <= now < h_end else peaks[k]
        hours.append(HourFigures(
            start=h, hour=h.astimezone(zone).hour, calls=arrivals[k], busy=refusals[k],
            peak_lines=peak, limit=_limit_at(tenant, h), future=h > now))
    return DayKpis(
        day=now.astimezone(zone).date(), day_start=start,
        offered=len(offered) + len(live_today), queued=len(queued) + len(live_queued),
        answered=len(answered) + len(live_answered), abandoned=len(abandoned),
        answered_in_target=in_target, rejected_busy=len(busy),
        service_level=in_target / decided if decided else None,
        service_level_target=SERVICE_LEVEL_TARGET, asa_s=_mean(waits), aht_s=_mean(handles),
        hours=tuple(hours))
