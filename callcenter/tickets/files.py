"""What an uploaded file really is — a document (PDF, DOC, DOCX), a photo (JPEG, PNG, WEBP,
HEIC) or a phone video (MP4, MOV, 3GP, 3G2) — told by its bytes; pure.

A file name or a declared content type is what the uploader says; the first bytes are what the
file is. ``check_upload`` accepts a file only if its bytes are one of the allowed kinds and
neither its name's extension nor its declared type (when given) says something else, so a
renamed ``.exe`` or a text file called ``reply.pdf`` is refused:

* PDF: ``%PDF-`` at the start;
* PNG: the 8-byte PNG signature; JPEG: ``FF D8 FF``;
* DOC: an OLE2 compound file (``D0 CF 11 E0 A1 B1 1A E1``) with a ``WordDocument`` stream
  (Excel, PowerPoint and MSI files are OLE2 too, without it);
* DOCX: a ZIP archive holding ``[Content_Types].xml`` and ``word/document.xml`` (only the
  archive's directory is read, nothing is decompressed);
* WEBP: ``RIFF`` + 4 size bytes + ``WEBP``;
* MP4, MOV, HEIC, 3GP, 3G2: an ISO-BMFF file starting with its ``ftyp`` box (4 bytes size,
  ``ftyp``, the 4-byte major brand): the brand tells them apart (``BRANDS``).

Each kind belongs to a category with its own size limit (``UploadLimits``: documents and
photos 10 MiB, videos 100 MiB: the provincial order asks for citizens' "hình ảnh, đoạn phim").

Errors are ``TicketError``: ``ticket.upload_too_large`` (over the limit, or empty is
``ticket.upload_type``), ``ticket.upload_type`` (any other refusal).
``ticket.upload_too_large`` carries the limit of the file's category (``UploadTooLarge``).
"""

from __future__ import annotations

import io
import os
import unicodedata
import zipfile
from dataclasses import dataclass

from callcenter.tickets.config import TicketError

MIB = 1024 * 1024
DOCUMENT_MAX_BYTES = 10 * MIB  # PDF, DOC, DOCX
IMAGE_MAX_BYTES = 10 * MIB  # photos
VIDEO_MAX_BYTES = 100 * MIB  # a few minutes of phone video
MAX_FILE_NAME = 200

@dataclass(frozen=True)
class UploadLimits:
    """The largest upload accepted, in bytes, per category of file."""

    document: int = DOCUMENT_MAX_BYTES
    image: int = IMAGE_MAX_BYTES
    video: int = VIDEO_MAX_BYTES

    def of(self, category: str) -> int:
        """The limit of a category (``document``, ``image`` or ``video``)."""
        return int(getattr(self, category))

    @property
    def largest(self) -> int:
        """The largest of the limits: what may stream in before the kind is known."""
        return max(self.document, self.image, self.video)


DEFAULT_UPLOAD_LIMITS = UploadLimits()


@dataclass(frozen=True)
class FileKind:
    """An accepted kind of file."""

    name: str
    content_type: str  # the canonical type stored and served
    extensions: tuple[str, ...]  # first one is appended to a name without an extension
    aliases: tuple[str, ...] = ()  # other declared types that mean the same
    category: str = "document"  # "document", "image" or "video": picks the size limit


KINDS: dict[str, FileKind] = {k.name: k for k in (
    FileKind("pdf", "application/pdf", (".pdf",), ("application/x-pdf",)),
    FileKind("doc", "application/msword", (".doc",)),
    FileKind("docx",
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             (".docx",)),
    FileKind("png", "image/png", (".png",), category="image"),
    FileKind("jpeg", "image/jpeg", (".jpg", ".jpeg", ".jpe", ".jfif"),
             ("image/jpg", "image/pjpeg"), category="image"),
    FileKind("webp", "image/webp", (".webp",), category="image"),
    FileKind("heic", "image/heic", (".heic", ".heif"),
             ("image/heif", "image/heic-sequence", "image/heif-sequence"), category="image"),
    FileKind("mp4", "video/mp4", (".mp4", ".m4v"), ("video/x-m4v",), category="video"),
    FileKind("mov", "video/quicktime", (".mov", ".qt"), category="video"),
    FileKind("3gp", "video/3gpp", (".3gp",), ("audio/3gpp",), category="video"),
    FileKind("3g2", "video/3gpp2", (".3g2",), ("audio/3gpp2",), category="video"),
)}
# The major brand of an ISO-BMFF ``ftyp`` box, and the kind it makes the file.
BRANDS: dict[bytes, str] = {
    **dict.fromkeys((b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1",
                     b"M4V ", b"MSNV"), "mp4"),
    b"qt  ": "mov",
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"),
                    "heic"),
    **dict.fromkeys((b"3gp4", b"3gp5", b"3gp6", b"3gp7", b"3gs7", b"3ge6", b"3gg6"), "3gp"),
    **dict.fromkeys((b"3g2a", b"3g2b", b"3g2c"), "3g2"),
}
SNIFF_BYTES = 12  # enough for every signature above (the ftyp brand ends at byte 12)
# Declared types that say nothing: browsers and tools send these for unknown files.
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream",
                            "application/x-download", "application/force-download"})
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_WORD_STREAM = "WordDocument".encode("utf-16-le")
_PNG = b"\x89PNG\r\n\x1a\n"


def sniff_kind(head: bytes) -> FileKind | None:
    """The kind the first ``SNIFF_BYTES`` promise (DOC and DOCX still need the whole file)."""
    if head.startswith(_OLE2):
        return KINDS["doc"]
    if head.startswith(b"PK\x03\x04"):
        return KINDS["docx"]
    return detect_kind(head)


def detect_kind(data: bytes) -> FileKind | None:
    """The kind of file ``data`` is, by its bytes; None if it is none of the accepted kinds."""
    if data[4:8] == b"ftyp" and int.from_bytes(data[:4], "big") >= 12:
        brand = BRANDS.get(data[8:12])
        return KINDS[brand] if brand else None
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return KINDS["webp"]
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


class UploadTooLarge(TicketError):
    """``ticket.upload_too_large``, with the category (``file`` before the kind is known) and
    the limit the file went over."""

    def __init__(self, category: str, max_bytes: int, size: int | None = None) -> None:
        got = f"{size} bytes; " if size is not None else ""
        super().__init__("ticket.upload_too_large",
                         f"{got}at most {max_bytes} bytes ({max_bytes // MIB} MiB) may be "
                         f"attached as a {category}")
        self.category = category
        self.max_bytes = max_bytes


ALLOWED_TEXT = "PDF, DOC, DOCX, JPEG, PNG, WEBP, HEIC, MP4, MOV, 3GP or 3G2"


def check_upload(file_name: str, content_type: str | None, data: bytes,
                 limits: UploadLimits = DEFAULT_UPLOAD_LIMITS) -> CheckedUpload:
    """Accept an upload or raise TicketError ``ticket.upload_too_large``/``ticket.upload_type``."""
    allowed = ALLOWED_TEXT
    if not data:
        raise TicketError("ticket.upload_type", f"the file is empty; expected {allowed}")
    kind = detect_kind(data)
    shown = clean_file_name(file_name)
    if kind is None:
        raise TicketError("ticket.upload_type",
                          f"{shown or 'the file'} is not a {allowed} file (judged by its "
                          "contents, not its name)")
    if len(data) > limits.of(kind.category):
        raise UploadTooLarge(kind.category, limits.of(kind.category), len(data))
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
