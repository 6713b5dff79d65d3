"""Upload checks: the kind of a file by its bytes, names and declared types; pure."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.tickets.config import TicketError
from callcenter.tickets.files import (
    DEFAULT_UPLOAD_LIMITS,
    KINDS,
    SNIFF_BYTES,
    UploadLimits,
    UploadTooLarge,
    check_upload,
    clean_file_name,
    detect_kind,
    sniff_kind,
)

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
DOC = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
       + "WordDocument".encode("utf-16-le") + b"\x00" * 100)
XLS = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + "Workbook".encode("utf-16-le")


def _zip(*names: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n in names:
            z.writestr(n, "<x/>")
    return out.getvalue()


DOCX = _zip("[Content_Types].xml", "word/document.xml")


@pytest.mark.parametrize(("data", "kind"), [
    (PDF, "pdf"), (PNG, "png"), (JPEG, "jpeg"), (DOC, "doc"), (DOCX, "docx"),
    (XLS, None), (_zip("[Content_Types].xml", "xl/workbook.xml"), None),
    (b"PK\x03\x04 not really a zip", None), (b"MZ\x90\x00", None), (b"hello", None),
    (b"", None), (b" %PDF-1.4", None),
])
def test_given_bytes_when_detected_then_kind_by_magic(data: bytes, kind: str | None) -> None:
    found = detect_kind(data)
    assert (found.name if found else None) == kind


@given(st.binary(max_size=64))
def test_given_random_bytes_without_magic_when_checked_then_refused(data: bytes) -> None:
    magics = (b"%PDF-", b"\x89PNG", b"\xff\xd8\xff", b"\xd0\xcf\x11\xe0", b"PK\x03\x04")
    if data.startswith(magics):
        return
    with pytest.raises(TicketError) as e:
        check_upload("x.pdf", "application/pdf", data)
    assert e.value.id == "ticket.upload_type"


@pytest.mark.parametrize(("name", "declared", "data", "stored_name"), [
    ("reply.PDF", "application/pdf; charset=binary", PDF, "reply.PDF"),
    ("scan", "", PNG, "scan.png"),
    ("C:\\Users\\an\\Ảnh chụp.jpeg", "image/jpg", JPEG, "Ảnh chụp.jpeg"),
    ("../../etc/passwd.doc", "application/octet-stream", DOC, "passwd.doc"),
    (".pdf", None, PDF, "pdf.pdf"),
    ("//", None, PDF, "tai-lieu.pdf"),
])
def test_given_good_upload_when_checked_then_name_cleaned_and_canonical_type(
        name: str, declared: str | None, data: bytes, stored_name: str) -> None:
    got = check_upload(name, declared, data)
    assert got.file_name == stored_name
    assert got.content_type == got.kind.content_type


@pytest.mark.parametrize(("name", "declared", "data", "error"), [
    ("a.pdf", "application/pdf", PDF, "ticket.upload_too_large"),
    ("a.exe", "", PDF, "ticket.upload_type"),
    ("a.png", "image/png", JPEG, "ticket.upload_type"),
    ("a.pdf", "text/plain", PDF, "ticket.upload_type"),
    ("a.xls", "application/vnd.ms-excel", XLS, "ticket.upload_type"),
])
def test_given_bad_upload_when_checked_then_refused_with_stable_id(
        name: str, declared: str, data: bytes, error: str) -> None:
    with pytest.raises(TicketError) as e:
        check_upload(name, declared, data,
                     UploadLimits(10, 10, 10) if error.endswith("large") else LIMITS)
    assert e.value.id == error


def test_given_control_characters_and_long_name_when_cleaned_then_safe_and_short() -> None:
    assert clean_file_name("bad\x00na\nme.pdf") == "badname.pdf"
    long = clean_file_name("x" * 500 + ".docx")
    assert len(long) == 200 and long.endswith(".docx")
    assert set(KINDS) == {"pdf", "doc", "docx", "png", "jpeg", "webp", "heic", "mp4", "mov", "3gp",
                          "3g2"}


# ---- photos and videos (orders' item 12: "kèm theo hình ảnh, đoạn phim") ---------------------
def _ftyp(brand: bytes, *compatible: bytes) -> bytes:
    """An ISO-BMFF ``ftyp`` box: 4 bytes size, ``ftyp``, major brand, version, compatibles."""
    body = brand + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body


WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 20


@pytest.mark.parametrize(("head", "kind", "ctype"), [
    (_ftyp(b"isom", b"isom", b"avc1"), "mp4", "video/mp4"),
    (_ftyp(b"mp41"), "mp4", "video/mp4"),
    (_ftyp(b"mp42", b"isom"), "mp4", "video/mp4"),
    (_ftyp(b"avc1"), "mp4", "video/mp4"),
    (_ftyp(b"qt  ", b"qt  "), "mov", "video/quicktime"),
    (_ftyp(b"heic", b"mif1", b"heic"), "heic", "image/heic"),
    (_ftyp(b"heix"), "heic", "image/heic"),
    (_ftyp(b"mif1", b"heic"), "heic", "image/heic"),
    (_ftyp(b"msf1", b"hevc"), "heic", "image/heic"),
    (_ftyp(b"3gp4"), "3gp", "video/3gpp"),
    (_ftyp(b"3gp5"), "3gp", "video/3gpp"),
    (_ftyp(b"3gp6"), "3gp", "video/3gpp"),
    (_ftyp(b"3g2a"), "3g2", "video/3gpp2"),
    (WEBP, "webp", "image/webp"),
])
def test_given_phone_media_header_when_detected_then_kind_by_ftyp_brand(
        head: bytes, kind: str, ctype: str) -> None:
    found = detect_kind(head)
    assert found is not None and found.name == kind and found.content_type == ctype
    assert sniff_kind(head[:SNIFF_BYTES]) == found  # the streaming check sees the same


@pytest.mark.parametrize("head", [
    _ftyp(b"avif", b"mif1"),  # an ISO-BMFF brand not accepted
    _ftyp(b"crx "),
    b"\x00\x00\x00\x04ftypisom",  # a box shorter than its own header
    b"\x00\x00\x00\x18moovisom",  # no ftyp box first
    b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but audio
])
def test_given_iso_bmff_or_riff_of_another_kind_when_detected_then_none(head: bytes) -> None:
    assert detect_kind(head) is None


@pytest.mark.parametrize(("name", "declared", "data", "why"), [
    ("clip.mp4", "video/mp4", JPEG, "end in .jpg"),  # a JPEG renamed .mp4
    ("clip.mov", "video/quicktime", _ftyp(b"mp42"), "end in .mp4"),
    ("clip.mp4", "video/quicktime", _ftyp(b"mp42"), "declared as video/quicktime"),
    ("anh.heic", "image/jpeg", _ftyp(b"heic"), "declared as image/jpeg"),
])
def test_given_media_whose_name_or_declared_type_disagrees_with_content_then_refused(
        name: str, declared: str, data: bytes, why: str) -> None:
    with pytest.raises(TicketError, match=why) as e:
        check_upload(name, declared, data)
    assert e.value.id == "ticket.upload_type"


LIMITS = UploadLimits(document=100, image=200, video=1000)


@pytest.mark.parametrize(("name", "data", "category", "limit"), [
    ("a.pdf", PDF + b"%" * 100, "document", 100),
    ("a.jpg", JPEG + b"\x00" * 200, "image", 200),
    ("a.mp4", _ftyp(b"isom") + b"\x00" * 1000, "video", 1000),
    ("a.pdf", PDF + b"%" * 2000, "document", 100),  # over every limit
])
def test_given_file_over_its_kinds_limit_when_checked_then_too_large_naming_that_limit(
        name: str, data: bytes, category: str, limit: int) -> None:
    with pytest.raises(UploadTooLarge) as e:
        check_upload(name, "", data, LIMITS)
    assert (e.value.id, e.value.category, e.value.max_bytes) == \
        ("ticket.upload_too_large", category, limit)


def test_given_video_larger_than_a_document_may_be_when_checked_then_accepted() -> None:
    assert check_upload("a.mp4", "video/mp4", _ftyp(b"isom") + b"\x00" * 500,
                        LIMITS).content_type == "video/mp4"
    assert DEFAULT_UPLOAD_LIMITS == UploadLimits(10 * 1024 * 1024, 10 * 1024 * 1024,
                                                 100 * 1024 * 1024)
