"""Editing shifts in the config file: minimal text patches, validation by the service's own
parser before anything is written, atomic replace with the previous version kept, reload."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import shutil
import stat
from pathlib import Path

import pytest

from callcenter.config.base import ConfigError
from callcenter.config.edit import (
    HISTORY_DIR,
    ConfigEditError,
    ConfigEditor,
    ShiftEdit,
    canonical_time,
    field_errors,
    patch_shifts,
    read_shifts,
    same_value,
    save_shift_edits,
    sha256_of,
)
from callcenter.config.file import load_config
from callcenter.config.live import LiveConfig
from callcenter.config.parse import parse_config_text

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
SHIPPED = CONFIG_DIR / "hotline.yaml"
NOW = dt.datetime(2026, 11, 27, 3, 4, 5, tzinfo=dt.UTC)

SMALL = """\
# two provinces
tenants:
  - id: dongnai
    name: "Đồng Nai"
    numbers: ["1022"]
    shifts:   # day and night
      - {name: day, start: "07:00", end: "18:00", lines: 15}
      - name: night
        start: '18:00'   # evening
        end: "24:00"
        lines: 2
      - {name: late, start: "00:00", end: "07:00", lines: 2}
  - id: thanhhoa
    name: "Thanh Hóa"
    numbers: ["02371022"]
    shifts:
      - {name: day, start: "07:00", end: "18:00", lines: 4}
      - {name: night, start: "18:00", end: "07:00", lines: 2}
"""


def _diff(a: str, b: str) -> list[str]:
    return [line for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="",
                                                  n=0)
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Path:
    """The shipped config and its IVR include file, in a folder of their own."""
    folder = tmp_path / "config"
    folder.mkdir()
    for f in CONFIG_DIR.glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    if (CONFIG_DIR / "sounds").is_dir():
        shutil.copytree(CONFIG_DIR / "sounds", folder / "sounds")
    return folder / "hotline.yaml"


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "hotline.yaml"
    path.write_text(SMALL, encoding="utf-8")
    path.chmod(0o640)
    return path


def test_given_shipped_config_when_night_lines_lowered_then_only_that_token_changes() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    new, changes = patch_shifts(text, "dongnai", [ShiftEdit("night", "lines", "2", "1")])
    assert _diff(text, new) == [
        '-      - {name: night, start: "18:00", end: "07:00", lines: 2, callback_when_full: true}',
        '+      - {name: night, start: "18:00", end: "07:00", lines: 1, callback_when_full: true}',
    ]
    assert [(c.shift, c.field, c.old, c.new) for c in changes] == [("night", "lines", "2", "1")]
    assert "# Tết is 2027-02-06" in new  # comments kept
    assert read_shifts(new, "dongnai")[1].lines == "1"


def test_given_block_and_flow_shifts_when_times_moved_then_written_quoted_in_place() -> None:
    edits = [ShiftEdit("day", "end", "18:00", "19:00"),
             ShiftEdit("night", "start", "18:00", "19:00")]
    new, changes = patch_shifts(SMALL, "dongnai", edits)
    assert _diff(SMALL, new) == [
        '-      - {name: day, start: "07:00", end: "18:00", lines: 15}',
        '+      - {name: day, start: "07:00", end: "19:00", lines: 15}',
        "-        start: '18:00'   # evening",
        '+        start: "19:00"   # evening',
    ]
    assert {(c.shift, c.field, c.new) for c in changes} == {("day", "end", "19:00"),
                                                          ("night", "start", "19:00")}


def test_given_same_meaning_when_submitted_then_no_change() -> None:
    edits = [ShiftEdit("day", "start", "07:00", "7:00"),
             ShiftEdit("night", "end", "00:00", "24:00"),  # in force 00:00, file 24:00
             ShiftEdit("day", "lines", "15", " 15 ")]
    new, changes = patch_shifts(SMALL, "dongnai", edits)
    assert new == SMALL
    assert changes == ()


def test_given_other_tenant_when_patched_then_only_its_shifts_change() -> None:
    new, _ = patch_shifts(SMALL, "thanhhoa", [ShiftEdit("day", "lines", "4", "5")])
    assert _diff(SMALL, new) == [
        '-      - {name: day, start: "07:00", end: "18:00", lines: 4}',
        '+      - {name: day, start: "07:00", end: "18:00", lines: 5}',
    ]


def test_given_file_value_differs_from_seen_when_patched_then_stale() -> None:
    with pytest.raises(ConfigEditError) as e:
        patch_shifts(SMALL, "dongnai", [ShiftEdit("night", "lines", "3", "1")])
    assert e.value.id == "config.stale"


def test_given_unknown_shift_or_tenant_when_patched_then_refused() -> None:
    with pytest.raises(ConfigEditError) as e:
        patch_shifts(SMALL, "dongnai", [ShiftEdit("evening", "lines", "2", "1")])
    assert e.value.id == "config.stale"
    with pytest.raises(ConfigEditError) as e:
        patch_shifts(SMALL, "hanoi", [ShiftEdit("day", "lines", "2", "1")])
    assert e.value.id == "config.not_editable"


def test_given_yaml_looking_input_when_patched_then_it_stays_one_string() -> None:
    new, changes = patch_shifts(SMALL, "dongnai",
                                [ShiftEdit("day", "lines", "15", "1}, {name: x, lines: 9")])
    assert changes[0].new == "1}, {name: x, lines: 9"
    with pytest.raises(ConfigError) as e:
        parse_config_text(new, "x")
    assert e.value.key == "tenants[0].shifts[0].lines"
    assert [s.name for s in read_shifts(new, "dongnai")] == ["day", "night", "late"]


def test_given_anchored_shifts_when_patched_then_not_editable() -> None:
    text = SMALL.replace("    shifts:   # day and night", "    shifts: &std  # shared")
    with pytest.raises(ConfigEditError) as e:
        patch_shifts(text, "dongnai", [ShiftEdit("day", "lines", "15", "1")])
    assert e.value.id == "config.not_editable"


@pytest.mark.parametrize(("raw", "canon"), [("7:00", "07:00"), (" 18:30 ", "18:30"),
                                            ("24:00", "24:00"), ("07:00:00", "07:00"),
                                            ("07:00:30", "07:00:30"), ("7h", None),
                                            ("", None)])
def test_canonical_time(raw: str, canon: str | None) -> None:
    assert canonical_time(raw) == canon


def test_same_value_end_midnight_and_numbers() -> None:
    assert same_value("end", "24:00", "00:00")
    assert not same_value("start", "24:00", "00:00")
    assert same_value("lines", "02", "2")
    assert not same_value("lines", "abc", "2")


def test_given_errors_of_shifts_and_elsewhere_when_placed_then_mapped_to_fields() -> None:
    errors = [ConfigError("f", "tenants[1].shifts[0].lines", -1, "expected >= 0"),
              ConfigError("f", "tenants[1].shifts", ["x"], "overlap"),
              ConfigError("f", "tenants[0].shifts[0].lines", -1, "other tenant"),
              ConfigError("f", "trunk.port", 0, "bad port")]
    placed = field_errors(ConfigError.collect(errors), 1, ("day", "night"))
    assert [(p.shift_index, p.shift, p.field) for p in placed] == [
        (0, "day", "lines"), (None, None, "shifts"), (None, None, None), (None, None, None)]


def test_given_valid_edit_when_saved_then_atomic_write_previous_kept_mode_kept(
        small: Path) -> None:
    before = small.read_bytes()
    result = save_shift_edits(small, "dongnai", [ShiftEdit("night", "lines", "2", "1")],
                              expected_sha256=sha256_of(before), now=NOW)
    assert result.sha256_before == sha256_of(before)
    assert result.sha256_after == sha256_of(small.read_bytes())
    assert load_config(small).tenants[0].shifts[1].lines == 1
    assert result.previous == small.parent / HISTORY_DIR / "hotline.yaml.20261127T030405Z"
    assert result.previous.read_bytes() == before
    assert stat.S_IMODE(small.stat().st_mode) == 0o640
    assert sorted(p.name for p in small.parent.iterdir()) == [
        ".history", ".hotline.yaml.lock", "hotline.yaml"]  # no temporary file left

    again = save_shift_edits(small, "dongnai", [ShiftEdit("night", "lines", "1", "0")],
                             expected_sha256=result.sha256_after, now=NOW)
    assert again.previous is not None and again.previous.name.endswith("Z-1")
    assert again.previous.read_bytes() != before


@pytest.mark.parametrize(("edits", "field", "index"), [
    ([ShiftEdit("night", "lines", "2", "-1")], "lines", 1),
    ([ShiftEdit("day", "lines", "15", "nhiều")], "lines", 0),
    ([ShiftEdit("day", "start", "07:00", "25:00")], "start", 0),
    ([ShiftEdit("night", "start", "18:00", "17:00")], "shifts", None),  # overlaps day
    ([ShiftEdit("day", "end", "18:00", "17:00")], "shifts", None),  # gap 17-18
])
def test_given_invalid_edit_when_saved_then_field_error_and_nothing_written(
        small: Path, edits: list[ShiftEdit], field: str, index: int | None) -> None:
    before = small.read_bytes()
    with pytest.raises(ConfigEditError) as e:
        save_shift_edits(small, "dongnai", edits, expected_sha256=sha256_of(before), now=NOW)
    assert e.value.id == "config.invalid"
    assert [(fe.field, fe.shift_index) for fe in e.value.errors][:1] == [(field, index)]
    assert all(str(small) in fe.text for fe in e.value.errors)  # the real file is named
    assert small.read_bytes() == before
    assert sorted(p.name for p in small.parent.iterdir()) == ["hotline.yaml"]


def test_given_stale_sha_when_saved_then_refused_and_nothing_written(small: Path) -> None:
    before = small.read_bytes()
    with pytest.raises(ConfigEditError) as e:
        save_shift_edits(small, "dongnai", [ShiftEdit("night", "lines", "2", "1")],
                         expected_sha256=sha256_of(b"an older file"), now=NOW)
    assert e.value.id == "config.stale"
    assert small.read_bytes() == before


def test_given_shipped_config_with_ivr_include_when_saved_then_validated_and_written(
        shipped_copy: Path) -> None:
    sha = sha256_of(shipped_copy.read_bytes())
    save_shift_edits(shipped_copy, "dongnai", [ShiftEdit("night", "lines", "2", "1")],
                     expected_sha256=sha, now=NOW)
    config = load_config(shipped_copy)
    assert config.tenants[0].shifts[1].lines == 1
    assert config.tenants[0].ivr is not None  # the include file still followed


def test_given_symlinked_config_when_saved_then_target_replaced_link_kept(
        small: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.yaml"
    os.symlink(small, link)
    save_shift_edits(link, "dongnai", [ShiftEdit("night", "lines", "2", "1")],
                     expected_sha256=sha256_of(small.read_bytes()), now=NOW)
    assert link.is_symlink()
    assert load_config(small).tenants[0].shifts[1].lines == 1


async def test_given_editor_when_saved_then_live_config_reloaded(small: Path) -> None:
    live = LiveConfig(small, load_config(small))
    editor = ConfigEditor(live)
    state = await editor.state("dongnai")
    assert [s.lines for s in state.shifts] == ["15", "2", "2"]
    result = await editor.save("dongnai", [ShiftEdit("night", "lines", "2", "1")],
                               expected_sha256=state.sha256, now=NOW, who="quantri")
    assert result.reloaded and result.reload_error is None
    assert live().tenants[0].shifts[1].lines == 1

    nothing = await editor.save("dongnai", [ShiftEdit("night", "lines", "1", "1")],
                                expected_sha256=result.sha256_after, now=NOW, who="quantri")
    assert nothing.changes == () and not nothing.reloaded
