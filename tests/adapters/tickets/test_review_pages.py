"""The disclosure review in the console (SQLite and PostgreSQL, a real TicketService, session
login): resolved tickets wait in the review list with the citizen's data masked; a supervisor
edits the public texts and publishes, or declines with a reason; the public page then shows
only what was published, with the edited texts, and the original stays as it was; every
decision is in the audit trail; operators and units are refused; the SMS report downloads
with the console session."""

from __future__ import annotations

import datetime as dt
import html
import re

from callcenter.tickets.rules import Accept, Actor, Answer, Resolve, Ticket
from tests.support import api as api_support
from tests.support import lists as support
from tests.support.lists import T0, Lists, codes_in, csrf_of

hotline_config = api_support.hotline_config
lists = support.lists

HOUR = dt.timedelta(hours=1)
SUP = Actor("giamsat.binh", "supervisor")
CONTENT = "Tôi là Nguyễn Thị Hoa, số 0912 345 678. Trạm y tế xã An Phước không có thuốc hạ sốt."
RESULT = "Đã gọi lại bà Hoa (0912345678): trạm y tế đã được cấp bổ sung thuốc hạ sốt."
PUBLIC_Q = "Người dân phản ánh trạm y tế xã An Phước thiếu thuốc hạ sốt."
PUBLIC_A = "Sở Y tế đã cấp bổ sung thuốc hạ sốt cho trạm y tế xã An Phước."


def _resolved(lists: Lists, at: dt.datetime = T0 - 5 * HOUR) -> Ticket:
    t = lists.ticket(at=at, content=CONTENT)
    t = lists.service.act(t.code, SUP, Accept(at + HOUR, SUP))
    return lists.service.act(t.code, SUP, Resolve(at + 2 * HOUR, SUP, RESULT))


async def _post(client, code: str, fields: dict[str, str]):  # type: ignore[no-untyped-def]
    csrf = await csrf_of(client, f"/console/review/{code}")
    return await client.post(f"/console/review/{code}", data={"csrf": csrf, **fields},
                             allow_redirects=False)


def _textarea(page: str, name: str) -> str:
    m = re.search(rf'<textarea id="{name}" name="{name}"[^>]*>([^<]*)</textarea>', page)
    assert m is not None, page
    return html.unescape(m[1])


def _public_codes(feed: dict[str, object]) -> list[str]:
    return [i["code"] for i in feed["items"]]  # type: ignore[attr-defined,index]


async def test_given_resolved_ticket_when_reviewed_and_published_then_public_reads_edits(
        lists: Lists) -> None:
    t = _resolved(lists)
    still_open = lists.ticket(at=T0 - HOUR)
    client = await lists.client("giamsat.binh")
    anon = await lists.client(None)

    page = await (await client.get("/console/review")).text()
    assert codes_in(page) == [t.code]  # resolved only; the open ticket is not there
    assert still_open.code not in page
    assert "Nguyễn Thị Hoa" not in page and "0912 345 678" not in page
    assert "Chờ rà soát" in page
    feed = await (await anon.get("/public/dongnai/tickets.json")).json()
    assert feed["items"] == []  # nothing is public before the review

    form = await (await client.get(f"/console/review/{t.code}")).text()
    masked_q = _textarea(form, "question")
    assert "[họ tên]" in masked_q and "[số điện thoại]" in masked_q
    assert "Hoa" not in _textarea(form, "answer") and "0912345678" not in form
    version = int(re.search(r'name="version" value="([0-9]+)"', form)[1])  # type: ignore[index]

    resp = await _post(client, t.code, {"action": "publish", "version": str(version),
                                        "question": PUBLIC_Q, "answer": PUBLIC_A})
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == f"/console/review?done=publish&code={t.code}"

    feed = await (await anon.get("/public/dongnai/tickets.json")).json()
    (item,) = feed["items"]
    assert (item["code"], item["question"], item["answer"]) == (t.code, PUBLIC_Q, PUBLIC_A)
    public_page = await (await anon.get("/public/dongnai/")).text()
    assert PUBLIC_A in public_page and "0912" not in public_page and "Hoa" not in public_page

    stored = lists.service.get(t.code, SUP)
    assert (stored.content, stored.result) == (CONTENT, RESULT)  # the original is untouched
    assert (stored.public_question, stored.public_answer) == (PUBLIC_Q, PUBLIC_A)
    (entry,) = [e for e in lists.service.audit(t.code, SUP) if e.event == "publish"]
    assert entry.actor.user_id == "giamsat.binh" and entry.at == T0
    assert f"answer edited: «{PUBLIC_A}»" in entry.detail

    assert codes_in(await (await client.get("/console/review")).text()) == []
    published = await (await client.get("/console/review?status=published")).text()
    assert codes_in(published) == [t.code]
    ticket_page = await (await client.get(f"/console/tickets/{t.code}")).text()
    assert "Rà soát: công khai" in ticket_page  # the audit trail, in Vietnamese


async def test_given_pending_ticket_when_declined_then_not_public_and_reason_listed(
        lists: Lists) -> None:
    t = _resolved(lists)
    client = await lists.client("quantri")
    resp = await _post(client, t.code, {"action": "decline", "version": str(t.version),
                                        "reason": "Nội dung mang tính cá nhân"})
    assert resp.status == 303, await resp.text()
    anon = await lists.client(None)
    assert (await (await anon.get("/public/dongnai/tickets.json")).json())["items"] == []
    declined = await (await client.get("/console/review?status=declined")).text()
    assert codes_in(declined) == [t.code] and "Nội dung mang tính cá nhân" in declined
    (entry,) = [e for e in lists.service.audit(t.code, SUP) if e.event == "decline"]
    assert entry.actor.user_id == "quantri"
    assert entry.detail == "declined for publication: Nội dung mang tính cá nhân"


async def test_given_published_when_edited_again_then_public_text_replaced(
        lists: Lists) -> None:
    t = _resolved(lists)
    client = await lists.client("giamsat.binh")
    await _post(client, t.code, {"action": "publish", "version": str(t.version),
                                 "question": PUBLIC_Q, "answer": PUBLIC_A})
    form = await (await client.get(f"/console/review/{t.code}")).text()
    assert _textarea(form, "answer") == PUBLIC_A  # the form shows the published edit
    resp = await _post(client, t.code, {"action": "publish", "version": str(t.version + 1),
                                        "question": PUBLIC_Q, "answer": "Đã cấp thuốc."})
    assert resp.status == 303
    anon = await lists.client(None)
    (item,) = (await (await anon.get("/public/dongnai/tickets.json")).json())["items"]
    assert item["answer"] == "Đã cấp thuốc."
    events = [e.detail for e in lists.service.audit(t.code, SUP) if e.event == "publish"]
    assert len(events) == 2 and events[1].startswith("published again; question unchanged")


async def test_given_public_text_with_citizens_phone_when_published_then_refused(
        lists: Lists) -> None:
    t = _resolved(lists)
    client = await lists.client("giamsat.binh")
    resp = await _post(client, t.code, {"action": "publish", "version": str(t.version),
                                        "question": PUBLIC_Q,
                                        "answer": "Gọi 0912.345.678 để biết thêm."})
    page = await resp.text()
    assert resp.status == 422
    assert 'data-error-id="ticket.personal_data"' in page
    assert "không được chứa họ tên hoặc số điện thoại" in page
    assert not lists.service.get(t.code, SUP).publishable


async def test_given_stale_form_when_published_then_conflict_and_nothing_changed(
        lists: Lists) -> None:
    t = _resolved(lists)
    client = await lists.client("giamsat.binh")
    resp = await _post(client, t.code, {"action": "publish", "version": str(t.version - 1),
                                        "question": PUBLIC_Q, "answer": PUBLIC_A})
    assert resp.status == 409
    assert "người khác cập nhật" in await resp.text()
    assert not lists.service.get(t.code, SUP).publishable


async def test_given_operator_or_unit_when_review_opened_or_posted_then_403(
        lists: Lists) -> None:
    t = _resolved(lists)
    for name in ("tdv.an", "syt.dongnai"):
        client = await lists.client(name)
        for path in ("/console/review", f"/console/review/{t.code}"):
            resp = await client.get(path)
            assert resp.status == 403, (name, path)
            assert "Không có quyền truy cập" in await resp.text()
        csrf = await csrf_of(client, "/console/tickets" if name != "tdv.an"
                             else "/console/callbacks")
        resp = await client.post(f"/console/review/{t.code}", allow_redirects=False,
                                 data={"csrf": csrf, "action": "publish",
                                       "version": str(t.version), "question": PUBLIC_Q,
                                       "answer": PUBLIC_A})
        assert resp.status == 403, name
    assert not lists.service.get(t.code, SUP).publishable
    assert all(e.event not in ("publish", "decline")
               for e in lists.service.audit(t.code, SUP))


async def test_given_no_session_when_review_opened_then_login(lists: Lists) -> None:
    client = await lists.client(None)
    resp = await client.get("/console/review", allow_redirects=False)
    assert resp.status == 303 and "/console/login" in resp.headers["Location"]


async def test_given_supervisor_session_when_sms_report_downloaded_then_xlsx(
        lists: Lists) -> None:
    client = await lists.client("giamsat.binh")
    tickets = await (await client.get("/console/tickets")).text()
    assert 'href="/api/v1/reports/sms?format=xlsx"' in tickets  # the console's link
    unit = await lists.client("syt.dongnai")
    assert "reports/sms" not in await (await unit.get("/console/tickets")).text()
    resp = await client.get("/api/v1/reports/sms?month=2026-11&format=xlsx")
    assert resp.status == 200
    assert resp.content_type.endswith("spreadsheetml.sheet")
    operator = await lists.client("tdv.an")
    assert (await operator.get("/api/v1/reports/sms?month=2026-11")).status == 403


async def test_given_other_provinces_ticket_when_supervisor_reviews_then_not_found(
        lists: Lists) -> None:
    op = Actor("tdv.thanhhoa", "operator")
    theirs = lists.service.open("thanhhoa", op, channel="phone", field="health",
                                content="Hỏi lịch tiêm chủng.", at=T0 - HOUR)
    theirs = lists.service.act(theirs.code, op, Answer(T0 - HOUR, op, "Sáng thứ Tư."))
    client = await lists.client("giamsat.binh")
    assert theirs.code not in await (await client.get("/console/review")).text()
    resp = await client.get(f"/console/review/{theirs.code}")
    assert resp.status == 404
    resp = await client.post(f"/console/review/{theirs.code}", allow_redirects=False,
                             data={"csrf": await csrf_of(client, "/console/review"),
                                   "action": "publish", "version": str(theirs.version),
                                   "question": PUBLIC_Q, "answer": PUBLIC_A})
    assert resp.status == 404
    assert not lists.service.get(theirs.code, SUP).publishable
