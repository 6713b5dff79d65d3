"""The app's memory below Python's objects: glibc's heap and SQLite's page caches.

A 30-minute soak (bench/soak.py) saw the app's RSS rise ~7 % while its Python objects stayed
flat. glibc's own account (``malloc_figures``, logged by SIGUSR2's report) showed where: the
bytes in use stayed flat and the bytes *free inside the heap* grew (freed by Python, kept by
malloc as holes between live blocks, so never given back by trimming the top alone). The app
therefore hands such pages back to the system itself every minute (``heap_trim_job``:
``malloc_trim(0)``, which since glibc 2.8 releases free pages anywhere in every arena); the
blocks stay where they are, only their unused pages leave RSS.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import time
from dataclasses import dataclass

log = logging.getLogger("callcenter.memory")

HEAP_TRIM_INTERVAL_S = 60.0
PAGE = os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc (musl), or a glibc older than 2.33
        return None
    return libc


def malloc_figures() -> dict[str, int] | None:
    """glibc's own account of the C heap (``mallinfo2``), or None off glibc: bytes taken from
    the system by malloc's arenas, in use, free inside them, and in large mmap'd blocks. RSS
    rising while Python's objects stay flat shows here as ``free`` (fragmentation) or ``in
    use`` (C buffers: hiredis, SQLite, OpenSSL)."""
    libc = _libc()
    if libc is None:
        return None
    m = libc.mallinfo2()
    return {"arenas": m.arena, "in use": m.uordblks, "free": m.fordblks, "mmap": m.hblkhd,
            "top releasable": m.keepcost}


def sqlite_memory() -> tuple[int, int] | None:
    """Bytes SQLite holds now and at most (the library's own counters), or None when the
    library cannot be found by name (a Python with SQLite linked in statically)."""
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        return None
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    lib.sqlite3_memory_highwater.restype = ctypes.c_int64
    lib.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
    return lib.sqlite3_memory_used(), lib.sqlite3_memory_highwater(0)


def rss_bytes() -> int:
    """This process's resident set now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@dataclass(frozen=True)
class Trim:
    rss_before: int
    rss_after: int
    seconds: float

    @property
    def released(self) -> int:
        return max(0, self.rss_before - self.rss_after)


def trim_heap() -> Trim | None:
    """Give the heap's free pages back to the system; None off glibc."""
    libc = _libc()
    if libc is None:
        return None
    before, started = rss_bytes(), time.monotonic()
    libc.malloc_trim(0)
    return Trim(before, rss_bytes(), time.monotonic() - started)


async def heap_trim_job(interval_s: float = HEAP_TRIM_INTERVAL_S) -> None:
    """Owned task: ``trim_heap`` every ``interval_s`` seconds, in a worker thread (it takes
    malloc's arena locks, a few milliseconds for the app's heap)."""
    while True:
        await asyncio.sleep(interval_s)
        trim = await asyncio.to_thread(trim_heap)
        if trim is None:
            log.info("heap trim: not glibc, nothing to do")
            return
        log.debug("heap trim: RSS %.1f -> %.1f MiB in %.1f ms", trim.rss_before / 2**20,
                  trim.rss_after / 2**20, trim.seconds * 1000)
