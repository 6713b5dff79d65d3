"""The adapters' one wall clock: now, aware, in UTC. Pure rules never read it: time is passed in."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now, aware, in UTC."""
    return dt.datetime.now(dt.UTC)
