"""TicketService on SQLite and PostgreSQL: opening, acting, visibility, SMS, attachments,
deadlines, caller lookup, call links and the public feed."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter.sms.store import SmsOutbox
from callcenter.store.records import CallRecordData, CallRecordStore
from callcenter.tickets.config import RESOLVED_TEXT
from callcenter.tickets.files import UploadLimits
from callcenter.tickets.rules import (
    Accept,
    Actor,
    Close,
    Forward,
    Reclassify,
    Reopen,
    Resolve,
    Return,
    SetPublishable,
    TicketError,
    TicketState,
)
from callcenter.tickets.service import TicketService, caller_number, ticket_dict
from tests.adapters.conftest import MakeRecord
from tests.support.concurrency import run_together
from tests.support.tickets import (
    GT,
    OP,
    SUP,
    SYSTEM,
    T0,
    YT,
    Clock,
    doc_bytes,
    docx_bytes,
    exe_bytes,
    hotline_config,
    jpeg_bytes,
    make_service,
    pdf_bytes,
    png_bytes,
)

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
S = TicketState


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def svc(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[TicketService]:
    s = make_service(database_url, tmp_path / "files", clock)
    yield s
    s.close()


@pytest.fixture
def outbox(svc: TicketService) -> SmsOutbox:
    return SmsOutbox(svc.db.engine)


def _open(svc: TicketService, **kw: object) -> object:
    values: dict[str, object] = {"channel": "phone", "content": "Trạm y tế xã đóng cửa",
                                 "field": "health", "citizen_phone": "0912 345 678",
                                 "at": T0}
    values.update(kw)
    return svc.open("dongnai", OP, **values)  # type: ignore[arg-type]


def _forwarded(svc: TicketService, unit: str = "so_y_te", **kw: object) -> str:
    t = _open(svc, **kw)
    code: str = t.code  # type: ignore[attr-defined]
    svc.act(code, OP, Forward(T0 + 2 * M, OP, unit))
    return code


def _keys(outbox: SmsOutbox, purpose: str) -> list[str]:
    return sorted(m.dedupe_key for m in outbox.recent(limit=1000) if m.purpose == purpose)


# -- opening ------------------------------------------------------------------------------


def test_given_late_evening_utc_when_opened_then_code_carries_local_date_and_day_sequence(
        svc: TicketService) -> None:
    late = dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.UTC)  # 00:30 on the 24th in Vietnam
    codes = [svc.open("dongnai", OP, channel="web", content=f"phản ánh {i}", field="other",
                      at=at).code for i, at in enumerate([T0, T0 + M, late])]
    other = svc.open("thanhhoa", OP, channel="phone", content="x", field="other", at=T0)
    assert codes == ["DN-20261123-0001", "DN-20261123-0002", "DN-20261124-0001"]
    assert other.code == "THANHHOA-20261123-0001"


def test_given_opened_ticket_when_read_back_then_every_field_equal(svc: TicketService) -> None:
    t = svc.open("dongnai", OP, channel="zalo", content="  Đường ĐT769 ngập nước  ",
                 field="transport", place="long_thanh.an_phuoc", citizen_name="Trần Thị Lan",
                 citizen_phone="+84 912.345.678", urgent=True, call_ids=["pbx1:1.5", "pbx1:1.5"],
                 publishable=False, at=T0)
    assert t.content == "Đường ĐT769 ngập nước" and t.citizen_phone == "0912345678"
    assert t.district == "long_thanh" and t.call_ids == ("pbx1:1.5",)
    assert svc.get(t.code, OP) == t
    assert [e.event for e in svc.audit(t.code, OP)] == ["open"]


def test_given_faq_answer_when_opened_then_answered_and_closed_at_once(
        svc: TicketService) -> None:
    t = svc.open("dongnai", OP, channel="phone", content="Giờ làm việc của bộ phận một cửa?",
                 field="admin_procedures", at=T0, answer="Từ 7 giờ đến 17 giờ", faq_item="tthc-3")
    assert t.state is S.ANSWERED and t.closed_at == T0 and t.resolved_at == T0
    assert t.result == "Từ 7 giờ đến 17 giờ" and t.faq_item == "tthc-3" and t.version == 1
    assert [e.event for e in svc.audit(t.code, SUP)] == ["open", "answer"]
    assert svc.sweep(T0 + 100 * H).late == ()  # its clock stopped


def test_given_invalid_request_when_opened_then_refused_and_no_number_used(
        svc: TicketService) -> None:
    with pytest.raises(TicketError) as e:
        _open(svc, field="astrology")
    assert e.value.id == "ticket.unknown_field"
    with pytest.raises(TicketError) as e:
        svc.open("nowhere", OP, channel="phone", content="x", field="other", at=T0)
    assert e.value.id == "ticket.unknown_tenant"
    with pytest.raises(TicketError) as e:
        _open(svc, call_ids=["x" * 65])
    assert e.value.id == "ticket.invalid_text"
    assert _open(svc).code == "DN-20261123-0001"  # type: ignore[attr-defined]


def test_given_many_threads_when_opening_at_once_then_codes_unique_and_consecutive(
        svc: TicketService) -> None:
    codes: list[str] = []
    lock = threading.Lock()

    def open_some() -> None:
        for i in range(10):
            t = svc.open("dongnai", OP, channel="web", content=f"phản ánh {i}", field="other",
                         at=T0)
            with lock:
                codes.append(t.code)

    assert run_together(open_some, 8) == []
    assert sorted(codes) == [f"DN-20261123-{n:04d}" for n in range(1, 81)]
    assert svc.count(OP, tenant="dongnai") == 80


def test_given_batch_when_opened_together_then_one_block_of_codes_across_days(
        svc: TicketService) -> None:
    from callcenter.tickets.service import NewTicket

    late = dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.UTC)
    reqs = [NewTicket("web", f"n{i}", "other", at=late if i % 2 else T0) for i in range(6)]
    got = [t.code for t in svc.open_many("dongnai", SYSTEM, reqs)]
    assert got == ["DN-20261123-0001", "DN-20261124-0001", "DN-20261123-0002",
                   "DN-20261124-0002", "DN-20261123-0003", "DN-20261124-0003"]
    with pytest.raises(TicketError):  # one bad request: none of them is stored
        svc.open_many("dongnai", SYSTEM, [NewTicket("web", "ok", "other", at=T0),
                                          NewTicket("fax", "bad", "other", at=T0)])
    assert svc.count(SUP) == 6


# -- acting, locking, visibility ----------------------------------------------------------


def test_given_whole_workflow_when_acted_then_states_audit_and_versions_follow(
        svc: TicketService) -> None:
    code = _forwarded(svc)
    t = svc.act(code, YT, Accept(T0 + H, YT), expected_version=1)
    t = svc.act(code, YT, Resolve(T0 + 3 * H, YT, "Trạm đã mở cửa"), expected_version=2)
    t = svc.act(code, OP, Close(T0 + 4 * H, OP))
    assert (t.state, t.version) == (S.CLOSED, 4)
    log = svc.audit(code, YT)
    assert [(e.event, e.from_state, e.to_state) for e in log] == [
        ("open", None, S.NEW), ("forward", S.NEW, S.FORWARDED),
        ("accept", S.FORWARDED, S.IN_PROGRESS), ("resolve", S.IN_PROGRESS, S.RESOLVED),
        ("close", S.RESOLVED, S.CLOSED)]
    assert log[2].actor == YT


def test_given_stale_version_when_acting_then_conflict_and_nothing_written(
        svc: TicketService, outbox: SmsOutbox) -> None:
    code = _forwarded(svc)
    svc.act(code, YT, Accept(T0 + H, YT), expected_version=1)
    with pytest.raises(TicketError) as e:
        svc.act(code, YT, Resolve(T0 + 2 * H, YT, "xong"), expected_version=1)
    assert e.value.id == "ticket.conflict"
    assert svc.get(code, OP).state is S.IN_PROGRESS
    assert _keys(outbox, "resolve_notice") == []
    assert len(svc.audit(code, OP)) == 3


def test_given_two_threads_with_same_version_when_acting_then_exactly_one_wins(
        svc: TicketService) -> None:
    code = _forwarded(svc)
    outcomes: list[str] = []

    def accept() -> None:
        try:
            svc.act(code, YT, Accept(T0 + H, YT), expected_version=1)
            outcomes.append("ok")
        except TicketError as e:
            outcomes.append(e.id)

    assert run_together(accept, 4) == []
    assert sorted(outcomes) == ["ok", "ticket.conflict", "ticket.conflict", "ticket.conflict"]


def test_given_ticket_of_another_unit_when_unit_reads_or_acts_then_forbidden(
        svc: TicketService) -> None:
    code = _forwarded(svc, "so_y_te")
    for call in (lambda: svc.get(code, GT), lambda: svc.audit(code, GT),
                 lambda: svc.attachments(code, GT),
                 lambda: svc.act(code, GT, Accept(T0 + H, GT)),
                 lambda: svc.attach(code, GT, "a.pdf", "application/pdf", pdf_bytes())):
        with pytest.raises(TicketError) as e:
            call()
        assert e.value.id == "ticket.forbidden"
    assert svc.list(GT) == [] and svc.count(GT) == 0
    assert [t.code for t in svc.list(YT)] == [code]
    with pytest.raises(TicketError) as e:
        svc.get("DN-20261123-9999", OP)
    assert e.value.id == "ticket.not_found"
    with pytest.raises(TicketError) as e:
        svc.act(code, YT, Accept(T0 + H, GT))  # an event in someone else's name
    assert e.value.id == "ticket.forbidden"


def test_given_ticket_returned_and_sent_elsewhere_when_first_unit_reads_then_still_visible(
        svc: TicketService) -> None:
    code = _forwarded(svc, "so_y_te")
    svc.act(code, YT, Return(T0 + H, YT, "không thuộc thẩm quyền"))
    svc.act(code, OP, Forward(T0 + 2 * H, OP, "so_gtvt"))
    assert svc.get(code, YT).unit == "so_gtvt"  # held it once: may read
    assert svc.get(code, GT).unit == "so_gtvt"
    assert [t.code for t in svc.list(YT)] == [code]
    assert svc.list(YT, unit="so_y_te") == []  # no longer with it
    with pytest.raises(TicketError) as e:
        svc.act(code, YT, Accept(T0 + 3 * H, YT))
    assert e.value.id == "ticket.forbidden"


def test_given_tickets_when_listed_with_filters_then_matching_newest_first(
        svc: TicketService, clock: Clock) -> None:
    a = _forwarded(svc, "so_y_te")
    b = svc.open("dongnai", OP, channel="web", content="đèn giao thông hỏng", field="transport",
                 at=T0 + H).code
    c = svc.open("thanhhoa", OP, channel="web", content="x", field="other", at=T0 + 2 * H).code
    clock.now = T0 + 30 * H
    assert [t.code for t in svc.list(SUP)] == [c, b, a]
    assert [t.code for t in svc.list(SUP, tenant="dongnai", field="transport")] == [b]
    assert [t.code for t in svc.list(SUP, state="forwarded")] == [a]
    assert [t.code for t in svc.list(SUP, state=["new", S.FORWARDED], tenant="dongnai")] == [b, a]
    assert [t.code for t in svc.list(SUP, unit="so_y_te")] == [a]
    assert [t.code for t in svc.list(SUP, since=T0 + 30 * M, until=T0 + 90 * M)] == [b]
    assert [t.code for t in svc.list(SUP, limit=1, offset=1)] == [b]
    assert {t.code for t in svc.list(SUP, late=True)} == {a, b, c}
    svc.act(a, YT, Resolve(T0 + 29 * H, YT, "xong"))
    assert {t.code for t in svc.list(SUP, late=True)} == {b, c}
    assert [t.code for t in svc.list(SUP, late=False)] == [a]
    assert svc.count(SUP, late=True) == 2


# -- SMS ----------------------------------------------------------------------------------


def test_given_resolve_when_acted_then_citizen_texted_exactly_once_with_seed_text(
        svc: TicketService, outbox: SmsOutbox) -> None:
    code = _forwarded(svc)
    assert len(_keys(outbox, "unit_notice")) == 1  # Sở Y tế's focal person
    svc.act(code, YT, Resolve(T0 + H, YT, "Đã xử lý"))
    with pytest.raises(TicketError) as e:  # a retried request: refused, nothing sent again
        svc.act(code, YT, Resolve(T0 + H, YT, "Đã xử lý"))
    assert e.value.id == "ticket.illegal_transition"
    notices = [m for m in outbox.recent(limit=100) if m.purpose == "resolve_notice"]
    assert len(notices) == 1
    assert (notices[0].to_number, notices[0].text) == ("0912345678", RESOLVED_TEXT)
    assert notices[0].dedupe_key == f"{code}:resolved:{(T0 + H).isoformat()}"
    assert (notices[0].coding, notices[0].parts) == ("ucs2", 2)
    # Reopened and resolved again: a second resolve, a second notice.
    svc.act(code, OP, Reopen(T0 + 2 * H, OP, "công dân chưa hài lòng"))
    svc.act(code, OP, Forward(T0 + 3 * H, OP, "so_y_te"))
    svc.act(code, YT, Resolve(T0 + 4 * H, YT, "Đã xử lý lại"))
    assert len(_keys(outbox, "resolve_notice")) == 2
    assert len(_keys(outbox, "unit_notice")) == 2


def test_given_fixed_line_citizen_when_resolved_then_no_sms(
        svc: TicketService, outbox: SmsOutbox) -> None:
    code = _forwarded(svc, citizen_phone="0251 3822 123")
    svc.act(code, YT, Resolve(T0 + H, YT, "Đã xử lý"))
    assert _keys(outbox, "resolve_notice") == []


# -- attachments --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "declared", "make", "stored_type"), [
    ("Công văn trả lời.pdf", "application/pdf", pdf_bytes, "application/pdf"),
    ("anh.PNG", "image/png", png_bytes, "image/png"),
    ("anh.jpg", "", jpeg_bytes, "image/jpeg"),
    ("tra_loi.docx", "application/octet-stream", docx_bytes,
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("tra_loi.doc", "application/msword", doc_bytes, "application/msword"),
])
def test_given_real_document_when_attached_then_stored_under_its_hash(
        svc: TicketService, name: str, declared: str, make: object, stored_type: str) -> None:
    import hashlib

    data = make()  # type: ignore[operator]
    code = _forwarded(svc)
    att = svc.attach(code, YT, name, declared, data)
    digest = hashlib.sha256(data).hexdigest()
    assert (att.sha256, att.size, att.content_type, att.file_name) == (
        digest, len(data), stored_type, name)
    path = svc.files_dir / "dongnai" / digest[:2] / digest
    assert path.read_bytes() == data
    assert svc.attachment_file(code, str(att.id), OP) == (att, path)
    assert svc.attach(code, YT, "again-" + name, declared, data) == att  # same bytes: same one
    assert svc.attachments(code, YT) == [att]
    assert [e.event for e in svc.audit(code, OP)].count("attach") == 1


@pytest.mark.parametrize(("name", "declared", "data", "why"), [
    ("tra_loi.pdf", "application/pdf", exe_bytes(), "not a PDF"),
    ("setup.exe", "application/x-msdownload", exe_bytes(), "not a PDF"),
    ("tra_loi.pdf", "application/pdf", "Đây là văn bản, không phải PDF".encode(), "not a PDF"),
    ("anh.pdf", "application/pdf", png_bytes(), "end in .png"),
    ("tra_loi.docx", "application/pdf", docx_bytes(), "declared as application/pdf"),
    ("bang.docx", "", b"PK\x03\x04" + b"\x00" * 30, "not a PDF"),
    ("rong.pdf", "application/pdf", b"", "empty"),
])
def test_given_wrong_type_when_attached_then_refused_and_nothing_stored(
        svc: TicketService, name: str, declared: str, data: bytes, why: str) -> None:
    code = _forwarded(svc)
    with pytest.raises(TicketError, match=why) as e:
        svc.attach(code, YT, name, declared, data)
    assert e.value.id == "ticket.upload_type"
    assert svc.attachments(code, OP) == []
    assert not svc.files_dir.exists() or not any(svc.files_dir.rglob("*"))


def test_given_file_over_limit_when_attached_then_too_large(
        database_url: str, tmp_path: Path, clock: Clock) -> None:
    small = make_service(database_url, tmp_path / "f", clock,
                         upload_limits=UploadLimits(document=1000, image=1000, video=5000))
    try:
        code = _forwarded(small)
        with pytest.raises(TicketError) as e:
            small.attach(code, YT, "big.pdf", "application/pdf", b"%PDF-1.4\n" + b"0" * 1000)
        assert e.value.id == "ticket.upload_too_large"
        assert small.attach(code, YT, "ok.pdf", "application/pdf", pdf_bytes()).size < 1000
    finally:
        small.close()
    defaults = TicketService.__init__.__kwdefaults__ or {}
    assert defaults["upload_limits"] == UploadLimits(document=10 * 1024 * 1024,
                                                     image=10 * 1024 * 1024,
                                                     video=100 * 1024 * 1024)


def test_given_reply_document_when_resolving_then_must_be_an_attachment_of_the_ticket(
        svc: TicketService) -> None:
    code = _forwarded(svc)
    with pytest.raises(TicketError) as e:
        svc.act(code, YT, Resolve(T0 + H, YT, "xong", reply_document="deadbeefdeadbeef"))
    assert e.value.id == "ticket.unknown_attachment"
    att = svc.attach(code, YT, "cv.pdf", "application/pdf", pdf_bytes())
    t = svc.act(code, YT, Resolve(T0 + H, YT, "xong", reply_document=att.sha256[:12]))
    assert t.reply_document == str(att.id)


# -- deadlines ----------------------------------------------------------------------------


def test_given_forwarded_ticket_when_swept_then_reminded_once_then_marked_late_once(
        svc: TicketService, outbox: SmsOutbox, caplog: pytest.LogCaptureFixture) -> None:
    code = _forwarded(svc)  # due T0 + 24 h; reminder 2 h before
    assert svc.sweep(T0 + 21 * H) == svc.sweep(T0 + 21 * H)  # nothing yet, twice
    first = svc.sweep(T0 + 22 * H + M)
    assert first.reminded == (code,) and first.late == ()
    assert svc.sweep(T0 + 23 * H).reminded == ()
    assert len(_keys(outbox, "reminder")) == 1
    with caplog.at_level(logging.INFO, logger="callcenter.tickets"):
        late = svc.sweep(T0 + 24 * H + M)
    assert [(m.code, m.unit, m.clock, m.days_late) for m in late.late] == [
        (code, "so_y_te", "resolve", 1)]
    assert sum(f"ticket {code}" in r.getMessage() and "is late" in r.getMessage()
               for r in caplog.records) == 1
    assert svc.sweep(T0 + 30 * H).late == ()
    events = [e.event for e in svc.audit(code, OP)]
    assert events.count("remind") == 1 and events.count("late") == 1
    # The shipped config chases at the deadline (tickets.chasing): forward, remind, chase;
    # 'late' leaves the version.
    assert events.count("chase") == 1
    assert svc.get(code, OP).version == 3
    assert len(_keys(outbox, "reminder")) == 1


def test_given_late_ticket_when_clock_restarts_then_it_can_be_marked_late_again(
        svc: TicketService) -> None:
    code = _forwarded(svc)
    assert len(svc.sweep(T0 + 25 * H).late) == 1
    svc.act(code, YT, Resolve(T0 + 26 * H, YT, "xong"))
    svc.act(code, OP, Reopen(T0 + 27 * H, OP, "chưa đúng"))  # a new 24 h from the reopening
    assert svc.sweep(T0 + 28 * H).late == ()
    assert [m.code for m in svc.sweep(T0 + 52 * H).late] == [code]


def test_given_urgent_reclassified_when_swept_then_new_due_time_applies(
        svc: TicketService) -> None:
    t = _open(svc)
    svc.act(t.code, OP, Reclassify(T0 + M, OP, "health", None, True))  # type: ignore[attr-defined]
    assert [m.code for m in svc.sweep(T0 + 4 * H + M).late] == [t.code]  # type: ignore[attr-defined]


def test_given_forward_deadline_when_level1_is_slow_then_forward_late_marked(
        database_url: str, tmp_path: Path, clock: Clock) -> None:
    s = make_service(database_url, tmp_path / "f", clock, hotline_config(forward=5 * M))
    try:
        slow = s.open("dongnai", OP, channel="phone", content="x", field="other", at=T0).code
        quick = s.open("dongnai", OP, channel="phone", content="y", field="other", at=T0).code
        s.act(quick, OP, Forward(T0 + 2 * M, OP, "vp_ubnd_tinh"))
        result = s.sweep(T0 + 6 * M)
        assert [(m.code, m.clock) for m in result.forward_late] == [(slow, "forward")]
        assert s.sweep(T0 + 7 * M).forward_late == ()
    finally:
        s.close()


# -- callers, calls, the public ------------------------------------------------------------


@pytest.mark.parametrize("dialled", ["0912345678", "+84912345678", "84912345678",
                                     "0912.345.678", "+84 912 345 678", "912345678"])
def test_given_open_ticket_when_caller_calls_from_any_format_then_recognised(
        svc: TicketService, dialled: str) -> None:
    code = _forwarded(svc, citizen_phone="0912 345 678")
    done = _forwarded(svc, citizen_phone="+84912345678")
    svc.act(done, YT, Resolve(T0 + H, YT, "xong"))
    svc.open("thanhhoa", OP, channel="phone", content="x", field="other",
             citizen_phone="0912345678", at=T0)
    assert [t.code for t in svc.open_for_caller("dongnai", dialled)] == [code]
    assert svc.open_for_caller("dongnai", "0987654321") == []
    assert caller_number(dialled) == "0912345678"


def test_given_call_links_when_queried_both_ways_then_consistent(svc: TicketService) -> None:
    a = _open(svc, call_ids=["pbx1:100.1"]).code  # type: ignore[attr-defined]
    b = _open(svc).code  # type: ignore[attr-defined]
    svc.link_call(b, "pbx1:100.1", SYSTEM)
    t = svc.link_call(b, "pbx1:200.7", OP)
    assert t.call_ids == ("pbx1:100.1", "pbx1:200.7")
    assert [x.code for x in svc.tickets_of_call("pbx1:100.1")] == [a, b]
    assert [x.code for x in svc.tickets_of_call("pbx1:200.7")] == [b]
    assert svc.get(b, OP).call_ids == ("pbx1:100.1", "pbx1:200.7")
    assert svc.link_call(b, "pbx1:200.7", OP).call_ids == t.call_ids  # twice: one link


# ---- receipt: when the citizen called (the orders count "kể từ khi tiếp nhận ... 1022") --------
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def _record_calls(database_url: str, *records: CallRecordData) -> None:
    store = CallRecordStore(database_url)
    try:
        for r in records:
            assert store.insert_once(r)
    finally:
        store.close()


def test_given_call_arrived_at_0900_when_ticket_saved_at_0912_then_received_0900_and_due_from_0900(
        svc: TicketService, database_url: str, make_record: MakeRecord) -> None:
    arrived = dt.datetime(2026, 11, 23, 9, 0, tzinfo=VN)
    call = make_record(7, arrived_at=arrived)
    _record_calls(database_url, call)
    saved = arrived + 12 * M
    urgent = _open(svc, field="suspected_infection", urgent=True, call_ids=[call.id], at=saved)
    plain = _open(svc, field="transport", call_ids=[call.id], at=saved)
    for t in (urgent, plain, svc.get(urgent.code, OP)):  # type: ignore[attr-defined]
        assert t.received_at == arrived  # type: ignore[attr-defined]
    assert urgent.resolve_due == arrived + 4 * H  # type: ignore[attr-defined]
    assert plain.resolve_due == arrived + 24 * H  # type: ignore[attr-defined]
    opened = svc.audit(urgent.code, OP)[0]  # type: ignore[attr-defined]
    assert opened.event == "open" and opened.at == saved  # recorded when it was saved


def test_given_call_still_up_when_ticket_saved_then_received_at_live_arrival_record_wins_later(
        svc: TicketService, database_url: str, make_record: MakeRecord) -> None:
    live = {"pbx1:1762129800.8": T0 - 5 * M}
    t = _open(svc, call_ids=list(live), at=T0, live_arrivals=live)
    assert t.received_at == T0 - 5 * M  # type: ignore[attr-defined]
    # Once the record is written it is the truth, whatever the live state said.
    _record_calls(database_url, make_record(8, arrived_at=T0 - 7 * M))
    t = _open(svc, call_ids=list(live), at=T0, live_arrivals=live)
    assert t.received_at == T0 - 7 * M  # type: ignore[attr-defined]


def test_given_call_of_another_tenant_or_unknown_when_ticket_saved_then_received_when_saved(
        svc: TicketService, database_url: str, make_record: MakeRecord) -> None:
    foreign = make_record(9, tenant="thanhhoa", arrived_at=T0 - H)
    _record_calls(database_url, foreign)
    t = _open(svc, call_ids=[foreign.id, "pbx1:404.1"], at=T0)
    assert t.received_at == T0 and t.resolve_due == T0 + 24 * H  # type: ignore[attr-defined]


def test_given_call_before_midnight_when_ticket_saved_after_then_code_has_the_call_date(
        svc: TicketService, database_url: str, make_record: MakeRecord) -> None:
    call = make_record(10, arrived_at=dt.datetime(2026, 11, 23, 23, 55, tzinfo=VN))
    _record_calls(database_url, call)
    t = _open(svc, call_ids=[call.id], at=dt.datetime(2026, 11, 24, 0, 5, tzinfo=VN))
    assert t.code == "DN-20261123-0001"  # type: ignore[attr-defined]


def test_given_publishable_resolved_tickets_when_feed_read_then_personal_data_removed(
        svc: TicketService) -> None:
    code = _forwarded(svc, citizen_name="Nguyễn Văn Bình", citizen_phone="0912345678",
                      content="Tôi là Nguyễn Văn Bình, nhà số 12 đường Lê Lợi, SĐT 0912.345.678, "
                              "CCCD 075123456789: trạm y tế xã An Phước đóng cửa")
    svc.act(code, YT, Resolve(T0 + H, YT, "Sở Y tế đã liên hệ ông Bình qua số 0912345678 và "
                                          "trạm đã mở cửa lại"))
    # The shipped config publishes nothing by itself: a supervisor's review does.
    assert svc.public_feed("dongnai") == []
    svc.act(code, SUP, SetPublishable(T0 + H, SUP, True))
    hidden = _forwarded(svc, publishable=False)
    svc.act(hidden, YT, Resolve(T0 + H, YT, "xong"))
    _forwarded(svc)  # still open: not in the feed
    feed = svc.public_feed("dongnai")
    assert [i["code"] for i in feed] == [code]
    item = feed[0]
    assert (item["field_name"], item["unit_name"], item["received_date"]) == (
        "Y tế", "Sở Y tế", "2026-11-23")
    text = item["question"] + " " + item["answer"]
    for secret in ("Nguyễn Văn Bình", "0912", "345", "075123456789", "12 đường Lê Lợi"):
        assert secret not in text, (secret, text)
    assert "[họ tên]" in item["question"] and "[số điện thoại]" in item["answer"]
    assert "trạm y tế xã An Phước đóng cửa" in item["question"]
    assert set(item) == {"code", "field", "field_name", "unit", "unit_name", "received_date",
                         "answered_date", "question", "answer"}
    assert svc.public_feed("dongnai", field="transport") == []
    assert svc.public_feed("dongnai", month="2026-10") == []
    assert len(svc.public_feed("dongnai", month="2026-11", unit="so_y_te")) == 1
    svc.act(code, SUP, SetPublishable(T0 + 2 * H, SUP, False))
    assert svc.public_feed("dongnai") == []


def test_given_ticket_when_dict_then_clocks_at_now(svc: TicketService) -> None:
    code = _forwarded(svc)
    d = ticket_dict(svc.get(code, OP), T0 + 25 * H)
    assert (d["state"], d["late"], d["days_late"], d["time_left_s"]) == (
        "forwarded", True, 1, -3600)
    assert d["received_at"] == T0.isoformat() and d["call_ids"] == []


def test_given_unit_user_without_unit_when_listing_then_forbidden(svc: TicketService) -> None:
    with pytest.raises(TicketError) as e:
        svc.list(Actor("x", "unit"))
    assert e.value.id == "ticket.forbidden"


def test_given_large_batch_with_awkward_text_when_opened_then_every_value_round_trips(
        svc: TicketService) -> None:
    from callcenter.tickets.service import NewTicket

    awkward = "Tab\there, new\nline, back\\slash, 'quotes' \"double\", \\N, NULL, Ồ ữ ậ đ"
    reqs = [NewTicket("email", f"{awkward} #{i}", "health" if i % 2 else "other",
                      place="bien_hoa.tan_phong" if i % 3 else None,
                      citizen_name="Phạm Thị \\ Hoa" if i % 4 else None,
                      citizen_phone="0912345678" if i % 5 else None, urgent=i % 2 == 1,
                      call_ids=(f"pbx1:{i}.1", f"pbx1:{i}.2"), publishable=i % 2 == 0,
                      at=T0 + i * M, answer="Trả lời\tFAQ\n\\" if i % 7 == 0 else None,
                      faq_item="f\\1" if i % 7 == 0 else None)
            for i in range(40)]  # enough for the PostgreSQL COPY path
    opened = svc.open_many("dongnai", SUP, reqs)  # a supervisor: half are publishable
    for t in opened:
        assert svc.get(t.code, OP) == t
    assert opened[0].content == f"{awkward} #0" and opened[7].result == "Trả lời\tFAQ\n\\"
    assert len(svc.audit(opened[7].code, OP)) == 2 and len(svc.audit(opened[1].code, OP)) == 1
    assert [x.code for x in svc.tickets_of_call("pbx1:39.2")] == [opened[39].code]
