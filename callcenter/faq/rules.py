"""The FAQ knowledge base, pure: reading department sheets, item keys, sentences, catalogue.

No I/O. ``callcenter.faq.sheets`` turns a file into ``Sheet``s; ``parse_faq`` finds each
sheet's header row and validates every row into ``FaqRow``s, collecting *all* errors (a file
with any error is refused whole); ``callcenter.faq.store`` stores the rows as a new version per
field; the IVR reads the active items as a ``FaqCatalogue``.

Sheets as departments send them (checked against the layout of the provincial templates):
title rows first (often one cell merged across the table, which reads as the text in its
first cell and empty strings in the rest), then a header row, then one question per row.
Headers may be Vietnamese or English, with or without diacritics, in any case:

=============  ====================================================  ==========
column          headers recognised (diacritics/case/space-insensitive)  required
=============  ====================================================  ==========
field           Lĩnh vực, field, category                               unless --field
question        Câu hỏi, Nội dung câu hỏi, question                     yes
answer          Trả lời, Câu trả lời, Nội dung trả lời, answer          yes
keywords        Từ khóa, keywords, tags                                 no
unit            Đơn vị, Đơn vị trả lời, Cơ quan, unit                   no
code            Mã, Mã câu hỏi, Mã số, code, id                         no
(ignored)       STT, TT, Số TT, No., #                                  no
=============  ====================================================  ==========

Other columns (notes, dates) are ignored. A header cell may carry a remark in parentheses
("Trả lời (bắt buộc)") or two languages ("Câu hỏi / Question").
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from callcenter.config.model import Field

# Redis channel the FAQ CLI publishes {"tenant": id} on after an import or a rollback; the
# running app reloads that tenant's catalogue (it also polls `FaqStore.generation`).
FAQ_CHANNEL = "hotline:faq"

HEADER_SCAN_ROWS = 15  # title rows a sheet may have above its header
MAX_ITEMS_PER_FILE = 5000
# Cell limits: a question is read out as a menu choice, an answer sentence by sentence; past
# these it is a pasted document, not an FAQ item (and a caller would hang up).
MAX_CHARS = {
    "field": 100, "question": 500, "answer": 4000, "keywords": 500, "unit": 200, "code": 64,
}
SENTENCE_MAX_CHARS = 200  # one playback step, about 15 s of speech
_SHORT_WORDS = 3  # a fragment with fewer words is merged with its neighbour
_SHORT_CHARS = 10

ROLES = ("field", "question", "answer", "keywords", "unit", "code")
_ALIASES: dict[str, frozenset[str]] = {
    "field": frozenset({"linh vuc", "field", "category", "nhom linh vuc"}),
    "question": frozenset({"cau hoi", "noi dung cau hoi", "question", "questions"}),
    "answer": frozenset({"tra loi", "cau tra loi", "noi dung tra loi", "answer", "answers"}),
    "keywords": frozenset({"tu khoa", "keywords", "keyword", "tags"}),
    "unit": frozenset({"don vi", "don vi tra loi", "co quan", "unit", "department"}),
    "code": frozenset({"ma", "ma cau hoi", "ma so", "code", "id"}),
    "index": frozenset({"stt", "tt", "so tt", "so thu tu", "no", "#"}),
}
_ROLE_OF = {alias: role for role, aliases in _ALIASES.items() for alias in aliases}
# How an error names a missing column: the Vietnamese header, then the English one.
_ROLE_NAMES = {
    "field": '"Lĩnh vực" (field)', "question": '"Câu hỏi" (question)',
    "answer": '"Trả lời" (answer)',
}

_PARENTHESISED = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_PUNCTUATION = re.compile(r"[^\w\s#]|_")
_SPACES = re.compile(r"[^\S\n]+")


# -- text ------------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lowercase ASCII-ish form for matching: no diacritics (đ -> d), punctuation as spaces."""
    t = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    t = "".join(c for c in t if not unicodedata.combining(c)).lower()
    return " ".join(_PUNCTUATION.sub(" ", t).split())


def normalise_question(question: str) -> str:
    """NFC, lowercased, whitespace collapsed: two questions are the same item iff equal here."""
    return " ".join(unicodedata.normalize("NFC", question).lower().split())


def item_key(tenant: str, field: str, question: str) -> str:
    """16 hex chars identifying an item across versions: sha256(tenant, field, question)."""
    material = "\x1f".join((tenant, field, normalise_question(question)))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def _clean_line(text: str) -> str:
    return " ".join(_SPACES.sub(" ", text).split())


def clean_cell(text: str, *, multiline: bool = False) -> str:
    """NFC, no-break spaces as spaces, trimmed; newlines kept only if `multiline`."""
    t = unicodedata.normalize("NFC", text).replace("\u00a0", " ").replace("\r\n", "\n")
    t = t.replace("\r", "\n")
    if not multiline:
        return " ".join(t.split())
    lines = (_clean_line(line) for line in t.split("\n"))
    return "\n".join(line for line in lines if line)


def column_letter(index: int) -> str:
    """Spreadsheet column name of a 0-based index: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    n = index + 1
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(ord("A") + r) + letters
    return letters


# -- fields ----------------------------------------------------------------------------------


def match_field(text: str, fields: Sequence[Field]) -> Field | None:
    """The field a cell names, by id or Vietnamese name ("Y tế", "y te", "health"), or None."""
    wanted = fold(text)
    if wanted.startswith("linh vuc "):  # "Lĩnh vực Y tế"
        wanted = wanted[len("linh vuc "):]
    if not wanted:
        return None
    for f in fields:
        if wanted in (fold(f.id), fold(f.name)):
            return f
    return None


# -- sheets and rows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sheet:
    """One sheet of an uploaded file: every cell as text, rows and columns as the file has them.

    ``rows[0][0]`` is cell A1 (empty leading rows and columns are kept, so positions match
    what the spreadsheet shows). ``name`` is "" for a CSV file, which has no sheets.
    """

    name: str
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Header:
    """Where a sheet's header row is (0-based) and which column holds what."""

    row: int
    columns: Mapping[str, int]  # role -> 0-based column
    titles: Mapping[str, str]  # role -> the header text as written


@dataclass(frozen=True)
class FaqRow:
    """One valid question and answer, with where it came from."""

    field: str  # a Field id
    question: str
    answer: str
    code: str | None
    keywords: str | None
    unit: str | None
    sheet: str
    row: int  # 1-based, as the spreadsheet shows it


@dataclass(frozen=True)
class FaqError:
    """A problem in an uploaded file, located as precisely as known."""

    source: str
    message: str
    sheet: str | None = None
    row: int | None = None  # 1-based
    column: int | None = None  # 0-based
    header: str | None = None

    def __str__(self) -> str:
        where = self.source
        parts = []
        if self.sheet:
            parts.append(f'sheet "{self.sheet}"')
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            col = f"column {column_letter(self.column)}"
            parts.append(f"{col} ({self.header})" if self.header else col)
        if parts:
            where += ": " + ", ".join(parts)
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class FaqParse:
    """What `parse_faq` found: valid rows (only meaningful when `errors` is empty) and notes."""

    rows: tuple[FaqRow, ...]
    errors: tuple[FaqError, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the file may be imported."""
        return not self.errors

    def by_field(self) -> dict[str, tuple[FaqRow, ...]]:
        """Rows grouped by field id, each group in file order (the items' positions)."""
        groups: dict[str, list[FaqRow]] = {}
        for r in self.rows:
            groups.setdefault(r.field, []).append(r)
        return {f: tuple(rows) for f, rows in groups.items()}


def _header_role(cell: str) -> str | None:
    text = _PARENTHESISED.sub(" ", cell)
    for candidate in (text, *re.split(r"[/\n]", text)):
        role = _ROLE_OF.get(fold(candidate))
        if role is not None:
            return role
    return None


def find_header(rows: Sequence[Sequence[str]],
                scan: int = HEADER_SCAN_ROWS) -> tuple[Header | None, int | None]:
    """The header row among the first `scan` rows: (header, None), or (None, near-miss row).

    A header has a question and an answer column. A row with two or more known headers but
    not both of those is a near miss: its index is returned so the error can point at it.
    """
    near_miss = None
    for i, row in enumerate(rows[:scan]):
        columns: dict[str, int] = {}
        titles: dict[str, str] = {}
        for j, cell in enumerate(row):
            role = _header_role(cell) if cell.strip() else None
            if role is None or role in columns:
                continue  # a second column with the same header: the first one counts
            columns[role] = j
            titles[role] = " ".join(cell.split())
        if "question" in columns and "answer" in columns:
            columns.pop("index", None)
            titles.pop("index", None)
            return Header(i, MappingProxyType(columns), MappingProxyType(titles)), None
        if len(columns) >= 2 and near_miss is None:
            near_miss = i
    return None, near_miss


def parse_faq(source: str, sheets: Sequence[Sheet], fields: Sequence[Field],
              field: str | None = None) -> FaqParse:
    """Validate every sheet of an uploaded file; `field` (an id) fills or checks the field.

    Sheets without any recognisable header are skipped with a note (instructions, lookup
    lists); a file in which no sheet has one is an error. Rows whose content columns are all
    empty are skipped (templates often number rows in advance).
    """
    by_id = {f.id: f for f in fields}
    if field is not None and field not in by_id:
        raise ValueError(f"unknown field id {field!r}")
    errors: list[FaqError] = []
    notes: list[str] = []
    rows: list[FaqRow] = []
    seen_questions: dict[tuple[str, str], tuple[str, int]] = {}
    seen_codes: dict[str, tuple[str, int]] = {}
    any_header = False
    for sheet in sheets:
        header, near_miss = find_header(sheet.rows)
        if header is None:
            if near_miss is not None:
                roles = {_header_role(c) for c in sheet.rows[near_miss] if c.strip()}
                missing = [_ROLE_NAMES[r] for r in ("question", "answer") if r not in roles]
                errors.append(FaqError(
                    source, f"header row has no {' and no '.join(missing)} column",
                    sheet.name, near_miss + 1))
                any_header = True
            elif any(c.strip() for r in sheet.rows for c in r):
                where = f'sheet "{sheet.name}"' if sheet.name else "the file"
                notes.append(f"{source}: {where}: no header row with "
                             f"{_ROLE_NAMES['question']} and {_ROLE_NAMES['answer']} in the "
                             f"first {HEADER_SCAN_ROWS} rows; skipped")
            continue
        any_header = True
        if "field" not in header.columns and field is None:
            errors.append(FaqError(
                source, f"no {_ROLE_NAMES['field']} column: add one, or give the field "
                "for the whole file (--field)", sheet.name, header.row + 1))
            continue
        for i in range(header.row + 1, len(sheet.rows)):
            row, key = _check_row(source, sheet, i, header, fields, field, errors)
            if key is not None:
                # Also for a row with other errors: its duplicate is a second thing to fix.
                first = seen_questions.get(key)
                if first is not None:
                    errors.append(FaqError(
                        source, f"duplicate question: same as {_where(first, sheet.name)}",
                        sheet.name, i + 1, header.columns["question"],
                        header.titles["question"]))
                    continue
                seen_questions[key] = (sheet.name, i + 1)
            if row is None:
                continue
            if row.code is not None:
                code_first = seen_codes.get(row.code.casefold())
                if code_first is not None:
                    errors.append(FaqError(
                        source, f'duplicate code "{row.code}": same as '
                        f"{_where(code_first, sheet.name)}", sheet.name, row.row,
                        header.columns["code"], header.titles["code"]))
                    continue
                seen_codes[row.code.casefold()] = (sheet.name, row.row)
            rows.append(row)
    if not any_header:
        errors.append(FaqError(
            source, f"no header row with {_ROLE_NAMES['question']} and {_ROLE_NAMES['answer']} "
            f"columns in the first {HEADER_SCAN_ROWS} rows of any sheet"))
    elif not rows and not errors:
        errors.append(FaqError(source, "no questions: every row under the header is empty"))
    if len(rows) > MAX_ITEMS_PER_FILE:
        errors.append(FaqError(
            source, f"{len(rows)} questions: at most {MAX_ITEMS_PER_FILE} per file"))
    return FaqParse(tuple(rows), tuple(errors), tuple(notes))


def _where(first: tuple[str, int], sheet: str) -> str:
    other_sheet, other_row = first
    if other_sheet != sheet:
        return f'sheet "{other_sheet}", row {other_row}'
    return f"row {other_row}"


def _check_row(source: str, sheet: Sheet, i: int, header: Header, fields: Sequence[Field],
               field: str | None, errors: list[FaqError],
               ) -> tuple[FaqRow | None, tuple[str, str] | None]:
    """The row if valid (else its errors are appended), and its (field, question) if known."""
    raw = sheet.rows[i]
    values: dict[str, str] = {}
    for role, j in header.columns.items():
        cell = raw[j] if j < len(raw) else ""
        values[role] = clean_cell(cell, multiline=(role == "answer"))
    if not any(values.values()):
        return None, None
    row_no = i + 1
    found: list[FaqError] = []

    def err(role: str, message: str) -> None:
        found.append(FaqError(source, message, sheet.name, row_no, header.columns[role],
                              header.titles[role]))

    for role in ("question", "answer"):
        if not values[role]:
            err(role, f"empty {role}")
    for role, text in values.items():
        if len(text) > MAX_CHARS[role]:
            err(role, f"{role} too long: {len(text)} characters, at most {MAX_CHARS[role]}")
    field_id = field
    cell = values.get("field", "")
    if cell and len(cell) <= MAX_CHARS["field"]:
        matched = match_field(cell, fields)
        if matched is None:
            err("field", f'unknown field "{cell}"')
        elif field is not None and matched.id != field:
            err("field", f'field "{cell}" ({matched.id}) conflicts with --field {field}')
        else:
            field_id = matched.id
    elif not cell and field is None:
        err("field", "empty field")
    errors.extend(sorted(found, key=lambda e: e.column or 0))
    key = None
    if field_id is not None and values["question"]:
        key = (field_id, normalise_question(values["question"]))
    if found or field_id is None:
        return None, key
    return FaqRow(field=field_id, question=values["question"], answer=values["answer"],
                  code=values.get("code") or None, keywords=values.get("keywords") or None,
                  unit=values.get("unit") or None, sheet=sheet.name, row=row_no), key


def known_fields_hint(fields: Iterable[Field]) -> str:
    """One line naming every field a sheet may use, for after "unknown field" errors."""
    return "known fields: " + ", ".join(f"{f.name} ({f.id})" for f in fields)


# -- sentences -------------------------------------------------------------------------------

# Words that end with "." without ending the sentence: places (TP. Biên Hòa, P. Tân Phong,
# Q. 1, TX. Long Khánh), titles (BS., ThS., TS.), and v.v.; single capitals are initials.
_ABBREVIATIONS = frozenset({
    "tp", "tx", "tt", "p", "q", "h", "x", "kp", "ap", "bs", "bsck", "ths", "ts", "pgs", "gs",
    "ks", "cn", "ls", "ng", "vv", "st", "mr", "mrs", "ms", "dr", "no", "tr", "ph",
})
_CLOSERS = "\"'”’»)]"
_ENDERS = ".!?;…"
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def _abbreviation_before(text: str) -> bool:
    m = _WORD_BEFORE.search(text)
    if m is None:
        return False
    word = m.group(1).strip(".")
    return (fold(word.replace(".", "")) in _ABBREVIATIONS
            or (len(word) == 1 and word.isalpha() and word.isupper()))


def _split_line(line: str) -> list[str]:
    out: list[str] = []
    start = 0
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c not in _ENDERS:
            i += 1
            continue
        j = i + 1
        while j < n and (line[j] in _ENDERS or line[j] in _CLOSERS):
            j += 1
        if j < n and not line[j].isspace():
            i = j  # "1.000", "Tp.HCM", "v.v", "3,5%;x": inside a token
            continue
        nxt = line[j:].lstrip()[:1]
        run = line[i:j].rstrip(_CLOSERS)
        split = True
        if ";" not in run:
            if nxt.islower():
                split = False  # "TP. hồ", "v.v. và": a sentence starts with a capital
            elif run == "." and _abbreviation_before(line[start:i]):
                split = False
        if split:
            piece = line[start:j].strip()
            if piece:
                out.append(piece)
            start = j
        i = j
    rest = line[start:].strip()
    if rest:
        out.append(rest)
    return out


def _is_short(text: str) -> bool:
    return len(text.split()) < _SHORT_WORDS or len(text) < _SHORT_CHARS


def _merge_short(pieces: list[str], max_chars: int) -> list[str]:
    out: list[str] = []
    pending = ""  # a short first piece waiting for the next one
    for p in pieces:
        if pending:
            if len(pending) + 1 + len(p) <= max_chars:
                p = f"{pending} {p}"
            else:
                out.append(pending)
            pending = ""
        if _is_short(p):
            if out and len(out[-1]) + 1 + len(p) <= max_chars:
                out[-1] = f"{out[-1]} {p}"
                continue
            if not out:
                pending = p
                continue
        out.append(p)
    if pending:
        out.append(pending)
    return out


def _pack(parts: list[str], max_chars: int, sep: str = " ") -> list[str]:
    out: list[str] = []
    for part in parts:
        if out and len(out[-1]) + len(sep) + len(part) <= max_chars:
            out[-1] = f"{out[-1]}{sep}{part}"
        else:
            out.append(part)
    return out


def _split_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    out: list[str] = []
    for chunk in _pack(re.split(r"(?<=,)\s+", sentence), max_chars):
        if len(chunk) <= max_chars:
            out.append(chunk)
            continue
        for words in _pack(chunk.split(), max_chars):
            # A single "word" longer than a sentence (a URL, a pasted table): cut it.
            out.extend(words[k:k + max_chars] for k in range(0, len(words), max_chars))
    return out


def split_sentences(text: str, max_chars: int = SENTENCE_MAX_CHARS) -> tuple[str, ...]:
    """An answer as playback steps: sentences, short ones merged, long ones cut at commas.

    Splits after . ! ? ; … and at line breaks; never inside a token ("1.000", "Tp.HCM") nor
    after an abbreviation ("TP. Biên Hòa") or before a lowercase word. Every step is at most
    `max_chars` long and no character other than whitespace is lost.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    pieces: list[str] = []
    for line in clean_cell(text, multiline=True).split("\n"):
        pieces.extend(_split_line(line))
    merged = _merge_short(pieces, max_chars)
    return tuple(s for sentence in merged for s in _split_long(sentence, max_chars))


# -- catalogue -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaqEntry:
    """One active FAQ item as the IVR reads it."""

    key: str  # item_key(): stable across versions, what ivr_path steps name
    code: str | None  # the sheet's own id, if it had one
    field: str  # Field id
    position: int  # order within the field, from 1
    question: str
    answer: str
    sentences: tuple[str, ...]  # the answer as playback steps (split_sentences)


@dataclass(frozen=True)
class FaqCatalogue:
    """A tenant's active FAQ items, by field in position order; looked up by key or code.

    ``generation`` is the store's stamp of the versions it was built from: when
    ``FaqStore.generation(tenant)`` differs, reload.
    """

    tenant: str
    generation: str
    entries: tuple[FaqEntry, ...]  # sorted by (field, position)
    _by_field: Mapping[str, tuple[FaqEntry, ...]] = dataclasses.field(repr=False, compare=False)
    _by_key: Mapping[str, FaqEntry] = dataclasses.field(repr=False, compare=False)
    _by_code: Mapping[str, FaqEntry] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def build(cls, tenant: str, entries: Iterable[FaqEntry], generation: str) -> FaqCatalogue:
        """Index `entries`; a key appearing twice is a bug upstream and raises ValueError."""
        ordered = tuple(sorted(entries, key=lambda e: (e.field, e.position, e.key)))
        by_field: dict[str, list[FaqEntry]] = {}
        by_key: dict[str, FaqEntry] = {}
        by_code: dict[str, FaqEntry] = {}
        for e in ordered:
            if e.key in by_key:
                raise ValueError(f"FAQ item key {e.key} appears twice in tenant {tenant}")
            by_key[e.key] = e
            by_field.setdefault(e.field, []).append(e)
            if e.code:
                # Codes are unique within a file; across fields the first (by field id) wins.
                by_code.setdefault(e.code.casefold(), e)
        return cls(tenant, generation, ordered,
                   MappingProxyType({f: tuple(v) for f, v in by_field.items()}),
                   MappingProxyType(by_key), MappingProxyType(by_code))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def fields(self) -> tuple[str, ...]:
        """Field ids that have at least one item, sorted."""
        return tuple(self._by_field)

    def for_field(self, field_id: str) -> tuple[FaqEntry, ...]:
        """The field's items in position order (empty if none)."""
        return self._by_field.get(field_id, ())

    def by_key(self, key: str) -> FaqEntry | None:
        """The item with this key, or None."""
        return self._by_key.get(key)

    def by_code(self, code: str) -> FaqEntry | None:
        """The item with this sheet code (case-insensitive), or None."""
        return self._by_code.get(code.strip().casefold())

    def find(self, ref: str) -> FaqEntry | None:
        """The item a menu names: by key, else by sheet code; None if neither."""
        return self.by_key(ref) or self.by_code(ref)
