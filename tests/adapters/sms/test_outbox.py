"""The SMS outbox store and its migration, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session

from callcenter.sms.store import (
    DLR_BUFFERED,
    DLR_DELIVERED,
    DLR_SMSC_ACK,
    DLR_SMSC_REJECT,
    DLR_UNDELIVERED,
    BillingRow,
    DeliveryReport,
    SmsOutbox,
    enqueue,
    month_bounds,
)
from callcenter.store.migrate import alembic_config, upgrade_head
from callcenter.store.urls import normalise_url
from tests.support.concurrency import run_together
from tests.support.schema import model_diff

NOTICE = "Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải quyết. Xin cảm ơn!"
T0 = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)  # 10:00 in Đồng Nai
S = dt.timedelta(seconds=1)


@pytest.fixture
def outbox(database_url: str) -> Iterator[SmsOutbox]:
    """An outbox on a migrated database."""
    upgrade_head(database_url)
    box = SmsOutbox(database_url)
    yield box
    box.close()


def _add(box: SmsOutbox, n: int, *, tenant: str = "dongnai", text: str = NOTICE,
         now: dt.datetime = T0, **kw: object) -> int:
    new_id = box.enqueue(tenant=tenant, to_number=f"09090{n:05d}", text=text,
                         purpose="resolve_notice", dedupe_key=f"resolve:DN-20261123-{n:04d}",
                         now=now, **kw)  # type: ignore[arg-type]
    assert new_id is not None
    return new_id


def _heads(url: str) -> tuple[set[str], list[str]]:
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return (set(sa.inspect(conn).get_table_names()),
                    list(MigrationContext.configure(conn).get_current_heads()))
    finally:
        engine.dispose()


# -- migration ----------------------------------------------------------------------------


def test_given_0003_when_upgraded_downgraded_and_upgraded_again_then_clean(
        database_url: str) -> None:
    upgrade_head(database_url)
    tables, heads = _heads(database_url)
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert "sms_messages" in tables and heads == [head]
    cfg = alembic_config(database_url)
    command.downgrade(cfg, "0002")
    tables, heads = _heads(database_url)
    assert "sms_messages" not in tables and heads == ["0002"]
    upgrade_head(database_url)
    assert "sms_messages" in _heads(database_url)[0]


def test_given_migrated_database_when_compared_to_outbox_model_then_no_difference(
        database_url: str) -> None:
    diff = model_diff(database_url, ["sms_messages"])
    assert diff == []


# -- enqueue ------------------------------------------------------------------------------


def test_given_vietnamese_notice_when_enqueued_then_ucs2_two_parts_queued(
        outbox: SmsOutbox) -> None:
    msg_id = outbox.enqueue(tenant="dongnai", to_number="+84 909.000.111", text=NOTICE,
                            purpose="resolve_notice", dedupe_key="resolve:DN-20261123-0042",
                            now=T0)
    assert msg_id is not None
    m = outbox.get(msg_id)
    assert m is not None
    assert (m.to_number, m.coding, m.parts, m.status, m.attempts) == (
        "0909000111", "ucs2", 2, "queued", 0)
    assert (m.text, m.next_attempt_at, m.created_at) == (NOTICE, T0, T0)


def test_given_same_dedupe_key_when_enqueued_twice_then_one_row(outbox: SmsOutbox) -> None:
    first = _add(outbox, 42)
    again = outbox.enqueue(tenant="dongnai", to_number="0909999999", text="khác",
                           purpose="resolve_notice", dedupe_key="resolve:DN-20261123-0042")
    assert again is None
    assert outbox.counts() == {"queued": 1}
    m = outbox.get(first)
    assert m is not None and m.to_number == "0909000042"


def test_given_caller_transaction_when_rolled_back_then_no_sms(outbox: SmsOutbox) -> None:
    with outbox.engine.connect() as conn:
        with conn.begin() as tx:
            enqueue(conn, tenant="dongnai", to_number="0909000111", text=NOTICE,
                    purpose="resolve_notice", dedupe_key="resolve:A")
            tx.rollback()
    assert outbox.counts() == {}


def test_given_session_with_duplicate_key_when_committed_then_other_work_kept(
        outbox: SmsOutbox) -> None:
    _add(outbox, 1)
    with Session(outbox.engine) as session, session.begin():
        # A duplicate inside the caller's transaction must not abort it (PostgreSQL).
        assert enqueue(session, tenant="dongnai", to_number="0909000001", text=NOTICE,
                       purpose="resolve_notice", dedupe_key="resolve:DN-20261123-0001") is None
        assert enqueue(session, tenant="dongnai", to_number="0909000002", text="Hen gap lai",
                       purpose="reminder", dedupe_key="reminder:B") is not None
    assert outbox.counts() == {"queued": 2}
    m = outbox.by_dedupe_key("reminder:B")
    assert m is not None and (m.coding, m.parts) == ("gsm7", 1)


@pytest.mark.parametrize(("number", "text"), [
    ("abc", NOTICE), ("09", NOTICE), ("0909000111", "   "), ("0909000111", "ơ" * 671),
])
def test_given_bad_number_or_text_when_enqueued_then_refused(
        outbox: SmsOutbox, number: str, text: str) -> None:
    with pytest.raises(ValueError):
        outbox.enqueue(tenant="dongnai", to_number=number, text=text, purpose="reminder",
                       dedupe_key="x")
    assert outbox.counts() == {}


# -- claiming and marking -----------------------------------------------------------------


def test_given_due_and_future_messages_when_claimed_then_only_due_in_order(
        outbox: SmsOutbox) -> None:
    a = _add(outbox, 1, now=T0)
    b = _add(outbox, 2, now=T0 - S)
    _add(outbox, 3, now=T0 + 10 * S)
    claimed = outbox.claim_due(T0, limit=10)
    assert [m.id for m in claimed] == [b, a]
    assert {m.status for m in claimed} == {"sending"} and {m.attempts for m in claimed} == {1}
    assert len({m.claim_token for m in claimed}) == 1
    assert outbox.claim_due(T0, limit=10) == []  # taken already
    assert outbox.counts() == {"sending": 2, "queued": 1}


def test_given_expired_message_when_claiming_then_expired_not_sent(outbox: SmsOutbox) -> None:
    gone = _add(outbox, 1, expires_at=T0 - S)
    ok = _add(outbox, 2, expires_at=T0 + S)
    assert [m.id for m in outbox.claim_due(T0, 10)] == [ok]
    m = outbox.get(gone)
    assert m is not None and m.status == "expired"


def test_given_claim_when_retried_then_queued_later_with_error(outbox: SmsOutbox) -> None:
    msg_id = _add(outbox, 1)
    (m,) = outbox.claim_due(T0, 1)
    assert m.claim_token is not None
    assert outbox.mark_retry(msg_id, m.claim_token, T0, 5 * S, "connection refused")
    assert outbox.claim_due(T0 + 4 * S, 1) == []
    (again,) = outbox.claim_due(T0 + 5 * S, 1)
    assert (again.attempts, again.last_error) == (2, "connection refused")
    assert again.claim_token is not None
    assert not outbox.mark_sent(msg_id, m.claim_token, T0 + 6 * S)  # the old claim is void
    assert outbox.mark_sent(msg_id, again.claim_token, T0 + 6 * S)
    sent = outbox.get(msg_id)
    assert sent is not None
    assert (sent.status, sent.sent_at, sent.last_error) == ("sent", T0 + 6 * S, None)


def test_given_rejected_request_when_marked_failed_then_final_and_not_billed(
        outbox: SmsOutbox) -> None:
    msg_id = _add(outbox, 1)
    (m,) = outbox.claim_due(T0, 1)
    assert m.claim_token is not None
    assert outbox.mark_failed(msg_id, m.claim_token, T0, "400 bad number")
    assert outbox.claim_due(T0 + 3600 * S, 5) == []
    assert outbox.report("2026-11") == []


def test_given_claimed_but_unsent_when_released_then_queued_as_before(outbox: SmsOutbox) -> None:
    a, b = _add(outbox, 1), _add(outbox, 2)
    claimed = outbox.claim_due(T0, 2)
    assert outbox.release([a, b], "not-the-token") == 0
    assert outbox.release([a, b], claimed[0].claim_token or "") == 2
    again = outbox.claim_due(T0, 2)
    assert [(m.id, m.attempts) for m in again] == [(a, 1), (b, 1)]


def test_given_dispatcher_died_when_stuck_long_enough_then_requeued(outbox: SmsOutbox) -> None:
    msg_id = _add(outbox, 1)
    (m,) = outbox.claim_due(T0, 1)
    assert m.claim_token is not None
    assert outbox.note_unknown(msg_id, m.claim_token, "timeout after sending")
    assert outbox.requeue_stuck(T0 + 59 * S, older_than=60 * S) == 0
    assert outbox.requeue_stuck(T0 + 61 * S, older_than=60 * S) == 1
    (again,) = outbox.claim_due(T0 + 61 * S, 1)
    assert again.attempts == 2 and "requeued" in (again.last_error or "")


def test_given_report_before_mark_sent_when_both_arrive_then_delivered_and_sent_at_kept(
        outbox: SmsOutbox) -> None:
    msg_id = _add(outbox, 1)
    (m,) = outbox.claim_due(T0, 1)
    assert m.claim_token is not None
    assert outbox.mark_dlr(msg_id, DLR_DELIVERED, T0 + S, smsc_id="fake") == "delivered"
    assert outbox.mark_sent(msg_id, m.claim_token, T0 + 2 * S) is False
    got = outbox.get(msg_id)
    assert got is not None
    assert (got.status, got.delivered_at, got.sent_at, got.smsc_id) == (
        "delivered", T0 + S, T0 + S, "fake")
    assert outbox.requeue_stuck(T0 + 3600 * S, 60 * S) == 0


def test_given_report_after_requeue_when_applied_then_not_sent_again(outbox: SmsOutbox) -> None:
    msg_id = _add(outbox, 1)
    outbox.claim_due(T0, 1)
    assert outbox.requeue_stuck(T0 + 61 * S, 60 * S) == 1
    assert outbox.mark_dlr(msg_id, DLR_SMSC_ACK, T0 + 62 * S) == "sent"
    assert outbox.claim_due(T0 + 63 * S, 1) == []


@pytest.mark.parametrize(("reports", "final"), [
    ((DLR_DELIVERED, DLR_SMSC_ACK), "delivered"),  # Kannel's fake SMSC: 1 before 8
    ((DLR_SMSC_ACK, DLR_BUFFERED, DLR_DELIVERED), "delivered"),
    ((DLR_SMSC_ACK, DLR_UNDELIVERED), "failed"),
    ((DLR_SMSC_REJECT, DLR_DELIVERED), "failed"),
    ((DLR_BUFFERED,), "sent"),
])
def test_given_reports_in_any_order_when_applied_then_final_status_sticks(
        outbox: SmsOutbox, reports: tuple[int, ...], final: str) -> None:
    msg_id = _add(outbox, 1)
    (m,) = outbox.claim_due(T0, 1)
    assert m.claim_token is not None
    outbox.mark_sent(msg_id, m.claim_token, T0)
    for i, kind in enumerate(reports):
        outbox.mark_dlr(msg_id, kind, T0 + (i + 1) * S, detail=f"r{i}")
    got = outbox.get(msg_id)
    assert got is not None and got.status == final


def test_given_many_marks_and_reports_when_applied_in_one_batch_then_each_applied(
        outbox: SmsOutbox) -> None:
    ids = [_add(outbox, n) for n in range(4)]
    claimed = outbox.claim_due(T0, 4)
    # A report for the last one arrives before the dispatcher's batch is written.
    assert outbox.mark_dlr(ids[3], DLR_SMSC_ACK, T0) == "sent"
    outbox.mark_sent_many([(m.id, m.claim_token or "") for m in claimed], T0 + S)
    assert [outbox.get(i).sent_at for i in ids] == [T0 + S] * 3 + [T0]  # type: ignore[union-attr]
    statuses = outbox.apply_reports([
        DeliveryReport(ids[0], DLR_DELIVERED, "DELIVRD", "fake", "f0"),
        DeliveryReport(ids[1], DLR_SMSC_ACK),
        DeliveryReport(ids[0], DLR_SMSC_ACK, "ACK/"),  # late: delivered stays
        DeliveryReport(ids[2], DLR_SMSC_REJECT, "REJECTD"),
        DeliveryReport(999, DLR_DELIVERED),
    ], T0 + 2 * S)
    assert statuses == ["delivered", "sent", "delivered", "failed", None]
    first = outbox.get(ids[0])
    assert first is not None
    assert (first.dlr_type, first.dlr_detail, first.smsc_id, first.smsc_message_id,
            first.delivered_at) == (DLR_DELIVERED, "DELIVRD", "fake", "f0", T0 + 2 * S)


def test_given_unknown_message_or_type_when_reported_then_none_or_refused(
        outbox: SmsOutbox) -> None:
    assert outbox.mark_dlr(999, DLR_DELIVERED, T0) is None
    with pytest.raises(ValueError):
        outbox.mark_dlr(999, 3, T0)


def test_given_many_claimers_at_once_when_claiming_then_each_message_claimed_once(
        outbox: SmsOutbox) -> None:
    with outbox.engine.begin() as conn:
        for n in range(120):
            enqueue(conn, tenant="dongnai", to_number=f"09{n:08d}", text="Xin chao",
                    purpose="reminder", dedupe_key=f"race:{n}", now=T0)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim() -> None:
        while batch := outbox.claim_due(T0, 7):
            with lock:
                claimed.extend(m.id for m in batch)

    assert run_together(claim, 6) == []
    assert len(claimed) == 120 and len(set(claimed)) == 120
    assert outbox.counts() == {"sending": 120}


# -- billing report -----------------------------------------------------------------------


def test_given_month_when_bounded_then_local_calendar_month_in_utc() -> None:
    start, end = month_bounds("2026-12")
    assert start == dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 12, 31, 17, 0, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        month_bounds("2026-13")


def test_given_sent_messages_when_reported_then_messages_parts_outcomes_per_tenant(
        outbox: SmsOutbox) -> None:
    nov_last_local = dt.datetime(2026, 11, 30, 16, 59, tzinfo=dt.UTC)  # 23:59 on 30 Nov (ICT)
    dec_first_local = dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC)  # 00:00 on 1 Dec (ICT)
    cases = [  # tenant, text, sent at, report
        ("dongnai", NOTICE, T0, DLR_DELIVERED),
        ("dongnai", "Xin chao", T0, DLR_UNDELIVERED),
        ("dongnai", NOTICE, nov_last_local, None),
        ("thanhhoa", "ơ" * 140, T0, DLR_DELIVERED),
        ("thanhhoa", NOTICE, dec_first_local, DLR_DELIVERED),
    ]
    for n, (tenant, text, at, report) in enumerate(cases):
        msg_id = _add(outbox, n, tenant=tenant, text=text, now=at)
        (m,) = outbox.claim_due(at, 1)
        assert m.claim_token is not None
        outbox.mark_sent(msg_id, m.claim_token, at)
        if report is not None:
            outbox.mark_dlr(msg_id, report, at + S)
    _add(outbox, 99, tenant="dongnai")  # still queued: not billed
    assert outbox.report("2026-11") == [
        BillingRow("dongnai", messages=3, parts=5, delivered=1, failed=1),
        BillingRow("thanhhoa", messages=1, parts=3, delivered=1, failed=0),
    ]
    assert outbox.report("2026-12") == [BillingRow("thanhhoa", 1, 2, 1, 0)]
    assert outbox.report("2025-01") == []
