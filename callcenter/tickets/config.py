"""A tenant's ticket policy: level-2 units, places, routing, deadlines, SMS texts; pure parsing.

Schema (durations are quoted strings such as "24h", "4h", "60m", "5m", "1h30m", "2d")::

    units:                             # level-2 units (đơn vị cấp 2)
      - id: so_y_te                    # a-z 0-9 _ - (max 32), unique in the tenant
        name: "Sở Y tế"
        kind: department               # department | district | other (water, power ...)
        hotline: "02513822000"         # optional: the number operators transfer calls to
        places: [long_thanh]           # optional: places it covers (= place-only routing rules)
        oversees:                      # optional: it follows (reads) every ticket of these
          fields: [health]             #   fields and/or places, whoever holds it
          groups: [health]             #   (groups: every field of the group)
          places: [long_thanh]         #   (a district covers its communes)
        focal_persons:                 # at least one; they get the forward and reminder SMS
          - {name: "Nguyễn Văn An", phone: "0912345678"}   # a Vietnamese mobile number
          - {name: "Lê Thị Bình", phone: "0912345679", fields: [health], email: "b@x.gov.vn"}
        email: "soyte@dongnai.gov.vn"  # optional: the unit's mailbox (chase e-mails)
        head: {name: "Giám đốc Sở Y tế", phone: "0912000000", email: "gd@x.gov.vn"}  # optional
    places:                            # districts (huyện, thành phố) and their communes
      - id: long_thanh                 # a-z 0-9 _ . - (max 64); unique over districts and
        name: "Huyện Long Thành"       #   communes together, so one id names any place
        communes:
          - {id: long_thanh.an_phuoc, name: "Xã An Phước"}
    tickets:
      code_prefix: DN                  # codes DN-20261123-0042 (default: the tenant id)
      fallback_unit: vp_ubnd           # required as soon as units are given
      routing:
        - {field: health, unit: so_y_te}
        - {field: health, place: long_thanh, unit: phong_y_te_long_thanh}
        - {place: bien_hoa, unit: ubnd_bien_hoa}
      deadlines:
        resolve: "24h"                 # result due this long after receipt (default 24h)
        forward: "5m"                  # optional: level 1 must forward within this (HCMC)
        reminder_before: "2h"          # SMS the unit this long before the deadline; null: never
        rules:                         # replaces the built-in list (urgent health: 4h)
          - {name: urgent_health, groups: [health], urgent: true, resolve: "4h"}
          - {name: violation, fields: [security_order], resolve: "60m", from: forwarded}
      sms:                             # {code} {field} {place} {unit} {deadline} {received}
        resolved: "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!"
        forwarded: "..."               # to the unit's focal persons when a ticket reaches it
        reminder: "..."                # to the same, reminder_before the deadline
        chase: "..."                   # {days_late} too: to the same, once late (chasing)
        escalation: "..."              # to the unit's head and the province office
        web_receipt: "..."             # to the citizen when the web form records a petition
        reopened: "..."                # to the focal persons when the citizen replies 2
      survey:                          # optional; left out: the resolve SMS asks nothing
        enabled: true                  # the default once the section is given
        question: "Hài lòng nhắn 1, chưa được giải quyết nhắn 2."  # after sms.resolved
        reply_days: 7                  # a reply counts this many days after the notice
      public_by_default: false         # may resolved tickets appear in the public feed
      chasing:                         # optional; left out: late units are not chased
        at_deadline: true              # SMS the focal persons when the deadline passes
        daily_at: "07:30"              # and every working morning after it (null: never)
        escalate_after: "2d"           # this late: tell the head and the province office, once
        working_days: [mon, tue, wed, thu, fri]   # the default
        holidays: ["2027-02-08"]       # local dates without a morning chase
      province_office: {name: "Văn phòng UBND tỉnh", phone: "0912000001", email: "vp@x.gov.vn"}

Decisions:

* **Defaults.** A tenant with no ticket sections gets a working policy: no units (tickets can be
  recorded and answered at level 1, not forwarded), 24 h to resolve, urgent health 4 h, the
  seeds' SMS texts, nothing public by default. ``fallback_unit`` is required only once units
  are given: with units, every ticket must have somewhere to go.
* **Routing, most specific first:** field + commune, field + district, field only, commune
  only, district only, then the fallback unit. A field rule names the province-wide lead unit
  of that field; fields without one go by place; a field + district rule carves a district
  out (Long Thành's Phòng Y tế for health there). A district rule also covers its communes.
  Two rules for the same (field, place) are an error, whether written in ``routing`` or
  implied by a unit's ``places``.
* **Deadline rules** match by field or field group (``groups: [health]``: every field the
  tenant's ``fields`` mark ``group: health``; neither listed: any field) and urgency (absent:
  either).
  When several rules set the same clock the earliest due time wins; a clock no rule sets uses
  the tenant default (so a rule may also loosen it, e.g. 72 h for land disputes).
  ``from: forwarded`` starts a rule's resolve clock when the unit receives the ticket (HCMC:
  60 minutes "kể từ khi tiếp nhận thông tin"); the default is from receipt at the hotline.
* **Clocks run around the clock** (the hotline is 24/7 and the orders say "24 giờ"): no
  working hours or holidays are skipped. See ``callcenter.tickets.deadlines``.
* **Oversight** (``oversees``): a lead department follows its whole field, a district office
  its district ("theo dõi phản ánh ... và hỗ trợ các địa phương"): its users read every ticket
  of those fields or places, level-1 answers included, wherever it is held, and act on none
  they do not hold (``callcenter.tickets.rules.read_access``). A field and a place listed
  together widen the view (either matches), never narrow it.
* **Focal persons per field** (Đồng Nai: a district sends one person for social security, one
  for health): ``fields`` lists field ids or field groups (``health`` covers every field of
  that group). A ticket's SMS goes to the persons who list its field or group; if none does,
  to those who list no fields; if every person lists other fields, to all of them.
* **Chasing** (``tickets.chasing``; see ``deadlines.chase_due``): off unless configured.
  Escalation (SMS and e-mail to the unit's ``head`` and ``tickets.province_office``) goes
  once per forwarding, with the first chase at least ``escalate_after`` past the deadline.
* **Public disclosure is off by default**: redaction is heuristic, so a tenant (or a
  supervisor, ticket by ticket) opts in.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from callcenter.config.base import MISSING, BaseParser, join_key, type_name
from callcenter.config.model import DEFAULT_FIELDS, FIELD_GROUPS, Field, HotlineConfig, Tenant
from callcenter.numbers import normalise_number, vietnamese_mobile

if TYPE_CHECKING:
    from callcenter.config.model import Tenant

# Tenant keys this module parses (config.py passes them on untouched).
TICKET_KEYS: tuple[str, ...] = ("units", "places", "tickets")

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
UnitKind = Literal["department", "district", "other"]
UNIT_KINDS: tuple[UnitKind, ...] = ("department", "district", "other")
ClockAnchor = Literal["received", "forwarded"]
CLOCK_ANCHORS: tuple[ClockAnchor, ...] = ("received", "forwarded")
# Placeholders an SMS template may use (filled in by callcenter.tickets.rules).
SMS_PLACEHOLDERS: tuple[str, ...] = ("code", "field", "place", "unit", "deadline", "received",
                                     "days_late")
MAX_SMS_TEMPLATE = 480
MAX_UNITS = 500
MAX_PLACES = 5000

_UNIT_ID = re.compile(r"[a-z0-9_-]{1,32}")
_PLACE_ID = re.compile(r"[a-z0-9_.-]{1,64}")
_RULE_NAME = re.compile(r"[a-z0-9_-]{1,32}")
_PREFIX = re.compile(r"[A-Z][A-Z0-9]{0,9}")
_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?")
_HOTLINE = re.compile(r"\+?[0-9]{2,20}")
_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+")
_CLOCK_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
# Vietnamese numbers in national form: mobiles are 10 digits 03/05/07/08/09 (since the 2018
# renumbering); fixed lines 11 digits 02 + area code + subscriber.
_MIN_DURATION = dt.timedelta(minutes=1)
_MAX_DURATION = dt.timedelta(days=60)


class TicketError(ValueError):
    """A refused ticket action: ``id`` is stable (for HTTP and tests), the message is English."""

    def __init__(self, error_id: str, message: str) -> None:
        self.id = error_id
        self.message = message
        super().__init__(f"{error_id}: {message}")


def ticket_tenant(config: HotlineConfig, tenant_id: str) -> Tenant:
    """The tenant a ticket action names; TicketError ``ticket.unknown_tenant`` otherwise."""
    found = config.tenant(tenant_id)
    if found is None:
        known = ", ".join(t.id for t in config.tenants)
        raise TicketError("ticket.unknown_tenant",
                          f"unknown tenant {tenant_id!r}: expected one of {known}")
    return found


# ---- the policy -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FocalPerson:
    """A level-2 unit's contact point (đầu mối): gets the SMS when a ticket reaches the unit."""

    name: str
    phone: str  # national form of a Vietnamese mobile, e.g. 0912345678
    # Field ids or field groups (FIELD_GROUPS) this person answers for; empty: every field.
    fields: tuple[str, ...] = ()
    email: str | None = None

    def covers(self, field: str, group: str | None) -> bool:
        """True if this person lists the field (or its group); False if they list none."""
        return field in self.fields or (group is not None and group in self.fields)


@dataclass(frozen=True)
class Contact:
    """Someone told when a unit is late: a unit's head, the province office (SMS, e-mail)."""

    name: str
    phone: str | None = None  # a Vietnamese mobile (national form): gets the SMS
    email: str | None = None


@dataclass(frozen=True)
class Oversight:
    """What a unit follows read-only: tickets of these fields, or in these places, anywhere."""

    fields: tuple[str, ...] = ()  # field ids, the groups' fields included (what counts)
    places: tuple[str, ...] = ()  # district or commune ids; a district covers its communes
    groups: tuple[str, ...] = ()  # as written (FIELD_GROUPS); their fields are in ``fields``


@dataclass(frozen=True)
class Level2Unit:
    """A level-2 unit (đơn vị cấp 2): a provincial department or a district People's Committee."""

    id: str
    name: str
    kind: UnitKind
    focal_persons: tuple[FocalPerson, ...]
    hotline: str | None = None  # where operators transfer a caller (digits, maybe a leading +)
    places: tuple[str, ...] = ()  # place ids it covers (each is a place-only routing rule)
    oversees: Oversight | None = None  # what it follows read-only (see Oversight)
    email: str | None = None  # the unit's mailbox: gets the chase e-mails
    head: Contact | None = None  # its head (thủ trưởng): told when a ticket is long late

    def focal_for(self, field: str, group: str | None = None) -> tuple[FocalPerson, ...]:
        """The focal persons a ticket of this field (in ``group``) goes to.

        Those who list the field or its group; when nobody does, those who list no fields
        (the unit's generalists); when everybody lists other fields, all of them: a ticket
        never reaches a unit unannounced.
        """
        matching = tuple(p for p in self.focal_persons if p.covers(field, group))
        if matching:
            return matching
        general = tuple(p for p in self.focal_persons if not p.fields)
        return general or self.focal_persons


@dataclass(frozen=True)
class Commune:
    """A commune, ward or township (xã, phường, thị trấn)."""

    id: str
    name: str
    district: str  # the id of its district


@dataclass(frozen=True)
class District:
    """A district-level place (huyện, thị xã, thành phố thuộc tỉnh, quận) with its communes."""

    id: str
    name: str
    communes: tuple[Commune, ...] = ()


@dataclass(frozen=True)
class RoutingRule:
    """Tickets of this field and/or place go to this unit (see ``specificity``)."""

    unit: str
    field: str | None = None
    place: str | None = None  # a district or a commune id

    def describe(self) -> str:
        """The rule as a short text for messages and audit details."""
        parts = [f"field {self.field}"] if self.field else []
        parts += [f"place {self.place}"] if self.place else []
        return " + ".join(parts) + f" -> {self.unit}"


@dataclass(frozen=True)
class DeadlineRule:
    """Tickets matching fields/urgency get these clocks instead of the tenant defaults."""

    name: str
    fields: tuple[str, ...] = ()  # with groups empty too: any field
    urgent: bool | None = None  # None: urgent or not
    resolve: dt.timedelta | None = None  # result due this long after the anchor
    forward: dt.timedelta | None = None  # level 1 must forward within this
    resolve_from: ClockAnchor = "received"
    groups: tuple[str, ...] = ()  # fields of these groups match too (FIELD_GROUPS)

    def matches(self, field: str, urgent: bool, group: str | None = None) -> bool:
        """True if a ticket of this field (in ``group``) and urgency falls under the rule."""
        any_field = not self.fields and not self.groups
        return ((any_field or field in self.fields or (group is not None and group in self.groups))
                and (self.urgent is None or self.urgent == urgent))


WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class ChasingPolicy:
    """Chasing late units (đôn đốc, nhắc nhở các đơn vị chậm trễ); see deadlines.chase_due."""

    at_deadline: bool = True  # SMS the focal persons the moment the deadline passes
    daily_at: dt.time | None = dt.time(7, 30)  # and every working morning after it, local time
    escalate_after: dt.timedelta | None = dt.timedelta(days=2)  # then tell head + office, once
    working_days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0 (datetime.weekday)
    holidays: tuple[dt.date, ...] = ()  # local dates without a morning chase


@dataclass(frozen=True)
class DeadlinePolicy:
    """The tenant's clocks: defaults plus rules for particular fields or urgency."""

    resolve: dt.timedelta = dt.timedelta(hours=24)
    forward: dt.timedelta | None = None
    reminder_before: dt.timedelta | None = dt.timedelta(hours=2)
    rules: tuple[DeadlineRule, ...] = ()


# The seeds' texts (Đồng Nai, Long Thành): the citizen's notice is word for word.
RESOLVED_TEXT = "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!"
FORWARDED_TEXT = ("Tổng đài 1022 chuyển phản ánh {code} ({field}, {place}) đến {unit}. "
                  "Hạn xử lý: {deadline}.")
REMINDER_TEXT = "Tổng đài 1022 nhắc: phản ánh {code} đến hạn xử lý lúc {deadline}."
CHASE_TEXT = ("Tổng đài 1022 đôn đốc: phản ánh {code} đã quá hạn xử lý ({deadline}), "
              "trễ {days_late} ngày. Đề nghị {unit} khẩn trương xử lý.")
# The citizen's receipt for a petition sent through the public web form (intake/webform.py).
WEB_RECEIPT_TEXT = ("Tổng đài 1022 đã tiếp nhận phản ánh, kiến nghị của ông (bà) gửi qua trang "
                    "web, mã số {code}. Xin cảm ơn!")
REOPENED_TEXT = ("Tổng đài 1022: công dân phản hồi phản ánh {code} ({field}, {place}) chưa được "
                 "giải quyết; phản ánh đã được mở lại.")
# Appended to the resolve notice after a space. The notice is UCS-2 anyway (diacritics): its
# 79 characters, the space and these 45 make 125 UTF-16 units, still 2 parts (2 x 67 = 134):
# asking costs no extra SMS. A question longer than 54 characters makes it 3.
SURVEY_QUESTION = "Hài lòng nhắn 1, chưa được giải quyết nhắn 2."
ESCALATION_TEXT = ("Tổng đài 1022 báo cáo: phản ánh {code} giao {unit} đã trễ hạn {days_late} "
                   "ngày (hạn {deadline}), chưa có kết quả. Đề nghị chỉ đạo xử lý.")


@dataclass(frozen=True)
class SmsTemplates:
    """SMS texts; placeholders from SMS_PLACEHOLDERS in braces."""

    resolved: str = RESOLVED_TEXT  # to the citizen when the unit records the result
    forwarded: str = FORWARDED_TEXT  # to the focal persons when a ticket reaches their unit
    reminder: str = REMINDER_TEXT  # to the focal persons before the deadline
    chase: str = CHASE_TEXT  # to the focal persons at the deadline and on mornings after it
    escalation: str = ESCALATION_TEXT  # to the unit's head and the province office
    web_receipt: str = WEB_RECEIPT_TEXT  # to the citizen: the web form recorded the petition
    reopened: str = REOPENED_TEXT  # to the focal persons when the citizen replies "not resolved"


@dataclass(frozen=True)
class SurveyPolicy:
    """The satisfaction question asked in the resolve SMS (see callcenter.tickets.survey)."""

    enabled: bool = False
    question: str = SURVEY_QUESTION  # appended to the resolve notice, after a space
    reply_days: int = 7  # a reply counts this many days after the notice


# "thông tin thuộc lĩnh vực y tế mang tính cấp bách ... không quá 04 tiếng": every field of the
# health group (health, suspected infection, medical goods prices), not the field health alone;
# a tenant's own field ``health`` not marked with the group still counts.
URGENT_HEALTH = DeadlineRule("urgent_health", fields=("health",), urgent=True,
                             resolve=dt.timedelta(hours=4), groups=("health",))


@dataclass(frozen=True)
class TicketPolicy:
    """Everything the ticket core needs to know about one tenant."""

    code_prefix: str = "TD"
    timezone: str = DEFAULT_TIMEZONE
    fields: tuple[Field, ...] = DEFAULT_FIELDS
    units: tuple[Level2Unit, ...] = ()
    districts: tuple[District, ...] = ()
    routing: tuple[RoutingRule, ...] = ()  # explicit rules, then those implied by unit places
    fallback_unit: str | None = None
    deadlines: DeadlinePolicy = field(default_factory=lambda: DeadlinePolicy(
        rules=(URGENT_HEALTH,)))
    sms: SmsTemplates = field(default_factory=SmsTemplates)
    survey: SurveyPolicy = field(default_factory=SurveyPolicy)
    public_by_default: bool = False
    chasing: ChasingPolicy | None = None  # None: late units are not chased
    province_office: Contact | None = None  # told (with the unit's head) when one is long late

    def unit(self, unit_id: str) -> Level2Unit | None:
        """The unit with this id, or None."""
        return next((u for u in self.units if u.id == unit_id), None)

    def field_name(self, field_id: str) -> str | None:
        """The Vietnamese name of a field, or None if the tenant has no such field."""
        return next((f.name for f in self.fields if f.id == field_id), None)

    def field_group(self, field_id: str) -> str | None:
        """The group of a field (see FIELD_GROUPS), or None."""
        return next((f.group for f in self.fields if f.id == field_id), None)

    def place(self, place_id: str) -> tuple[District, Commune | None] | None:
        """The district (and commune, if the id names one) a place id stands for, or None."""
        for d in self.districts:
            if d.id == place_id:
                return d, None
            for c in d.communes:
                if c.id == place_id:
                    return d, c
        return None


# The placeholder ``Tenant.tickets`` was declared with.
TicketSections = TicketPolicy


def _default_prefix(tenant_id: object) -> str:
    letters = re.sub(r"[^A-Z0-9]", "", str(tenant_id).upper()) if isinstance(
        tenant_id, str) else ""
    letters = letters.lstrip("0123456789")[:10]
    return letters or "TD"


def default_policy(fields: tuple[Field, ...] = DEFAULT_FIELDS, timezone: str = DEFAULT_TIMEZONE,
                   tenant_id: str = "") -> TicketPolicy:
    """The policy of a tenant without ticket sections."""
    rules = (URGENT_HEALTH,) if any(URGENT_HEALTH.matches(f.id, True, f.group)
                                    for f in fields) else ()
    return TicketPolicy(code_prefix=_default_prefix(tenant_id), timezone=timezone, fields=fields,
                        deadlines=DeadlinePolicy(rules=rules))


def policy_of(tenant: Tenant) -> TicketPolicy:
    """The tenant's ticket policy (the defaults when its config has no ticket sections)."""
    if tenant.tickets is not None:
        return tenant.tickets
    return default_policy(tenant.fields, tenant.timezone, tenant.id)


# ---- parsing --------------------------------------------------------------------------------
def _duration(p: BaseParser, value: object, key: str) -> dt.timedelta | None:
    hint = 'expected a duration such as "24h", "4h", "60m", "5m" or "1h30m"'
    if isinstance(value, bool) or not isinstance(value, str):
        unit = " (a bare number has no unit)" if isinstance(value, (int, float)) else ""
        p.error(key, value, f"{hint}, got {type_name(value)}{unit}")
        return None
    m = _DURATION.fullmatch(value.replace(" ", "").lower())
    if m is None or not any(m.groups()):
        p.error(key, value, hint)
        return None
    d, h, mi = (int(g or 0) for g in m.groups())
    result = dt.timedelta(days=d, hours=h, minutes=mi)
    if not _MIN_DURATION <= result <= _MAX_DURATION:
        p.error(key, value, f"{hint}, between 1 minute and 60 days")
        return None
    return result


def _phone_text(p: BaseParser, value: object, key: str) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        p.error(key, value, 'expected a quoted phone number such as "0912345678": YAML reads '
                            "unquoted digits as an integer and drops the leading 0")
        return None
    return p.text(value, key, max_len=32)


def _email(p: BaseParser, value: object, key: str) -> str | None:
    s = p.text(value, key, max_len=254)
    if s is not None and not _EMAIL.fullmatch(s.strip()):
        p.error(key, value, "expected one e-mail address such as \"ubnd@dongnai.gov.vn\"")
        return None
    return s.strip() if s is not None else None


def _fields_list(p: BaseParser, value: object, key: str,
                 field_ids: Collection[str]) -> tuple[str, ...] | None:
    """Field ids or field groups a focal person answers for."""
    items = p.list_(value, key)
    if items is None:
        return None
    known = sorted(set(field_ids) | set(FIELD_GROUPS))
    result: list[str] = []
    for i, item in enumerate(items):
        fid = p.text(item, join_key(key, i), max_len=32)
        if fid is None:
            return None
        if fid not in known:
            p.error(join_key(key, i), fid, "expected a field id of the tenant or a field group; "
                                           + _expected(fid, known, "fields"))
            return None
        if fid not in result:
            result.append(fid)
    return tuple(result)


def _focal_person(p: BaseParser, value: object, key: str,
                  field_ids: Collection[str] = ()) -> FocalPerson | None:
    m = p.mapping(value, key, ("name", "phone", "fields", "email"), ("name", "phone"))
    if m is None:
        return None
    before = len(p.errors)
    name = p.text(m["name"], join_key(key, "name"), max_len=100) if "name" in m else None
    phone: str | None = None
    if "phone" in m:
        raw = _phone_text(p, m["phone"], join_key(key, "phone"))
        if raw is not None:
            phone = vietnamese_mobile(raw)
            if phone is None:
                p.error(join_key(key, "phone"), raw,
                        "expected a Vietnamese mobile number (10 digits 03/05/07/08/09..., or "
                        "+84 ...): focal persons are sent SMS")
    fields: tuple[str, ...] | None = ()
    if m.get("fields") is not None:
        fields = _fields_list(p, m["fields"], join_key(key, "fields"), field_ids)
    email = _email(p, m["email"], join_key(key, "email")) if m.get("email") is not None else None
    if name is None or phone is None or fields is None or len(p.errors) > before:
        return None
    return FocalPerson(name.strip(), phone, fields, email)


def _contact(p: BaseParser, value: object, key: str, what: str) -> Contact | None:
    """``{name, phone, email}``: phone (a mobile, for SMS) and/or e-mail."""
    m = p.mapping(value, key, ("name", "phone", "email"), ("name",))
    if m is None:
        return None
    before = len(p.errors)
    name = p.text(m["name"], join_key(key, "name"), max_len=200) if "name" in m else None
    phone: str | None = None
    if m.get("phone") is not None:
        raw = _phone_text(p, m["phone"], join_key(key, "phone"))
        if raw is not None:
            phone = vietnamese_mobile(raw)
            if phone is None:
                p.error(join_key(key, "phone"), raw,
                        f"expected a Vietnamese mobile number (10 digits 03/05/07/08/09...): "
                        f"{what} is sent SMS")
    email = _email(p, m["email"], join_key(key, "email")) if m.get("email") is not None else None
    if len(p.errors) > before or name is None:
        return None
    if phone is None and email is None:
        p.error(key, value, f"expected a phone and/or an email: {what} is told by SMS and "
                            "e-mail when a unit is long late")
        return None
    return Contact(name.strip(), phone, email)


def _id(p: BaseParser, value: object, key: str, pattern: re.Pattern[str], what: str) -> str | None:
    s = p.text(value, key, max_len=64)
    if s is not None and not pattern.fullmatch(s):
        p.error(key, value, what)
        return None
    return s


def _unit(p: BaseParser, value: object, key: str,
          field_ids: Collection[str] = ()) -> Level2Unit | None:
    keys = ("id", "name", "kind", "focal_persons", "hotline", "places", "oversees", "email",
            "head")
    m = p.mapping(value, key, keys, ("id", "name", "kind", "focal_persons"))
    if m is None:
        return None
    uid = (_id(p, m["id"], join_key(key, "id"), _UNIT_ID,
               "expected 1-32 characters from a-z 0-9 _ -") if "id" in m else None)
    name = p.text(m["name"], join_key(key, "name")) if "name" in m else None
    kind: UnitKind | None = None
    if "kind" in m:
        kind = next((k for k in UNIT_KINDS if k == m["kind"]), None)
        if kind is None:
            p.error(join_key(key, "kind"), m["kind"], f"expected one of: {', '.join(UNIT_KINDS)}")
    persons: list[FocalPerson] = []
    persons_ok = "focal_persons" in m
    if "focal_persons" in m:
        pk = join_key(key, "focal_persons")
        items = p.list_(m["focal_persons"], pk)
        persons_ok = items is not None
        seen: dict[str, int] = {}
        for i, item in enumerate(items or []):
            person = _focal_person(p, item, join_key(pk, i), field_ids)
            if person is None:
                persons_ok = False
                continue
            if person.phone in seen:
                p.error(join_key(join_key(pk, i), "phone"), person.phone,
                        f"expected a phone unique in the unit; focal_persons[{seen[person.phone]}] "
                        "has it too (the SMS would go twice)")
                persons_ok = False
                continue
            seen[person.phone] = i
            persons.append(person)
    hotline: str | None = None
    hotline_ok = True
    if m.get("hotline") is not None:
        raw = _phone_text(p, m["hotline"], join_key(key, "hotline"))
        hotline = normalise_number(raw) if raw is not None else None
        if hotline is not None and not _HOTLINE.fullmatch(hotline):
            p.error(join_key(key, "hotline"), raw,
                    "expected a number to transfer calls to: 2-20 digits, maybe a leading +, "
                    "spaces, dots or dashes")
            hotline = None
        hotline_ok = hotline is not None
    places: list[str] = []
    places_ok = True
    if m.get("places") is not None:
        plk = join_key(key, "places")
        items = p.list_(m["places"], plk, non_empty=False)
        places_ok = items is not None
        for i, item in enumerate(items or []):
            pid = p.text(item, join_key(plk, i), max_len=64)
            if pid is None:
                places_ok = False
            elif pid in places:
                p.error(join_key(plk, i), pid, "expected each place once")
                places_ok = False
            else:
                places.append(pid)
    oversees: Oversight | None = None
    oversees_ok = True
    if m.get("oversees") is not None:
        oversees = _oversees(p, m["oversees"], join_key(key, "oversees"))
        oversees_ok = oversees is not None
    before = len(p.errors)
    email = _email(p, m["email"], join_key(key, "email")) if m.get("email") is not None else None
    head = (_contact(p, m["head"], join_key(key, "head"), "the unit's head")
            if m.get("head") is not None else None)
    contacts_ok = len(p.errors) == before
    if (uid is None or name is None or kind is None or not persons_ok or not hotline_ok
            or not places_ok or not oversees_ok or not contacts_ok):
        return None
    return Level2Unit(uid, name.strip(), kind, tuple(persons), hotline, tuple(places),
                      oversees=oversees, email=email, head=head)


def _id_list(p: BaseParser, value: object, key: str, max_len: int) -> list[str] | None:
    """A list of ids, each once (whether they exist is checked with the whole tenant)."""
    items = p.list_(value, key, non_empty=False) if value is not None else []
    if items is None:
        return None
    found: list[str] = []
    ok = True
    for i, item in enumerate(items):
        s = p.text(item, join_key(key, i), max_len=max_len)
        if s is None:
            ok = False
        elif s in found:
            p.error(join_key(key, i), s, "expected each id once")
            ok = False
        else:
            found.append(s)
    return found if ok else None


def _oversees(p: BaseParser, value: object, key: str) -> Oversight | None:
    """``oversees: {fields, groups, places}`` as written; groups and ids are checked later."""
    m = p.mapping(value, key, ("fields", "groups", "places"))
    if m is None:
        return None
    fields = _id_list(p, m.get("fields"), join_key(key, "fields"), 32)
    groups = _id_list(p, m.get("groups"), join_key(key, "groups"), 32)
    places = _id_list(p, m.get("places"), join_key(key, "places"), 64)
    if fields is None or groups is None or places is None:
        return None
    if not (fields or groups or places):
        p.error(key, value, "expected fields, groups and/or places the unit follows")
        return None
    # The groups' fields are added once the tenant's fields are known (_resolve_oversight).
    return Oversight(tuple(fields), tuple(places), tuple(groups))


def _units(p: BaseParser, value: object, key: str,
           field_ids: Collection[str] = ()) -> tuple[Level2Unit, ...] | None:
    items = p.list_(value, key, non_empty=False)
    if items is None:
        return None
    if len(items) > MAX_UNITS:
        p.error(key, f"{len(items)} units", f"expected at most {MAX_UNITS} units")
        return None
    result: list[Level2Unit] = []
    seen: dict[str, int] = {}
    ok = True
    for i, item in enumerate(items):
        unit = _unit(p, item, join_key(key, i), field_ids)
        if unit is None:
            ok = False
            continue
        if unit.id in seen:
            p.error(join_key(join_key(key, i), "id"), unit.id,
                    f"expected a unique unit id; {key}[{seen[unit.id]}] has it too")
            ok = False
            continue
        seen[unit.id] = i
        result.append(unit)
    return tuple(result) if ok else None


def _places(p: BaseParser, value: object, key: str) -> tuple[District, ...] | None:
    items = p.list_(value, key, non_empty=False)
    if items is None:
        return None
    result: list[District] = []
    seen: dict[str, str] = {}  # place id -> key where it was first given
    ok = True
    count = 0
    id_rule = "expected 1-64 characters from a-z 0-9 _ . -"

    def unique(pid: str, k: str) -> bool:
        if pid in seen:
            p.error(k, pid, f"expected a place id unique over districts and communes; "
                            f"{seen[pid]} has it too")
            return False
        seen[pid] = k
        return True

    for i, item in enumerate(items):
        dk = join_key(key, i)
        m = p.mapping(item, dk, ("id", "name", "communes"), ("id", "name"))
        if m is None:
            ok = False
            continue
        did = _id(p, m["id"], join_key(dk, "id"), _PLACE_ID, id_rule) if "id" in m else None
        dname = p.text(m["name"], join_key(dk, "name")) if "name" in m else None
        if did is not None and not unique(did, join_key(dk, "id")):
            did = None
        communes: list[Commune] = []
        if m.get("communes") is not None:
            ck = join_key(dk, "communes")
            raw = p.list_(m["communes"], ck, non_empty=False)
            if raw is None:
                ok = False
            for j, c in enumerate(raw or []):
                cjk = join_key(ck, j)
                cm = p.mapping(c, cjk, ("id", "name"), ("id", "name"))
                if cm is None:
                    ok = False
                    continue
                cid = (_id(p, cm["id"], join_key(cjk, "id"), _PLACE_ID, id_rule)
                       if "id" in cm else None)
                cname = p.text(cm["name"], join_key(cjk, "name")) if "name" in cm else None
                if cid is not None and not unique(cid, join_key(cjk, "id")):
                    cid = None
                if cid is None or cname is None or did is None:
                    ok = False
                    continue
                communes.append(Commune(cid, cname.strip(), did))
        count += 1 + len(communes)
        if did is None or dname is None:
            ok = False
            continue
        result.append(District(did, dname.strip(), tuple(communes)))
    if count > MAX_PLACES:
        p.error(key, f"{count} places", f"expected at most {MAX_PLACES} districts and communes")
        return None
    return tuple(result) if ok else None


def _template(p: BaseParser, value: object, key: str) -> str | None:
    s = p.text(value, key, max_len=MAX_SMS_TEMPLATE)
    if s is None:
        return None
    allowed = ", ".join("{" + n + "}" for n in SMS_PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(s))
    except ValueError as exc:
        p.error(key, value, f"expected well-formed {{placeholders}} ({exc}); write a literal "
                            "brace twice: {{ or }}")
        return None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in SMS_PLACEHOLDERS or spec or conversion:
            p.error(key, value, f"unknown placeholder {{{name}}}; expected only: {allowed}")
            return None
    return s


def _sms(p: BaseParser, value: object, key: str) -> SmsTemplates | None:
    m = p.mapping(value, key, ("resolved", "forwarded", "reminder", "chase", "escalation",
                               "web_receipt", "reopened"))
    if m is None:
        return None
    d = SmsTemplates()
    got = {k: _template(p, m[k], join_key(key, k)) for k in m}
    if any(v is None for v in got.values()):
        return None
    return SmsTemplates(resolved=got.get("resolved") or d.resolved,
                        forwarded=got.get("forwarded") or d.forwarded,
                        reminder=got.get("reminder") or d.reminder,
                        chase=got.get("chase") or d.chase,
                        escalation=got.get("escalation") or d.escalation,
                        web_receipt=got.get("web_receipt") or d.web_receipt,
                        reopened=got.get("reopened") or d.reopened)


MAX_REPLY_DAYS = 60


def _survey(p: BaseParser, value: object, key: str) -> SurveyPolicy | None:
    m = p.mapping(value, key, ("enabled", "question", "reply_days"))
    if m is None:
        return None
    before = len(p.errors)
    d = SurveyPolicy()
    enabled = True
    if "enabled" in m:
        if isinstance(m["enabled"], bool):
            enabled = m["enabled"]
        else:
            p.error(join_key(key, "enabled"), m["enabled"], "expected true or false")
    question = d.question
    if m.get("question") is not None:
        # No placeholders: the question is the same for every ticket.
        got = p.text(m["question"], join_key(key, "question"), max_len=160)
        if got is not None and ("{" in got or "}" in got):
            p.error(join_key(key, "question"), got, "expected plain text without braces")
        elif got is not None:
            question = got.strip()
    days = d.reply_days
    if "reply_days" in m:
        raw = m["reply_days"]
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_REPLY_DAYS:
            p.error(join_key(key, "reply_days"), raw,
                    f"expected a whole number of days, 1..{MAX_REPLY_DAYS}")
        else:
            days = raw
    if len(p.errors) > before:
        return None
    return SurveyPolicy(enabled, question, days)


def _deadline_rule(p: BaseParser, value: object, key: str,
                   field_ids: frozenset[str]) -> DeadlineRule | None:
    m = p.mapping(value, key, ("name", "fields", "groups", "urgent", "resolve", "forward",
                               "from"), ("name",))
    if m is None:
        return None
    before = len(p.errors)
    name = (_id(p, m["name"], join_key(key, "name"), _RULE_NAME,
                "expected 1-32 characters from a-z 0-9 _ -") if "name" in m else None)
    label = f"deadline rule {name!r}" if name else "this deadline rule"
    fields: list[str] = []
    if m.get("fields") is not None:
        fk = join_key(key, "fields")
        for i, f in enumerate(p.list_(m["fields"], fk) or []):
            fid = p.text(f, join_key(fk, i), max_len=32)
            if fid is not None and fid not in field_ids:
                p.error(join_key(fk, i), fid, f"{label} names an unknown field; expected one "
                                              f"of: {', '.join(sorted(field_ids))}")
            elif fid is not None:
                fields.append(fid)
    groups: list[str] = []
    if m.get("groups") is not None:
        gk = join_key(key, "groups")
        for i, g in enumerate(p.list_(m["groups"], gk) or []):
            group = p.choice(g, join_key(gk, i), FIELD_GROUPS)
            if group is not None:
                groups.append(group)
    urgent: bool | None = None
    if m.get("urgent") is not None:
        if isinstance(m["urgent"], bool):
            urgent = m["urgent"]
        else:
            p.error(join_key(key, "urgent"), m["urgent"], "expected true or false")
    resolve = (_duration(p, m["resolve"], join_key(key, "resolve"))
               if m.get("resolve") is not None else None)
    forward = (_duration(p, m["forward"], join_key(key, "forward"))
               if m.get("forward") is not None else None)
    anchor: ClockAnchor = "received"
    if "from" in m:
        found = next((a for a in CLOCK_ANCHORS if a == m["from"]), None)
        if found is None:
            p.error(join_key(key, "from"), m["from"],
                    f"expected one of: {', '.join(CLOCK_ANCHORS)}")
        else:
            anchor = found
    if len(p.errors) > before or name is None:
        return None
    if m.get("resolve") is None and m.get("forward") is None:
        p.error(key, value, f"{label} sets no clock; expected resolve and/or forward")
        return None
    if "from" in m and m.get("resolve") is None:
        p.error(join_key(key, "from"), m["from"],
                f"{label}: from applies to the resolve clock, which the rule does not set")
        return None
    return DeadlineRule(name, tuple(fields), urgent, resolve, forward, anchor, tuple(groups))


def _deadlines(p: BaseParser, value: object, key: str,
               fields: tuple[Field, ...]) -> DeadlinePolicy | None:
    m = p.mapping(value, key, ("resolve", "forward", "reminder_before", "rules"))
    if m is None:
        return None
    before = len(p.errors)
    d = default_policy(fields).deadlines
    resolve = (_duration(p, m["resolve"], join_key(key, "resolve"))
               if "resolve" in m else d.resolve)
    forward = (_duration(p, m["forward"], join_key(key, "forward"))
               if m.get("forward") is not None else None)
    reminder = d.reminder_before
    if "reminder_before" in m:  # null switches reminders off
        reminder = (_duration(p, m["reminder_before"], join_key(key, "reminder_before"))
                    if m["reminder_before"] is not None else None)
    rules = d.rules
    if "rules" in m:
        rk = join_key(key, "rules")
        items = p.list_(m["rules"], rk, non_empty=False) if m["rules"] is not None else []
        parsed: list[DeadlineRule] = []
        seen: dict[str, int] = {}
        field_ids = frozenset(f.id for f in fields)
        for i, item in enumerate(items or []):
            rule = _deadline_rule(p, item, join_key(rk, i), field_ids)
            if rule is None:
                continue
            if rule.name in seen:
                p.error(join_key(join_key(rk, i), "name"), rule.name,
                        f"expected a unique rule name; {rk}[{seen[rule.name]}] has it too")
                continue
            seen[rule.name] = i
            parsed.append(rule)
        rules = tuple(parsed)
    if len(p.errors) > before or resolve is None:
        return None
    return DeadlinePolicy(resolve=resolve, forward=forward, reminder_before=reminder,
                          rules=rules)


def _chasing(p: BaseParser, value: object, key: str) -> ChasingPolicy | None:
    keys = ("at_deadline", "daily_at", "escalate_after", "working_days", "holidays")
    m = p.mapping(value, key, keys)
    if m is None:
        return None
    before = len(p.errors)
    d = ChasingPolicy()
    at_deadline = d.at_deadline
    if "at_deadline" in m:
        if isinstance(m["at_deadline"], bool):
            at_deadline = m["at_deadline"]
        else:
            p.error(join_key(key, "at_deadline"), m["at_deadline"], "expected true or false")
    daily_at = d.daily_at
    if "daily_at" in m:  # null: no morning chases
        daily_at = None
        raw = m["daily_at"]
        if raw is not None:
            match = _CLOCK_TIME.fullmatch(raw.strip()) if isinstance(raw, str) else None
            if match is None:
                p.error(join_key(key, "daily_at"), raw,
                        'expected a quoted local time "HH:MM" such as "07:30" (null: no '
                        "morning chases)")
            else:
                daily_at = dt.time(int(match[1]), int(match[2]))
    escalate = d.escalate_after
    if "escalate_after" in m:  # null: never escalate
        escalate = (_duration(p, m["escalate_after"], join_key(key, "escalate_after"))
                    if m["escalate_after"] is not None else None)
    working = d.working_days
    if m.get("working_days") is not None:
        wk = join_key(key, "working_days")
        days: list[int] = []
        for i, item in enumerate(p.list_(m["working_days"], wk) or []):
            day = p.choice(item, join_key(wk, i), WEEKDAYS)
            if day is not None and WEEKDAYS.index(day) not in days:
                days.append(WEEKDAYS.index(day))
        working = tuple(sorted(days))
    holidays: list[dt.date] = []
    if m.get("holidays") is not None:
        hk = join_key(key, "holidays")
        for i, item in enumerate(p.list_(m["holidays"], hk, non_empty=False) or []):
            try:
                if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
                    holidays.append(item)
                elif isinstance(item, str):
                    holidays.append(dt.date.fromisoformat(item.strip()))
                else:
                    raise ValueError
            except ValueError:
                p.error(join_key(hk, i), item, 'expected a date "YYYY-MM-DD"')
    if len(p.errors) > before:
        return None
    if not at_deadline and daily_at is None and escalate is None:
        p.error(key, value, "chases nothing: expected at_deadline: true, a daily_at time or "
                            "an escalate_after duration (leave chasing out to switch it off)")
        return None
    return ChasingPolicy(at_deadline, daily_at, escalate, working, tuple(sorted(set(holidays))))


def _expected(value: str, choices: Collection[str], what: str, *, listed: bool = True) -> str:
    """'did you mean ...?' when a choice is close, else the choices (or what they are)."""
    close = difflib.get_close_matches(value, list(choices), n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    if not listed:
        return f"expected {what}"
    return f"expected one of: {', '.join(sorted(choices)) or f'(no {what})'}"


def _written_ids(value: object) -> dict[str, str]:
    """Ids as written in a list of mappings (and their communes): id -> district id.

    References are checked against these, so that one bad unit or commune does not also turn
    every rule naming it into an "unknown" error.
    """
    found: dict[str, str] = {}
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            found.setdefault(item["id"], item["id"])
            communes = item.get("communes")
            for c in communes if isinstance(communes, list) else []:
                if isinstance(c, dict) and isinstance(c.get("id"), str):
                    found.setdefault(c["id"], item["id"])
    return found


def _routing(p: BaseParser, value: object, key: str, field_ids: frozenset[str],
             places: Collection[str], units: Collection[str]) -> list[RoutingRule]:
    items = p.list_(value, key, non_empty=False) if value is not None else []
    result: list[RoutingRule] = []
    for i, item in enumerate(items or []):
        rk = join_key(key, i)
        m = p.mapping(item, rk, ("field", "place", "unit"), ("unit",))
        if m is None:
            continue
        before = len(p.errors)
        shown = {k: m[k] for k in ("field", "place", "unit") if k in m}
        label = f"routing rule {i} {shown}"
        fid = p.text(m["field"], join_key(rk, "field"), max_len=32) if "field" in m else None
        pid = p.text(m["place"], join_key(rk, "place"), max_len=64) if "place" in m else None
        uid = p.text(m["unit"], join_key(rk, "unit"), max_len=32) if "unit" in m else None
        if fid is not None and fid not in field_ids:
            p.error(join_key(rk, "field"), fid, f"{label} names an unknown field; "
                                                f"{_expected(fid, field_ids, 'fields')}")
        if pid is not None and pid not in places:
            p.error(join_key(rk, "place"), pid,
                    f"{label} names an unknown place; "
                    + _expected(pid, places, "a district or commune id from places",
                                listed=False))
        if uid is not None and uid not in units:
            p.error(join_key(rk, "unit"), uid, f"{label} names an unknown unit; "
                                               f"{_expected(uid, units, 'units')}")
        if "field" not in m and "place" not in m:
            p.error(rk, item, "a routing rule needs a field, a place or both (the catch-all is "
                              "tickets.fallback_unit)")
        if len(p.errors) == before and uid is not None:
            result.append(RoutingRule(uid, fid, pid))
    return result


def _resolve_oversight(p: BaseParser, units: tuple[Level2Unit, ...], key: str,
                       fields: tuple[Field, ...],
                       place_ids: Collection[str]) -> tuple[Level2Unit, ...]:
    """Units with their ``oversees`` checked against the tenant: groups become their fields,
    an unknown field, group or place is an error naming its key."""
    field_ids = [f.id for f in fields]
    result: list[Level2Unit] = []
    for i, u in enumerate(units):
        if u.oversees is None:
            result.append(u)
            continue
        ok_key = join_key(join_key(key, i), "oversees")
        label = f"unit {u.id!r} oversees"
        chosen: list[str] = []
        for j, fid in enumerate(u.oversees.fields):
            if fid not in field_ids:
                p.error(join_key(join_key(ok_key, "fields"), j), fid,
                        f"{label} an unknown field; {_expected(fid, field_ids, 'fields')}")
            elif fid not in chosen:
                chosen.append(fid)
        for j, g in enumerate(u.oversees.groups):
            members = [f.id for f in fields if f.group == g]
            if g not in FIELD_GROUPS or not members:
                p.error(join_key(join_key(ok_key, "groups"), j), g,
                        f"{label} an unknown group (or one no field of the tenant has); "
                        f"expected one of: {', '.join(FIELD_GROUPS)}")
            chosen += [f for f in members if f not in chosen]
        for j, pid in enumerate(u.oversees.places):
            if pid not in place_ids:
                p.error(join_key(join_key(ok_key, "places"), j), pid,
                        f"{label} an unknown place; "
                        + _expected(pid, place_ids, "a district or commune id from places",
                                    listed=False))
        result.append(replace(u, oversees=replace(u.oversees, fields=tuple(chosen))))
    return tuple(result)


def parse_ticket_sections(p: BaseParser, m: Mapping[str, object], key: str,
                          fields: tuple[Field, ...]) -> TicketPolicy | None:
    """Validate the tenant's ``units``, ``places`` and ``tickets`` keys; errors go to ``p``."""
    before = len(p.errors)
    tz = m.get("timezone")
    timezone = tz if isinstance(tz, str) else DEFAULT_TIMEZONE
    tid = m.get("id")
    base = default_policy(fields, timezone, tid if isinstance(tid, str) else "")
    districts: tuple[District, ...] = ()
    if m.get("places") is not None:
        districts = _places(p, m["places"], join_key(key, "places")) or ()
    place_ids = _written_ids(m.get("places"))  # for references (see _written_ids)
    units: tuple[Level2Unit, ...] = ()
    if m.get("units") is not None:
        units = _units(p, m["units"], join_key(key, "units"),
                       frozenset(f.id for f in fields)) or ()
    unit_ids = sorted(_written_ids(m.get("units")))
    field_ids = frozenset(f.id for f in fields)
    # A unit's places stand for place-only rules; they must name known places.
    implied: list[tuple[RoutingRule, str]] = []
    for i, u in enumerate(units):
        for j, pid in enumerate(u.places):
            pk = join_key(join_key(join_key(key, "units"), i), "places")
            if pid not in place_ids:
                p.error(join_key(pk, j), pid, f"unit {u.id!r} covers an unknown place; expected "
                                              "a district or commune id from places")
            else:
                implied.append((RoutingRule(u.id, None, pid), join_key(pk, j)))

    units = _resolve_oversight(p, units, join_key(key, "units"), fields, place_ids)

    t: dict[str, object] = {}
    tk = join_key(key, "tickets")
    if m.get("tickets") is not None:
        t = p.mapping(m["tickets"], tk, ("code_prefix", "fallback_unit", "routing", "deadlines",
                                         "sms", "public_by_default", "chasing",
                                         "province_office", "survey")) or {}
    prefix = base.code_prefix
    if "code_prefix" in t:
        got = p.text(t["code_prefix"], join_key(tk, "code_prefix"), max_len=10)
        if got is not None and not _PREFIX.fullmatch(got):
            p.error(join_key(tk, "code_prefix"), got,
                    "expected 1-10 characters A-Z 0-9 starting with a letter, such as DN")
        elif got is not None:
            prefix = got
    explicit = _routing(p, t.get("routing"), join_key(tk, "routing"), field_ids, place_ids,
                        unit_ids)
    # The same (field, place) twice would leave the winner to list order: refuse it.
    where: dict[tuple[str | None, str | None], str] = {}
    for i, rule in enumerate(explicit):
        where.setdefault((rule.field, rule.place), join_key(join_key(tk, "routing"), i))
    for rule, k in implied:
        pair = (rule.field, rule.place)
        if pair in where:
            p.error(k, rule.place, f"place {rule.place!r} is already routed by {where[pair]}; "
                                   "expected one unit per place")
        else:
            where[pair] = k
    seen_pairs: dict[tuple[str | None, str | None], int] = {}
    for i, rule in enumerate(explicit):
        pair = (rule.field, rule.place)
        if pair in seen_pairs:
            p.error(join_key(join_key(tk, "routing"), i), rule.describe(),
                    f"routing rule {i} has the same field and place as routing rule "
                    f"{seen_pairs[pair]}; expected one unit per (field, place)")
        seen_pairs.setdefault(pair, i)
    fallback: str | None = None
    if t.get("fallback_unit") is not None:
        fallback = p.text(t["fallback_unit"], join_key(tk, "fallback_unit"), max_len=32)
        if fallback is not None and fallback not in unit_ids:
            p.error(join_key(tk, "fallback_unit"), fallback,
                    f"expected the id of a unit in units; {_expected(fallback, unit_ids, 'units')}")
    elif unit_ids:
        p.error(join_key(tk, "fallback_unit"), MISSING,
                "required once units are given: the unit tickets go to when no rule matches")
    deadlines = base.deadlines
    if t.get("deadlines") is not None:
        deadlines = _deadlines(p, t["deadlines"], join_key(tk, "deadlines"), fields) or deadlines
    sms = base.sms
    if t.get("sms") is not None:
        sms = _sms(p, t["sms"], join_key(tk, "sms")) or sms
    survey = base.survey
    if t.get("survey") is not None:
        survey = _survey(p, t["survey"], join_key(tk, "survey")) or survey
    public = base.public_by_default
    if "public_by_default" in t:
        if isinstance(t["public_by_default"], bool):
            public = t["public_by_default"]
        else:
            p.error(join_key(tk, "public_by_default"), t["public_by_default"],
                    "expected true or false")
    chasing: ChasingPolicy | None = None
    if t.get("chasing") is not None:
        chasing = _chasing(p, t["chasing"], join_key(tk, "chasing"))
    office: Contact | None = None
    if t.get("province_office") is not None:
        office = _contact(p, t["province_office"], join_key(tk, "province_office"),
                          "the province office")
    if len(p.errors) > before:
        return None
    return TicketPolicy(code_prefix=prefix, timezone=timezone, fields=fields, units=units,
                        districts=districts,
                        routing=tuple(explicit) + tuple(r for r, _ in implied),
                        fallback_unit=fallback, deadlines=deadlines, sms=sms,
                        survey=survey, public_by_default=public, chasing=chasing,
                        province_office=office)
