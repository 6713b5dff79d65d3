"""Vietnamese prompts: text -> espeak-ng (Vietnamese voice) -> sox to 8 kHz mono, cached by hash.

A recorded file named after the prompt's id (``<sounds_override>/<tenant>/<id>.wav``) wins over
the synthesised one. Music on hold is synthesised here too, so the PBX needs no extra package.
"""

from __future__ import annotations

import filecmp
import hashlib
import logging
import math
import os
import shutil
import struct
import subprocess
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

VOICE = "vi-vn-x-south"
SPEED_WPM = 150
RATE = 8000
# Fragments played one after another (a status readout: "Phiếu số", "không", "bốn" ...): espeak
# pads each with ~0.4 s of silence; clipped, the silence at both ends goes and a short gap stays.
CLIP_GAP_S = 0.06


class PromptError(RuntimeError):
    """A prompt could not be made; names the prompt and the tool that failed."""


@dataclass(frozen=True)
class PromptSpec:
    """One prompt to place at sounds/<tenant>/<prompt_id>.wav."""

    tenant: str
    prompt_id: str
    text: str


def cache_key(text: str, clip: bool = False) -> str:
    """Hash of (voice, speed, rate, text[, clipped]): the cached file's name."""
    tail = f"|clip{CLIP_GAP_S}" if clip else ""
    h = hashlib.sha256(f"{VOICE}|{SPEED_WPM}|{RATE}|{text}{tail}".encode()).hexdigest()
    return h[:32]


def _maker_tag() -> str:
    """This process and thread, for temporary file names no other maker uses."""
    return f"{os.getpid()}-{threading.get_ident()}"


def synthesise(text: str, cache: Path, clip: bool = False) -> Path:
    """Return a cached 8 kHz mono 16-bit WAV of text, making it if needed (``clip``: the
    silence at both ends trimmed to CLIP_GAP_S at the end, for fragments said in a row)."""
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{cache_key(text, clip)}.wav"
    if out.exists():
        return out
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            raise PromptError(f"{tool} is not installed: run `make deps`")
    # Unique temporary names: the app and `callcenter prompts build` may make the same prompt.
    tag = _maker_tag()
    raw = out.with_suffix(f".{tag}.raw.wav")
    tmp = out.with_suffix(f".{tag}.tmp.wav")
    for attempt in (1, 2):
        spoken = subprocess.run(
            # Text on stdin: an FAQ answer starting with "-" must not be read as an option.
            ["espeak-ng", "-v", VOICE, "-s", str(SPEED_WPM), "-w", str(raw), "--stdin"],
            input=text.encode(), check=True, capture_output=True,
        )
        if not raw.exists():  # espeak-ng exits 0 when it cannot write its file
            why = spoken.stderr.decode(errors="replace").strip() or "no file written"
            raise PromptError(f"espeak-ng made no audio for prompt {out.name} in {cache}: {why}")
        convert(raw, tmp, clip=clip)
        raw.unlink(missing_ok=True)
        try:
            tmp.replace(out)
            return out
        except FileNotFoundError:
            # Seen once in CI (`prompts build` beside a running app), reported as our finished
            # temporary file gone before its rename. The race found since was in
            # place_prompts (a temporary name shared by both makers, now unique); this guard
            # stays: another maker's result is as good as ours; else make it once more.
            if out.exists():
                return out
            if attempt == 2:
                raise
            log.warning("prompt %s: temporary file vanished before its rename; again", out.name)
    return out


def convert(src: Path, dst: Path, clip: bool = False) -> None:
    """Any audio sox reads -> 8 kHz mono 16-bit WAV, as Asterisk's format_wav wants."""
    trim = (["silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%",
             "reverse", "pad", "0", str(CLIP_GAP_S)] if clip else [])
    proc = subprocess.run(
        ["sox", str(src), "-r", str(RATE), "-c", "1", "-b", "16", str(dst), *trim],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise PromptError(f"sox could not convert {src}: {proc.stderr.strip()}")


def place_prompts(specs: list[PromptSpec], sounds_dir: Path, overrides: Path | None,
                  cache: Path) -> None:
    """Put every prompt in sounds_dir/<tenant>/<id>.wav; recorded overrides first."""
    for spec in specs:
        target = sounds_dir / spec.tenant / f"{spec.prompt_id}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        recorded = overrides / spec.tenant / f"{spec.prompt_id}.wav" if overrides else None
        # Unique per maker: the app (at start, on a reload) and `callcenter prompts build` may
        # place the same prompts at once; with one shared name, one maker's unlink or rename
        # took the other's file away before its own rename (FileNotFoundError, seen in CI).
        tmp = target.with_suffix(f".{_maker_tag()}.new.wav")
        if recorded and recorded.exists():
            convert(recorded, tmp)
            log.info("prompt %s/%s: recorded file %s", spec.tenant, spec.prompt_id, recorded)
        else:
            shutil.copyfile(synthesise(spec.text, cache), tmp)
        if target.exists() and filecmp.cmp(tmp, target, shallow=False):
            tmp.unlink()
        else:
            # Replace atomically: a caller hearing the old prompt right now keeps hearing it.
            os.replace(tmp, target)


def make_hold_music(target: Path, seconds: int = 24) -> None:
    """A soft arpeggio (sine notes with fades) as 8 kHz WAV: our own music on hold."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    notes = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 293.66, 349.23, 440.0, 349.23]
    note_len = 0.6
    frames = bytearray()
    total = int(seconds / note_len)
    for i in range(total):
        f = notes[i % len(notes)]
        n = int(RATE * note_len)
        for k in range(n):
            env = min(1.0, k / 400, (n - k) / 800)
            sample = 0.25 * env * math.sin(2 * math.pi * f * k / RATE)
            frames += struct.pack("<h", int(sample * 32767))
    tmp = target.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    tmp.replace(target)
