"""Users of the HTTP API and the console, and their API tokens (migration 0005).

Synchronous SQLAlchemy like the other stores: the console calls it from a thread.

* ``users``: one row per person or system account, with a role (operator, supervisor,
  admin, unit), the tenant (province) it works for, and for ``unit`` users the level-2 unit
  it speaks for. ``password_hash`` (argon2, set by the console's login), ``failed_logins``
  and ``locked_until`` (the wait after failures) are here for the console's password login;
  the API itself only uses tokens.
* ``api_tokens``: ``hl1_<token id>_<secret>``. Only the SHA-256 of the secret is stored,
  so a copy of the database gives no working token; the token is shown once, at creation.
  Lookup goes by the token id (the primary key), then the hashes are compared in constant
  time. A token may expire and may be revoked; a user made inactive loses all access.
* Console login (migration 0007): ``login`` checks a password against the argon2 hash (the
  hashing itself is the caller's ``PasswordHashing``, ``callcenter.console.passwords``) and
  keeps the books of failures: consecutive failures count up in ``failed_logins``; from the
  ``free_failures``-th on, each sets ``locked_until`` to when the next attempt may come
  (``login_delay``: a doubling wait, capped), a success or a new password clears both. Inside
  the wait no password is even checked. Nobody is locked out: the owner logs in after it.
* ``console_sessions``: a browser session. Only the SHA-256 of the session id (256 random
  bits, in the cookie) and of its CSRF token are stored, so a copy of the table opens no
  session. The CSRF token is derived from the session id (``csrf_token_of``), so a page can
  put it in its forms without the server keeping it. A session ends at ``expires_at``
  (absolute), after ``idle`` without a request (``last_seen_at``, written at most once a
  minute), at logout, when the user is disabled or the password changes.
* Administration from the console (``callcenter.console.admin_users``): ``user_details``,
  ``update_user``, ``set_active``, ``set_password``, ``unlock`` and ``add_user`` take the
  admin's name as ``actor`` and the admin's ``tenant``; then the change is refused for a user
  of another tenant (``user.not_found``), refused when the user changed since the admin's
  page showed it (``expected_version``: ``user.stale``), refused when it would leave the
  tenant without an active admin or let an admin disable or demote themselves
  (``admin_guard``), and written with its ``user_audit`` rows in one transaction.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.clock import utcnow
from callcenter.store import user_audit
from callcenter.store.database import DatabaseRef, engine_for
from callcenter.store.models import Base, UTCDateTime
from callcenter.store.user_audit import UserChange

USER_ROLES: Final = ("operator", "supervisor", "admin", "unit")
TOKEN_PREFIX: Final = "hl1"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
_TENANT = re.compile(r"[a-z0-9_-]{1,32}")
_UNIT = re.compile(r"[a-z0-9_-]{1,32}")
_TOKEN = re.compile(r"hl1_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
# A token used again within this time does not rewrite last_used_at: no write per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_CSRF_CONTEXT = b"hotline1022 console csrf v1"
MAX_USER_AGENT = 200
MAX_LABEL = 100


class UserError(ValueError):
    """A refused user or token operation; ``id`` is stable (user.exists, user.not_found ...)."""

    def __init__(self, error_id: str, message: str) -> None:
        self.id = error_id
        self.message = message
        super().__init__(f"{error_id}: {message}")


class UserRow(Base):
    """A person (or system account) who may use the API or the console."""

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(sa.column("role").in_(USER_ROLES), name="role"),
        # A unit user speaks for exactly one unit; no other role has one.
        sa.CheckConstraint("(role = 'unit') = (unit IS NOT NULL)", name="unit_role"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)  # login, lower-case ASCII
    full_name: Mapped[str | None] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))
    tenant: Mapped[str] = mapped_column(sa.String(32), index=True)
    unit: Mapped[str | None] = mapped_column(sa.String(32))
    active: Mapped[bool] = mapped_column(sa.Boolean)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))  # argon2 (console)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    failed_logins: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ApiTokenRow(Base):
    """A bearer token of a user: only the secret's SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)  # public part, hex
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_sha256: Mapped[str] = mapped_column(sa.String(64))
    label: Mapped[str | None] = mapped_column(sa.String(MAX_LABEL))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(sa.Boolean)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ConsoleSessionRow(Base):
    """A browser session of the console: only hashes of its id and CSRF token are kept."""

    __tablename__ = "console_sessions"

    id_sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    csrf_sha256: Mapped[str] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(MAX_USER_AGENT))


_USERS = cast(sa.Table, UserRow.__table__)
_TOKENS = cast(sa.Table, ApiTokenRow.__table__)
_SESSIONS = cast(sa.Table, ConsoleSessionRow.__table__)


@dataclass(frozen=True)
class User:
    """A user as the API sees it (never the password hash)."""

    id: int
    name: str
    role: str
    tenant: str
    unit: str | None
    active: bool
    full_name: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class UserDetail:
    """A user as the admin pages see it: bookkeeping and lock-out, never the password hash."""

    id: int
    name: str
    full_name: str | None
    role: str
    tenant: str
    unit: str | None
    active: bool
    has_password: bool
    password_changed_at: dt.datetime | None
    failed_logins: int
    locked_until: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    sessions: int  # console sessions not yet expired

    def locked(self, now: dt.datetime) -> bool:
        """Whether login waits at ``now`` because of wrong passwords (``login_delay``)."""
        return self.locked_until is not None and now < self.locked_until

    @property
    def version(self) -> str:
        """A fingerprint of what the admin page shows; a form sends it back, so a change made
        meanwhile (by another admin, a lock-out) is noticed even within one clock tick."""
        return version_of(self.updated_at, self.full_name, self.role, self.unit, self.active,
                          self.locked_until, self.password_changed_at)


def version_of(updated_at: dt.datetime, full_name: str | None, role: str, unit: str | None,
               active: bool, locked_until: dt.datetime | None,
               password_changed_at: dt.datetime | None) -> str:
    """The ``UserDetail.version`` of these values (16 hex digits)."""
    def iso(t: dt.datetime | None) -> str:
        return "" if t is None else t.astimezone(dt.UTC).isoformat()

    text = "\x1f".join((iso(updated_at), full_name or "", role, unit or "", str(active),
                        iso(locked_until), iso(password_changed_at)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def admin_guard(*, actor: str, target: str, role: str, active: bool, new_role: str,
                new_active: bool, other_active_admins: int) -> str | None:
    """Why an admin may not make this change (an error id), or None: no admin disables or
    demotes themselves, and a tenant keeps at least one active admin."""
    loses_admin = role == "admin" and active and (new_role != "admin" or not new_active)
    if not loses_admin:
        return None
    if actor == target:
        return "user.self"
    if other_active_admins == 0:
        return "user.last_admin"
    return None


@dataclass(frozen=True)
class TokenInfo:
    """An API token's bookkeeping (never its secret)."""

    id: str
    user: str
    label: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked: bool

    def usable(self, now: dt.datetime) -> bool:
        """Not revoked and not expired at ``now``."""
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


class PasswordHashing(Protocol):
    """What the store needs of a password hasher (``callcenter.console.passwords``)."""

    def hash(self, password: str) -> str:
        """A new hash of the password."""
        ...

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether it matches (constant time; None: spend the time, say no)."""
        ...

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether the hash was made with other parameters."""
        ...


@dataclass(frozen=True)
class LoginResult:
    """The answer to a login: ``ok`` with the user, ``invalid`` (unknown name, wrong password,
    disabled user or no password set: all alike), or ``waiting`` (not checked) until
    ``wait_until`` after wrong passwords."""

    outcome: Literal["ok", "invalid", "waiting"]
    user: User | None = None
    wait_until: dt.datetime | None = None


def login_delay(failures: int, free_failures: int,
                max_delay: dt.timedelta) -> dt.timedelta | None:
    """How long an account waits for its next attempt after ``failures`` wrong passwords in a
    row: none before ``free_failures``, then 2^(failures - free_failures) s, at most
    ``max_delay``."""
    if failures < free_failures:
        return None
    return min(dt.timedelta(seconds=2 ** min(failures - free_failures, 30)), max_delay)


@dataclass(frozen=True)
class ConsoleSession:
    """A live console session (never its id: only the cookie holds that)."""

    id_sha256: str
    user: User
    created_at: dt.datetime
    expires_at: dt.datetime
    last_seen_at: dt.datetime
    csrf_sha256: str
    user_agent: str | None

    def csrf_ok(self, token: str | None) -> bool:
        """Whether ``token`` is this session's CSRF token (hashes compared in constant time)."""
        if not token or len(token) > 100:
            return False
        return hmac.compare_digest(_digest(token).encode(), self.csrf_sha256.encode())


def csrf_token_of(session_id: str) -> str:
    """The CSRF token bound to a session: HMAC-SHA256 keyed by the session id (base64url)."""
    mac = hmac.new(session_id.encode("ascii"), _CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def _user(row: Any) -> User:
    return User(id=row.id, name=row.name, role=row.role, tenant=row.tenant, unit=row.unit,
                active=row.active, full_name=row.full_name, created_at=row.created_at)


def _token(row: Any, user: str) -> TokenInfo:
    return TokenInfo(id=row.id, user=user, label=row.label, created_at=row.created_at,
                     last_used_at=row.last_used_at, expires_at=row.expires_at,
                     revoked=row.revoked)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _live_session(now: dt.datetime,
                  idle: dt.timedelta | None) -> list[sa.ColumnElement[bool]]:
    """A session ``find_session`` would still accept at ``now``: not expired and, with an
    ``idle`` limit, seen within it (None: the expiry only)."""
    live = [_SESSIONS.c.expires_at > now]
    if idle is not None:
        live.append(_SESSIONS.c.last_seen_at > now - idle)
    return live


def _detail(row: Any, sessions: int) -> UserDetail:
    return UserDetail(id=row.id, name=row.name, full_name=row.full_name, role=row.role,
                      tenant=row.tenant, unit=row.unit, active=row.active,
                      has_password=row.password_hash is not None,
                      password_changed_at=row.password_changed_at,
                      failed_logins=row.failed_logins, locked_until=row.locked_until,
                      created_at=row.created_at, updated_at=row.updated_at, sessions=sessions)


def _row_version(row: Any) -> str:
    return version_of(row.updated_at, row.full_name, row.role, row.unit, row.active,
                      row.locked_until, row.password_changed_at)


def _shown(value: object) -> str:
    """A value as the audit log writes it ('' for none; yes/no for flags)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def check_user_name(name: str) -> None:
    """Refuse a malformed login name (UserError ``user.invalid_name``)."""
    if not _NAME.fullmatch(name):
        raise UserError("user.invalid_name", f"user name {name!r}: expected 2-64 characters "
                                             "a-z 0-9 . _ - starting with a letter or digit")


def check_user_fields(name: str, role: str, tenant: str, unit: str | None) -> None:
    """Refuse a malformed user (UserError); the tenant and unit ids are checked by callers
    against the configuration."""
    check_user_name(name)
    if role not in USER_ROLES:
        raise UserError("user.invalid_role",
                        f"role {role!r}: expected one of {', '.join(USER_ROLES)}")
    if not _TENANT.fullmatch(tenant):
        raise UserError("user.invalid_tenant", f"tenant {tenant!r}: expected a tenant id")
    if role == "unit":
        if unit is None or not _UNIT.fullmatch(unit):
            raise UserError("user.unit_required",
                            "a user of the unit role needs the id of its level-2 unit")
    elif unit is not None:
        raise UserError("user.unit_not_allowed",
                        f"only users of the unit role belong to a unit, not a {role}")


class UserStore:
    """Users and API tokens in SQL (SQLite or PostgreSQL). Blocking: run it in a thread."""

    def __init__(self, database: DatabaseRef):
        self.engine, self._owns_engine = engine_for(database)

    def close(self) -> None:
        """Close the pool's connections."""
        if self._owns_engine:
            self.engine.dispose()

    # -- users -----------------------------------------------------------------------------
    def add_user(self, name: str, role: str, tenant: str, unit: str | None = None, *,
                 full_name: str | None = None, now: dt.datetime | None = None,
                 password_hash: str | None = None, actor: str | None = None) -> User:
        """Create an active user; UserError user.exists if the name is taken. With
        ``password_hash`` its console password is set in the same transaction; with ``actor``
        (the admin) the creation is audited there too."""
        check_user_fields(name, role, tenant, unit)
        if full_name is not None and len(full_name) > 200:
            raise UserError("user.invalid_name", "the full name has more than 200 characters")
        at = now or utcnow()
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(sa.insert(_USERS).values(
                    name=name, role=role, tenant=tenant, unit=unit, active=True,
                    full_name=full_name, failed_logins=0, created_at=at, updated_at=at,
                    password_hash=password_hash,
                    password_changed_at=at if password_hash is not None else None,
                ).returning(_USERS.c.id)).scalar_one()
                if actor is not None:
                    user_audit.append(conn, [
                        UserChange(0, at, actor, tenant, name, "create", f, None, _shown(v))
                        for f, v in (("role", role), ("unit", unit), ("full_name", full_name),
                                     ("password", "set" if password_hash else None))
                        if v is not None])
        except IntegrityError:
            if self.get_user(name) is not None:
                raise UserError("user.exists", f"a user named {name!r} exists") from None
            raise
        return User(id=new_id, name=name, role=role, tenant=tenant, unit=unit, active=True,
                    full_name=full_name, created_at=at)

    def get_user(self, name: str) -> User | None:
        """The user with this name, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_USERS).where(_USERS.c.name == name)).first()
        return None if row is None else _user(row)

    def list_users(self, tenant: str | None = None) -> list[User]:
        """Every user (of one tenant, if given), by tenant then name."""
        q = sa.select(_USERS).order_by(_USERS.c.tenant, _USERS.c.name)
        if tenant is not None:
            q = q.where(_USERS.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(q)]

    def user_details(self, tenant: str, *, now: dt.datetime, idle: dt.timedelta | None,
                     role: str | None = None, active: bool | None = None) -> list[UserDetail]:
        """The tenant's users for the admin pages (filtered by role and active), by name, each
        with its sessions still valid at ``now`` (``idle``: the console's idle limit)."""
        live = (sa.select(sa.func.count()).select_from(_SESSIONS)
                .where(_SESSIONS.c.user_id == _USERS.c.id, *_live_session(now, idle))
                .scalar_subquery())
        q = (sa.select(_USERS, live.label("live_sessions")).where(_USERS.c.tenant == tenant)
             .order_by(_USERS.c.name))
        if role is not None:
            q = q.where(_USERS.c.role == role)
        if active is not None:
            q = q.where(_USERS.c.active.is_(active))
        with self.engine.connect() as conn:
            return [_detail(r, int(r.live_sessions)) for r in conn.execute(q)]

    def user_detail(self, name: str, *, now: dt.datetime, idle: dt.timedelta | None,
                    tenant: str | None = None) -> UserDetail | None:
        """One user for the admin pages (None if unknown, or of another tenant than given),
        with its sessions still valid at ``now`` (``idle``: the console's idle limit)."""
        q = sa.select(_USERS).where(_USERS.c.name == name)
        if tenant is not None:
            q = q.where(_USERS.c.tenant == tenant)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
            if row is None:
                return None
            sessions = conn.execute(sa.select(sa.func.count()).select_from(_SESSIONS).where(
                _SESSIONS.c.user_id == row.id, *_live_session(now, idle))).scalar_one()
        return _detail(row, int(sessions))

    def _admin_row(self, conn: sa.Connection, name: str, tenant: str | None,
                   expected_version: str | None, *, lock_admins: bool = False) -> Any:
        """The user's row, locked for this transaction (PostgreSQL); refusals as UserError.
        ``lock_admins``: first lock the tenant's active admins, in id order, so that two
        admins demoting or disabling each other at once are serialised (the second then sees
        the first's change and is refused as the last admin) instead of both passing the
        count. On SQLite the transaction starts with BEGIN IMMEDIATE for the same reason:
        pysqlite would begin it only at the first write, after the reads it depends on."""
        if conn.dialect.name == "sqlite":
            raw: Any = conn.connection.dbapi_connection
            if not raw.in_transaction:
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first (busy timeout)
        if lock_admins and tenant is not None:
            conn.execute(sa.select(_USERS.c.id).where(
                _USERS.c.tenant == tenant, _USERS.c.role == "admin",
                _USERS.c.active.is_(True)).order_by(_USERS.c.id).with_for_update()).all()
        q = sa.select(_USERS).where(_USERS.c.name == name).with_for_update()
        if tenant is not None:
            q = q.where(_USERS.c.tenant == tenant)
        row = conn.execute(q).first()
        if row is None:
            raise UserError("user.not_found", f"no user named {name!r}")
        if expected_version is not None and _row_version(row) != expected_version:
            raise UserError("user.stale", f"user {name!r} changed since the form was shown")
        return row

    def _guard(self, conn: sa.Connection, actor: str, row: Any, new_role: str,
               new_active: bool) -> None:
        others = int(conn.execute(sa.select(sa.func.count()).select_from(_USERS).where(
            _USERS.c.tenant == row.tenant, _USERS.c.role == "admin", _USERS.c.active.is_(True),
            _USERS.c.id != row.id)).scalar_one())
        refused = admin_guard(actor=actor, target=row.name, role=row.role, active=row.active,
                              new_role=new_role, new_active=new_active,
                              other_active_admins=others)
        if refused == "user.self":
            raise UserError(refused, "an admin cannot disable or demote themselves")
        if refused == "user.last_admin":
            raise UserError(refused, f"{row.name} is the last active admin of {row.tenant}")

    def update_user(self, name: str, *, full_name: str | None, role: str, unit: str | None,
                    now: dt.datetime, actor: str | None = None, tenant: str | None = None,
                    expected_version: str | None = None) -> tuple[UserDetail, list[UserChange]]:
        """Change a user's full name, role and unit (the unit_role rule holds); the user and
        the changes made (none: nothing written). See the module doc for ``actor`` etc."""
        if full_name is not None and len(full_name) > 200:
            raise UserError("user.invalid_name", "the full name has more than 200 characters")
        with self.engine.begin() as conn:
            row = self._admin_row(conn, name, tenant, expected_version,
                                  lock_admins=actor is not None)
            check_user_fields(name, role, row.tenant, unit)
            if actor is not None:
                self._guard(conn, actor, row, role, row.active)
            changes = [UserChange(0, now, actor or "", row.tenant, name, "update", f,
                                  _shown(old), _shown(new))
                       for f, old, new in (("full_name", row.full_name, full_name),
                                           ("role", row.role, role), ("unit", row.unit, unit))
                       if old != new]
            if changes:
                conn.execute(sa.update(_USERS).where(_USERS.c.id == row.id).values(
                    full_name=full_name, role=role, unit=unit, updated_at=now))
                if actor is not None:
                    user_audit.append(conn, changes)
        # Callers read the changes and the version; the session count is not the pages' here.
        detail = self.user_detail(name, now=now, idle=None)
        assert detail is not None
        return detail, changes

    def set_active(self, name: str, active: bool, *, now: dt.datetime | None = None,
                   actor: str | None = None, tenant: str | None = None,
                   expected_version: str | None = None) -> User:
        """Enable or disable a user. A disabled user's tokens stop working at once and their
        console sessions are deleted. See the module doc for ``actor`` etc."""
        at = now or utcnow()
        with self.engine.begin() as conn:
            row = self._admin_row(conn, name, tenant, expected_version,
                                  lock_admins=actor is not None)
            if actor is not None:
                self._guard(conn, actor, row, row.role, active)
            conn.execute(sa.update(_USERS).where(_USERS.c.id == row.id).values(
                active=active, updated_at=at))
            if not active:
                conn.execute(sa.delete(_SESSIONS).where(_SESSIONS.c.user_id == row.id))
            if actor is not None and row.active != active:
                user_audit.append(conn, [UserChange(
                    0, at, actor, row.tenant, name, "enable" if active else "disable",
                    "active", _shown(row.active), _shown(active))])
        user = self.get_user(name)
        assert user is not None
        return user

    # -- tokens ----------------------------------------------------------------------------
    def issue_token(self, name: str, *, label: str | None = None,
                    expires_at: dt.datetime | None = None,
                    now: dt.datetime | None = None) -> tuple[TokenInfo, str]:
        """A new token for an active user: (its bookkeeping, the token text shown once)."""
        if label is not None and len(label) > MAX_LABEL:
            raise UserError("user.invalid_label", f"label longer than {MAX_LABEL} characters")
        at = now or utcnow()
        if expires_at is not None and expires_at <= at:
            raise UserError("user.invalid_expiry", "the expiry is not in the future")
        user = self.get_user(name)
        if user is None:
            raise UserError("user.not_found", f"no user named {name!r}")
        if not user.active:
            raise UserError("user.inactive", f"user {name!r} is disabled")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)  # 256 bits, 43 characters
        with self.engine.begin() as conn:
            conn.execute(sa.insert(_TOKENS).values(
                id=token_id, user_id=user.id, secret_sha256=_digest(secret), label=label,
                created_at=at, last_used_at=None, expires_at=expires_at, revoked=False,
                revoked_at=None))
        info = TokenInfo(id=token_id, user=name, label=label, created_at=at, last_used_at=None,
                         expires_at=expires_at, revoked=False)
        return info, f"{TOKEN_PREFIX}_{token_id}_{secret}"

    def tokens(self, name: str | None = None) -> list[TokenInfo]:
        """Tokens (of one user, if given), newest first."""
        q = (sa.select(_TOKENS, _USERS.c.name.label("user_name"))
             .join(_USERS, _USERS.c.id == _TOKENS.c.user_id)
             .order_by(_TOKENS.c.created_at.desc(), _TOKENS.c.id))
        if name is not None:
            q = q.where(_USERS.c.name == name)
        with self.engine.connect() as conn:
            return [_token(r, r.user_name) for r in conn.execute(q)]

    def revoke(self, name: str, token_id: str | None = None, *,
               now: dt.datetime | None = None) -> int:
        """Revoke one token of a user, or all of them; how many were revoked."""
        user = self.get_user(name)
        if user is None:
            raise UserError("user.not_found", f"no user named {name!r}")
        q = sa.update(_TOKENS).where(_TOKENS.c.user_id == user.id, _TOKENS.c.revoked.is_(False))
        if token_id is not None:
            q = q.where(_TOKENS.c.id == token_id)
        with self.engine.begin() as conn:
            count = conn.execute(q.values(revoked=True, revoked_at=now or utcnow())).rowcount
        if token_id is not None and not count:
            raise UserError("user.token_not_found",
                            f"user {name!r} has no unrevoked token {token_id!r}")
        return int(count)

    def authenticate(self, token: str, *, now: dt.datetime | None = None) -> User | None:
        """The active user a bearer token belongs to, or None (unknown, wrong secret,
        expired, revoked, user disabled). The secret's hash is compared in constant time."""
        m = _TOKEN.fullmatch(token)
        if m is None:
            return None
        token_id, secret = m[1], m[2]
        at = now or utcnow()
        q = (sa.select(_TOKENS.c.secret_sha256, _TOKENS.c.expires_at, _TOKENS.c.revoked,
                       _TOKENS.c.last_used_at, _USERS)
             .join(_USERS, _USERS.c.id == _TOKENS.c.user_id)
             .where(_TOKENS.c.id == token_id))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        # Compare even when the id is unknown, so the time taken says nothing about ids.
        stored = row.secret_sha256 if row is not None else "0" * 64
        if not hmac.compare_digest(stored.encode(), _digest(secret).encode()) or row is None:
            return None
        if row.revoked or not row.active or (row.expires_at is not None
                                             and at >= row.expires_at):
            return None
        if row.last_used_at is None or at - row.last_used_at >= LAST_USED_RESOLUTION:
            with self.engine.begin() as conn:
                conn.execute(sa.update(_TOKENS).where(_TOKENS.c.id == token_id)
                             .values(last_used_at=at))
        return _user(row)

    # -- console passwords and the wait after failures ---------------------------------------------
    def set_password(self, name: str, password_hash: str, *,
                     now: dt.datetime | None = None, actor: str | None = None,
                     tenant: str | None = None, expected_version: str | None = None) -> User:
        """Store a new password hash; clears the failures' wait and ends the user's sessions. With
        ``actor`` audited as a reset (the hash is never written to the audit log)."""
        at = now or utcnow()
        with self.engine.begin() as conn:
            row = self._admin_row(conn, name, tenant, expected_version)
            conn.execute(sa.update(_USERS).where(_USERS.c.id == row.id).values(
                password_hash=password_hash, password_changed_at=at, failed_logins=0,
                locked_until=None, updated_at=at))
            conn.execute(sa.delete(_SESSIONS).where(_SESSIONS.c.user_id == row.id))
            if actor is not None:
                user_audit.append(conn, [UserChange(0, at, actor, row.tenant, name,
                                                    "reset_password")])
        user = self.get_user(name)
        assert user is not None
        return user

    def has_password(self, name: str) -> bool:
        """Whether the user has a console password."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(_USERS.c.password_hash)
                                 .where(_USERS.c.name == name)).scalar()
        return value is not None

    def unlock(self, name: str, *, now: dt.datetime | None = None, actor: str | None = None,
               tenant: str | None = None, expected_version: str | None = None) -> User:
        """Clear a user's wait after failures and their count (audited with ``actor``)."""
        at = now or utcnow()
        with self.engine.begin() as conn:
            row = self._admin_row(conn, name, tenant, expected_version)
            conn.execute(sa.update(_USERS).where(_USERS.c.id == row.id).values(
                failed_logins=0, locked_until=None, updated_at=at))
            if actor is not None:
                user_audit.append(conn, [UserChange(
                    0, at, actor, row.tenant, name, "unlock", "locked_until",
                    _shown(row.locked_until.isoformat() if row.locked_until else None), "")])
        user = self.get_user(name)
        assert user is not None
        return user

    def count_admins(self) -> int:
        """How many active admins exist (the first-admin CLI refuses when there is one)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_USERS).where(
                _USERS.c.role == "admin", _USERS.c.active.is_(True))).scalar_one())

    def login_wait(self, name: str, *, now: dt.datetime) -> dt.datetime | None:
        """Until when the account's next login attempt must wait (wrong passwords), or None."""
        with self.engine.connect() as conn:
            until = conn.execute(sa.select(_USERS.c.locked_until)
                                 .where(_USERS.c.name == name)).scalar()
        return until if until is not None and now < until else None

    def login(self, name: str, password: str, *, passwords: PasswordHashing,
              now: dt.datetime, free_failures: int, max_delay: dt.timedelta) -> LoginResult:
        """Check a console password and keep the books of failures (see the module doc)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_USERS).where(_USERS.c.name == name)).first()
        if row is None or not row.active:
            passwords.verify(None, password)  # same time as a real check
            return LoginResult("invalid")
        if row.locked_until is not None and now < row.locked_until:
            return LoginResult("waiting", wait_until=row.locked_until)
        if passwords.verify(row.password_hash, password):
            values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
            if row.password_hash is not None and passwords.needs_rehash(row.password_hash):
                values["password_hash"] = passwords.hash(password)
            if row.failed_logins or row.locked_until is not None or len(values) > 2:
                with self.engine.begin() as conn:
                    conn.execute(sa.update(_USERS).where(_USERS.c.id == row.id)
                                 .values(**values))
            return LoginResult("ok", user=_user(row))
        # Counted in SQL, so two app instances (or two tabs) cannot lose a failure.
        with self.engine.begin() as conn:
            failures = conn.execute(
                sa.update(_USERS).where(_USERS.c.id == row.id)
                .values(failed_logins=_USERS.c.failed_logins + 1)
                .returning(_USERS.c.failed_logins)).scalar_one()
            delay = login_delay(failures, free_failures, max_delay)
            if delay is not None:
                conn.execute(sa.update(_USERS).where(_USERS.c.id == row.id).values(
                    locked_until=now + delay, updated_at=now))
        return LoginResult("invalid")

    # -- console sessions ------------------------------------------------------------------
    def open_session(self, name: str, *, now: dt.datetime, lifetime: dt.timedelta,
                     user_agent: str | None = None) -> tuple[ConsoleSession, str]:
        """A new session of an active user: (its bookkeeping, the session id for the cookie).
        The user's sessions that ran out are deleted on the way."""
        user = self.get_user(name)
        if user is None:
            raise UserError("user.not_found", f"no user named {name!r}")
        if not user.active:
            raise UserError("user.inactive", f"user {name!r} is disabled")
        session_id = secrets.token_urlsafe(32)  # 256 bits, 43 characters
        agent = user_agent[:MAX_USER_AGENT] if user_agent else None
        session = ConsoleSession(
            id_sha256=_digest(session_id), user=user, created_at=now,
            expires_at=now + lifetime, last_seen_at=now,
            csrf_sha256=_digest(csrf_token_of(session_id)), user_agent=agent)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_SESSIONS).where(_SESSIONS.c.user_id == user.id,
                                                    _SESSIONS.c.expires_at <= now))
            conn.execute(sa.insert(_SESSIONS).values(
                id_sha256=session.id_sha256, user_id=user.id, created_at=now,
                expires_at=session.expires_at, last_seen_at=now,
                csrf_sha256=session.csrf_sha256, user_agent=agent))
        return session, session_id

    def find_session(self, session_id: str, *, now: dt.datetime, idle: dt.timedelta,
                     touch_every: dt.timedelta = LAST_USED_RESOLUTION
                     ) -> ConsoleSession | None:
        """The live session with this id, its last use noted; None when unknown, past its
        expiry, idle too long, or its user is disabled (a dead session's row is deleted)."""
        if not _SESSION_ID.fullmatch(session_id):
            return None
        # Looked up by the hash: whatever a lookup's timing leaks is about a hash the
        # sender cannot steer, never about the id.
        key = _digest(session_id)
        q = (sa.select(_SESSIONS.c.id_sha256, _SESSIONS.c.created_at, _SESSIONS.c.expires_at,
                       _SESSIONS.c.last_seen_at, _SESSIONS.c.csrf_sha256,
                       _SESSIONS.c.user_agent, _USERS)
             .join(_USERS, _USERS.c.id == _SESSIONS.c.user_id)
             .where(_SESSIONS.c.id_sha256 == key))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        if now >= row.expires_at or now - row.last_seen_at >= idle or not row.active:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(_SESSIONS).where(_SESSIONS.c.id_sha256 == key))
            return None
        seen = row.last_seen_at
        if now - seen >= touch_every:
            seen = now
            with self.engine.begin() as conn:
                conn.execute(sa.update(_SESSIONS).where(_SESSIONS.c.id_sha256 == key)
                             .values(last_seen_at=now))
        return ConsoleSession(id_sha256=key, user=_user(row), created_at=row.created_at,
                              expires_at=row.expires_at, last_seen_at=seen,
                              csrf_sha256=row.csrf_sha256, user_agent=row.user_agent)

    def close_session(self, session_id: str) -> bool:
        """End one session (logout); whether it existed."""
        if not _SESSION_ID.fullmatch(session_id):
            return False
        with self.engine.begin() as conn:
            return bool(conn.execute(sa.delete(_SESSIONS).where(
                _SESSIONS.c.id_sha256 == _digest(session_id))).rowcount)

    def close_sessions(self, name: str) -> int:
        """End every session of a user; how many."""
        user = self.get_user(name)
        if user is None:
            raise UserError("user.not_found", f"no user named {name!r}")
        with self.engine.begin() as conn:
            return int(conn.execute(sa.delete(_SESSIONS).where(
                _SESSIONS.c.user_id == user.id)).rowcount)

    def purge_sessions(self, *, now: dt.datetime, idle: dt.timedelta) -> int:
        """Delete every session past its expiry or idle too long; how many."""
        with self.engine.begin() as conn:
            return int(conn.execute(sa.delete(_SESSIONS).where(sa.or_(
                _SESSIONS.c.expires_at <= now,
                _SESSIONS.c.last_seen_at <= now - idle))).rowcount)


def control_token(database: DatabaseRef, tenant: str, name: str = "control") -> str:
    """A new API token of ``name``, an admin of ``tenant`` made if missing: what a script on the
    host (tests, benchmarks) sends to the app's control routes (``/api/pool``, ``/api/reload``)."""
    store = UserStore(database)
    try:
        if store.get_user(name) is None:
            store.add_user(name, "admin", tenant, full_name="control routes (scripts)")
        return store.issue_token(name, label="control routes")[1]
    finally:
        store.close()
