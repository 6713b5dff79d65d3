"""Shared helpers of the ticket tests (no tests here): config, clock, service, real files."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig, Tenant
from callcenter.store.migrate import upgrade_head
from callcenter.tickets.config import TicketPolicy, policy_of
from callcenter.tickets.rules import Actor
from callcenter.tickets.service import TicketService

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)  # 10:00 in Đồng Nai, a Monday
OP = Actor("op1", "operator")
SUP = Actor("sup1", "supervisor")
SYSTEM = Actor("intake", "system")
YT = Actor("yt1", "unit", "so_y_te")
GT = Actor("gt1", "unit", "so_gtvt")


class Clock:
    """A settable clock for the service (aware UTC)."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def hotline_config(*, forward: dt.timedelta | None = None) -> HotlineConfig:
    """The repository's config (Đồng Nai with its units) plus a second tenant without units."""
    cfg = load_config(REPO / "config" / "hotline.yaml")
    dongnai = cfg.tenants[0]
    if forward is not None:
        policy: TicketPolicy = policy_of(dongnai)
        policy = replace(policy, deadlines=replace(policy.deadlines, forward=forward))
        dongnai = replace(dongnai, tickets=policy)
    other = Tenant(id="thanhhoa", name="Thanh Hóa", timezone="Asia/Ho_Chi_Minh",
                   numbers=("02371022",), shifts=dongnai.shifts)
    return replace(cfg, tenants=(dongnai, other))


def make_service(database_url: str, files: Path, clock: Clock,
                 config: HotlineConfig | None = None, **kw: object) -> TicketService:
    """A service on a migrated database."""
    upgrade_head(database_url)
    cfg = config or hotline_config()
    return TicketService(database_url, lambda: cfg, files, clock=clock,
                         **kw)  # type: ignore[arg-type]


# ---- real files of each kind ------------------------------------------------------------------
def pdf_bytes() -> bytes:
    """A small, valid one-page PDF (with a correct xref table)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg_bytes() -> bytes:
    """The start of a JFIF JPEG (SOI + APP0), enough for any sniffer, and EOI."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + b"\xff\xd9"


def docx_bytes(text: str = "Trả lời kiến nghị") -> bytes:
    """A minimal but valid WordprocessingML document."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
                   'openxmlformats.org/package/2006/content-types"><Default Extension="rels" '
                   'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                   '<Default Extension="xml" ContentType="application/xml"/><Override '
                   'PartName="/word/document.xml" ContentType="application/vnd.'
                   'openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
                   '</Types>')
        z.writestr("_rels/.rels",
                   '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://'
                   'schemas.openxmlformats.org/package/2006/relationships"><Relationship '
                   'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                   'relationships/officeDocument" Target="word/document.xml"/>'
                   '</Relationships>')
        z.writestr("word/document.xml",
                   '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://'
                   'schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p>'
                   f'<w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>')
    return out.getvalue()


def doc_bytes() -> bytes:
    """An OLE2 compound file header with a WordDocument directory entry (as Word 97 writes)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    entry = "WordDocument".encode("utf-16-le").ljust(64, b"\x00") + b"\x1a\x00\x02"
    return header + entry.ljust(128, b"\x00") + b"\x00" * 384


def exe_bytes() -> bytes:
    """A Windows executable's start (MZ header, PE signature)."""
    return b"MZ\x90\x00" + b"\x00" * 56 + b"\x80\x00\x00\x00" + b"\x00" * 64 + b"PE\x00\x00"
