"""What an uploaded file really is: PDF, DOC, DOCX, PNG or JPEG, told by its bytes; pure.

A file name or a declared content type is what the uploader says; the first bytes are what the
file is. ``check_upload`` accepts a file only if its bytes are one of the allowed kinds and
neither its name's extension nor its declared type (when given) says something else, so a
renamed ``.exe`` or a text file called ``reply.pdf`` is refused:

* PDF: ``%PDF-`` at the start;
* PNG: the 8-byte PNG signature; JPEG: ``FF D8 FF``;
* DOC: an OLE2 compound file (``D0 CF 11 E0 A1 B1 1A E1``) with a ``WordDocument`` stream
  (Excel, PowerPoint and MSI files are OLE2 too, without it);
* DOCX: a ZIP archive holding ``[Content_Types].xml`` and ``word/document.xml`` (only the
  archive's directory is read, nothing is decompressed).

Errors are ``TicketError``: ``ticket.upload_too_large`` (over the limit, or empty is
``ticket.upload_type``), ``ticket.upload_type`` (any other refusal).
"""

from __future__ import annotations

import io
import os
import unicodedata
import zipfile
from dataclasses import dataclass

from callcenter.tickets.config import TicketError

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_FILE_NAME = 200


@dataclass(frozen=True)
class FileKind:
    """An accepted kind of file."""

    name: str
    content_type: str  # the canonical type stored and served
    extensions: tuple[str, ...]  # first one is appended to a name without an extension
    aliases: tuple[str, ...] = ()  # other declared types that mean the same


KINDS: dict[str, FileKind] = {k.name: k for k in (
    FileKind("pdf", "application/pdf", (".pdf",), ("application/x-pdf",)),
    FileKind("doc", "application/msword", (".doc",)),
    FileKind("docx",
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             (".docx",)),
    FileKind("png", "image/png", (".png",)),
    FileKind("jpeg", "image/jpeg", (".jpg", ".jpeg", ".jpe", ".jfif"),
             ("image/jpg", "image/pjpeg")),
)}
# Declared types that say nothing: browsers and tools send these for unknown files.
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream",
                            "application/x-download", "application/force-download"})
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_WORD_STREAM = "WordDocument".encode("utf-16-le")
_PNG = b"\x89PNG\r\n\x1a\n"


def detect_kind(data: bytes) -> FileKind | None:
    """The kind of file ``data`` is, by its bytes; None if it is none of the accepted kinds."""
    if data.startswith(b"%PDF-"):
        return KINDS["pdf"]
    if data.startswith(_PNG):
        return KINDS["png"]
    if data.startswith(b"\xff\xd8\xff"):
        return KINDS["jpeg"]
    if data.startswith(_OLE2):
        # The directory entries name the streams in UTF-16LE; a Word document has this one.
        return KINDS["doc"] if _WORD_STREAM in data else None
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = set(z.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            return KINDS["docx"]
    return None


def clean_file_name(name: str) -> str:
    """The last path part of an uploaded name, NFC, without control characters, shortened."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = name.lstrip(".")  # no hidden files, no "..": the name is shown, never a path
    if len(name) > MAX_FILE_NAME:
        stem, ext = os.path.splitext(name)
        name = stem[:MAX_FILE_NAME - len(ext)] + ext
    return name


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed: its kind, the name to show and the type to serve."""

    kind: FileKind
    file_name: str
    content_type: str


def check_upload(file_name: str, content_type: str | None, data: bytes,
                 max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> CheckedUpload:
    """Accept an upload or raise TicketError ``ticket.upload_too_large``/``ticket.upload_type``."""
    if len(data) > max_bytes:
        raise TicketError("ticket.upload_too_large",
                          f"{len(data)} bytes; at most {max_bytes} bytes may be attached")
    allowed = "PDF, DOC, DOCX, PNG or JPEG"
    if not data:
        raise TicketError("ticket.upload_type", f"the file is empty; expected {allowed}")
    kind = detect_kind(data)
    shown = clean_file_name(file_name)
    if kind is None:
        raise TicketError("ticket.upload_type",
                          f"{shown or 'the file'} is not a {allowed} file (judged by its "
                          "contents, not its name)")
    stem, ext = os.path.splitext(shown)
    if ext and ext.lower() not in kind.extensions:
        raise TicketError("ticket.upload_type",
                          f"{shown!r} is a {kind.name.upper()} file by its contents; expected "
                          f"the name to end in {' or '.join(kind.extensions)}")
    if not stem:
        shown = "tai-lieu" + (ext or kind.extensions[0])
    elif not ext:
        shown += kind.extensions[0]
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared not in _GENERIC_TYPES and declared != kind.content_type \
            and declared not in kind.aliases:
        raise TicketError("ticket.upload_type",
                          f"declared as {declared} but the contents are {kind.name.upper()} "
                          f"({kind.content_type})")
    return CheckedUpload(kind, shown, kind.content_type)
