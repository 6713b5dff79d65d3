"""The console lists' pure helpers: filters from query strings (bad values become Vietnamese
field errors, a unit user's unit parameter is ignored), local days as UTC bounds, deadline
marks, IVR and transfer summaries."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from callcenter.console import listing as ls

DN = ZoneInfo("Asia/Ho_Chi_Minh")
UNITS = ("so_y_te", "ubnd_long_thanh")
FIELDS = ("health", "transport")
NOW = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)


def _parse(unit_user: bool = False, **query: str) -> ls.TicketFilter:
    return ls.parse_ticket_filter(query, units=UNITS, fields=FIELDS, unit_user=unit_user)


def test_given_local_day_when_bounds_then_midnight_to_midnight_in_utc() -> None:
    start, end = ls.day_bounds(dt.date(2026, 11, 22), DN)
    assert (start, end) == (dt.datetime(2026, 11, 21, 17, tzinfo=dt.UTC),
                            dt.datetime(2026, 11, 22, 17, tzinfo=dt.UTC))
    late_evening = dt.datetime(2026, 11, 22, 16, 30, tzinfo=dt.UTC)  # 23:30 local
    assert start <= late_evening < end and ls.local_day(late_evening, DN).day == 22


def test_given_unit_user_when_unit_parameter_then_ignored_without_error() -> None:
    f = _parse(unit_user=True, unit="ubnd_long_thanh")
    assert f.unit is None and f.errors == {}
    assert _parse(unit="ubnd_long_thanh").unit == "ubnd_long_thanh"


def test_given_quick_links_then_unprocessed_is_open_states_and_late_is_late() -> None:
    assert _parse(view="unprocessed").states == ls.OPEN_STATES
    late = _parse(view="late", state="closed")
    assert (late.late, late.states) == (True, ())  # the quick link wins over a state
    assert _parse(view="late").query() == "view=late"


def test_given_bad_values_when_parsed_then_vietnamese_errors_and_no_filter() -> None:
    f = _parse(state="lost", unit="nope", field="x", late="maybe", **{
        "from": "23/11/2026", "to": "2026-02-30"}, page="0")
    assert set(f.errors) == {"state", "unit", "field", "late", "from", "to", "page"}
    assert (f.states, f.unit, f.field, f.late, f.since, f.until, f.page) == \
        ((), None, None, None, None, None, 1)
    assert f.errors["unit"] == "Đơn vị không có trong cấu hình của tỉnh."
    far = _parse(**{"from": "0001-01-01", "to": "9999-12-31"})
    assert (far.since, far.until, set(far.errors)) == (None, None, {"from", "to"})
    assert far.errors["to"] == "Đến ngày: ngày không hợp lệ (dd/mm/yyyy, năm 2000–2100)."
    edges = _parse(**{"from": "2000-01-01", "to": "2100-12-31"})
    assert (edges.since, edges.until, edges.errors) == \
        (dt.date(2000, 1, 1), dt.date(2100, 12, 31), {})
    assert edges.service_kwargs(DN)["until"] == dt.datetime(2100, 12, 31, 17, tzinfo=dt.UTC)
    backwards = _parse(**{"from": "2026-11-23", "to": "2026-11-22"})
    assert backwards.until is None and "to" in backwards.errors


def test_given_filter_when_service_kwargs_then_until_is_the_end_of_the_last_day() -> None:
    f = _parse(**{"from": "2026-11-22", "to": "2026-11-22"}, field="health", late="0")
    kw = f.service_kwargs(DN)
    assert kw["since"] == dt.datetime(2026, 11, 21, 17, tzinfo=dt.UTC)
    assert kw["until"] == dt.datetime(2026, 11, 22, 17, tzinfo=dt.UTC)
    assert (kw["field"], kw["late"], kw["state"], kw["unit"]) == ("health", False, None, None)


@given(state=st.sampled_from(["", *ls.TICKET_STATE_LABELS]),
       unit=st.sampled_from(["", *UNITS]), field=st.sampled_from(["", *FIELDS]),
       late=st.sampled_from(["", "1", "0"]), page=st.integers(1, 500),
       since=st.dates(dt.date(2025, 1, 1), dt.date(2027, 12, 31)))
def test_given_valid_filter_when_query_parsed_again_then_same_filter(
        state: str, unit: str, field: str, late: str, page: int, since: dt.date) -> None:
    f = _parse(state=state, unit=unit, field=field, late=late, page=str(page),
               **{"from": since.isoformat()})
    assert f.errors == {}
    again = _parse(**dict(parse_qsl(f.query(f.page))))
    assert again == f


def test_given_calls_query_then_today_by_default_and_errors_for_bad_values() -> None:
    today = dt.date(2026, 11, 23)
    assert ls.parse_call_filter({}, today) == ls.CallFilter(today)
    f = ls.parse_call_filter({"day": "2026-11-22", "outcome": "busy", "operator": "101",
                              "page": "2"}, today)
    assert (f.day, f.outcome, f.operator, f.page, f.errors) == \
        (dt.date(2026, 11, 22), "busy", "101", 2, {})
    assert ls.parse_call_filter(dict(parse_qsl(f.query(2))), today) == f
    bad = ls.parse_call_filter({"day": "hôm qua", "outcome": "x", "operator": "1 0"}, today)
    assert bad == ls.CallFilter(today) and set(bad.errors) == {"day", "outcome", "operator"}
    for day in ("9999-12-31", "0001-01-01", "2101-01-01"):
        far = ls.parse_call_filter({"day": day}, today)
        assert far.day == today and "day" in far.errors


def test_given_deadlines_then_late_near_or_nothing() -> None:
    hour = dt.timedelta(hours=1)
    near = 2 * hour
    assert ls.deadline_mark(NOW - hour, True, NOW, near) == "late"
    assert ls.deadline_mark(NOW + near, True, NOW, near) == "near"
    assert ls.deadline_mark(NOW + near + hour, True, NOW, near) == ""
    assert ls.deadline_mark(NOW - hour, False, NOW, near) == ""  # closed: never late now
    assert ls.deadline_mark(None, True, NOW, near) == ""


def test_given_ivr_path_then_nodes_in_order_repeats_collapsed_faq_named() -> None:
    path = [{"event": "enter", "node": "main"}, {"event": "digit", "node": "main"},
            {"event": "enter", "node": "health"}, {"event": "faq", "node": "health",
                                                   "faq": "bhyt"},
            {"event": "hangup"}]
    assert ls.ivr_summary(path) == "main → health → faq:bhyt"
    assert ls.ivr_summary(None) == ""


def test_given_transfers_then_unit_and_result_in_vietnamese() -> None:
    assert ls.transfers_summary([{"unit": "so_y_te", "result": "completed"},
                                 {"unit": None, "number": "0251", "result": "no_answer"},
                                 {"unit": "x"}]) == \
        "so_y_te (thành công); 0251 (không trả lời); x"


def test_given_a_warm_transfer_then_the_ticket_told_to_the_unit_is_named() -> None:
    assert ls.transfers_summary([{"unit": "so_y_te", "result": "completed",
                                  "ticket": "DN-20261207-0042"}, {"unit": "x", "ticket": "T-1"}]) \
        == "so_y_te (thành công, phiếu DN-20261207-0042); x (phiếu T-1)"


def test_given_unit_and_state_then_its_actions() -> None:
    assert ls.unit_actions("forwarded", True) == ("accept", "resolve", "return")
    assert ls.unit_actions("in_progress", True) == ("resolve", "return")
    assert ls.unit_actions("in_progress", False) == ()
    assert ls.unit_actions("resolved", True) == ()


def test_given_long_text_then_one_line_cut_with_ellipsis() -> None:
    assert ls.short("a\n b", 80) == "a b"
    assert ls.short("x" * 100, 10) == "x" * 9 + "…"


def test_given_byte_counts_then_mb_or_kb() -> None:
    assert (ls.size_text(10 * 1024 * 1024), ls.size_text(256 * 1024), ls.size_text(10)) == \
        ("10 MB", "256 KB", "1 KB")


@given(day=st.dates())
def test_given_any_date_when_filtered_then_bounds_or_field_error_never_overflow(
        day: dt.date) -> None:
    text = f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
    f = _parse(**{"from": text, "to": text})
    kw = f.service_kwargs(DN)  # must not overflow, whatever was accepted
    assert (f.errors == {}) == (ls.MIN_YEAR <= day.year <= ls.MAX_YEAR)
    assert (kw["since"] is None) == bool(f.errors)
    calls = ls.parse_call_filter({"day": text}, dt.date(2026, 11, 23))
    ls.day_bounds(calls.day, DN)
    assert ("day" in calls.errors) == bool(f.errors)


def test_given_every_ticket_state_then_one_vietnamese_label_table_wallboard_included() -> None:
    from callcenter.tickets.rules import TicketState
    from callcenter.wallboard import http as wallboard

    assert set(ls.TICKET_STATE_LABELS) == {s.value for s in TicketState}
    assert all(label and label != state for state, label in ls.TICKET_STATE_LABELS.items())
    assert set(ls.OPEN_STATES) <= set(ls.TICKET_STATE_LABELS)
    assert wallboard.TICKET_STATE_LABELS is ls.TICKET_STATE_LABELS  # no second table


def test_given_capped_export_then_numbered_rows_and_a_note_only_when_rows_were_left_out(
        ) -> None:
    from callcenter.console.exports import numbered

    assert ls.export_note(3, 3, "phiếu") is None
    assert ls.export_note(2, 5, "phiếu", " (mới nhất)") == \
        "Chỉ xuất 2/5 phiếu đầu tiên (mới nhất); lọc hẹp hơn để xuất phần còn lại."
    rows = numbered([{"code": "a"}, {"code": "b"}], 5, "code", "phiếu")
    assert rows[:2] == ({"stt": 1, "code": "a"}, {"stt": 2, "code": "b"})
    assert rows[2] == {"code": ls.export_note(2, 5, "phiếu")}
    assert numbered([{"caller": "x"}], 1, "caller", "cuộc gọi") == ({"stt": 1, "caller": "x"},)
