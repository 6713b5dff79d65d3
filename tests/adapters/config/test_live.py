"""LiveConfig: parts subscribe to accepted reloads and leave when they stop."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from callcenter.config.file import load_config
from callcenter.config.live import LiveConfig
from callcenter.config.model import HotlineConfig


async def test_given_listeners_when_reloaded_then_each_called_and_a_failing_one_stops_none(
        config_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    live = LiveConfig(config_path, load_config(config_path))
    seen: list[str] = []

    async def broken(old: HotlineConfig, new: HotlineConfig) -> None:
        raise RuntimeError("PBX unreachable")

    async def queue(old: HotlineConfig, new: HotlineConfig) -> None:
        seen.append("queue")

    live.subscribe(broken)
    leave = live.subscribe(queue)
    with caplog.at_level(logging.ERROR, logger="callcenter.config"):
        assert await live.reload("test")
    assert seen == ["queue"]  # called although the listener before it failed
    assert "applying the new config failed" in caplog.text and "broken" in caplog.text

    leave()
    assert await live.reload("test again")
    assert seen == ["queue"]  # gone after unsubscribing


async def test_given_invalid_file_when_reloaded_then_listeners_not_called_and_old_kept(
        config_path: Path) -> None:
    live = LiveConfig(config_path, load_config(config_path))
    before = live()
    called: list[bool] = []

    async def listener(old: HotlineConfig, new: HotlineConfig) -> None:
        called.append(True)

    live.subscribe(listener)
    config_path.write_text("tenants: [\n")
    assert not await live.reload("broken file")
    assert called == [] and live() is before and live.last_error


async def test_given_operator_password_101_when_reloaded_then_refused_and_old_config_kept(
        config_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("HOTLINE_OP_101", raising=False)  # unset: left out, not an error
    live = LiveConfig(config_path, load_config(config_path))
    before = live()
    monkeypatch.setenv("HOTLINE_OP_101", "101")  # what a scanner tries first
    with caplog.at_level(logging.ERROR, logger="callcenter.config"):
        assert not await live.reload("weak password")
    assert live() is before and live.last_error is not None
    assert "tenants[0].operators[0].secret_env" in live.last_error
    assert "HOTLINE_OP_101" in live.last_error and "at least 16" in live.last_error
    assert "'101'" not in caplog.text.replace("'HOTLINE_OP_101'", "")  # never the secret
