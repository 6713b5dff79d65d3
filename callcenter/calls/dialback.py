"""Calling a caller back from the console: who may dial, and what an attempt's end means.

Pure: no I/O. The ARI adapter (``ari_app/dialback.py``) and the routes
(``callbacks/http.py``, ``callbacks/pages.py``, through ``callbacks/dial.py``) ask
``dial_refusal`` before ringing anyone and ``attempt_result`` when the citizen's leg ends
without being answered.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Final, Protocol, TypeVar

# Refusal ids (stable, for the API) and their Vietnamese messages (for operators).
NOT_FOUND: Final = "callback.not_found"
CLOSED: Final = "callback.closed"
FORBIDDEN: Final = "callback.forbidden"
NO_EXTENSION: Final = "callback.no_extension"
OPERATOR_BUSY: Final = "callback.operator_busy"
DIALLING: Final = "callback.dialling"
NO_TRUNK: Final = "callback.no_trunk"
UNAVAILABLE: Final = "callback.unavailable"
RING_FAILED: Final = "callback.ring_failed"
MESSAGES: Final = {
    NOT_FOUND: "Yêu cầu gọi lại này không tồn tại.",
    CLOSED: "Yêu cầu gọi lại này đã được xử lý; không gọi nữa.",
    FORBIDDEN: "Chỉ tổng đài viên và giám sát viên của đơn vị được gọi lại.",
    NO_EXTENSION: "Máy nhánh không phải máy của tổng đài viên trong đơn vị.",
    OPERATOR_BUSY: "Máy nhánh này đang có cuộc gọi; vui lòng kết thúc cuộc gọi trước "
                   "khi gọi lại.",
    DIALLING: "Yêu cầu này đang được gọi lại.",
    NO_TRUNK: "Chưa cấu hình đường trung kế gọi ra (trunk.outbound); không gọi được.",
    UNAVAILABLE: "Dịch vụ cuộc gọi tạm thời không sẵn sàng.",
    RING_FAILED: "Không đổ chuông được máy của tổng đài viên (máy chưa đăng ký?).",
}
# HTTP status of each refusal (others 409).
STATUS: Final = {NOT_FOUND: 404, FORBIDDEN: 403, NO_EXTENSION: 422, UNAVAILABLE: 503,
                 NO_TRUNK: 503, RING_FAILED: 502}

DIAL_ROLES: Final = ("operator", "supervisor")

# Results of one attempt, kept on the request (last_result).
ANSWERED: Final = "answered"
BUSY: Final = "busy"
NO_ANSWER: Final = "no_answer"
FAILED: Final = "failed"
RESULT_LABELS: Final = {ANSWERED: "đã nghe máy", BUSY: "máy bận", NO_ANSWER: "không nghe máy",
                        FAILED: "không gọi được"}


def dial_refusal(*, role: str, user_tenant: str, callback_tenant: str | None,
                 callback_status: str | None, extension: str,
                 tenant_extensions: Collection[str], busy_extensions: Collection[str],
                 dialling: bool) -> str | None:
    """Why this user may not call this request back from ``extension`` now (None: may).

    Operators dial from their own extension (their user name), supervisors from an
    operator extension of the tenant; both only their own tenant's requests (another
    tenant's is as good as absent). An extension on a call (queue or another call back)
    is refused, so is a request being dialled or no longer open."""
    if callback_tenant is None or callback_tenant != user_tenant:
        return NOT_FOUND
    if role not in DIAL_ROLES:
        return FORBIDDEN
    if callback_status != "open":
        return CLOSED
    if extension not in tenant_extensions:
        return NO_EXTENSION
    if dialling:
        return DIALLING
    if extension in busy_extensions:
        return OPERATOR_BUSY
    return None


def attempt_result(cause: int | None) -> str:
    """The result of a citizen leg that ended unanswered, from its hangup cause (Q.850)."""
    if cause == 17:  # user busy
        return BUSY
    if cause == 21:  # call rejected (declined)
        return BUSY
    if cause in (16, 18, 19, None):  # cleared before answer, no user responding, no answer
        return NO_ANSWER
    return FAILED


class _Ordered(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def source(self) -> str: ...

    @property
    def requested_at(self) -> object: ...

    @property
    def status(self) -> str: ...


R = TypeVar("R", bound=_Ordered)
POOL_FULL: Final = "pool_full"


def call_back_order(requests: Iterable[R]) -> list[R]:
    """Open requests in the order to call back: those of callers turned away while every line
    was taken (``pool_full``, typically the night's) first, then the others; oldest first in
    each group."""
    return sorted(requests, key=lambda r: (r.source != POOL_FULL, r.requested_at, r.id))


def to_do_order(requests: Iterable[R]) -> list[R]:
    """A listing as given (open first), with its open requests in ``call_back_order``: the
    operators' to-do list in the morning starts with the night's pool-full requests."""
    rows = list(requests)
    return call_back_order(r for r in rows if r.status == "open") \
        + [r for r in rows if r.status != "open"]
