"""SMS coding and part counting: GSM 03.38 7-bit vs UCS-2, at every boundary."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.sms.parts import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SmsEncoding,
    is_gsm7,
    normalise_text,
    sms_parts,
)

RESOLVE_NOTICE = ("Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. "
                  "Xin cảm ơn!")
GSM_CHARS = st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION))
BASIC_CHARS = st.sampled_from(sorted(GSM7_BASIC))
UCS2_ONLY = st.characters(codec="utf-16", exclude_characters="".join(GSM7_BASIC | GSM7_EXTENSION),
                          exclude_categories=("Cs",))


def test_given_seeds_resolve_notice_when_counted_then_ucs2_79_units_2_parts() -> None:
    assert len(RESOLVE_NOTICE) == 79
    assert sms_parts(RESOLVE_NOTICE) == SmsEncoding("ucs2", 79, 2)


def test_given_decomposed_vietnamese_when_counted_then_same_as_composed() -> None:
    decomposed = unicodedata.normalize("NFD", RESOLVE_NOTICE)
    assert len(decomposed) > 79
    assert sms_parts(decomposed) == SmsEncoding("ucs2", 79, 2)
    assert normalise_text(decomposed) == RESOLVE_NOTICE


@pytest.mark.parametrize(("length", "parts"), [
    (0, 1), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4),
])
def test_given_plain_gsm_text_when_counted_then_160_single_153_per_part(
        length: int, parts: int) -> None:
    assert sms_parts("a" * length) == SmsEncoding("gsm7", length, parts)


@pytest.mark.parametrize(("length", "parts"), [
    (1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4),
])
def test_given_ucs2_text_when_counted_then_70_single_67_per_part(length: int, parts: int) -> None:
    assert sms_parts("ơ" * length) == SmsEncoding("ucs2", length, parts)


@pytest.mark.parametrize("char", sorted(GSM7_EXTENSION))
def test_given_extension_char_when_counted_then_two_septets(char: str) -> None:
    assert sms_parts(char) == SmsEncoding("gsm7", 2, 1)
    assert sms_parts("a" * 158 + char) == SmsEncoding("gsm7", 160, 1)
    assert sms_parts("a" * 159 + char) == SmsEncoding("gsm7", 161, 2)


def test_given_extension_char_across_a_part_boundary_when_counted_then_moves_to_next_part() -> None:
    # 152 + 2 + 152 = 306 septets, but the € may not be cut: parts of 152, 153 and 1.
    assert sms_parts("b" * 152 + "€" + "c" * 152) == SmsEncoding("gsm7", 306, 3)
    assert sms_parts("b" * 151 + "€" + "c" * 153) == SmsEncoding("gsm7", 306, 2)


def test_given_chars_outside_the_bmp_when_counted_then_two_code_units_each() -> None:
    assert sms_parts("😀") == SmsEncoding("ucs2", 2, 1)
    assert sms_parts("a" * 68 + "😀") == SmsEncoding("ucs2", 70, 1)
    assert sms_parts("a" * 69 + "😀") == SmsEncoding("ucs2", 71, 2)
    # Kannel cuts a surrogate pair at a part boundary: plain arithmetic on code units.
    assert sms_parts("a" * 66 + "😀" + "d" * 66) == SmsEncoding("ucs2", 134, 2)


@pytest.mark.parametrize(("text", "gsm"), [
    ("Xin chao", True), ("é è ù ì ò à Ä Ö Ñ Ü ß Ç", True), ("ΔΦΓΛΩΠΨΣΘΞ", True),
    ("€[]{}^~\\|\f", True), ("ê", False), ("ô", False), ("đ", False), ("ç", False),
    ("á", False), ("\x1b", False), ("`", False),
])
def test_given_char_when_checked_then_gsm_alphabet_decides(text: str, gsm: bool) -> None:
    assert is_gsm7(text) is gsm
    assert sms_parts(text).coding == ("gsm7" if gsm else "ucs2")


@given(st.text(GSM_CHARS, max_size=800))
def test_given_any_gsm_text_when_counted_then_septets_and_parts_consistent(text: str) -> None:
    enc = sms_parts(text)
    ext = sum(c in GSM7_EXTENSION for c in text)
    assert enc.coding == "gsm7"
    assert enc.units == len(text) + ext
    if enc.units <= 160:
        assert enc.parts == 1
    else:
        # At least the arithmetic count; one more part at most per extension character cut.
        assert -(-enc.units // 153) <= enc.parts <= -(-enc.units // 153) + ext


@given(st.text(BASIC_CHARS, max_size=800))
def test_given_basic_gsm_text_when_counted_then_exact_arithmetic(text: str) -> None:
    n = len(text)
    assert sms_parts(text).parts == (1 if n <= 160 else -(-n // 153))


@given(st.text(GSM_CHARS, max_size=300), UCS2_ONLY, st.text(GSM_CHARS, max_size=300))
def test_given_one_non_gsm_char_when_counted_then_whole_text_ucs2(
        head: str, char: str, tail: str) -> None:
    text = normalise_text(head + char + tail)
    enc = sms_parts(text)
    assert enc.coding == "ucs2"
    assert enc.units == len(text.encode("utf-16-be")) // 2
    assert enc.parts == (1 if enc.units <= 70 else -(-enc.units // 67))


@given(st.text(max_size=400))
def test_given_any_text_when_counted_then_nfc_invariant(text: str) -> None:
    assert sms_parts(text) == sms_parts(unicodedata.normalize("NFD", text))
