"""Reply documents arriving as multipart/form-data: size checked while the bytes stream in,
type checked by magic bytes on the first chunk, both before anything reaches the store.

An upload larger than the limit is refused with 413 ``ticket.upload_too_large`` as soon as
the announced length or the bytes read so far pass it: the rest is never read into memory.
A first chunk that is not a PDF, DOC, DOCX/ZIP, JPEG or PNG is refused with 415
``ticket.upload_type`` (an .exe renamed .pdf starts with ``MZ``); the ticket service checks
the whole file again when it stores it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from callcenter.console.errors import ApiError, invalid

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
CHUNK = 64 * 1024
MULTIPART_SLACK = 16 * 1024  # boundaries and part headers around the file
MAX_FIELDS_BYTES = 8 * 1024  # other form fields (ignored) may not be large either
SNIFF_BYTES = 8

# (magic prefix, content type): what a reply document may be.
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/msword"),  # OLE2: .doc
    (b"PK\x03\x04", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


@dataclass(frozen=True)
class Upload:
    """A file as received: a safe name, the type its bytes show, and the bytes."""

    file_name: str
    content_type: str  # what the first bytes show
    declared_type: str | None  # what the uploader said (the service checks they agree)
    data: bytes


def sniff(head: bytes) -> str | None:
    """The content type the first bytes show, or None if they are not an accepted type."""
    return next((ctype for magic, ctype in MAGIC if head.startswith(magic)), None)


def safe_file_name(name: str | None) -> str:
    """The base name, without control characters or path parts, at most 200 characters."""
    if not name:
        return "document"
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base)
                   if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    return base[:200] or "document"


def _too_large(limit: int) -> ApiError:
    return ApiError("ticket.upload_too_large",
                    f"the file is larger than {limit // (1024 * 1024)} MiB ({limit} bytes)",
                    details={"field": "file", "max_bytes": limit})


async def read_upload(request: web.Request, max_bytes: int = DEFAULT_MAX_BYTES) -> Upload:
    """The ``file`` part of a multipart request, read in chunks with the limits above."""
    if request.content_length is not None and \
            request.content_length > max_bytes + MULTIPART_SLACK:
        raise _too_large(max_bytes)
    if request.content_type != "multipart/form-data":
        raise ApiError("request.unsupported_media",
                       "send the document as multipart/form-data with a part named 'file'")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError, HttpProcessingError) as e:
        raise invalid("body", f"malformed multipart body ({type(e).__name__})") from None
    other = 0
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise invalid("file", "nested multipart is not accepted")
            if part.name != "file":
                while chunk := await part.read_chunk(CHUNK):
                    other += len(chunk)
                    if other > MAX_FIELDS_BYTES:
                        raise invalid(part.name or "body", "form field too large")
                continue
            return await _read_file(part, max_bytes)
    except ApiError:
        raise
    except (ValueError, AssertionError, KeyError, UnicodeDecodeError, HttpProcessingError) as e:
        # aiohttp's parser refuses bad part headers, boundaries, encodings: the client's fault.
        raise invalid("body", f"malformed multipart body ({type(e).__name__})") from None
    raise invalid("file", "required: a part named 'file' with the document")


async def _read_file(part: BodyPartReader, max_bytes: int) -> Upload:
    data = bytearray()
    content_type: str | None = None
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
        if content_type is None and len(data) >= SNIFF_BYTES:
            content_type = _type_or_415(bytes(data[:SNIFF_BYTES]))
    if not data:
        raise invalid("file", "the file is empty")
    if content_type is None:
        content_type = _type_or_415(bytes(data))
    declared = part.headers.get("Content-Type")
    return Upload(safe_file_name(part.filename), content_type,
                  declared.split(";")[0].strip().lower() if declared else None, bytes(data))


def _type_or_415(head: bytes) -> str:
    ctype = sniff(head)
    if ctype is None:
        raise ApiError("ticket.upload_type", "the file is not a PDF, DOC, DOCX, JPEG or PNG "
                                             "document (checked by its content, not its name)",
                       details={"field": "file"})
    return ctype
