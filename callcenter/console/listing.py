"""The console's ticket and call lists, pure: filters from a query string, local days as UTC
bounds, Vietnamese labels, deadline marks and short summaries of a call's way through the
IVR and its transfers. No I/O; time and zone are parameters.

A filter parse never raises on bad input: it returns the filter without the bad value and a
Vietnamese error per field, so a page shows the error next to the field and lists nothing
it was not asked for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

PAGE_SIZE: Final = 50
EXPORT_CAP: Final = 10_000  # rows in one xlsx; beyond it a note row says how many were left
MAX_PAGE: Final = 10_000
MIN_YEAR: Final = 2000  # the days a filter accepts (the hotline's records are all in between)
MAX_YEAR: Final = 2100

TICKET_STATE_LABELS: Final = {
    "new": "Mới tiếp nhận", "answered": "Đã trả lời tại tổng đài",
    "forwarded": "Đã chuyển đơn vị", "in_progress": "Đơn vị đang xử lý",
    "resolved": "Đã có kết quả", "closed": "Đã đóng", "returned": "Đơn vị trả lại",
    "reopened": "Mở lại",
}
OPEN_STATES: Final = ("new", "forwarded", "in_progress", "returned", "reopened")
CHANNEL_LABELS: Final = {"phone": "Điện thoại", "web": "Cổng thông tin", "email": "Thư điện tử",
                         "zalo": "Zalo", "facebook": "Facebook", "walk_in": "Trực tiếp",
                         "open311": "Ứng dụng (Open311)"}
_CHASE = re.compile(r"chased (?P<unit>\S+) \((?P<days>\d+) day\(s\) late, slot \S+\): SMS to "
                    r"(?P<n>\d+) focal person\(s\)(?P<esc>; escalated)?")
_ESCALATE = re.compile(r"(?P<unit>\S+) (?P<days>\d+) day\(s\) late: told (?P<told>.*)")
_EMAIL = re.compile(r"(?P<kind>chase|escalation) e-mail to (?P<name>.+?) <(?P<to>[^>]+)>: "
                    r"(?P<subject>.*) \(key \S+\)")
EVENT_LABELS: Final = {
    "open": "Tiếp nhận", "answer": "Trả lời tại tổng đài", "forward": "Chuyển đơn vị",
    "accept": "Đơn vị tiếp nhận xử lý", "resolve": "Cập nhật kết quả giải quyết",
    "return": "Trả lại tổng đài", "close": "Đóng phiếu", "reopen": "Mở lại",
    "reclassify": "Phân loại lại", "set_publishable": "Công khai", "remind": "Nhắc hạn",
    "link_call": "Gắn cuộc gọi", "attach": "Đính kèm tệp", "late": "Quá hạn xử lý",
    "forward_late": "Quá hạn chuyển", "sms_refused": "Tin nhắn bị từ chối",
    "chase": "Đôn đốc đơn vị trễ hạn", "escalate": "Báo cáo lãnh đạo (trễ hạn)",
    "email": "Gửi thư điện tử", "email_unsent": "Thư điện tử chưa gửi",
    "email_failed": "Gửi thư điện tử lỗi",
    "publish": "Rà soát: công khai", "decline": "Rà soát: không công khai",
    "transfer_call": "Chuyển cuộc gọi đến đơn vị",
}
_REVIEW_PARTS: Final = (
    ("published again", "Công khai lại"), ("published", "Công khai"),
    ("question edited: ", "câu hỏi đã biên tập: "), ("answer edited: ", "trả lời đã biên tập: "),
    ("question: masked original", "câu hỏi: bản gốc đã che thông tin cá nhân"),
    ("answer: masked original", "trả lời: bản gốc đã che thông tin cá nhân"),
    ("question unchanged", "câu hỏi giữ nguyên"), ("answer unchanged", "trả lời giữ nguyên"),
    ("withdrawn and declined for publication: ", "Gỡ khỏi trang công khai, lý do: "),
    ("declined for publication: ", "Không công khai, lý do: "),
)
CALL_OUTCOME_LABELS: Final = {
    "answered": "Đã phục vụ", "busy": "Máy bận (hết line)", "abandoned": "Bỏ máy",
    "not_found": "Số không đúng", "failed": "Lỗi", "callback": "Hẹn gọi lại",
    "dialback": "Gọi lại cho công dân",
}
TRANSFER_RESULT_LABELS: Final = {"completed": "thành công", "returned": "quay lại",
                                 "no_answer": "không trả lời"}

_OPERATOR: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def state_label(state: str) -> str:
    """A ticket state in Vietnamese (the id itself for an unknown one)."""
    return TICKET_STATE_LABELS.get(state, state)


def outcome_label(outcome: str) -> str:
    """A call outcome in Vietnamese (the id itself for an unknown one)."""
    return CALL_OUTCOME_LABELS.get(outcome, outcome)


def day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants that start the local ``day`` and the next one ([start, end))."""
    start = dt.datetime.combine(day, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def local_day(now: dt.datetime, zone: ZoneInfo) -> dt.date:
    """The local date of an aware instant."""
    return now.astimezone(zone).date()


def parse_day(text: str) -> dt.date | None:
    """A ``yyyy-mm-dd`` date (what ``<input type=date>`` sends) of years ``MIN_YEAR`` to
    ``MAX_YEAR``, else None."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    # Far years overflow the day bounds (9999-12-31 has no next day) and mean nothing here.
    return day if MIN_YEAR <= day.year <= MAX_YEAR else None


def _page(raw: str, errors: dict[str, str]) -> int:
    if not raw:
        return 1
    if raw.isdigit() and 1 <= int(raw) <= MAX_PAGE:
        return int(raw)
    errors["page"] = "Số trang không hợp lệ."
    return 1


@dataclass(frozen=True)
class TicketFilter:
    """What a ticket list shows: the service's filters and the page (1-based)."""

    states: tuple[str, ...] = ()  # empty: any state
    unit: str | None = None
    field: str | None = None
    late: bool | None = None
    since: dt.date | None = None  # received on or after this local day
    until: dt.date | None = None  # received on or before this local day
    view: str = ""  # "unprocessed" | "late" | "" (the quick links)
    page: int = 1
    errors: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

    def service_kwargs(self, zone: ZoneInfo) -> dict[str, Any]:
        """Keyword arguments of ``TicketService.list``/``count`` (received bounds in UTC)."""
        since = day_bounds(self.since, zone)[0] if self.since else None
        until = day_bounds(self.until, zone)[1] if self.until else None
        return {"state": list(self.states) or None, "unit": self.unit, "field": self.field,
                "late": self.late, "since": since, "until": until}

    def query(self, page: int | None = None) -> str:
        """The query string of this filter (for paging and the export link)."""
        pairs: list[tuple[str, str]] = []
        if self.view:
            pairs.append(("view", self.view))
        elif len(self.states) == 1:
            pairs.append(("state", self.states[0]))
        if self.unit:
            pairs.append(("unit", self.unit))
        if self.field:
            pairs.append(("field", self.field))
        if self.late is not None and self.view != "late":
            pairs.append(("late", "1" if self.late else "0"))
        if self.since:
            pairs.append(("from", self.since.isoformat()))
        if self.until:
            pairs.append(("to", self.until.isoformat()))
        if page is not None and page > 1:
            pairs.append(("page", str(page)))
        return urlencode(pairs)


def parse_ticket_filter(query: Mapping[str, str], *, units: Sequence[str],
                        fields: Sequence[str], unit_user: bool) -> TicketFilter:
    """The ticket filter of a query string; a unit user's ``unit`` is ignored (the service
    keeps it to its own tickets anyway, and a parameter must never widen what it sees)."""
    errors: dict[str, str] = {}
    view = query.get("view", "")
    states: tuple[str, ...] = ()
    late: bool | None = None
    if view == "unprocessed":
        states = OPEN_STATES
    elif view == "late":
        late = True
    elif view:
        errors["view"] = "Danh sách không hợp lệ."
        view = ""
    raw_state = query.get("state", "")
    if raw_state and not view:
        if raw_state in TICKET_STATE_LABELS:
            states = (raw_state,)
        else:
            errors["state"] = "Trạng thái không hợp lệ."
    unit = query.get("unit", "") or None
    if unit is not None and (unit_user or unit not in units):
        if not unit_user:
            errors["unit"] = "Đơn vị không có trong cấu hình của tỉnh."
        unit = None
    fld = query.get("field", "") or None
    if fld is not None and fld not in fields:
        errors["field"] = "Lĩnh vực không hợp lệ."
        fld = None
    raw_late = query.get("late", "")
    if raw_late and view != "late":
        if raw_late in ("1", "true", "on"):
            late = True
        elif raw_late in ("0", "false"):
            late = False
        else:
            errors["late"] = "Giá trị không hợp lệ."
    since = until = None
    for key, label in (("from", "Từ ngày"), ("to", "Đến ngày")):
        raw = query.get(key, "")
        if not raw:
            continue
        day = parse_day(raw)
        if day is None:
            errors[key] = f"{label}: ngày không hợp lệ (dd/mm/yyyy, năm {MIN_YEAR}–{MAX_YEAR})."
        elif key == "from":
            since = day
        else:
            until = day
    if since and until and until < since:
        errors["to"] = "Đến ngày phải sau hoặc bằng từ ngày."
        until = None
    return TicketFilter(states, unit, fld, late, since, until, view, _page(query.get(
        "page", ""), errors), errors)


@dataclass(frozen=True)
class CallFilter:
    """What the call list shows: one local day, optionally one outcome and one operator."""

    day: dt.date
    outcome: str | None = None
    operator: str | None = None
    page: int = 1
    errors: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

    def query(self, page: int | None = None) -> str:
        """The query string of this filter (for paging and the export link)."""
        pairs = [("day", self.day.isoformat())]
        if self.outcome:
            pairs.append(("outcome", self.outcome))
        if self.operator:
            pairs.append(("operator", self.operator))
        if page is not None and page > 1:
            pairs.append(("page", str(page)))
        return urlencode(pairs)


def parse_call_filter(query: Mapping[str, str], today: dt.date) -> CallFilter:
    """The call filter of a query string (default: ``today``, the tenant's local date)."""
    errors: dict[str, str] = {}
    day = today
    raw_day = query.get("day", "")
    if raw_day:
        parsed = parse_day(raw_day)
        if parsed is None:
            errors["day"] = f"Ngày không hợp lệ (dd/mm/yyyy, năm {MIN_YEAR}–{MAX_YEAR})."
        else:
            day = parsed
    outcome = query.get("outcome", "") or None
    if outcome is not None and outcome not in CALL_OUTCOME_LABELS:
        errors["outcome"] = "Kết quả cuộc gọi không hợp lệ."
        outcome = None
    operator = query.get("operator", "").strip() or None
    if operator is not None and not _OPERATOR.fullmatch(operator):
        errors["operator"] = "Mã điện thoại viên chỉ gồm chữ, số, dấu chấm, gạch (tối đa 32)."
        operator = None
    return CallFilter(day, outcome, operator, _page(query.get("page", ""), errors), errors)


def export_note(shown: int, total: int, noun: str, order: str = "") -> str | None:
    """The note under an export the cap cut short (None when every row is in it)."""
    if total <= shown:
        return None
    return (f"Chỉ xuất {shown}/{total} {noun} đầu tiên{order}; lọc hẹp hơn để xuất phần "
            "còn lại.")


def deadline_mark(resolve_due: dt.datetime | None, is_open: bool, now: dt.datetime,
                  near: dt.timedelta) -> str:
    """``late`` (open and past due), ``near`` (open, due within ``near``) or ''."""
    if resolve_due is None or not is_open:
        return ""
    if resolve_due < now:
        return "late"
    return "near" if resolve_due - now <= near else ""


def short(text: str | None, limit: int = 80) -> str:
    """The text on one line, cut at ``limit`` characters with an ellipsis."""
    one = " ".join((text or "").split())
    return one if len(one) <= limit else one[:limit - 1].rstrip() + "…"


def ivr_summary(path: Sequence[Mapping[str, Any]] | None) -> str:
    """The IVR nodes a caller passed, in order, repeats collapsed: ``main → health → faq:x``."""
    nodes: list[str] = []
    for step in path or ():
        name = step.get("node")
        if step.get("faq"):
            name = f"faq:{step['faq']}"
        if isinstance(name, str) and name and (not nodes or nodes[-1] != name):
            nodes.append(name)
    return " → ".join(nodes)


def transfers_summary(transfers: Sequence[Mapping[str, Any]] | None) -> str:
    """The transfers of a call: ``so_y_te (thành công); ubnd_x (không trả lời)``; a warm
    transfer names the ticket told to the unit: ``so_y_te (thành công, phiếu DN-…)``."""
    parts = []
    for t in transfers or ():
        where = str(t.get("unit") or t.get("number") or "?")
        result = t.get("result")
        label = TRANSFER_RESULT_LABELS.get(str(result), str(result)) if result else ""
        if t.get("ticket"):
            label = f"{label}, phiếu {t['ticket']}" if label else f"phiếu {t['ticket']}"
        parts.append(f"{where} ({label})" if label else where)
    return "; ".join(parts)


def seconds(value: float | None) -> int | None:
    """A duration in whole seconds (rounded), or None."""
    return None if value is None else int(round(value))


def unit_actions(state: str, holds: bool) -> tuple[str, ...]:
    """The actions a unit user may take on a ticket in ``state`` (``holds``: its unit)."""
    if not holds:
        return ()
    if state == "forwarded":
        return ("accept", "resolve", "return")
    if state == "in_progress":
        return ("resolve", "return")
    return ()



def size_text(n: int) -> str:
    """A byte count for people: ``10 MB``, ``256 KB``."""
    mib = 1024 * 1024
    return f"{n // mib} MB" if n >= mib else f"{max(1, n // 1024)} KB"


UPLOAD_CATEGORY = {"document": "văn bản", "image": "hình ảnh", "video": "đoạn phim",
                   "file": "tệp"}


def upload_too_large_text(category: str, max_bytes: int) -> str:
    """The refusal of an attachment over its category's limit, naming the category and limit."""
    return (f"Tệp đính kèm quá lớn: {UPLOAD_CATEGORY.get(category, 'tệp')} "
            f"tối đa {size_text(max_bytes)}.")


# ---- audit details in Vietnamese ---------------------------------------------------------------
# The ticket core writes its audit details in English (they also go to the logs); the console
# shows them to units and supervisors in Vietnamese. Each pattern matches one detail the core
# writes (callcenter/tickets/rules.py, callcenter/tickets/service.py); an unknown shape is
# shown as written, so nothing is ever hidden.
_FORWARD = re.compile(r"(?:from (?P<old>\S+) )?to (?P<unit>\S+) "
                      r"(?:as routed \(.*?\)|override: the rules give (?P<rule>\S+) \(.*?\))"
                      r"(?:; (?P<note>.*))?", re.S)
_RESOLVE = re.compile(r"result recorded by (?P<unit>\S+)(?P<doc> with a reply document)?"
                      r"(?:, (?P<days>\d+) day\(s\) late|, on time)")
_LATE = re.compile(r"(?P<clock>\w+) deadline (?P<due>\S+) passed; "
                   r"(?:with (?P<unit>\S+)|at level 1)")
_CHANGE = re.compile(r"(?P<what>field|place|urgent) (?P<a>.*?) -> (?P<b>.*)")
_CLOCKS: Final = {"forward": "hạn chuyển đơn vị", "resolve": "hạn giải quyết"}
_YES_NO: Final = {"True": "có", "False": "không", "None": "không rõ"}


def audit_note(event: str, detail: str, *, units: Mapping[str, str],
               fields: Mapping[str, str]) -> str:
    """An audit entry's detail in Vietnamese, with unit and field names from the config."""
    def unit(unit_id: str) -> str:
        return units.get(unit_id, unit_id)

    m: re.Match[str] | None
    if event == "open" and (m := re.fullmatch(r"(\w+), field (\S+)(, urgent)?", detail)):
        return (f"Kênh: {CHANNEL_LABELS.get(m[1], m[1])}; lĩnh vực: {fields.get(m[2], m[2])}"
                + ("; khẩn" if m[3] else ""))
    if event == "answer" and (m := re.fullmatch(r"answered at level 1(?: from FAQ (.+))?",
                                                 detail)):
        return "Trả lời tại tổng đài" + (f" theo câu hỏi thường gặp {m[1]}" if m[1] else "")
    if event == "forward" and (m := _FORWARD.fullmatch(detail)):
        text = (f"Từ {unit(m['old'])} chuyển sang " if m["old"] else "Chuyển cho ") + \
            unit(m["unit"])
        text += (f" (khác phân công tự động: {unit(m['rule'])})" if m["rule"]
                 else " theo phân công tự động")
        return text + (f". Ghi chú: {m['note']}" if m["note"] else "")
    if event == "accept" and (m := re.fullmatch(r"accepted by (\S+)", detail)):
        return f"{unit(m[1])} tiếp nhận xử lý"
    if event == "resolve" and (m := _RESOLVE.fullmatch(detail)):
        return (f"{unit(m['unit'])} cập nhật kết quả"
                + (", kèm văn bản trả lời" if m["doc"] else "")
                + (f", trễ {m['days']} ngày" if m["days"] else ", đúng hạn"))
    if event == "return" and (m := re.fullmatch(r"returned by (\S+): (.*)", detail, re.S)):
        return f"{unit(m[1])} trả lại. Lý do: {m[2]}"
    if event in ("reopen", "close") and (m := re.fullmatch(r"(?:reopened|closed)(?::\s(.*))?",
                                                           detail, re.S)):
        return f"Lý do: {m[1]}" if m[1] else ""
    if event == "transfer_call" and (m := re.fullmatch(r"call (\S+) transferred to (\S+)",
                                                       detail)):
        return f"Chuyển cuộc gọi đến {unit(m[2])} (đơn vị được xem phiếu)"
    if event == "remind" and (m := re.fullmatch(r"reminded (\S+)", detail)):
        return f"Đã nhắc {unit(m[1])}"
    if event == "chase" and (m := _CHASE.fullmatch(detail)):
        return (f"Đã đôn đốc {unit(m['unit'])} (trễ {m['days']} ngày): nhắn tin {m['n']} "
                "đầu mối" + ("; đã báo cáo lãnh đạo" if m["esc"] else ""))
    if event == "escalate" and (m := _ESCALATE.fullmatch(detail)):
        told = ("chưa cấu hình lãnh đạo đơn vị, văn phòng UBND tỉnh" if m["told"].startswith(
            "nobody") else m["told"])
        return f"{unit(m['unit'])} trễ hạn {m['days']} ngày: đã báo {told}"
    if event == "email" and (m := _EMAIL.fullmatch(detail)):
        kind = "báo cáo" if m["kind"] == "escalation" else "đôn đốc"
        return f"Thư {kind} gửi {m['name']} <{m['to']}>: {m['subject']}"
    if event in ("late", "forward_late") and (m := _LATE.fullmatch(detail)):
        where = f"đơn vị {unit(m['unit'])}" if m["unit"] else "tổng đài (cấp 1)"
        return f"Quá {_CLOCKS.get(m['clock'], m['clock'])}; phiếu đang ở {where}"
    if event == "reclassify":
        if detail == "no change":
            return "Không thay đổi"
        parts = []
        for change in detail.split(", "):
            if (c := _CHANGE.fullmatch(change)) is None:
                return detail
            a, b = c["a"], c["b"]
            if c["what"] == "field":
                parts.append(f"lĩnh vực: {fields.get(a, a)} → {fields.get(b, b)}")
            elif c["what"] == "place":
                parts.append(f"địa bàn: {_YES_NO['None'] if a == 'None' else a} → "
                             f"{_YES_NO['None'] if b == 'None' else b}")
            else:
                parts.append(f"khẩn: {_YES_NO.get(a, a)} → {_YES_NO.get(b, b)}")
        return "; ".join(parts)
    if event == "set_publishable" and detail in ("published", "withdrawn from publication"):
        return "Cho phép công khai" if detail == "published" else "Không công khai"
    if event in ("publish", "decline"):
        parts = []
        for part in detail.split("; "):
            for english, vietnamese in _REVIEW_PARTS:
                if part.startswith(english):
                    part = vietnamese + part[len(english):]
                    break
            parts.append(part)
        return "; ".join(parts)
    if event == "link_call" and (m := re.fullmatch(r"call (\S+) (already )?linked", detail)):
        return f"Cuộc gọi {m[1]}" + (" (đã gắn trước đó)" if m[2] else "")
    return detail
