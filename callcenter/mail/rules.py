"""Reports that arrive by themselves: the ``mail`` and ``reports`` config keys and the rules; pure.

The orders: "hàng ngày, hàng tuần gửi về Văn phòng UBND tỉnh"; "hằng ngày báo cáo Ban Chỉ
đạo". Config (validated like every other key; errors name the file and the key)::

    mail:                       # top level; absent: no mail is sent (the product runs without)
      host: smtp.example.gov.vn
      port: 587                 # default 25
      from: "Tổng đài 1022 <tongdai1022@example.gov.vn>"
      starttls: true            # default false
      ca_file: /etc/ssl/ca.pem  # optional: the CA that signed the server's certificate
      username_env: HOTLINE_SMTP_USER   # optional: environment variables holding the login;
      password_env: HOTLINE_SMTP_PASSWORD  # the password is never written in the YAML
      enabled: true             # default true; false keeps the section but sends nothing

    tenants:
      - id: dongnai
        reports:
          daily:     {at: "07:30", to: [vp@example.gov.vn]}
          weekly:    {on: monday, at: "07:30", to: [...]}
          monthly:   {at: "07:30", to: [...]}
          quarterly: {at: "07:30", to: [...]}

Which period a report covers (times are the tenant's local time):

* daily at ``at``: the previous local day;
* weekly on ``on`` at ``at``: the last whole ISO week (Monday to Sunday) before that day;
* monthly on the 1st at ``at``: the previous calendar month;
* quarterly on the 1st day of a quarter (1/1, 1/4, 1/7, 1/10) at ``at``: the previous quarter.

A report is one outbox mail per tenant, kind and period: its dedupe key
``report:<kind>:<tenant>:<period label>`` is unique, so two app instances (or a scheduler that
runs twice) queue it once. Missed times (the app was down at 07:30): the scheduler always
looks at the *latest* occurrence due at ``now``; if that report is not in the outbox yet and
its time is at most ``CATCH_UP`` (7 days) ago it is sent late, once. Older occurrences are not
sent by themselves (a new ``quarterly`` key in May does not mail the first quarter out of the
blue): ``callcenter report send`` sends any period by hand.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from callcenter.backoff import backoff_delay
from callcenter.config.base import MISSING, BaseParser, join_key

ReportKind = Literal["daily", "weekly", "monthly", "quarterly"]
REPORT_KINDS: tuple[ReportKind, ...] = ("daily", "weekly", "monthly", "quarterly")
REPORTS_KEYS: tuple[str, ...] = ("reports",)
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday",
                             "saturday", "sunday")
MAX_RECIPIENTS = 50
CATCH_UP = dt.timedelta(days=7)
# Retries of a mail the server did not take: 30 s, 1 min, 2 min ... capped at 1 h, with
# jitter; after MAX_ATTEMPTS tries (about two days) it is "failed" and logged as an ERROR.
RETRY_BASE_S = 30.0
RETRY_CAP_S = 3600.0
MAX_ATTEMPTS = 60

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Deliberately loose (RFC 5322 is not for config files): something@domain, no spaces, no
# separators that would split one address into two.
_ADDRESS = re.compile(r"[^@\s<>,;:\"()\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
_DISPLAY_FROM = re.compile(r"(?P<name>[^<>]*)<(?P<addr>[^<>]+)>")
_DAY = dt.timedelta(days=1)


# ---- config ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MailConfig:
    """The SMTP server reports (and other mails) leave through."""

    host: str
    sender: str  # the "from" key: an address, or "Name <address>"
    port: int = 25
    starttls: bool = False
    ca_file: str | None = None  # PEM CAs for STARTTLS; None: the system's
    username_env: str | None = None  # environment variable holding the SMTP user
    password_env: str | None = None  # environment variable holding the SMTP password
    enabled: bool = True


@dataclass(frozen=True)
class ReportRule:
    """One report a tenant receives by mail: when, and to whom."""

    kind: ReportKind
    at: dt.time  # local time of the tenant
    to: tuple[str, ...]
    weekday: int | None = None  # weekly only: 0 = Monday ... 6 = Sunday


@dataclass(frozen=True)
class ReportsPolicy:
    """A tenant's mailed reports (none by default)."""

    rules: tuple[ReportRule, ...] = ()

    def rule(self, kind: str) -> ReportRule | None:
        """The rule of this kind, or None."""
        return next((r for r in self.rules if r.kind == kind), None)


NO_REPORTS = ReportsPolicy()


def is_address(value: str) -> bool:
    """True for a plain mail address (local@domain)."""
    return _ADDRESS.fullmatch(value) is not None


def sender_address(sender: str) -> str:
    """The bare address of a "from" value ("Tổng đài <a@b>" -> "a@b")."""
    m = _DISPLAY_FROM.fullmatch(sender.strip())
    return (m["addr"] if m else sender).strip()


def parse_mail_section(p: BaseParser, value: object) -> MailConfig | None:
    """Validate the top-level ``mail`` key; errors go to ``p`` (None when absent or invalid)."""
    if value is None:
        return None
    k = "mail"
    keys = ("host", "port", "from", "starttls", "ca_file", "username_env", "password_env",
            "enabled")
    if isinstance(value, dict) and ("password" in value or "username" in value):
        for name in ("password", "username"):
            if name in value:
                p.error(join_key(k, name), "<hidden>" if name == "password" else value[name],
                        f"expected {name}_env: the name of an environment variable holding "
                        f"the {name} (secrets stay out of the config file)")
        value = {x: v for x, v in value.items() if x not in ("password", "username")}
    m = p.mapping(value, k, keys, ("host", "from"))
    if m is None or "host" not in m or "from" not in m:
        return None
    before = len(p.errors)
    host = p.host(m["host"], join_key(k, "host"))
    port = p.port(m.get("port", 25), join_key(k, "port"))
    sender = p.text(m["from"], join_key(k, "from"), max_len=320)
    if sender is not None and not is_address(sender_address(sender)):
        p.error(join_key(k, "from"), sender,
                'expected a mail address, e.g. tongdai1022@example.gov.vn or '
                '"Tổng đài 1022 <tongdai1022@example.gov.vn>"')
    starttls = p.boolean(m.get("starttls", False), join_key(k, "starttls"))
    enabled = p.boolean(m.get("enabled", True), join_key(k, "enabled"))
    ca_file = (p.text(m["ca_file"], join_key(k, "ca_file"), max_len=4096)
               if m.get("ca_file") is not None else None)
    env: dict[str, str | None] = {}
    for name in ("username_env", "password_env"):
        raw = m.get(name)
        env[name] = None
        if raw is None:
            continue
        s = p.text(raw, join_key(k, name), max_len=128)
        if s is not None and not _ENV_NAME.fullmatch(s):
            p.error(join_key(k, name), s, "expected an environment variable name such as "
                                          "HOTLINE_SMTP_PASSWORD (letters, digits, _)")
            continue
        env[name] = s
    for name, other in (("username_env", "password_env"), ("password_env", "username_env")):
        if m.get(name) is None and m.get(other) is not None:
            p.error(join_key(k, name), MISSING,
                    f"expected an environment variable name: mail.{other} is set, and an "
                    "SMTP login needs both the user and the password")
    if len(p.errors) > before or host is None or port is None or sender is None:
        return None
    return MailConfig(host=host, sender=sender.strip(), port=port, starttls=bool(starttls),
                      ca_file=ca_file, username_env=env["username_env"],
                      password_env=env["password_env"], enabled=bool(enabled))


def _recipients(p: BaseParser, value: object, key: str) -> tuple[str, ...] | None:
    items = p.list_(value, key)
    if items is None:
        return None
    out: list[str] = []
    for i, item in enumerate(items):
        ik = join_key(key, i)
        s = p.text(item, ik, max_len=320)
        if s is None:
            return None
        s = s.strip()
        if not is_address(s):
            p.error(ik, item, "expected a mail address such as vanphong@example.gov.vn")
            return None
        if s.lower() not in (x.lower() for x in out):
            out.append(s)
    if len(out) > MAX_RECIPIENTS:
        p.error(key, f"{len(out)} addresses", f"expected at most {MAX_RECIPIENTS} addresses")
        return None
    return tuple(out)


def parse_reports_section(p: BaseParser, m: Mapping[str, object],
                          key: str) -> ReportsPolicy | None:
    """Validate the tenant's ``reports`` key; errors go to ``p`` (None when invalid)."""
    raw = m.get("reports")
    if raw is None:
        return NO_REPORTS
    rk = join_key(key, "reports")
    section = p.mapping(raw, rk, REPORT_KINDS)
    if section is None:
        return None
    rules: list[ReportRule] = []
    ok = True
    for kind in REPORT_KINDS:
        if section.get(kind) is None:
            continue
        kk = join_key(rk, kind)
        raw_rule = section[kind]
        if isinstance(raw_rule, dict) and True in raw_rule and "on" not in raw_rule:
            # YAML 1.1 (PyYAML) reads an unquoted key `on` as the boolean true: it is `on`.
            raw_rule = {("on" if k is True else k): v for k, v in raw_rule.items()}
        allowed = ("on", "at", "to") if kind == "weekly" else ("at", "to")
        required = ("on", "at", "to") if kind == "weekly" else ("at", "to")
        r = p.mapping(raw_rule, kk, allowed, required)
        if r is None or any(x not in r for x in required):
            ok = False
            continue
        at = p.time(r["at"], join_key(kk, "at"))
        to = _recipients(p, r["to"], join_key(kk, "to"))
        weekday: int | None = None
        if kind == "weekly":
            day = p.choice(str(r["on"]).lower() if isinstance(r["on"], str) else r["on"],
                           join_key(kk, "on"), WEEKDAYS)
            weekday = WEEKDAYS.index(day) if day is not None else None
            if weekday is None:
                ok = False
        if at is None or to is None:
            ok = False
            continue
        rules.append(ReportRule(kind, at, to, weekday))
    return ReportsPolicy(tuple(rules)) if ok else None


# ---- periods and due times ------------------------------------------------------------------
@dataclass(frozen=True)
class ReportPeriod:
    """The local calendar period a report covers."""

    kind: ReportKind
    label: str  # 2026-12-06, 2026-W49, 2026-11, 2026-Q4
    first_day: dt.date
    last_day: dt.date  # inclusive

    def describe(self) -> str:
        """Vietnamese: "ngày 06/12/2026", "tuần 49/2026 (...)", "tháng 11/2026", "quý IV/2026"."""
        if self.kind == "daily":
            return f"ngày {self.first_day:%d/%m/%Y}"
        if self.kind == "weekly":
            year, week, _ = self.first_day.isocalendar()
            return (f"tuần {week:02d}/{year} ({self.first_day:%d/%m/%Y} - "
                    f"{self.last_day:%d/%m/%Y})")
        if self.kind == "monthly":
            return f"tháng {self.first_day:%m/%Y}"
        return f"quý {_ROMAN[quarter_of(self.first_day)]}/{self.first_day.year}"


_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


def quarter_of(day: dt.date) -> int:
    """1..4."""
    return (day.month - 1) // 3 + 1


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _prev_month_start(day: dt.date) -> dt.date:
    first = _month_start(day)
    return _month_start(first - _DAY)


def _quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * (quarter_of(day) - 1) + 1, 1)


def period_before(kind: ReportKind, send_day: dt.date) -> ReportPeriod:
    """The period a report of ``kind`` sent on local day ``send_day`` covers."""
    if kind == "daily":
        return day_period(send_day - _DAY)
    if kind == "weekly":
        this_monday = send_day - dt.timedelta(days=send_day.weekday())
        monday = this_monday - 7 * _DAY
        return week_period(monday)
    if kind == "monthly":
        return month_period(_prev_month_start(send_day))
    start = _quarter_start(send_day)
    return quarter_period(_quarter_start(start - _DAY))


def day_period(day: dt.date) -> ReportPeriod:
    """One local day."""
    return ReportPeriod("daily", day.isoformat(), day, day)


def week_period(day: dt.date) -> ReportPeriod:
    """The ISO week holding ``day``."""
    monday = day - dt.timedelta(days=day.weekday())
    year, week, _ = monday.isocalendar()
    return ReportPeriod("weekly", f"{year}-W{week:02d}", monday, monday + 6 * _DAY)


def month_period(day: dt.date) -> ReportPeriod:
    """The calendar month holding ``day``."""
    first = _month_start(day)
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return ReportPeriod("monthly", f"{first:%Y-%m}", first, nxt - _DAY)


def quarter_period(day: dt.date) -> ReportPeriod:
    """The quarter holding ``day``."""
    first = _quarter_start(day)
    end_month = first.month + 3
    nxt = dt.date(first.year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1)
    return ReportPeriod("quarterly", f"{first.year}-Q{quarter_of(first)}", first, nxt - _DAY)


def period_containing(kind: ReportKind, day: dt.date) -> ReportPeriod:
    """The period of ``kind`` that holds local day ``day`` (for reports sent by hand)."""
    return {"daily": day_period, "weekly": week_period, "monthly": month_period,
            "quarterly": quarter_period}[kind](day)


def sends_on(rule: ReportRule, day: dt.date) -> bool:
    """Whether the rule sends a report on local day ``day``."""
    if rule.kind == "daily":
        return True
    if rule.kind == "weekly":
        return day.weekday() == rule.weekday
    if rule.kind == "monthly":
        return day.day == 1
    return day.day == 1 and day.month in (1, 4, 7, 10)


def _local_instant(day: dt.date, at: dt.time, tz: ZoneInfo) -> dt.datetime:
    # Vietnam has no daylight saving time; elsewhere a wall time in a gap or fold is taken as
    # zoneinfo reads it (fold=0), which is as good as any for a report.
    return dt.datetime.combine(day, at, tz).astimezone(dt.UTC)


@dataclass(frozen=True)
class DueReport:
    """One occurrence of a rule: when it is due (UTC) and which period it covers."""

    tenant: str
    rule: ReportRule
    due_at: dt.datetime  # UTC
    period: ReportPeriod

    @property
    def dedupe_key(self) -> str:
        """The outbox key: one mail per tenant, kind and period."""
        return report_key(self.rule.kind, self.tenant, self.period)


def _aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now: expected an aware datetime, got naive {now!r}")
    return now


def latest_due(tenant: str, rule: ReportRule, timezone: str,
               now: dt.datetime) -> DueReport | None:
    """The rule's most recent occurrence at or before ``now`` (None if none in a year)."""
    tz = ZoneInfo(timezone)
    today = _aware(now).astimezone(tz).date()
    for back in range(0, 370):
        day = today - dt.timedelta(days=back)
        if not sends_on(rule, day):
            continue
        at = _local_instant(day, rule.at, tz)
        if at <= now:
            return DueReport(tenant, rule, at, period_before(rule.kind, day))
    return None


def next_due(tenant: str, rule: ReportRule, timezone: str, now: dt.datetime) -> DueReport:
    """The rule's first occurrence strictly after ``now``."""
    tz = ZoneInfo(timezone)
    today = _aware(now).astimezone(tz).date()
    for ahead in range(0, 370):
        day = today + dt.timedelta(days=ahead)
        if not sends_on(rule, day):
            continue
        at = _local_instant(day, rule.at, tz)
        if at > now:
            return DueReport(tenant, rule, at, period_before(rule.kind, day))
    raise AssertionError("every rule sends at least once a year")  # pragma: no cover


def to_send(tenant: str, rule: ReportRule, timezone: str, now: dt.datetime,
            catch_up: dt.timedelta = CATCH_UP) -> DueReport | None:
    """The occurrence the scheduler must make sure of at ``now``: the latest due one, unless
    it is older than ``catch_up`` (see the module docstring)."""
    due = latest_due(tenant, rule, timezone, now)
    if due is None or now - due.due_at > catch_up:
        return None
    return due


def report_key(kind: str, tenant: str, period: ReportPeriod) -> str:
    """``report:daily:dongnai:2026-12-06``."""
    return f"report:{kind}:{tenant}:{period.label}"


# ---- what the mail says ---------------------------------------------------------------------
_KIND_WORD = {"daily": "ngay", "weekly": "tuan", "monthly": "thang", "quarterly": "quy"}


def attachment_name(tenant: str, period: ReportPeriod) -> str:
    """``bao-cao-ngay-dongnai-2026-12-06.xlsx`` (ASCII: every mail client shows it)."""
    return f"bao-cao-{_KIND_WORD[period.kind]}-{tenant}-{period.label}.xlsx"


def report_subject(tenant_name: str, period: ReportPeriod) -> str:
    """The mail's subject line."""
    return f"[Tổng đài 1022 {tenant_name}] Báo cáo {period.describe()}"


def report_body(tenant: str, tenant_name: str, period: ReportPeriod,
                counts: Mapping[str, int], generated_at: dt.datetime, timezone: str) -> str:
    """The mail's text: one summary sentence, where the details are, when it was made.

    ``counts`` holds the report's totals (the keys of ``tickets.reports.Counts``).
    """
    received = counts.get("received", 0)
    l1 = counts.get("answered_l1", 0)
    on_time = counts.get("resolved_on_time", 0)
    late_done = counts.get("resolved_late", 0)
    handled = l1 + on_time + late_done
    open_ = counts.get("still_open", 0)
    late = counts.get("late", 0)
    closed = counts.get("closed_unhandled", 0)
    local = _aware(generated_at).astimezone(ZoneInfo(timezone))
    lines = [
        f"Báo cáo {period.describe()} — Tổng đài 1022 {tenant_name}: tiếp nhận {received} "
        f"phản ánh, kiến nghị; đã xử lý {handled} (trả lời tại cấp 1: {l1}, giải quyết đúng "
        f"hạn: {on_time}, trễ hạn: {late_done}); đang xử lý {open_}, trong đó quá hạn {late}"
        + (f"; đóng không xử lý {closed}." if closed else "."),
        "",
        f"Chi tiết theo đơn vị và theo lĩnh vực trong tệp đính kèm "
        f"{attachment_name(tenant, period)}.",
        f"Số liệu theo trạng thái lúc {local:%H:%M} ngày {local:%d/%m/%Y} (giờ {timezone}).",
        "",
        "Thư gửi tự động từ hệ thống Tổng đài 1022; vui lòng không trả lời thư này.",
    ]
    return "\n".join(lines) + "\n"


def retry_delay(attempts: int, rand: float) -> dt.timedelta:
    """How long a mail waits after its ``attempts``-th failed try (30 s doubling, cap 1 h)."""
    return dt.timedelta(seconds=backoff_delay(attempts, RETRY_BASE_S, RETRY_CAP_S, rand))


def gives_up(attempts: int) -> bool:
    """True when a mail that failed its ``attempts``-th try is not tried again."""
    return attempts >= MAX_ATTEMPTS
