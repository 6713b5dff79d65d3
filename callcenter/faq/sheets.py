"""Uploaded FAQ files (.xlsx, .xls, .csv) read into plain `Sheet`s of text cells.

Excel files are read by python-calamine (both the 2007+ zip format and the old BIFF/OLE one),
from their bytes, so a workbook saved under the other extension still reads. CSV files are
what Excel, LibreOffice or a script write: UTF-8 with or without BOM, UTF-16 ("Unicode
text"), or a legacy Windows code page (cp1258 Vietnamese, then cp1252); the delimiter is
`,`, `;` (Excel in locales with a decimal comma) or a tab.
"""

from __future__ import annotations

import codecs
import collections
import csv
import datetime as dt
import hashlib
import io
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetVisibleEnum

from callcenter.faq.rules import Sheet

log = logging.getLogger("callcenter.faq.sheets")

MAX_BYTES = 20 * 1024 * 1024  # a department's sheet is a few hundred kB; more is a mistake
EXTENSIONS = (".xlsx", ".xls", ".csv")
_DELIMITERS = (",", ";", "\t")
_LEGACY_ENCODINGS = ("cp1258", "cp1252")
_SNIFF_LINES = 30

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class SheetError(ValueError):
    """A file that cannot be read as FAQ sheets; the message names the file."""


@dataclass(frozen=True)
class Upload:
    """An uploaded file, read: its name (no folders), content hash and sheets."""

    name: str
    sha256: str
    size: int
    sheets: tuple[Sheet, ...]
    encoding: str | None = None  # CSV only: the text encoding it was read with


def read_upload(path: Path) -> Upload:
    """Check and read the file at `path` (size, extension, real format)."""
    name = path.name
    _check_extension(name)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SheetError(f"{name}: {size} bytes, larger than the {_mb(MAX_BYTES)} limit")
        data = path.read_bytes()
    except OSError as e:
        raise SheetError(f"{name}: cannot read: {e.strerror or e}") from e
    return read_bytes(name, data)


def read_bytes(name: str, data: bytes) -> Upload:
    """Read an upload given as bytes; `name` decides CSV or Excel and names it in errors."""
    name = Path(name).name
    ext = _check_extension(name)
    if len(data) > MAX_BYTES:
        raise SheetError(f"{name}: {len(data)} bytes, larger than the {_mb(MAX_BYTES)} limit")
    if not data.strip():
        raise SheetError(f"{name}: the file is empty")
    digest = hashlib.sha256(data).hexdigest()
    if ext == ".csv":
        sheet, encoding = read_csv(name, data)
        return Upload(name, digest, len(data), (sheet,), encoding)
    return Upload(name, digest, len(data), tuple(read_workbook(name, data)))


def _mb(n: int) -> str:
    return f"{n // (1024 * 1024)} MB"


def _check_extension(name: str) -> str:
    ext = Path(name).suffix.lower()
    if ext not in EXTENSIONS:
        raise SheetError(f"{name}: not a spreadsheet: expected a file ending in "
                         f"{', '.join(EXTENSIONS)}")
    return ext


# -- Excel -----------------------------------------------------------------------------------


def read_workbook(name: str, data: bytes) -> list[Sheet]:
    """The visible worksheets of an .xlsx/.xls file, every cell as text."""
    if not (data.startswith(_ZIP_MAGIC) or data.startswith(_OLE_MAGIC)):
        head = data[:512].lstrip().lower()
        hint = ""
        if head.startswith((b"<!doctype html", b"<html", b"<table", b"<?xml")):
            # Web portals often export an HTML or XML table under an .xls name.
            hint = " (it is a web page or XML saved as .xls: open it and save it as .xlsx)"
        raise SheetError(f"{name}: not an Excel workbook{hint}")
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheets = []
        for meta in book.sheets_metadata:
            if meta.visible != SheetVisibleEnum.Visible:
                continue  # hidden sheets hold lookup lists, not questions
            rows = book.get_sheet_by_name(meta.name).to_python(skip_empty_area=False)
            sheets.append(Sheet(meta.name, tuple(tuple(cell_text(v) for v in r) for r in rows)))
    except PasswordError as e:
        raise SheetError(f"{name}: the workbook is password-protected; save it without "
                         "a password") from e
    except CalamineError as e:
        raise SheetError(f"{name}: not a readable Excel workbook ({e})") from e
    return sheets


def cell_text(value: object) -> str:
    """A cell's value as the sheet shows it: 12 not 12.0, dates as dd/mm/yyyy."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.strftime("%d/%m/%Y")
        return value.strftime("%d/%m/%Y %H:%M" if value.second == 0 else "%d/%m/%Y %H:%M:%S")
    if isinstance(value, dt.date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, dt.time):
        return value.strftime("%H:%M" if value.second == 0 else "%H:%M:%S")
    return str(value)


# -- CSV -------------------------------------------------------------------------------------


def read_csv(name: str, data: bytes) -> tuple[Sheet, str]:
    """The one sheet of a CSV file and the encoding it was read with."""
    text, encoding = _decode(name, data)
    delimiter = _sniff_delimiter(text)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as e:
        raise SheetError(f"{name}: not a readable CSV file ({e})") from e
    width = max((len(r) for r in rows), default=0)
    return Sheet("", tuple(tuple(r) + ("",) * (width - len(r)) for r in rows)), encoding


def _decode(name: str, data: bytes) -> tuple[str, str]:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates: tuple[str, ...] = ("utf-16",)
    else:
        candidates = ("utf-8-sig", *_LEGACY_ENCODINGS)
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding in _LEGACY_ENCODINGS:
            log.warning("%s: not UTF-8; read as %s (check the diacritics; better: save it "
                        "as \"CSV UTF-8\")", name, encoding)
        # cp1258 writes tones as combining marks; NFC makes "ế" one character again.
        return unicodedata.normalize("NFC", text), encoding
    raise SheetError(f"{name}: the text is neither UTF-8, UTF-16 nor "
                     f"{'/'.join(_LEGACY_ENCODINGS)}; save it as \"CSV UTF-8\"")


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the most rows of one same width."""
    sample = "\n".join(text.splitlines()[:_SNIFF_LINES])
    best, best_score = _DELIMITERS[0], -1
    for d in _DELIMITERS:
        widths: list[int] = []
        try:
            for r in csv.reader(io.StringIO(sample), delimiter=d):
                widths.append(len(r))
        except csv.Error:
            pass  # the sample may end inside a quoted, multi-line cell: keep what was read
        multi = [w for w in widths if w > 1]
        if not multi:
            continue
        width, count = collections.Counter(multi).most_common(1)[0]
        score = count * 1000 + width
        if score > best_score:
            best, best_score = d, score
    return best
