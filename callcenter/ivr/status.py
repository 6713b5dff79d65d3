"""Status by phone: what the IVR says about a caller's tickets, and how typed codes read. Pure.

A ``status_lookup`` node (callcenter.ivr.tree.StatusNode) looks up the open tickets of the
caller's number and reads, newest first and at most ``MAX_READ`` of them, each one's number
(the code's digits after the date), its state, the unit holding it and its due time. A caller
with none (or after hearing them) may key in a ticket's number and ``#``:

* 1-6 digits: the sequence number after the date (``42`` or ``0042`` for DN-20261207-0042),
  searched only among the tickets of the caller's own number (newest first): a sequence number
  alone names one ticket per day, so it is ambiguous across days and across citizens;
* 12-14 digits: the whole numeric part, date then sequence (``202612070042``): exactly one
  code. Whose tickets it may find is the node's ``codes`` setting: ``own`` (default) only the
  caller's number's, ``any`` any of the tenant's (still only unit, state and due time are said).

How it is spoken: dynamic data is never synthesised per call. Every sentence is a sequence of
fixed fragments (numbers 0-99, "14 giờ", "30 phút", "ngày 12", "tháng 3", each unit's name,
each state's phrase) that ``fragments`` lists, so the prompt builder makes them all ahead of
time and a lookup plays cached files at once, one after another (the menu's prompt queue);
this is how mature IVRs speak numbers and dates (Asterisk's own SayNumber/SayDate). One-off
synthesis would work too (the prompt library synthesises an unknown text on first use: here
about 20-150 ms for a sentence with espeak-ng + sox), but it puts espeak in every lookup's
path, makes one cache file per ticket, state and due minute (never cleaned), and cannot be
replaced by a recorded voice; fragments are a fixed set (about 250 plus the units) that a
province can record (``st-*.wav``). Fragments are clipped (``Prompt.clip``): espeak pads each
with ~0.4 s of silence, which would make "không không bốn hai" last 2.7 s instead of ~1.2 s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from callcenter.ivr.tree import Prompt

MAX_READ = 3  # tickets read out per lookup (the newest)
MAX_TYPED = 14  # digits a typed code may have: YYYYMMDD + a 4-6 digit sequence
SEQ_DIGITS = (1, 6)  # a sequence number alone
FULL_DIGITS = (12, 14)  # date + sequence

LEVEL1_STATES = frozenset({"new", "returned", "reopened"})
AT_UNIT_STATES = frozenset({"forwarded", "in_progress"})
OPEN_STATES = LEVEL1_STATES | AT_UNIT_STATES

_DIGIT_WORDS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")


def vi_number(n: int) -> str:
    """0..99 in Vietnamese words ("hai mươi mốt", "mười lăm", "ba mươi tư")."""
    if not 0 <= n <= 99:
        raise ValueError(f"{n}: expected 0..99")
    if n < 10:
        return _DIGIT_WORDS[n]
    tens, ones = divmod(n, 10)
    head = "mười" if tens == 1 else f"{_DIGIT_WORDS[tens]} mươi"
    if ones == 0:
        return head
    if ones == 5:
        tail = "lăm"
    elif ones == 1 and tens > 1:
        tail = "mốt"
    elif ones == 4 and tens > 1:
        tail = "tư"
    else:
        tail = _DIGIT_WORDS[ones]
    return f"{head} {tail}"


@dataclass(frozen=True)
class TicketStatus:
    """What may be said about one ticket: no name, no content, no number."""

    code: str  # DN-20261207-0042
    state: str  # callcenter.tickets.rules.TicketState value
    unit: str | None = None  # unit id holding it (or that resolved it)
    unit_name: str | None = None  # None: the unit is not in the config (any more)
    due: dt.datetime | None = None  # resolve due time, local wall time (open tickets)
    late: bool = False  # the due time has passed


@dataclass(frozen=True)
class LookupResult:
    """A lookup's answer: the tickets to read (newest first) and how many matched in all."""

    tickets: tuple[TicketStatus, ...] = ()
    total: int = 0
    failed: bool = False  # the ticket store did not answer (outage, timeout)


UNAVAILABLE = LookupResult(failed=True)


@dataclass(frozen=True)
class TypedCode:
    """A ticket number keyed in: the sequence, and the date when the whole part was typed."""

    seq: int
    date: dt.date | None = None

    def suffix(self) -> str:
        """The end of the code it names: ``-0042`` or ``-20261207-0042``."""
        seq = f"{self.seq:04d}"
        return f"-{self.date:%Y%m%d}-{seq}" if self.date is not None else f"-{seq}"


def parse_typed(digits: str) -> TypedCode | None:
    """The code a caller keyed in, or None if it cannot be one (see the module doc)."""
    if not digits.isdigit() or not digits.isascii():
        return None
    n = len(digits)
    if SEQ_DIGITS[0] <= n <= SEQ_DIGITS[1]:
        seq = int(digits)
        return TypedCode(seq) if seq >= 1 else None
    if FULL_DIGITS[0] <= n <= FULL_DIGITS[1]:
        try:
            date = dt.datetime.strptime(digits[:8], "%Y%m%d").date()
        except ValueError:
            return None
        seq = int(digits[8:])
        return TypedCode(seq, date) if seq >= 1 else None
    return None


def code_number(code: str) -> str:
    """The digits after the date (``0042`` of DN-20261207-0042): what the caller hears."""
    return code.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class StatusTexts:
    """The fixed sentences of a status lookup (fragments are in ``fragments``)."""

    none: Prompt = Prompt("st-none", "Hiện không có phản ánh nào của số điện thoại quý khách "
                                     "đang được giải quyết.")
    ask: Prompt = Prompt("st-ask", "Để tra cứu theo mã phiếu, xin nhập số thứ tự của phiếu, "
                                   "hoặc toàn bộ phần số của mã phiếu, rồi bấm phím thăng. "
                                   "Để trở về menu chính, xin bấm phím thăng.")
    again: Prompt = Prompt("st-again", "Để nghe lại, xin bấm phím sao.")
    not_found: Prompt = Prompt("st-not-found", "Không tìm thấy phiếu có mã số quý khách vừa "
                                               "nhập trong các phản ánh của số điện thoại này.")
    bad_code: Prompt = Prompt("st-bad-code", "Mã số quý khách vừa nhập không hợp lệ.")
    unavailable: Prompt = Prompt("st-unavailable", "Hệ thống tra cứu tạm thời gián đoạn, xin "
                                                   "quý khách vui lòng thử lại sau.")


TEXTS = StatusTexts()

# Fragments (id -> text). Ids are stable: a recorded st-*.wav replaces any of them.
_F = {
    "st-count-pre": "Quý khách có",
    "st-count-post": "phản ánh đang được giải quyết.",
    "st-newest": "Sau đây là ba phản ánh mới nhất.",
    "st-ticket": "Phiếu số",
    "st-forwarded": "đã được chuyển đến",
    "st-forwarded-post": "và đang chờ đơn vị tiếp nhận.",
    "st-in-progress": "đang được",
    "st-in-progress-post": "giải quyết.",
    "st-level1": "đang được Tổng đài 1022 xem xét để chuyển đơn vị giải quyết.",
    "st-resolved": "đã được",
    "st-resolved-post": "giải quyết xong.",
    "st-answered": "đã được Tổng đài 1022 trả lời.",
    "st-closed": "đã kết thúc.",
    "st-due": "Hạn giải quyết:",
    "st-late": "Đã quá hạn giải quyết, hạn là",
    "st-some-unit": "đơn vị chức năng",
}


def _f(fid: str) -> Prompt:
    return Prompt(fid, _F[fid], clip=True)


def number_prompt(n: int) -> Prompt:
    """A number 0..99 as a fragment."""
    return Prompt(f"st-n-{n}", vi_number(n), clip=True)


def unit_prompt(unit_id: str, name: str) -> Prompt:
    """A unit's name as a fragment (a recorded ``st-unit-<id>.wav`` replaces it)."""
    return Prompt(f"st-unit-{unit_id}", name, clip=True)


def _hour(h: int) -> Prompt:
    return Prompt(f"st-h-{h}", f"{vi_number(h)} giờ", clip=True)


def _minute(m: int) -> Prompt:
    return Prompt(f"st-min-{m}", f"{vi_number(m)} phút", clip=True)


def _day(d: int) -> Prompt:
    return Prompt(f"st-d-{d}", f"ngày {vi_number(d)}", clip=True)


def _month(m: int) -> Prompt:
    return Prompt(f"st-mo-{m}", "tháng tư" if m == 4 else f"tháng {vi_number(m)}", clip=True)


def when_prompts(at: dt.datetime) -> list[Prompt]:
    """"mười bốn giờ", "ba mươi phút", "ngày bảy", "tháng mười hai" (no minutes on the hour)."""
    out = [_hour(at.hour)]
    if at.minute:
        out.append(_minute(at.minute))
    return [*out, _day(at.day), _month(at.month)]


def _unit(t: TicketStatus) -> Prompt:
    if t.unit is not None and t.unit_name:
        return unit_prompt(t.unit, t.unit_name)
    return _f("st-some-unit")


def ticket_prompts(t: TicketStatus) -> list[Prompt]:
    """One ticket: its number digit by digit, its state and holder, its due time if open."""
    out = [_f("st-ticket"), *(number_prompt(int(c)) for c in code_number(t.code) if c.isdigit())]
    if t.state == "forwarded":
        out += [_f("st-forwarded"), _unit(t), _f("st-forwarded-post")]
    elif t.state == "in_progress":
        out += [_f("st-in-progress"), _unit(t), _f("st-in-progress-post")]
    elif t.state == "resolved":
        out += [_f("st-resolved"), _unit(t), _f("st-resolved-post")]
    elif t.state == "answered":
        out.append(_f("st-answered"))
    elif t.state == "closed":
        out.append(_f("st-closed"))
    else:  # new, returned, reopened: level 1 holds it
        out.append(_f("st-level1"))
    if t.state in OPEN_STATES and t.due is not None:
        out += [_f("st-late" if t.late else "st-due"), *when_prompts(t.due)]
    return out


def readout(result: LookupResult) -> list[Prompt]:
    """What a caller with open tickets hears: how many, then the newest ``MAX_READ``."""
    if not result.tickets:
        return [TEXTS.none]
    total = max(result.total, len(result.tickets))
    out = [_f("st-count-pre"), number_prompt(min(total, 99)), _f("st-count-post")]
    if total > MAX_READ:
        out.append(_f("st-newest"))
    for t in result.tickets[:MAX_READ]:
        out += ticket_prompts(t)
    return out


def fragments(units: Iterable[tuple[str, str]] = ()) -> list[Prompt]:
    """Every fragment a readout can use, for building ahead: ``units`` = (id, name)."""
    out = [_f(k) for k in _F]
    out += [number_prompt(n) for n in range(100)]
    out += [_hour(h) for h in range(24)] + [_minute(m) for m in range(1, 60)]
    out += [_day(d) for d in range(1, 32)] + [_month(m) for m in range(1, 13)]
    out += [unit_prompt(uid, name) for uid, name in units]
    t = TEXTS
    out += [t.none, t.ask, t.again, t.not_found, t.bad_code, t.unavailable]
    return out


def codes_text(result: LookupResult) -> str:
    """The codes read out, for the call's IVR path ("DN-20261207-0042 DN-20261206-0007")."""
    return " ".join(t.code for t in result.tickets[:MAX_READ])
