"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) over the tickets; pure.

What the GeoReport names mean here:

* a **service** is one of the tenant's fields (``service_code`` = the field id, ``service_name``
  its Vietnamese name); none has extra attributes (``metadata`` false, the definition's
  ``attributes`` empty), and every one is ``realtime``: the ticket code comes back at once;
* a **service request** is a ticket; ``service_request_id`` is its code (DN-20261123-0042);
* ``jurisdiction_id`` is the tenant id, required when the config has several tenants.

Status (``status_of``): ``open`` while the hotline or a unit still works on the ticket (``new``,
``forwarded``, ``in_progress``, ``returned``, ``reopened``), ``closed`` once it has an answer or a
result or was closed (``answered``, ``resolved``, ``closed``); ``status_notes`` says which, in
Vietnamese (``STATE_NOTES``).

Personal data never leaves through a read (``request_view``): no name, phone or e-mail; the
address is the district or commune the ticket was filed under, never the street the citizen
wrote, and no coordinates. The ``description`` (and the result in ``status_notes``, and
``media_url``) are shown only for tickets published through the review flow (``is_public``:
marked publishable by a supervisor, answered or resolved), and even then through the caller's
``public_text`` (the ticket service's ``scrub``: names, numbers, e-mails and exact addresses
masked). Why not every description, masked: the masking is heuristic (``tickets.redact``), and
the public page already relies on a supervisor's review before any citizen's words go out;
an open API read by anyone must not be the one place that skips it.

A new request (``parse_new_request``) becomes a ticket's content: the description, then a
block after ``CONTENT_MARKER`` with what the app sent that the ticket has no field for (the
address as written, coordinates, e-mail, the media link). ``media_url`` is kept as a link: the
hotline never fetches a URL a third party sent (no request to an address the sender chooses,
no unvetted file in the store). Errors are ``Open311Error`` with the HTTP status the spec gives:
400 (missing or invalid argument), 403 (API key), 404 (jurisdiction, service or request not
found).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from callcenter.numbers import vietnamese_phone
from callcenter.tickets.config import TicketPolicy
from callcenter.tickets.rules import (
    OPEN,
    Ticket,
    TicketError,
    TicketState,
    is_public,
    parse_ticket_code,
)

SPECIFICATION: Final = "http://wiki.open311.org/GeoReport_v2"
MAX_REQUESTS: Final = 1000  # the spec's default volume: 90 days or 1000 requests
MAX_SPAN: Final = dt.timedelta(days=90)
MAX_DESCRIPTION: Final = 4000  # the spec's limit on a description
MAX_NAME: Final = 100
MAX_ADDRESS: Final = 500
MAX_URL: Final = 2000
MAX_EMAIL: Final = 254
HOTLINE_NAME: Final = "Tổng đài 1022"
CONTENT_MARKER: Final = "\n\n--- Gửi qua Open311"
NO_DESCRIPTION: Final = "(Người gửi không ghi nội dung)"

Status = Literal["open", "closed"]
STATUSES: tuple[Status, ...] = ("open", "closed")
Format = Literal["json", "xml"]

_S = TicketState
STATE_NOTES: Final[dict[TicketState, str]] = {
    _S.NEW: "Tổng đài 1022 đã tiếp nhận phản ánh.",
    _S.FORWARDED: "Đã chuyển đến đơn vị có thẩm quyền xử lý.",
    _S.IN_PROGRESS: "Đơn vị đang xử lý.",
    _S.RETURNED: "Tổng đài 1022 đang xem xét để chuyển đúng đơn vị xử lý.",
    _S.REOPENED: "Phản ánh được mở lại để xử lý tiếp.",
    _S.ANSWERED: "Tổng đài 1022 đã trả lời.",
    _S.RESOLVED: "Đơn vị đã có kết quả giải quyết.",
    _S.CLOSED: "Đã kết thúc xử lý.",
}
_EMAIL = re.compile(r"[^@\s<>,;\"']{1,64}@[^@\s<>,;\"']+\.[^@\s<>,;\"'.]+")
_URL = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A "+" in a query string that was not percent-encoded arrives as a space: 10:00:00 07:00.
_SPACED_OFFSET = re.compile(r"([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?) ([0-9]{2}:?[0-9]{2})$")
_XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Words that start a Vietnamese place name ("Xã An Phước"): a name also matches without them.
_PLACE_PREFIXES: Final = ("thanh pho", "thi xa", "thi tran", "huyen", "quan", "phuong", "xa",
                          "tp.", "tx.", "tt.", "tp", "tx", "tt")


class Open311Error(Exception):
    """A refused request: the HTTP ``status`` and the spec's error (``code``, ``description``)."""

    def __init__(self, status: int, description: str, code: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = status if code is None else code
        self.description = description


def status_of(state: TicketState) -> Status:
    """``open`` while someone works on the ticket, ``closed`` once answered, resolved or closed."""
    return "open" if state in OPEN else "closed"


def states_of(statuses: Sequence[Status]) -> tuple[TicketState, ...]:
    """The ticket states behind the given statuses (every state for none)."""
    wanted = set(statuses) or set(STATUSES)
    return tuple(s for s in TicketState if status_of(s) in wanted)


# ---- jurisdiction and times -------------------------------------------------------------------
def jurisdiction(value: str | None, tenant_ids: Sequence[str]) -> str:
    """The tenant a request is for: ``jurisdiction_id``, which may be left out with one tenant."""
    given = (value or "").strip()
    if not given:
        if len(tenant_ids) == 1:
            return tenant_ids[0]
        raise Open311Error(400, "jurisdiction_id was not provided: this endpoint serves "
                                f"several jurisdictions ({', '.join(tenant_ids)})")
    if given not in tenant_ids:
        raise Open311Error(404, f"jurisdiction_id {given[:40]!r} was not found")
    return given


def w3_time(at: dt.datetime, timezone: str) -> str:
    """A moment in the spec's w3 format, local time with its offset: 2026-12-07T11:34:20+07:00."""
    return at.astimezone(ZoneInfo(timezone)).replace(microsecond=0).isoformat()


def parse_time(name: str, text: str, timezone: str) -> dt.datetime:
    """A w3 date/time argument (aware); a bare date is local midnight in ``timezone``."""
    value = text.strip()
    if _DAY.fullmatch(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise Open311Error(400, f"{name} {value[:40]!r} is not a date") from None
        return dt.datetime.combine(day, dt.time(), ZoneInfo(timezone))
    value = _SPACED_OFFSET.sub(r"\1+\2", value)
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Open311Error(400, f"{name} {text[:40]!r}: expected w3 format, e.g. "
                                "2026-12-01T00:00:00+07:00 or 2026-12-01T00:00:00Z") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise Open311Error(400, f"{name} {text[:40]!r} has no time zone: add Z or an offset "
                                "such as +07:00")
    return at


# ---- GET requests filters ---------------------------------------------------------------------
@dataclass(frozen=True)
class RequestFilter:
    """What GET requests asks for; ``ids`` (when given) overrides every other argument."""

    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()  # empty: every service
    statuses: tuple[Status, ...] = ()  # empty: both
    start: dt.datetime | None = None  # requested_datetime >= start
    end: dt.datetime | None = None  # requested_datetime <= end
    limit: int = MAX_REQUESTS


def _listed(value: str | None) -> list[str]:
    """A comma-delimited argument, blanks dropped, each value once (in order)."""
    parts = (p.strip() for p in (value or "").split(","))
    return list(dict.fromkeys(p for p in parts if p))


def parse_filters(query: Mapping[str, str], *, now: dt.datetime,
                  policy: TicketPolicy) -> RequestFilter:
    """The filters of GET requests (the spec's arguments); Open311Error 400 when invalid.

    Without dates: the 90 days up to ``now``; with one date: 90 days from or up to it; with
    both: at most 90 days apart. At most ``MAX_REQUESTS`` are returned, newest first.
    """
    ids = _listed(query.get("service_request_id"))
    if ids:
        if len(ids) > MAX_REQUESTS:
            raise Open311Error(400, f"at most {MAX_REQUESTS} service_request_id values")
        for code in ids:
            try:
                parse_ticket_code(code)
            except TicketError:
                raise Open311Error(400, f"service_request_id {code[:40]!r} is not a request "
                                        "of this endpoint: expected a code such as "
                                        "DN-20261123-0042") from None
        return RequestFilter(ids=tuple(ids))
    codes = _listed(query.get("service_code"))
    unknown = [c for c in codes if policy.field_name(c) is None]
    if unknown:
        raise Open311Error(400, f"service_code {unknown[0][:40]!r} was not found (see "
                                "services.json)")
    statuses: list[Status] = []
    for s in _listed(query.get("status")):
        found = next((x for x in STATUSES if x == s.lower()), None)
        if found is None:
            raise Open311Error(400, f"status {s[:20]!r}: expected open or closed")
        statuses.append(found)
    start_text = (query.get("start_date") or "").strip()
    end_text = (query.get("end_date") or "").strip()
    start = parse_time("start_date", start_text, policy.timezone) if start_text else None
    end = parse_time("end_date", end_text, policy.timezone) if end_text else None
    if start is None and end is None:
        end = now
    if start is None:
        assert end is not None
        start = end - MAX_SPAN
    if end is None:
        end = start + MAX_SPAN
    if end < start:
        raise Open311Error(400, "end_date is before start_date")
    if end - start > MAX_SPAN:
        raise Open311Error(400, "start_date and end_date may not span more than 90 days")
    return RequestFilter(service_codes=tuple(codes), statuses=tuple(dict.fromkeys(statuses)),
                         start=start, end=end)


# ---- services -----------------------------------------------------------------------------------
def fold(text: str) -> str:
    """Lower case without diacritics (đ as d): how place names and keywords are compared."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def services(policy: TicketPolicy) -> list[dict[str, Any]]:
    """GET Service List: one service per field of the tenant, in the config's order."""
    return [{
        "service_code": f.id,
        "service_name": f.name,
        "description": f"Phản ánh, kiến nghị thuộc lĩnh vực {f.name}",
        "metadata": False,
        "type": "realtime",
        "keywords": ", ".join(dict.fromkeys([f.name, fold(f.name), f.id.replace("_", " ")])),
        "group": f.group or "general",
    } for f in policy.fields]


def service_definition(policy: TicketPolicy, code: str) -> dict[str, Any]:
    """GET Service Definition: no field has extra attributes; 404 for an unknown code."""
    if policy.field_name(code) is None:
        raise Open311Error(404, f"service_code {code[:40]!r} was not found")
    return {"service_code": code, "attributes": []}


# ---- places -------------------------------------------------------------------------------------
def _name_forms(name: str) -> list[str]:
    """A place name folded, and without its leading "xã", "huyện" ... when it has one."""
    folded = " ".join(fold(name).split())
    forms = [folded]
    for prefix in _PLACE_PREFIXES:
        if folded.startswith(prefix + " ") and len(folded) > len(prefix) + 2:
            forms.append(folded[len(prefix) + 1:])
            break
    return forms


def _found(text: str, form: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(form)}(?![\w])", text) is not None


def _mention(text: str, name: str) -> int:
    """2 if the text names the place in full ("xã an phuoc"), 1 without its prefix, else 0."""
    forms = _name_forms(name)
    if _found(text, forms[0]):
        return 2
    return 1 if any(_found(text, form) for form in forms[1:]) else 0


def match_place(address: str | None, policy: TicketPolicy) -> str | None:
    """The tenant's commune or district an address names, or None if none or several do.

    Names are compared without diacritics or case, with or without "Xã", "Huyện" ... A commune
    wins over its district; one named in full ("Thị trấn Long Thành") over one named only
    without its prefix; a commune named only like a district also named ("Long Thành": the
    district, not its Thị trấn) does not count; two communes of different districts are told
    apart by the district named too; anything still ambiguous gives None (level 1 places it).
    """
    if not address or not address.strip():
        return None
    text = " ".join(fold(address).replace(",", " , ").split())
    districts = [d for d in policy.districts if _mention(text, d.name)]
    district_forms = {form for d in districts for form in _name_forms(d.name)}
    scored = []
    for d in policy.districts:
        for c in d.communes:
            score = _mention(text, c.name)
            if score == 1 and set(_name_forms(c.name)[1:]) <= district_forms:
                score = 0  # "Long Thành" names the district; its Thị trấn needs its prefix
            if score:
                scored.append((score, d, c))
    best = max((score for score, _, _ in scored), default=0)
    communes = [(d, c) for score, d, c in scored if score == best]
    if len(communes) > 1 and districts:
        named = {d.id for d in districts}
        communes = [(d, c) for d, c in communes if d.id in named]
    if len(communes) == 1:
        return communes[0][1].id
    if len(communes) > 1:
        return None
    return districts[0].id if len(districts) == 1 else None


def address_of(ticket: Ticket, policy: TicketPolicy) -> str | None:
    """The ticket's place as Open311's ``address``: commune and district names, never more."""
    if ticket.district is None:
        return None
    found = policy.place(ticket.commune or ticket.district)
    if found is None:
        return None
    district, commune = found
    return f"{commune.name}, {district.name}" if commune is not None else district.name


# ---- POST requests ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewRequest:
    """A POSTed service request, checked, as the ticket service's ``open`` wants it."""

    service_code: str
    content: str
    place: str | None
    citizen_name: str | None
    citizen_phone: str | None
    media_url: str | None


def _arg(form: Mapping[str, str], name: str, limit: int) -> str | None:
    value = (form.get(name) or "").strip()
    if len(value) > limit:
        raise Open311Error(400, f"{name} is longer than {limit} characters")
    return value or None


def _coordinate(form: Mapping[str, str], name: str, bound: float) -> float | None:
    text = _arg(form, name, 40)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise Open311Error(400, f"{name} {text!r} is not a number (WGS84 degrees)") from None
    if not -bound <= value <= bound:
        raise Open311Error(400, f"{name} {text!r} is out of range (-{bound:g}..{bound:g})")
    return value


def parse_new_request(form: Mapping[str, str], policy: TicketPolicy, *,
                      app: str) -> NewRequest:
    """POST Service Request's arguments as a ticket to open; Open311Error 400/404 if refused.

    ``app``: the key's name, written in the content's Open311 block. The place comes from
    ``address_id`` (a place id of the tenant) or from an ``address_string`` naming a commune or
    district (``match_place``), else none. ``first_name``/``last_name`` become the citizen's
    name in Vietnamese order (family name first).
    """
    code = _arg(form, "service_code", 64)
    if code is None:
        raise Open311Error(400, "service_code was not provided")
    service_name = policy.field_name(code)
    if service_name is None:
        raise Open311Error(404, f"service_code {code[:40]!r} was not found")
    lat = _coordinate(form, "lat", 90)
    long = _coordinate(form, "long", 180)
    if (lat is None) != (long is None):
        raise Open311Error(400, "lat and long must be sent together")
    address = _arg(form, "address_string", MAX_ADDRESS)
    address_id = _arg(form, "address_id", 64)
    if address_id is not None and policy.place(address_id) is None:
        raise Open311Error(400, f"address_id {address_id!r} is not a place of this "
                                "jurisdiction (a district or commune id)")
    if lat is None and address is None and address_id is None:
        raise Open311Error(400, "a location must be submitted: lat and long, address_string "
                                "or address_id")
    description = _arg(form, "description", MAX_DESCRIPTION)
    first = _arg(form, "first_name", MAX_NAME)
    last = _arg(form, "last_name", MAX_NAME)
    name = " ".join(p for p in (last, first) if p) or None
    phone_text = _arg(form, "phone", 40)
    phone: str | None = None
    if phone_text is not None:
        phone = vietnamese_phone(phone_text)
        if phone is None:
            raise Open311Error(400, "phone is not a Vietnamese mobile or fixed-line number")
    email = _arg(form, "email", MAX_EMAIL)
    if email is not None and not _EMAIL.fullmatch(email):
        raise Open311Error(400, "email is not an e-mail address")
    media_url = _arg(form, "media_url", MAX_URL)
    if media_url is not None and not _URL.fullmatch(media_url):
        raise Open311Error(400, "media_url must be an http:// or https:// URL")
    place = address_id or match_place(address, policy)
    lines = [f"{CONTENT_MARKER.strip()} (ứng dụng {app}) ---"]
    if address is not None:
        lines.append(f"Địa điểm người gửi ghi: {address}")
    if lat is not None and long is not None:
        lines.append(f"Tọa độ (WGS84): {lat:.6f}, {long:.6f}")
    if email is not None:
        lines.append(f"Email liên hệ: {email}")
    if media_url is not None:
        lines.append(f"Ảnh/tệp (đường dẫn, hệ thống không tải về): {media_url}")
    content = (description or NO_DESCRIPTION) + "\n\n" + "\n".join(lines)
    return NewRequest(code, content, place, name, phone, media_url)


def description_part(content: str) -> str:
    """A ticket's content without the Open311 block ``parse_new_request`` added."""
    return content.split(CONTENT_MARKER, 1)[0]


# ---- responses ----------------------------------------------------------------------------------
def updated_at(ticket: Ticket) -> dt.datetime:
    """When the ticket last changed state; for a closed request, when it was closed."""
    if status_of(ticket.state) == "closed":
        return ticket.closed_at or ticket.resolved_at or ticket.received_at
    stamps = [ticket.received_at, ticket.forwarded_at, ticket.accepted_at, ticket.returned_at,
              ticket.reopened_at]
    return max(s for s in stamps if s is not None)


def request_view(ticket: Ticket, policy: TicketPolicy, *, media_url: str | None,
                 public_text: Callable[[str], str]) -> dict[str, Any]:
    """GET Service Request(s): one ticket as the spec's ``request``, without personal data.

    ``public_text`` masks a published text (the ticket service's ``scrub`` with the citizen's
    name and number); it is called only for tickets published through the review flow.
    """
    published = is_public(ticket)
    holder = policy.unit(ticket.unit) if ticket.unit is not None else None
    notes = STATE_NOTES[ticket.state]
    # The texts a supervisor edited for the public in the review (public_question/answer)
    # when there are, as on the public page; else the originals, masked.
    answer = ticket.public_answer or ticket.result
    if published and answer:
        notes += " Kết quả: " + public_text(answer)
    status = status_of(ticket.state)
    due = ticket.resolve_due if status == "open" else None
    return {
        "service_request_id": ticket.code,
        "status": status,
        "status_notes": notes,
        "service_name": policy.field_name(ticket.field) or ticket.field,
        "service_code": ticket.field,
        "description": (public_text(ticket.public_question or description_part(ticket.content))
                        if published else None),
        "agency_responsible": holder.name if holder is not None else HOTLINE_NAME,
        "service_notice": None,
        "requested_datetime": w3_time(ticket.received_at, policy.timezone),
        "updated_datetime": w3_time(updated_at(ticket), policy.timezone),
        "expected_datetime": w3_time(due, policy.timezone) if due is not None else None,
        "address": address_of(ticket, policy),
        "address_id": ticket.place,
        "zipcode": None,
        "lat": None,  # never: a point would show where the citizen is or lives
        "long": None,
        "media_url": media_url if published else None,
    }


def created_view(ticket: Ticket, policy: TicketPolicy) -> dict[str, Any]:
    """POST Service Request's answer: the new request's id and what happens next."""
    notice = f"{HOTLINE_NAME} đã tiếp nhận phản ánh {ticket.code}"
    if ticket.resolve_due is not None:
        local = ticket.resolve_due.astimezone(ZoneInfo(policy.timezone))
        notice += f"; hạn giải quyết {local:%H:%M %d/%m/%Y}"
    return {"service_request_id": ticket.code, "service_notice": notice + ".",
            "account_id": None}


def error_list(status: int, description: str, code: int | None = None) -> list[dict[str, Any]]:
    """The spec's error body: a list of {code, description}."""
    return [{"code": status if code is None else code, "description": description}]


# Service Discovery (http://wiki.open311.org/Service_Discovery): the date this API last changed.
CHANGESET: Final = "2026-12-07T00:00:00Z"


def discovery(base_url: str) -> dict[str, Any]:
    """Service Discovery: where the GeoReport v2 endpoint is, its formats, how to get a key."""
    return {
        "changeset": CHANGESET,
        "contact": f"{HOTLINE_NAME}: gọi 1022 hoặc liên hệ quản trị viên của tỉnh",
        "key_service": ("api_key do quản trị viên Tổng đài 1022 cấp cho từng ứng dụng "
                        "(callcenter open311 key create)"),
        "endpoints": [{"specification": SPECIFICATION, "url": base_url, "changeset": CHANGESET,
                       "type": "production", "formats": ["text/xml", "application/json"]}],
    }


# ---- formats ------------------------------------------------------------------------------------
XML_DECLARATION: Final = '<?xml version="1.0" encoding="utf-8"?>\n'
# A list-valued field's items are elements named in the singular (the spec's XML).
_ITEM_NAMES: Final = {"attributes": "attribute", "values": "value", "endpoints": "endpoint",
                      "formats": "format"}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_UNSAFE.sub("", str(value))


def _fill(parent: ET.Element, fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        child = ET.SubElement(parent, name)
        if isinstance(value, list):
            for item in value:
                element = ET.SubElement(child, _ITEM_NAMES.get(name, "item"))
                if isinstance(item, Mapping):
                    _fill(element, item)
                elif item is not None:
                    element.text = _text(item)
        elif value is not None:
            child.text = _text(value)


def to_xml(root: str, item: str | None, payload: Any) -> bytes:
    """The spec's XML: ``<root><item>fields</item>...</root>`` for a list (``item`` given), or
    ``<root>fields</root>`` for one object; null as an empty element, booleans true/false."""
    top = ET.Element(root)
    if item is None:
        _fill(top, payload)
    else:
        for entry in payload:
            _fill(ET.SubElement(top, item), entry)
    return (XML_DECLARATION + ET.tostring(top, encoding="unicode")).encode("utf-8")


def to_json(payload: Any) -> bytes:
    """JSON in UTF-8 (Vietnamese left as it is, not \\u-escaped)."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


# Root and item element names of each resource's XML (the spec's examples).
XML_SHAPES: Final[dict[str, tuple[str, str | None]]] = {
    "services": ("services", "service"),
    "service_definition": ("service_definition", None),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
    "discovery": ("discovery", None),
}


def render(fmt: Format, shape: str, payload: Any) -> tuple[bytes, str]:
    """A resource's body and content type in the asked format."""
    if fmt == "xml":
        root, item = XML_SHAPES[shape]
        return to_xml(root, item, payload), "text/xml"
    return to_json(payload), "application/json"
