"""The disclosure review in the console ("rà soát, công khai … theo quy định").

* ``GET /console/review`` — supervisors and admins of the tenant: tickets with an answer or a
  result waiting for review (``?status=published`` / ``declined``: the decided ones), oldest
  answer first, with the masked question.
* ``GET /console/review/{code}`` — the masked original (``tickets.service.scrub``: the
  citizen's name and number never appear), and a form with the question and answer the public
  will read, prefilled with the edited texts or else the masked original; publish, or decline
  with a reason.
* ``POST /console/review/{code}`` — ``action=publish`` (question, answer) or ``decline``
  (reason), with the version the page showed. The ticket service applies ``Publish`` /
  ``Decline`` (pure rules in ``tickets.rules``) and writes the audit entry (who, when, what).

Operators and units get the console's 403 page. The public page (``console/public.py``) shows
only published tickets, with the edited texts.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import web

from callcenter.console.auth import actor_of, in_thread
from callcenter.console.context import (
    CLOCK,
    CONSOLE_PREFIX,
    SERVICE,
    ConsoleApps,
    find_tenant,
    sub_path,
)
from callcenter.console.listing import state_label
from callcenter.console.pages import render
from callcenter.console.rendering import environment
from callcenter.console.sessions import error_page, require_console_role
from callcenter.store.users import User
from callcenter.tickets.config import TicketPolicy, policy_of
from callcenter.tickets.rules import (
    MAX_CONTENT,
    MAX_REASON,
    REVIEW_STATUSES,
    Decline,
    Publish,
    Ticket,
    TicketError,
    parse_ticket_code,
    review_status,
)
from callcenter.tickets.service import scrub

log = logging.getLogger("callcenter.console.review")

PATH: Final = "/console/review"
ROLES: Final = ("supervisor", "admin")
STATUS_LABELS: Final = {"pending": "Chờ rà soát", "published": "Đã công khai",
                        "declined": "Không công khai", "not_ready": "Chưa có kết quả"}
CONFLICT: Final = "Phiếu đã được người khác cập nhật, vui lòng xem lại"
MESSAGES: Final = {
    "ticket.personal_data": "Nội dung công khai không được chứa họ tên hoặc số điện thoại "
                            "của người dân.",
    "ticket.invalid_text": "Nội dung không được để trống và không quá dài.",
    "ticket.illegal_transition": "Phiếu chưa có kết quả hoặc trạng thái không cho phép công "
                                 "khai.",
    "ticket.conflict": CONFLICT,
}
_ENV: Final = environment("callcenter.tickets")  # templates/review.html, review_ticket.html


def _policy(request: web.Request, user: User) -> TicketPolicy | None:
    tenant = find_tenant(request.config_dict, user.tenant)
    return policy_of(tenant) if tenant is not None else None


def _unit_name(policy: TicketPolicy, unit: str | None) -> str:
    found = policy.unit(unit) if unit is not None else None
    return found.name if found is not None else (unit or "Tổng đài 1022")


def masked(t: Ticket) -> tuple[str, str]:
    """The ticket's question and answer as the public would read them without edits."""
    return (scrub(t.content, t.citizen_name, t.citizen_phone),
            scrub(t.result or "", t.citizen_name, t.citizen_phone))


def public_texts(t: Ticket) -> tuple[str, str]:
    """What the public reads (or would read once published): the edited texts, else masked."""
    question, answer = masked(t)
    return (scrub(t.public_question, t.citizen_name, t.citizen_phone) if t.public_question
            else question,
            scrub(t.public_answer, t.citizen_name, t.citizen_phone) if t.public_answer
            else answer)


async def review_page(request: web.Request) -> web.StreamResponse:
    """GET /console/review: the tickets in one review status (default: pending)."""
    user = require_console_role(request, ROLES)
    policy = _policy(request, user)
    if policy is None:
        return error_page(404, "tenant.not_found", "Không tìm thấy tỉnh",
                          "Cấu hình hiện hành không còn tỉnh của tài khoản này.")
    status = request.query.get("status", "pending")
    if status not in REVIEW_STATUSES or status == "not_ready":
        status = "pending"
    app = request.config_dict
    tickets = await in_thread(app, app[SERVICE].review_list, actor_of(user), user.tenant,
                              status, limit=200)
    rows = [{"code": t.code, "field_name": policy.field_name(t.field) or t.field,
             "unit_name": _unit_name(policy, t.unit), "answered_at": t.resolved_at or t.closed_at,
             "question": public_texts(t)[0], "reason": t.decline_reason or ""}
            for t in tickets]
    done = request.query.get("done", "")
    return render(request, _ENV, "review.html", user, title="Rà soát công khai",
                  status_now=status, labels=STATUS_LABELS, rows=rows,
                  done=done if done in ("publish", "decline") else "",
                  code=request.query.get("code", "")[:40])


async def _ticket(request: web.Request) -> tuple[User, TicketPolicy, Ticket] | web.Response:
    user = require_console_role(request, ROLES)
    policy = _policy(request, user)
    code = request.match_info["code"][:40]
    not_found = error_page(404, "ticket.not_found", "Không tìm thấy phiếu",
                           f"Không có phiếu {code} để rà soát.", back=PATH,
                           back_label="Về danh sách rà soát")
    if policy is None:
        return not_found
    try:
        parse_ticket_code(code)
        ticket: Ticket = await in_thread(request.config_dict, request.config_dict[SERVICE].get,
                                         code, actor_of(user))
    except TicketError:
        return not_found
    if ticket.tenant != user.tenant:  # another province's ticket looks like a missing one
        return not_found
    return user, policy, ticket


async def _detail(request: web.Request, user: User, policy: TicketPolicy, t: Ticket, *,
                  status: int = 200, message: str = "", message_id: str = "",
                  typed: dict[str, str] | None = None) -> web.Response:
    question, answer = masked(t)
    public_q, public_a = public_texts(t)
    typed = typed or {}
    return render(
        request, _ENV, "review_ticket.html", user, title=f"Rà soát phiếu {t.code}",
        status=status, t=t, review=review_status(t), labels=STATUS_LABELS,
        state_label=state_label(t.state.value),
        field_name=policy.field_name(t.field) or t.field, unit_name=_unit_name(policy, t.unit),
        masked_question=question, masked_answer=answer,
        question=typed.get("question", public_q), answer=typed.get("answer", public_a),
        reason=typed.get("reason", t.decline_reason or ""), message=message,
        message_id=message_id, max_text=MAX_CONTENT, max_reason=MAX_REASON)


async def review_ticket_page(request: web.Request) -> web.StreamResponse:
    """GET /console/review/{code}: the masked ticket and the review form."""
    found = await _ticket(request)
    if isinstance(found, web.Response):
        return found
    return await _detail(request, *found)


def _text(form: Any, key: str) -> str:
    value = form.get(key, "")
    return value.strip() if isinstance(value, str) else ""


async def review_submit(request: web.Request) -> web.StreamResponse:
    """POST /console/review/{code}: publish (with the edited texts) or decline (reason)."""
    found = await _ticket(request)
    if isinstance(found, web.Response):
        return found
    user, policy, ticket = found
    form = await request.post()  # the CSRF middleware read it already; aiohttp keeps it
    action = _text(form, "action")
    typed = {k: _text(form, k) for k in ("question", "answer", "reason")}
    version = _text(form, "version")
    now = request.config_dict[CLOCK]()
    actor = actor_of(user)
    if action == "publish":
        question, answer = masked(ticket)
        # A text left exactly as the masked original is stored as "no edit" (None): the
        # public keeps reading the original, masked at each reading.
        event: Publish | Decline = Publish(
            now, actor, None if typed["question"] == question else typed["question"] or "",
            None if typed["answer"] == answer else typed["answer"] or "")
    elif action == "decline":
        event = Decline(now, actor, typed["reason"])
    else:
        return await _detail(request, user, policy, ticket, status=422,
                             message="Thao tác không hợp lệ.", message_id="request.invalid",
                             typed=typed)
    try:
        await in_thread(request.config_dict, request.config_dict[SERVICE].act, ticket.code,
                        actor, event,
                        expected_version=int(version) if version.isdigit() else -1)
    except TicketError as e:
        current = ticket
        try:
            current = await in_thread(request.config_dict, request.config_dict[SERVICE].get,
                                      ticket.code, actor)
        except TicketError:
            pass
        status = 409 if e.id in ("ticket.conflict", "ticket.illegal_transition") else 422
        if e.id == "ticket.forbidden":
            status = 403
        return await _detail(request, user, policy, current, status=status,
                             message=MESSAGES.get(e.id, f"Không thực hiện được ({e.id})."),
                             message_id=e.id, typed=typed)
    log.info("console: %s did %s (review) on ticket %s", user.name, action, ticket.code)
    raise web.HTTPSeeOther(location=f"{PATH}?done={action}&code={ticket.code}")


def add_review_pages(apps: ConsoleApps) -> None:
    """Add the review list and a ticket's review form to the console sub-app."""
    path = sub_path(CONSOLE_PREFIX, PATH)
    router = apps.console.router
    router.add_get(path, review_page, name="console_review")
    router.add_get(path + "/{code}", review_ticket_page, name="console_review_ticket")
    router.add_post(path + "/{code}", review_submit)
