"""Disclosure after review (pure): resolved -> pending review -> published / declined, the
edited public texts kept apart from the original, republishing, reopening, the audit lines."""

from __future__ import annotations

import pytest

from callcenter.tickets import rules as tk
from callcenter.tickets.config import TicketError
from callcenter.tickets.rules import S
from tests.unit.tickets.test_rules import AT, CODE, OP, POLICY, SUP, YT, H, in_state, new, run

ADMIN = tk.Actor("adm1", "admin")
Q = "Người dân phản ánh trạm y tế xã chưa tiêm vắc xin cho trẻ."
A = "Sở Y tế đã chỉ đạo trạm y tế xã tổ chức tiêm bù trong tuần."


def _audit(effects: list[tk.Effect]) -> tk.AuditEntry:
    (entry,) = [e for e in effects if isinstance(e, tk.AuditEntry)]
    return entry


@pytest.mark.parametrize("state", [S.NEW, S.FORWARDED, S.IN_PROGRESS, S.RETURNED, S.REOPENED])
def test_given_ticket_without_result_when_asked_then_not_ready_for_review(
        state: tk.TicketState) -> None:
    assert tk.review_status(in_state(state)) == "not_ready"


@pytest.mark.parametrize("state", [S.ANSWERED, S.RESOLVED, S.CLOSED])
def test_given_answered_or_resolved_when_not_reviewed_then_pending_and_not_public(
        state: tk.TicketState) -> None:
    t = in_state(state)
    assert tk.review_status(t) == "pending"
    assert not tk.is_public(t)


def test_given_pending_when_published_with_edits_then_public_texts_apart_from_original() -> None:
    t = in_state(S.RESOLVED)
    t2, effects = tk.apply(t, tk.Publish(AT, SUP, Q, A), POLICY)
    assert tk.review_status(t2) == "published" and tk.is_public(t2)
    assert (t2.public_question, t2.public_answer) == (Q, A)
    assert (t2.content, t2.result) == (t.content, t.result)  # the original is never changed
    assert t2.state is S.RESOLVED and t2.version == t.version + 1
    audit = _audit(effects)
    assert audit.event == "publish" and audit.actor == SUP
    assert audit.detail.startswith("published; question edited: «Người dân phản ánh")
    assert "answer edited: «Sở Y tế đã chỉ đạo" in audit.detail
    assert len(effects) == 1  # no SMS, no clock


def test_given_published_when_published_again_with_new_answer_then_replaced_and_audited() -> None:
    t = run(in_state(S.RESOLVED), tk.Publish(AT, SUP, Q, A))
    t2, effects = tk.apply(t, tk.Publish(AT + H, ADMIN, None, "Đã tiêm bù xong."), POLICY)
    assert (t2.public_question, t2.public_answer) == (Q, "Đã tiêm bù xong.")
    detail = _audit(effects).detail
    assert detail.startswith("published again; question unchanged; answer edited:")


def test_given_no_edits_when_published_then_masked_original_said_in_audit() -> None:
    t2, effects = tk.apply(in_state(S.ANSWERED), tk.Publish(AT, SUP), POLICY)
    assert t2.public_question is None and t2.public_answer is None and t2.publishable
    assert _audit(effects).detail == ("published; question: masked original; "
                                      "answer: masked original")


def test_given_pending_when_declined_then_reason_kept_and_not_public() -> None:
    t2, effects = tk.apply(in_state(S.RESOLVED), tk.Decline(AT, SUP, "Thông tin riêng tư"),
                           POLICY)
    assert tk.review_status(t2) == "declined" and not tk.is_public(t2)
    assert t2.decline_reason == "Thông tin riêng tư"
    assert _audit(effects).detail == "declined for publication: Thông tin riêng tư"


def test_given_published_when_declined_then_withdrawn() -> None:
    t = run(in_state(S.RESOLVED), tk.Publish(AT, SUP, Q, A))
    t2, effects = tk.apply(t, tk.Decline(AT + H, SUP, "Có khiếu nại"), POLICY)
    assert not t2.publishable and tk.review_status(t2) == "declined"
    assert _audit(effects).detail.startswith("withdrawn and declined")


def test_given_declined_when_published_then_reason_cleared() -> None:
    t = run(in_state(S.RESOLVED), tk.Decline(AT, SUP, "Chờ ý kiến"))
    t2 = run(t, tk.Publish(AT + H, SUP, Q, None))
    assert tk.review_status(t2) == "published" and t2.decline_reason is None


def test_given_published_when_reopened_then_withdrawn_and_review_cleared() -> None:
    t = run(in_state(S.RESOLVED), tk.Publish(AT, SUP, Q, A))
    t2, effects = tk.apply(t, tk.Reopen(AT + H, OP, "Chưa thỏa đáng"), POLICY)
    assert not t2.publishable and t2.public_question is None and t2.public_answer is None
    assert "withdrawn from publication" in _audit(effects).detail
    t3 = run(t2, tk.Forward(AT + 2 * H, OP, "so_y_te"), tk.Resolve(AT + 3 * H, YT, "Đã tiêm"))
    assert tk.review_status(t3) == "pending"  # the new result is reviewed afresh


@pytest.mark.parametrize("who", [OP, YT, tk.Actor("job", "system")])
def test_given_not_oversight_when_publish_or_decline_then_forbidden(who: tk.Actor) -> None:
    t = in_state(S.RESOLVED)
    for e in (tk.Publish(AT, who, Q, A), tk.Decline(AT, who, "Lý do")):
        with pytest.raises(TicketError) as info:
            tk.apply(t, e, POLICY)
        assert info.value.id == "ticket.forbidden"


@pytest.mark.parametrize("text", [
    "Gọi lại cho 0912 345 678 để biết thêm.", "Liên hệ +84912345678.",
    "Ông nguyễn văn  an phản ánh trạm y tế."])
def test_given_public_text_with_citizens_number_or_name_when_published_then_refused(
        text: str) -> None:
    t = in_state(S.RESOLVED)
    for e in (tk.Publish(AT, SUP, text, None), tk.Publish(AT, SUP, None, text)):
        with pytest.raises(TicketError) as info:
            tk.apply(t, e, POLICY)
        assert info.value.id == "ticket.personal_data"


def test_given_closed_without_result_when_published_or_declined_then_illegal() -> None:
    t = run(new(), tk.Close(AT, SUP, "Trùng phản ánh"))
    assert tk.review_status(t) == "not_ready"
    for e in (tk.Publish(AT + H, SUP, Q, A), tk.Decline(AT + H, SUP, "x")):
        with pytest.raises(TicketError) as info:
            tk.apply(t, e, POLICY)
        assert info.value.id == "ticket.illegal_transition"


def test_given_empty_decline_reason_when_declined_then_refused() -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(in_state(S.RESOLVED), tk.Decline(AT, SUP, "  "), POLICY)
    assert info.value.id == "ticket.invalid_text"


def test_given_withdrawn_by_set_publishable_when_asked_then_back_to_pending() -> None:
    t = run(in_state(S.RESOLVED), tk.Decline(AT, SUP, "x"), tk.SetPublishable(AT, SUP, True))
    assert tk.review_status(t) == "published" and t.decline_reason is None
    t = run(t, tk.SetPublishable(AT + H, SUP, False))
    assert tk.review_status(t) == "pending"


def test_given_code_of_ticket_when_published_then_audit_names_it() -> None:
    _, effects = tk.apply(in_state(S.RESOLVED), tk.Publish(AT, SUP, Q, A), POLICY)
    assert _audit(effects).code == CODE


def test_given_review_audit_details_when_shown_in_console_then_vietnamese() -> None:
    from callcenter.console.listing import EVENT_LABELS, audit_note

    _, effects = tk.apply(in_state(S.RESOLVED), tk.Publish(AT, SUP, None, A), POLICY)
    note = audit_note("publish", _audit(effects).detail, units={}, fields={})
    assert note == ("Công khai; câu hỏi: bản gốc đã che thông tin cá nhân; "
                    f"trả lời đã biên tập: «{A}»")
    assert audit_note("decline", "declined for publication: Riêng tư", units={},
                      fields={}) == "Không công khai, lý do: Riêng tư"
    assert EVENT_LABELS["publish"] == "Rà soát: công khai"
