"""Open311 keys and requests in SQL (migration 0017_open311); blocking, run it in a thread.

* ``open311_keys``: one key per third-party app and tenant, ``o311_<key id>_<secret>``. As for
  the API tokens (``callcenter.store.users``) only the SHA-256 of the secret is stored, so a
  copy of the database gives no working key; the key is shown once, at creation. Lookup goes by
  the key id (the primary key), then the hashes are compared in constant time. A revoked key
  stays listed (who had one, until when) and never works again; names are unique for good.
* ``open311_requests``: the tickets an app opened: which key, and the ``media_url`` it sent
  (kept as a link; nothing fetches it). The ticket itself is the ticket store's.

Reads of service requests (``find_tickets``, ``find_ticket``) query the ticket store's
``tickets`` table directly, scoped to one tenant: they need the spec's filters (several
service codes, statuses, a date window, a list of ids), which ``TicketService.list`` does not
take together; what is shown of them is ``callcenter.open311.rules.request_view``'s business.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.clock import utcnow
from callcenter.open311.rules import RequestFilter, states_of
from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import Base, UTCDateTime
from callcenter.tickets import store as ticket_store
from callcenter.tickets.rules import Ticket

__all__ = ["KEY_PREFIX", "Open311KeyError", "KeyInfo", "Open311Store"]

KEY_PREFIX: Final = "o311"
_KEY = re.compile(r"o311_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
KEY_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{1,47}")  # "open311:<name>" fits an actor id
# A key used again within this time does not rewrite last_used_at: no write per request.
LAST_USED_RESOLUTION: Final = dt.timedelta(minutes=1)


class Open311KeyRow(Base):
    """A third-party app's key for one tenant: only the secret's SHA-256 is kept."""

    __tablename__ = "open311_keys"

    id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)  # public part, hex
    name: Mapped[str] = mapped_column(sa.String(48), unique=True)
    tenant: Mapped[str] = mapped_column(sa.String(32), index=True)
    secret_sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(sa.Boolean)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Open311RequestRow(Base):
    """A ticket opened through Open311: the key that opened it and the media link it sent."""

    __tablename__ = "open311_requests"

    code: Mapped[str] = mapped_column(sa.ForeignKey("tickets.code"), primary_key=True)
    tenant: Mapped[str] = mapped_column(sa.String(32))
    key_id: Mapped[str] = mapped_column(sa.ForeignKey("open311_keys.id"), index=True)
    media_url: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


_KEYS = cast(sa.Table, Open311KeyRow.__table__)
_REQUESTS = cast(sa.Table, Open311RequestRow.__table__)


class Open311KeyError(ValueError):
    """A refused key operation; ``id`` is stable (open311.key_exists, open311.key_not_found,
    open311.key_name, open311.key_revoked)."""

    def __init__(self, error_id: str, message: str) -> None:
        self.id = error_id
        self.message = message
        super().__init__(f"{error_id}: {message}")


@dataclass(frozen=True)
class KeyInfo:
    """A key's bookkeeping (never its secret)."""

    id: str
    name: str
    tenant: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked: bool
    revoked_at: dt.datetime | None

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values (times ISO 8601, UTC)."""
        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat() if t is not None else None
        return {"id": self.id, "name": self.name, "tenant": self.tenant,
                "created_at": iso(self.created_at), "last_used_at": iso(self.last_used_at),
                "revoked": self.revoked, "revoked_at": iso(self.revoked_at)}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _key(row: Any) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.tenant, row.created_at, row.last_used_at,
                   bool(row.revoked), row.revoked_at)


class Open311Store:
    """Open311 keys, the requests apps opened, and reads of a tenant's tickets."""

    def __init__(self, database: DatabaseRef):
        self.engine, self._owns_engine = engine_for(database)

    def close(self) -> None:
        """Close the pool's connections (when this store made the engine)."""
        if self._owns_engine:
            self.engine.dispose()

    # -- keys ------------------------------------------------------------------------------
    def create_key(self, name: str, tenant: str, *,
                   now: dt.datetime | None = None) -> tuple[KeyInfo, str]:
        """A new key for an app of ``tenant``: (its bookkeeping, the key text shown once)."""
        if not KEY_NAME.fullmatch(name):
            raise Open311KeyError("open311.key_name",
                                  f"key name {name!r}: expected 2-48 characters a-z 0-9 . _ - "
                                  "starting with a letter or digit")
        at = now or utcnow()
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)  # 256 bits, 43 characters
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(_KEYS).values(
                    id=key_id, name=name, tenant=tenant, secret_sha256=_digest(secret),
                    created_at=at, last_used_at=None, revoked=False, revoked_at=None))
        except IntegrityError:
            raise Open311KeyError("open311.key_exists",
                                  f"a key named {name!r} exists already (names are never "
                                  "reused, even revoked)") from None
        info = KeyInfo(key_id, name, tenant, at, None, False, None)
        return info, f"{KEY_PREFIX}_{key_id}_{secret}"

    def keys(self, tenant: str | None = None) -> list[KeyInfo]:
        """Keys (of one tenant, if given), oldest first."""
        q = sa.select(_KEYS).order_by(_KEYS.c.created_at, _KEYS.c.id)
        if tenant is not None:
            q = q.where(_KEYS.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(q)]

    def revoke(self, name_or_id: str, *, now: dt.datetime | None = None) -> KeyInfo:
        """Revoke a key given by its name or id; it never works again."""
        k = _KEYS.c
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(_KEYS).where(
                sa.or_(k.name == name_or_id, k.id == name_or_id))).first()
            if row is None:
                raise Open311KeyError("open311.key_not_found", f"no Open311 key {name_or_id!r}")
            if row.revoked:
                when = row.revoked_at.isoformat() if row.revoked_at is not None else "?"
                raise Open311KeyError("open311.key_revoked",
                                      f"key {row.name!r} was revoked already ({when})")
            conn.execute(sa.update(_KEYS).where(k.id == row.id)
                         .values(revoked=True, revoked_at=now or utcnow()))
            row = conn.execute(sa.select(_KEYS).where(k.id == row.id)).one()
        return _key(row)

    def authenticate(self, text: str, *, now: dt.datetime | None = None) -> KeyInfo | None:
        """The unrevoked key this text is, or None (malformed, unknown, wrong secret, revoked).
        The secret's hash is compared in constant time."""
        m = _KEY.fullmatch(text.strip())
        if m is None:
            return None
        key_id, secret = m[1], m[2]
        at = now or utcnow()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_KEYS).where(_KEYS.c.id == key_id)).first()
        # Compare even when the id is unknown, so the time taken says nothing about ids.
        stored = row.secret_sha256 if row is not None else "0" * 64
        if not hmac.compare_digest(stored.encode(), _digest(secret).encode()) or row is None:
            return None
        if row.revoked:
            return None
        if row.last_used_at is None or at - row.last_used_at >= LAST_USED_RESOLUTION:
            with self.engine.begin() as conn:
                conn.execute(sa.update(_KEYS).where(_KEYS.c.id == key_id)
                             .values(last_used_at=at))
        return _key(row)

    # -- requests --------------------------------------------------------------------------
    def record_request(self, code: str, tenant: str, key_id: str, media_url: str | None, *,
                       now: dt.datetime | None = None) -> None:
        """Remember which key opened the ticket, and the media link it sent."""
        with self.engine.begin() as conn:
            conn.execute(sa.insert(_REQUESTS).values(
                code=code, tenant=tenant, key_id=key_id, media_url=media_url,
                created_at=now or utcnow()))

    def media_urls(self, codes: Sequence[str]) -> dict[str, str]:
        """The media links sent with these tickets (those that have one)."""
        found: dict[str, str] = {}
        r = _REQUESTS.c
        with self.engine.connect() as conn:
            for start in range(0, len(codes), 500):
                q = sa.select(r.code, r.media_url).where(
                    r.code.in_(list(codes[start:start + 500])), r.media_url.is_not(None))
                found.update((code, url) for code, url in conn.execute(q))
        return found

    def find_tickets(self, tenant: str, f: RequestFilter) -> list[Ticket]:
        """The tenant's tickets matching GET requests' filters, newest first, at most
        ``f.limit``; with ``f.ids`` only those codes (in the order asked, the missing left
        out)."""
        t = ticket_store.TICKETS.c
        q = sa.select(ticket_store.TICKETS).where(t.tenant == tenant)
        if f.ids:
            q = q.where(t.code.in_(list(f.ids)))
        else:
            if f.service_codes:
                q = q.where(t.field.in_(list(f.service_codes)))
            if f.statuses:
                q = q.where(t.state.in_([s.value for s in states_of(f.statuses)]))
            if f.start is not None:
                q = q.where(t.received_at >= f.start)
            if f.end is not None:
                q = q.where(t.received_at <= f.end)
        q = q.order_by(t.received_at.desc(), t.code.desc()).limit(f.limit)
        with self.engine.connect() as conn:
            found = [s.ticket for s in ticket_store.tickets_from(conn, q)]
        if f.ids:
            order = {code: i for i, code in enumerate(f.ids)}
            found.sort(key=lambda tk: order[tk.code])
        return found

    def find_ticket(self, tenant: str, code: str) -> Ticket | None:
        """One ticket of the tenant, or None (another tenant's is as good as absent)."""
        found = self.find_tickets(tenant, RequestFilter(ids=(code,)))
        return found[0] if found else None
