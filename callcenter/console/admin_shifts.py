"""Administrators change their province's shift times and line counts: /console/admin/shifts.

* ``GET``: the shifts in force (the running config, not the file), editable; the date
  overrides read-only; the latest changes from the audit log. Times are the tenant's local
  times (its ``timezone``). The form carries the file's SHA-256 and each value it showed.
* ``POST``: ``callcenter.config.edit.ConfigEditor.save`` validates the edit with the service's
  own parser, writes the file atomically (the previous version kept in ``.history/`` next to
  it) and reloads the running config; then one audit row per changed field. On a refusal
  nothing is written and the form shows why, next to the field when the parser's key names
  one.

Only role admin, and only for the admin's own tenant (403 ``auth.forbidden`` otherwise; no
session: the login page). The session middleware checks CSRF on the POST. Error ids on the
page (``data-error-id``): ``config.invalid`` 422, ``config.stale`` 409,
``config.not_editable`` 409, ``config.write_failed`` 500, ``config.reload_failed`` 500.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from aiohttp import web

from callcenter.config.base import fmt_seconds, seconds_of
from callcenter.config.edit import (
    FIELDS,
    ConfigEditError,
    ConfigEditor,
    FieldError,
    SaveResult,
    ShiftEdit,
    same_value,
)
from callcenter.config.live import LiveConfig
from callcenter.config.model import Shift, Tenant
from callcenter.config.parse import MAX_LINES
from callcenter.console.auth import in_thread
from callcenter.console.context import CLOCK, CONSOLE_PREFIX, ConsoleApps, find_tenant, sub_path
from callcenter.console.rendering import environment
from callcenter.console.sessions import console_csrf, error_page, require_console_role
from callcenter.lines.shifts import active_shift
from callcenter.store.config_audit import ConfigAuditStore, ConfigChange
from callcenter.store.database import DatabaseRef

log = logging.getLogger("callcenter.console.admin_shifts")

PATH: Final = "/console/admin/shifts"
ROLES: Final = ("admin",)
MAX_SHIFTS: Final = 48
HISTORY_ROWS: Final = 15

EDITOR = web.AppKey("console_config_editor", ConfigEditor)
AUDIT = web.AppKey("console_config_audit", ConfigAuditStore)

FIELD_NAMES: Final = {"start": "giờ bắt đầu", "end": "giờ kết thúc", "lines": "số line"}
STATUS: Final = {"config.invalid": 422, "config.stale": 409, "config.not_editable": 409,
                 "config.write_failed": 500}

_ENV: Final = environment("callcenter.console")  # templates/admin_shifts.html


@dataclass(frozen=True)
class _Row:
    name: str
    seen: dict[str, str]   # what the form showed (the values in force)
    value: dict[str, str]  # what the inputs hold (the submitted ones after a refusal)


@dataclass(frozen=True)
class _Notice:
    id: str
    text: str


def hhmm(t: dt.time) -> str:
    """A shift time as the config writes it (seconds only when set)."""
    return fmt_seconds(seconds_of(t))


def _shown(shift: Shift) -> dict[str, str]:
    return {"start": hhmm(shift.start), "end": hhmm(shift.end), "lines": str(shift.lines)}


_OVERLAP = re.compile(r"'([^']*)' and '([^']*)' overlap (\S+)-(\S+)")
_GAP = re.compile(r"gap (\S+)-(\S+) after '([^']*)'")
_SAME = re.compile(r"'([^']*)' and '([^']*)' both start at (\S+)")


def vietnamese(error: FieldError) -> str:
    """The form's Vietnamese message for a parser error placed on a field."""
    if error.field == "lines":
        return f"Số line phải là số nguyên từ 0 đến {MAX_LINES}."
    if error.field == "start":
        return 'Giờ bắt đầu phải có dạng "HH:MM", từ 00:00 đến 23:59.'
    if error.field == "end":
        return 'Giờ kết thúc phải có dạng "HH:MM", từ 00:00 đến 24:00.'
    if error.field == "shifts":
        base = "Các ca phải phủ kín 24 giờ, không hở và không chồng lấn"
        if m := _OVERLAP.search(error.reason):
            return f"{base}: ca {m[1]} và ca {m[2]} chồng lấn {m[3]}–{m[4]}."
        if m := _GAP.search(error.reason):
            return f"{base}: còn trống {m[1]}–{m[2]} sau ca {m[3]}."
        if m := _SAME.search(error.reason):
            return f"{base}: ca {m[1]} và ca {m[2]} cùng bắt đầu lúc {m[3]}."
        return base + "."
    return f"Tệp cấu hình có lỗi ở phần khác (sửa trực tiếp trong tệp): {error.text}"


def _render(request: web.Request, tenant: Tenant, *, sha256: str, status: int = 200,
            submitted: dict[str, dict[str, str]] | None = None,
            errors: dict[str, str] | None = None, general: Sequence[_Notice] = (),
            saved: SaveResult | None = None, unchanged: bool = False,
            file_differs: bool = False, history: Sequence[ConfigChange] = ()) -> web.Response:
    app = request.config_dict
    now = app[CLOCK]()
    zone = ZoneInfo(tenant.timezone)
    local_now = now.astimezone(zone)
    active, override = active_shift(tenant, now)
    offset = local_now.strftime("%z")
    rows = []
    for s in tenant.shifts:
        seen = _shown(s)
        value = dict(seen)
        if submitted is not None and s.name in submitted:
            value.update(submitted[s.name])
        rows.append(_Row(s.name, seen, value))
    previous = None
    if saved is not None and saved.previous is not None:
        live_path = app[EDITOR].path
        try:
            previous = str(saved.previous.relative_to(Path(live_path).resolve().parent))
        except ValueError:
            previous = str(saved.previous)
    body = _ENV.get_template("admin_shifts.html").render(
        tenant=tenant, path=PATH, csrf=console_csrf(request), sha256=sha256, rows=rows,
        fields=FIELDS, field_names=FIELD_NAMES, max_lines=MAX_LINES, errors=errors or {},
        general=general, saved=saved.changes if saved is not None else (), previous=previous,
        unchanged=unchanged, disk_error=app[EDITOR].live.last_error,
        file_differs=file_differs, history=history, hhmm=hhmm,
        local=lambda t: t.astimezone(zone).strftime("%d/%m/%Y %H:%M"),
        now_local=local_now.strftime("%H:%M ngày %d/%m/%Y"),
        utc_offset=f"{offset[:3]}:{offset[3:]}", active=active,
        active_override=override.name if override is not None else None)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _no_tenant(tenant_id: str) -> web.Response:
    return error_page(404, "tenant.not_found", "Không tìm thấy tỉnh",
                      f"Cấu hình đang áp dụng không có tỉnh {tenant_id!r}.")


async def _page_state(request: web.Request, tenant: Tenant
                      ) -> tuple[str, bool, list[ConfigChange]]:
    """The file's SHA-256, whether its shifts differ from those in force, the history."""
    app = request.config_dict
    state = await app[EDITOR].state(tenant.id)
    history = await in_thread(app, app[AUDIT].recent, tenant.id, HISTORY_ROWS)
    written = {s.name: s for s in state.shifts}
    differs = len(written) != len(tenant.shifts) or any(
        s.name not in written or not all(
            same_value(f, getattr(written[s.name], f), _shown(s)[f]) for f in FIELDS)
        for s in tenant.shifts)
    return state.sha256, differs, history


async def shifts_page(request: web.Request) -> web.StreamResponse:
    """GET /console/admin/shifts: the shifts in force, as a form."""
    user = require_console_role(request, ROLES)
    tenant = find_tenant(request.config_dict, user.tenant)
    if tenant is None:
        return _no_tenant(user.tenant)
    try:
        sha, differs, history = await _page_state(request, tenant)
    except (ConfigEditError, OSError, UnicodeDecodeError) as e:
        log.error("console: cannot read the config file for the shifts form: %s", e)
        return error_page(409, "config.not_editable", "Không đọc được tệp cấu hình",
                          f"Không thể sửa tệp cấu hình từ trang này: {e}")
    return _render(request, tenant, sha256=sha, file_differs=differs, history=history)


def _str(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def shifts_submit(request: web.Request) -> web.StreamResponse:
    """POST /console/admin/shifts: validate, write, reload, audit (the middleware did CSRF)."""
    user = require_console_role(request, ROLES)
    form = await request.post()
    tenant_id = _str(form, "tenant") or user.tenant
    if tenant_id != user.tenant:
        log.warning("console: %s (admin of %s) refused editing the shifts of %s", user.name,
                    user.tenant, tenant_id)
        return error_page(403, "auth.forbidden", "Không có quyền truy cập",
                          "Bạn chỉ được sửa ca trực của tỉnh mình.")
    tenant = find_tenant(request.config_dict, tenant_id)
    if tenant is None:
        return _no_tenant(tenant_id)
    try:
        count = min(int(_str(form, "count") or "0"), MAX_SHIFTS)
    except ValueError:
        count = 0
    edits: list[ShiftEdit] = []
    submitted: dict[str, dict[str, str]] = {}
    for j in range(count):
        name = _str(form, f"name-{j}")
        if not name:
            continue
        for f in FIELDS:
            key = f"{f}-{j}"
            if key in form:
                new = _str(form, key)
                submitted.setdefault(name, {})[f] = new
                edits.append(ShiftEdit(name, f, _str(form, f"seen-{key}"), new))
    sha = _str(form, "sha256")
    app = request.config_dict
    try:
        result = await app[EDITOR].save(tenant.id, edits, expected_sha256=sha,
                                        now=app[CLOCK](), who=user.name)
    except ConfigEditError as e:
        return await _refused(request, tenant, e, sha, submitted)
    if not result.changes:
        _, differs, history = await _page_state(request, tenant)
        return _render(request, tenant, sha256=result.sha256_after, unchanged=True,
                       file_differs=differs, history=history)
    general: list[_Notice] = []
    try:
        await in_thread(app, app[AUDIT].record, user=user.name, tenant=tenant.id,
                        changes=result.changes, at=app[CLOCK](),
                        file_sha256=result.sha256_after,
                        previous_copy=None if result.previous is None else str(result.previous))
    except Exception:
        # The file is written and in force; losing the audit row must be seen, not hidden.
        log.exception("console: the config change by %s is in force but its audit row was "
                      "not written", user.name)
        general.append(_Notice("config.audit_failed", "Thay đổi đã được lưu nhưng không ghi "
                                                      "được nhật ký thay đổi. Vui lòng báo "
                                                      "cho bộ phận kỹ thuật."))
    status = 200
    if not result.reloaded:
        status = 500
        general.append(_Notice("config.reload_failed",
                               "Tệp đã được ghi nhưng hệ thống chưa áp dụng được: "
                               f"{result.reload_error}"))
    tenant = find_tenant(app, tenant.id) or tenant  # now the new config's
    _, differs, history = await _page_state(request, tenant)
    return _render(request, tenant, sha256=result.sha256_after, saved=result, status=status,
                   general=general, file_differs=differs, history=history)


async def _refused(request: web.Request, tenant: Tenant, error: ConfigEditError, sha: str,
                   submitted: dict[str, dict[str, str]]) -> web.Response:
    """The form again, nothing written: field errors next to their fields."""
    log.info("console: shift edit for %s refused (%s): %s", tenant.id, error.id, error.message)
    status = STATUS.get(error.id, 409)
    index_of = {s.name: j for j, s in enumerate(tenant.shifts)}
    errors: dict[str, str] = {}
    general: list[_Notice] = []
    if error.id == "config.invalid":
        general.append(_Notice(error.id, "Chưa lưu: có giá trị không hợp lệ (xem bên dưới). "
                                         "Tệp cấu hình không bị thay đổi."))
        for fe in error.errors:
            j = index_of.get(fe.shift or "")
            if fe.field in FIELDS and j is not None:
                errors.setdefault(f"{fe.field}-{j}", vietnamese(fe))
            elif fe.field == "shifts":
                errors.setdefault("shifts", vietnamese(fe))
            else:
                general.append(_Notice(error.id, vietnamese(fe)))
        _, differs, history = await _page_state(request, tenant)
        return _render(request, tenant, sha256=sha, status=status, submitted=submitted,
                       errors=errors, general=general, file_differs=differs, history=history)
    if error.id == "config.stale":
        general.append(_Notice(error.id, "Tệp cấu hình đã thay đổi kể từ khi bạn mở biểu mẫu "
                                         "(có thể do người khác sửa). Chưa lưu gì. Biểu mẫu "
                                         "dưới đây là cấu hình hiện hành; vui lòng nhập lại "
                                         "thay đổi và lưu."))
    elif error.id == "config.write_failed":
        general.append(_Notice(error.id, f"Không ghi được tệp cấu hình: {error.message}"))
    else:
        general.append(_Notice(error.id, "Không thể sửa tệp cấu hình từ trang này; vui lòng "
                                         f"sửa trực tiếp trong tệp. ({error.message})"))
    try:
        fresh, differs, history = await _page_state(request, tenant)
    except (ConfigEditError, OSError, UnicodeDecodeError):
        fresh, differs, history = sha, False, []
    return _render(request, tenant, sha256=fresh, status=status, general=general,
                   file_differs=differs, history=history)


def add_admin_shift_routes(apps: ConsoleApps, live_config: web.AppKey[LiveConfig], *,
                           database: DatabaseRef) -> None:
    """Add GET/POST /console/admin/shifts to the console sub-app; the root's
    ``live_config`` is read at startup.

    Needs the console's session routes (``add_login_routes``), ``EXECUTOR`` and ``CLOCK``
    (``setup_console`` sets them all).
    """

    async def admin_shifts_ctx(app: web.Application) -> AsyncIterator[None]:
        app[EDITOR] = ConfigEditor(app[live_config])
        app[AUDIT] = audit = ConfigAuditStore(database)
        try:
            yield
        finally:
            audit.close()

    apps.root.cleanup_ctx.append(admin_shifts_ctx)
    path = sub_path(CONSOLE_PREFIX, PATH)
    apps.console.router.add_get(path, shifts_page, name="console_admin_shifts")
    apps.console.router.add_post(path, shifts_submit)
