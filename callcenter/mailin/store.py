"""The messages e-mail in has taken: one row per (tenant, Message-ID), written in the same
transaction as the ticket (or the note) it made, so a message relayed twice is one ticket.

``reply_digest`` names our automatic reply (rules.py ``reply_digest``): a citizen answering
it is matched to the ticket by In-Reply-To/References. ``sender`` counts the per-day limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models import Base, UTCDateTime

KINDS = ("ticket", "note")


class MailInMessage(Base):
    """One message taken in."""

    __tablename__ = "mail_in_messages"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "message_id", name="uq_mail_in_messages_tenant"),
        sa.CheckConstraint(sa.column("kind").in_(KINDS), name="kind"),
        sa.Index("ix_mail_in_messages_sender", "sender", "received_at"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(sa.String(32))
    message_id: Mapped[str] = mapped_column(sa.String(998))
    sender: Mapped[str] = mapped_column(sa.String(320))  # lower case; "" when none
    code: Mapped[str] = mapped_column(sa.String(32), index=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    reply_digest: Mapped[str | None] = mapped_column(sa.String(16), index=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


TABLE = cast(sa.Table, MailInMessage.__table__)


def record(conn: sa.Connection, *, tenant: str, message_id: str, sender: str, code: str,
           kind: str, reply_digest: str | None, now: dt.datetime) -> None:
    """Remember a message (IntegrityError when it was taken before: the caller rolls back)."""
    conn.execute(sa.insert(TABLE).values(
        tenant=tenant, message_id=message_id[:998], sender=sender[:320], code=code, kind=kind,
        reply_digest=reply_digest, received_at=now))


def seen(conn: sa.Connection, tenant: str, message_id: str) -> str | None:
    """The ticket code a message was taken into before, or None."""
    c = TABLE.c
    row = conn.execute(sa.select(c.code).where(c.tenant == tenant,
                                               c.message_id == message_id[:998])).first()
    return None if row is None else str(row.code)


def thread_code(conn: sa.Connection, tenant: str, refers_to: Sequence[str],
                digests: Sequence[str]) -> str | None:
    """The ticket a reply belongs to: by our reply's digest, else by a message it quotes."""
    c = TABLE.c
    if digests:
        row = conn.execute(sa.select(c.code).where(c.tenant == tenant,
                                                   c.reply_digest.in_(list(digests)))
                           .limit(1)).first()
        if row is not None:
            return str(row.code)
    if refers_to:
        row = conn.execute(sa.select(c.code).where(
            c.tenant == tenant, c.message_id.in_([r[:998] for r in refers_to]))
            .order_by(c.id.desc()).limit(1)).first()
        if row is not None:
            return str(row.code)
    return None


def count_since(conn: sa.Connection, sender: str, since: dt.datetime) -> int:
    """Messages taken from ``sender`` since ``since`` (the per-day limit)."""
    c = TABLE.c
    return int(conn.execute(sa.select(sa.func.count()).select_from(TABLE).where(
        c.sender == sender, c.received_at >= since)).scalar_one())
