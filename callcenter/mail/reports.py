"""Report mails: build a tenant's report (xlsx + a Vietnamese summary) and queue it, on schedule
or by hand. Blocking (SQL, openpyxl): the app runs it in a thread.

* ``ReportMailer.tick(now)``: for every tenant's ``reports`` rule, the occurrence due now
  (``rules.to_send``: the latest one, at most 7 days late); if its dedupe key is not in the
  outbox, the report is built and queued. Run it as often as you like, in as many app
  instances as you like: each period's report is queued once (the key is UNIQUE).
* ``ReportMailer.send_now(tenant, kind, day, now)``: one report by hand (``callcenter report
  send``), for the period holding ``day`` (default: the period the next scheduled mail would
  cover), under a key of its own so it is sent even if the scheduled one went out.
* ``report_job``: the app's task calling ``tick`` every ``interval_s`` seconds.

The attachment holds the report per unit and per field (``tickets.reports.summary_tables``),
the late list as of now, and for a week or longer the units' league table.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from callcenter.clock import utcnow
from callcenter.config.model import HotlineConfig, Tenant
from callcenter.mail import rules
from callcenter.mail.dispatcher import MailDispatcher, SendFn
from callcenter.mail.sender import send_mail, server_of
from callcenter.mail.store import XLSX, Attachment, MailOutbox, OutboxMail
from callcenter.tickets import reports as rp

log = logging.getLogger(__name__)

PURPOSE = "report"
_PERIOD_ARG = {"daily": "date", "weekly": "week", "monthly": "month", "quarterly": "quarter"}


@dataclass(frozen=True)
class QueuedReport:
    """A report mail in the outbox."""

    mail_id: int | None  # None: its key was queued before (nothing new)
    dedupe_key: str
    tenant: str
    period: rules.ReportPeriod
    to: tuple[str, ...]


class ReportMailer:
    """Builds report mails from the ticket reports and queues them in the mail outbox."""

    def __init__(self, outbox: MailOutbox, reports: Callable[[], rp.TicketReports],
                 config: Callable[[], HotlineConfig]):
        self.outbox = outbox
        self.reports = reports
        self.config = config
        self._queued: set[str] = set()  # keys known to be in the outbox (saves a query)

    def build(self, tenant: Tenant, period: rules.ReportPeriod, now: dt.datetime
              ) -> tuple[str, str, Attachment]:
        """(subject, body, xlsx attachment) of one tenant's report for ``period``."""
        r = self.reports()
        tp = r.period(tenant.id, **{_PERIOD_ARG[period.kind]: period.label})
        summary = r.summary(tenant.id, tp, now=now)
        tables = rp.summary_tables(summary)
        late = r.late(tenant.id, now=now)
        tables.append(rp.list_table("late", tenant.name, late, now, tp.timezone))
        if period.kind != "daily":
            tables.append(rp.league_table(tenant.name, r.league(tenant.id, tp, now=now), tp,
                                          now))
        data = rp.xlsx_bytes(tables)
        subject = rules.report_subject(tenant.name, period)
        body = rules.report_body(tenant.id, tenant.name, period, summary.total.__dict__, now,
                                 tp.timezone)
        return subject, body, Attachment(rules.attachment_name(tenant.id, period), XLSX, data)

    def _enqueue(self, tenant: Tenant, period: rules.ReportPeriod, to: tuple[str, ...],
                 key: str, now: dt.datetime) -> QueuedReport:
        subject, body, xlsx = self.build(tenant, period, now)
        mail_id = self.outbox.enqueue(tenant.id, to, subject, body, [xlsx], purpose=PURPOSE,
                                      dedupe_key=key, now=now)
        return QueuedReport(mail_id, key, tenant.id, period, to)

    def due(self, now: dt.datetime) -> list[rules.DueReport]:
        """The occurrences the schedule wants in the outbox at ``now`` (mail configured)."""
        cfg = self.config()
        if cfg.mail is None or not cfg.mail.enabled:
            return []
        out = []
        for t in cfg.tenants:
            for rule in t.reports.rules:
                d = rules.to_send(t.id, rule, t.timezone, now)
                if d is not None:
                    out.append(d)
        return out

    def tick(self, now: dt.datetime) -> list[QueuedReport]:
        """Queue every due report not yet in the outbox; the ones queued now."""
        wanted = [d for d in self.due(now) if d.dedupe_key not in self._queued]
        if not wanted:
            return []
        present = self.outbox.existing_keys([d.dedupe_key for d in wanted])
        self._queued |= present
        cfg = self.config()
        out = []
        for d in wanted:
            if d.dedupe_key in present:
                continue
            try:
                q = self._enqueue(cfg.require_tenant(d.tenant), d.period, d.rule.to,
                                  d.dedupe_key, now)
            except Exception as e:  # one tenant's report must not hold up the others
                log.error("report %s not queued (tried again later): %s", d.dedupe_key,
                          str(e).splitlines()[0][:300] if str(e) else repr(e))
                continue
            self._queued.add(d.dedupe_key)
            if q.mail_id is not None:  # another instance may have queued it meanwhile
                log.info("report %s queued as mail %d to %s (due %s)", d.dedupe_key, q.mail_id,
                         ", ".join(d.rule.to), d.due_at.isoformat())
                out.append(q)
        return out

    def send_now(self, tenant_id: str, kind: rules.ReportKind, now: dt.datetime, *,
                 day: dt.date | None = None,
                 to: tuple[str, ...] | None = None) -> QueuedReport:
        """Queue one report by hand: the period holding ``day`` (default: the last whole one).

        Recipients: ``to``, else the tenant's ``reports.<kind>.to``; ValueError if neither.
        """
        cfg = self.config()
        tenant = cfg.require_tenant(tenant_id)
        rule = tenant.reports.rule(kind)
        recipients = to or (rule.to if rule is not None else ())
        if not recipients:
            raise ValueError(f"no recipients: tenant {tenant_id!r} has no reports.{kind}.to in "
                             f"{cfg.source}; give --to")
        if day is not None:
            period = rules.period_containing(kind, day)
        else:
            period = rules.period_before(kind, now.astimezone(ZoneInfo(tenant.timezone)).date())
        key = f"{rules.report_key(kind, tenant.id, period)}:manual:{uuid.uuid4().hex[:12]}"
        return self._enqueue(tenant, period, tuple(recipients), key, now)


async def report_job(mailer: ReportMailer, wake: Callable[[], None], *,
                     interval_s: float = 30.0,
                     clock: Callable[[], dt.datetime] = utcnow) -> None:
    """Queue due reports every ``interval_s`` seconds until cancelled; ``wake`` the sender."""
    while True:
        started = time.monotonic()
        try:
            queued = await asyncio.to_thread(mailer.tick, clock())
        except asyncio.CancelledError:
            raise
        except Exception as e:  # database away, a report failing: try again next time
            log.error("report mail job failed (retrying in %ss): %s", interval_s,
                      str(e).splitlines()[0][:300] if str(e) else repr(e))
        else:
            if queued:
                wake()
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))


def send_report_now(outbox: MailOutbox, reports: rp.TicketReports, config: HotlineConfig,
                    tenant: str, kind: rules.ReportKind, now: dt.datetime, *,
                    day: dt.date | None = None, to: tuple[str, ...] | None = None,
                    send: SendFn = send_mail) -> tuple[QueuedReport, OutboxMail | None]:
    """``callcenter report send``: queue one report, then send it at once (blocking).

    The mail's row afterwards says what happened (sent, or queued again with its error for
    the running app's dispatcher to retry). ValueError: no ``mail:`` server, no recipients.
    """
    if server_of(config.mail) is None:
        raise ValueError(f"no mail server: add a mail: section (enabled) to {config.source}")
    mailer = ReportMailer(outbox, lambda: reports, lambda: config)
    queued = mailer.send_now(tenant, kind, now, day=day, to=to)
    assert queued.mail_id is not None  # a manual key is new every time
    dispatcher = MailDispatcher(outbox, lambda: server_of(config.mail), send=send)
    asyncio.run(dispatcher.run_once([queued.mail_id]))
    return queued, outbox.get(queued.mail_id)
