"""Read what Kannel's test SMSC (fakesmsc) received: whole texts, concatenated parts joined.

fakesmsc logs each submitted part as ``Got message N: <SENDER RECEIVER KIND ...>``:

* ``text <raw text>`` — one GSM-7 SMS, as UTF-8, not encoded;
* ``ucs-2 <url-encoded UTF-16BE>`` — one UCS-2 SMS;
* ``data <url-encoded octets>`` — one 8-bit SMS;
* ``udh <url-encoded UDH> data <url-encoded octets>`` — one part of a concatenated SMS,
  UTF-8 for GSM-7 texts and UTF-16BE for UCS-2 ones (the line does not say which; a UTF-16
  payload of Latin-script text always holds NUL octets, a UTF-8 one never does).

Parts are joined by their concatenation header (IEI 0 or 8: reference, total, sequence)
before decoding: Kannel may cut a UTF-16 surrogate pair between two parts.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"Got message \d+: <(.*)>\s*$")


@dataclass(frozen=True)
class ReceivedSms:
    """One whole text as the SMSC got it."""

    sender: str
    receiver: str
    text: str
    parts: int
    coding: str  # "gsm7" or "ucs2" (as read from the line, or guessed for joined parts)


def _unquote(s: str) -> bytes:
    return urllib.parse.unquote_to_bytes(s.replace("+", "%20"))


def _concat_header(udh: bytes) -> tuple[int, int, int] | None:
    """(reference, total, sequence) from a UDH, or None if it has no concatenation element."""
    i = 1  # udh[0] is the header length
    while i + 1 < len(udh):
        iei, length = udh[i], udh[i + 1]
        body = udh[i + 2:i + 2 + length]
        if iei == 0x00 and length == 3:
            return body[0], body[1], body[2]
        if iei == 0x08 and length == 4:
            return (body[0] << 8) | body[1], body[2], body[3]
        i += 2 + length
    return None


def _decode(payload: bytes, coding: str | None) -> tuple[str, str]:
    if coding is None:
        coding = "ucs2" if b"\x00" in payload else "gsm7"
    if coding == "ucs2":
        return payload.decode("utf-16-be", errors="surrogatepass"), coding
    return payload.decode("utf-8", errors="replace"), coding


def parse_lines(lines: list[str], coding: str | None = None) -> list[ReceivedSms]:
    """The whole texts in fakesmsc log lines, in the order their last part arrived.

    `coding` forces how joined parts are decoded; by default it is guessed (see above).
    Parts of a text not yet complete are left out.
    """
    out: list[ReceivedSms] = []
    open_parts: dict[tuple[str, str, int, int], dict[int, bytes]] = {}
    for line in lines:
        m = _LINE.search(line)
        if not m:
            continue
        fields = m.group(1).split(" ", 3)
        if len(fields) < 3:
            continue
        sender, receiver, kind = fields[0], fields[1], fields[2]
        rest = fields[3] if len(fields) > 3 else ""
        if kind == "text":
            out.append(ReceivedSms(sender, receiver, rest, 1, "gsm7"))
        elif kind == "ucs-2":
            text = _unquote(rest).decode("utf-16-be", errors="surrogatepass")
            out.append(ReceivedSms(sender, receiver, text, 1, "ucs2"))
        elif kind == "data":
            text, guessed = _decode(_unquote(rest), coding)
            out.append(ReceivedSms(sender, receiver, text, 1, guessed))
        elif kind == "udh":
            udh_field, _, data = rest.partition(" data ")
            header = _concat_header(_unquote(udh_field))
            if header is None:
                text, guessed = _decode(_unquote(data), coding)
                out.append(ReceivedSms(sender, receiver, text, 1, guessed))
                continue
            ref, total, seq = header
            key = (sender, receiver, ref, total)
            got = open_parts.setdefault(key, {})
            got[seq] = _unquote(data)
            if len(got) == total and set(got) == set(range(1, total + 1)):
                del open_parts[key]
                text, guessed = _decode(b"".join(got[i] for i in range(1, total + 1)), coding)
                out.append(ReceivedSms(sender, receiver, text, total, guessed))
    return out


def received(log_file: Path, coding: str | None = None) -> list[ReceivedSms]:
    """The whole texts fakesmsc has logged in `log_file` so far (see `parse_lines`)."""
    if not log_file.exists():
        return []
    return parse_lines(log_file.read_text(encoding="utf-8", errors="replace").splitlines(),
                       coding)


def parts_received(log_file: Path) -> int:
    """How many SMS (parts) fakesmsc has logged: what an operator would bill."""
    if not log_file.exists():
        return 0
    return sum(1 for line in log_file.read_text(errors="replace").splitlines()
               if _LINE.search(line))
