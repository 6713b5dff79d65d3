"""Vietnamese phone numbers: one canonical form for matching, validating and masking; pure.

Every part of the hotline that compares, stores or shows a number goes through here, so two
rooms never disagree on whether ``+84 251 1022`` and ``02511022`` are the same line:

* ``normalise_number``: the national form used for matching (``+84``/``0084``/``84…`` → ``0…``);
* ``dial_digits``: what is dialled (digits and a leading ``+``);
* ``same_number``: two numbers naming the same line;
* ``vietnamese_mobile`` / ``vietnamese_phone``: validation of numbers we text or call back;
* ``mask_number``: the only way a citizen's number appears in logs and audit details.

Why not the ``phonenumbers`` library: the hotline's numbers are national forms, provinces'
``0XXX1022`` lines and short codes (``1022``) that must pass through unchanged; the rules the
hotline needs are these few lines, checked by tests, without a 40 MB metadata dependency.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s.\-]+")
_NATIONAL = re.compile(r"[0-9]{9,10}")
_NOT_DIGITS = re.compile(r"[^0-9+]")
_MOBILE = re.compile(r"0[35789][0-9]{8}")
_FIXED = re.compile(r"02[0-9]{9}")


def normalise_number(s: str) -> str:
    """Canonical form of a Vietnamese number for matching.

    Spaces, dots and dashes are removed. ``+84`` (international form, unambiguous) becomes ``0``;
    ``0084`` likewise; a bare ``84`` becomes ``0`` only when followed by a 9-10 digit national
    number, so that short or local numbers that merely start with 84 are left alone.
    Anything else (short codes like ``1022``, other countries' ``+`` numbers) is returned as is.

    >>> normalise_number("+84 251.1022")
    '02511022'
    """
    n = _SEPARATORS.sub("", s.strip())
    if n.startswith("+84") and n[3:].isdigit():
        return "0" + n[3:]
    if n.startswith("0084") and n[4:].isdigit():
        return "0" + n[4:]
    if n.startswith("84") and _NATIONAL.fullmatch(n[2:]):
        return "0" + n[2:]
    return n


def dial_digits(number: str) -> str:
    """A number as dialled: digits and a leading +, spaces, dots and dashes dropped."""
    return _NOT_DIGITS.sub("", number.strip())


def same_number(a: str, b: str) -> bool:
    """Whether two numbers name the same line (``+84 251 …``, ``0084251…`` and ``0251…`` do)."""
    x, y = normalise_number(dial_digits(a)), normalise_number(dial_digits(b))
    return bool(x) and x == y


def vietnamese_mobile(number: str) -> str | None:
    """The national form (0xxxxxxxxx) of a Vietnamese mobile number, or None if it is not one."""
    n = normalise_number(number)
    return n if _MOBILE.fullmatch(n) else None


def vietnamese_phone(number: str) -> str | None:
    """The national form of a Vietnamese mobile or fixed-line number, or None."""
    n = normalise_number(number)
    return n if _MOBILE.fullmatch(n) or _FIXED.fullmatch(n) else None


def mask_number(number: str) -> str:
    """Keep only the last three digits: citizens' numbers never appear whole above DEBUG."""
    if len(number) <= 3:
        return "*" * len(number)
    return "*" * (len(number) - 3) + number[-3:]
