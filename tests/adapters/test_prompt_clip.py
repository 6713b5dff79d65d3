"""Fragments said in a row (status by phone) are clipped: espeak-ng's padding trimmed by sox,
cached apart from the same text said as a prompt of its own."""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path

import pytest

from callcenter.ivr.prompt_library import PromptLibrary
from callcenter.ivr.tree import Prompt
from callcenter.pbx.prompts import CLIP_GAP_S, PromptError, cache_key, synthesise

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="espeak-ng and sox are needed")


def seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return w.getnframes() / w.getframerate()


def test_given_fragment_when_clipped_then_padding_gone_and_cached_apart(tmp_path: Path) -> None:
    whole = synthesise("không", tmp_path)
    clipped = synthesise("không", tmp_path, clip=True)
    assert whole != clipped and cache_key("không") != cache_key("không", clip=True)
    assert seconds(clipped) < seconds(whole) - 0.2  # espeak pads ~0.4 s
    assert seconds(clipped) > CLIP_GAP_S + 0.1  # the word itself is still there


def test_given_clipped_prompts_when_built_ahead_then_served_from_the_cache(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path / "sounds", "/pbx/sounds", None)
    fragment = Prompt("st-n-4", "bốn", clip=True)
    assert library.cached_media("dongnai", fragment) is None
    made, there = library.build([("dongnai", fragment), ("dongnai", Prompt("x", "bốn"))])
    assert (made, there) == (2, 0)
    media = library.cached_media("dongnai", fragment)
    assert media == f"sound:/pbx/sounds/cache/{cache_key('bốn', clip=True)}"
    assert (tmp_path / "sounds" / "cache" / f"{cache_key('bốn', clip=True)}.wav").exists()


def test_given_espeak_writes_nothing_when_synthesised_then_prompt_error_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """espeak-ng exits 0 when it cannot write its file: that is said as such (with espeak's
    own words), not as sox failing on a file that "vanished"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "espeak-ng"  # stands in for espeak-ng failing to write, as it does
    fake.write_text("#!/bin/sh\necho \"Can't write to: somewhere\" >&2\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(PromptError, match=r"espeak-ng made no audio .*Can't write to"):
        synthesise("không", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
