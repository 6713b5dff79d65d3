"""Upload checks: the kind of a file by its bytes, names and declared types; pure."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.tickets.config import TicketError
from callcenter.tickets.files import KINDS, check_upload, clean_file_name, detect_kind

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
    ("a.pdf", "application/pdf", b"x" * 11, "ticket.upload_too_large"),
    ("a.exe", "", PDF, "ticket.upload_type"),
    ("a.png", "image/png", JPEG, "ticket.upload_type"),
    ("a.pdf", "text/plain", PDF, "ticket.upload_type"),
    ("a.xls", "application/vnd.ms-excel", XLS, "ticket.upload_type"),
])
def test_given_bad_upload_when_checked_then_refused_with_stable_id(
        name: str, declared: str, data: bytes, error: str) -> None:
    with pytest.raises(TicketError) as e:
        check_upload(name, declared, data, max_bytes=10 if error.endswith("large") else 10**6)
    assert e.value.id == error


def test_given_control_characters_and_long_name_when_cleaned_then_safe_and_short() -> None:
    assert clean_file_name("bad\x00na\nme.pdf") == "badname.pdf"
    long = clean_file_name("x" * 500 + ".docx")
    assert len(long) == 200 and long.endswith(".docx")
    assert set(KINDS) == {"pdf", "doc", "docx", "png", "jpeg"}
