"""Administrators manage their province's console users: ``/console/admin/users``.

* ``GET /console/admin/users`` (``?role=&active=``): the admin's tenant's users (name, full
  name, role, unit, active, locked until, last password change, sessions still valid) and a
  form to create one. ``GET /console/admin/users.xlsx``: the same list (same filters) as a
  workbook, sent with ``console.exports.xlsx_response``; never a hash.
* ``POST /console/admin/users``: create (login name, full name, role, unit, the initial
  password typed twice). A refusal shows the form again with Vietnamese field errors and what
  was typed (never the password); nothing is saved. Success: 303 to the user's page.
* ``GET /console/admin/users/{name}``: one user, a form to edit full name, role and unit,
  buttons to disable/enable, unlock and reset the password, and the user's audit history.
* ``POST /console/admin/users/{name}`` with ``action`` = ``update``, ``disable``, ``enable``,
  ``unlock`` or ``reset_password``; every form carries the ``version`` of the user it showed
  (``UserDetail.version``): if the user changed meanwhile (another admin, a lock-out) nothing
  is written and the page shows the current values (409 ``user.stale``).

Rules enforced in ``UserStore`` (one transaction with the audit rows): an admin touches only
users of their own tenant (another tenant's user: 404 ``user.not_found``, as if unknown), no
admin disables or demotes themselves (409 ``user.self``), a tenant keeps one active admin (409
``user.last_admin``). Disabling deletes the user's sessions and their API tokens stop working;
a password reset ends their sessions.

Operators log in with their extension (the desk acts on the agent whose extension is the
user name). When the name is not an extension of the tenant's ``operators`` config the user
is still created, with a warning: softphone accounts live in the config file, edited by the
technical staff and reloaded separately, and may well be added after the console account;
until then the desk refuses that user's agent actions, so nothing unsafe can happen.

Only role admin (others: the 403 page; no session: the login page). The session middleware
checks CSRF on every POST. One INFO log line per change (admin, target, action, the fields
changed; never a password).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from callcenter.config.model import Tenant
from callcenter.console.auth import USERS, in_thread
from callcenter.console.context import CLOCK, CONSOLE_PREFIX, ConsoleApps, find_tenant, sub_path
from callcenter.console.exports import xlsx_response
from callcenter.console.pages import ROLE_NAMES, local_time, render, zone_of
from callcenter.console.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    PasswordRejected,
    check_password_rules,
)
from callcenter.console.rendering import environment
from callcenter.console.sessions import _PAGE_HEADERS as PAGE_HEADERS
from callcenter.console.sessions import PASSWORDS, POLICY, error_page, require_console_role
from callcenter.store.database import DatabaseRef
from callcenter.store.user_audit import UserAuditStore, UserChange
from callcenter.store.users import (
    USER_ROLES,
    User,
    UserDetail,
    UserError,
    check_user_name,
)
from callcenter.tickets.config import policy_of
from callcenter.tickets.reports import Column, Table

log = logging.getLogger("callcenter.console.admin_users")

PATH: Final = "/console/admin/users"
ROLES: Final = ("admin",)
ACTIONS: Final = ("update", "disable", "enable", "unlock", "reset_password")
HISTORY_ROWS: Final = 50
MAX_FULL_NAME: Final = 200
NAME_PATTERN: Final = r"[a-z0-9][a-z0-9._-]{1,63}"

AUDIT = web.AppKey("console_user_audit", UserAuditStore)

ACTION_NAMES: Final = {"create": "Tạo người dùng", "update": "Sửa thông tin",
                       "disable": "Vô hiệu hoá", "enable": "Kích hoạt lại",
                       "reset_password": "Đặt lại mật khẩu", "unlock": "Mở khoá đăng nhập"}
FIELD_NAMES: Final = {"role": "vai trò", "unit": "đơn vị", "full_name": "họ tên",
                      "active": "đang hoạt động", "password": "mật khẩu",
                      "locked_until": "khoá đến"}
DONE: Final = {"create": "Đã tạo người dùng.", "update": "Đã lưu thay đổi.",
               "unchanged": "Không có thay đổi nào để lưu.",
               "disable": "Đã vô hiệu hoá người dùng: các phiên đăng nhập đã kết thúc và "
                          "token API không còn dùng được.",
               "enable": "Đã kích hoạt lại người dùng.",
               "reset_password": "Đã đặt mật khẩu mới; các phiên đăng nhập của người dùng "
                                 "đã kết thúc.",
               "unlock": "Đã mở khoá đăng nhập."}
GUARD_TEXT: Final = {
    "user.self": "Bạn không thể tự vô hiệu hoá hoặc hạ vai trò của chính mình. Chưa lưu gì.",
    "user.last_admin": "Không thể vô hiệu hoá hoặc hạ vai trò: đây là quản trị viên đang hoạt "
                       "động cuối cùng của tỉnh. Hãy tạo hoặc kích hoạt một quản trị viên khác "
                       "trước. Chưa lưu gì.",
    "user.stale": "Người dùng này đã được thay đổi (bởi quản trị viên khác hoặc do bị khoá "
                  "đăng nhập) kể từ khi bạn mở trang. Chưa lưu gì; dưới đây là thông tin hiện "
                  "tại, vui lòng kiểm tra rồi thực hiện lại.",
}
KEEP_TYPED: Final = ("user.self", "user.last_admin")  # refusals that show the typed values
STATUS: Final = {"user.self": 409, "user.last_admin": 409, "user.stale": 409}


# ---- pure parts -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """The list's filters: a role, and active (True), disabled (False) or both (None)."""

    role: str | None = None
    active: bool | None = None

    def query(self) -> str:
        """The query string that gives these filters ('' for none)."""
        q = {}
        if self.role:
            q["role"] = self.role
        if self.active is not None:
            q["active"] = "1" if self.active else "0"
        return urlencode(q)


def parse_filters(query: Mapping[str, str]) -> tuple[Filters, dict[str, str]]:
    """The filters of a query string, and Vietnamese errors for values that are not valid
    (an invalid filter is left out, not guessed)."""
    errors: dict[str, str] = {}
    role = query.get("role", "") or None
    if role is not None and role not in USER_ROLES:
        errors["role"] = "Vai trò không hợp lệ; đã bỏ qua bộ lọc vai trò."
        role = None
    active_value = query.get("active", "")
    active: bool | None = None
    if active_value in ("1", "0"):
        active = active_value == "1"
    elif active_value:
        errors["active"] = "Trạng thái không hợp lệ; đã bỏ qua bộ lọc trạng thái."
    return Filters(role, active), errors


def password_error(password: str, again: str, name: str) -> str | None:
    """The Vietnamese error of a new password typed twice, or None when it may be used."""
    try:
        check_password_rules(password, name or None)
    except PasswordRejected as e:
        return {
            "password.too_short": f"Mật khẩu cần ít nhất {MIN_LENGTH} ký tự.",
            "password.too_long": f"Mật khẩu có tối đa {MAX_LENGTH} ký tự.",
            "password.blank": "Mật khẩu không được chỉ gồm dấu cách.",
            "password.is_name": "Mật khẩu không được trùng với tên đăng nhập.",
        }.get(e.id, "Mật khẩu không hợp lệ.")
    if password != again:
        return "Hai lần nhập mật khẩu không khớp."
    return None


@dataclass
class UserForm:
    """What an admin typed in a create or edit form (never a password)."""

    name: str = ""
    full_name: str = ""
    role: str = ""
    unit: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def unit_or_none(self) -> str | None:
        """The unit as stored (None when empty)."""
        return self.unit or None

    @property
    def full_name_or_none(self) -> str | None:
        """The full name as stored (None when empty)."""
        return self.full_name or None


def check_user_form(form: UserForm, *, units: Sequence[str], operator_extensions: Sequence[str],
                    check_name: bool = True) -> UserForm:
    """Fill ``form.errors`` (Vietnamese, per field) and ``form.warnings`` for these values;
    ``units``: the tenant's unit ids; ``operator_extensions``: its softphone extensions."""
    errors, warnings = form.errors, form.warnings
    if check_name:
        try:
            check_user_name(form.name)
        except UserError:
            errors["name"] = ("Tên đăng nhập gồm 2–64 ký tự: chữ thường không dấu a–z, số "
                              "0–9 và các dấu . _ -, bắt đầu bằng chữ hoặc số.")
    if len(form.full_name) > MAX_FULL_NAME:
        errors["full_name"] = f"Họ tên có tối đa {MAX_FULL_NAME} ký tự."
    if form.role not in USER_ROLES:
        errors["role"] = "Chọn một vai trò."
    elif form.role == "unit":
        if not form.unit:
            errors["unit"] = "Người dùng vai trò Đơn vị xử lý phải thuộc một đơn vị: chọn đơn vị."
        elif form.unit not in units:
            errors["unit"] = "Đơn vị này không có trong cấu hình của tỉnh."
    elif form.unit:
        errors["unit"] = ("Chỉ người dùng vai trò Đơn vị xử lý mới thuộc một đơn vị: để trống "
                          "ô đơn vị.")
    if form.role == "operator" and "name" not in errors \
            and form.name not in operator_extensions:
        warnings.append(f"Máy lẻ {form.name} chưa có trong cấu hình điện thoại viên của tỉnh: "
                        "người dùng vẫn được lưu nhưng chỉ dùng được bàn làm việc khi máy lẻ "
                        "này được thêm vào cấu hình.")
    return form


def changes_for_log(changes: Sequence[UserChange]) -> str:
    """The log line's account of an update: role and unit old -> new, other fields by name."""
    parts = [f"{c.field} {c.old or '-'} -> {c.new or '-'}" if c.field in ("role", "unit")
             else str(c.field) for c in changes]
    return f" ({', '.join(parts)})" if parts else ""


def user_rows(users: Sequence[UserDetail], unit_names: Mapping[str, str],
              now: dt.datetime) -> list[dict[str, Any]]:
    """The list's rows (page and xlsx): display values, no hash."""
    return [{
        "name": u.name,
        "full_name": u.full_name or "",
        "role": ROLE_NAMES.get(u.role, u.role),
        "unit": (unit_names.get(u.unit, u.unit) if u.unit else ""),
        "active": "Đang hoạt động" if u.active else "Đã vô hiệu hoá",
        "locked_until": u.locked_until if u.locked(now) else None,
        "password_changed_at": u.password_changed_at,
        "sessions": u.sessions,
        "created_at": u.created_at,
    } for u in users]


XLSX_COLUMNS: Final = (
    Column("name", "Tên đăng nhập", 18), Column("full_name", "Họ tên", 28),
    Column("role", "Vai trò", 16), Column("unit", "Đơn vị", 28),
    Column("active", "Trạng thái", 16), Column("locked_until", "Khoá đăng nhập đến", 18,
                                                 "datetime"),
    Column("password_changed_at", "Đổi mật khẩu lần cuối", 18, "datetime"),
    Column("sessions", "Phiên đăng nhập còn hạn", 12, "int"),
    Column("created_at", "Ngày tạo", 18, "datetime"),
)


def change_text(c: UserChange) -> str:
    """One audit row in Vietnamese: the action, and the field's old → new when there is one."""
    action = ACTION_NAMES.get(c.action, c.action)
    if c.field is None or c.action in ("disable", "enable", "unlock"):
        return action

    def shown(v: str | None) -> str:
        if c.field == "role" and v:
            return ROLE_NAMES.get(v, v)
        return {"yes": "có", "no": "không", "set": "đã đặt", "": "(trống)",
                None: "(trống)"}.get(v, v or "")

    if c.action == "create":
        return f"{action}: {FIELD_NAMES.get(c.field, c.field)} {shown(c.new)}"
    return f"{action}: {FIELD_NAMES.get(c.field, c.field)} {shown(c.old)} → {shown(c.new)}"


_ENV = environment("callcenter.console")  # templates/admin_user*.html


# ---- handlers -------------------------------------------------------------------------------
def _tenant_of(request: web.Request, tenant_id: str) -> Tenant:
    tenant = find_tenant(request.config_dict, tenant_id)
    if tenant is None:
        raise _http_not_found(error_page(
            404, "tenant.not_found", "Không tìm thấy tỉnh",
            f"Cấu hình đang áp dụng không có tỉnh {tenant_id!r}."))
    return tenant


def _units(tenant: Tenant) -> list[tuple[str, str]]:
    return [(u.id, u.name) for u in policy_of(tenant).units]


def _extensions(tenant: Tenant) -> list[str]:
    return [o.extension for o in tenant.operators.operators]


def _http_not_found(page: web.Response) -> web.HTTPNotFound:
    """A 404 to raise with ``page`` and the private pages' headers: a raised response skips
    the session middleware that adds them to returned ones."""
    return web.HTTPNotFound(text=page.text, content_type="text/html",
                            headers=dict(PAGE_HEADERS))


def _not_found(name: str) -> web.HTTPNotFound:
    return _http_not_found(error_page(
        404, "user.not_found", "Không tìm thấy người dùng",
        f"Tỉnh của bạn không có người dùng {name!r}.", back=PATH,
        back_label="Về danh sách người dùng"))


def _str(form: Any, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class _UserList:
    """What the list page and its xlsx share: the admin, the tenant, the filters, the users."""

    admin: User
    tenant: Tenant
    filters: Filters
    filter_errors: dict[str, str]
    now: dt.datetime
    users: list[UserDetail]


async def _user_list(request: web.Request) -> _UserList:
    """The role check, the admin's tenant, the query's filters and the matching users."""
    user = require_console_role(request, ROLES)
    tenant = _tenant_of(request, user.tenant)
    app = request.config_dict
    filters, filter_errors = parse_filters(request.query)
    now = app[CLOCK]()
    users = await in_thread(app, app[USERS].user_details, tenant.id, now=now,
                            idle=app[POLICY].idle, role=filters.role, active=filters.active)
    return _UserList(user, tenant, filters, filter_errors, now, users)


async def _list_page(request: web.Request, *, form: UserForm | None = None,
                     general: Sequence[str] = (), status: int = 200) -> web.Response:
    listed = await _user_list(request)
    units = _units(listed.tenant)
    return render(request, _ENV, "admin_users.html", listed.admin, status=status,
                  title="Quản trị người dùng", tenant=listed.tenant, path=PATH,
                  filters=listed.filters, filter_errors=listed.filter_errors,
                  query=listed.filters.query(), roles=USER_ROLES, role_names=ROLE_NAMES,
                  rows=user_rows(listed.users, dict(units), listed.now),
                  active_text="Đang hoạt động", form=form or UserForm(), general=general,
                  units=units, min_length=MIN_LENGTH)


async def users_page(request: web.Request) -> web.StreamResponse:
    """GET /console/admin/users: the tenant's users and the create form."""
    return await _list_page(request)


async def users_xlsx(request: web.Request) -> web.StreamResponse:
    """GET /console/admin/users.xlsx: the list (same filters) as a workbook."""
    listed = await _user_list(request)
    tenant, now = listed.tenant, listed.now
    zone = zone_of(request, tenant.id)
    table = Table(sheet="Người dùng",
                  title=f"Danh sách người dùng - Tổng đài 1022 {tenant.name}",
                  subtitle=f"Lập lúc {local_time(now, zone)} (giờ {tenant.timezone}) bởi "
                           f"{listed.admin.name}",
                  columns=XLSX_COLUMNS,
                  rows=tuple(user_rows(listed.users, dict(_units(tenant)), now)),
                  timezone=tenant.timezone)
    log.info("console: admin %s exported the user list of %s (%d users)", listed.admin.name,
             tenant.id, len(listed.users))
    stamp = now.astimezone(zone).strftime("%Y%m%d-%H%M")
    return await xlsx_response(request.config_dict, [table], f"nguoi-dung-{tenant.id}-{stamp}.xlsx")


async def create_user(request: web.Request) -> web.StreamResponse:
    """POST /console/admin/users: check, create with its password, audit; 303 to its page."""
    user = require_console_role(request, ROLES)
    tenant = _tenant_of(request, user.tenant)
    app = request.config_dict
    data = await request.post()
    form = UserForm(name=_str(data, "name").strip().lower(),
                    full_name=" ".join(_str(data, "full_name").split()),
                    role=_str(data, "role"), unit=_str(data, "unit"))
    check_user_form(form, units=[u for u, _ in _units(tenant)],
                    operator_extensions=_extensions(tenant))
    problem = password_error(_str(data, "password"), _str(data, "password2"), form.name)
    if problem:
        form.errors["password"] = problem
    if form.errors:
        log.info("console: admin %s: creating user %r refused (fields %s)", user.name,
                 form.name, ",".join(sorted(form.errors)))
        return await _list_page(request, form=form, status=422)
    password_hash = await in_thread(app, app[PASSWORDS].hash, _str(data, "password"))
    try:
        created = await in_thread(app, app[USERS].add_user, form.name, form.role, tenant.id,
                                  form.unit_or_none, full_name=form.full_name_or_none,
                                  now=app[CLOCK](), password_hash=password_hash,
                                  actor=user.name)
    except UserError as e:
        if e.id == "user.exists":
            form.errors["name"] = f"Tên đăng nhập «{form.name}» đã có người dùng."
        else:
            form.errors["name"] = "Không tạo được người dùng với thông tin này."
        log.info("console: admin %s: creating user %r refused (%s)", user.name, form.name,
                 e.id)
        return await _list_page(request, form=form, status=409 if e.id == "user.exists"
                                else 422)
    log.info("console: admin %s created user %s (role %s, unit %s) in %s", user.name,
             created.name, created.role, created.unit or "-", tenant.id)
    raise web.HTTPSeeOther(location=f"{PATH}/{created.name}?done=create")


async def _detail_page(request: web.Request, name: str, *, form: UserForm | None = None,
                       general: Sequence[tuple[str, str]] = (), status: int = 200,
                       done: str | None = None, bad_password: str | None = None
                       ) -> web.Response:
    user = require_console_role(request, ROLES)
    tenant = _tenant_of(request, user.tenant)
    app = request.config_dict
    now = app[CLOCK]()
    detail = await in_thread(app, app[USERS].user_detail, name, now=now,
                            idle=app[POLICY].idle, tenant=tenant.id)
    if detail is None:
        raise _not_found(name)
    history = await in_thread(app, app[AUDIT].recent, tenant.id, name, HISTORY_ROWS)
    if form is None:
        form = UserForm(name=detail.name, full_name=detail.full_name or "", role=detail.role,
                        unit=detail.unit or "")
    if bad_password:
        form.errors["password"] = bad_password
    units = _units(tenant)
    warnings = check_user_form(UserForm(name=detail.name, role=detail.role,
                                        unit=detail.unit or ""),
                               units=[u for u, _ in units],
                               operator_extensions=_extensions(tenant)).warnings
    return render(request, _ENV, "admin_user.html", user, status=status,
                  title=f"Người dùng {detail.name}", path=PATH, u=detail, form=form,
                  roles=USER_ROLES, role_names=ROLE_NAMES, units=units,
                  unit_names=dict(units), locked=detail.locked(now), history=history,
                  change_text=change_text, general=general, done=DONE.get(done or ""),
                  done_id=done or "", warnings=warnings, min_length=MIN_LENGTH)


async def user_page(request: web.Request) -> web.StreamResponse:
    """GET /console/admin/users/{name}: one user, the edit and account forms, the history."""
    return await _detail_page(request, request.match_info["name"],
                              done=request.query.get("done"))


@dataclass(frozen=True)
class _Outcome:
    """What an action did (``done``: the DONE key) or, when refused before any write, the
    page to show instead (``page``)."""

    done: str = ""
    log_text: str = ""
    page: web.Response | None = None


async def user_action(request: web.Request) -> web.StreamResponse:
    """POST /console/admin/users/{name}: update, disable, enable, unlock or reset_password."""
    user = require_console_role(request, ROLES)
    tenant = _tenant_of(request, user.tenant)
    name = request.match_info["name"]
    data = await request.post()
    action, version = _str(data, "action"), _str(data, "version")
    if action not in ACTIONS or not version:
        return error_page(400, "user.bad_request", "Yêu cầu không hợp lệ",
                          "Biểu mẫu thiếu thông tin; vui lòng tải lại trang rồi thử lại.",
                          back=f"{PATH}/{name}", back_label="Về trang người dùng")
    form = _edit_form(name, data, tenant) if action == "update" else None
    try:
        outcome = await _carry_out(request, user.name, tenant, name, action, version, data,
                                   form)
    except UserError as e:
        if e.id == "user.not_found":
            raise _not_found(name) from None
        log.info("console: admin %s: %s of user %s refused (%s)", user.name, action, name,
                 e.id)
        text = GUARD_TEXT.get(e.id, "Không thực hiện được: thông tin không hợp lệ.")
        # Nothing was written. A guard (self, last admin) keeps what was typed, to fix; a
        # stale form shows the user's current values instead, to check before acting again.
        return await _detail_page(request, name, status=STATUS.get(e.id, 422),
                                  general=[(e.id, text)],
                                  form=form if e.id in KEEP_TYPED else None)
    if outcome.page is not None:
        return outcome.page
    log.info("console: admin %s: %s user %s in %s%s", user.name, outcome.done, name,
             tenant.id, outcome.log_text)
    raise web.HTTPSeeOther(location=f"{PATH}/{name}?done={outcome.done}")


def _edit_form(name: str, data: Any, tenant: Tenant) -> UserForm:
    """The edit form as typed (spaces of the full name collapsed), checked."""
    form = UserForm(name=name, full_name=" ".join(_str(data, "full_name").split()),
                    role=_str(data, "role"), unit=_str(data, "unit"))
    return check_user_form(form, units=[u for u, _ in _units(tenant)],
                           operator_extensions=_extensions(tenant), check_name=False)


async def _carry_out(request: web.Request, admin: str, tenant: Tenant, name: str, action: str,
                     version: str, data: Any, form: UserForm | None) -> _Outcome:
    """Apply one action through the store (UserError when it refuses: nothing written)."""
    app = request.config_dict
    store = app[USERS]
    change_context: dict[str, Any] = {"now": app[CLOCK](), "actor": admin,
                                      "tenant": tenant.id, "expected_version": version}
    if form is not None:  # update
        if form.errors:
            log.info("console: admin %s: editing user %s refused (fields %s)", admin, name,
                     ",".join(sorted(form.errors)))
            return _Outcome(page=await _detail_page(request, name, form=form, status=422,
                                                    general=[("user.invalid", "Chưa lưu: có "
                                                              "thông tin chưa hợp lệ (xem "
                                                              "bên dưới).")]))
        _, changes = await in_thread(app, store.update_user, name,
                                     full_name=form.full_name_or_none, role=form.role,
                                     unit=form.unit_or_none, **change_context)
        return _Outcome("update" if changes else "unchanged", changes_for_log(changes))
    if action in ("disable", "enable"):
        await in_thread(app, store.set_active, name, action == "enable", **change_context)
    elif action == "unlock":
        await in_thread(app, store.unlock, name, **change_context)
    else:
        password = _str(data, "password")
        problem = password_error(password, _str(data, "password2"), name)
        if problem:
            log.info("console: admin %s: password reset of user %s refused", admin, name)
            return _Outcome(page=await _detail_page(
                request, name, status=422, bad_password=problem,
                general=[("user.invalid", "Chưa đặt mật khẩu mới: " + problem)]))
        password_hash = await in_thread(app, app[PASSWORDS].hash, password)
        await in_thread(app, store.set_password, name, password_hash, **change_context)
    return _Outcome(action)


def add_user_admin_routes(apps: ConsoleApps, database: DatabaseRef) -> None:
    """Add the user administration pages to the console sub-app, their audit store to the
    root (needs ``setup_console``'s resources)."""

    async def user_audit_ctx(app: web.Application) -> AsyncIterator[None]:
        app[AUDIT] = audit = UserAuditStore(database)
        try:
            yield
        finally:
            audit.close()

    apps.root.cleanup_ctx.append(user_audit_ctx)
    path = sub_path(CONSOLE_PREFIX, PATH)
    router = apps.console.router
    router.add_get(path, users_page, name="console_admin_users")
    router.add_post(path, create_user)
    router.add_get(path + ".xlsx", users_xlsx, name="console_admin_users_xlsx")
    router.add_get(path + "/{name:" + NAME_PATTERN + "}", user_page, name="console_admin_user")
    router.add_post(path + "/{name:" + NAME_PATTERN + "}", user_action)
