"""The console's ticket pages (SQLite and PostgreSQL, aiohttp's test client, a real
TicketService and session login): a unit sees and exports only its own tickets, records a
result with a reply document, gets Vietnamese errors without losing its text, meets a stale
form with the conflict message; supervisors filter late and unprocessed tickets and read
only; operators are refused; a POST without the CSRF token changes nothing."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import FormData

from callcenter.tickets.pages import CONFLICT
from callcenter.tickets.rules import Accept, Actor, Close, Resolve, TicketError, TicketState
from tests.support import api as api_support
from tests.support import lists as support
from tests.support.api import EXE, MAX_UPLOAD, MAX_VIDEO_UPLOAD, PDF
from tests.support.lists import (
    T0,
    Lists,
    codes_in,
    csrf_of,
    field_error,
    xlsx_headers,
    xlsx_rows,
)

hotline_config = api_support.hotline_config
lists = support.lists

HOUR = dt.timedelta(hours=1)
DN = ZoneInfo("Asia/Ho_Chi_Minh")
UNIT = "syt.dongnai"  # Sở Y tế (so_y_te)


def _version(page: str) -> int:
    m = re.search(r'data-version="([0-9]+)"', page)
    assert m is not None, page
    return int(m[1])


async def _post(client, code: str, fields: dict[str, str], *, file: tuple[str, bytes, str]
                | None = None):  # type: ignore[no-untyped-def]
    csrf = await csrf_of(client, f"/console/tickets/{code}")
    form = FormData(quote_fields=False)  # raw UTF-8 file names, as browsers send them
    for k, v in {"csrf": csrf, **fields}.items():
        form.add_field(k, v)
    if file is not None:
        form.add_field("file", file[1], filename=file[0], content_type=file[2])
    return await client.post(f"/console/tickets/{code}", data=form, allow_redirects=False)


async def test_given_two_units_when_unit_lists_opens_exports_then_only_its_own(
        lists: Lists) -> None:
    mine = lists.ticket(at=T0 - 3 * HOUR)
    other = lists.ticket(at=T0 - 2 * HOUR, field="transport", unit="ubnd_long_thanh",
                         content="Đèn giao thông hỏng ở ngã tư Long Thành.")
    at_level1 = lists.ticket(at=T0 - HOUR, unit=None)
    client = await lists.client(UNIT)

    resp = await client.get("/console/tickets")
    page = await resp.text()
    assert resp.status == 200, page
    assert codes_in(page) == [mine.code]
    assert "Sở Y tế" in page
    assert '<td data-state="forwarded">Đã chuyển đơn vị</td>' in page  # in Vietnamese
    # 3 hours before noon local: received 09:00 (Asia/Ho_Chi_Minh), not 02:00 UTC.
    assert "23/11/2026 09:00" in page
    assert 'name="unit"' not in page  # no unit filter for a unit user
    # A unit parameter never widens what a unit user sees.
    widened = await (await client.get("/console/tickets?unit=ubnd_long_thanh")).text()
    assert codes_in(widened) == [mine.code]

    for code in (other.code, at_level1.code):
        resp = await client.get(f"/console/tickets/{code}")
        text = await resp.text()
        assert resp.status == 404, text
        assert 'data-error-id="ticket.not_found"' in text
        assert "Đèn giao thông" not in text and "0912345678" not in text

    detail = await (await client.get(f"/console/tickets/{mine.code}")).text()
    assert "0912345678" in detail and "Nguyễn Thị Hoa" in detail  # the unit calls back
    assert 'data-action="accept"' in detail and 'data-action="resolve"' in detail
    # The audit trail reads in Vietnamese, unit and field by name (the core writes English).
    assert "Kênh: Điện thoại" in detail and "Chuyển cho Sở Y tế" in detail
    assert "field health" not in detail and "as routed" not in detail

    resp = await client.get("/console/tickets.xlsx?unit=ubnd_long_thanh")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == \
        'attachment; filename="phieu-dongnai-2026-11-23.xlsx"'
    data = await resp.read()
    headers = xlsx_headers(data)
    assert headers[:3] == ["STT", "Mã phiếu", "Thời điểm tiếp nhận"]
    rows = xlsx_rows(data)
    assert [r[1] for r in rows] == [mine.code]
    assert rows[0][2] == dt.datetime(2026, 11, 23, 9, 0)  # tenant wall-clock time
    assert rows[0][headers.index("Số điện thoại")] == "0912345678"
    # One way to export: the .xlsx path (a format parameter is no second route to it).
    page_again = await client.get("/console/tickets?format=xlsx")
    assert page_again.content_type == "text/html" and 'data-export="xlsx"' in \
        await page_again.text()


async def test_given_unit_when_accepts_and_records_result_with_pdf_then_resolved_and_stored(
        lists: Lists) -> None:
    t = lists.ticket(at=T0 - 3 * HOUR)
    client = await lists.client(UNIT)
    resp = await _post(client, t.code, {"action": "accept", "version": str(t.version)})
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == f"/console/tickets/{t.code}?done=accept"
    page = await (await client.get(resp.headers["Location"])).text()
    assert "Đã cập nhật phiếu" in page and 'data-state="in_progress"' in page
    assert 'data-action="accept"' not in page

    result = "Đã cấp bổ sung thuốc hạ sốt cho trạm y tế xã An Phước."
    resp = await _post(client, t.code, {"action": "resolve", "version": str(_version(page)),
                                        "result": result},
                       file=("công văn trả lời.pdf", PDF, "application/pdf"))
    assert resp.status == 303, await resp.text()

    ticket = lists.service.get(t.code, support.OPERATOR)
    assert ticket.state is TicketState.RESOLVED and ticket.result == result
    files = lists.service.attachments(t.code, support.OPERATOR)
    assert [(a.file_name, a.size) for a in files] == [("công văn trả lời.pdf", len(PDF))]
    assert ticket.reply_document == str(files[0].id)
    audit = [(e.event, e.actor.user_id) for e in lists.service.audit(t.code,
                                                                       support.OPERATOR)]
    assert audit[-3:] == [("accept", UNIT), ("attach", UNIT), ("resolve", UNIT)]

    page = await (await client.get(f"/console/tickets/{t.code}")).text()
    assert 'data-state="resolved"' in page and result in page
    assert 'data-action="resolve"' not in page  # nothing left to do
    link = f"/api/v1/tickets/{t.code}/attachments/{files[0].id}"
    assert link in page
    download = await client.get(link)  # the session cookie is enough for a GET
    assert download.status == 200 and await download.read() == PDF
    assert 'data-event="resolve"' in page and "Cập nhật kết quả giải quyết" in page


async def test_given_exe_as_reply_document_then_vietnamese_error_text_kept_nothing_changed(
        lists: Lists) -> None:
    t = lists.ticket(at=T0 - 3 * HOUR)
    client = await lists.client(UNIT)
    typed = "Đã làm việc với trạm y tế <b>xã</b> An Phước & bổ sung thuốc."
    resp = await _post(client, t.code, {"action": "resolve", "version": str(t.version),
                                        "result": typed},
                       file=("tra-loi.pdf", EXE, "application/pdf"))
    page = await resp.text()
    assert resp.status == 422, page
    assert "hình ảnh JPEG, PNG, WEBP, HEIC hoặc đoạn phim MP4, MOV, 3GP" in (
        field_error(page, "file") or "")
    area = re.search(r'<textarea id="result"[^>]*>([^<]*)</textarea>', page)
    assert area is not None and html.unescape(area[1]) == typed  # escaped, and kept
    ticket = lists.service.get(t.code, support.OPERATOR)
    assert (ticket.state, ticket.version) == (t.state, t.version)
    assert lists.service.attachments(t.code, support.OPERATOR) == []

    resp = await _post(client, t.code, {"action": "resolve", "version": str(t.version),
                                        "result": "   "})
    page = await resp.text()
    assert resp.status == 422 and "kết quả giải quyết" in (field_error(page, "result") or "")
    assert lists.service.get(t.code, support.OPERATOR).version == t.version


async def test_given_stale_version_when_unit_acts_then_conflict_message_and_current_state(
        lists: Lists) -> None:
    t = lists.ticket(at=T0 - 3 * HOUR)
    client = await lists.client(UNIT)
    stale = str(t.version)
    # Someone else (a colleague of the unit) accepts it meanwhile.
    assert (await _post(client, t.code, {"action": "accept", "version": stale})).status == 303
    resp = await _post(client, t.code, {"action": "resolve", "version": stale,
                                        "result": "Kết quả viết trên trang cũ."},
                       file=("tra-loi.pdf", PDF, "application/pdf"))
    page = await resp.text()
    assert resp.status == 409, page
    assert CONFLICT in page and 'data-error-id="ticket.conflict"' in page
    assert 'data-state="in_progress"' in page and "Kết quả viết trên trang cũ." in page
    ticket = lists.service.get(t.code, support.OPERATOR)
    assert ticket.state is TicketState.IN_PROGRESS
    assert lists.service.attachments(t.code, support.OPERATOR) == []  # no stray file


async def test_given_supervisor_when_quick_links_and_filters_then_matching_tickets_only(
        lists: Lists) -> None:
    late = lists.ticket(at=T0 - 48 * HOUR)  # due 24 h after receipt: a day late
    near = lists.ticket(at=T0 - 23 * HOUR, field="transport", unit="ubnd_long_thanh")
    fresh = lists.ticket(at=T0 - HOUR, unit=None)
    done = lists.ticket(at=T0 - 5 * HOUR, unit=None)
    boss = Actor("giamsat.binh", "supervisor")  # closes a duplicate never handled
    lists.service.act(done.code, boss, Close(T0 - 4 * HOUR, boss, "Trùng phiếu"))
    client = await lists.client("giamsat.binh")

    page = await (await client.get("/console/tickets")).text()
    assert codes_in(page) == [fresh.code, done.code, near.code, late.code]
    rows = dict(re.findall(r'<tr data-code="([^"]+)">.*?data-mark="([a-z]*)"', page, re.S))
    assert rows == {fresh.code: "", done.code: "", near.code: "near", late.code: "late"}
    page = await (await client.get("/console/tickets?view=late")).text()
    assert codes_in(page) == [late.code] and "Phiếu trễ hạn" in page
    page = await (await client.get("/console/tickets?view=unprocessed")).text()
    assert codes_in(page) == [fresh.code, near.code, late.code]
    page = await (await client.get("/console/tickets?unit=ubnd_long_thanh")).text()
    assert codes_in(page) == [near.code]
    page = await (await client.get("/console/tickets?state=closed")).text()
    assert codes_in(page) == [done.code]
    page = await (await client.get("/console/tickets?field=transport&late=0")).text()
    assert codes_in(page) == [near.code]
    # Received days are the tenant's: 22/11 local ends at 17:00 UTC on the 22nd.
    page = await (await client.get("/console/tickets?from=2026-11-22&to=2026-11-22")).text()
    assert codes_in(page) == [near.code]  # received 13:00 local on the 22nd
    page = await (await client.get("/console/tickets?from=2026-11-23")).text()
    assert codes_in(page) == [fresh.code, done.code]

    resp = await client.get("/console/tickets?from=23/11/2026&unit=nope")
    page = await resp.text()
    assert resp.status == 422
    assert field_error(page, "from") and field_error(page, "unit")
    data = await (await client.get("/console/tickets.xlsx?view=late")).read()
    assert [r[1] for r in xlsx_rows(data)] == [late.code]

    detail = await (await client.get(f"/console/tickets/{late.code}")).text()
    assert "data-action=" not in detail and "(trễ hạn)" in detail  # read-only
    resp = await _post(client, late.code, {"action": "accept", "version": "1"})
    assert resp.status == 403


async def test_given_many_tickets_when_paged_then_fifty_and_next_page(lists: Lists) -> None:
    opened = [lists.ticket(at=T0 - dt.timedelta(minutes=5 * i + 5), unit=None)
              for i in range(52)]
    client = await lists.client("quantri")
    page = await (await client.get("/console/tickets")).text()
    assert codes_in(page) == [t.code for t in opened[:50]]
    nxt = re.search(r'<a href="([^"]+)" rel="next">Trang sau</a>', page)
    assert nxt is not None and 'data-total="52"' in page
    page = await (await client.get(html.unescape(nxt[1]))).text()
    assert codes_in(page) == [t.code for t in opened[50:]] and 'rel="next"' not in page


async def test_given_roles_when_opening_lists_then_operator_refused_and_login_required(
        lists: Lists) -> None:
    t = lists.ticket(at=T0 - HOUR)
    operator = await lists.client("tdv.an")
    for path in ("/console/tickets", f"/console/tickets/{t.code}", "/console/tickets.xlsx",
                 "/console/calls"):
        resp = await operator.get(path, allow_redirects=False)
        assert resp.status == 403, path
        assert 'data-error-id="auth.forbidden"' in await resp.text()
    unit = await lists.client(UNIT)
    assert (await unit.get("/console/calls", allow_redirects=False)).status == 403
    anonymous = await lists.client(None)
    resp = await anonymous.get("/console/tickets?view=late", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/console/login?next=")


async def test_given_post_without_csrf_then_403_and_ticket_unchanged(lists: Lists) -> None:
    t = lists.ticket(at=T0 - HOUR)
    client = await lists.client(UNIT)
    for data in ({"action": "accept", "version": str(t.version)},
                 {"action": "accept", "version": str(t.version), "csrf": "sai"}):
        resp = await client.post(f"/console/tickets/{t.code}", data=data,
                                 allow_redirects=False)
        assert resp.status == 403
        assert 'data-error-id="csrf.invalid"' in await resp.text()
    assert lists.service.get(t.code, support.OPERATOR).version == t.version


async def test_given_unit_when_returns_ticket_with_reason_then_back_at_level1(
        lists: Lists) -> None:
    t = lists.ticket(at=T0 - HOUR)
    client = await lists.client(UNIT)
    resp = await _post(client, t.code, {"action": "return", "version": str(t.version),
                                        "reason": "Không thuộc thẩm quyền của Sở Y tế."})
    assert resp.status == 303, await resp.text()
    ticket = lists.service.get(t.code, support.OPERATOR)
    assert ticket.state is TicketState.RETURNED
    assert ticket.return_reason == "Không thuộc thẩm quyền của Sở Y tế."
    page = await (await client.get(f"/console/tickets/{t.code}")).text()
    assert "data-action=" not in page  # no longer the unit's to act on
    assert codes_in(await (await client.get("/console/tickets")).text()) == [t.code]
    assert ticket.received_at.astimezone(DN).hour == 11


async def test_given_extreme_dates_then_422_with_field_errors_not_a_crash(lists: Lists) -> None:
    client = await lists.client("giamsat.binh")
    for query in ("from=0001-01-01", "to=9999-12-31", "from=1999-12-31", "to=2101-01-01"):
        key = query.split("=")[0]
        resp = await client.get(f"/console/tickets?{query}")
        page = await resp.text()
        assert resp.status == 422, (query, page[:300])
        assert "năm 2000–2100" in (field_error(page, key) or "")
        assert (await client.get(f"/console/tickets.xlsx?{query}")).status == 422
    resp = await client.get("/console/tickets?from=2000-01-01&to=2100-12-31")
    assert resp.status == 200


def _stored_files(lists: Lists) -> list[str]:
    """The files under the service's files folder (relative paths)."""
    root = lists.service.files_dir
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def test_given_change_landing_before_resolve_with_pdf_then_conflict_and_no_file_kept(
        lists: Lists, monkeypatch: pytest.MonkeyPatch) -> None:
    t = lists.ticket(at=T0 - 3 * HOUR)
    client = await lists.client(UNIT)
    service = lists.service
    colleague = Actor("syt.khac", "unit", "so_y_te")
    real = service.resolve_with_document

    def colleague_first(*args: Any, **kwargs: Any) -> Any:
        # A colleague's accept commits after the page read the ticket, before this write.
        service.act(t.code, colleague, Accept(T0, colleague))
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "resolve_with_document", colleague_first)
    resp = await _post(client, t.code, {"action": "resolve", "version": str(t.version),
                                        "result": "Kết quả viết trước khi đồng nghiệp nhận."},
                       file=("tra-loi.pdf", PDF, "application/pdf"))
    page = await resp.text()
    assert resp.status == 409, page
    assert 'data-error-id="ticket.conflict"' in page
    ticket = service.get(t.code, support.OPERATOR)
    assert ticket.state is TicketState.IN_PROGRESS and ticket.result is None
    assert service.attachments(t.code, support.OPERATOR) == []
    assert [e.event for e in service.audit(t.code, support.OPERATOR)][-1] == "accept"
    assert _stored_files(lists) == []


async def test_given_illegal_resolve_with_document_then_no_row_no_file_and_shared_file_kept(
        lists: Lists) -> None:
    service = lists.service
    unit = Actor(UNIT, "unit", "so_y_te")
    done = lists.ticket(at=T0 - 3 * HOUR)
    service.act(done.code, unit, Resolve(T0, unit, "Đã giải quyết."))
    other = lists.ticket(at=T0 - 2 * HOUR)
    kept = service.attach(other.code, unit, "chung.pdf", "application/pdf", PDF)
    before = _stored_files(lists)
    assert len(before) == 1

    for data in (PDF + b"% rieng\n", PDF):  # a new file, then bytes another ticket keeps
        with pytest.raises(TicketError) as refused:
            service.resolve_with_document(done.code, unit, Resolve(T0, unit, "Lần hai."),
                                          "lan-hai.pdf", "application/pdf", data)
        assert refused.value.id == "ticket.illegal_transition"
        assert service.attachments(done.code, support.OPERATOR) == []
        assert _stored_files(lists) == before
    assert service.get(done.code, support.OPERATOR).result == "Đã giải quyết."
    assert (await (await (await lists.client(UNIT)).get(
        f"/api/v1/tickets/{other.code}/attachments/{kept.id}")).read()) == PDF



async def test_given_video_over_the_apps_body_limit_when_resolving_then_only_that_form_takes_it(
        lists: Lists) -> None:
    # The app's client_max_size (aiohttp's default 1 MiB here) bounds every console form but the
    # ticket's reply form, whose file may be a video up to the video limit (2 MiB here).
    video = (b"\x00\x00\x00\x14ftypmp42\x00\x00\x00\x00isom"
             + b"\x00" * (3 * MAX_VIDEO_UPLOAD // 4))
    assert 1024 * 1024 < len(video) < MAX_VIDEO_UPLOAD
    t = lists.ticket(at=T0 - HOUR)
    client = await lists.client(UNIT)
    resp = await _post(client, t.code, {"action": "resolve", "version": str(t.version),
                                        "result": "Đã xử lý, kèm đoạn phim hiện trường."},
                       file=("hien-truong.mp4", video, "video/mp4"))
    assert resp.status in (200, 303), await resp.text()
    [att] = lists.service.attachments(t.code, support.OPERATOR)
    assert (att.content_type, att.size) == ("video/mp4", len(video))
    # Another console form (the login form) still refuses such a body.
    login = await client.post("/console/login", data={"user": "x" * len(video)})
    assert login.status == 413
    assert "request.too_large" in await login.text()
    too_big = video + b"\x00" * MAX_VIDEO_UPLOAD
    t2 = lists.ticket(at=T0 - HOUR)
    resp = await _post(client, t2.code, {"action": "resolve", "version": str(t2.version),
                                         "result": "Kết quả kèm đoạn phim quá lớn."},
                       file=("lon.mp4", too_big, "video/mp4"))
    page = await resp.text()
    assert resp.status == 413, page[:300]
    assert "request.too_large" in page
    assert lists.service.attachments(t2.code, support.OPERATOR) == []


async def test_given_reply_document_over_the_limit_then_vietnamese_error_and_nothing_stored(
        lists: Lists) -> None:
    t = lists.ticket(at=T0 - HOUR)
    client = await lists.client(UNIT)
    page = await (await client.get(f"/console/tickets/{t.code}")).text()
    # lists.js checks them before sending
    assert f'data-max-document="{MAX_UPLOAD}"' in page
    assert f'data-max-video="{MAX_VIDEO_UPLOAD}"' in page
    big = PDF + b"%" * MAX_UPLOAD
    resp = await _post(client, t.code, {"action": "resolve", "version": str(t.version),
                                        "result": "Kết quả kèm văn bản quá lớn."},
                       file=("lon.pdf", big, "application/pdf"))
    page = await resp.text()
    assert resp.status == 422, page
    assert field_error(page, "file") == "Tệp đính kèm quá lớn: văn bản tối đa 256 KB."
    assert "Kết quả kèm văn bản quá lớn." in page
    assert lists.service.attachments(t.code, support.OPERATOR) == []
    assert lists.service.get(t.code, support.OPERATOR).version == t.version
