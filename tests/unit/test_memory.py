"""The app's memory below Python's objects (runtime/memory.py): holes that glibc keeps inside
its heap are given back by ``trim_heap``; the owned job does it on its interval."""

from __future__ import annotations

import asyncio
import logging

import pytest

from callcenter.runtime.memory import heap_trim_job, malloc_figures, rss_bytes, trim_heap


def _holes(count: int = 40_000, size: int = 2048) -> list[bytes]:
    """Freed blocks between live ones: what a long run of calls leaves in the heap."""
    blocks = [bytes(size) for _ in range(count)]
    return blocks[::16]  # every 16th stays alive, the rest become free space inside the heap


def test_given_freed_blocks_between_live_ones_when_trimmed_then_their_pages_leave_rss() -> None:
    kept = _holes()
    figures = malloc_figures()
    assert figures is not None and figures["free"] > 32 << 20  # ~70 MiB of holes, in the heap
    trim = trim_heap()
    assert trim is not None
    assert trim.released > 32 << 20
    assert trim.rss_after == pytest.approx(rss_bytes(), rel=0.05)
    assert len(kept) == 2500


async def test_given_job_running_then_heap_trimmed_each_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "callcenter.memory"):
        job = asyncio.create_task(heap_trim_job(interval_s=0.02))
        await asyncio.sleep(0.2)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    trims = [r for r in caplog.records if r.getMessage().startswith("heap trim: RSS")]
    assert len(trims) >= 3
