"""Vietnamese phone numbers (callcenter.numbers): one canonical form, validation, masking; pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.numbers import (
    dial_digits,
    mask_number,
    normalise_number,
    same_number,
    vietnamese_mobile,
    vietnamese_phone,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("1022", "1022"),
        ("02511022", "02511022"),
        ("+842511022", "02511022"),
        ("0251.1022", "02511022"),
        ("0251 1022", "02511022"),
        ("0251-1022", "02511022"),
        (" +84 251 1022 ", "02511022"),
        ("00842511022", "02511022"),
        ("84912345678", "0912345678"),   # bare 84 + 9-10 digit national number
        ("842511022", "842511022"),      # bare 84 + 7 digits: could be local, left alone
        ("+14155550100", "+14155550100"),
        ("", ""),
    ],
)
def test_given_number_when_normalised_then_canonical(raw: str, normalised: str) -> None:
    assert normalise_number(raw) == normalised


@pytest.mark.parametrize(("number", "mobile", "phone"), [
    ("0912345678", "0912345678", "0912345678"),
    ("+84 912 345 678", "0912345678", "0912345678"),
    ("84-35-123-4567", "0351234567", "0351234567"),
    ("0084 789 000 111", "0789000111", "0789000111"),
    ("028.3822.1234", None, "02838221234"),
    ("0251 3822 000", None, "02513822000"),
    ("1022", None, None),
    ("0123456789", None, None),
    ("091234567", None, None),
])
def test_given_number_when_checked_then_vietnamese_mobile_or_phone(
        number: str, mobile: str | None, phone: str | None) -> None:
    assert vietnamese_mobile(number) == mobile
    assert vietnamese_phone(number) == phone


@pytest.mark.parametrize(("a", "b", "same"), [
    ("0251 3822 000", "02513822000", True),
    ("+84 251 3822 000", "02513822000", True),
    ("0084 251 3822 000", "0251.3822.000", True),   # the international prefix dialled as 00
    ("842513822000", "02513822000", True),          # bare 84 before a national number
    ("1022", "1022", True),
    ("1022", "02511022", False),                    # the short code is not the province's line
    ("02513822000", "02513822001", False),
    ("", "", False),                                # nothing is no number
    ("+14155550100", "14155550100", False),         # another country's number is left alone
])
def test_given_two_numbers_when_compared_then_same_line_or_not(a: str, b: str, same: bool) -> None:
    assert same_number(a, b) is same
    assert same_number(b, a) is same


def test_given_formatted_number_when_dialled_then_digits_and_plus_only() -> None:
    assert dial_digits(" 0251-3822.000 ") == "02513822000"
    assert dial_digits("+84 (251) 3822 000") == "+842513822000"


@pytest.mark.parametrize(("number", "masked"), [
    ("0909123456", "*******456"),
    ("456", "***"),
    ("12", "**"),
    ("", ""),
])
def test_given_number_when_masked_then_only_last_three_digits_shown(number: str,
                                                                  masked: str) -> None:
    assert mask_number(number) == masked


@given(st.text(alphabet="0123456789+ .-", max_size=20))
def test_given_any_number_when_normalised_twice_then_same_as_once(raw: str) -> None:
    once = normalise_number(raw)
    assert normalise_number(once) == once
    assert same_number(raw, once) is bool(dial_digits(raw))
