"""E-mail in, the adapter: an SMTP/LMTP-style intake (aiosmtpd) on the app's event loop, and
the blocking ``MailIntake`` that turns one message into a ticket or a note.

The province's mail server relays the tenant's address (``mail_in.tenants``) here; the intake
listens on loopback by default. SMTP answers:

* RCPT to an address not configured: ``550`` (no open relay);
* a message over ``mail_in.max_bytes``: ``552`` (aiosmtpd's ``data_size_limit``);
* too many messages from one sender in 24 hours: ``550 5.7.1``;
* the database failing: ``451`` (the relay keeps the message and retries); the ticket rules
  refusing it (e.g. ``mail_in.field`` not a field of the tenant): ``554``;
* a bounce (delivery report, null or MAILER-DAEMON sender): ``250``, nothing stored;
* ``250`` only once the ticket (or note), the record of the message and the automatic reply
  in the mail outbox are committed — one transaction.

A message quoting our automatic reply or an earlier message (In-Reply-To/References), or with a
ticket code of the tenant in its subject, is added to that ticket's audit trail
(``citizen_mail``) with its files, not opened as a new ticket. Automatic messages (rules.py)
open a ticket but are never answered (no mail loops); an automatic message in a ticket's thread
(an out-of-office answer to our reply) is dropped; notes are never answered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session

from callcenter.clock import utcnow
from callcenter.mail import store as outbox
from callcenter.mail.rules import sender_address
from callcenter.mailin import rules
from callcenter.mailin import store as mst
from callcenter.tickets import store as st
from callcenter.tickets.config import TicketError
from callcenter.tickets.files import check_upload
from callcenter.tickets.rules import Actor, Ticket
from callcenter.tickets.service import NewTicket, TicketService

log = logging.getLogger("callcenter.mailin")
ACTOR = Actor("mail-in", "system")


@dataclass(frozen=True)
class Outcome:
    """What one message did: ``ticket``, ``note``, ``duplicate``, ``limited`` or ``ignored``
    (a bounce, or an automatic reply in a ticket's thread: kept out of the ticket)."""

    kind: str
    code: str | None = None
    replied: bool = False
    refused: tuple[str, ...] = ()


class MailIntake:
    """Turns messages into tickets (blocking: called in a thread)."""

    def __init__(self, service: TicketService, config: Callable[[], rules.MailInConfig | None],
                 own_sender: Callable[[], str | None] = lambda: None, *,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.service = service
        self.config = config
        self.own_sender = own_sender
        self.clock = clock

    def _own(self, cfg: rules.MailInConfig) -> list[str]:
        own = list(cfg.addresses)
        sender = self.own_sender()
        if sender:
            own.append(sender_address(sender).lower())
        return own

    def take(self, tenant: str, raw: bytes) -> Outcome:
        """Take one message for ``tenant``; database errors propagate (the caller says 451)."""
        cfg = self.config()
        if cfg is None:
            raise RuntimeError("mail_in is not configured")
        m = rules.parse_message(raw, own_addresses=self._own(cfg))
        if m.bounce:  # e.g. our reply bounced: nothing for level 1 to do, and never answered
            log.info("mail in (%s): bounce %s ignored", tenant, m.message_id)
            return Outcome("ignored")
        now = self.clock()
        db = self.service.db
        with db.reading() as conn:
            before = mst.seen(conn, tenant, m.message_id)
            if before is not None:
                return Outcome("duplicate", before)
            if m.sender_address and mst.count_since(
                    conn, m.sender_address, rules.day_start(now)) >= cfg.per_sender_per_day:
                return Outcome("limited")
            code = mst.thread_code(conn, tenant, m.refers_to, rules.our_digests(m.refers_to))
            if code is None and (c := m.code_in_subject()) is not None:
                found = st.load(conn, c)
                code = c if found is not None and found.ticket.tenant == tenant else None
        if code is not None and m.automatic:  # an out-of-office answer to our reply
            log.info("mail in (%s): automatic reply about %s ignored", tenant, code)
            return Outcome("ignored", code)
        files, refused = self._checked(m)
        try:
            if code is not None:
                return self._note(tenant, code, m, files, refused, now)
            return self._ticket(tenant, cfg, m, files, refused, now)
        except sa.exc.IntegrityError:
            # The same message taken meanwhile (a relay retrying in parallel): one ticket.
            with db.reading() as conn:
                before = mst.seen(conn, tenant, m.message_id)
            if before is None:
                raise
            return Outcome("duplicate", before)

    def _checked(self, m: rules.Incoming) -> tuple[list[tuple[str, str | None, bytes]],
                                                   list[str]]:
        ok: list[tuple[str, str | None, bytes]] = []
        refused: list[str] = []
        for f in m.files:
            try:
                check_upload(f.name, f.declared, f.data, self.service.upload_limits)
            except TicketError:
                refused.append(f.name)
                continue
            ok.append((f.name, f.declared, f.data))
        return ok, refused

    def _note(self, tenant: str, code: str, m: rules.Incoming,
              files: list[tuple[str, str | None, bytes]], refused: list[str],
              now: dt.datetime) -> Outcome:
        detail = rules.note_text(m)
        if refused:
            detail += "\nTệp không nhận: " + ", ".join(refused)

        def also(conn: sa.Connection, ticket: Ticket) -> None:
            mst.record(conn, tenant=tenant, message_id=m.message_id, sender=m.sender_address,
                       code=ticket.code, kind="note", reply_digest=None, now=now)

        self.service.note_with_files(code, ACTOR, "citizen_mail", detail, files, also)
        log.info("mail in (%s): a reply added to %s (%d files, %d refused)", tenant, code,
                 len(files), len(refused))
        return Outcome("note", code, refused=tuple(refused))

    def _ticket(self, tenant: str, cfg: rules.MailInConfig, m: rules.Incoming,
                files: list[tuple[str, str | None, bytes]], refused: list[str],
                now: dt.datetime) -> Outcome:
        answer = bool(m.sender_address) and not m.automatic
        key = rules.dedupe_key(tenant, m.message_id)

        def also(conn: sa.Connection, ticket: Ticket) -> None:
            mst.record(conn, tenant=tenant, message_id=m.message_id, sender=m.sender_address,
                       code=ticket.code, kind="ticket",
                       reply_digest=rules.reply_digest(key) if answer else None, now=now)
            if answer:
                reply = rules.receipt_reply(ticket.code, m.subject, refused)
                outbox.enqueue(conn, tenant=tenant, to=[m.sender_address],
                               subject=reply.subject, body=reply.body, purpose="mail_receipt",
                               dedupe_key=key, now=now)

        request = NewTicket(channel="email", content=rules.ticket_content(m), field=cfg.field,
                            citizen_name=m.sender_name or None)
        ticket, _ = self.service.open_with_files(tenant, ACTOR, request, files, also=also)
        log.info("mail in (%s): ticket %s (%d files, %d refused, %s)", tenant, ticket.code,
                 len(files), len(refused), "answered" if answer else "not answered")
        return Outcome("ticket", ticket.code, replied=answer, refused=tuple(refused))


class IntakeHandler:
    """aiosmtpd handler: checks recipients, hands DATA to ``MailIntake`` in a thread."""

    def __init__(self, intake: MailIntake, wake: Callable[[], None] = lambda: None):
        self.intake = intake
        self.wake = wake

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        cfg = self.intake.config()
        if cfg is None or cfg.tenant_of(address) is None:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        cfg = self.intake.config()
        if cfg is None:
            return "451 4.3.0 Mail intake not configured"
        tenants = dict.fromkeys(t for a in envelope.rcpt_tos
                                if (t := cfg.tenant_of(a)) is not None)
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            outcomes = [await asyncio.to_thread(self.intake.take, t, raw) for t in tenants]
        except TicketError as e:  # for good (e.g. mail_in.field unknown): retrying won't help
            log.error("mail in: message refused by the ticket rules: %s", e)
            return "554 5.3.0 Message not accepted"
        except Exception:  # the database (or a bug): the relay keeps the message and retries
            log.exception("mail in: message not taken (451)")
            return "451 4.3.0 Temporary failure, please retry"
        if any(o.kind == "limited" for o in outcomes):
            return "550 5.7.1 Too many messages from this sender today"
        if any(o.replied for o in outcomes):
            self.wake()
        codes = " ".join(o.code for o in outcomes if o.code)
        return f"250 2.0.0 OK {codes}".rstrip()


async def start_intake(handler: IntakeHandler, cfg: rules.MailInConfig,
                       hostname: str = "hotline1022") -> asyncio.base_events.Server:
    """Listen on ``cfg.bind``:``cfg.port`` on the running loop (close the server to stop)."""
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(handler, data_size_limit=cfg.max_bytes, hostname=hostname,
                    decode_data=False, ident="Hotline 1022 mail intake")

    return await loop.create_server(factory, host=cfg.bind, port=cfg.port)
