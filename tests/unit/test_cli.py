"""The `callcenter check-config` command as an administrator uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_given_shipped_config_when_checked_then_ok_with_summary(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "config" / "hotline.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ") and "dongnai" in out and "15 lines" in out


def test_given_broken_lines_when_checked_then_exit_1_naming_file_key_and_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "config" / "hotline.yaml").read_text().replace("lines: 2}", "lines: many}")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "tenants[0].shifts[1].lines" in err and "many" in err


def test_given_missing_file_when_checked_then_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().err
