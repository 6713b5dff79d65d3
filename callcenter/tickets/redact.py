"""Personal data removal for the public disclosure of petitions and answers; pure, heuristic.

``redact(text, known_names)`` masks, with Vietnamese placeholders:

* full names after a form of address (ông, bà, anh, chị, em, cô, chú, bác, cháu, cụ; in a text
  written without diacritics also ong, ba, chi, co, chu, bac, chau) or an introduction ("tôi
  là", "tên là", "họ và tên:"), and every occurrence of a name passed in (the citizen's),
  with or without diacritics: ``[họ tên]``;
* phone numbers, Vietnamese mobile and fixed (09xx xxx xxx, 0xx.xxxx.xxxx, +84 9x..., 84...,
  (0251) 3822 123, with dots, spaces or dashes): ``[số điện thoại]``;
* ID numbers: 12 digits (CCCD) ``[số CCCD]``, 9 digits (old CMND) ``[số CMND]``, and any
  number right after "CCCD", "CMND", "căn cước", "chứng minh"; bank accounts after "số tài
  khoản"/"STK": ``[số tài khoản]``; e-mail addresses: ``[email]``; Facebook and Zalo
  profile links: ``[trang cá nhân]``;
* exact addresses, house number with its lane and street ("số 12 đường Nguyễn Văn Cừ",
  "123 Nguyễn Văn Cừ" after "tại"/"ở"/a comma, "hẻm 34/2 đường ...", "nhà số 7"):
  ``[địa chỉ]``; the ward, commune and district after them stay.

Left alone on purpose: dates and times, money ("1.000.000 đồng", "2,5 triệu"), ticket codes
(DN-20261123-0042), document numbers (9193/UBND-HCC), hotline numbers (1022, 0251.1022),
place names that begin like a form of address (Bà Rịa, Bà Chiểu) when capitalised in the
middle of a sentence, and titles after a form of address ("ông Chủ tịch UBND xã").

The text is NFC-normalised first (decomposed input would break words at every accent). The
rules are heuristics: a supervisor still reviews what is published.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["name", "phone", "id_card", "email", "address", "bank_account", "profile"]
PLACEHOLDERS: dict[str, str] = {
    "name": "[họ tên]",
    "phone": "[số điện thoại]",
    "cccd": "[số CCCD]",
    "cmnd": "[số CMND]",
    "email": "[email]",
    "address": "[địa chỉ]",
    "bank_account": "[số tài khoản]",
    "profile": "[trang cá nhân]",
}


def _letters(pred: str) -> str:
    chars = [chr(c) for c in range(0x41, 0x250) if getattr(chr(c), pred)()]
    chars += [chr(c) for c in range(0x1E00, 0x1F00) if getattr(chr(c), pred)()]
    return "".join(re.escape(c) for c in chars if c.isalpha())


_U = _letters("isupper")
_L = _letters("islower")
_CAP = rf"[{_U}][{_U}{_L}]*"  # a capitalised (or all-caps) word
_MARKED = re.compile(r"[À-ÃÈ-ÊÌÍÒ-ÕÙÚÝà-ãè-êìíò-õùúýĂăĐđĨĩŨũƠơƯưẠ-ỹ]")


def _fold(text: str) -> str:
    """Lower case without diacritics, one character for one (so offsets carry over)."""
    out = []
    for ch in text:
        if ch in "đĐ":
            out.append("d")
            continue
        base = unicodedata.normalize("NFD", ch)[0]
        low = base.lower()
        out.append(low if len(low) == 1 else base)
    return "".join(out)


@dataclass(frozen=True)
class Finding:
    """One piece of personal data found: where (in the NFC text) and what replaces it."""

    start: int
    end: int
    kind: Kind
    placeholder: str


# ---- numbers ----------------------------------------------------------------------------------
_SEP = r"[ .\-]?"
_B = r"(?<![\w+/.,-])"  # left edge: not inside a word, code, amount or date
_E = r"(?![\w/]|[.,-]\d)"  # right edge
_PHONE = re.compile(
    _B + r"(?:"
    rf"(?:\(\+?84\)\s?|\+84{_SEP}|0084{_SEP}|84{_SEP}|0)[35789](?:{_SEP}\d){{8}}"  # mobile
    rf"|(?:\(\+?84\)\s?|\+84{_SEP}|0084{_SEP}|0)2(?:{_SEP}\d){{9}}"  # fixed, 02x + 8 digits
    rf"|\(0\d{{2,3}}\)\s?\d(?:{_SEP}\d){{6,7}}"  # (0251) 3822 123
    r")" + _E)
_PHONE_KEYWORD = re.compile(
    r"(?<!\w)(?i:số điện thoại|so dien thoai|điện thoại|dien thoai|sđt|sdt|đt|dt|tel|phone|zalo)"
    r"\s*(?:[:.]|là|la|số|so)?\s*(\+?\d(?:[ .\-]?\d){6,12})(?!\w)")
_ID_KEYWORD = re.compile(
    r"(?<!\w)(?i:căn cước công dân|can cuoc cong dan|căn cước|can cuoc|chứng minh nhân dân|"
    r"chung minh nhan dan|chứng minh thư|chung minh thu|cccd|cmnd|cmt|số định danh cá nhân|"
    r"so dinh danh ca nhan|số định danh|so dinh danh|hộ chiếu|ho chieu)"
    r"(?:\s*(?:[:#]|số|so|là|la))*\s*([A-Z]?\d(?:[ .]?\d){6,11})(?!\w)")
_ACCOUNT = re.compile(
    r"(?<!\w)(?i:số tài khoản|so tai khoan|tài khoản|tai khoan|stk)"
    r"(?:\s*(?:[:#]|số|so|là|la))*\s*(\d(?:[ .\-]?\d){5,18})(?!\w)")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}(?![\w])")
# The hotline itself, 1022 or area code + 1022 (0251.1022): public, never masked.
_HOTLINE = re.compile(r"(?<![\d.])(?:0\d{2,3}[ .\-]?)?1022(?![\d])")
# Links to a person's social profile (Facebook, Zalo), a channel the hotline takes petitions on.
_PROFILE = re.compile(r"(?<![\w.])(?:https?://)?(?:www\.|m\.)?(?:facebook\.com|fb\.com|"
                      r"zalo\.me)/[^\s,;)]*[^\s,;).!?]", re.IGNORECASE)
_CCCD = re.compile(_B + r"\d{12}" + _E)
_CMND = re.compile(_B + r"\d{9}" + _E)
# Spans that look like numbers but are not personal: kept as they are.
_CURRENCY = r"(?:đồng|dong|đ|vnđ|vnd|triệu|trieu|tỷ|tỉ|ty|nghìn|nghin|ngàn|ngan|usd)(?!\w)"
_PROTECTED = [
    re.compile(r"\b[A-Z][A-Z0-9]{0,9}-\d{8}-\d{4,6}\b"),  # ticket codes
    re.compile(r"(?<![\d/])\d{1,2}[/.\-]\d{1,2}(?:[/.\-]\d{2,4})?(?![\d/])"),  # dates
    re.compile(r"\b\d{1,2}[:h]\d{2}(?::\d{2})?\b"),  # times
    re.compile(rf"\d+(?:/\d+)*/[A-ZĐ{_U}][A-Z0-9Đ{_U}&.\-]*"),  # 9193/UBND-HCC, 20/2008/NĐ-CP
    re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?:[.,]\d{3})+(?![\d])"),  # 1.000.000
    re.compile(rf"(?<![\d.,])\d+(?:[.,]\d+)?\s*(?i:{_CURRENCY})"),  # 150000000 đồng, 2,5 triệu
]

# ---- names ------------------------------------------------------------------------------------
_HONORIFIC_MARKED = ("ông", "bà", "anh", "chị", "em", "cô", "chú", "bác", "cháu", "cụ")
_HONORIFIC_PLAIN = ("ong", "ba", "anh", "chi", "em", "co", "chu", "bac", "chau")
_INTRO = re.compile(
    r"(?<!\w)(?i:họ và tên|họ tên|tên tôi là|tôi tên là|tôi tên|tên là|tôi là|người phản ánh|"
    r"ho va ten|ho ten|ten toi la|toi ten la|toi ten|ten la|toi la|nguoi phan anh)"
    r"(?=[\s:])\s*:?\s*")
# First words that start a title, an office or a place, never a name. With diacritics when the
# text has them: folded, "Chủ" and the surname "Chu", "Hiệu" and the name "Hiếu" are one word.
_NOT_NAME_MARKED = frozenset(
    "chủ phó trưởng tổ giám bí cán đội thủ hiệu kế tổng ủy uỷ ubnd hđnd sở phòng ban bộ "
    "tỉnh huyện xã phường quận ấp khu tp tt ttyt bệnh trạm ngày tháng luật nghị điều "
    "khoản".split())
_NOT_NAME_PLAIN = frozenset(
    "ubnd hdnd phuong huyen tinh xa ap tp tt so phong truong giam ttyt".split())
# Two-word starts (folded) of offices and titles: "Công an", "Trung tâm", "Văn phòng" ...
_NOT_NAME_PAIRS = frozenset({
    ("cong", "an"), ("cong", "ty"), ("trung", "tam"), ("van", "phong"), ("thanh", "pho"),
    ("thi", "xa"), ("thi", "tran"), ("bac", "si"), ("y", "ta"), ("dieu", "duong"),
    ("chu", "tich"), ("bi", "thu"), ("giam", "doc"), ("ngan", "hang"), ("dien", "luc"),
    ("cap", "nuoc"), ("buu", "dien"), ("cong", "chuc"), ("vien", "chuc"), ("canh", "sat"),
    ("quoc", "lo"), ("tinh", "lo"), ("khu", "pho"),
})
# First words after a house number that show it is no street (Phường 3, Bộ Y tế, Điều 5 ...).
_NOT_STREET_MARKED = frozenset(
    "phường xã quận huyện tỉnh thị ấp khu tổ bộ sở ban ubnd hđnd ủy uỷ luật nghị điều khoản "
    "tháng ngày năm giờ phút người hộ line chiếc tp tt".split())
_NOT_STREET_PLAIN = frozenset(
    "phuong xa quan huyen tinh ap khu bo so ban ubnd hdnd uy luat nghi dieu khoan thang "
    "ngay nam gio phut nguoi ho line chiec tp tt".split())


def _stop(word: str, folded_word: str, accented: bool, marked: frozenset[str],
          plain: frozenset[str]) -> bool:
    return word.lower() in marked if accented else folded_word in plain


_SENTENCE_END = ".!?:;\n\"“(-–•"
_CAP_RE = re.compile(_CAP)
_GAP = re.compile(r"[ \t]+")
_NEXT_WORD = re.compile(r"\s+(\w+)")
_MAX_NAME_WORDS = 5


def _name_after(text: str, folded: str, pos: int, accented: bool) -> tuple[int, int] | None:
    """The span of a name (1-5 capitalised words) starting at ``pos``, if there is one."""
    words: list[tuple[int, int]] = []
    i = pos
    while len(words) < _MAX_NAME_WORDS:
        m = _CAP_RE.match(text, i)
        if m is None:
            break
        end = m.end()
        if end < len(text) and (text[end].isalnum() or text[end] in "-_@"):
            break  # part of a code or an e-mail address
        stop = _stop(m.group(), folded[m.start():end], accented, _NOT_NAME_MARKED,
                     _NOT_NAME_PLAIN)
        if not words:
            nxt = _NEXT_WORD.match(folded, end)
            if stop or (nxt is not None
                        and (folded[m.start():end], nxt.group(1)) in _NOT_NAME_PAIRS):
                return None
        elif stop:
            break
        words.append((m.start(), end))
        gap = _GAP.match(text, end)
        if gap is None:
            break
        i = gap.end()
    if not words:
        return None
    return words[0][0], words[-1][1]


def _names(text: str, folded: str, known: Iterable[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    accented = _MARKED.search(text) is not None
    forms = _HONORIFIC_MARKED if accented else _HONORIFIC_PLAIN
    pattern = re.compile(r"(?<!\w)(" + "|".join(forms) + r")[ \t]+", re.IGNORECASE)
    for m in pattern.finditer(text):
        before = text[:m.start()].rstrip()
        if m.group(1)[0].isupper() and before and before[-1] not in _SENTENCE_END:
            continue  # "Bà Rịa", "đường Ông Ích Khiêm": part of a proper name
        span = _name_after(text, folded, m.end(), accented)
        if span is not None:
            spans.append(span)
    for m in _INTRO.finditer(text):
        span = _name_after(text, folded, m.end(), accented)
        if span is not None:
            spans.append(span)
    for name in known:
        needle = _fold(unicodedata.normalize("NFC", " ".join(name.split())))
        if len(needle) < 2:
            continue
        pat = re.compile(r"(?<!\w)" + r"\s+".join(re.escape(p) for p in needle.split())
                         + r"(?!\w)")
        spans += [(m.start(), m.end()) for m in pat.finditer(folded)]
    return spans


# ---- addresses --------------------------------------------------------------------------------
_HOUSE = r"\d{1,5}[A-Za-z]?(?:[/\-]\d{1,5}[A-Za-z]?)*"
_LANE = rf"(?i:hẻm|hem|ngõ|ngo|ngách|ngach|kiệt|kiet|kiệt)\s+{_HOUSE}"
_STREET = (rf"(?i:đường|duong|phố|pho)\s+(?:(?i:số|so)\s+\d+|{_CAP}|\d+)"
           rf"(?:[ ]+(?:{_CAP}|\d+))*")
_STREET_NAME = rf"{_CAP}(?:[ ]+{_CAP})*"
_JOIN = r"(?:\s*,\s*|\s+)"
_TAIL = rf"(?:{_JOIN}(?:{_LANE}))*(?:{_JOIN}{_STREET})?"
_ADDRESSES = [
    # nhà số 7 (...), số nhà 12 (...)
    re.compile(rf"(?<!\w)(?i:nhà số|nha so|số nhà|so nha)\s*{_HOUSE}(?:{_TAIL}"
               rf"|{_JOIN}{_STREET_NAME})?"),
    # số 12 đường X / số 12 hẻm 5 / số 12 Nguyễn Văn Cừ
    re.compile(rf"(?<!\w)(?i:số|so)\s+{_HOUSE}{_JOIN}(?:(?:{_LANE}){_TAIL}|{_STREET}"
               rf"|{_STREET_NAME})(?![/\w])"),
    # 12 đường X, 45/2 hẻm 5 đường X, hẻm 34 đường X
    re.compile(rf"(?<![\w/.,-]){_HOUSE}{_JOIN}(?:(?:{_LANE}){_TAIL}|{_STREET})"),
    re.compile(rf"(?<![\w/.,-]){_LANE}{_TAIL}"),
]
# A bare number and a street name ("123 Nguyễn Văn Cừ"): only where an address is expected.
_BARE = re.compile(rf"(?<![\w/.,-]){_HOUSE}[ ]+{_CAP}(?:[ ]+{_CAP})+")
_BARE_BEFORE = frozenset("tai o tru ngu chi nha den tu song dc".split())


_AFTER_NUMBER = re.compile(r"[\s,]*(?:(?:đường|duong|phố|pho|hẻm|hem|ngõ|ngo|ngách|ngach|"
                           r"kiệt|kiet)\s+)?(\w+)", re.IGNORECASE)
_NUMBER_TOKEN = re.compile(r"\D*?\d[\w/\-]*")
_LAST_WORD = re.compile(r"(\w+)\W*$")


def _street_ok(text: str, folded: str, end: int, number_end: int, accented: bool) -> bool:
    """Reject a "street" that is really an office, a place or a title (Bộ Y tế, Phường 3)."""
    m = _AFTER_NUMBER.match(text, number_end, end)
    if m is None:
        return True
    word = folded[m.start(1):m.end(1)]
    nxt = _NEXT_WORD.match(folded, m.end(1))
    if nxt is not None and (word, nxt.group(1)) in _NOT_NAME_PAIRS:
        return False  # "số 45 Văn phòng UBND tỉnh", "12 Công an ..."
    return not _stop(m.group(1), word, accented, _NOT_STREET_MARKED, _NOT_STREET_PLAIN)


def _addresses(text: str, folded: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    accented = _MARKED.search(text) is not None
    for pat in _ADDRESSES:
        for m in pat.finditer(text):
            num = _NUMBER_TOKEN.match(text, m.start())
            if num is not None and _street_ok(text, folded, m.end(), num.end(), accented):
                spans.append((m.start(), m.end()))
    for m in _BARE.finditer(text):
        num = _NUMBER_TOKEN.match(text, m.start())
        if num is None or not _street_ok(text, folded, m.end(), num.end(), accented):
            continue
        before = folded[:m.start()].rstrip()
        last = _LAST_WORD.search(before)
        if not before or before[-1] in ",;:(\n" or (last is not None
                                                     and last.group(1) in _BARE_BEFORE):
            spans.append((m.start(), m.end()))
    return spans


# ---- putting it together ----------------------------------------------------------------------
def find_personal_data(text: str, known_names: Iterable[str] = ()) -> list[Finding]:
    """Every piece of personal data in ``text`` (NFC-normalised), in order, not overlapping."""
    text = unicodedata.normalize("NFC", text)
    folded = _fold(text)
    taken: list[tuple[int, int]] = []
    found: list[Finding] = []

    def take(start: int, end: int, kind: Kind | None, placeholder: str = "") -> None:
        if start >= end or any(s < end and start < e for s, e in taken):
            return
        taken.append((start, end))
        if kind is not None:
            found.append(Finding(start, end, kind, placeholder))

    # Most certain first: a later, weaker rule never cuts into an earlier span.
    for m in _EMAIL.finditer(text):
        take(m.start(), m.end(), "email", PLACEHOLDERS["email"])
    for m in _PROFILE.finditer(text):
        take(m.start(), m.end(), "profile", PLACEHOLDERS["profile"])
    for m in _HOTLINE.finditer(text):
        take(m.start(), m.end(), None)
    for m in _ID_KEYWORD.finditer(text):
        digits = sum(c.isdigit() for c in m.group(1))
        take(m.start(1), m.end(1), "id_card",
             PLACEHOLDERS["cmnd" if digits == 9 else "cccd"])
    for m in _ACCOUNT.finditer(text):
        take(m.start(1), m.end(1), "bank_account", PLACEHOLDERS["bank_account"])
    for m in _PHONE_KEYWORD.finditer(text):
        take(m.start(1), m.end(1), "phone", PLACEHOLDERS["phone"])
    for m in _PHONE.finditer(text):
        take(m.start(), m.end(), "phone", PLACEHOLDERS["phone"])
    # Before the dates: a house number 12/5 is not the 12th of May.
    for start, end in sorted(_addresses(text, folded), key=lambda s: (s[0], s[0] - s[1])):
        take(start, end, "address", PLACEHOLDERS["address"])
    for pat in _PROTECTED:
        for m in pat.finditer(text):
            take(m.start(), m.end(), None)
    for m in _CCCD.finditer(text):
        take(m.start(), m.end(), "id_card", PLACEHOLDERS["cccd"])
    for m in _CMND.finditer(text):
        take(m.start(), m.end(), "id_card", PLACEHOLDERS["cmnd"])
    for start, end in _names(text, folded, known_names):
        take(start, end, "name", PLACEHOLDERS["name"])
    return sorted(found, key=lambda f: f.start)


def redact(text: str, known_names: Iterable[str] = ()) -> str:
    """``text`` with names, phone and ID numbers, e-mails and exact addresses masked."""
    text = unicodedata.normalize("NFC", text)
    out: list[str] = []
    pos = 0
    for f in find_personal_data(text, tuple(known_names)):
        out.append(text[pos:f.start])
        out.append(f.placeholder)
        pos = f.end
    out.append(text[pos:])
    return "".join(out)
