"""Who may call a caller back from the console, and what an unanswered attempt's cause means."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.calls import dialback as rules


def refusal(**over: Any) -> str | None:
    args: dict[str, Any] = dict(role="operator", user_tenant="dongnai",
                                callback_tenant="dongnai", callback_status="open",
                                extension="101", tenant_extensions={"101", "102"},
                                busy_extensions=set(), dialling=False)
    args.update(over)
    return rules.dial_refusal(**args)


def test_given_own_tenant_operator_free_phone_open_request_then_may_dial() -> None:
    assert refusal() is None
    assert refusal(role="supervisor", extension="102") is None


@pytest.mark.parametrize(("over", "why"), [
    ({"callback_tenant": "thanhhoa"}, rules.NOT_FOUND),  # another tenant's: as good as absent
    ({"callback_tenant": None}, rules.NOT_FOUND),
    ({"role": "admin"}, rules.FORBIDDEN),
    ({"role": "unit"}, rules.FORBIDDEN),
    ({"callback_status": "done"}, rules.CLOSED),
    ({"extension": "tdv.an"}, rules.NO_EXTENSION),
    ({"dialling": True}, rules.DIALLING),
    ({"busy_extensions": {"101"}}, rules.OPERATOR_BUSY),
])
def test_given_a_reason_when_asked_then_refused_with_its_id(over: dict[str, Any],
                                                           why: str) -> None:
    assert refusal(**over) == why


def test_given_another_tenant_admin_then_not_found_before_forbidden() -> None:
    assert refusal(role="admin", callback_tenant="thanhhoa") == rules.NOT_FOUND


def test_given_every_refusal_then_vietnamese_message_and_busy_is_409() -> None:
    ids = [v for k, v in vars(rules).items() if k.isupper() and isinstance(v, str)
           and v.startswith("callback.")]
    assert set(ids) == set(rules.MESSAGES)
    assert rules.STATUS.get(rules.OPERATOR_BUSY, 409) == 409
    assert "cuộc gọi" in rules.MESSAGES[rules.OPERATOR_BUSY]


@pytest.mark.parametrize(("cause", "result"), [
    (17, rules.BUSY), (21, rules.BUSY), (19, rules.NO_ANSWER), (18, rules.NO_ANSWER),
    (16, rules.NO_ANSWER), (None, rules.NO_ANSWER), (34, rules.FAILED), (1, rules.FAILED)])
def test_given_hangup_cause_then_attempt_result(cause: int | None, result: str) -> None:
    assert rules.attempt_result(cause) == result


def test_given_night_pool_full_requests_then_listed_first_oldest_first_in_each_group() -> None:
    from types import SimpleNamespace as R

    queue_old = R(id=1, source="queue", requested_at=1)
    night_late = R(id=2, source="pool_full", requested_at=5)
    night_early = R(id=3, source="pool_full", requested_at=3)
    queue_new = R(id=4, source="queue", requested_at=6)
    ordered = rules.call_back_order([queue_old, night_late, night_early, queue_new])
    assert [r.id for r in ordered] == [3, 2, 1, 4]


def test_given_open_and_closed_requests_then_to_do_list_has_pool_full_first_closed_after(
        ) -> None:
    from types import SimpleNamespace as R

    rows = [R(id=1, source="queue", requested_at=1, status="open"),
            R(id=2, source="pool_full", requested_at=5, status="open"),
            R(id=3, source="pool_full", requested_at=0, status="done"),
            R(id=4, source="queue", requested_at=2, status="cancelled")]
    assert [r.id for r in rules.to_do_order(rows)] == [2, 1, 3, 4]  # closed ones keep their order
