"""The ticket HTTP API on a real TicketService (SQLite and PostgreSQL): auth and roles, the
whole workflow with a reply document, unit isolation, conflicts, validation, uploads."""

from __future__ import annotations

import logging

import pytest
from aiohttp import FormData

from callcenter.tickets.rules import Actor
from tests.support import api as support
from tests.support.api import EXE, MAX_UPLOAD, PDF, Api

# Fixtures shared with the other API tests.
api = support.api
hotline_config = support.hotline_config

V1 = "/api/v1"


# ---- authentication ---------------------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer hl1_nope",
                                    "Bearer hl1_0123456789abcdef_" + "A" * 43])
async def test_given_no_valid_token_when_calling_api_then_401_auth_required(
        api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    resp = await api.client.get(f"{V1}/tickets", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["id"] == "auth.required"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_given_revoked_token_when_calling_api_then_401(api: Api,
                                                             database_url: str) -> None:
    from callcenter.store.users import UserStore

    await api.call("GET", f"{V1}/tickets", "tdv.an", 200)
    store = UserStore(database_url)
    try:
        store.revoke("tdv.an")
    finally:
        store.close()
    body = await api.call("GET", f"{V1}/tickets", "tdv.an", 401)
    assert body["error"]["id"] == "auth.required"


async def test_given_spec_when_fetched_without_token_then_served(api: Api) -> None:
    spec = await api.call("GET", f"{V1}/openapi.json", None, 200)
    assert spec["openapi"].startswith("3.1")


@pytest.mark.parametrize(("user", "method", "path"), [
    ("syt.dongnai", "POST", "/tickets"),
    ("syt.dongnai", "GET", "/callers/0912345678/tickets"),
    ("tdv.an", "GET", "/reports/late"),
    ("syt.dongnai", "GET", "/reports/daily?date=2026-11-23"),
])
async def test_given_wrong_role_when_calling_then_403_auth_forbidden(
        api: Api, user: str, method: str, path: str) -> None:
    body = await api.call(method, V1 + path, user, 403,
                          json={"channel": "phone", "content": "x", "field": "health"})
    assert body["error"]["id"] == "auth.forbidden"


# ---- the workflow ------------------------------------------------------------------------------
async def test_given_forward_without_unit_then_the_routing_rules_choose(api: Api) -> None:
    # Health has a province-wide lead unit; transport has none: the place decides, and with
    # no place the fallback unit takes it.
    t = await api.open_ticket()
    t = await api.act(t["code"], "tdv.an", "forward", 0)
    assert (t["state"], t["unit"]) == ("forwarded", "so_y_te")
    local = await api.open_ticket(field="transport")
    local = await api.act(local["code"], "tdv.an", "forward", 0)
    assert local["unit"] == "ubnd_long_thanh"
    nowhere = await api.open_ticket(field="transport", place=None)
    nowhere = await api.act(nowhere["code"], "tdv.an", "forward", 0)
    assert nowhere["unit"] == "vp_ubnd_tinh"
    audit = await api.call("GET", f"{V1}/tickets/{local['code']}/audit", "giamsat.binh", 200)
    assert "as routed" in audit["entries"][1]["text"]


async def test_given_operator_when_open_forward_accept_resolve_close_then_audit_tells_it(
        api: Api) -> None:
    t = await api.open_ticket(call_ids=["pbx1:1763884800.17"])
    code = t["code"]
    assert code.startswith("DN-") and t["state"] == "new" and t["version"] == 0
    assert t["resolve_due"] is not None and t["late"] is False

    t = await api.act(code, "tdv.an", "forward", 0, unit="so_y_te", note="gọi lại trong ngày")
    assert (t["state"], t["unit"], t["version"]) == ("forwarded", "so_y_te", 1)
    t = await api.act(code, "syt.dongnai", "accept", 1)
    assert t["state"] == "in_progress"

    form = FormData()
    form.add_field("file", PDF, filename="cong-van-tra-loi.pdf", content_type="application/pdf")
    att = await api.call("POST", f"{V1}/tickets/{code}/attachments", "syt.dongnai", 201,
                         data=form)
    assert att["content_type"] == "application/pdf" and att["size"] == len(PDF)
    assert len(att["sha256"]) == 64 and "stored_path" not in att

    t = await api.act(code, "syt.dongnai", "resolve", 2,
                      result="Đã cấp bổ sung thuốc cho trạm y tế.",
                      reply_document=str(att["id"]))
    assert (t["state"], t["reply_document"]) == ("resolved", str(att["id"]))
    t = await api.act(code, "tdv.an", "close", 3)
    assert t["state"] == "closed" and t["open"] is False

    audit = await api.call("GET", f"{V1}/tickets/{code}/audit", "giamsat.binh", 200)
    steps = [(e["event"], e["from"], e["to"], e["actor"]["user"]) for e in audit["entries"]]
    assert steps == [
        ("open", None, "new", "tdv.an"),
        ("forward", "new", "forwarded", "tdv.an"),
        ("accept", "forwarded", "in_progress", "syt.dongnai"),
        ("attach", "in_progress", "in_progress", "syt.dongnai"),
        ("resolve", "in_progress", "resolved", "syt.dongnai"),
        ("close", "resolved", "closed", "tdv.an"),
    ]
    assert audit["entries"][1]["text"].startswith(f"{code} new -[forward]-> forwarded")

    files = await api.call("GET", f"{V1}/tickets/{code}/attachments", "tdv.an", 200)
    assert [a["id"] for a in files["items"]] == [att["id"]]
    resp = await api.client.get(f"{V1}/tickets/{code}/attachments/{att['id']}",
                                headers=api.auth("syt.dongnai"))
    assert resp.status == 200 and await resp.read() == PDF
    assert resp.headers["Content-Type"] == "application/pdf"
    assert "cong-van-tra-loi.pdf" in resp.headers["Content-Disposition"]

    calls = await api.call("GET", f"{V1}/calls/pbx1:1763884800.17/tickets", "tdv.an", 200)
    assert [x["code"] for x in calls["items"]] == [code]


async def test_given_faq_answer_when_opened_then_answered_at_once(api: Api) -> None:
    t = await api.open_ticket(answer="Giờ làm việc: 7h30-17h, thứ Hai đến thứ Sáu.",
                              faq_item="gio-lam-viec", field="admin_procedures")
    assert t["state"] == "answered" and t["faq_item"] == "gio-lam-viec"


async def test_given_open_ticket_when_caller_number_looked_up_then_found_in_any_spelling(
        api: Api) -> None:
    t = await api.open_ticket()
    await api.open_ticket(citizen_phone="0987654321")
    for number in ("0912345678", "+84912345678", "84912345678"):
        found = await api.call("GET", f"{V1}/callers/{number}/tickets", "tdv.an", 200)
        assert [x["code"] for x in found["items"]] == [t["code"]]


# ---- units see their own tickets only -------------------------------------------------------
async def test_given_ticket_with_one_unit_when_another_unit_reads_or_acts_then_403(
        api: Api) -> None:
    t = await api.open_ticket()
    code = t["code"]
    await api.act(code, "tdv.an", "forward", 0, unit="so_y_te")
    other = "ubnd.longthanh"
    for method, path, kwargs in (
            ("GET", f"/tickets/{code}", {}),
            ("GET", f"/tickets/{code}/audit", {}),
            ("GET", f"/tickets/{code}/attachments", {}),
            ("POST", f"/tickets/{code}/actions", {"json": {"action": "accept", "version": 1}}),
            ("POST", f"/tickets/{code}/actions",
             {"json": {"action": "resolve", "version": 1, "result": "xong"}})):
        body = await api.call(method, V1 + path, other, 403, **kwargs)
        assert body["error"]["id"] == "ticket.forbidden", (path, body)
    form = FormData()
    form.add_field("file", PDF, filename="x.pdf", content_type="application/pdf")
    body = await api.call("POST", f"{V1}/tickets/{code}/attachments", other, 403, data=form)
    assert body["error"]["id"] == "ticket.forbidden"

    mine = await api.call("GET", f"{V1}/tickets", other, 200)
    assert mine["items"] == [] and mine["total"] == 0
    theirs = await api.call("GET", f"{V1}/tickets", "syt.dongnai", 200)
    assert [x["code"] for x in theirs["items"]] == [code]
    # The holder may; nothing changed meanwhile.
    t = await api.call("GET", f"{V1}/tickets/{code}", "syt.dongnai", 200)
    assert (t["state"], t["version"]) == ("forwarded", 1)


async def test_given_tickets_of_several_units_when_supervisor_lists_then_sees_whole_tenant(
        api: Api) -> None:
    a = (await api.open_ticket())["code"]
    b = (await api.open_ticket(field="transport", place="long_thanh"))["code"]
    c = (await api.open_ticket())["code"]
    await api.act(a, "tdv.an", "forward", 0, unit="so_y_te")
    await api.act(b, "tdv.an", "forward", 0, unit="ubnd_long_thanh")
    await api.call("POST", f"{V1}/tickets", "tdv.thanhhoa", 201,
                   json={"channel": "web", "content": "Hỏi về BHYT", "field": "health"})
    seen = await api.call("GET", f"{V1}/tickets", "giamsat.binh", 200)
    assert {x["code"] for x in seen["items"]} == {a, b, c} and seen["total"] == 3
    forwarded = await api.call("GET", f"{V1}/tickets?state=forwarded&unit=so_y_te",
                               "giamsat.binh", 200)
    assert [x["code"] for x in forwarded["items"]] == [a]
    page = await api.call("GET", f"{V1}/tickets?limit=2&offset=0", "giamsat.binh", 200)
    assert len(page["items"]) == 2 and page["total"] == 3
    lt = await api.call("GET", f"{V1}/tickets", "ubnd.longthanh", 200)
    assert [x["code"] for x in lt["items"]] == [b]


async def test_given_other_tenant_when_reading_or_listing_then_403(api: Api) -> None:
    code = (await api.open_ticket())["code"]
    body = await api.call("GET", f"{V1}/tickets/{code}", "tdv.thanhhoa", 403)
    assert body["error"]["id"] == "auth.forbidden"
    body = await api.call("POST", f"{V1}/tickets/{code}/actions", "tdv.thanhhoa", 403,
                          json={"action": "forward", "version": 0, "unit": "so_y_te"})
    assert body["error"]["id"] == "auth.forbidden"
    body = await api.call("GET", f"{V1}/tickets?tenant=dongnai", "tdv.thanhhoa", 403)
    assert body["error"]["id"] == "auth.forbidden"
    own = await api.call("GET", f"{V1}/tickets", "tdv.thanhhoa", 200)
    assert own["items"] == []


# ---- conflicts and bad input ------------------------------------------------------------------
async def test_given_stale_version_or_illegal_action_when_acting_then_409(api: Api) -> None:
    code = (await api.open_ticket())["code"]
    await api.act(code, "tdv.an", "forward", 0, unit="so_y_te")
    body = await api.act(code, "giamsat.binh", "forward", 0, expect=409, unit="vp_ubnd_tinh")
    assert body["error"]["id"] == "ticket.conflict"
    body = await api.act(code, "tdv.an", "reopen", 1, expect=409, reason="x")
    assert body["error"]["id"] == "ticket.illegal_transition"
    body = await api.act(code, "syt.dongnai", "resolve", 1, expect=422, result="xong",
                         reply_document="999")
    assert body["error"]["id"] == "ticket.unknown_attachment"


@pytest.mark.parametrize(("body", "field"), [
    ({"channel": "phone", "field": "health"}, "content"),
    ({"channel": "phone", "content": "x", "field": "health", "urgent": "yes"}, "urgent"),
    ({"channel": "fax", "content": "x", "field": "health"}, "channel"),
    ({"channel": "phone", "content": "x" * 10_001, "field": "health"}, "content"),
    ({"channel": "phone", "content": "x\u0000y", "field": "health"}, "content"),
    ({"channel": "phone", "content": "x", "field": "health", "colour": "red"}, "colour"),
    ({"channel": "phone", "content": "x", "field": "health", "call_ids": "a"}, "call_ids"),
    ({"channel": "phone", "content": "   ", "field": "health"}, "content"),
    ([1, 2], "body"),
])
async def test_given_malformed_body_when_opening_then_422_names_the_field(
        api: Api, body: object, field: str) -> None:
    answer = await api.call("POST", f"{V1}/tickets", "tdv.an", 422, json=body)
    assert answer["error"]["id"] == "request.invalid"
    assert answer["error"]["details"]["field"] == field


@pytest.mark.parametrize(("body", "error_id"), [
    ({"channel": "phone", "content": "x", "field": "astrology"}, "ticket.unknown_field"),
    ({"channel": "phone", "content": "x", "field": "health", "citizen_phone": "12"},
     "ticket.invalid_phone"),
    ({"channel": "phone", "content": "x", "field": "health", "place": "hanoi"},
     "ticket.unknown_place"),
])
async def test_given_body_against_tenant_rules_when_opening_then_422_with_ticket_id(
        api: Api, body: dict[str, object], error_id: str) -> None:
    answer = await api.call("POST", f"{V1}/tickets", "tdv.an", 422, json=body)
    assert answer["error"]["id"] == error_id


async def test_given_not_json_when_posting_then_415_or_422(api: Api) -> None:
    body = await api.call("POST", f"{V1}/tickets", "tdv.an", 415, data="content=x")
    assert body["error"]["id"] == "request.unsupported_media"
    body = await api.call("POST", f"{V1}/tickets", "tdv.an", 422, data=b"{nope",
                          headers={"Content-Type": "application/json"})
    assert body["error"]["id"] == "request.invalid_json"


@pytest.mark.parametrize(("path", "status", "error_id"), [
    ("/tickets/DN-20261123-0001", 404, "ticket.not_found"),
    ("/tickets/not-a-code", 422, "request.invalid"),
    ("/tickets?limit=0", 422, "request.invalid"),
    ("/tickets?state=lost", 422, "request.invalid"),
    ("/tickets?since=yesterday", 422, "request.invalid"),
    ("/tickets?since=2026-11-23T00:00:00", 422, "request.invalid"),
    ("/tickets?tenant=hanoi", 403, "auth.forbidden"),
    ("/nothing-here", 404, "http.not_found"),
])
async def test_given_bad_path_or_query_when_getting_then_error_with_stable_id(
        api: Api, path: str, status: int, error_id: str) -> None:
    body = await api.call("GET", V1 + path, "giamsat.binh", status)
    assert body["error"]["id"] == error_id


# ---- uploads --------------------------------------------------------------------------------
async def _forwarded(api: Api) -> str:
    code: str = (await api.open_ticket())["code"]
    await api.act(code, "tdv.an", "forward", 0, unit="so_y_te")
    return code


async def test_given_upload_over_the_limit_when_streamed_then_413_before_the_end(
        api: Api) -> None:
    code = await _forwarded(api)
    sent = 0

    async def body():  # chunked: no Content-Length, so the limit is met while reading
        nonlocal sent
        boundary = b"--XyZ\r\n"
        yield boundary + (b'Content-Disposition: form-data; name="file"; filename="big.pdf"'
                          b"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n")
        for _ in range(64):
            chunk = b"0" * (16 * 1024)
            sent += len(chunk)
            yield chunk
        yield b"\r\n--XyZ--\r\n"

    resp = await api.client.post(
        f"{V1}/tickets/{code}/attachments", data=body(),
        headers=api.auth("syt.dongnai") | {"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert resp.status == 413
    answer = await resp.json()
    assert answer["error"]["id"] == "ticket.upload_too_large"
    assert answer["error"]["details"]["max_bytes"] == MAX_UPLOAD


async def test_given_announced_length_over_the_limit_when_uploading_then_413(api: Api) -> None:
    code = await _forwarded(api)
    form = FormData()
    form.add_field("file", b"%PDF-1.4\n" + b"0" * (MAX_UPLOAD + 100), filename="big.pdf",
                   content_type="application/pdf")
    body = await api.call("POST", f"{V1}/tickets/{code}/attachments", "syt.dongnai", 413,
                          data=form)
    assert body["error"]["id"] == "ticket.upload_too_large"


@pytest.mark.parametrize(("data", "name", "ctype"), [
    (EXE, "cong-van.pdf", "application/pdf"),  # an .exe renamed .pdf
    (b"just text, not a document\n" * 3, "reply.pdf", "application/pdf"),
    (b"PK\x03\x04" + b"\x00" * 100, "reply.docx", None),  # a ZIP that is no Word file
])
async def test_given_wrong_file_type_when_uploading_then_415_upload_type(
        api: Api, data: bytes, name: str, ctype: str | None) -> None:
    code = await _forwarded(api)
    form = FormData()
    form.add_field("file", data, filename=name, content_type=ctype)
    body = await api.call("POST", f"{V1}/tickets/{code}/attachments", "syt.dongnai", 415,
                          data=form)
    assert body["error"]["id"] == "ticket.upload_type"
    files = await api.call("GET", f"{V1}/tickets/{code}/attachments", "syt.dongnai", 200)
    assert files["items"] == []


async def test_given_upload_without_file_part_or_not_multipart_then_refused(api: Api) -> None:
    code = await _forwarded(api)
    form = FormData(default_to_multipart=True)
    form.add_field("note", "hello")
    body = await api.call("POST", f"{V1}/tickets/{code}/attachments", "syt.dongnai", 422,
                          data=form)
    assert body["error"]["details"]["field"] == "file"
    body = await api.call("POST", f"{V1}/tickets/{code}/attachments", "syt.dongnai", 415,
                          json={"file": "x"})
    assert body["error"]["id"] == "request.unsupported_media"


# ---- logs ---------------------------------------------------------------------------------
async def test_given_workflow_when_logged_at_info_then_no_token_and_no_phone_number(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    t = await api.open_ticket(citizen_phone="0912345678")
    await api.act(t["code"], "tdv.an", "forward", 0, unit="so_y_te")
    await api.call("GET", f"{V1}/callers/0912345678/tickets", "tdv.an", 200)
    await api.call("GET", f"{V1}/tickets", None, 401,
                   headers={"Authorization": "Bearer " + api.tokens["tdv.an"] + "x"})
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG)
    assert "0912345678" not in text and "912345678" not in text
    for token in api.tokens.values():
        assert token not in text and token[21:] not in text


# ---- wiring as build_app does it ------------------------------------------------------------
async def test_given_app_service_key_when_console_wired_then_it_shares_the_service_and_keeps_other_routes(  # noqa: E501
        database_url: str, hotline_config, tmp_path) -> None:
    from collections.abc import AsyncIterator

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from callcenter.console.setup import setup_console
    from callcenter.store.migrate import upgrade_head
    from callcenter.tickets.service import TicketService
    from tests.support.api import make_tokens

    upgrade_head(database_url)
    tokens = make_tokens(database_url)
    key = web.AppKey("tickets", TicketService)
    closed: list[bool] = []

    async def tickets_ctx(app: web.Application) -> AsyncIterator[None]:
        app[key] = TicketService(database_url, lambda: hotline_config, tmp_path / "files")
        yield
        closed.append(True)
        app[key].close()

    async def healthz(request: web.Request) -> web.Response:
        raise web.HTTPServiceUnavailable(text="not ready")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(tickets_ctx)
    setup_console(app, database_url=database_url, config=lambda: hotline_config, tickets=key)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post(f"{V1}/tickets", json={
            "channel": "web", "content": "Hỏi thủ tục cấp đổi CCCD", "field": "admin_procedures"},
            headers={"Authorization": f"Bearer {tokens['tdv.an']}"})
        assert resp.status == 201
        code = (await resp.json())["code"]
        assert client.app[key].get(code, Actor("t", "admin")).code == code
        resp = await client.get("/healthz")  # other routes keep their own answers
        assert resp.status == 503 and await resp.text() == "not ready"
        assert not closed
    assert closed == [True]


async def test_given_huge_json_or_wrong_method_when_sent_then_json_error(api: Api) -> None:
    body = await api.call("POST", f"{V1}/tickets", "tdv.an", 413,
                          data=b'{"content": "' + b"x" * (2 * 1024 * 1024) + b'"}',
                          headers={"Content-Type": "application/json"})
    assert body["error"]["id"] == "request.too_large"
    body = await api.call("DELETE", f"{V1}/tickets", "tdv.an", 405)
    assert body["error"]["id"] == "http.method_not_allowed"
