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


def tone_share(samples: list[int], rate: int, freq: float) -> float:
    """The fraction (0..1) of the samples' power carried by ``freq`` (Goertzel, one bin)."""
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    magnitude2 = s1 * s1 + s2 * s2 - coeff * s1 * s2  # |X(f)|^2
    tone_power = 2 * magnitude2 / (n * n)  # a sine of amplitude A gives A^2 / 2
    total = sum(x * x for x in samples) / n
    return tone_power / total if total else 0.0


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
