"""The configuration in force, reloaded on file change, SIGHUP or `callcenter reload`.

A file that fails validation is refused: the old configuration keeps running and the log says
which file, key and value is wrong, and why. Calls read the config at arrival, so a new limit
applies to the next call and never to calls already in progress.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from callcenter.config.base import ConfigError
from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig

log = logging.getLogger("callcenter.config")

OnChange = Callable[[HotlineConfig, HotlineConfig], Awaitable[None]]


class LiveConfig:
    """Holds the validated config; `reload()` swaps it only when the new one is valid."""

    def __init__(self, path: Path, initial: HotlineConfig,
                 on_change: OnChange | None = None):
        self.path = path
        self.current = initial
        self._listeners: list[OnChange] = [on_change] if on_change is not None else []
        self._digest = self._read_digest()
        self._lock = asyncio.Lock()
        self.last_error: str | None = None

    def __call__(self) -> HotlineConfig:
        return self.current

    def subscribe(self, on_change: OnChange) -> Callable[[], None]:
        """Call ``on_change(old, new)`` after each accepted reload; returns the unsubscribe.

        Parts built after the config (the PBX, the queue, the IVR) register here when they
        start and leave when they stop, in the composition root's cleanup contexts.
        """
        self._listeners.append(on_change)
        return lambda: self._listeners.remove(on_change)

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    async def reload(self, why: str) -> bool:
        """Load and validate the file; True when a new config is now in force."""
        async with self._lock:
            digest = self._read_digest()
            try:
                new = await asyncio.to_thread(load_config, self.path)
            except ConfigError as e:
                self._digest = digest  # do not log the same broken file twice
                self.last_error = str(e)
                log.error("config reload (%s) refused, keeping the previous config: %s", why, e)
                return False
            except OSError as e:
                self.last_error = f"{self.path}: {e}"
                log.error("config reload (%s) refused: cannot read %s: %s", why, self.path, e)
                return False
            self._digest = digest
            self.last_error = None
            old, self.current = self.current, new
            log.info("config reloaded (%s) from %s: %s", why, self.path, summary(new))
            for listener in list(self._listeners):
                try:
                    await listener(old, new)
                except Exception:
                    log.exception("applying the new config failed (%s)",
                                  getattr(listener, "__qualname__", listener))
            return True

    async def watch(self, interval: float = 0.5) -> None:
        """Poll the file's content; reload when it changes (editors replace files atomically)."""
        while True:
            await asyncio.sleep(interval)
            digest = await asyncio.to_thread(self._read_digest)
            if digest is not None and digest != self._digest:
                await self.reload("file changed")


def summary(config: HotlineConfig) -> str:
    """One line: each tenant with its shifts and line counts."""
    parts = []
    for t in config.tenants:
        shifts = ", ".join(f"{s.name} {s.start:%H:%M}-{s.end:%H:%M} {s.lines} lines"
                           for s in t.shifts)
        menus = f", menus: {len(t.ivr.nodes)} nodes from {t.ivr.root!r}" if t.ivr else ""
        parts.append(f"{t.id} [{shifts}{menus}]")
    return "; ".join(parts)
