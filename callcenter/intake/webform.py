"""The public petition form, ``/public/{tenant}/petition``: a plain Vietnamese page a citizen fills
in on a phone's browser — no JavaScript, no login, no outside service.

``GET`` serves the form with a signed token (``rules.sign_token``: the time it was served);
``POST`` (multipart) reads it as it streams in, checks it (``rules.screen`` for robots,
``rules.validate`` for the fields, each file's bytes for its kind and size), counts it against
the rate limits and opens the ticket — channel ``web``, by the ``system`` role, with the files
and the citizen's receipt SMS in the ticket's own transaction
(``TicketService.open_with_files``) — then redirects (303) to ``/public/{tenant}/petition/sent``,
which shows the code (a reload sends nothing twice). A refused form comes back with each error
next to its field and the values as typed (browsers never keep chosen files: the page says so).

Decisions:

* **Place**: one ``<select>`` with an ``<optgroup>`` per district, listing the district itself
  ("cả huyện / chưa rõ xã") then its communes — one step, no script, and a citizen who does
  not know the commune still picks the district.
* **Body size**: the body is read part by part (``request.multipart()``), so the app's
  ``client_max_size`` does not apply; this route has its own budget, ``form_limit``: one video
  at the video limit plus four photos at the photo limit plus the fields (140 MB 256 KB with
  the default limits). Each file is checked by its first bytes (``files.sniff_kind``) and its
  kind's limit as it streams; a body announced larger than the budget is refused (413) once
  the text fields are read, before any file. The files are held in memory until stored:
  ``MAX_CONCURRENT`` forms are read at once per process, others wait.
* **Rate limits** (``webform.per_address_per_hour``, ``per_phone_per_day``) are counted in
  Redis — sliding windows shared by every app instance, the login limiter's script
  (``console.sessions.SharedLoginRateLimiter``) under keys of their own that hash the address
  and the number (``rules.limit_key``); while Redis does not answer (or in a process without
  it) this process counts alone. Not the database: a count per address needs a table written
  on every submission, and Redis already holds the app's other short-lived counters. Only
  forms that pass every other check are counted: a citizen correcting a typo loses nothing.
  The address is the client's as ``console.proxies.client_address`` sees it (``X-Forwarded-For``
  only from ``console.trusted_proxies``).
* **Secret**: the token's HMAC key comes from ``$HOTLINE_WEBFORM_SECRET`` or, generated once,
  ``$HOTLINE_STATE/webform-secret.env`` (``load_secret``), so every app instance of the
  installation accepts the others' tokens and a restart keeps open forms valid.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets as random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlencode

import redis.asyncio as aioredis
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy.exc import OperationalError

from callcenter.config.model import Tenant
from callcenter.config.secrets import load_env_secrets
from callcenter.console.auth import in_thread
from callcenter.console.context import (
    CLOCK,
    PUBLIC_PREFIX,
    SERVICE,
    ConsoleApps,
    find_tenant,
    sub_path,
)
from callcenter.console.limits import FORM_SLACK
from callcenter.console.listing import size_text
from callcenter.console.proxies import client_address
from callcenter.console.rendering import environment
from callcenter.console.sessions import SharedLoginRateLimiter
from callcenter.intake import rules
from callcenter.numbers import mask_number
from callcenter.tickets.config import TicketError, policy_of
from callcenter.tickets.files import (
    DEFAULT_UPLOAD_LIMITS,
    SNIFF_BYTES,
    UploadLimits,
    check_upload,
    clean_file_name,
    sniff_kind,
)
from callcenter.tickets.rules import Actor, parse_ticket_code
from callcenter.tickets.service import NewTicket

log = logging.getLogger("callcenter.intake.webform")

FORM_PATH: Final = "/public/{tenant}/petition"
SENT_PATH: Final = "/public/{tenant}/petition/sent"
SECRET_FILE: Final = "webform-secret.env"
SECRET_ENV: Final = "HOTLINE_WEBFORM_SECRET"
ACTOR: Final = Actor("web-form", "system")
CHUNK: Final = 64 * 1024
MAX_TEXT_FIELD: Final = 64 * 1024  # the content: 9 000 characters, up to 4 bytes each
MAX_CONCURRENT: Final = 4
CSP: Final = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
              "base-uri 'none'; frame-ancestors 'none'")
HEADERS: Final = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                  "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}

SECRET = web.AppKey("webform_secret", bytes)
LIMITER = web.AppKey("webform_limiter", SharedLoginRateLimiter)
SLOTS = web.AppKey("webform_slots", asyncio.Semaphore)
_ENV = environment("callcenter.intake")  # templates/petition.html, petition_sent.html


class WebFormLimiter(SharedLoginRateLimiter):
    """The login limiter's sliding window (Redis, this process while Redis is away), with the
    form's own keys."""

    KEY = "hotline:{}"


def load_secret(state_dir: Path) -> bytes:
    """The token key: ``$HOTLINE_WEBFORM_SECRET``, else the state folder's file (made once)."""
    values = load_env_secrets(state_dir / SECRET_FILE, (SECRET_ENV,))
    return values[SECRET_ENV].encode()


def form_limit(limits: UploadLimits) -> int:
    """The largest form body: one video, four photos and the fields."""
    return limits.video + (rules.MAX_FILES - 1) * limits.image + FORM_SLACK


@dataclass
class SentForm:
    """What a POST carried: the text fields, the files that passed, and what was wrong."""

    raw: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    chosen: int = 0  # files the citizen chose (accepted or not)
    too_large: bool = False  # the body went over form_limit: reading stopped


def _html(template: str, status: int = 200, **values: Any) -> web.Response:
    body = _ENV.get_template(template).render(**values)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                        headers=HEADERS)


def _not_found() -> web.Response:
    return _html("petition_sent.html", 404, tenant=None, code=None, not_found=True)


def _tenant(request: web.Request) -> Tenant | None:
    """The tenant of the path if it takes petitions on the web, else None (404)."""
    tenant = find_tenant(request.config_dict, request.match_info.get("tenant", ""))
    if tenant is None or not tenant.webform.enabled:
        return None
    return tenant


def _limits(request: web.Request) -> UploadLimits:
    service = request.config_dict.get(SERVICE)
    return service.upload_limits if service is not None else DEFAULT_UPLOAD_LIMITS


def _form(request: web.Request, tenant: Tenant, *, status: int = 200,
          values: rules.FormValues | None = None, errors: dict[str, str] | None = None,
          message: str | None = None, token: str | None = None) -> web.Response:
    """The form page: fresh, or back with the values as typed and the errors by field."""
    tickets = policy_of(tenant)
    limits = _limits(request)
    if token is None:
        token = rules.sign_token(request.config_dict[SECRET], tenant.id,
                                 request.config_dict[CLOCK]())
    # Every field's entry present (the templates' undefined names are errors, not blanks).
    by_field = {k: (errors or {}).get(k, "") for k in (*rules.FIELDS, "files")}
    return _html("petition.html", status, tenant=tenant, values=values or rules.FormValues(),
                 errors=by_field, message=message, token=token,
                 fields=[(f.id, f.name) for f in tickets.fields],
                 places=rules.place_groups(tickets), max_files=rules.MAX_FILES,
                 accept=rules.ACCEPT_ATTRIBUTE, accepted=rules.ACCEPTED_FILES_TEXT,
                 image_limit=size_text(limits.image), video_limit=size_text(limits.video),
                 total_limit=size_text(form_limit(limits)), honeypot=rules.HONEYPOT,
                 token_name=rules.TOKEN, policy=tenant.webform)


async def form_page(request: web.Request) -> web.StreamResponse:
    """The empty form, with a token signed now."""
    tenant = _tenant(request)
    return _not_found() if tenant is None else _form(request, tenant)


async def _drain(part: BodyPartReader, budget: int) -> int:
    """Read a part to its end without keeping it; the bytes read (stops past ``budget``)."""
    n = 0
    while n <= budget:
        chunk = await part.read_chunk(CHUNK)
        if not chunk:
            break
        n += len(chunk)
    return n


async def _read_text(part: BodyPartReader) -> bytearray:
    """A text field's bytes, stopping once past ``MAX_TEXT_FIELD``."""
    raw = bytearray()
    while len(raw) <= MAX_TEXT_FIELD:
        chunk = await part.read_chunk(CHUNK)
        if not chunk:
            break
        raw += chunk
    return raw


async def _read_file(part: BodyPartReader, sent: SentForm, limits: UploadLimits,
                     budget: int) -> int:
    """One chosen file: kept if its first bytes are a photo or video within its kind's limit,
    else an error naming it. The bytes read."""
    # Browsers percent-encode a name's quote and line breaks (HTML's form encoding), some
    # clients every byte: decoded, the citizen recognises their file's name.
    name = clean_file_name(unquote(part.filename or "")) or "tệp"
    data = bytearray()
    head = await part.read_chunk(CHUNK)
    if not head:
        return 0  # an empty file input: the browser sends the part with no name and no bytes
    sent.chosen += 1
    if sent.chosen > rules.MAX_FILES:
        if sent.chosen == rules.MAX_FILES + 1:
            sent.file_errors.append(rules.too_many_files_text())
        return len(head) + await _drain(part, budget - len(head))
    while len(head) < SNIFF_BYTES:  # a first chunk may be short: the kind needs 12 bytes
        more = await part.read_chunk(CHUNK)
        if not more:
            break
        head += more
    kind = sniff_kind(bytes(head[:SNIFF_BYTES]))
    if kind is None or kind.category not in rules.FILE_CATEGORIES:
        sent.file_errors.append(rules.file_type_text(name))
        return len(head) + await _drain(part, budget - len(head))
    limit = limits.of(kind.category)
    data += head
    while len(data) <= limit and len(data) <= budget:
        chunk = await part.read_chunk(CHUNK)
        if not chunk:
            break
        data += chunk
    if len(data) > limit:
        sent.file_errors.append(rules.file_too_large_text(name, kind.category, limit))
        return len(data) + await _drain(part, budget - len(data))
    declared = part.headers.get("Content-Type")
    try:  # the whole file as the ticket service will check it (a .png name on JPEG bytes ...)
        check_upload(name, declared, bytes(data), limits)
    except TicketError:
        sent.file_errors.append(rules.file_type_text(name))
        return len(data)
    sent.files.append((name, declared, bytes(data)))
    return len(data)


async def _read_form(request: web.Request, limits: UploadLimits) -> SentForm:
    """The multipart body, part by part, within ``form_limit``."""
    sent = SentForm()
    budget = form_limit(limits)
    announced_too_large = (request.content_length is not None
                           and request.content_length > budget)
    reader = await request.multipart()
    used = 0
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):  # a nested multipart: not from this form
            raise ValueError("nested multipart")
        if part.filename is not None and announced_too_large:
            sent.too_large = True
            break  # the text fields are read; the files are never looked at
        if part.filename is not None and part.name == "files":
            used += await _read_file(part, sent, limits, budget - used)
        elif part.filename is not None:  # no such file input in this form
            used += await _drain(part, budget - used)
        else:
            raw = await _read_text(part)
            used += len(raw)
            if len(raw) > MAX_TEXT_FIELD:
                used += await _drain(part, budget - used)
            elif part.name:
                sent.raw.setdefault(part.name, raw.decode("utf-8", errors="replace"))
        if used > budget:
            sent.too_large = True
            break
    return sent


async def submit(request: web.Request) -> web.StreamResponse:
    """A sent form: screened, validated, counted, then the ticket (see the module's doc)."""
    tenant = _tenant(request)
    if tenant is None:
        return _not_found()
    if request.content_type != "multipart/form-data":
        return _form(request, tenant, status=415,
                     message="Biểu mẫu gửi lên không đúng định dạng; vui lòng gửi lại.")
    config = request.config_dict
    limits = _limits(request)
    address = client_address(request)
    async with config[SLOTS]:
        try:
            sent = await _read_form(request, limits)
        except (ValueError, AssertionError, KeyError, HttpProcessingError) as e:
            log.info("web form (%s) from %s: malformed body (%s)", tenant.id, address,
                     type(e).__name__)
            return _form(request, tenant, status=400,
                         message="Biểu mẫu gửi lên không đọc được; vui lòng gửi lại.")
        return await _handle(request, tenant, sent, address)


async def _handle(request: web.Request, tenant: Tenant, sent: SentForm,
                  address: str) -> web.StreamResponse:
    config = request.config_dict
    secret = config[SECRET]
    now = config[CLOCK]()
    policy = tenant.webform
    values = rules.FormValues.of(sent.raw)
    token = sent.raw.get(rules.TOKEN, "")
    verdict = rules.screen(honeypot=sent.raw.get(rules.HONEYPOT, ""),
                           issued=rules.read_token(secret, tenant.id, token), now=now,
                           policy=policy)
    if verdict == "honeypot":
        log.info("web form (%s) from %s: honeypot filled, refused quietly", tenant.id, address)
        return _html("petition_sent.html", 200, tenant=tenant, code=None, not_found=False)
    if verdict in ("bad_token", "expired"):
        log.info("web form (%s) from %s: %s token", tenant.id, address, verdict)
        return _form(request, tenant, status=403, values=values,
                     message=_with_files(rules.SCREEN_TEXT[verdict], sent))
    if verdict == "too_fast":
        log.info("web form (%s) from %s: sent too fast", tenant.id, address)
        return _form(request, tenant, status=429, values=values, token=token,
                     message=_with_files(rules.SCREEN_TEXT[verdict], sent))
    petition, errors = rules.validate(values, policy_of(tenant))
    if sent.too_large:
        errors["files"] = rules.total_too_large_text(form_limit(_limits(request)))
    elif sent.file_errors:
        errors["files"] = " ".join(sent.file_errors)
    if errors or petition is None:
        status = 413 if sent.too_large else 422
        message = "Vui lòng sửa các mục được đánh dấu bên dưới rồi gửi lại."
        return _form(request, tenant, status=status, values=values, errors=errors,
                     token=token, message=_with_files(message, sent))
    checks: tuple[tuple[rules.LimitKind, str], ...] = (("address", address),
                                                       ("phone", petition.citizen_phone))
    for kind, value in checks:
        limit, window = rules.limit_of(policy, kind)
        wait = await config[LIMITER].hit(rules.limit_key(secret, kind, tenant.id, value),
                                         now, limit, window)
        if wait is not None:
            log.info("web form (%s) from %s: %s limit reached (%s)", tenant.id, address, kind,
                     mask_number(petition.citizen_phone))
            return _form(request, tenant, status=429, values=values, token=token,
                         message=_with_files(rules.rate_limited_text(kind, policy, wait), sent))
    request_ = NewTicket(channel="web", content=petition.content, field=petition.field,
                         place=petition.place, citizen_name=petition.citizen_name,
                         citizen_phone=petition.citizen_phone)
    try:
        ticket, attachments = await in_thread(
            config, config[SERVICE].open_with_files, tenant.id, ACTOR, request_, sent.files,
            receipt=True, categories=rules.FILE_CATEGORIES)
    except TicketError as e:
        # The full check of a file (e.g. a name saying .png on JPEG bytes), or a rule the form
        # did not foresee: the citizen sees it, in the file's row or at the top.
        log.info("web form (%s) from %s: refused by the ticket service: %s", tenant.id,
                 address, e.id)
        errs = {"files": _upload_text(e)} if e.id.startswith("ticket.upload") else {}
        return _form(request, tenant, status=422, values=values, errors=errs, token=token,
                     message=_with_files("Không ghi nhận được phản ánh: vui lòng kiểm tra lại "
                                         "các mục bên dưới.", sent))
    except OperationalError:
        log.error("web form (%s): the ticket store is unavailable", tenant.id)
        return _form(request, tenant, status=503, values=values, token=token,
                     message=_with_files("Hệ thống đang bận, chưa ghi nhận được phản ánh. Vui "
                                         "lòng gửi lại sau ít phút hoặc gọi Tổng đài 1022.",
                                         sent))
    log.info("web form (%s) from %s: ticket %s opened with %d file(s)", tenant.id, address,
             ticket.code, len(attachments))
    query = urlencode({"code": ticket.code,
                       "sig": rules.receipt_signature(secret, tenant.id, ticket.code)})
    location = f"{FORM_PATH.format(tenant=tenant.id)}/sent?{query}"
    return web.Response(status=303, headers={"Location": location, **HEADERS})


def _upload_text(e: TicketError) -> str:
    if e.id == "ticket.upload_too_large":
        return "Một tệp quá lớn: " + e.message
    return f"Một tệp không phải {rules.ACCEPTED_FILES_TEXT} (kiểm tra theo nội dung tệp)."


def _with_files(message: str, sent: SentForm) -> str:
    """A refusal, plus the reminder to choose the files again when some were chosen."""
    return f"{message} {rules.reselect_files_text(sent.chosen)}" if sent.chosen else message


async def sent_page(request: web.Request) -> web.StreamResponse:
    """The receipt: the code of the ticket just opened (only a code this form signed)."""
    tenant = _tenant(request)
    code = request.query.get("code", "")
    sig = request.query.get("sig", "")
    if tenant is None:
        return _not_found()
    try:
        parse_ticket_code(code)
    except TicketError:
        return _not_found()
    if not hmac.compare_digest(sig, rules.receipt_signature(request.config_dict[SECRET],
                                                            tenant.id, code)):
        return _not_found()
    return _html("petition_sent.html", 200, tenant=tenant, code=code, not_found=False)


def add_webform_routes(apps: ConsoleApps, *, secret: bytes | None = None,
                       redis: web.AppKey[aioredis.Redis] | None = None,
                       concurrent: int = MAX_CONCURRENT) -> None:
    """The form's routes on the public sub-app; its secret, limiter and slots on the root.

    ``secret``: the token key (``load_secret``); without one a random key of this process is
    used (tests; tokens then die with the process and other instances refuse them).
    ``redis``: the app key of the Redis client the rate limits are counted in.
    """
    root = apps.root
    if secret is None:
        log.warning("web form: no secret given; tokens are valid in this process only")
    root[SECRET] = secret or random.token_bytes(32)
    root[LIMITER] = WebFormLimiter(lambda: root.get(redis) if redis is not None else None)
    root[SLOTS] = asyncio.Semaphore(concurrent)
    public = apps.public
    public.router.add_get(sub_path(PUBLIC_PREFIX, FORM_PATH), form_page, name="petitionForm")
    public.router.add_post(sub_path(PUBLIC_PREFIX, FORM_PATH), submit)
    public.router.add_get(sub_path(PUBLIC_PREFIX, SENT_PATH), sent_page, name="petitionSent")

