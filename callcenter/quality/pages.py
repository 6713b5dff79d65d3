"""The console's quality review pages (supervisors and admins of the call's own province):

* ``GET /console/quality?week=2026-W49`` — the week's sample: per operator, the calls to review
  (``rules.weekly_sample``: the same for every supervisor), who reviewed each already.
* ``GET /console/quality/calls/{call_id}`` — one call: its facts, an ``<audio>`` player of its
  recording (``preload="none"``: nothing is fetched, and no play audited, until play is
  pressed), the scoring form (the user's own review, editable) and the others' reviews.
* ``POST /console/quality/calls/{call_id}/review`` — save the user's scores (one review per
  call per reviewer; new or edited, each audited), then back to the call's page (303).
* ``GET /console/quality/calls/{call_id}/recording`` — the recording, streamed with HTTP Range
  (aiohttp's FileResponse: 206 and Content-Range), so the player can seek. Audited as a "play"
  once per play: only a request without Range or with a range from byte 0 writes a row; the
  player's later range requests (seeking, the next chunk) do not.
* ``GET /console/quality/calls/{call_id}/recording/download`` — the same file as an
  attachment, admins only, audited as a "download".
* ``GET /console/quality/report?period=2026-W49`` (or ``2026-12``) and ``/report.xlsx`` — per
  operator: reviews, averages per criterion, calls with "đùn đẩy".

Another province's call is a 403 page (``auth.forbidden``) for the page, the form and the
recording alike. The recording's file name comes from the call record and must resolve inside
the recordings folder (``recording_path``: no absolute name, no "..", no symlink leading out);
otherwise 404, logged as an error.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import AsyncIterator, Callable
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import quote

from aiohttp import web

from callcenter.console import listing as ls
from callcenter.console.auth import in_thread
from callcenter.console.context import CLOCK, CONFIG, CONSOLE_PREFIX, ConsoleApps, sub_path
from callcenter.console.pages import render
from callcenter.console.rendering import environment
from callcenter.console.sessions import error_page, require_console_role
from callcenter.quality.report import REPORT_COLUMNS, report_rows, report_table
from callcenter.quality.rules import (
    CRITERIA,
    DEFAULT_SAMPLE,
    MAX_NOTES,
    PASS_LABELS,
    SCORE_LABELS,
    Period,
    Scores,
    operator_report,
    parse_period,
    shift_week,
    starts_a_play,
    validate_scores,
    week_of,
    weekly_sample,
)
from callcenter.quality.store import QualityStore
from callcenter.store.data import CallRecordData
from callcenter.store.database import DatabaseRef
from callcenter.store.records import CallRecordStore
from callcenter.store.users import User
from callcenter.tickets.reports import xlsx_bytes

log = logging.getLogger("callcenter.quality")

PATH: Final = "/console/quality"
ROLES: Final = ("supervisor", "admin")
DOWNLOAD_ROLES: Final = ("admin",)
DEFAULT_TZ: Final = "Asia/Ho_Chi_Minh"
QUALITY = web.AppKey("console_quality", QualityStore)
QUALITY_RECORDS = web.AppKey("console_quality_records", CallRecordStore)
RecordingsFolder = Callable[[], Path | None]
RECORDINGS: web.AppKey[RecordingsFolder] = web.AppKey("console_recordings_folder")
AUDIO_TYPES: Final = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
                      ".gsm": "audio/x-gsm", ".wav49": "audio/wav"}

_ENV: Final = environment("callcenter.quality")  # templates/quality_*.html


def recording_path(folder: Path, name: str | None) -> Path | None:
    """The file a call record's ``recording`` names inside ``folder``, or None if the name is
    empty, absolute, climbs out with "..", or resolves (through a symlink) outside it."""
    if not name or "\x00" in name or "\\" in name:
        return None
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts:
        return None
    base = folder.resolve()
    try:
        path = (base / rel).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    return path if path.is_relative_to(base) and path != base else None


def _tz(request: web.Request, tenant_id: str) -> str:
    tenant = request.config_dict[CONFIG]().tenant(tenant_id)
    return tenant.timezone if tenant is not None else DEFAULT_TZ


def _forbidden(user: User, call_id: str) -> web.Response:
    log.info("quality: %s (%s, %s) refused call %s of another province", user.name, user.role,
             user.tenant, call_id)
    return error_page(403, "auth.forbidden", "Không có quyền truy cập",
                      "Cuộc gọi này thuộc tỉnh, thành khác.", back=PATH,
                      back_label="Về trang kiểm tra chất lượng")


def _not_found(message: str = "Cuộc gọi này không tồn tại.") -> web.Response:
    return error_page(404, "call.not_found", "Không tìm thấy", message, back=PATH,
                      back_label="Về trang kiểm tra chất lượng")


async def _call_of(request: web.Request, user: User) -> CallRecordData | web.Response:
    """The call the path names, or the page to answer with (404, 403)."""
    call_id = request.match_info["call_id"]
    if not call_id or len(call_id) > 64:
        return _not_found()
    rec = await in_thread(request.config_dict, request.config_dict[QUALITY_RECORDS].get,
                          call_id)
    if rec is None:
        return _not_found()
    if rec.tenant != user.tenant:
        return _forbidden(user, call_id)
    return rec


def _period(request: web.Request, tenant: str, name: str) -> tuple[Period, str | None]:
    tz = _tz(request, tenant)
    raw = request.query.get(name, "").strip()
    if not raw:
        return week_of(request.config_dict[CLOCK](), tz), None
    try:
        return parse_period(raw, tz), None
    except ValueError as e:
        return week_of(request.config_dict[CLOCK](), tz), str(e)


# --- the weekly sample ----------------------------------------------------------------------


def _sample(request: web.Request, user: User, week: Period
            ) -> tuple[dict[str, list[CallRecordData]], dict[str, list[str]]]:
    """The week's sample with its call records and reviewers; blocking: run in the pool."""
    quality = request.config_dict[QUALITY]
    tenant = request.config_dict[CONFIG]().tenant(user.tenant)
    per_operator = (tenant.quality.sample_per_operator if tenant is not None
                    else DEFAULT_SAMPLE)
    drawn = weekly_sample(quality.candidates(user.tenant, week), tenant=user.tenant, week=week,
                          per_operator=per_operator)
    ids = [i for calls in drawn.values() for i in calls]
    records = request.config_dict[QUALITY_RECORDS].get_many(ids)
    return ({op: [records[i] for i in calls if i in records] for op, calls in drawn.items()},
            quality.reviewed_calls(ids))


async def sample_page(request: web.Request) -> web.StreamResponse:
    """GET /console/quality: the week's calls to review, per operator."""
    user = require_console_role(request, ROLES)
    week, error = _period(request, user.tenant, "week")
    if "-W" not in week.key:
        week, error = week_of(week.start, _tz(request, user.tenant)), \
            "Trang mẫu kiểm tra chọn theo tuần (dạng 2026-W49)."
    sample, reviewed = await in_thread(request.config_dict, _sample, request, user, week)
    tz = _tz(request, user.tenant)
    tenant = request.config_dict[CONFIG]().tenant(user.tenant)
    names = {o.extension: o.name for o in tenant.operators.operators} if tenant else {}
    return render(request, _ENV, "quality_sample.html", user, title="Kiểm tra chất lượng",
                  status=422 if error else 200, week=week, error=error,
                  prev_week=shift_week(week, -1, tz).key, next_week=shift_week(week, 1, tz).key,
                  per_operator=tenant.quality.sample_per_operator if tenant else DEFAULT_SAMPLE,
                  groups=[(op, names.get(op, ""), [
                      {"id": r.id, "arrived_at": r.arrived_at, "talk_s": ls.seconds(r.talk_s),
                       "reviewers": reviewed.get(r.id, []),
                       "mine": user.name in reviewed.get(r.id, [])} for r in calls])
                      for op, calls in sample.items()],
                  call_url=_call_url)


def _call_url(call_id: str) -> str:
    return f"{PATH}/calls/{quote(call_id, safe=':')}"


# --- one call: player, form, reviews -------------------------------------------------------


def _form_values(scores: Scores | None) -> dict[str, str]:
    if scores is None:
        return {}
    return {"greeting": str(scores.greeting), "accuracy": str(scores.accuracy),
            "attitude": str(scores.attitude),
            "no_buck_passing": "dat" if scores.no_buck_passing else "khong_dat",
            "notes": scores.notes}


async def _call_page(request: web.Request, user: User, rec: CallRecordData, *,
                     status: int = 200, values: dict[str, str] | None = None,
                     errors: dict[str, str] | None = None,
                     message: str | None = None) -> web.Response:
    quality = request.config_dict[QUALITY]
    reviews = await in_thread(request.config_dict, quality.reviews_of_call, rec.id)
    mine = next((r for r in reviews if r.reviewer == user.name), None)
    folder = request.config_dict[RECORDINGS]()
    path = recording_path(folder, rec.recording) if folder is not None else None
    playable = path is not None and await in_thread(request.config_dict, path.is_file)
    tenant = request.config_dict[CONFIG]().tenant(user.tenant)
    op = tenant.operators.operator(rec.operator) if tenant and rec.operator else None
    return render(request, _ENV, "quality_call.html", user, title="Nghe và chấm điểm cuộc gọi",
                  status=status, rec=rec, operator_name=op.name if op else "",
                  talk_s=ls.seconds(rec.talk_s), wait_s=ls.seconds(rec.wait_s),
                  outcome_label=ls.outcome_label(rec.outcome),
                  call_url=_call_url(rec.id), playable=playable,
                  can_download=user.role in DOWNLOAD_ROLES,
                  criteria=CRITERIA, score_labels=SCORE_LABELS, pass_labels=PASS_LABELS,
                  values=values if values is not None else _form_values(
                      mine.scores if mine else None),
                  errors=errors or {}, mine=mine, max_notes=MAX_NOTES,
                  others=[r for r in reviews if r.reviewer != user.name], message=message,
                  week=week_of(rec.arrived_at, _tz(request, user.tenant)).key)


async def call_page(request: web.Request) -> web.StreamResponse:
    """GET /console/quality/calls/{call_id}: listen to the call and score it."""
    user = require_console_role(request, ROLES)
    rec = await _call_of(request, user)
    if isinstance(rec, web.Response):
        return rec
    saved = request.query.get("saved")
    message = {"new": "Đã lưu phiếu chấm điểm.", "edit": "Đã cập nhật phiếu chấm điểm."
               }.get(saved or "")
    return await _call_page(request, user, rec, message=message)


async def save_review(request: web.Request) -> web.StreamResponse:
    """POST /console/quality/calls/{call_id}/review: the user's scores of the call."""
    user = require_console_role(request, ROLES)
    rec = await _call_of(request, user)
    if isinstance(rec, web.Response):
        return rec
    form = await request.post()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    checked = validate_scores(values)
    if isinstance(checked, dict):
        return await _call_page(request, user, rec, status=422, values=values, errors=checked)
    if not rec.operator:
        return await _call_page(request, user, rec, status=422, values=values,
                                errors={"call": "Cuộc gọi này không có điện thoại viên nghe "
                                                "máy: không có gì để chấm."})
    review, new = await in_thread(
        request.config_dict, request.config_dict[QUALITY].save_review, tenant=rec.tenant,
        call_id=rec.id, operator=rec.operator, call_arrived_at=rec.arrived_at,
        reviewer=user.name, role=user.role, scores=checked, at=request.config_dict[CLOCK]())
    log.info("quality: %s %s the review of call %s (operator %s)", user.name,
             "stored" if new else "updated", rec.id, rec.operator)
    raise web.HTTPSeeOther(location=f"{_call_url(rec.id)}?saved={'new' if new else 'edit'}")


# --- the recording ----------------------------------------------------------------------------


async def _recording(request: web.Request, *, download: bool) -> web.StreamResponse:
    user = require_console_role(request, DOWNLOAD_ROLES if download else ROLES)
    rec = await _call_of(request, user)
    if isinstance(rec, web.Response):
        return rec
    folder = request.config_dict[RECORDINGS]()
    if folder is None or not rec.recording:
        return _not_found("Cuộc gọi này không có tệp ghi âm (không ghi âm, hoặc đã xóa theo "
                          "thời hạn lưu trữ).")
    path = recording_path(folder, rec.recording)
    if path is None:
        log.error("quality: call %s names the recording %r, which is not inside %s: refused",
                  rec.id, rec.recording, folder)
        return _not_found("Tệp ghi âm của cuộc gọi này không hợp lệ.")
    if not await in_thread(request.config_dict, path.is_file):
        return _not_found("Không tìm thấy tệp ghi âm của cuộc gọi này.")
    range_header = request.headers.get("Range")
    if request.method == "GET" and (download or starts_a_play(range_header)):
        await in_thread(request.config_dict, request.config_dict[QUALITY].audit,
                        tenant=rec.tenant, actor=user.name, role=user.role,
                        action="download" if download else "play", call_id=rec.id,
                        at=request.config_dict[CLOCK](),
                        detail={"range": range_header} if range_header else None)
        log.info("quality: %s (%s) %s the recording of call %s", user.name, user.role,
                 "downloaded" if download else "played", rec.id)
    ctype = AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"
    headers = {"Content-Type": ctype, "Cache-Control": "private, no-store"}
    if download:
        name = PurePosixPath(rec.recording).name
        ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                             for c in name)
        headers["Content-Disposition"] = f'attachment; filename="{ascii_name}"'
    return web.FileResponse(path, headers=headers)


async def play_recording(request: web.Request) -> web.StreamResponse:
    """GET /console/quality/calls/{call_id}/recording: the recording, inline, with Range."""
    return await _recording(request, download=False)


async def download_recording(request: web.Request) -> web.StreamResponse:
    """GET /console/quality/calls/{call_id}/recording/download: as an attachment (admins)."""
    return await _recording(request, download=True)


# --- the report -----------------------------------------------------------------------------


def _report(request: web.Request, user: User, period: Period) -> list[dict[str, Any]]:
    reviews = request.config_dict[QUALITY].reviews_in(user.tenant, period)
    tenant = request.config_dict[CONFIG]().tenant(user.tenant)
    names = {o.extension: o.name for o in tenant.operators.operators} if tenant else {}
    return report_rows(operator_report([r.facts() for r in reviews]), names)


async def report_page(request: web.Request) -> web.StreamResponse:
    """GET /console/quality/report: per operator, over a week or a month."""
    user = require_console_role(request, ROLES)
    period, error = _period(request, user.tenant, "period")
    rows = await in_thread(request.config_dict, _report, request, user, period)
    return render(request, _ENV, "quality_report.html", user, title="Báo cáo chất lượng",
                  status=422 if error else 200, period=period, error=error, rows=rows,
                  columns=REPORT_COLUMNS, call_url=_call_url)


async def report_xlsx(request: web.Request) -> web.StreamResponse:
    """GET /console/quality/report.xlsx: the same report as an xlsx workbook."""
    user = require_console_role(request, ROLES)
    period, error = _period(request, user.tenant, "period")
    if error:
        return error_page(422, "request.invalid", "Kỳ báo cáo không hợp lệ", error,
                          back=f"{PATH}/report", back_label="Về báo cáo chất lượng")
    rows = await in_thread(request.config_dict, _report, request, user, period)
    tenant = request.config_dict[CONFIG]().tenant(user.tenant)
    table = report_table(tenant.name if tenant else user.tenant, period, rows,
                         _tz(request, user.tenant), request.config_dict[CLOCK]())
    body = await in_thread(request.config_dict, xlsx_bytes, [table])
    return web.Response(body=body, content_type="application/vnd.openxmlformats-"
                        "officedocument.spreadsheetml.sheet", headers={
                            "Content-Disposition": f'attachment; filename="chat-luong-'
                                                   f'{user.tenant}-{period.key}.xlsx"',
                            "Cache-Control": "private, no-store"})


def add_quality_pages(apps: ConsoleApps, database: DatabaseRef,
                      recordings: RecordingsFolder | None = None) -> None:
    """Add the quality pages to the console sub-app and their stores' cleanup context to the
    root. ``recordings``: where the PBX's recordings are (asked at each request: the app knows
    it once the PBX is located); None, or returning None: no recording can be played."""

    async def quality_ctx(app: web.Application) -> AsyncIterator[None]:
        app[QUALITY] = store = QualityStore(database)
        app[QUALITY_RECORDS] = records = CallRecordStore(database)
        try:
            yield
        finally:
            records.close()
            store.close()

    apps.root.cleanup_ctx.append(quality_ctx)
    apps.root[RECORDINGS] = recordings if recordings is not None else (lambda: None)
    router = apps.console.router
    path = sub_path(CONSOLE_PREFIX, PATH)
    router.add_get(path, sample_page, name="console_quality")
    router.add_get(path + "/report", report_page, name="console_quality_report")
    router.add_get(path + "/report.xlsx", report_xlsx, name="console_quality_report_xlsx")
    router.add_get(path + "/calls/{call_id}", call_page, name="console_quality_call")
    router.add_post(path + "/calls/{call_id}/review", save_review,
                    name="console_quality_review")
    router.add_get(path + "/calls/{call_id}/recording", play_recording,
                   name="console_quality_play")
    router.add_get(path + "/calls/{call_id}/recording/download", download_recording,
                   name="console_quality_download")

