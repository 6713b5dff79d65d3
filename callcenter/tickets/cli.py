"""`callcenter ticket ...` and `callcenter report ...`: the ticket workflow and reports by hand.

    callcenter ticket open --tenant T --as ROLE:USER[:UNIT] --field F --content TEXT
        [--channel phone] [--place P] [--name N] [--phone NUMBER] [--urgent] [--call ID]...
        [--publishable yes|no] [--answer TEXT [--faq-item ID]] [--at ISO] [--json]
    callcenter ticket show CODE --as ...              ticket, attachments and audit log
    callcenter ticket list --as ... [--tenant T] [--state S]... [--unit U] [--field F]
        [--late | --not-late] [--since DATE] [--until DATE] [--limit N] [--offset N] [--json]
    callcenter ticket act CODE EVENT --as ... [--expected-version N] [--at ISO] ...
        EVENT: forward [--unit U (default: the routing rules)] [--note], accept,
        resolve --result TEXT [--document ATTACHMENT], return --reason, close [--reason],
        reopen --reason, answer --answer [--faq-item], reclassify [--field] [--place]
        [--urgent|--not-urgent], publish [--question TEXT] [--answer TEXT] (the texts the
        public reads; the ticket must have an answer or result), decline --reason, unpublish
        (back to review), remind, link-call --call ID
    callcenter ticket review --tenant T --as supervisor:USER [--status pending|published|
        declined] [--json]                            the disclosure review list
    callcenter ticket attach CODE FILE --as ... [--type CONTENT-TYPE]
    callcenter ticket oversight --as ... --tenant T [--unit U] [--json]
        what a unit oversees: late tickets first, counts by state and by holder unit
    callcenter ticket sweep [--json]                  the deadline job, once
    callcenter report daily --tenant T --date YYYY-MM-DD [--xlsx FILE] [--csv FILE] [--json]
    callcenter report weekly --tenant T --week YYYY-Www [...]
    callcenter report late|unprocessed --tenant T [--unit U] [...]
    callcenter report league --tenant T (--date D | --week W | --month YYYY-MM) [...]
    callcenter report send daily|weekly|monthly|quarterly --tenant T [--date D] [--to ADDR]...
        mail one report now (callcenter/mail/): the period holding D (default: the last
        whole one), to the tenant's reports.<kind>.to unless --to is given

``--as operator:an``, ``--as unit:binh:so_y_te``, ``--as supervisor:lan``. Times: ``--at``
ISO 8601 with an offset (default now); ``--since/--until`` a local date or ISO time.
A unit user's ``list`` includes what its unit oversees (``oversees`` in the config); rows it
does not hold are marked ``[chỉ xem]`` (read only), with the holder and the holder's deadline.
Exit codes: 0 done, 1 refused (a ticket error: its id is printed), 2 database unavailable or
bad arguments. Attachments are stored under ``$HOTLINE_STATE/ticket-files``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import mimetypes
import sys
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from callcenter.config.settings import Settings

EVENTS = ("forward", "accept", "resolve", "return", "close", "reopen", "answer", "reclassify",
          "publish", "decline", "unpublish", "remind", "link-call")
ROLES = ("operator", "supervisor", "admin", "unit", "system")
DEFAULT_ZONE = "Asia/Ho_Chi_Minh"


def files_dir(settings: Settings) -> Path:
    """Where attachments live (the app's TicketService uses the same folder)."""
    return settings.state_dir / "ticket-files"


def register(sub: Any) -> None:
    """Add `ticket` and `report` to the top-level CLI's subparsers."""
    p = sub.add_parser("ticket", help="petition tickets: open, show, list, act, attach, sweep")
    ts = p.add_subparsers(dest="ticket_command", required=True)

    def actor_arg(c: argparse.ArgumentParser) -> None:
        c.add_argument("--as", dest="actor", required=True, metavar="ROLE:USER[:UNIT]",
                       help="who acts, e.g. operator:an or unit:binh:so_y_te")

    c = ts.add_parser("open", help="record a new ticket")
    actor_arg(c)
    c.add_argument("--tenant", required=True)
    c.add_argument("--channel", default="phone",
                   help="phone, web, email, zalo, facebook, walk_in, open311 (default phone)")
    c.add_argument("--field", required=True, help="field id, e.g. health")
    c.add_argument("--content", required=True)
    c.add_argument("--place", help="district or commune id")
    c.add_argument("--name", help="the citizen's name")
    c.add_argument("--phone", help="the citizen's phone number")
    c.add_argument("--urgent", action="store_true")
    c.add_argument("--call", action="append", default=[], help="call record id (repeatable)")
    c.add_argument("--publishable", choices=("yes", "no"),
                   help="yes: shown on the public page once answered (supervisor or admin)")
    c.add_argument("--answer", help="answered at level 1 (FAQ): the ticket is closed at once")
    c.add_argument("--faq-item")
    c.add_argument("--at", help="time of receipt, ISO 8601 with offset (default now)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_open)

    c = ts.add_parser("show", help="a ticket with its attachments and audit log")
    actor_arg(c)
    c.add_argument("code")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_show)

    c = ts.add_parser("list", help="tickets, newest first")
    actor_arg(c)
    c.add_argument("--tenant")
    c.add_argument("--state", action="append", help="state (repeatable)")
    c.add_argument("--unit")
    c.add_argument("--field")
    late = c.add_mutually_exclusive_group()
    late.add_argument("--late", dest="late", action="store_const", const=True,
                      help="only open tickets past their due time")
    late.add_argument("--not-late", dest="late", action="store_const", const=False)
    c.add_argument("--since", help="received from (local date YYYY-MM-DD or ISO time)")
    c.add_argument("--until", help="received before (local date or ISO time)")
    c.add_argument("--limit", type=int, default=50)
    c.add_argument("--offset", type=int, default=0)
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_list)

    c = ts.add_parser("act", help="apply an event: " + ", ".join(EVENTS))
    actor_arg(c)
    c.add_argument("code")
    c.add_argument("event", choices=EVENTS)
    c.add_argument("--unit", help="forward: the unit (default: what the routing rules say)")
    c.add_argument("--note", help="forward: a note for the unit")
    c.add_argument("--result", help="resolve: the result")
    c.add_argument("--document", help="resolve: an attachment id or sha256 (attach first)")
    c.add_argument("--reason", help="return, close, reopen, decline: the reason")
    c.add_argument("--answer", help="answer: the answer; publish: the answer as the public "
                                    "reads it (default: the current edit, else the masked "
                                    "result)")
    c.add_argument("--question", help="publish: the question as the public reads it (default: "
                                      "the current edit, else the masked content)")
    c.add_argument("--faq-item")
    c.add_argument("--field", help="reclassify: the new field")
    c.add_argument("--place", help="reclassify: the new place ('-' for none)")
    urgent = c.add_mutually_exclusive_group()
    urgent.add_argument("--urgent", dest="urgent", action="store_const", const=True)
    urgent.add_argument("--not-urgent", dest="urgent", action="store_const", const=False)
    c.add_argument("--call", help="link-call: the call record id")
    c.add_argument("--expected-version", type=int)
    c.add_argument("--at", help="time of the event, ISO 8601 with offset (default now)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_act)

    c = ts.add_parser("review", help="the disclosure review: tickets waiting for a decision "
                                     "(or published, declined)")
    actor_arg(c)
    c.add_argument("--tenant", required=True)
    c.add_argument("--status", choices=("pending", "published", "declined"), default="pending")
    c.add_argument("--limit", type=int, default=50)
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_review)

    c = ts.add_parser("attach", help="attach a document, photo or video (PDF, DOC, DOCX, "
                                     "JPEG, PNG, WEBP, HEIC, MP4, MOV, 3GP, 3G2)")
    actor_arg(c)
    c.add_argument("code")
    c.add_argument("file", type=Path)
    c.add_argument("--type", help="declared content type (default: from the name)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_attach)

    c = ts.add_parser("oversight", help="what a unit oversees: late tickets, counts")
    actor_arg(c)
    c.add_argument("--tenant", required=True)
    c.add_argument("--unit", help="the overseeing unit (supervisor, admin; a unit user: its own)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_oversight)

    c = ts.add_parser("sweep", help="run the deadline job once: mark late, send reminders, chase "
                                      "late units")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_sweep)

    p = sub.add_parser("report", help="ticket reports: daily, weekly, late, unprocessed, league")
    rs = p.add_subparsers(dest="report_command", required=True)

    def outputs(c: argparse.ArgumentParser) -> None:
        c.add_argument("--tenant", required=True)
        c.add_argument("--xlsx", type=Path, help="write an xlsx workbook")
        c.add_argument("--csv", type=Path, help="write CSV (UTF-8 with BOM, for Excel)")
        c.add_argument("--json", action="store_true")

    c = rs.add_parser("daily", help="figures of one local day per unit and field")
    outputs(c)
    c.add_argument("--date", required=True, help="YYYY-MM-DD")
    c.set_defaults(handler=cmd_report_summary)
    c = rs.add_parser("weekly", help="figures of one ISO week per unit and field")
    outputs(c)
    c.add_argument("--week", required=True, help="YYYY-Www, e.g. 2026-W48")
    c.set_defaults(handler=cmd_report_summary)
    for name, text in (("late", "open tickets past their due time, with days late"),
                       ("unprocessed", "tickets a unit has not taken up yet")):
        c = rs.add_parser(name, help=text)
        outputs(c)
        c.add_argument("--unit")
        c.set_defaults(handler=cmd_report_list, list_kind=name)
    c = rs.add_parser("league", help="units ranked by on-time rate and median resolve time")
    outputs(c)
    when = c.add_mutually_exclusive_group(required=True)
    when.add_argument("--date")
    when.add_argument("--week")
    when.add_argument("--month", help="YYYY-MM")
    c.set_defaults(handler=cmd_report_league)
    c = rs.add_parser("send", help="mail one report now, through the mail outbox")
    c.add_argument("kind", choices=("daily", "weekly", "monthly", "quarterly"))
    c.add_argument("--tenant", required=True)
    c.add_argument("--date", type=dt.date.fromisoformat,
                   help="YYYY-MM-DD: a local day of the period (default: the last whole one)")
    c.add_argument("--to", action="append", help="recipient (repeat); default: the config's")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_report_send)


# ---- helpers ----------------------------------------------------------------------------------
class _Usage(Exception):
    """A bad argument: printed, exit code 2."""


def parse_actor(text: str) -> Any:
    """``ROLE:USER[:UNIT]`` as a domain Actor."""
    from callcenter.tickets.rules import Actor

    parts = text.split(":")
    if len(parts) not in (2, 3) or parts[0] not in ROLES or not parts[1]:
        raise _Usage(f"--as {text!r}: expected ROLE:USER[:UNIT] with ROLE one of "
                     f"{', '.join(ROLES)}")
    if parts[0] == "unit" and (len(parts) != 3 or not parts[2]):
        raise _Usage(f"--as {text!r}: a unit user needs the unit, e.g. unit:binh:so_y_te")
    return Actor(parts[1], cast(Any, parts[0]), parts[2] if len(parts) == 3 else None)


def _time(text: str | None, what: str, zone: str = DEFAULT_ZONE,
          *, date_ok: bool = False) -> dt.datetime | None:
    if text is None:
        return None
    try:
        if date_ok and len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time(0), ZoneInfo(zone))
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _Usage(f"{what} {text!r}: expected ISO 8601, e.g. 2026-11-23T10:00:00+07:00"
                     ) from None
    if value.tzinfo is None:
        raise _Usage(f"{what} {text!r}: give the offset, e.g. +07:00")
    return value


def _service(settings: Settings) -> Any:
    from callcenter.config.file import load_config
    from callcenter.mail.store import MailOutbox
    from callcenter.tickets.service import TicketService

    config = load_config(settings.config_path)
    # `ticket sweep` queues chase e-mails as the app's job does (the app's dispatcher sends).
    return TicketService(settings.database_url, lambda: config, files_dir(settings),
                         mail=MailOutbox(settings.database_url))


def _run(settings: Settings, body: Any) -> int:
    """Run body(service) with the exit-code conventions of the module docstring."""
    from sqlalchemy.exc import SQLAlchemyError

    from callcenter.tickets.config import TicketError

    try:
        svc = _service(settings)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return int(body(svc))
    except _Usage as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TicketError as e:
        print(f"refused: {e.id}: {e.message}", file=sys.stderr)
        return 1
    except SQLAlchemyError as e:
        print(f"error: ticket store unavailable ({str(e).splitlines()[0][:200]}); is the "
              "database migrated (`callcenter db upgrade`)?",
              file=sys.stderr)
        return 2
    finally:
        svc.close()


def _print_ticket(t: Any, now: dt.datetime, as_json: bool, actor: Any = None) -> None:
    from callcenter.tickets import deadlines as dl
    from callcenter.tickets.service import ticket_dict

    if as_json:
        print(json.dumps(ticket_dict(t, now), ensure_ascii=False))
        return
    left = dl.time_left(t, now)
    clock = ""
    if left is not None:
        hours = left.total_seconds() / 3600
        clock = f"  còn {hours:.1f} giờ" if hours >= 0 else f"  QUÁ HẠN {-hours:.1f} giờ"
    read_only = (actor is not None and actor.role == "unit" and t.unit != actor.unit)
    print(f"{t.code}  {t.state.value:<11} {t.field:<18} {t.unit or '-':<24} v{t.version}"
          f"  {dl.format_local(t.received_at, DEFAULT_ZONE)}{clock}"
          + ("  [chỉ xem]" if read_only else ""))


# ---- ticket commands --------------------------------------------------------------------------
def cmd_open(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        actor = parse_actor(args.actor)
        t = svc.open(args.tenant, actor, channel=args.channel, content=args.content,
                     field=args.field, place=args.place, citizen_name=args.name,
                     citizen_phone=args.phone, urgent=args.urgent, call_ids=args.call,
                     publishable=None if args.publishable is None else args.publishable == "yes",
                     at=_time(args.at, "--at"), answer=args.answer, faq_item=args.faq_item)
        _print_ticket(t, svc.clock(), args.json)
        return 0
    return _run(settings, body)


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        from callcenter.tickets.service import ticket_dict

        actor = parse_actor(args.actor)
        t = svc.get(args.code, actor)
        audit = svc.audit(args.code, actor)
        files = svc.attachments(args.code, actor)
        now = svc.clock()
        if args.json:
            print(json.dumps({"ticket": ticket_dict(t, now),
                              "attachments": [a.to_json_dict() for a in files],
                              "audit": [str(e) for e in audit]}, ensure_ascii=False))
            return 0
        _print_ticket(t, now, False)
        print(f"  {t.content}")
        if t.result:
            print(f"  kết quả: {t.result}")
        for a in files:
            print(f"  tệp {a.id}: {a.file_name} ({a.content_type}, {a.size} bytes) "
                  f"sha256 {a.sha256[:16]}")
        for e in audit:
            print(f"  {e}")
        return 0
    return _run(settings, body)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        actor = parse_actor(args.actor)
        found = svc.list(actor, tenant=args.tenant, state=args.state, unit=args.unit,
                         late=args.late, field=args.field,
                         since=_time(args.since, "--since", date_ok=True),
                         until=_time(args.until, "--until", date_ok=True),
                         limit=args.limit, offset=args.offset)
        now = svc.clock()
        for t in found:
            _print_ticket(t, now, args.json, actor)
        return 0
    return _run(settings, body)


def cmd_oversight(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        from callcenter.tickets.service import ticket_dict

        actor = parse_actor(args.actor)
        o = svc.oversight(actor, args.tenant, args.unit)
        now = svc.clock()
        if args.json:
            print(json.dumps({
                "tenant": o.tenant, "unit": o.unit, "total": o.total,
                "late_total": o.late_total, "by_state": dict(o.by_state),
                "by_holder": [{"unit": h.unit, "by_state": dict(h.by_state), "late": h.late,
                               "total": h.total} for h in o.by_holder],
                "late": [ticket_dict(t, now) for t in o.late]}, ensure_ascii=False))
            return 0
        print(f"Theo dõi của {o.unit} ({o.tenant}): {o.total} phiếu, {o.late_total} trễ hạn")
        for t in o.late:
            _print_ticket(t, now, False)
        print("Theo trạng thái: " + ", ".join(f"{k} {v}" for k, v in o.by_state.items()))
        for h in o.by_holder:
            print(f"  {h.unit or 'Tổng đài 1022':<28} {h.total:>5} phiếu  {h.late:>4} trễ hạn")
        return 0
    return _run(settings, body)


def _event(args: argparse.Namespace, svc: Any, actor: Any, code: str) -> Any:
    from callcenter.tickets import rules as tk
    from callcenter.tickets.routing import route

    at = _time(args.at, "--at") or svc.clock()

    def need(value: str | None, flag: str) -> str:
        if not value:
            raise _Usage(f"{args.event} needs {flag}")
        return value

    e = args.event
    if e == "forward":
        unit = args.unit
        if unit is None:
            current = svc.get(code, actor)
            unit = route(svc.policy(current.tenant), current.field, current.place)
            if unit is None:
                raise _Usage("the tenant has no units to forward to")
        return tk.Forward(at, actor, unit, args.note)
    if e == "accept":
        return tk.Accept(at, actor)
    if e == "resolve":
        return tk.Resolve(at, actor, need(args.result, "--result"), args.document)
    if e == "return":
        return tk.Return(at, actor, need(args.reason, "--reason"))
    if e == "close":
        return tk.Close(at, actor, args.reason)
    if e == "reopen":
        return tk.Reopen(at, actor, need(args.reason, "--reason"))
    if e == "answer":
        return tk.Answer(at, actor, need(args.answer, "--answer"), args.faq_item)
    if e == "reclassify":
        current = svc.get(code, actor)
        place = current.place if args.place is None else (None if args.place == "-"
                                                          else args.place)
        return tk.Reclassify(at, actor, args.field or current.field, place,
                             current.urgent if args.urgent is None else args.urgent)
    if e == "publish":
        return tk.Publish(at, actor, args.question, args.answer)
    if e == "decline":
        return tk.Decline(at, actor, need(args.reason, "--reason"))
    if e == "unpublish":
        return tk.SetPublishable(at, actor, False)
    if e == "remind":
        return tk.Remind(at, actor)
    return tk.LinkCall(at, actor, need(args.call, "--call"))


def cmd_act(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        actor = parse_actor(args.actor)
        event = _event(args, svc, actor, args.code)
        t = svc.act(args.code, actor, event, expected_version=args.expected_version)
        _print_ticket(t, svc.clock(), args.json)
        return 0
    return _run(settings, body)


def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.tickets.service import scrub

    def body(svc: Any) -> int:
        actor = parse_actor(args.actor)
        tickets = svc.review_list(actor, args.tenant, args.status, limit=args.limit)
        items = [{"code": t.code, "field": t.field, "unit": t.unit,
                  "answered_at": (t.resolved_at or t.closed_at).isoformat()
                  if (t.resolved_at or t.closed_at) else None,
                  "question": scrub(t.public_question or t.content, t.citizen_name,
                                    t.citizen_phone),
                  "answer": scrub(t.public_answer or t.result or "", t.citizen_name,
                                  t.citizen_phone),
                  "decline_reason": t.decline_reason} for t in tickets]
        if args.json:
            print(json.dumps({"status": args.status, "items": items}, ensure_ascii=False))
            return 0
        for it in items:
            print(f"{it['code']}  {it['field']:<18} {it['unit'] or '-':<24} "
                  f"{it['question'][:60]}")
        if not items:
            print(f"no tickets ({args.status})")
        return 0
    return _run(settings, body)


def cmd_attach(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        actor = parse_actor(args.actor)
        try:
            data = args.file.read_bytes()
        except OSError as e:
            raise _Usage(f"{args.file}: {e.strerror or e}") from None
        declared = args.type or mimetypes.guess_type(args.file.name)[0]
        a = svc.attach(args.code, actor, args.file.name, declared, data)
        if args.json:
            print(json.dumps(a.to_json_dict(), ensure_ascii=False))
        else:
            print(f"attached {a.id}: {a.file_name} ({a.content_type}, {a.size} bytes) sha256 "
                  f"{a.sha256}; resolve with --document {a.id}")
        return 0
    return _run(settings, body)


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        r = svc.sweep()
        if args.json:
            print(json.dumps({"late": [m.code for m in r.late],
                              "forward_late": [m.code for m in r.forward_late],
                              "reminded": list(r.reminded), "chased": list(r.chased),
                              "escalated": list(r.escalated), "failed": list(r.failed)},
                             ensure_ascii=False))
        else:
            for m in (*r.late, *r.forward_late):
                print(m)
            for code in r.reminded:
                print(f"reminded the unit of {code}")
            for code in r.chased:
                print(f"chased the late unit of {code}"
                      + (" and told its head and the province office"
                         if code in r.escalated else ""))
            for why in r.failed:
                print(f"reminder or chase failed: {why}")
            print(f"{len(r.late)} late, {len(r.forward_late)} forward-late, "
                  f"{len(r.reminded)} reminded, {len(r.chased)} chased, "
                  f"{len(r.escalated)} escalated")
        return 0
    return _run(settings, body)


# ---- report commands --------------------------------------------------------------------------
def _write(args: argparse.Namespace, tables: list[Any], csv_text: str) -> None:
    from callcenter.tickets.reports import xlsx_bytes

    if args.xlsx is not None:
        args.xlsx.write_bytes(xlsx_bytes(tables))
        print(f"wrote {args.xlsx}", file=sys.stderr)
    if args.csv is not None:
        args.csv.write_text(csv_text, encoding="utf-8-sig", newline="")
        print(f"wrote {args.csv}", file=sys.stderr)


def cmd_report_summary(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        from callcenter.tickets import reports as rp

        r = svc.reports
        s = (r.daily(args.tenant, args.date) if args.report_command == "daily"
             else r.weekly(args.tenant, args.week))
        _write(args, rp.summary_tables(s), rp.summary_csv(s))
        if args.json:
            print(json.dumps(s.to_json_dict(), ensure_ascii=False))
            return 0
        print(f"Tổng đài 1022 {s.tenant_name} - {s.period.describe()}")
        keys = rp.COUNT_KEYS
        print(f"{'':<40}" + "".join(f"{k[:11]:>12}" for k in keys))
        for row in s.rows():
            if row["group"] == "unit" and row["received"] == 0:
                continue
            label = {"total": "TỔNG", "unit": "đv", "field": "lv"}[row["group"]]
            print(f"{label + ' ' + row['name']:<40.40}" + "".join(f"{row[k]:>12}" for k in keys))
        return 0
    return _run(settings, body)


def cmd_report_list(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        from callcenter.tickets import reports as rp

        r = svc.reports
        kind = args.list_kind
        tenant = svc.tenant(args.tenant)
        rows = (r.late(args.tenant, unit=args.unit) if kind == "late"
                else r.unprocessed(args.tenant, unit=args.unit))
        now = svc.clock()
        table = rp.list_table(kind, tenant.name, rows, now, tenant.timezone)
        _write(args, [table], rp.table_csv(table))
        if args.json:
            print(json.dumps([x.to_json_dict() for x in rows], ensure_ascii=False))
            return 0
        print(table.title)
        for x in rows:
            local = x.received_at.astimezone(ZoneInfo(tenant.timezone))
            print(f"{x.unit_name[:28]:<28} {x.code:<18} {local:%d/%m/%Y} "
                  f"{x.days_late:>3} ngày  {x.content[:60]}")
        print(f"{len(rows)} phản ánh")
        return 0
    return _run(settings, body)


def cmd_report_send(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        from callcenter.mail.reports import send_report_now
        from callcenter.mail.store import MailOutbox
        from callcenter.store.migrate import upgrade_head

        upgrade_head(settings.database_url)
        box = MailOutbox(settings.database_url)
        try:
            queued, mail = send_report_now(box, svc.reports, svc.config(), args.tenant,
                                           args.kind, svc.clock(), day=args.date,
                                           to=tuple(args.to) if args.to else None)
        except (ValueError, LookupError) as e:
            raise _Usage(str(e)) from None
        finally:
            box.close()
        assert mail is not None
        if args.json:
            print(json.dumps(mail.to_json_dict(), ensure_ascii=False))
        else:
            print(f"mail {mail.id}: {mail.subject}")
            print(f"  to {', '.join(mail.to)}: {mail.status}"
                  + (f" ({mail.last_error})" if mail.last_error else ""))
        # Not sent yet (server unreachable): 2, the running app's dispatcher retries it;
        # refused for good (a bad address): 1.
        return 0 if mail.status == "sent" else 1 if mail.status == "failed" else 2
    return _run(settings, body)


def cmd_report_league(args: argparse.Namespace, settings: Settings) -> int:
    def body(svc: Any) -> int:
        from callcenter.tickets import reports as rp

        r = svc.reports
        period = r.period(args.tenant, date=args.date, week=args.week, month=args.month)
        rows = r.league(args.tenant, period)
        tenant = svc.tenant(args.tenant)
        table = rp.league_table(tenant.name, rows, period, svc.clock())
        _write(args, [table], rp.table_csv(table))
        if args.json:
            print(json.dumps([x.to_json_dict() for x in rows], ensure_ascii=False))
            return 0
        print(table.title)
        for x in rows:
            rate = f"{x.on_time_rate * 100:5.1f}%" if x.on_time_rate is not None else "    -"
            med = (f"{x.median_resolve_hours:7.2f} h" if x.median_resolve_hours is not None
                   else "      -")
            survey = (f"  hài lòng {x.satisfied}, chưa giải quyết {x.not_resolved}, chưa phản "
                      f"hồi {x.no_answer}" if x.satisfied + x.not_resolved + x.no_answer else "")
            print(f"{x.rank or '-':>3} {x.unit_name[:36]:<36} {x.assigned:>5} {rate} {med}"
                  + survey)
        return 0
    return _run(settings, body)
