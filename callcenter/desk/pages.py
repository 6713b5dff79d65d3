"""The operator desk (``/console/desk``): the current call, the caller's tickets, the ticket
form with FAQ search, transfer, pause and wrap-up.

The page is rendered once with what does not change during a shift (the tenant's fields,
places, units, pause reasons, labels) as a JSON data block; ``static/desk.js`` then polls
``GET /api/v1/desk`` (``desk/http.py``) every 1.5 s and acts through the existing API:
``POST /api/v1/agents/{ext}/{action}`` (ready, pause, unpause, login), ``POST /api/v1/tickets``
(+ ``/actions`` forward), ``POST /api/v1/calls/{call_id}/transfer`` (+ complete/cancel) and
``GET /api/v1/faq``, with the session cookie and the page's CSRF token.

Operators open their own desk (user name = extension). Supervisors and admins may open any
operator's desk of their tenant read-only (``?ext=101``): the buttons are disabled on the page
and the API refuses an operator's actions on another extension anyway.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

from aiohttp import web

from callcenter.config.model import Tenant
from callcenter.console.context import find_tenant
from callcenter.console.listing import TICKET_STATE_LABELS
from callcenter.console.pages import page_env, render
from callcenter.console.sessions import error_page, require_console_role
from callcenter.desk.http import add_desk_api
from callcenter.queue.http import ACD_KEY
from callcenter.queue.redis import AcdQueue
from callcenter.queue.texts import STATE_LABELS
from callcenter.tickets.config import policy_of
from callcenter.transfers import rules as xf

log = logging.getLogger("callcenter.desk.pages")

DESK_PATH: Final = "/console/desk"
ROLES: Final = ("operator", "supervisor", "admin")
_EXT: Final = re.compile(r"[0-9]{3,6}")

_DESK = """{% extends "base.html" %}
{% block head %}<link rel="stylesheet" href="/console/static/desk.css">
<script src="/console/static/desk.js" defer></script>{% endblock %}
{% block main %}
<script type="application/json" id="desk-data">{{ data|tojson }}</script>
<div id="desk" data-ext="{{ ext or '' }}" data-readonly="{{ '1' if readonly else '0' }}"
     data-timezone="{{ tz }}">
<p id="stale-banner" class="banner" role="alert" hidden>Mất kết nối với máy chủ: thông tin
 trên trang có thể đã cũ. Đang thử lại…</p>
<p id="session-banner" class="banner" role="alert" hidden>Phiên đăng nhập đã hết hạn.
 <a href="/console/login?next=/console/desk">Đăng nhập lại</a></p>
{% if choose %}
<h1>Bàn làm việc điện thoại viên</h1>
<form class="card" method="get" action="/console/desk">
 <label for="ext-choice">Xem bàn làm việc của điện thoại viên (chỉ xem)</label>
 <div class="row">
  <select id="ext-choice" name="ext">{% for op in operators %}
   <option value="{{ op.extension }}">{{ op.extension }} — {{ op.name }}</option>{% endfor %}
  </select>
  <button type="submit">Xem</button>
 </div>
</form>
{% else %}
<h1>Bàn làm việc — máy lẻ {{ ext }}{% if operator_name %} ({{ operator_name }}){% endif %}
 {% if readonly %}<span class="meta">(chỉ xem)</span>{% endif %}</h1>

<section class="card" id="agent-card" aria-labelledby="agent-title">
 <h2 id="agent-title">Trạng thái</h2>
 <div class="row state-row">
  <span id="agent-state" class="state" data-state="">…</span>
  <span id="agent-time" class="meta"></span>
  <span id="agent-note" class="meta"></span>
 </div>
 <div class="row buttons">
  <button type="button" id="btn-ready" class="primary">Sẵn sàng</button>
  <span class="pause-group">
   <select id="pause-reason" aria-label="Lý do tạm nghỉ">{% for r in pause_reasons %}
    <option value="{{ r.id }}">{{ r.label }}</option>{% endfor %}
   </select>
   <button type="button" id="btn-pause">Tạm nghỉ</button>
  </span>
  <button type="button" id="btn-wrapup">Kết thúc xử lý sau cuộc gọi</button>
 </div>
 <p id="agent-msg" class="msg" role="status" aria-live="polite"></p>
</section>

<section class="card" id="call-card" aria-labelledby="call-title" data-call="">
 <h2 id="call-title">Cuộc gọi hiện tại</h2>
 <p id="no-call" class="meta">Không có cuộc gọi.</p>
 <div id="call-info" hidden>
  <div class="call-head">
   <span class="caller" id="call-caller"></span>
   <span id="call-urgent" class="urgent" hidden>KHẨN</span>
   <span id="call-phase" class="meta"></span>
  </div>
  <dl class="facts">
   <dt>Tỉnh</dt><dd id="call-tenant"></dd>
   <dt>Số gọi đến</dt><dd id="call-dialled"></dd>
   <dt>Thời gian đàm thoại</dt><dd id="call-talk"></dd>
   <dt>Gọi đến lúc</dt><dd id="call-arrived"></dd>
   <dt>Mã cuộc gọi</dt><dd id="call-record" class="mono"></dd>
  </dl>
  <h3>Hành trình trên menu tự động</h3>
  <ol id="ivr-path" class="path"></ol>
  <p id="ivr-empty" class="meta" hidden>Người gọi không qua menu tự động.</p>
  <h3>Phiếu đang mở của người gọi</h3>
  <div class="scroll"><table id="caller-tickets"><thead><tr><th>Mã phiếu</th>
   <th>Lĩnh vực</th><th>Trạng thái</th><th>Hạn xử lý</th></tr></thead><tbody></tbody></table></div>
  <p id="caller-tickets-empty" class="meta" hidden>Người gọi không có phiếu nào đang mở.</p>
  <h3>Phiếu của cuộc gọi này</h3>
  <ul id="call-tickets" class="plain"></ul>
  <p id="call-tickets-empty" class="meta">Chưa có phiếu nào.</p>
 </div>
</section>

<section class="card" id="transfer-card" aria-labelledby="transfer-title">
 <h2 id="transfer-title">Chuyển cuộc gọi cho đơn vị</h2>
 {% if transfer_units %}
 <div class="row">
  <label>Đơn vị <select id="transfer-unit">{% for u in transfer_units %}
   <option value="{{ u.id }}">{{ u.name }} ({{ u.hotline }})</option>{% endfor %}
  </select></label>
  <label>Cách chuyển <select id="transfer-kind">
   <option value="blind">Chuyển thẳng</option>
   <option value="attended">Trao đổi với đơn vị trước</option>
  </select></label>
  <button type="button" id="btn-transfer">Chuyển cuộc gọi</button>
 </div>
 <div id="transfer-progress" class="row" hidden>
  <span id="transfer-status"></span>
  <button type="button" id="btn-transfer-complete">Hoàn tất chuyển</button>
  <button type="button" id="btn-transfer-cancel">Hủy chuyển</button>
 </div>
 {% else %}<p class="meta">Tỉnh chưa khai báo đường dây nóng của đơn vị nào.</p>{% endif %}
 <p id="transfer-msg" class="msg" role="status" aria-live="polite"></p>
</section>

<section class="card" id="ticket-card" aria-labelledby="ticket-title">
 <h2 id="ticket-title">Phiếu tiếp nhận</h2>
 <div id="draft-notice" class="notice" role="status" aria-live="polite" hidden>
  <span id="draft-notice-text"></span>
  <button type="button" id="btn-draft-clear">Xoá phiếu</button>
 </div>
 <form id="ticket-form" novalidate data-call="">
  <div class="grid">
   <label for="t-field">Lĩnh vực</label>
   <select id="t-field" name="field">{% for f in fields %}
    <option value="{{ f.id }}">{{ f.name }}</option>{% endfor %}
   </select>
   <label for="t-place">Địa bàn</label>
   <select id="t-place" name="place"><option value="">— Không rõ —</option>
    {% for p in places %}<option value="{{ p.id }}">{{ p.name }}</option>{% endfor %}
   </select>
   <label for="t-name">Họ tên người phản ánh</label>
   <input id="t-name" name="citizen_name" maxlength="200" autocomplete="off">
   <label for="t-phone">Số điện thoại</label>
   <input id="t-phone" name="citizen_phone" maxlength="24" inputmode="tel" autocomplete="off">
  </div>
  <label class="check"><input type="checkbox" id="t-urgent" name="urgent"> Khẩn cấp</label>
  <label for="t-content">Nội dung phản ánh</label>
  <textarea id="t-content" name="content" rows="4" maxlength="4000"></textarea>
  <p id="t-content-error" class="field-error" hidden>Vui lòng nhập nội dung phản ánh.</p>
  <p class="meta">Gắn với cuộc gọi: <span id="t-call" class="mono">—</span></p>

  <fieldset class="faq">
   <legend>Trả lời từ bộ câu hỏi thường gặp (FAQ)</legend>
   <div class="row">
    <input id="faq-q" type="search" placeholder="Gõ từ khóa, có dấu hoặc không dấu"
           aria-label="Tìm trong FAQ" autocomplete="off">
    <select id="faq-field" aria-label="Lĩnh vực FAQ"><option value="">Mọi lĩnh vực</option>
     {% for f in fields %}<option value="{{ f.id }}">{{ f.name }}</option>{% endfor %}
    </select>
   </div>
   <ul id="faq-results" class="faq-results"></ul>
   <p id="faq-empty" class="meta" hidden>Không tìm thấy câu hỏi phù hợp.</p>
   <div id="faq-chosen" hidden>
    <p><strong>Đã chọn:</strong> <span id="faq-chosen-q"></span>
     <button type="button" id="faq-clear" class="link">Bỏ chọn</button></p>
    <label for="t-answer">Câu trả lời cho người dân</label>
    <textarea id="t-answer" rows="4" maxlength="4000"></textarea>
   </div>
  </fieldset>

  <div class="row outcomes">
   <button type="submit" id="btn-save" class="primary">Lưu phiếu</button>
   <button type="button" id="btn-answer" disabled>Trả lời từ FAQ</button>
   <span class="forward-group">
    <select id="forward-unit" aria-label="Đơn vị nhận phiếu">
     <option value="">Theo phân công tự động</option>{% for u in units %}
     <option value="{{ u.id }}">{{ u.name }}</option>{% endfor %}
    </select>
    <button type="button" id="btn-forward">Chuyển đơn vị</button>
   </span>
  </div>
  <p id="ticket-msg" class="msg" role="status" aria-live="polite"></p>
 </form>
</section>
{% endif %}
</div>
{% endblock %}"""

_ENV = page_env({"desk.html": _DESK})


def _places(tenant: Tenant) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for d in policy_of(tenant).districts:
        out.append({"id": d.id, "name": d.name})
        out.extend({"id": c.id, "name": f"{d.name} — {c.name}"} for c in d.communes)
    return out


def page_data(tenant: Tenant) -> dict[str, Any]:
    """What the page's script needs that does not change during a shift."""
    policy = policy_of(tenant)
    units = [{"id": u.id, "name": u.name} for u in policy.units]
    return {
        "tenant": tenant.id, "tenant_name": tenant.name,
        "fields": [{"id": f.id, "name": f.name} for f in tenant.fields],
        "units": units,
        "unit_names": {u.id: u.name for u in policy.units},
        "pause_reasons": [{"id": r.id, "label": r.label}
                          for r in tenant.operators.queue.pause_reasons],
        "ticket_states": dict(TICKET_STATE_LABELS),  # the one table, every state
        "agent_states": {s.value: label for s, label in STATE_LABELS.items()},
    }


async def desk_page(request: web.Request) -> web.StreamResponse:
    """GET /console/desk: an operator's own desk; a supervisor/admin: ?ext= read-only."""
    user = require_console_role(request, ROLES)
    tenant = find_tenant(request.app, user.tenant)
    if tenant is None:
        return error_page(404, "tenant.not_found", "Không tìm thấy tỉnh",
                          "Cấu hình không còn tỉnh của tài khoản này.")
    operators = tenant.operators.operators
    wanted = request.query.get("ext")
    readonly = user.role != "operator"
    if user.role == "operator":
        if wanted and wanted != user.name:
            # %r: the extension is the raw query string (no forged log lines via CR/LF).
            log.info("desk: %r refused the desk of %r", user.name, wanted)
            return error_page(403, "auth.forbidden", "Không có quyền truy cập",
                              "Điện thoại viên chỉ mở được bàn làm việc của máy lẻ mình.",
                              back=DESK_PATH, back_label="Về bàn làm việc của tôi")
        ext: str | None = user.name
    elif wanted and _EXT.fullmatch(wanted) and any(o.extension == wanted for o in operators):
        ext = wanted
    else:
        ext = None
    op = next((o for o in operators if o.extension == ext), None)
    if user.role == "operator" and op is None:
        return error_page(404, "agent.unknown", "Không có máy lẻ",
                          f"Tài khoản {user.name} không trùng với máy lẻ điện thoại viên nào "
                          "của tỉnh. Tên đăng nhập của điện thoại viên phải là số máy lẻ.")
    policy = policy_of(tenant)
    transfer_units = [{"id": u.id, "name": u.name, "hotline": u.hotline}
                      for u in xf.targets(policy.units)]
    data = {**page_data(tenant), "ext": ext, "readonly": readonly}
    return render(request, _ENV, "desk.html", user, title="Bàn làm việc", data=data, ext=ext,
                  readonly=readonly, choose=ext is None, operators=operators,
                  operator_name=op.name if op else "", fields=tenant.fields,
                  places=_places(tenant), units=data["units"], transfer_units=transfer_units,
                  pause_reasons=tenant.operators.queue.pause_reasons)


def add_desk_routes(app: web.Application, acd: web.AppKey[AcdQueue],
                    database_url: str) -> None:
    """Add the desk page and its API routes to ``app``; ``app[acd]`` is the AcdQueue at
    request time, ``database_url`` the store the FAQ is read from."""
    app[ACD_KEY] = acd  # the same key add_agent_routes sets: the desk reads agents like it
    app.router.add_get(DESK_PATH, desk_page, name="console_desk")
    add_desk_api(app, database_url)
