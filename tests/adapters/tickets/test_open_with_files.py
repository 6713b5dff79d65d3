"""``TicketService.open_with_files`` (SQLite and PostgreSQL): one ticket, its files and the
citizen's receipt SMS in one transaction; a refused file stores nothing at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.sms.store import SmsOutbox
from callcenter.tickets.config import TicketError
from callcenter.tickets.service import NewTicket, TicketService
from tests.support.tickets import SUP, SYSTEM, Clock, jpeg_bytes, make_service, pdf_bytes, png_bytes

WEB = NewTicket(channel="web", content="Rác thải đổ trộm ven đường 25B.", field="other",
                citizen_name="Lê Văn Cường", citizen_phone="0987 654 321")


@pytest.fixture
def svc(database_url: str, tmp_path: Path) -> Iterator[TicketService]:
    s = make_service(database_url, tmp_path / "files", Clock())
    yield s
    s.close()


def _sms(svc: TicketService) -> list[tuple[str, str, str]]:
    outbox = SmsOutbox(svc.db.engine)
    return [(m.purpose, m.to_number, m.text) for m in outbox.recent()]


def test_given_photos_and_receipt_when_opened_then_ticket_files_and_sms_together(
        svc: TicketService) -> None:
    ticket, files = svc.open_with_files(
        "dongnai", SYSTEM, WEB, [("a.jpg", "image/jpeg", jpeg_bytes()),
                                 ("b.png", None, png_bytes())],
        receipt=True, categories=("image", "video"))
    assert ticket.channel == "web" and ticket.citizen_phone == "0987654321"
    assert [(f.file_name, f.content_type) for f in files] == [("a.jpg", "image/jpeg"),
                                                              ("b.png", "image/png")]
    assert [f.id for f in svc.attachments(ticket.code, SUP)] == [f.id for f in files]
    assert [e.event for e in svc.audit(ticket.code, SUP)] == ["open", "attach", "attach"]
    [(purpose, to, text)] = _sms(svc)
    assert (purpose, to) == ("web_receipt", "0987654321") and ticket.code in text


def test_given_no_receipt_when_opened_then_no_sms(svc: TicketService) -> None:
    ticket, files = svc.open_with_files("dongnai", SYSTEM, WEB, [])
    assert files == [] and svc.get(ticket.code, SUP).code == ticket.code
    assert _sms(svc) == []


def test_given_pdf_when_only_photos_taken_then_refused_and_nothing_stored(
        svc: TicketService) -> None:
    with pytest.raises(TicketError) as e:
        svc.open_with_files("dongnai", SYSTEM, WEB, [("a.jpg", "image/jpeg", jpeg_bytes()),
                                                     ("don.pdf", None, pdf_bytes())],
                            receipt=True, categories=("image", "video"))
    assert e.value.id == "ticket.upload_type"
    assert svc.list(SUP, tenant="dongnai") == [] and _sms(svc) == []
    assert not any(p.is_file() for p in svc.files_dir.rglob("*"))


def test_given_unknown_field_when_opened_then_refused_and_no_file_left(
        svc: TicketService) -> None:
    bad = NewTicket(channel="web", content="Nội dung.", field="astrology",
                    citizen_phone="0987654321")
    with pytest.raises(TicketError) as e:
        svc.open_with_files("dongnai", SYSTEM, bad, [("a.jpg", None, jpeg_bytes())],
                            receipt=True)
    assert e.value.id == "ticket.unknown_field"
    assert not any(p.is_file() for p in svc.files_dir.rglob("*"))
