"""The `callcenter check-config` command as an administrator uses it."""

from __future__ import annotations

import shutil
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
    text = (ROOT / "config" / "hotline.yaml").read_text().replace("lines: 2, callback",
                                                                  "lines: many, callback")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    shutil.copy(ROOT / "config" / "ivr-dongnai.yaml", tmp_path)
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "tenants[0].shifts[1].lines" in err and "many" in err


def test_given_missing_file_when_checked_then_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().err


def test_given_ivr_file_missing_when_checked_then_error_names_the_tenant_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "hotline.yaml"
    shutil.copy(ROOT / "config" / "hotline.yaml", cfg)
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"{cfg}: tenants[0].ivr = 'ivr-dongnai.yaml': cannot read the file" in err


def test_given_error_inside_ivr_file_when_checked_then_that_file_and_node_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "hotline.yaml"
    shutil.copy(ROOT / "config" / "hotline.yaml", cfg)
    ivr = (ROOT / "config" / "ivr-dongnai.yaml").read_text()
    (tmp_path / "ivr-dongnai.yaml").write_text(ivr.replace('"9": operator', '"9": operater'))
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ivr-dongnai.yaml'}: ivr.nodes.main.options.9 = 'operater'" in err


def test_given_file_only_prompt_without_recording_when_checked_then_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "hotline.yaml"
    shutil.copy(ROOT / "config" / "hotline.yaml", cfg)
    ivr = (ROOT / "config" / "ivr-dongnai.yaml").read_text()
    (tmp_path / "ivr-dongnai.yaml").write_text(ivr.replace(
        'prompt: "Các câu hỏi thường gặp về y tế."', "prompt: {file: yte-intro}"))
    assert main(["check-config", str(cfg)]) == 1
    assert "nodes.faq_health.prompt.file = 'yte-intro'" in capsys.readouterr().err
    (tmp_path / "sounds" / "dongnai").mkdir(parents=True)
    (tmp_path / "sounds" / "dongnai" / "yte-intro.wav").write_bytes(b"RIFF")
    assert main(["check-config", str(cfg)]) == 0


def test_given_key_plan_then_parsed_in_time_order_and_bad_items_named() -> None:
    from callcenter.tools.softphone import parse_keys

    assert parse_keys("2@5 1@2.5 *#@7") == [(2.5, "1"), (5.0, "2"), (7.0, "*#")]
    with pytest.raises(ValueError, match="'x@1'"):
        parse_keys("x@1")
    with pytest.raises(ValueError, match="'1@soon'"):
        parse_keys("1@soon")
