"""Reply documents arriving as multipart/form-data: size checked while the bytes stream in,
type checked by magic bytes on the first chunk, both before anything reaches the store.

An upload larger than its limit is refused with 413 ``ticket.upload_too_large`` as soon as
the announced length passes the largest limit, or the bytes read so far pass the limit of
the kind their first bytes show (``UploadLimits``: a video may be larger than a document):
the rest is never read into memory. A first chunk that is no accepted kind
(``callcenter.tickets.files``) is refused with 415 ``ticket.upload_type`` (an .exe renamed .pdf
starts with ``MZ``); the ticket service checks the whole file again when it stores it.
This route streams the body (``request.multipart()``), so the app's ``client_max_size``,
which bounds ``request.post()``/``read()`` elsewhere, does not apply to it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from callcenter.console.errors import ApiError, invalid
from callcenter.console.listing import upload_too_large_text
from callcenter.tickets.files import (
    ALLOWED_TEXT,
    DEFAULT_UPLOAD_LIMITS,
    SNIFF_BYTES,
    FileKind,
    UploadLimits,
    UploadTooLarge,
    sniff_kind,
)

CHUNK = 64 * 1024
MULTIPART_SLACK = 16 * 1024  # boundaries and part headers around the file
MAX_FIELDS_BYTES = 8 * 1024  # other form fields (ignored) may not be large either


@dataclass(frozen=True)
class Upload:
    """A file as received: a safe name, the type its bytes show, and the bytes."""

    file_name: str
    content_type: str  # what the first bytes show
    declared_type: str | None  # what the uploader said (the service checks they agree)
    data: bytes


def safe_file_name(name: str | None) -> str:
    """The base name, without control characters or path parts, at most 200 characters."""
    if not name:
        return "document"
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base)
                   if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    return base[:200] or "document"


def too_large_error(e: UploadTooLarge) -> ApiError:
    """The API's 413: the category's limit in ``details``, and in Vietnamese for people."""
    return ApiError("ticket.upload_too_large", e.message,
                    details={"field": "file", "category": e.category, "max_bytes": e.max_bytes,
                             "message_vi": upload_too_large_text(e.category, e.max_bytes)})


async def read_upload(request: web.Request,
                      limits: UploadLimits = DEFAULT_UPLOAD_LIMITS) -> Upload:
    """The ``file`` part of a multipart request, read in chunks with the limits above."""
    if request.content_length is not None and \
            request.content_length > limits.largest + MULTIPART_SLACK:
        raise too_large_error(UploadTooLarge("file", limits.largest))
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
            return await _read_file(part, limits)
    except ApiError:
        raise
    except (ValueError, AssertionError, KeyError, UnicodeDecodeError, HttpProcessingError) as e:
        # aiohttp's parser refuses bad part headers, boundaries, encodings: the client's fault.
        raise invalid("body", f"malformed multipart body ({type(e).__name__})") from None
    raise invalid("file", "required: a part named 'file' with the document")


async def _read_file(part: BodyPartReader, limits: UploadLimits) -> Upload:
    data = bytearray()
    kind: FileKind | None = None
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if kind is None and len(data) >= SNIFF_BYTES:
            kind = _kind_or_415(bytes(data[:SNIFF_BYTES]))
        limit = limits.of(kind.category) if kind is not None else limits.largest
        if len(data) > limit:
            raise too_large_error(UploadTooLarge(kind.category if kind else "file", limit))
    if not data:
        raise invalid("file", "the file is empty")
    if kind is None:
        kind = _kind_or_415(bytes(data))
    declared = part.headers.get("Content-Type")
    return Upload(safe_file_name(part.filename), kind.content_type,
                  declared.split(";")[0].strip().lower() if declared else None, bytes(data))


def _kind_or_415(head: bytes) -> FileKind:
    kind = sniff_kind(head)
    if kind is None:
        raise ApiError("ticket.upload_type", f"the file is not a {ALLOWED_TEXT} file (checked "
                                             "by its content, not its name)",
                       details={"field": "file"})
    return kind
