"""Open311 GeoReport v2's pure rules: status mapping, filters, places, new requests, the
spec's response shapes (its own examples, adapted to our data) in JSON and XML."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from zoneinfo import ZoneInfo

import pytest

from callcenter.open311 import rules as o3
from callcenter.open311.rules import Open311Error
from callcenter.tickets import rules as tk
from callcenter.tickets.config import (
    Commune,
    District,
    FocalPerson,
    Level2Unit,
    RoutingRule,
    TicketPolicy,
)
from callcenter.tickets.rules import TicketState

S = TicketState
VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = dt.datetime(2026, 12, 7, 11, 0, tzinfo=VN)
DAY = dt.timedelta(days=1)
OP = tk.Actor("op1", "operator")
SUP = tk.Actor("sup1", "supervisor")
APP = tk.Actor("open311:dvc-app", "system")

POLICY = TicketPolicy(
    code_prefix="DN",
    units=(Level2Unit("ubnd_lt", "UBND huyện Long Thành", "district",
                      (FocalPerson("Phạm Văn Dũng", "0912000111"),), places=("long_thanh",)),),
    districts=(
        District("long_thanh", "Huyện Long Thành",
                 (Commune("long_thanh.tt_long_thanh", "Thị trấn Long Thành", "long_thanh"),
                  Commune("long_thanh.an_phuoc", "Xã An Phước", "long_thanh"),
                  Commune("long_thanh.long_an", "Xã Long An", "long_thanh"))),
        District("nhon_trach", "Huyện Nhơn Trạch",
                 (Commune("nhon_trach.long_an", "Xã Long An", "nhon_trach"),)),
        District("bien_hoa", "Thành phố Biên Hòa"),
    ),
    routing=(RoutingRule("ubnd_lt", None, "long_thanh"),),
    fallback_unit="ubnd_lt",
)

# The spec's GET Service Requests example: every element of a <request>, in its order.
SPEC_REQUEST_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat", "long",
    "media_url",
]
# The spec's GET Service List example: the elements of a <service>.
SPEC_SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type",
                       "keywords", "group"}
# The spec's POST example, adapted: a sinkhole on a commune road, photo on a public host.
SPEC_POST = {
    "api_key": "xyz", "jurisdiction_id": "dongnai", "service_code": "transport",
    "lat": "10.7901", "long": "106.9513",
    "address_string": "1234 đường ĐT769, Xã An Phước, Huyện Long Thành",
    "email": "smit333@example.vn", "device_id": "tt222111", "account_id": "123456",
    "first_name": "Văn An", "last_name": "Nguyễn", "phone": "0912 345 678",
    "description": "Hố sụt lớn làm hỏng mặt đường",
    "media_url": "http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg",
    "attribute[WHISPAWN]": "123456",
}
NAME, PHONE, EMAIL = "Nguyễn Văn An", "0912345678", "smit333@example.vn"


def opened(content: str = "Đường ĐT769 ngập sâu.", place: str | None = "long_thanh.an_phuoc",
           at: dt.datetime = NOW - DAY) -> tk.Ticket:
    ticket, _ = tk.open_ticket(POLICY, code="DN-20261206-0001", tenant="dongnai",
                               channel="open311", content=content, field="transport", at=at,
                               actor=APP, place=place, citizen_name=NAME, citizen_phone=PHONE)
    return ticket


def answered(publish: bool) -> tk.Ticket:
    t = opened(o3.parse_new_request(SPEC_POST, POLICY, app="dvc-app").content)
    t, _ = tk.apply(t, tk.Answer(NOW, OP, f"Đã báo ông {NAME} ({PHONE}): đã san lấp hố sụt."),
                    POLICY)
    if publish:
        t, _ = tk.apply(t, tk.SetPublishable(NOW, SUP, True), POLICY)
    return t


def view(t: tk.Ticket, media: str | None = None) -> dict[str, object]:
    # The masking the ticket service does (scrub), reduced to what the test needs to see.
    def public(text: str) -> str:
        return (text.replace(NAME, "[họ tên]").replace(PHONE, "[số điện thoại]")
                .replace(EMAIL, "[email]"))
    return o3.request_view(t, POLICY, media_url=media, public_text=public)


# ---- status ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("state", "status"), [
    (S.NEW, "open"), (S.FORWARDED, "open"), (S.IN_PROGRESS, "open"), (S.RETURNED, "open"),
    (S.REOPENED, "open"), (S.ANSWERED, "closed"), (S.RESOLVED, "closed"), (S.CLOSED, "closed"),
])
def test_given_ticket_state_when_mapped_then_open_or_closed(state: TicketState,
                                                           status: str) -> None:
    assert o3.status_of(state) == status
    assert state in o3.states_of([status])  # type: ignore[list-item]
    assert o3.STATE_NOTES[state]


def test_given_no_status_when_states_asked_then_every_state() -> None:
    assert set(o3.states_of([])) == set(TicketState)
    assert set(o3.states_of(["open"])) == set(tk.OPEN)


# ---- jurisdiction and times ----------------------------------------------------------------------
def test_given_one_tenant_when_jurisdiction_left_out_then_that_tenant() -> None:
    assert o3.jurisdiction(None, ["dongnai"]) == "dongnai"
    assert o3.jurisdiction("  ", ["dongnai"]) == "dongnai"  # empty is the same as absent


def test_given_several_tenants_when_jurisdiction_left_out_then_400_unknown_then_404() -> None:
    with pytest.raises(Open311Error) as e:
        o3.jurisdiction("", ["dongnai", "thanhhoa"])
    assert e.value.status == 400 and "jurisdiction_id was not provided" in e.value.description
    with pytest.raises(Open311Error) as e:
        o3.jurisdiction("hanoi", ["dongnai", "thanhhoa"])
    assert e.value.status == 404 and "not found" in e.value.description
    assert o3.jurisdiction("thanhhoa", ["dongnai", "thanhhoa"]) == "thanhhoa"


@pytest.mark.parametrize(("text", "expected"), [
    ("2010-01-01T00:00:00Z", dt.datetime(2010, 1, 1, tzinfo=dt.UTC)),
    ("2010-01-01T07:00:00+07:00", dt.datetime(2010, 1, 1, tzinfo=dt.UTC)),
    ("2010-01-01T07:00:00 07:00", dt.datetime(2010, 1, 1, tzinfo=dt.UTC)),  # "+" unencoded
    ("2010-01-01", dt.datetime(2010, 1, 1, tzinfo=VN)),  # a day: local midnight
])
def test_given_w3_time_when_parsed_then_aware_moment(text: str, expected: dt.datetime) -> None:
    assert o3.parse_time("start_date", text, "Asia/Ho_Chi_Minh") == expected


@pytest.mark.parametrize("text", ["2010-01-01T00:00:00", "yesterday", "2010-13-01",
                                  "2010-02-30T00:00:00Z"])
def test_given_time_without_zone_or_invalid_when_parsed_then_400(text: str) -> None:
    with pytest.raises(Open311Error) as e:
        o3.parse_time("end_date", text, "Asia/Ho_Chi_Minh")
    assert e.value.status == 400 and "end_date" in e.value.description


def test_given_moment_when_formatted_then_w3_local_with_offset() -> None:
    at = dt.datetime(2010, 4, 14, 14, 37, 38, 123456, tzinfo=dt.UTC)
    assert o3.w3_time(at, "Asia/Ho_Chi_Minh") == "2010-04-14T21:37:38+07:00"


# ---- filters -----------------------------------------------------------------------------------
def test_given_no_dates_when_filters_parsed_then_last_90_days_and_1000_max() -> None:
    f = o3.parse_filters({}, now=NOW, policy=POLICY)
    assert (f.start, f.end, f.limit) == (NOW - 90 * DAY, NOW, 1000)
    assert f.service_codes == () and f.statuses == () and f.ids == ()


def test_given_one_date_when_filters_parsed_then_90_days_from_or_up_to_it() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    f = o3.parse_filters({"start_date": "2026-01-01T00:00:00Z"}, now=NOW, policy=POLICY)
    assert (f.start, f.end) == (start, start + 90 * DAY)
    f = o3.parse_filters({"end_date": "2026-01-01T00:00:00Z"}, now=NOW, policy=POLICY)
    assert (f.start, f.end) == (start - 90 * DAY, start)


@pytest.mark.parametrize(("query", "words"), [
    ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-04-02T00:00:00Z"}, "90 days"),
    ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "before"),
    ({"status": "open,pending"}, "status 'pending'"),
    ({"service_code": "health,potholes"}, "service_code 'potholes'"),
    ({"service_request_id": "DN-20261206-0001,638344"}, "'638344'"),
])
def test_given_invalid_filter_when_parsed_then_400_naming_it(query: dict[str, str],
                                                             words: str) -> None:
    with pytest.raises(Open311Error) as e:
        o3.parse_filters(query, now=NOW, policy=POLICY)
    assert e.value.status == 400 and words in e.value.description


def test_given_lists_when_parsed_then_comma_delimited_once_each() -> None:
    f = o3.parse_filters({"status": "open, closed,open", "service_code": "health,,transport"},
                         now=NOW, policy=POLICY)
    assert f.statuses == ("open", "closed") and f.service_codes == ("health", "transport")


def test_given_service_request_ids_when_parsed_then_they_override_every_other_argument() -> None:
    f = o3.parse_filters({"service_request_id": "DN-20261206-0002,DN-20261206-0001",
                          "status": "bogus", "start_date": "not a date"}, now=NOW, policy=POLICY)
    assert f.ids == ("DN-20261206-0002", "DN-20261206-0001")
    assert f.start is None and f.statuses == ()


# ---- services ----------------------------------------------------------------------------------
def test_given_tenant_fields_when_services_listed_then_spec_fields_realtime_no_metadata() -> None:
    found = o3.services(POLICY)
    assert [s["service_code"] for s in found] == [f.id for f in POLICY.fields]
    health = found[0]
    assert set(health) == SPEC_SERVICE_FIELDS
    assert health == {"service_code": "health", "service_name": "Y tế",
                      "description": "Phản ánh, kiến nghị thuộc lĩnh vực Y tế",
                      "metadata": False, "type": "realtime", "keywords": "Y tế, y te, health",
                      "group": "health"}
    assert found[1]["group"] == "general"


def test_given_service_code_when_defined_then_no_attributes_unknown_404() -> None:
    assert o3.service_definition(POLICY, "health") == {"service_code": "health",
                                                       "attributes": []}
    with pytest.raises(Open311Error) as e:
        o3.service_definition(POLICY, "DMV66")
    assert e.value.status == 404 and "DMV66" in e.value.description


# ---- places ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("address", "place"), [
    ("1234 đường ĐT769, Xã An Phước, Huyện Long Thành", "long_thanh.an_phuoc"),
    ("ấp 3 an phuoc long thanh dong nai", "long_thanh.an_phuoc"),  # no diacritics, no "xã"
    ("Khu phố 2, Thành phố Biên Hòa", "bien_hoa"),
    ("gần chợ Biên Hòa", "bien_hoa"),
    ("Huyện Long Thành", "long_thanh"),
    ("Long Thành", "long_thanh"),  # the district, not its Thị trấn of the same name
    ("ấp 1, xã An Phước, Long Thành", "long_thanh.an_phuoc"),
    ("khu 5, Thị trấn Long Thành", "long_thanh.tt_long_thanh"),
    ("Xã Long An, Huyện Nhơn Trạch", "nhon_trach.long_an"),  # two Long An: the district tells
    ("Xã Long An", None),  # which Long An? level 1 decides
    ("Quận 1, Hà Nội", None),
    ("", None),
    (None, None),
])
def test_given_address_string_when_matched_then_commune_or_district_or_none(
        address: str | None, place: str | None) -> None:
    assert o3.match_place(address, POLICY) == place


# ---- new requests ------------------------------------------------------------------------------
def test_given_spec_example_post_when_parsed_then_ticket_with_place_name_and_link() -> None:
    new = o3.parse_new_request(SPEC_POST, POLICY, app="dvc-app")
    assert new.service_code == "transport"
    assert new.place == "long_thanh.an_phuoc"
    assert new.citizen_name == "Nguyễn Văn An"  # family name first, as Vietnamese write it
    assert new.citizen_phone == "0912345678"
    assert new.media_url == SPEC_POST["media_url"]
    assert new.content.startswith("Hố sụt lớn làm hỏng mặt đường\n\n--- Gửi qua Open311 "
                                  "(ứng dụng dvc-app) ---\n")
    for line in ("Địa điểm người gửi ghi: 1234 đường ĐT769, Xã An Phước, Huyện Long Thành",
                 "Tọa độ (WGS84): 10.790100, 106.951300", f"Email liên hệ: {EMAIL}",
                 f"Ảnh/tệp (đường dẫn, hệ thống không tải về): {SPEC_POST['media_url']}"):
        assert line in new.content.splitlines()
    assert o3.description_part(new.content) == "Hố sụt lớn làm hỏng mặt đường"


def test_given_lat_long_only_when_parsed_then_no_place_and_address_id_names_one() -> None:
    minimal = {"service_code": "health", "lat": "10.79", "long": "106.95"}
    new = o3.parse_new_request(minimal, POLICY, app="a1")
    assert new.place is None and new.citizen_name is None and new.citizen_phone is None
    assert new.content.startswith(o3.NO_DESCRIPTION)
    new = o3.parse_new_request({"service_code": "health", "address_id": "bien_hoa"}, POLICY,
                               app="a1")
    assert new.place == "bien_hoa"


@pytest.mark.parametrize(("change", "status", "words"), [
    ({"service_code": ""}, 400, "service_code was not provided"),
    ({"service_code": "potholes"}, 404, "service_code 'potholes' was not found"),
    ({"lat": "", "long": "", "address_string": ""}, 400, "a location must be submitted"),
    ({"long": ""}, 400, "lat and long must be sent together"),
    ({"lat": "91"}, 400, "lat '91' is out of range"),
    ({"long": "east"}, 400, "long 'east' is not a number"),
    ({"address_id": "ha_noi"}, 400, "address_id 'ha_noi' is not a place"),
    ({"description": "x" * 4001}, 400, "description is longer than 4000"),
    ({"phone": "12345"}, 400, "phone is not a Vietnamese"),
    ({"email": "not-an-address"}, 400, "email is not an e-mail address"),
    ({"media_url": "ftp://example.vn/a.jpg"}, 400, "media_url must be an http"),
    ({"media_url": "javascript:alert(1)"}, 400, "media_url must be an http"),
])
def test_given_invalid_post_when_parsed_then_spec_status_and_reason(
        change: dict[str, str], status: int, words: str) -> None:
    with pytest.raises(Open311Error) as e:
        o3.parse_new_request(SPEC_POST | change, POLICY, app="dvc-app")
    assert e.value.status == status and words in e.value.description


# ---- responses ---------------------------------------------------------------------------------
def test_given_unpublished_ticket_when_viewed_then_spec_fields_and_no_personal_data() -> None:
    t = answered(publish=False)
    shown = view(t, media=SPEC_POST["media_url"])
    assert list(shown) == SPEC_REQUEST_FIELDS
    assert shown["service_request_id"] == t.code and shown["status"] == "closed"
    assert shown["description"] is None and shown["media_url"] is None
    assert shown["status_notes"] == "Tổng đài 1022 đã trả lời."
    assert shown["address"] == "Xã An Phước, Huyện Long Thành"
    assert shown["address_id"] == "long_thanh.an_phuoc"
    assert shown["lat"] is None and shown["long"] is None
    assert shown["requested_datetime"] == "2026-12-06T11:00:00+07:00"
    assert shown["updated_datetime"] == "2026-12-07T11:00:00+07:00"  # when it was answered
    text = json.dumps(shown, ensure_ascii=False)
    for personal in (NAME, PHONE, "0912 345 678", EMAIL, "1234 đường ĐT769", "10.79"):
        assert personal not in text, personal


def test_given_published_ticket_when_viewed_then_masked_description_result_and_media() -> None:
    t = answered(publish=True)
    shown = view(t, media=SPEC_POST["media_url"])
    assert shown["description"] == "Hố sụt lớn làm hỏng mặt đường"  # no Open311 block
    assert shown["status_notes"] == ("Tổng đài 1022 đã trả lời. Kết quả: Đã báo ông [họ tên] "
                                     "([số điện thoại]): đã san lấp hố sụt.")
    assert shown["media_url"] == SPEC_POST["media_url"]
    text = json.dumps(shown, ensure_ascii=False)
    assert NAME not in text and PHONE not in text and EMAIL not in text


def test_given_open_ticket_when_viewed_then_expected_datetime_is_its_deadline() -> None:
    t = opened(place=None)
    shown = view(t)
    assert shown["status"] == "open" and shown["status_notes"] == o3.STATE_NOTES[S.NEW]
    assert t.resolve_due is not None
    assert shown["expected_datetime"] == o3.w3_time(t.resolve_due, POLICY.timezone)
    assert shown["agency_responsible"] == "Tổng đài 1022" and shown["address"] is None
    t, _ = tk.apply(t, tk.Forward(NOW, OP, "ubnd_lt"), POLICY)
    shown = view(t)
    assert shown["agency_responsible"] == "UBND huyện Long Thành"
    assert shown["updated_datetime"] == "2026-12-07T11:00:00+07:00"  # the forwarding


def test_given_new_ticket_when_created_view_then_id_notice_and_null_account() -> None:
    t = opened()
    created = o3.created_view(t, POLICY)
    assert created == {"service_request_id": "DN-20261206-0001",
                       "service_notice": "Tổng đài 1022 đã tiếp nhận phản ánh DN-20261206-0001; "
                                         "hạn giải quyết 11:00 07/12/2026.",
                       "account_id": None}


def test_given_spec_error_example_when_rendered_then_json_list_and_xml_errors() -> None:
    body = o3.error_list(403, "Invalid api_key received -- can't proceed with create_request.")
    raw, ctype = o3.render("json", "errors", body)
    assert ctype == "application/json"
    assert json.loads(raw) == [{"code": 403, "description": "Invalid api_key received -- "
                                                            "can't proceed with create_request."}]
    raw, ctype = o3.render("xml", "errors", body)
    assert ctype == "text/xml"
    assert raw.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<errors><error><code>403'
                          b'</code><description>Invalid api_key')


def test_given_services_when_xml_then_spec_elements_and_booleans() -> None:
    raw, _ = o3.render("xml", "services", o3.services(POLICY))
    root = ET.fromstring(raw)
    assert root.tag == "services"
    first = root.find("service")
    assert first is not None
    assert {c.tag for c in first} == SPEC_SERVICE_FIELDS
    assert first.findtext("metadata") == "false" and first.findtext("type") == "realtime"
    assert first.findtext("service_name") == "Y tế"  # UTF-8, not escaped away


def test_given_service_definition_when_xml_then_empty_attributes_element() -> None:
    raw, _ = o3.render("xml", "service_definition", o3.service_definition(POLICY, "health"))
    root = ET.fromstring(raw)
    assert root.tag == "service_definition" and root.findtext("service_code") == "health"
    attributes = root.find("attributes")
    assert attributes is not None and list(attributes) == []


def test_given_definition_with_attributes_when_xml_then_singular_items_as_in_spec() -> None:
    spec = {"service_code": "DMV66", "attributes": [{
        "variable": True, "code": "WHISHETN", "datatype": "singlevaluelist", "required": True,
        "datatype_description": None, "order": 1,
        "description": "What is the ticket/tag/DL number?",
        "values": [{"key": 123, "name": "Ford"}, {"key": 124, "name": "Chrysler"}]}]}
    root = ET.fromstring(o3.to_xml("service_definition", None, spec))
    attribute = root.find("attributes/attribute")
    assert attribute is not None and attribute.findtext("variable") == "true"
    assert attribute.findtext("datatype_description") == ""
    assert [v.findtext("name") for v in root.findall("attributes/attribute/values/value")] == [
        "Ford", "Chrysler"]


def test_given_requests_when_xml_then_spec_request_elements_nulls_empty() -> None:
    t = answered(publish=False)
    raw, _ = o3.render("xml", "requests", [view(t)])
    root = ET.fromstring(raw)
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request is not None
    assert [c.tag for c in request] == SPEC_REQUEST_FIELDS
    assert request.findtext("description") == "" and request.findtext("status") == "closed"


def test_given_control_characters_when_xml_then_still_well_formed() -> None:
    raw = o3.to_xml("errors", "error", o3.error_list(400, "bad \x00\x1b byte"))
    assert ET.fromstring(raw).findtext("error/description") == "bad  byte"


def test_given_base_url_when_discovery_then_endpoint_formats_in_json_and_xml() -> None:
    found = o3.discovery("https://1022.dongnai.gov.vn/open311/v2/")
    endpoint = found["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "https://1022.dongnai.gov.vn/open311/v2/"
    assert endpoint["formats"] == ["text/xml", "application/json"]
    root = ET.fromstring(o3.render("xml", "discovery", found)[0])
    assert root.tag == "discovery" and root.findtext("key_service")
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == [
        "text/xml", "application/json"]
