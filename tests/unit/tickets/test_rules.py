"""The ticket state machine: every legal and illegal transition, roles, effects, codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.sms.parts import sms_parts
from callcenter.tickets import deadlines as dl
from callcenter.tickets import rules as tk
from callcenter.tickets.config import (
    RESOLVED_TEXT,
    ChasingPolicy,
    Commune,
    DeadlinePolicy,
    District,
    FocalPerson,
    Level2Unit,
    RoutingRule,
    SurveyPolicy,
    TicketError,
    TicketPolicy,
)
from callcenter.tickets.rules import S

VN = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = dt.datetime(2026, 11, 23, 8, 0, tzinfo=VN)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
CODE = "DN-20261123-0042"

OP = tk.Actor("op1", "operator")
SUP = tk.Actor("sup1", "supervisor")
ADMIN = tk.Actor("adm1", "admin")
YT = tk.Actor("yt1", "unit", "so_y_te")  # the unit the tickets below are forwarded to
LT = tk.Actor("lt1", "unit", "ubnd_lt")  # another unit
SYSTEM = tk.Actor("reminder-job", "system")
ACTORS = {"operator": OP, "supervisor": SUP, "admin": ADMIN, "holder": YT, "other_unit": LT,
          "system": SYSTEM}

POLICY = TicketPolicy(
    code_prefix="DN",
    units=(
        Level2Unit("so_y_te", "Sở Y tế", "department",
                   (FocalPerson("Trần Thị Bình", "0987654321"),
                    FocalPerson("Lê Văn Cường", "0903111222"))),
        Level2Unit("ubnd_lt", "UBND huyện Long Thành", "district",
                   (FocalPerson("Phạm Văn Dũng", "0912000111"),), places=("long_thanh",)),
        Level2Unit("vp", "Văn phòng UBND tỉnh", "department",
                   (FocalPerson("Võ Thị Em", "0912000222"),)),
    ),
    districts=(District("long_thanh", "Huyện Long Thành",
                        (Commune("long_thanh.an_phuoc", "Xã An Phước", "long_thanh"),)),),
    routing=(RoutingRule("so_y_te", "health", None), RoutingRule("ubnd_lt", None, "long_thanh")),
    fallback_unit="vp",
    # Chase needs it (other events ignore it): the table below chases at the deadline.
    chasing=ChasingPolicy(at_deadline=True, daily_at=None, escalate_after=None),
)


def new(phone: str | None = "0912345678", field: str = "health",
        policy: TicketPolicy = POLICY) -> tk.Ticket:
    ticket, _ = tk.open_ticket(policy, code=CODE, tenant="dongnai", channel="phone",
                               content="Người dân phản ánh chưa được tiêm vắc xin.", field=field,
                               at=T0, actor=OP, place="long_thanh.an_phuoc",
                               citizen_name="Nguyễn Văn An", citizen_phone=phone,
                               call_ids=("pbx1-1700000000.1",))
    return ticket


def run(t: tk.Ticket, *events: tk.Event) -> tk.Ticket:
    for e in events:
        t, _ = tk.apply(t, e, POLICY)
    return t


# A path to each state, and the times used along it.
def in_state(state: tk.TicketState) -> tk.Ticket:
    t = new()
    fwd = tk.Forward(T0 + 10 * M, OP, "so_y_te")
    paths: dict[tk.TicketState, list[tk.Event]] = {
        S.NEW: [],
        S.ANSWERED: [tk.Answer(T0 + 5 * M, OP, "Trả lời theo FAQ", "YT-01")],
        S.FORWARDED: [fwd],
        S.IN_PROGRESS: [fwd, tk.Accept(T0 + 20 * M, YT)],
        S.RESOLVED: [fwd, tk.Accept(T0 + 20 * M, YT), tk.Resolve(T0 + 2 * H, YT, "Đã tiêm")],
        S.CLOSED: [fwd, tk.Resolve(T0 + 2 * H, YT, "Đã tiêm"), tk.Close(T0 + 3 * H, OP)],
        S.RETURNED: [fwd, tk.Return(T0 + H, YT, "Không thuộc thẩm quyền")],
        S.REOPENED: [fwd, tk.Resolve(T0 + 2 * H, YT, "Đã tiêm"),
                     tk.Reopen(T0 + 3 * H, OP, "Người dân chưa được tiêm")],
    }
    t = run(t, *paths[state])
    assert t.state is state
    return t


AT = T0 + 23 * H  # after every path above, and after the reminder time (T0 + 22 h)


def event(kind: type[tk.Event], state: tk.TicketState, actor: tk.Actor = SUP) -> tk.Event:
    makers: dict[type[tk.Event], Callable[[], tk.Event]] = {
        tk.Answer: lambda: tk.Answer(AT, actor, "Trả lời"),
        tk.Forward: lambda: tk.Forward(AT, actor, "ubnd_lt" if state in tk.AT_UNIT
                                       else "so_y_te"),
        tk.Accept: lambda: tk.Accept(AT, actor),
        tk.Resolve: lambda: tk.Resolve(AT, actor, "Kết quả"),
        tk.Return: lambda: tk.Return(AT, actor, "Lý do"),
        tk.Close: lambda: tk.Close(AT, actor, "Trùng phản ánh"),
        tk.Reopen: lambda: tk.Reopen(AT, actor, "Chưa thỏa đáng"),
        tk.Reclassify: lambda: tk.Reclassify(AT, actor, "transport", "long_thanh", False),
        tk.SetPublishable: lambda: tk.SetPublishable(AT, actor, True),
        tk.Publish: lambda: tk.Publish(AT, actor, "Câu hỏi đã biên tập", None),
        tk.Decline: lambda: tk.Decline(AT, actor, "Nội dung riêng tư"),
        tk.Remind: lambda: tk.Remind(AT, actor),
        tk.Chase: lambda: tk.Chase(AT, actor),
        tk.LinkCall: lambda: tk.LinkCall(AT, actor, "pbx1-1700000999.7"),
        tk.Satisfied: lambda: tk.Satisfied(AT, actor),
        tk.TransferCall: lambda: tk.TransferCall(AT, actor, "ubnd_lt", "pbx1:1700000999.7"),
    }
    return makers[kind]()


# The table, written out independently of the implementation's: (state, event) -> new state.
N, A, F, P, R, C, RT, RO = (S.NEW, S.ANSWERED, S.FORWARDED, S.IN_PROGRESS, S.RESOLVED,
                            S.CLOSED, S.RETURNED, S.REOPENED)
EXPECTED: dict[type[tk.Event], dict[tk.TicketState, tk.TicketState]] = {
    tk.Answer: {N: A, RT: A, RO: A},
    tk.Forward: {N: F, RT: F, RO: F, F: F, P: F},
    tk.Accept: {F: P},
    tk.Resolve: {F: R, P: R},
    tk.Return: {F: RT, P: RT},
    tk.Close: {N: C, RT: C, RO: C, R: C},
    tk.Reopen: {A: RO, R: RO, C: RO},
    tk.Reclassify: {N: N, RT: RT, RO: RO},
    tk.SetPublishable: {s: s for s in S},
    tk.Publish: {A: A, R: R, C: C},
    tk.Decline: {A: A, R: R, C: C},
    tk.Remind: {F: F, P: P},
    tk.Chase: {F: F, P: P},
    tk.LinkCall: {s: s for s in S},
    tk.Satisfied: {R: R, C: C},
    tk.TransferCall: {s: s for s in S},  # a call about it may come in any state
}


def late_for(kind: type[tk.Event], t: tk.Ticket) -> tk.Ticket:
    """The ticket, past its deadline at AT when the event is a Chase (which needs a late one)."""
    return replace(t, resolve_due=AT - H) if kind is tk.Chase else t
CASES = [(s, k) for k in EXPECTED for s in S]


def test_given_the_table_when_compared_then_implementation_has_exactly_these_events() -> None:
    assert set(tk.TRANSITIONS) == set(EXPECTED) == set(tk.EVENT_NAMES)


@pytest.mark.parametrize(("state", "kind"), CASES,
                         ids=[f"{s.value}-{k.__name__}" for s, k in CASES])
def test_given_state_when_event_then_legal_moves_and_illegal_refused(
        state: tk.TicketState, kind: type[tk.Event]) -> None:
    t = late_for(kind, in_state(state))
    e = event(kind, state)
    target = EXPECTED[kind].get(state)
    if target is None:
        with pytest.raises(TicketError) as info:
            tk.apply(t, e, POLICY)
        assert info.value.id == "ticket.illegal_transition"
        assert f"in state {state.value}" in info.value.message
        return
    t2, effects = tk.apply(t, e, POLICY)
    assert t2.state is target
    assert t2.version == t.version + 1
    audit = effects[0]
    assert isinstance(audit, tk.AuditEntry)
    assert (audit.from_state, audit.to_state, audit.event) == (state, target,
                                                               tk.EVENT_NAMES[kind])
    assert (audit.actor, audit.at, audit.code) == (SUP, AT.astimezone(dt.UTC), CODE)
    assert sum(isinstance(x, tk.AuditEntry) for x in effects) == 1


# ---- roles ------------------------------------------------------------------------------------
L1 = {"operator", "supervisor", "admin"}
OVERSIGHT = {"supervisor", "admin"}
UNIT_SIDE = {"holder", "supervisor", "admin"}


def allowed(kind: type[tk.Event], state: tk.TicketState) -> set[str]:
    if kind is tk.Forward:
        return L1 if state in (N, RT, RO) else OVERSIGHT
    if kind is tk.Close:
        return L1 if state is R else OVERSIGHT
    return {
        tk.Answer: L1, tk.Accept: UNIT_SIDE, tk.Resolve: UNIT_SIDE, tk.Return: UNIT_SIDE,
        # system: the citizen's survey answers by SMS (tickets.survey)
        tk.Reopen: L1 | {"system"}, tk.Reclassify: L1, tk.SetPublishable: OVERSIGHT,
        tk.Publish: OVERSIGHT, tk.Decline: OVERSIGHT,
        tk.Remind: OVERSIGHT | {"system"}, tk.Chase: OVERSIGHT | {"system"},
        tk.LinkCall: L1 | {"system"}, tk.Satisfied: OVERSIGHT | {"system"},
        # system: the warm transfer (callcenter.transfers.ari); units never record it
        tk.TransferCall: L1 | {"system"},
    }[kind]


ROLE_CASES = [(s, k, who) for k, moves in EXPECTED.items() for s in moves for who in ACTORS]


@pytest.mark.parametrize(("state", "kind", "who"), ROLE_CASES,
                         ids=[f"{s.value}-{k.__name__}-{w}" for s, k, w in ROLE_CASES])
def test_given_legal_event_when_actor_varies_then_only_allowed_roles_may(
        state: tk.TicketState, kind: type[tk.Event], who: str) -> None:
    t = late_for(kind, in_state(state))
    e = event(kind, state, ACTORS[who])
    if who in allowed(kind, state):
        assert tk.apply(t, e, POLICY)[0].state is EXPECTED[kind][state]
    else:
        with pytest.raises(TicketError) as info:
            tk.apply(t, e, POLICY)
        assert info.value.id == "ticket.forbidden"


def test_given_unit_user_without_unit_when_resolving_then_forbidden() -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(in_state(F), tk.Resolve(AT, tk.Actor("x", "unit"), "Kết quả"), POLICY)
    assert info.value.id == "ticket.forbidden" and "held by so_y_te" in info.value.message


# ---- opening ----------------------------------------------------------------------------------
def test_given_petition_when_opened_then_new_ticket_audited_and_clock_started() -> None:
    t, effects = tk.open_ticket(POLICY, code=CODE, tenant="dongnai", channel="zalo",
                                content="  Nội dung  ", field="health", at=T0, actor=OP,
                                place="long_thanh.an_phuoc", citizen_phone="+84 912 345 678",
                                call_ids=("c1", "c1", "c2"))
    assert t.state is S.NEW and t.version == 0
    assert (t.district, t.commune, t.place) == ("long_thanh", "long_thanh.an_phuoc",
                                                "long_thanh.an_phuoc")
    assert t.citizen_phone == "0912345678" and t.content == "Nội dung"
    assert t.call_ids == ("c1", "c2")
    assert t.received_at == T0 and t.received_at.tzinfo is dt.UTC
    assert t.publishable is False
    assert effects == [
        tk.AuditEntry(CODE, OP, T0, "open", None, S.NEW, "zalo, field health"),
        tk.StartClock(CODE, "resolve", T0 + 24 * H, None),
    ]


def test_given_urgent_health_when_opened_then_resolve_clock_is_4h() -> None:
    t, effects = tk.open_ticket(POLICY, code=CODE, tenant="dongnai", channel="phone",
                                content="Cấp cứu", field="health", at=T0, actor=OP, urgent=True)
    assert t.resolve_due == T0 + 4 * H
    assert effects[0] == tk.AuditEntry(CODE, OP, T0, "open", None, S.NEW,
                                       "phone, field health, urgent")


def test_given_tenant_publishing_by_default_when_opened_then_publishable() -> None:
    policy = TicketPolicy(code_prefix="DN", public_by_default=True)
    t, _ = tk.open_ticket(policy, code=CODE, tenant="x", channel="web", content="Hỏi",
                          field="other", at=T0, actor=OP)
    assert t.publishable is True
    t, _ = tk.open_ticket(policy, code=CODE, tenant="x", channel="web", content="Hỏi",
                          field="other", at=T0, actor=OP, publishable=False)
    assert t.publishable is False


@pytest.mark.parametrize("actor", [OP, SYSTEM])
def test_given_operator_or_system_when_opening_publishable_then_forbidden(
        actor: tk.Actor) -> None:
    for policy in (POLICY, TicketPolicy(code_prefix="DN", public_by_default=True)):
        with pytest.raises(TicketError) as info:
            tk.open_ticket(policy, code=CODE, tenant="dongnai", channel="phone", content="Hỏi",
                           field="other", at=T0, actor=actor, publishable=True)
        assert info.value.id == "ticket.forbidden"
        assert "giám sát viên hoặc quản trị viên" in info.value.message


@pytest.mark.parametrize("actor", [SUP, ADMIN])
def test_given_supervisor_or_admin_when_opening_publishable_then_publishable(
        actor: tk.Actor) -> None:
    t, _ = tk.open_ticket(POLICY, code=CODE, tenant="dongnai", channel="phone", content="Hỏi",
                          field="other", at=T0, actor=actor, publishable=True)
    assert t.publishable is True


@pytest.mark.parametrize(("changes", "error_id"), [
    ({"channel": "sms"}, "ticket.unknown_channel"),
    ({"field": "helth"}, "ticket.unknown_field"),
    ({"place": "nhon_trach"}, "ticket.unknown_place"),
    ({"citizen_phone": "12345"}, "ticket.invalid_phone"),
    ({"content": "   "}, "ticket.invalid_text"),
    ({"content": "x" * 10_001}, "ticket.invalid_text"),
    ({"code": "HCM-20261123-0042"}, "ticket.bad_code"),
    ({"code": "DN-2026-11-23-42"}, "ticket.bad_code"),
    ({"at": dt.datetime(2026, 11, 23, 8, 0)}, "ticket.naive_time"),
    ({"actor": YT}, "ticket.forbidden"),
])
def test_given_bad_input_when_opened_then_refused_with_stable_id(
        changes: dict[str, object], error_id: str) -> None:
    kwargs: dict[str, object] = {"code": CODE, "tenant": "dongnai", "channel": "phone",
                                 "content": "Nội dung", "field": "health", "at": T0,
                                 "actor": OP}
    kwargs.update(changes)
    with pytest.raises(TicketError) as info:
        tk.open_ticket(POLICY, **kwargs)  # type: ignore[arg-type]
    assert info.value.id == error_id
    assert str(info.value).startswith(error_id + ": ")


def test_given_fixed_line_citizen_when_opened_then_accepted() -> None:
    assert new(phone="0251.3822.123").citizen_phone == "02513822123"


# ---- effects of each move ---------------------------------------------------------------------
def test_given_new_ticket_when_forwarded_as_routed_then_unit_texted_and_clock_restarted() -> None:
    t, effects = tk.apply(new(), tk.Forward(T0 + 10 * M, OP, "so_y_te"), POLICY)
    assert t.state is S.FORWARDED and t.unit == "so_y_te" and t.forwarded_at == T0 + 10 * M
    text = ("Tổng đài 1022 chuyển phản ánh DN-20261123-0042 (Y tế, Xã An Phước, Huyện Long "
            "Thành) đến Sở Y tế. Hạn xử lý: 08:00 24/11/2026.")
    assert effects == [
        tk.AuditEntry(CODE, OP, T0 + 10 * M, "forward", S.NEW, S.FORWARDED,
                      "to so_y_te as routed (field rule field health -> so_y_te)"),
        tk.StartClock(CODE, "resolve", T0 + 24 * H, T0 + 22 * H),
        tk.NotifyUnit(CODE, "so_y_te", "forwarded", ("0987654321", "0903111222"), text,
                      T0 + 10 * M),
    ]


def test_given_audit_entry_when_logged_then_one_line_from_event_to() -> None:
    _, effects = tk.apply(new(), tk.Forward(T0 + 10 * M, OP, "so_y_te"), POLICY)
    assert str(effects[0]) == (
        "DN-20261123-0042 new -[forward]-> forwarded by operator:op1 at "
        "2026-11-23T01:10:00+00:00: to so_y_te as routed (field rule field health -> so_y_te)")
    _, effects = tk.open_ticket(POLICY, code=CODE, tenant="t", channel="web", content="x",
                                field="other", at=T0, actor=tk.Actor("w", "system"))
    assert str(effects[0]).startswith("DN-20261123-0042 - -[open]-> new by system:w at ")


def test_given_operator_override_when_forwarded_then_audit_names_the_rules_choice() -> None:
    _, effects = tk.apply(new(), tk.Forward(T0 + 10 * M, OP, "vp", "Người dân yêu cầu"), POLICY)
    audit = effects[0]
    assert isinstance(audit, tk.AuditEntry)
    assert audit.detail == ("to vp override: the rules give so_y_te (field rule field health "
                            "-> so_y_te); Người dân yêu cầu")


def test_given_forwarded_ticket_when_supervisor_reassigns_then_new_unit_texted() -> None:
    t, effects = tk.apply(in_state(P), tk.Forward(AT, SUP, "ubnd_lt"), POLICY)
    assert t.state is S.FORWARDED and t.unit == "ubnd_lt" and t.accepted_at is None
    assert any(isinstance(x, tk.NotifyUnit) and x.unit == "ubnd_lt" for x in effects)
    audit = effects[0]
    assert isinstance(audit, tk.AuditEntry) and audit.detail.startswith("from so_y_te to ubnd_lt")


@pytest.mark.parametrize(("unit", "error_id"), [("so_yte", "ticket.unknown_unit"),
                                                 ("so_y_te", "ticket.same_unit")])
def test_given_bad_target_when_forwarded_then_refused(unit: str, error_id: str) -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(in_state(F), tk.Forward(AT, SUP, unit), POLICY)
    assert info.value.id == error_id


def test_given_in_progress_when_resolved_then_citizen_gets_the_seeds_text() -> None:
    at = T0 + 2 * H
    t, effects = tk.apply(in_state(P), tk.Resolve(at, YT, " Đã tiêm ", "doc:sha256:ab12"),
                          POLICY)
    assert (t.state, t.result, t.reply_document, t.resolved_at) == (
        S.RESOLVED, "Đã tiêm", "doc:sha256:ab12", at)
    assert effects == [
        tk.AuditEntry(CODE, YT, at, "resolve", S.IN_PROGRESS, S.RESOLVED,
                      "result recorded by so_y_te with a reply document, on time"),
        tk.StopClock(CODE, "resolve"),
        tk.NotifyCitizen(CODE, "resolved", "0912345678", RESOLVED_TEXT, at),
    ]
    assert RESOLVED_TEXT == ("Tổng đài 1022 thông báo, kiến nghị của ông (bà) đã được giải "
                             "quyết. Xin cảm ơn!")


@pytest.mark.parametrize("phone", [None, "02513822123"])
def test_given_no_mobile_when_resolved_then_no_sms(phone: str | None) -> None:
    t = run(new(phone=phone), tk.Forward(T0 + M, OP, "so_y_te"))
    _, effects = tk.apply(t, tk.Resolve(T0 + H, YT, "Xong"), POLICY)
    assert not any(isinstance(x, tk.NotifyCitizen) for x in effects)


def test_given_late_result_when_resolved_then_audit_says_days_late() -> None:
    t = run(new(), tk.Forward(T0 + M, OP, "so_y_te"))
    _, effects = tk.apply(t, tk.Resolve(T0 + 50 * H, YT, "Xong"), POLICY)
    assert isinstance(effects[0], tk.AuditEntry)
    assert effects[0].detail == "result recorded by so_y_te, 2 day(s) late"


def test_given_forwarded_when_returned_then_back_at_level_1_with_reason() -> None:
    t, effects = tk.apply(in_state(P), tk.Return(AT, YT, "Không thuộc thẩm quyền"), POLICY)
    assert (t.state, t.unit, t.returned_by, t.return_reason, t.accepted_at) == (
        S.RETURNED, None, "so_y_te", "Không thuộc thẩm quyền", None)
    assert t.resolve_due == T0 + 24 * H  # the clock keeps running
    # The unit changed (to none): the scheduler drops its reminder.
    assert effects[1:] == [tk.StartClock(CODE, "resolve", T0 + 24 * H, None)]


def test_given_new_when_answered_from_faq_then_closed_at_once_with_answer() -> None:
    at = T0 + 5 * M
    t, effects = tk.apply(new(), tk.Answer(at, OP, "Tiêm tại trạm y tế xã", "YT-01"), POLICY)
    assert (t.state, t.result, t.faq_item, t.resolved_at, t.closed_at) == (
        S.ANSWERED, "Tiêm tại trạm y tế xã", "YT-01", at, at)
    assert effects == [
        tk.AuditEntry(CODE, OP, at, "answer", S.NEW, S.ANSWERED,
                      "answered at level 1 from FAQ YT-01"),
        tk.StopClock(CODE, "resolve"),
    ]
    assert not dl.is_late(t, T0 + 100 * H)


def test_given_never_handled_when_closed_without_reason_then_refused() -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(new(), tk.Close(AT, SUP), POLICY)
    assert info.value.id == "ticket.invalid_text"
    t, _ = tk.apply(new(), tk.Close(AT, SUP, "Trùng phiếu DN-20261123-0041"), POLICY)
    assert t.close_reason == "Trùng phiếu DN-20261123-0041" and t.result is None


def test_given_resolved_when_closed_then_no_reason_needed() -> None:
    t, effects = tk.apply(in_state(R), tk.Close(AT, OP), POLICY)
    assert t.state is S.CLOSED and t.closed_at == AT and t.close_reason is None
    assert effects == [tk.AuditEntry(CODE, OP, AT, "close", S.RESOLVED, S.CLOSED, "closed")]


def test_given_resolved_when_reopened_then_result_cleared_and_clock_restarts() -> None:
    t, effects = tk.apply(in_state(R), tk.Reopen(AT, OP, "Chưa được tiêm"), POLICY)
    assert (t.state, t.unit, t.result, t.resolved_at, t.reopen_reason) == (
        S.REOPENED, None, None, None, "Chưa được tiêm")
    assert t.resolve_due == AT + 24 * H
    assert effects[1:] == [tk.StartClock(CODE, "resolve", AT + 24 * H, None)]


@pytest.mark.parametrize("kind", [tk.Return, tk.Reopen])
def test_given_empty_reason_when_applied_then_refused(kind: type[tk.Return | tk.Reopen]) -> None:
    state = F if kind is tk.Return else R
    with pytest.raises(TicketError) as info:
        tk.apply(in_state(state), kind(AT, SUP, " "), POLICY)
    assert info.value.id == "ticket.invalid_text"


def test_given_new_when_reclassified_urgent_health_then_clock_moves_to_4h() -> None:
    t = run(new(), tk.Reclassify(T0 + M, OP, "transport", None, False))
    t, effects = tk.apply(t, tk.Reclassify(T0 + 2 * M, OP, "health", "long_thanh", True),
                          POLICY)
    assert (t.field, t.district, t.commune, t.urgent) == ("health", "long_thanh", None, True)
    assert t.resolve_due == T0 + 4 * H
    assert effects == [
        tk.AuditEntry(CODE, OP, T0 + 2 * M, "reclassify", S.NEW, S.NEW,
                      "field transport -> health, place None -> long_thanh, "
                      "urgent False -> True"),
        tk.StartClock(CODE, "resolve", T0 + 4 * H, None),
    ]


@pytest.mark.parametrize(("field", "place", "error_id"), [
    ("helth", None, "ticket.unknown_field"), ("health", "x", "ticket.unknown_place")])
def test_given_unknown_values_when_reclassified_then_refused(
        field: str, place: str | None, error_id: str) -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(new(), tk.Reclassify(AT, OP, field, place, False), POLICY)
    assert info.value.id == error_id


def test_given_forwarded_when_reminder_due_then_unit_reminded_once() -> None:
    t = in_state(F)
    with pytest.raises(TicketError) as info:
        tk.apply(t, tk.Remind(T0 + 21 * H, SYSTEM), POLICY)
    assert info.value.id == "ticket.reminder_not_due" and "due at" in info.value.message
    t, effects = tk.apply(t, tk.Remind(T0 + 22 * H, SYSTEM), POLICY)
    assert t.reminded_at == T0 + 22 * H
    assert effects[1:] == [tk.NotifyUnit(
        CODE, "so_y_te", "reminder", ("0987654321", "0903111222"),
        "Tổng đài 1022 nhắc: phản ánh DN-20261123-0042 đến hạn xử lý lúc 08:00 24/11/2026.",
        T0 + 22 * H)]
    with pytest.raises(TicketError) as info:
        tk.apply(t, tk.Remind(T0 + 23 * H, SYSTEM), POLICY)
    assert "already sent" in info.value.message
    t = run(t, tk.Forward(T0 + 23 * H, SUP, "vp"))
    assert t.reminded_at is None  # a new unit: its own reminder


def test_given_call_linked_twice_when_applied_then_listed_once() -> None:
    t = run(new(), tk.LinkCall(AT, OP, "c9"), tk.LinkCall(AT, SYSTEM, "c9"))
    assert t.call_ids == ("pbx1-1700000000.1", "c9") and t.version == 2


# ---- a call transferred to a unit (warm transfer) ----------------------------------------
@pytest.mark.parametrize("state", list(S), ids=[s.value for s in S])
def test_given_any_state_when_call_transferred_then_grant_and_audit_only(
        state: tk.TicketState) -> None:
    t = in_state(state)
    t2, effects = tk.apply(t, tk.TransferCall(AT, SYSTEM, "ubnd_lt", " pbx1:1.9 "), POLICY)
    assert t2 == replace(t, version=t.version + 1)  # nothing but the version changes
    audit, grant = effects
    assert isinstance(audit, tk.AuditEntry)
    assert (audit.event, audit.from_state, audit.to_state, audit.detail) == (
        "transfer_call", state, state, "call pbx1:1.9 transferred to ubnd_lt")
    assert grant == tk.GrantTransferRead(CODE, "ubnd_lt", "pbx1:1.9", AT.astimezone(dt.UTC))


def test_given_unknown_unit_when_call_transferred_then_refused() -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(new(), tk.TransferCall(AT, SYSTEM, "nowhere", "pbx1:1.9"), POLICY)
    assert info.value.id == "ticket.unknown_unit"


@pytest.mark.parametrize("call_id", ["", "   ", "x" * 129])
def test_given_bad_call_id_when_call_transferred_then_invalid_text(call_id: str) -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(new(), tk.TransferCall(AT, SYSTEM, "ubnd_lt", call_id), POLICY)
    assert info.value.id == "ticket.invalid_text"


def test_given_resolved_ticket_when_published_then_public() -> None:
    t = in_state(R)
    assert not tk.is_public(t)
    t = run(t, tk.SetPublishable(AT, SUP, True))
    assert tk.is_public(t)
    assert tk.is_public(run(t, tk.Close(AT, OP)))
    assert not tk.is_public(run(t, tk.Reopen(AT, OP, "Sai")))
    assert not tk.is_public(run(new(), tk.SetPublishable(AT, SUP, True)))


def test_given_event_before_receipt_when_applied_then_refused() -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(new(), tk.Forward(T0 - M, OP, "so_y_te"), POLICY)
    assert info.value.id == "ticket.time_order"


def test_given_naive_event_time_when_applied_then_refused() -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(new(), tk.Forward(dt.datetime(2026, 11, 23, 9), OP, "so_y_te"), POLICY)
    assert info.value.id == "ticket.naive_time"


def test_given_hcmc_forward_clock_when_forwarded_then_it_stops() -> None:
    policy = TicketPolicy(code_prefix="DN", units=POLICY.units, districts=POLICY.districts,
                          fallback_unit="vp", deadlines=DeadlinePolicy(forward=5 * M))
    t, effects = tk.open_ticket(policy, code=CODE, tenant="hcm", channel="web", content="Vi phạm",
                                field="security_order", at=T0, actor=OP)
    assert tk.StartClock(CODE, "forward", T0 + 5 * M, None) in effects
    t, effects = tk.apply(t, tk.Forward(T0 + 4 * M, OP, "vp"), policy)
    assert tk.StopClock(CODE, "forward") in effects


# ---- codes ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("prefix", "date", "seq", "code"), [
    ("DN", dt.date(2026, 11, 23), 42, "DN-20261123-0042"),
    ("TH", dt.date(2027, 1, 1), 1, "TH-20270101-0001"),
    ("HCM", dt.date(2026, 2, 28), 12345, "HCM-20260228-12345"),
])
def test_given_parts_when_coded_then_human_readable_and_parsed_back(
        prefix: str, date: dt.date, seq: int, code: str) -> None:
    assert tk.ticket_code(prefix, date, seq) == code
    assert tk.parse_ticket_code(code) == tk.TicketCode(prefix, date, seq)


@pytest.mark.parametrize(("prefix", "seq"), [("dn", 1), ("DN-1", 1), ("DN", 0),
                                             ("DN", 1_000_000)])
def test_given_bad_parts_when_coded_then_refused(prefix: str, seq: int) -> None:
    with pytest.raises(TicketError) as info:
        tk.ticket_code(prefix, dt.date(2026, 1, 1), seq)
    assert info.value.id == "ticket.bad_code"


@pytest.mark.parametrize("code", ["DN-20261323-0001", "DN-20261123-0000", "DN-20261123-42",
                                  "dn-20261123-0042", "DN20261123-0042"])
def test_given_malformed_code_when_parsed_then_refused(code: str) -> None:
    with pytest.raises(TicketError) as info:
        tk.parse_ticket_code(code)
    assert info.value.id == "ticket.bad_code"


def test_given_receipt_after_local_midnight_when_dated_then_local_date() -> None:
    at = dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.UTC)  # 00:30 on the 24th in Vietnam
    assert tk.code_date(at, "Asia/Ho_Chi_Minh") == dt.date(2026, 11, 24)
    assert tk.code_date(dt.datetime(2026, 12, 31, 16, 59, tzinfo=dt.UTC),
                        "Asia/Ho_Chi_Minh") == dt.date(2026, 12, 31)
    assert tk.code_date(dt.datetime(2026, 12, 31, 17, 0, tzinfo=dt.UTC),
                        "Asia/Ho_Chi_Minh") == dt.date(2027, 1, 1)


# ---- any sequence of events -------------------------------------------------------------------
KINDS = list(EXPECTED)
WHO = list(ACTORS.values())


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(WHO),
                                st.integers(0, 600)), max_size=14))
def test_given_any_events_when_applied_then_refused_cleanly_or_invariants_hold(
        steps: list[tuple[type[tk.Event], tk.Actor, int]]) -> None:
    t = new()
    now = T0
    for kind, actor, minutes in steps:
        now += minutes * M
        e = event(kind, t.state, actor)
        e = type(e)(**{**e.__dict__, "at": now})
        try:
            t2, effects = tk.apply(t, e, POLICY)
        except TicketError as err:
            assert err.id in {"ticket.illegal_transition", "ticket.forbidden",
                              "ticket.reminder_not_due", "ticket.chase_not_due",
                              "ticket.same_unit"}
            continue
        audit = effects[0]
        assert isinstance(audit, tk.AuditEntry)
        assert (audit.from_state, audit.to_state) == (t.state, t2.state)
        assert t2.version == t.version + 1
        if t2.state in tk.AT_UNIT:
            assert t2.unit is not None and t2.resolved_at is None
        if t2.state in tk.LEVEL1 or t2.state is S.ANSWERED:
            assert t2.unit is None
        if t2.state in (S.RESOLVED, S.ANSWERED):
            assert t2.result is not None and t2.resolved_at is not None
        if t2.state in tk.OPEN:
            assert t2.closed_at is None and t2.resolved_at is None
            assert "resolve" in dl.running_clocks(t2)
        else:
            assert "resolve" not in dl.running_clocks(t2)
        for x in effects:
            if isinstance(x, tk.NotifyUnit):
                assert x.unit == t2.unit and x.phones
        t = t2


# ---- satisfaction survey (tickets.survey) ------------------------------------------------------
SURVEY_POLICY = replace(POLICY, survey=SurveyPolicy(enabled=True))
CITIZEN = tk.Actor("citizen-sms", "system")


def test_given_survey_on_when_resolved_then_the_seeds_text_and_the_question_in_two_parts() -> None:
    at = T0 + 2 * H
    _, effects = tk.apply(in_state(P), tk.Resolve(at, YT, "Đã tiêm"), SURVEY_POLICY)
    notice = [x for x in effects if isinstance(x, tk.NotifyCitizen)]
    assert notice == [tk.NotifyCitizen(
        CODE, "resolved", "0912345678",
        RESOLVED_TEXT + " Hài lòng nhắn 1, chưa được giải quyết nhắn 2.", at,
        survey_until=at + dt.timedelta(days=7), unit="so_y_te")]
    enc = sms_parts(notice[0].text)
    assert (enc.coding, enc.units, enc.parts) == ("ucs2", 125, 2)
    assert sms_parts(RESOLVED_TEXT).parts == 2  # asking costs no extra part


def test_given_survey_off_when_resolved_then_no_question_and_no_window() -> None:
    _, effects = tk.apply(in_state(P), tk.Resolve(T0 + 2 * H, YT, "Đã tiêm"), POLICY)
    notice = next(x for x in effects if isinstance(x, tk.NotifyCitizen))
    assert notice.text == RESOLVED_TEXT and notice.survey_until is None


def test_given_resolved_when_the_citizen_reopens_then_level1_holds_it_and_the_unit_is_told(
        ) -> None:
    t, effects = tk.apply(in_state(R), tk.Reopen(AT, CITIZEN, "chưa được giải quyết"),
                          SURVEY_POLICY)
    assert (t.state, t.unit, t.reopen_reason) == (S.REOPENED, None, "chưa được giải quyết")
    tell = [x for x in effects if isinstance(x, tk.NotifyUnit)]
    assert tell == [tk.NotifyUnit(
        CODE, "so_y_te", "reopened", ("0987654321", "0903111222"),
        f"Tổng đài 1022: công dân phản hồi phản ánh {CODE} (Y tế, Xã An Phước, Huyện Long "
        "Thành) chưa được giải quyết; phản ánh đã được mở lại.", AT.astimezone(dt.UTC))]


def test_given_resolved_when_an_operator_reopens_then_no_sms_to_the_unit() -> None:
    _, effects = tk.apply(in_state(R), tk.Reopen(AT, OP, "Sai kết quả"), SURVEY_POLICY)
    assert not any(isinstance(x, tk.NotifyUnit) for x in effects)


def test_given_resolved_when_satisfied_then_state_stays_and_audited() -> None:
    t = in_state(R)
    t2, effects = tk.apply(t, tk.Satisfied(AT, CITIZEN), SURVEY_POLICY)
    assert (t2.state, t2.result, t2.version) == (S.RESOLVED, t.result, t.version + 1)
    assert effects == [tk.AuditEntry(CODE, CITIZEN, AT.astimezone(dt.UTC), "satisfied",
                                     S.RESOLVED, S.RESOLVED,
                                     "the citizen replied: satisfied (hài lòng)")]


def test_given_a_unit_user_when_recording_satisfaction_then_forbidden() -> None:
    with pytest.raises(TicketError) as info:
        tk.apply(in_state(R), tk.Satisfied(AT, YT), SURVEY_POLICY)
    assert info.value.id == "ticket.forbidden"
