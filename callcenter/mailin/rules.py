"""E-mail in, the pure part: the ``mail_in:`` config, reading a citizen's message (text,
attachments, threading, loop signs) and the automatic reply's text. No I/O; time passed in.

A message is read with the stdlib ``email`` package (policy ``default``): RFC 2047 subjects and
names, quoted-printable and base64 bodies and any declared charset (UTF-8, windows-1258 ...) are
decoded; text/plain is preferred, text/html is turned into text with ``html.parser`` (script and
style dropped, no markup kept). Every other leaf with a file name or a non-text type is an
attachment, checked later by its bytes like any ticket attachment (tickets/files.py).

A message is *automatic* (never auto-replied to, so two robots do not answer each other
forever) when it says so: ``Auto-Submitted`` other than ``no``, ``Precedence: bulk/list/junk``,
``X-Autoreply``/``X-Autorespond``, a ``List-Id``, an empty or ``MAILER-DAEMON`` sender, or our
own address as sender. A *bounce* (``multipart/report``, a null, MAILER-DAEMON or postmaster
sender) is automatic and not a petition at all.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Final

from callcenter.config.base import MISSING, BaseParser, join_key
from callcenter.mail.rules import is_address

MIB: Final = 1024 * 1024
DEFAULT_MAX_BYTES: Final = 25 * MIB
DEFAULT_PER_SENDER_PER_DAY: Final = 10
DEFAULT_FIELD: Final = "other"
MAX_TEXT: Final = 8000  # characters of the message kept in the ticket's content
MAX_SUBJECT: Final = 200
CODE_RE: Final = re.compile(r"\b([A-Z][A-Z0-9]{0,9}-\d{8}-\d{4,6})\b")
_MSGID_RE: Final = re.compile(r"<[^<>\s]+>")
MAIL_IN_KEYS: Final = ("bind", "port", "max_bytes", "per_sender_per_day", "field", "tenants")


@dataclass(frozen=True)
class MailInConfig:
    """The ``mail_in:`` section: where the intake listens and whose addresses it takes."""

    addresses: dict[str, str]  # lower-case address -> tenant
    bind: str = "127.0.0.1"
    port: int = 8025
    max_bytes: int = DEFAULT_MAX_BYTES
    per_sender_per_day: int = DEFAULT_PER_SENDER_PER_DAY
    field: str = DEFAULT_FIELD  # the field of a new ticket (level 1 reclassifies)

    def tenant_of(self, address: str) -> str | None:
        """The tenant whose mailbox ``address`` is (case-insensitive), or None: not ours."""
        return self.addresses.get(address.strip().lower())


def parse_mail_in_section(p: BaseParser, value: object) -> MailInConfig | None:
    """Validate the top-level ``mail_in`` key; errors go to ``p`` (None when absent/invalid)."""
    if value is None:
        return None
    k = "mail_in"
    m = p.mapping(value, k, MAIL_IN_KEYS, ("tenants",))
    if m is None or "tenants" not in m:
        return None
    before = len(p.errors)
    bind = p.ip(m.get("bind", "127.0.0.1"), join_key(k, "bind"))
    port = p.port(m.get("port", 8025), join_key(k, "port"))
    max_bytes = p.integer(m.get("max_bytes", DEFAULT_MAX_BYTES), join_key(k, "max_bytes"),
                          64 * 1024, 100 * MIB)
    per_day = p.integer(m.get("per_sender_per_day", DEFAULT_PER_SENDER_PER_DAY),
                        join_key(k, "per_sender_per_day"), 1, 10000)
    field = p.token(m.get("field", DEFAULT_FIELD), join_key(k, "field"))
    addresses: dict[str, str] = {}
    tk = join_key(k, "tenants")
    tenants = m["tenants"]
    if not isinstance(tenants, dict) or not tenants:
        p.error(tk, tenants, "expected a mapping tenant -> list of mail addresses, e.g. "
                             "{dongnai: [tongdai1022@dongnai.gov.vn]}")
    else:
        for tenant, addrs in tenants.items():
            key = join_key(tk, str(tenant))
            items = p.list_(addrs, key)
            for i, item in enumerate(items or ()):
                ik = join_key(key, i)
                s = p.text(item, ik, max_len=320)
                if s is None:
                    continue
                if not is_address(s.strip()):
                    p.error(ik, s, "expected a mail address, e.g. tongdai1022@dongnai.gov.vn")
                elif s.strip().lower() in addresses:
                    p.error(ik, s, f"already the address of {addresses[s.strip().lower()]}")
                else:
                    addresses[s.strip().lower()] = str(tenant)
    if (len(p.errors) > before or bind is None or port is None or max_bytes is None
            or per_day is None or field is None):
        return None
    if not addresses:
        p.error(tk, MISSING, "expected at least one address")
        return None
    return MailInConfig(addresses=addresses, bind=bind, port=port, max_bytes=max_bytes,
                        per_sender_per_day=per_day, field=field)


# ---- reading a message ---------------------------------------------------------------------
@dataclass(frozen=True)
class InFile:
    """An attachment as the sender named and typed it (checked later by its bytes)."""

    name: str
    declared: str
    data: bytes


@dataclass(frozen=True)
class Incoming:
    """What the intake needs of one message."""

    message_id: str  # "<...>", or a made-up "<sha256@mail-in>" when the sender gave none
    sender_name: str
    sender_address: str  # lower case; "" when there is none
    subject: str
    text: str
    files: tuple[InFile, ...]
    refers_to: tuple[str, ...]  # In-Reply-To then References, newest first
    automatic: bool
    bounce: bool = False  # a delivery report or a null/MAILER-DAEMON sender: not a petition

    def code_in_subject(self) -> str | None:
        """A ticket code written in the subject (``Re: ... DN-20261207-0001``), or None."""
        m = CODE_RE.search(self.subject)
        return m.group(1) if m else None


class _Text(HTMLParser):
    """HTML to plain text: text nodes only, script/style/head dropped, blocks as new lines."""

    _SKIP: Final = frozenset({"script", "style", "head", "title", "template", "noscript"})
    _BLOCK: Final = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5",
                               "h6", "table", "blockquote", "pre", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The text a reader sees in ``html`` (no tags, scripts or styles), blank runs collapsed."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return tidy("".join(parser.parts))


def tidy(text: str) -> str:
    """Lines stripped, runs of blank lines collapsed to one, spaces inside lines folded, control
    characters (NUL: PostgreSQL refuses it) replaced."""
    text = "".join("\ufffd" if (ord(c) < 0x20 and c not in "\n\t\r") or 0x7F <= ord(c) < 0xA0
                   else c for c in text)
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _ids(value: str | None) -> list[str]:
    return _MSGID_RE.findall(value or "")


def _automatic(msg: EmailMessage, sender: str, own: Sequence[str]) -> bool:
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return True
    if str(msg.get("Precedence", "")).strip().lower() in ("bulk", "list", "junk",
                                                          "auto_reply"):
        return True
    if any(msg.get(h) is not None for h in ("X-Autoreply", "X-Autorespond", "List-Id",
                                            "X-Auto-Response-Suppress")):
        return True
    local = sender.split("@", 1)[0]
    return (not sender or local in ("mailer-daemon", "postmaster", "noreply", "no-reply")
            or sender in own)


def _decoded_text(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):  # an unknown or lying charset
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def parse_message(raw: bytes, *, own_addresses: Sequence[str] = ()) -> Incoming:
    """Read one message (bytes as received); ``own_addresses``: our mailboxes and our sender."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    name, addr = email.utils.parseaddr(str(msg.get("From", "")))
    addr = addr.strip().lower() if is_address(addr.strip()) else ""
    subject = re.sub(r"\s+", " ", str(msg.get("Subject", ""))).strip()[:MAX_SUBJECT]
    ids = _ids(str(msg.get("Message-ID", "")))
    message_id = (ids[0] if ids
                  else f"<{hashlib.sha256(raw).hexdigest()[:40]}@mail-in.invalid>")
    refers = _ids(str(msg.get("In-Reply-To", ""))) + list(
        reversed(_ids(str(msg.get("References", "")))))
    plain: list[str] = []
    html: list[str] = []
    files: list[InFile] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        assert isinstance(part, EmailMessage)
        filename = part.get_filename()
        ctype = part.get_content_type()
        if filename or part.get_content_disposition() == "attachment" or (
                part.get_content_maintype() != "text"):
            data = part.get_payload(decode=True)
            if isinstance(data, bytes) and data:
                files.append(InFile((filename or "").strip() or "tep-dinh-kem", ctype, data))
        elif ctype == "text/plain":
            plain.append(_decoded_text(part))
        elif ctype == "text/html":
            html.append(_decoded_text(part))
    text = tidy("\n\n".join(plain)) if any(p.strip() for p in plain) else html_to_text(
        "\n".join(html))
    own = [a.lower() for a in own_addresses]
    bounce = (msg.get_content_type() == "multipart/report" or not addr
              or addr.split("@", 1)[0] in ("mailer-daemon", "postmaster"))
    return Incoming(message_id=message_id, sender_name=tidy(name)[:100],
                    sender_address=addr, subject=tidy(subject), text=text[:MAX_TEXT],
                    files=tuple(files), refers_to=tuple(dict.fromkeys(refers)),
                    automatic=bounce or _automatic(msg, addr, own), bounce=bounce)


def ticket_content(m: Incoming) -> str:
    """The new ticket's content: subject, text and the sender's address (as the web form)."""
    subject = "" if m.text.startswith(m.subject) else m.subject  # not said twice
    parts = [p for p in (subject, m.text) if p]
    body = "\n\n".join(parts) or "(thư không có nội dung)"
    if m.sender_address:
        body += f"\n\nE-mail liên hệ: {m.sender_address}"
    return body


def note_text(m: Incoming) -> str:
    """What a reply in a ticket's thread adds to its audit trail."""
    who = m.sender_address or "không rõ người gửi"
    text = m.text or "(thư không có nội dung)"
    return f"Thư của công dân ({who}): {m.subject}\n{text}"[:MAX_TEXT]


# ---- the automatic reply ---------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    """The automatic reply: subject and body (Vietnamese: the citizen reads it)."""

    subject: str
    body: str


def receipt_reply(code: str, subject: str, refused: Sequence[str]) -> Reply:
    """The reply to a new petition by mail: its code, and the files not kept, by name."""
    lines = [
        "Kính gửi Quý công dân,",
        "",
        "Tổng đài 1022 đã tiếp nhận phản ánh, kiến nghị của Quý công dân gửi qua thư điện tử.",
        f"Mã phản ánh: {code}",
        "",
        "Quý công dân có thể tra cứu tình trạng xử lý bằng mã này (gọi 1022 hoặc trên trang "
        "tra cứu). Muốn bổ sung thông tin, vui lòng trả lời thư này (giữ nguyên mã trong tiêu "
        "đề); không cần gửi phản ánh mới.",
    ]
    if refused:
        lines += ["", "Các tệp sau không được tiếp nhận (chỉ nhận PDF, DOC, DOCX, ảnh và "
                      "video điện thoại trong giới hạn dung lượng):"]
        lines += [f"- {name}" for name in refused]
    lines += ["", "Đây là thư trả lời tự động, xin vui lòng không gửi thư rác tới địa chỉ này.",
              "Tổng đài 1022"]
    base = re.sub(r"^(re|fw|fwd|tl|trả lời)\s*:\s*", "", subject, flags=re.I).strip()
    title = f"[{code}] Đã tiếp nhận phản ánh" + (f": {base}" if base else "")
    return Reply(title[:MAX_SUBJECT], "\n".join(lines))


def dedupe_key(tenant: str, message_id: str) -> str:
    """The outbox key of the automatic reply to one message (at most one reply per message)."""
    return f"mailin:{tenant}:{hashlib.sha256(message_id.encode()).hexdigest()[:40]}"


def day_start(now: dt.datetime) -> dt.datetime:
    """The start of the 24 hours counted by the per-sender limit."""
    return now - dt.timedelta(days=1)


_OUR_ID_RE: Final = re.compile(r"<hotline1022\.\d+\.([0-9a-f]{16})@")


def reply_digest(key: str) -> str:
    """The part of our automatic reply's Message-ID that names its outbox ``dedupe_key``
    (mail/dispatcher.py ``message_id``): a reply quoting it is matched without the row id."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def our_digests(refers_to: Sequence[str]) -> list[str]:
    """The ``reply_digest`` of each of our Message-IDs among ``refers_to``."""
    return [m.group(1) for r in refers_to if (m := _OUR_ID_RE.match(r))]

