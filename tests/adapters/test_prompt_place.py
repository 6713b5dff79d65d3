"""Placing prompts into a PBX's sounds folder while another maker places the same ones (the app
at start or on a reload, `callcenter prompts build` beside it): neither fails, every prompt ends
up whole."""

from __future__ import annotations

import threading
from pathlib import Path

from callcenter.pbx.prompts import PromptSpec, cache_key, place_prompts

WAV = b"RIFF" + b"\0" * 40  # place_prompts copies bytes; it never parses them


def test_given_two_makers_when_same_prompts_placed_at_once_then_none_fails(
        tmp_path: Path) -> None:
    cache, sounds = tmp_path / "cache", tmp_path / "sounds"
    cache.mkdir()
    specs = [PromptSpec("dongnai", f"p{i}", f"lời nhắc {i}") for i in range(20)]
    for spec in specs:  # cached already: no espeak-ng needed, only the placing is tested
        (cache / f"{cache_key(spec.text)}.wav").write_bytes(WAV + spec.text.encode())
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def maker() -> None:
        start.wait()
        try:
            for _ in range(30):
                place_prompts(specs, sounds, None, cache)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=maker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    for spec in specs:
        placed = sounds / spec.tenant / f"{spec.prompt_id}.wav"
        assert placed.read_bytes() == WAV + spec.text.encode()
    assert sorted(p.name for p in (sounds / "dongnai").iterdir()) == sorted(
        f"{s.prompt_id}.wav" for s in specs)  # no temporary file left behind
