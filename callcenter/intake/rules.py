"""The public petition form's rules: what a valid petition is, the signed form token, the spam
checks, and the texts citizens read. Pure: no I/O, the time is a parameter.

* **Validation** (``validate``): every field is checked and every error is kept, keyed by the
  form field's name, in Vietnamese, so the page shows each next to its field with the values
  as typed. The phone must be a Vietnamese *mobile* number: the receipt comes by SMS.
  The e-mail (optional) has no ticket column: it is appended to the content as
  ``E-mail liên hệ: …`` (the public feed masks e-mail addresses like any other).
* **The form token** (``sign_token``/``read_token``): ``<issued unix seconds>.<HMAC>`` over the
  tenant and the time, keyed with the installation's secret. It is the form's CSRF token and
  its start time at once: a token nobody signed (forged, another tenant's, altered time) is
  refused, and so is one older than ``TOKEN_MAX_AGE`` (the page is served again with a new
  one and the values kept).
* **Spam** (``screen``): a filled honeypot field (hidden from people, filled by form robots)
  is refused quietly — the answer looks like a thank-you and no ticket is made; a form sent
  back sooner than the tenant's ``min_fill_seconds`` after it was served is refused with a
  request to send it again (the token stays: a person just presses the button again).
* **Rate limits** are counted by the adapter (``webform.py``: Redis); here only their keys
  (``limit_key``: a keyed hash, so Redis holds no phone numbers or addresses) and windows.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

from callcenter.console.listing import UPLOAD_CATEGORY, size_text
from callcenter.intake.policy import WebFormPolicy
from callcenter.numbers import vietnamese_mobile
from callcenter.tickets.config import TicketPolicy

MAX_FILES: Final = 5
FILE_CATEGORIES: Final = ("image", "video")  # photos and videos ("hình ảnh, đoạn phim")
ACCEPTED_FILES_TEXT: Final = "ảnh JPEG, PNG, WEBP, HEIC hoặc video MP4, MOV, 3GP"
# The file picker's hint: phones then offer the camera and the gallery. The server judges the
# bytes (a GIF or an AVI picked anyway is refused by name).
ACCEPT_ATTRIBUTE: Final = "image/*,video/*"
MAX_NAME: Final = 200
MIN_CONTENT: Final = 10
MAX_CONTENT: Final = 9_000  # the ticket takes 10 000: room for the e-mail line
MAX_EMAIL: Final = 254
TOKEN_MAX_AGE: Final = dt.timedelta(hours=12)  # a form left open all day still works
CLOCK_SKEW: Final = dt.timedelta(seconds=60)  # app instances' clocks may differ a little
ADDRESS_WINDOW: Final = dt.timedelta(hours=1)
PHONE_WINDOW: Final = dt.timedelta(days=1)

# The form's field names (the template uses the same).
HONEYPOT: Final = "website"
TOKEN: Final = "form_token"
FIELDS: Final = ("name", "phone", "email", "field", "place", "content")

_EMAIL = re.compile(r"[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"'.]{2,}")
_TOKEN = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{20,64})")
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class FormValues:
    """What the citizen typed, as sent (shown again when the page comes back)."""

    name: str = ""
    phone: str = ""
    email: str = ""
    field: str = ""
    place: str = ""
    content: str = ""

    @classmethod
    def of(cls, raw: dict[str, str]) -> FormValues:
        """The form's values from the posted fields (missing ones empty)."""
        return cls(**{k: _clean(raw.get(k, ""), keep_lines=(k == "content")) for k in FIELDS})


@dataclass(frozen=True)
class Petition:
    """A valid petition, ready for ``TicketService.open_with_files`` (channel ``web``)."""

    citizen_name: str
    citizen_phone: str  # national form of a mobile number: the receipt SMS goes there
    field: str
    place: str | None
    content: str  # with the e-mail line when one was given


def _clean(text: str, *, keep_lines: bool) -> str:
    """NFC, no control characters (newlines kept in the content), outer spaces trimmed."""
    text = unicodedata.normalize("NFC", text or "").replace("\r\n", "\n").replace("\r", "\n")
    keep = {"\n", "\t"} if keep_lines else set()
    text = "".join(ch for ch in text if ch in keep or unicodedata.category(ch)[0] != "C")
    if not keep_lines:
        text = _SPACES.sub(" ", text)
    return text.strip()


def validate(values: FormValues, tickets: TicketPolicy) -> tuple[Petition | None, dict[str, str]]:
    """The petition, or None and an error (Vietnamese) per offending field."""
    errors: dict[str, str] = {}
    if not values.name:
        errors["name"] = "Vui lòng nhập họ và tên."
    elif len(values.name) > MAX_NAME:
        errors["name"] = f"Họ và tên dài quá {MAX_NAME} ký tự."
    phone = vietnamese_mobile(values.phone) if values.phone else None
    if not values.phone:
        errors["phone"] = "Vui lòng nhập số điện thoại di động để nhận tin nhắn xác nhận."
    elif phone is None:
        errors["phone"] = ("Số điện thoại di động không hợp lệ (ví dụ 0912 345 678): mã phản "
                           "ánh được gửi qua tin nhắn đến số này.")
    if values.email and (len(values.email) > MAX_EMAIL or not _EMAIL.fullmatch(values.email)):
        errors["email"] = "Địa chỉ e-mail không hợp lệ (ví dụ ten@example.com); có thể để trống."
    if not values.field:
        errors["field"] = "Vui lòng chọn lĩnh vực."
    elif tickets.field_name(values.field) is None:
        errors["field"] = "Lĩnh vực không có trong danh sách; vui lòng chọn lại."
    place: str | None = None
    if tickets.districts:
        if not values.place:
            errors["place"] = "Vui lòng chọn nơi xảy ra sự việc (huyện, xã)."
        elif tickets.place(values.place) is None:
            errors["place"] = "Địa bàn không có trong danh sách; vui lòng chọn lại."
        else:
            place = values.place
    if len(values.content) < MIN_CONTENT:
        errors["content"] = (f"Vui lòng trình bày nội dung phản ánh, kiến nghị (ít nhất "
                             f"{MIN_CONTENT} ký tự).")
    elif len(values.content) > MAX_CONTENT:
        errors["content"] = (f"Nội dung dài {len(values.content)} ký tự; tối đa {MAX_CONTENT} "
                             "ký tự.")
    if errors or phone is None:
        return None, errors
    content = values.content
    if values.email:
        content += f"\n\nE-mail liên hệ: {values.email}"
    return Petition(values.name, phone, values.field, place, content), {}


@dataclass(frozen=True)
class PlaceGroup:
    """A district and its communes: one ``<optgroup>`` of the place list."""

    district_id: str
    district: str
    communes: tuple[tuple[str, str], ...]  # (id, name)


def place_groups(tickets: TicketPolicy) -> tuple[PlaceGroup, ...]:
    """The tenant's places for the one-step place list (no JavaScript): per district, the
    district itself ("cả huyện / chưa rõ xã") then its communes."""
    return tuple(PlaceGroup(d.id, d.name, tuple((c.id, c.name) for c in d.communes))
                 for d in tickets.districts)


# ---- the form token ---------------------------------------------------------------------------
def _mac(secret: bytes, tenant: str, issued: int) -> str:
    digest = hmac.new(secret, f"webform|{tenant}|{issued}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_token(secret: bytes, tenant: str, issued: dt.datetime) -> str:
    """The form token for a page served at ``issued`` (whole seconds)."""
    at = int(issued.timestamp())
    return f"{at}.{_mac(secret, tenant, at)}"


def read_token(secret: bytes, tenant: str, token: str) -> dt.datetime | None:
    """When the form was served, if ``token`` was signed with ``secret`` for ``tenant``."""
    m = _TOKEN.fullmatch(token or "")
    if m is None:
        return None
    at = int(m.group(1))
    if not hmac.compare_digest(m.group(2), _mac(secret, tenant, at)):
        return None
    return dt.datetime.fromtimestamp(at, dt.UTC)


Verdict = Literal["ok", "honeypot", "bad_token", "expired", "too_fast"]


def screen(*, honeypot: str, issued: dt.datetime | None, now: dt.datetime,
           policy: WebFormPolicy) -> Verdict:
    """What to do with a sent form before its fields are looked at.

    ``issued``: ``read_token``'s answer (None: no valid token). A filled honeypot wins over
    everything (a robot learns nothing); then the token; then the fill time.
    """
    if honeypot.strip():
        return "honeypot"
    if issued is None or issued > now + CLOCK_SKEW:
        return "bad_token"
    if now - issued > TOKEN_MAX_AGE:
        return "expired"
    if now - issued < dt.timedelta(seconds=policy.min_fill_seconds):
        return "too_fast"
    return "ok"


SCREEN_TEXT: Final[dict[str, str]] = {
    "bad_token": "Biểu mẫu không hợp lệ. Vui lòng kiểm tra lại thông tin và bấm Gửi một lần "
                 "nữa.",
    "expired": "Biểu mẫu đã mở quá lâu và hết hiệu lực. Vui lòng kiểm tra lại thông tin và bấm "
               "Gửi một lần nữa.",
    "too_fast": "Biểu mẫu được gửi quá nhanh. Vui lòng kiểm tra lại thông tin rồi bấm Gửi một "
                "lần nữa.",
}


# ---- rate limits ------------------------------------------------------------------------------
LimitKind = Literal["address", "phone"]


def limit_key(secret: bytes, kind: LimitKind, tenant: str, value: str) -> str:
    """The counter's key for an address or a phone number: a keyed hash, never the value."""
    mac = hmac.new(secret, f"limit|{kind}|{tenant}|{value}".encode(), hashlib.sha256)
    return f"webform:{tenant}:{kind}:{mac.hexdigest()[:32]}"


def limit_of(policy: WebFormPolicy, kind: LimitKind) -> tuple[int, dt.timedelta]:
    """How many petitions, over which sliding window, per address or per phone."""
    if kind == "address":
        return policy.per_address_per_hour, ADDRESS_WINDOW
    return policy.per_phone_per_day, PHONE_WINDOW


def rate_limited_text(kind: LimitKind, policy: WebFormPolicy, wait: float) -> str:
    """The refusal when a limit is reached, with the time to wait."""
    minutes = max(1, int(wait + 59) // 60)
    when = (f"{minutes} phút" if minutes < 120 else f"{(minutes + 59) // 60} giờ")
    if kind == "phone":
        what = (f"Số điện thoại này đã gửi {policy.per_phone_per_day} phản ánh trong 24 giờ "
                "qua")
    else:
        what = (f"Đã có {policy.per_address_per_hour} phản ánh được gửi từ địa chỉ mạng này "
                "trong một giờ qua")
    return (f"{what}. Vui lòng thử lại sau {when}, hoặc gọi Tổng đài 1022 để được hỗ trợ "
            "ngay.")


# ---- files ------------------------------------------------------------------------------------
def file_type_text(name: str) -> str:
    """A file that is no accepted photo or video (judged by its contents)."""
    return f"Tệp «{name}» không phải {ACCEPTED_FILES_TEXT} (kiểm tra theo nội dung tệp)."


def file_too_large_text(name: str, category: str, max_bytes: int) -> str:
    """A file over its kind's limit."""
    return (f"Tệp «{name}» quá lớn: {UPLOAD_CATEGORY.get(category, 'tệp')} tối đa "
            f"{size_text(max_bytes)}.")


def too_many_files_text() -> str:
    """More files than the form takes."""
    return f"Chỉ gửi được tối đa {MAX_FILES} tệp ảnh hoặc video."


def total_too_large_text(max_bytes: int) -> str:
    """The whole form over its size limit."""
    return (f"Tổng dung lượng các tệp vượt quá {size_text(max_bytes)}. Vui lòng gửi ít tệp hơn "
            "hoặc tệp nhỏ hơn.")


def reselect_files_text(count: int) -> str:
    """Browsers never keep chosen files when a page comes back: ask for them again."""
    return (f"Ông (bà) đã chọn {count} tệp: vui lòng chọn lại các tệp trước khi gửi "
            "(trình duyệt không giữ tệp đã chọn).")


def receipt_signature(secret: bytes, tenant: str, code: str) -> str:
    """The signature of the "sent" page's link: only codes this form gave are shown there."""
    mac = hmac.new(secret, f"sent|{tenant}|{code}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()
