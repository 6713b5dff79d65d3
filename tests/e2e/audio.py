"""What a test phone heard: the share of a recording's power at one frequency (Goertzel).

The phones send pure tones (``--audio tone:FREQ``), so "did the operator hear the supervisor"
becomes "is there power at the supervisor's frequency in what the operator's phone recorded".
"""

from __future__ import annotations

import math
import struct
from pathlib import Path


def read_pcm16(path: Path) -> tuple[int, list[int]]:
    """(sample rate, mono 16-bit samples) of a PCM WAV; a header whose sizes were never
    written (recorder still open) is read up to the end of the file."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, rate, channels, bits = 12, 0, 0, 0
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if kind == b"fmt ":
            fmt, channels, rate = struct.unpack_from("<HHI", data, body)
            bits = struct.unpack_from("<H", data, body + 14)[0]
            if fmt != 1 or bits != 16 or channels != 1:
                raise ValueError(f"{path}: expected mono 16-bit PCM, got {fmt}/{channels}/{bits}")
        elif kind == b"data":
            end = len(data) if size == 0 else min(len(data), body + size)
            raw = data[body:end - (end - body) % 2]
            return rate, list(struct.unpack(f"<{len(raw) // 2}h", raw))
        pos = body + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


BLOCK_S = 0.05  # Goertzel window: 20 Hz wide, far narrower than the tones' 175 Hz spacing


def _block_share(samples: list[int], rate: int, freq: float) -> tuple[float, float]:
    """(power at ``freq``, total power) of one block (Goertzel, one bin)."""
    n = len(samples)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    magnitude2 = s1 * s1 + s2 * s2 - coeff * s1 * s2  # |X(f)|^2
    tone_power = 2 * magnitude2 / (n * n)  # a sine of amplitude A gives A^2 / 2
    return tone_power, sum(x * x for x in samples) / n


def tone_share(samples: list[int], rate: int, freq: float) -> float:
    """The fraction (0..1) of the samples' power carried by ``freq``.

    Measured in blocks of ``BLOCK_S`` and weighted by each block's power: a phone under load
    drops or repeats 20 ms frames, and one Goertzel sum over seconds would add the tone's
    pieces out of phase and miss a tone that was there all along (seen: 0.03 over 2 s of an
    operator's recording whose quarter seconds nearly all carried the caller's tone at 0.48)."""
    n = max(1, int(rate * BLOCK_S))
    blocks = [samples[i:i + n] for i in range(0, len(samples), n)]
    if len(blocks) > 1 and len(blocks[-1]) < n:
        blocks.pop()  # a short tail would widen its bin; the full blocks decide
    tone = total = 0.0
    for block in blocks:
        if block:
            t, p = _block_share(block, rate, freq)
            tone, total = tone + t * len(block), total + p * len(block)
    return tone / total if total else 0.0


def heard(path: Path, freq: float, *, last_s: float | None = None,
          between: tuple[float, float] | None = None) -> float:
    """``tone_share`` at ``freq`` over the last ``last_s`` seconds of a recording, or over
    ``between`` = (start, end) in seconds from its beginning."""
    rate, samples = read_pcm16(path)
    if between is not None:
        start, end = (max(0, int(rate * t)) for t in between)
        return tone_share(samples[start:end], rate, freq)
    assert last_s is not None, "give last_s or between"
    return tone_share(samples[-int(rate * last_s):], rate, freq)
