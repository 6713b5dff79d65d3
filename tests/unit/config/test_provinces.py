"""The 63 provinces' table and the national config made from it (`callcenter config provinces`)."""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import pytest
import yaml

from callcenter.cli import main
from callcenter.config import parse
from callcenter.config.edit import ShiftEdit, patch_shifts, read_shifts
from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.config.national import national_config, national_yaml, select
from callcenter.config.parse import parse_config, parse_config_text
from callcenter.config.provinces import PROVINCES, Province, by_code
from callcenter.lines.shifts import tenant_for_number
from callcenter.tickets.config import policy_of

# Spot checks against the 2017 renumbering (Thông tư 15/2014/TT-BTTTT), region by region.
KNOWN = {
    "Hà Nội": "024", "Hồ Chí Minh": "028", "Hải Phòng": "0225", "Đà Nẵng": "0236",
    "Cần Thơ": "0292", "Đồng Nai": "0251", "Thanh Hóa": "0237", "Quảng Ninh": "0203",
    "Hà Giang": "0219", "Thừa Thiên Huế": "0234", "Khánh Hòa": "0258", "Gia Lai": "0269",
    "Lâm Đồng": "0263", "Bình Dương": "0274", "Bà Rịa - Vũng Tàu": "0254", "An Giang": "0296",
    "Cà Mau": "0290", "Sóc Trăng": "0299", "Điện Biên": "0215", "Đắk Lắk": "0262",
}
CITIES = {"Hà Nội", "Hồ Chí Minh", "Hải Phòng", "Đà Nẵng", "Cần Thơ"}


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFD", name.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in folded if c.isalpha() and c.isascii()).lower()


def test_given_the_table_then_63_units_58_provinces_and_5_cities() -> None:
    assert len(PROVINCES) == 63
    assert {p.name for p in PROVINCES if p.city} == CITIES
    assert sum(not p.city for p in PROVINCES) == 58


def test_given_the_table_then_codes_numbers_ids_and_prefixes_are_unique() -> None:
    for attr in ("id", "name", "area_code", "number", "code_prefix"):
        values = [getattr(p, attr) for p in PROVINCES]
        assert len(set(values)) == 63, attr


def test_given_the_table_then_area_codes_are_the_2017_ones() -> None:
    codes = {p.name: p.area_code for p in PROVINCES}
    for name, code in KNOWN.items():
        assert codes[name] == code, name
    for p in PROVINCES:
        # Two-digit codes for the two big cities, 02xx for everyone else.
        assert (len(p.area_code) == 3) == (p.name in ("Hà Nội", "Hồ Chí Minh")), p
        assert p.area_code.startswith("02") and p.area_code.isdigit(), p
        assert p.number == p.area_code + "1022"


def test_given_the_table_then_names_have_their_diacritics_and_ids_are_the_names_unmarked() -> None:
    assert [by_code(c).name for c in ("0251", "0237")] == ["Đồng Nai", "Thanh Hóa"]  # type: ignore[union-attr]
    for p in PROVINCES:
        assert unicodedata.is_normalized("NFC", p.name), p
        expected = "hochiminh" if p.name == "Hồ Chí Minh" else _ascii(p.name)
        assert p.id == expected, p
    assert sum(not p.name.isascii() for p in PROVINCES) > 55  # marks kept, not stripped


def test_given_codes_in_any_form_when_looked_up_then_the_province() -> None:
    assert by_code("0251") is by_code("251") is by_code("dongnai")
    assert by_code("028") is by_code("28") is by_code("hochiminh")
    assert by_code("0999") is None
    assert [p.id for p in select(["028", "0251", "dongnai"])] == ["dongnai", "hochiminh"]
    with pytest.raises(ValueError, match="0999"):
        select(["0999"])


def test_given_the_national_config_when_validated_then_63_tenants_each_with_its_number() -> None:
    config = parse_config_text(national_yaml(), "national.yaml")
    assert len(config.tenants) == 63
    by_id = {t.id: t for t in config.tenants}
    for p in PROVINCES:
        t = by_id[p.id]
        assert t.name == p.name
        assert t.numbers == (p.number,)
        assert [(s.name, s.lines) for s in t.shifts] == [("day", 15), ("night", 2)]
        assert t.ivr is not None and t.ivr.root == "main"
        assert t.prompts is not None and p.title in t.prompts.greeting
        assert policy_of(t).code_prefix == p.code_prefix


def _routed(config: HotlineConfig, number: str) -> str | None:
    tenant = tenant_for_number(config, number)
    return tenant.id if tenant else None


@pytest.mark.parametrize("p", PROVINCES, ids=lambda p: p.id)
def test_given_the_national_config_when_a_province_number_is_dialled_then_it_routes_there(
        p: Province) -> None:
    config = _national()
    assert _routed(config, p.number) == p.id
    # As the carrier may send it: international form, with separators.
    assert _routed(config, "+84" + p.number[1:]) == p.id
    assert _routed(config, f"{p.area_code} 1022") == p.id
    assert _routed(config, "1022") is None  # the bare short code: nobody's by default


@functools.cache
def _national() -> HotlineConfig:
    return parse_config(yaml.safe_load(national_yaml()), "national.yaml")


def test_given_options_when_generated_then_pools_subset_and_short_code_follow() -> None:
    data = national_config(["0237", "028", "0251"], day_lines=3, night_lines=1, short_code="0251")
    config = parse_config(data, "x")
    assert [t.id for t in config.tenants] == ["thanhhoa", "dongnai", "hochiminh"]
    assert all([s.lines for s in t.shifts] == [3, 1] for t in config.tenants)
    assert _routed(config, "1022") == "dongnai"
    assert _routed(config, "0281022") == "hochiminh"
    with pytest.raises(ValueError, match="short"):
        national_config(["0237"], short_code="0251")


def test_given_the_text_then_numbers_and_times_are_quoted_and_nothing_is_aliased() -> None:
    text = national_yaml(["0251", "0237"])
    assert '- "02511022"' in text and 'start: "07:00"' in text and 'end: "18:00"' in text
    assert "&" not in text and "*" not in text  # each province's IVR its own, editable alone
    assert text.startswith("# Tổng đài 1022")


def test_given_63_provinces_when_loaded_then_every_tenant_parsed_by_libyaml(tmp_path: Path) -> None:
    """The national file loads whole; its speed (bench/provinces.py, docs/performance.md P10)
    comes from libyaml's parser, used whenever PyYAML was built with it."""
    path = tmp_path / "national.yaml"
    path.write_text(national_yaml(), encoding="utf-8")
    config = load_config(path)
    assert len(config.tenants) == 63
    if hasattr(yaml, "CSafeLoader"):
        assert issubclass(parse._UniqueKeyLoader, yaml.CSafeLoader)


def test_given_the_national_file_when_the_console_edits_the_last_province_then_only_it_changes(
) -> None:
    text = national_yaml()
    assert [s.lines for s in read_shifts(text, "camau")] == ["15", "2"]
    new, changes = patch_shifts(text, "camau", [ShiftEdit("night", "lines", "2", "4")])
    assert [(c.shift, c.field, c.old, c.new) for c in changes] == [("night", "lines", "2", "4")]
    old_lines, new_lines = text.splitlines(), new.splitlines()
    diff = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert diff == [("    lines: 2", "    lines: 4")]
    config = parse_config_text(new, "x")
    assert [s.lines for s in config.tenants[-1].shifts] == [15, 4]
    assert [s.lines for s in config.tenants[-2].shifts] == [15, 2]


def test_given_a_province_whose_shifts_alias_another_when_edited_then_refused() -> None:
    from callcenter.config.edit import ConfigEditError

    text = national_yaml(["0251", "0237"])
    text = text.replace("  shifts:\n", "  shifts: &std\n", 1)
    head, tail = text.split("- id: dongnai", 1)
    start = tail.index("  shifts:")
    end = tail.index("  prompts:")
    text = head + "- id: dongnai" + tail[:start] + "  shifts: *std\n" + tail[end:]
    thanhhoa, dongnai = parse_config_text(text, "x").tenants  # valid: one pool shape for both
    assert (thanhhoa.id, dongnai.id) == ("thanhhoa", "dongnai")
    assert thanhhoa.shifts == dongnai.shifts
    for tenant in ("thanhhoa", "dongnai"):
        with pytest.raises(ConfigEditError) as e:
            patch_shifts(text, tenant, [ShiftEdit("day", "lines", "15", "1")])
        assert e.value.id == "config.not_editable"


def test_given_the_command_when_run_then_it_writes_a_file_check_config_accepts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "national.yaml"
    assert main(["config", "provinces", "--out", str(out), "--day-lines", "20",
                 "--night-lines", "3"]) == 0
    assert "63 provinces" in capsys.readouterr().err
    assert main(["check-config", str(out)]) == 0
    config = load_config(out)
    assert len(config.tenants) == 63
    assert {tuple(s.lines for s in t.shifts) for t in config.tenants} == {(20, 3)}
    # Not overwritten by accident.
    assert main(["config", "provinces", "--out", str(out), "--only", "0251"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["config", "provinces", "--out", str(out), "--only", "0251,028", "--force"]) == 0
    assert [t.id for t in load_config(out).tenants] == ["dongnai", "hochiminh"]


def test_given_bad_options_when_run_then_refused_with_the_reason(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "provinces", "--only", "0999"]) == 1
    assert "unknown province '0999'" in capsys.readouterr().err
    assert main(["config", "provinces", "--day-lines", "5000"]) == 1
    assert "--day-lines 5000" in capsys.readouterr().err


def test_given_no_out_when_run_then_the_yaml_goes_to_stdout(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "provinces", "--only", "0237"]) == 0
    text = capsys.readouterr().out
    assert [t.numbers for t in parse_config_text(text, "x").tenants] == [("02371022",)]
