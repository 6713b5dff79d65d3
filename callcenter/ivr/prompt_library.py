"""Where an IVR prompt's sound is: a recorded file, or speech cached by a hash of its text.

Synthesised prompts live in the PBX's ``sounds/cache/<hash>.wav`` (hash of text, voice and
settings: callcenter.pbx.prompts.cache_key), so a changed text is a new file and a call that
started on the old menus keeps hearing the old words. A recorded file
``<overrides>/<tenant>/<prompt id>.wav`` wins; it is converted once into
``sounds/<tenant>/rec/<id>-<hash of the file>.wav``.

``media()`` answers from the cache without waiting; only a prompt never built before (an FAQ
imported a second ago) is synthesised while the caller waits, once, under a per-text lock.
``build()`` makes everything ahead of time (``callcenter prompts build``, and at start-up).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from callcenter.ivr.tree import Prompt
from callcenter.pbx.prompts import PromptError, cache_key, convert, synthesise

log = logging.getLogger("callcenter.ivr.prompts")


class PromptLibrary:
    """Resolves prompts to ``sound:`` media URIs for one PBX instance."""

    def __init__(self, sounds_host: Path, sounds_pbx: str, overrides: Path | None):
        self.sounds_host = sounds_host
        self.sounds_pbx = sounds_pbx
        self.overrides = overrides
        self.cache_host = sounds_host / "cache"
        self._recorded: dict[tuple[str, str], str] = {}  # (tenant, prompt id) -> media
        self._known: set[str] = set()  # cache keys known to exist
        self._locks: dict[str, asyncio.Lock] = {}

    # -- recorded overrides ---------------------------------------------------------------
    def scan_recorded(self, tenants: Iterable[str]) -> int:
        """Convert and index recorded overrides; blocking (run in a thread). Returns count."""
        found: dict[tuple[str, str], str] = {}
        for tenant in tenants:
            folder = self.overrides / tenant if self.overrides else None
            if folder is None or not folder.is_dir():
                continue
            for wav in sorted(folder.glob("*.wav")):
                digest = hashlib.sha256(wav.read_bytes()).hexdigest()[:12]
                name = f"{wav.stem}-{digest}"
                target = self.sounds_host / tenant / "rec" / f"{name}.wav"
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_suffix(".tmp.wav")
                    convert(wav, tmp)
                    os.replace(tmp, target)
                found[(tenant, wav.stem)] = f"sound:{self.sounds_pbx}/{tenant}/rec/{name}"
        self._recorded = found
        return len(found)

    def recorded_ids(self, tenant: str) -> set[str]:
        """Prompt ids with a recorded file for this tenant."""
        return {pid for (t, pid) in self._recorded if t == tenant}

    # -- lookup ---------------------------------------------------------------------------
    def cached_media(self, tenant: str, prompt: Prompt) -> str | None:
        """The media URI if the sound exists now (never blocks on synthesis)."""
        rec = self._recorded.get((tenant, prompt.id))
        if rec is not None:
            return rec
        if prompt.text is None:
            return None
        key = cache_key(prompt.text, prompt.clip)
        if key not in self._known:
            if not (self.cache_host / f"{key}.wav").exists():
                return None
            self._known.add(key)
        return f"sound:{self.sounds_pbx}/cache/{key}"

    async def media(self, tenant: str, prompt: Prompt) -> str:
        """The media URI; synthesises a text never built before (once, whoever asks)."""
        found = self.cached_media(tenant, prompt)
        if found is not None:
            return found
        if prompt.text is None:
            raise PromptError(f"prompt {prompt.id!r} of {tenant}: no recorded file and no text")
        key = cache_key(prompt.text, prompt.clip)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._known:
                log.info("prompt %s/%s not built yet: synthesising it now", tenant, prompt.id)
                await asyncio.to_thread(synthesise, prompt.text, self.cache_host, prompt.clip)
                self._known.add(key)
        self._locks.pop(key, None)
        return f"sound:{self.sounds_pbx}/cache/{key}"

    # -- ahead of time --------------------------------------------------------------------
    def build(self, prompts: Iterable[tuple[str, Prompt]],
              progress: Callable[[int, int], None] | None = None,
              workers: int = 2) -> tuple[int, int]:
        """Synthesise every prompt not cached yet (blocking). Returns (made, already there)."""
        todo: dict[str, tuple[str, bool]] = {}
        there = 0
        for tenant, prompt in prompts:
            if self.cached_media(tenant, prompt) is not None:
                there += 1
            elif prompt.text is not None:
                todo.setdefault(cache_key(prompt.text, prompt.clip), (prompt.text, prompt.clip))
        texts = list(todo.values())
        done = 0
        if progress:
            progress(0, len(texts))
        self.cache_host.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prompts") as pool:
            for _ in pool.map(lambda t: synthesise(t[0], self.cache_host, t[1]), texts):
                done += 1
                if progress:
                    progress(done, len(texts))
        self._known.update(todo)
        return len(texts), there
