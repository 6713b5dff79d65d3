"""The e2e tests' tone detector (tests/e2e/audio.py) on synthetic recordings."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

from tests.e2e.audio import heard, read_pcm16, tone_share

RATE = 16000


def _tones(seconds: float, *parts: tuple[float, float]) -> list[int]:
    n = int(RATE * seconds)
    return [int(sum(a * math.sin(2 * math.pi * f * i / RATE) for f, a in parts))
            for i in range(n)]


def _wav(path: Path, samples: list[int]) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def test_given_two_tones_when_measured_then_each_share_follows_its_power() -> None:
    samples = _tones(1.0, (425, 8000), (1400, 4000))  # powers 4:1
    assert tone_share(samples, RATE, 425) == pytest.approx(0.8, abs=0.02)
    assert tone_share(samples, RATE, 1400) == pytest.approx(0.2, abs=0.02)
    assert tone_share(samples, RATE, 600) < 0.001


def test_given_silence_or_nothing_then_share_zero() -> None:
    assert tone_share([0] * 800, RATE, 1400) == 0.0
    assert tone_share([], RATE, 1400) == 0.0


def test_given_recording_when_tone_starts_late_then_only_the_tail_shows_it(
        tmp_path: Path) -> None:
    path = _wav(tmp_path / "call-0.wav",
                _tones(2.0, (425, 8000)) + _tones(1.0, (425, 8000), (1400, 8000)))
    assert heard(path, 1400, last_s=1.0) == pytest.approx(0.5, abs=0.03)
    assert heard(path, 1400, last_s=3.0) == pytest.approx(0.25, abs=0.03)  # 1 s of 3, half
    assert heard(path, 1400, between=(0.5, 1.5)) < 0.001  # before the tone started
    assert heard(path, 1400, between=(2.2, 2.8)) == pytest.approx(0.5, abs=0.03)


def test_given_header_sizes_never_written_then_read_to_the_end(tmp_path: Path) -> None:
    path = _wav(tmp_path / "open.wav", _tones(0.5, (1400, 8000)))
    data = bytearray(path.read_bytes())
    data[data.index(b"data") + 4:data.index(b"data") + 8] = b"\0\0\0\0"
    path.write_bytes(bytes(data))
    rate, samples = read_pcm16(path)
    assert rate == RATE and len(samples) == RATE // 2


def test_given_tone_with_dropped_frames_when_measured_then_still_heard() -> None:
    # A loaded phone drops 20 ms frames now and then: at 425 Hz each gap flips the tone's
    # phase (8.5 cycles), and one sum over the whole recording cancels itself out.
    tone = _tones(2.0, (425, 8000))
    frame = RATE // 50
    dropped = [x for i, x in enumerate(tone) if (i // frame) % 7 != 3]
    assert tone_share(dropped, RATE, 425) > 0.5
    assert tone_share(dropped, RATE, 1400) < 0.01
