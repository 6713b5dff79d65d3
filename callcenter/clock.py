"""The adapters' clocks. Pure rules never read them: time is passed in.

``utcnow``: the wall clock (aware, UTC), for what people read: shifts, records, deadlines.
``steady_now``: a datetime that moves with the monotonic clock, for windows and timeouts a
pure rule computes from datetimes (the SIP guard's bans): a step of the wall clock (NTP, an
administrator) neither ends them early nor makes them last. Never shown or stored: its date
is meaningless. Timers themselves use the event loop (monotonic) directly.
"""

from __future__ import annotations

import datetime as dt
import time

_STEADY_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    """Now, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def steady_now() -> dt.datetime:
    """The monotonic clock as an aware datetime (differences only, see the module's docs)."""
    return _STEADY_EPOCH + dt.timedelta(seconds=time.monotonic())
