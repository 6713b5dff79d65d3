"""Open311 GeoReport v2 over HTTP on a real database (SQLite and PostgreSQL), with the real
ticket service: services, requests with the spec's filters, POST with keys, the spec's errors,
the XML variants, and no personal data in any read."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from callcenter.config.model import DEFAULT_FIELDS
from callcenter.console.auth import USERS
from callcenter.console.context import SERVICE
from callcenter.open311.http import STORE
from callcenter.open311.store import Open311Store
from callcenter.tickets.rules import Actor
from tests.support import api as support
from tests.support.api import Api

api = support.api
hotline_config = support.hotline_config

O3 = "/open311/v2"
SUP = Actor("giamsat.binh", "supervisor")
INTAKE = Actor("intake", "system")
DESCRIPTION = ("Tôi là Nguyễn Thị Hoa, số 0912 345 678. Đường ĐT769 đoạn qua xã An Phước "
               "ngập sâu, xe máy không qua được.")
FORM = {
    "jurisdiction_id": "dongnai", "service_code": "transport",
    "address_string": "số 12 đường Lê Duẩn, Xã An Phước, Huyện Long Thành",
    "lat": "10.791234", "long": "106.951234",
    "first_name": "Thị Hoa", "last_name": "Nguyễn", "phone": "0912345678",
    "email": "hoa.nguyen@example.vn", "description": DESCRIPTION,
}
PERSONAL = ("Nguyễn Thị Hoa", "Hoa", "0912345678", "0912 345 678", "912345678",
            "hoa.nguyen@example.vn", "12 đường Lê Duẩn", "10.79", "106.95")
# The spec's GET Service Requests example: the elements of a <request>, in order.
SPEC_REQUEST_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat", "long",
    "media_url",
]


@pytest.fixture
def keys(api: Api, database_url: str) -> Iterator[dict[str, str]]:
    """A working key for each tenant's app, and a revoked one of Đồng Nai."""
    store = Open311Store(database_url)
    try:
        made = {name: store.create_key(name, tenant)[1] for name, tenant in (
            ("dvc-app", "dongnai"), ("old-app", "dongnai"), ("th-app", "thanhhoa"))}
        store.revoke("old-app")
        yield made
    finally:
        store.close()


async def fetch(api: Api, path: str, expect: int, method: str = "GET",
                **kwargs: Any) -> tuple[Any, Any]:
    """The body (JSON, an XML root element, or text) and the response."""
    resp = await api.client.request(method, path, **kwargs)
    raw = await resp.read()
    assert resp.status == expect, (resp.status, raw.decode("utf-8", "replace"))
    if resp.content_type == "application/json":
        assert resp.charset == "utf-8"
        return json.loads(raw), resp
    if resp.content_type == "text/xml":
        assert resp.charset == "utf-8"
        assert raw.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
        return ET.fromstring(raw), resp
    return raw.decode(), resp


async def post(api: Api, form: dict[str, str], expect: int, fmt: str = "json") -> Any:
    body, _ = await fetch(api, f"{O3}/requests.{fmt}", expect, "POST", data=form)
    return body


def spec_error(body: Any, status: int, words: str) -> None:
    """The spec's error body: a list of {code, description}."""
    assert isinstance(body, list) and len(body) == 1, body
    assert body[0]["code"] == status and words in body[0]["description"], body


def test_given_console_when_started_then_open311_store_shares_its_pool(api: Api) -> None:
    app = api.client.app
    assert app[STORE].engine is app[USERS].engine


# ---- services ----------------------------------------------------------------------------------
async def test_given_two_tenants_when_services_read_without_jurisdiction_then_400_else_404(
        api: Api) -> None:
    body, _ = await fetch(api, f"{O3}/services.json", 400)
    spec_error(body, 400, "jurisdiction_id was not provided")
    root, _ = await fetch(api, f"{O3}/services.xml", 400)
    assert root.tag == "errors" and root.findtext("error/code") == "400"
    body, _ = await fetch(api, f"{O3}/services.json?jurisdiction_id=hanoi", 404)
    spec_error(body, 404, "jurisdiction_id 'hanoi' was not found")


async def test_given_jurisdiction_when_services_read_then_fields_in_json_and_xml(
        api: Api) -> None:
    body, resp = await fetch(api, f"{O3}/services.json?jurisdiction_id=dongnai", 200)
    assert [s["service_code"] for s in body] == [f.id for f in DEFAULT_FIELDS]
    assert body[0]["service_name"] == "Y tế" and body[0]["metadata"] is False
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    root, _ = await fetch(api, f"{O3}/services.xml?jurisdiction_id=dongnai", 200)
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root.findall("service")] == [
        f.id for f in DEFAULT_FIELDS]
    assert root.findtext("service/type") == "realtime"


async def test_given_service_code_when_definition_read_then_no_attributes_unknown_404(
        api: Api) -> None:
    body, _ = await fetch(api, f"{O3}/services/health.json?jurisdiction_id=dongnai", 200)
    assert body == {"service_code": "health", "attributes": []}
    root, _ = await fetch(api, f"{O3}/services/health.xml?jurisdiction_id=dongnai", 200)
    assert root.tag == "service_definition" and root.findtext("service_code") == "health"
    body, _ = await fetch(api, f"{O3}/services/potholes.json?jurisdiction_id=dongnai", 404)
    spec_error(body, 404, "service_code 'potholes' was not found")
    root, _ = await fetch(api, f"{O3}/services/potholes.xml?jurisdiction_id=dongnai", 404)
    assert root.findtext("error/code") == "404"


async def test_given_endpoint_when_discovery_read_then_its_url_and_formats(api: Api) -> None:
    body, _ = await fetch(api, f"{O3}/discovery.json", 200)
    endpoint = body["endpoints"][0]
    assert endpoint["url"] == str(api.client.make_url(f"{O3}/"))
    assert endpoint["formats"] == ["text/xml", "application/json"]
    root, _ = await fetch(api, f"{O3}/discovery.xml", 200)
    assert root.tag == "discovery" and root.findtext("endpoints/endpoint/type") == "production"


# ---- POST --------------------------------------------------------------------------------------
async def test_given_no_bad_revoked_or_foreign_key_when_posting_then_403_and_no_ticket(
        api: Api, keys: dict[str, str]) -> None:
    spec_error(await post(api, FORM, 403), 403, "api_key was not provided")
    spec_error(await post(api, FORM | {"api_key": "xyz"}, 403), 403, "invalid api_key")
    spec_error(await post(api, FORM | {"api_key": keys["old-app"]}, 403), 403,
               "invalid api_key")
    tampered = keys["dvc-app"][:-4] + "AAAA"
    spec_error(await post(api, FORM | {"api_key": tampered}, 403), 403, "invalid api_key")
    spec_error(await post(api, FORM | {"api_key": keys["th-app"]}, 403), 403,
               "not valid for jurisdiction dongnai")
    root = await post(api, FORM | {"api_key": keys["old-app"]}, 403, fmt="xml")
    assert root.tag == "errors" and root.findtext("error/code") == "403"
    listed, _ = await fetch(api, f"{O3}/requests.json?jurisdiction_id=dongnai", 200)
    assert listed == []


@pytest.mark.parametrize(("change", "status", "words"), [
    ({"jurisdiction_id": "hanoi"}, 404, "jurisdiction_id 'hanoi' was not found"),
    ({"jurisdiction_id": ""}, 400, "jurisdiction_id was not provided"),
    ({"service_code": "potholes"}, 404, "service_code 'potholes' was not found"),
    ({"service_code": ""}, 400, "service_code was not provided"),
    ({"lat": "", "long": "", "address_string": ""}, 400, "a location must be submitted"),
    ({"phone": "911"}, 400, "phone is not a Vietnamese"),
])
async def test_given_bad_argument_when_posting_then_spec_status(
        api: Api, keys: dict[str, str], change: dict[str, str], status: int,
        words: str) -> None:
    spec_error(await post(api, FORM | {"api_key": keys["dvc-app"]} | change, status), status,
               words)


async def test_given_json_body_when_posting_then_400_form_encoding_asked(
        api: Api, keys: dict[str, str]) -> None:
    body, _ = await fetch(api, f"{O3}/requests.json", 400, "POST",
                          json=FORM | {"api_key": keys["dvc-app"]})
    spec_error(body, 400, "form-encoded")


async def test_given_valid_key_when_posting_then_open311_ticket_by_system_with_link_unfetched(
        api: Api, keys: dict[str, str]) -> None:
    hits: list[str] = []

    async def photo(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=b"\xff\xd8", content_type="image/jpeg")

    media_app = web.Application()
    media_app.router.add_get("/photo.jpg", photo)
    media = TestServer(media_app, host="127.0.0.1")
    await media.start_server()
    try:
        url = str(media.make_url("/photo.jpg"))
        body = await post(api, FORM | {"api_key": keys["dvc-app"], "media_url": url}, 200)
        assert len(body) == 1 and set(body[0]) == {"service_request_id", "service_notice",
                                                   "account_id"}
        code = body[0]["service_request_id"]
        assert code.startswith("DN-") and body[0]["account_id"] is None
        assert f"đã tiếp nhận phản ánh {code}; hạn giải quyết" in body[0]["service_notice"]
        ticket = await api.call("GET", f"/api/v1/tickets/{code}", "giamsat.binh", 200)
        assert ticket["channel"] == "open311" and ticket["field"] == "transport"
        assert ticket["commune"] == "long_thanh.an_phuoc"  # from the address string
        assert ticket["citizen_name"] == "Nguyễn Thị Hoa"
        assert ticket["citizen_phone"] == "0912345678"
        assert f"Ảnh/tệp (đường dẫn, hệ thống không tải về): {url}" in ticket["content"]
        assert "Email liên hệ: hoa.nguyen@example.vn" in ticket["content"]
        audit = await api.call("GET", f"/api/v1/tickets/{code}/audit", "giamsat.binh", 200)
        opening = audit["entries"][0]
        assert opening["event"] == "open" and opening["detail"].startswith("open311, ")
        assert opening["actor"] == {"user": "open311:dvc-app", "role": "system", "unit": None}
        await fetch(api, f"{O3}/requests/{code}.json?jurisdiction_id=dongnai", 200)
        assert hits == []  # the link is kept, never fetched
    finally:
        await media.close()


async def test_given_post_to_xml_when_created_then_spec_xml_answer(
        api: Api, keys: dict[str, str]) -> None:
    form = FORM | {"api_key": keys["dvc-app"], "address_string": "gần chợ Biên Hòa"}
    root = await post(api, form, 200, fmt="xml")
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request is not None
    assert [c.tag for c in request] == ["service_request_id", "service_notice", "account_id"]
    code = request.findtext("service_request_id")
    ticket = await api.call("GET", f"/api/v1/tickets/{code}", "giamsat.binh", 200)
    assert ticket["district"] == "bien_hoa" and ticket["commune"] is None


async def test_given_one_tenant_key_when_posting_to_its_jurisdiction_then_accepted(
        api: Api, keys: dict[str, str]) -> None:
    form = FORM | {"api_key": keys["th-app"], "jurisdiction_id": "thanhhoa",
                   "address_string": "Phường Điện Biên"}
    code = (await post(api, form, 200))[0]["service_request_id"]
    assert code.startswith("TH-")
    ticket = await api.call("GET", f"/api/v1/tickets/{code}", "tdv.thanhhoa", 200)
    assert ticket["district"] is None  # no place of Thanh Hóa matches: level 1 decides


# ---- GET requests ------------------------------------------------------------------------------
async def _codes(api: Api, query: str, expect: int = 200) -> Any:
    body, _ = await fetch(api, f"{O3}/requests.json?jurisdiction_id=dongnai&{query}", expect)
    return [r["service_request_id"] for r in body] if expect == 200 else body


async def test_given_tickets_when_requests_filtered_then_spec_filters_apply(
        api: Api, keys: dict[str, str]) -> None:
    service = api.client.app[SERVICE]
    now = dt.datetime.now(dt.UTC)
    posted = (await post(api, FORM | {"api_key": keys["dvc-app"]}, 200))[0]["service_request_id"]
    answered = service.open("dongnai", SUP, channel="web", content="Hỏi lịch tiêm vắc xin.",
                            field="health", at=now - dt.timedelta(days=10),
                            answer="Thứ Hai hằng tuần.").code
    old = service.open("dongnai", INTAKE, channel="email", content="Đèn đường hỏng.",
                       field="transport", at=now - dt.timedelta(days=100)).code
    other = service.open("thanhhoa", INTAKE, channel="web", content="Cầu hỏng.",
                         field="transport").code

    assert await _codes(api, "") == [posted, answered]  # the last 90 days, newest first
    assert await _codes(api, "status=closed") == [answered]
    assert await _codes(api, "status=open") == [posted]
    assert await _codes(api, "status=open,closed") == [posted, answered]
    assert await _codes(api, "status=open&status=closed") == [posted, answered]
    assert await _codes(api, "service_code=health") == [answered]
    assert await _codes(api, "service_code=health,transport") == [posted, answered]
    start = (now - dt.timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (now - dt.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%S%%2B00:00")
    assert await _codes(api, f"start_date={start}&end_date={end}") == [old]
    # service_request_id overrides every other argument; another tenant's is not found.
    assert await _codes(api, f"service_request_id={old},{posted},{other}&status=closed") == [
        old, posted]
    spec_error(await _codes(api, "start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z",
                            400), 400, "may not span more than 90 days")
    spec_error(await _codes(api, "status=pending", 400), 400, "status 'pending'")
    body, _ = await fetch(api, f"{O3}/requests.json?jurisdiction_id=thanhhoa", 200)
    assert [r["service_request_id"] for r in body] == [other]
    body, _ = await fetch(api, f"{O3}/requests.json", 400)
    spec_error(body, 400, "jurisdiction_id was not provided")


async def test_given_tickets_when_requests_read_as_xml_then_spec_elements(
        api: Api, keys: dict[str, str]) -> None:
    code = (await post(api, FORM | {"api_key": keys["dvc-app"]}, 200))[0]["service_request_id"]
    as_json, _ = await fetch(api, f"{O3}/requests.json?jurisdiction_id=dongnai", 200)
    root, resp = await fetch(api, f"{O3}/requests.xml?jurisdiction_id=dongnai", 200)
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert root.tag == "service_requests"
    requests = root.findall("request")
    assert len(requests) == len(as_json) == 1
    assert [c.tag for c in requests[0]] == SPEC_REQUEST_FIELDS
    assert requests[0].findtext("service_request_id") == code
    assert requests[0].findtext("status") == "open"
    assert requests[0].findtext("address") == "Xã An Phước, Huyện Long Thành"
    single, _ = await fetch(api, f"{O3}/requests/{code}.xml?jurisdiction_id=dongnai", 200)
    assert single.tag == "service_requests"
    assert [r.findtext("service_request_id") for r in single.findall("request")] == [code]


async def test_given_unknown_foreign_or_malformed_id_when_request_read_then_404(
        api: Api, keys: dict[str, str]) -> None:
    service = api.client.app[SERVICE]
    other = service.open("thanhhoa", INTAKE, channel="web", content="Cầu hỏng.",
                         field="transport").code
    for code in (other, "DN-20200101-0001", "638344"):
        body, _ = await fetch(api, f"{O3}/requests/{code}.json?jurisdiction_id=dongnai", 404)
        spec_error(body, 404, "was not found")
    root, _ = await fetch(api, f"{O3}/requests/638344.xml?jurisdiction_id=dongnai", 404)
    assert root.findtext("error/code") == "404"
    body, _ = await fetch(api, f"{O3}/requests/{other}.json?jurisdiction_id=thanhhoa", 200)
    assert body[0]["service_request_id"] == other


async def test_given_unknown_path_or_format_when_read_then_spec_404(api: Api) -> None:
    for path in (f"{O3}/nothing.json", f"{O3}/requests.html", f"{O3}/tokens/12345.json"):
        body, _ = await fetch(api, path, 404)
        spec_error(body, 404, "no such resource")
    root, _ = await fetch(api, f"{O3}/tokens/12345.xml", 404)
    assert root.tag == "errors"
    body, resp = await fetch(api, f"{O3}/requests.json", 405, "PUT")
    spec_error(body, 405, "Method Not Allowed")
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}


# ---- personal data -----------------------------------------------------------------------------
async def _every_read(api: Api, code: str) -> list[str]:
    """Every GET that shows the ticket, as text: lists and the single request, JSON and XML."""
    texts = []
    for path in (f"{O3}/requests.json?jurisdiction_id=dongnai",
                 f"{O3}/requests.xml?jurisdiction_id=dongnai",
                 f"{O3}/requests.json?jurisdiction_id=dongnai&service_request_id={code}",
                 f"{O3}/requests/{code}.json?jurisdiction_id=dongnai",
                 f"{O3}/requests/{code}.xml?jurisdiction_id=dongnai"):
        resp = await api.client.get(path)
        assert resp.status == 200, path
        text = await resp.text()
        assert code in text, path
        texts.append(text)
    return texts


def _no_personal_data(texts: list[str]) -> None:
    for text in texts:
        for personal in PERSONAL:
            assert personal not in text, (personal, text)


async def test_given_ticket_with_personal_data_when_read_before_and_after_publication_then_none(
        api: Api, keys: dict[str, str]) -> None:
    form = FORM | {"api_key": keys["dvc-app"], "media_url": "https://anh.example.vn/h/1.jpg"}
    code = (await post(api, form, 200))[0]["service_request_id"]
    before = await _every_read(api, code)
    _no_personal_data(before)
    shown = json.loads(before[3])[0]
    assert shown["description"] is None and shown["media_url"] is None
    assert shown["lat"] is None and shown["address"] == "Xã An Phước, Huyện Long Thành"

    await api.act(code, "tdv.an", "forward", 0, unit="ubnd_long_thanh")
    await api.act(code, "ubnd.longthanh", "accept", 1)
    await api.act(code, "ubnd.longthanh", "resolve", 2,
                  result="Đã gọi bà Nguyễn Thị Hoa (0912345678): đã bơm thoát nước.")
    resolved = json.loads((await _every_read(api, code))[3])[0]
    assert resolved["status"] == "closed" and resolved["description"] is None  # not reviewed
    await api.act(code, "giamsat.binh", "publish", 3, publishable=True)

    after = await _every_read(api, code)
    _no_personal_data(after)
    shown = json.loads(after[3])[0]
    assert "ĐT769" in shown["description"] and "ngập sâu" in shown["description"]
    assert "Open311" not in shown["description"]  # the block with e-mail and address is cut
    assert "đã bơm thoát nước" in shown["status_notes"]
    assert shown["media_url"] == "https://anh.example.vn/h/1.jpg"
    assert shown["agency_responsible"] == "UBND huyện Long Thành"


async def test_given_supervisor_edited_public_texts_when_request_read_then_those_texts_shown(
        api: Api, keys: dict[str, str]) -> None:
    """The review's edited question and answer are what the public reads, here as on the
    public page; the citizen's own words and the unit's raw result stay inside."""
    form = FORM | {"api_key": keys["dvc-app"]}
    code = (await post(api, form, 200))[0]["service_request_id"]
    await api.act(code, "tdv.an", "forward", 0, unit="ubnd_long_thanh")
    await api.act(code, "ubnd.longthanh", "accept", 1)
    await api.act(code, "ubnd.longthanh", "resolve", 2,
                  result="Đã gọi bà Nguyễn Thị Hoa (0912345678): đã bơm thoát nước.")
    await api.act(code, "giamsat.binh", "publish", 3,
                  question="Đường tỉnh ĐT769 bị ngập sau mưa lớn.",
                  answer="UBND huyện đã cho bơm thoát nước, đường đã thông.")
    shown = json.loads((await _every_read(api, code))[3])[0]
    assert shown["description"] == "Đường tỉnh ĐT769 bị ngập sau mưa lớn."
    assert shown["status_notes"].endswith("Kết quả: UBND huyện đã cho bơm thoát nước, đường đã "
                                          "thông.")
    assert "Nguyễn Thị Hoa" not in json.dumps(shown, ensure_ascii=False)
