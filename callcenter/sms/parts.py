"""How an SMS text is encoded and how many parts (billed messages) it takes.

Pure. The text is NFC-normalised first: Vietnamese typed on some keyboards arrives decomposed
("ô" as "o" + U+0302), which would double the count of every accented letter.

GSM 03.38 7-bit (the default alphabet, plus the extension table whose characters are sent as
ESC + char and so count 2 septets): 160 septets in one SMS, 153 per part when concatenated
(the 6-octet concatenation header takes 7 septets). A part never ends between ESC and its
character, so an extension character that would straddle a boundary starts the next part;
Kannel 1.4.5 splits the same way (checked with fakesmsc).

Anything outside that alphabet (every Vietnamese letter with a diacritic but a few) needs
UCS-2: 70 UTF-16 code units in one SMS, 67 per part. A character outside the BMP (an emoji)
is a surrogate pair and counts 2; Kannel splits between the two halves when the boundary
falls there, so the count is plain arithmetic on code units.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

Coding = Literal["gsm7", "ucs2"]

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67
# Kannel's `max-messages` for the sendsms user: a longer text is refused before it is queued.
MAX_PARTS = 10

# GSM 03.38 default alphabet (ESC, 0x1B, is not a character of its own and is left out).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: sent as ESC + character, two septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SmsEncoding:
    """The coding a text needs, its length in that coding's units, and its part count."""

    coding: Coding
    units: int  # septets (gsm7) or UTF-16 code units (ucs2)
    parts: int


def normalise_text(text: str) -> str:
    """The text as it is sent and counted: Unicode NFC."""
    return unicodedata.normalize("NFC", text)


def is_gsm7(text: str) -> bool:
    """True if every character is in the GSM 03.38 default alphabet or its extension table."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _gsm7_parts(septets: list[int]) -> int:
    """Parts of a concatenated GSM-7 text: greedy, no ESC pair cut at a part boundary."""
    parts, used = 1, 0
    for width in septets:
        if used + width > GSM7_PART:
            parts, used = parts + 1, 0
        used += width
    return parts


def sms_parts(text: str) -> SmsEncoding:
    """Coding, units and parts of `text` (NFC first); an empty text is one empty SMS."""
    text = normalise_text(text)
    if is_gsm7(text):
        widths = [2 if c in GSM7_EXTENSION else 1 for c in text]
        units = sum(widths)
        parts = 1 if units <= GSM7_SINGLE else _gsm7_parts(widths)
        return SmsEncoding("gsm7", units, parts)
    units = len(text.encode("utf-16-be")) // 2
    parts = 1 if units <= UCS2_SINGLE else -(-units // UCS2_PART)
    return SmsEncoding("ucs2", units, parts)
