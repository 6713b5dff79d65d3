"""`callcenter` command line: run the hotline, check and reload config, watch pools and calls."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import importlib
import json
import logging
import logging.handlers
import os
import queue
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from callcenter.cli_errors import EXIT_CODES_HELP, EXIT_INVALID, CommandError, explain
from callcenter.config.settings import Settings


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is written (tests swap it per test)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _LeanQueueHandler(logging.handlers.QueueHandler):
    """Hands the record itself to the log thread with its message made final (args merged, a
    traceback rendered), without the standard handler's copy and first formatting pass: the
    root's only handler, so no other handler sees the record after it (issue 20: a log line
    on the answer path cost ~19 µs of the event loop's CPU, now ~5)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            record.exc_info = None
        return record


_TRACEBACKS = logging.Formatter()
LOG_DRAIN_S = 0.02  # the log thread writes what is queued this often


class _PollingListener(logging.handlers.QueueListener):
    """Takes queued records every LOG_DRAIN_S instead of waiting on the queue: a waiting
    reader makes every log call wake it (a futex call and a thread switch competing for the
    GIL while a caller waits for the answer); lines reach the log at most 20 ms later."""

    def dequeue(self, block: bool) -> logging.LogRecord:
        while True:
            try:
                return self.queue.get_nowait()  # type: ignore[attr-defined,no-any-return]
            except queue.Empty:
                if not block:
                    raise
                try:
                    time.sleep(LOG_DRAIN_S)
                except OSError:
                    # Seen under libfaketime after a wall-clock step (the e2e clock tests):
                    # sleep failed with EINVAL, and the log thread died with it, every later
                    # line lost. Wait on the queue itself this time instead; never die.
                    return self.queue.get()  # type: ignore[no-any-return]


def _setup_logging(level: str) -> None:
    """Log lines are written by a thread: a slow terminal never delays answering a call."""
    # Nothing we log shows the calling function, thread or process: skip finding them
    # (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    stream = _Stderr()
    stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = _PollingListener(records, stream, respect_handler_level=True)
    listener.start()
    atexit.register(listener.stop)  # flushes what is queued at exit
    root = logging.getLogger()
    root.handlers[:] = [_LeanQueueHandler(records)]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.runtime.runner import run_all

    run_all(settings)
    return 0


def cmd_app(args: argparse.Namespace, settings: Settings) -> int:
    """Only the ARI app + HTTP, against an Asterisk and Redis that are already running."""
    from callcenter.redis_clients import RedisTarget, answers
    from callcenter.runtime.runner import run_app_until_signal

    redis_url = _redis_url(settings)
    target = RedisTarget.of(settings)  # REDIS_SENTINELS, when set, name the primary instead
    if not answers(target):
        print(f"error: Redis at {target} does not answer", file=sys.stderr)
        return 2
    asyncio.run(run_app_until_signal(settings, redis_url))  # migrates the database itself
    return 0


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.config.base import ConfigError
    from callcenter.config.file import load_config
    from callcenter.config.live import summary

    args.file = args.file or str(settings.config_path)
    try:
        config = load_config(Path(args.file))
    except ConfigError as e:
        print(f"invalid: {e}", file=sys.stderr)
        for extra in getattr(e, "errors", [])[1:]:
            print(f"invalid: {extra}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"invalid: {args.file}: {e}", file=sys.stderr)
        return 1
    print(f"ok: {args.file}: {summary(config)}")
    # Not an error (the service starts without them), but those operators cannot register.
    from callcenter.config.secrets import resolve_operator_passwords

    for problem in resolve_operator_passwords(config)[1]:
        print(f"warning: {problem}; this operator is left out of the PBX (in this "
              f"environment)", file=sys.stderr)
    return 0


def cmd_reload(args: argparse.Namespace, settings: Settings) -> int:
    try:
        pid = int(settings.pid_file.read_text().strip())
    except (OSError, ValueError):
        print(f"error: no running hotline service (no pid file {settings.pid_file})",
              file=sys.stderr)
        return 2
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmdline = ""
    if "callcenter" not in cmdline:
        # A stale pid file (crash) may name a pid now reused by another program.
        print(f"error: pid {pid} in {settings.pid_file} is not a running hotline service",
              file=sys.stderr)
        return 2
    os.kill(pid, signal.SIGHUP)
    print(f"reload requested (SIGHUP to pid {pid}); the log says whether it was accepted")
    return 0


def _redis_url(settings: Settings) -> str:
    return settings.redis_url or f"unix://{settings.private_redis_socket}"


def cmd_pool(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.config.file import load_config
    from callcenter.lines.redis import LinePool
    from callcenter.redis_clients import RedisTarget, async_client

    config = load_config(settings.config_path)

    async def collect() -> list[dict[str, Any]]:
        client = async_client(RedisTarget.of(settings))
        try:
            pool = LinePool(client, instance="cli", node=config.service.node)
            rows = []
            for t in config.tenants:
                use = await pool.use(t.id)
                rows.append({"tenant": t.id, "name": t.name, "shift": use.shift,
                             "lines": use.limit, "in_use": use.in_use})
            return rows
        finally:
            await client.aclose()

    rows = asyncio.run(collect())  # Redis unreachable: cli_errors explains it
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        print(f"{'tenant':<12} {'shift':<10} {'lines':>5} {'in use':>6}")
        for r in rows:
            lines = "-" if r["lines"] is None else r["lines"]
            print(f"{r['tenant']:<12} {r['shift'] or '-':<10} {lines:>5} {r['in_use']:>6}")
    return 0


def cmd_calls(args: argparse.Namespace, settings: Settings) -> int:
    from callcenter.store.records import CallRecordStore

    store = CallRecordStore(settings.database_url)
    try:
        records = store.last(args.last, tenant=args.tenant)
    finally:
        store.close()
    keys = ("id", "tenant", "dialled", "caller", "shift", "outcome", "arrived_at",
            "answered_at", "ended_at", "cause", "ivr_path", "operator", "queued_at",
            "bridged_at", "talk_ended_at", "wait_s", "talk_s", "wrap_up_s", "no_answers",
            "recording", "transfers")
    if args.json:
        print(json.dumps([{k: r.to_json_dict()[k] for k in keys} | {"pool_limit": r.pool_limit}
                          for r in records], ensure_ascii=False))
    else:
        for r in records:
            d = r.to_json_dict()
            print(f"{d['arrived_at']}  {d['tenant']:<8} {d['dialled']:<10} {d['caller']:<12} "
                  f"{d['shift'] or '-':<6} {d['outcome']:<10} {d['cause'] or ''}")
            if d["ivr_path"]:
                print("    ivr: " + " ".join(_ivr_step_text(step) for step in d["ivr_path"]))
            if d["queued_at"] or d["operator"]:
                print("    " + _operator_text(d))
            for t in d["transfers"]:
                print("    " + _transfer_text(t))
    return 0


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _operator_text(d: dict[str, Any]) -> str:
    """The operators' part, short: operator 101 wait 12.0s talk 65.2s wrap-up 10s ..."""
    parts = [f"operator: {d['operator'] or '-'}", f"wait {_seconds(d['wait_s'])}",
             f"talk {_seconds(d['talk_s'])}"]
    if d["wrap_up_s"] is not None:
        parts.append(f"wrap-up {d['wrap_up_s']}s")
    if d["no_answers"]:
        parts.append(f"no-answer {d['no_answers']}")
    if d["recording"]:
        parts.append(f"recording {d['recording']}")
    return " ".join(parts)


def _transfer_text(t: dict[str, Any]) -> str:
    """One transfer: transfer: <at> 101 -> unit (number) blind answered completed."""
    return (f"transfer: {t.get('at')} {t.get('by')} -> {t.get('unit')} ({t.get('number')}) "
            f"{t.get('kind')} {'answered' if t.get('answered') else 'not answered'} "
            f"{t.get('result')}" + (f" ticket {t['ticket']}" if t.get("ticket") else ""))


def _ivr_step_text(step: dict[str, Any]) -> str:
    """One IVR step, short: enter:main digit:1 faq:ab12 feedback:yes status:DN-…,DN-… ..."""
    value = step.get("digit") or step.get("answer") or step.get("faq") or step.get("node") or ""
    if step.get("codes"):  # status by phone: the ticket codes read out
        value = str(step["codes"]).replace(" ", ",")
    return f"{step['event']}:{value}" if value else str(step["event"])


def cmd_dial(args: argparse.Namespace, settings: Settings) -> int:
    try:
        import pjsua2  # noqa: F401 - only the `tools` extra installs it
    except ImportError:
        raise CommandError("pjsua2 is not installed: pip install 'hotline1022[tools]'",
                           "install the test tools extra (the softphone needs pjsua2)") from None
    from callcenter.config.file import load_config
    from callcenter.tools.softphone import parse_keys, place_calls

    config = load_config(settings.config_path)
    try:
        keys = parse_keys(args.keys or "")
    except ValueError as e:
        raise CommandError(f"--keys {e}", code=EXIT_INVALID) from None
    results = place_calls(
        f"{args.host or config.trunk.bind}:{args.port or config.trunk.port}", args.number,
        caller=args.caller, count=args.count, hold=args.seconds, keys=keys,
    )
    for r in results:
        print(json.dumps(r, ensure_ascii=False))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 (invalid input), like every other input error of `callcenter`."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message}\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"callcenter {version('hotline1022')}"
    except PackageNotFoundError:
        return "callcenter (not installed: run from a source tree)"


def _add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """--config and --debug on a parser; below the top their default is SUPPRESS, so an
    option given before the subcommand is not reset by the subcommand's parser."""
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument("--config", metavar="PATH", default=default,
                        help="the hotline config file (default: $HOTLINE_CONFIG, else "
                             "config/hotline.yaml)")
    parser.add_argument("--debug", action="store_true", default=False if top else default,
                        help="log at DEBUG and show the traceback of a failure")
    for action in parser._actions:  # every subcommand, however deep, takes them too
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_global_options(child, top=False)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="callcenter", description="Tổng đài 1022 hotline service",
                epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="bring up the whole hotline (Redis, DB, Asterisk, app)")
    sub.add_parser("app", help="run only the ARI app against a running PBX and Redis")
    c = sub.add_parser("check-config", help="validate a hotline.yaml without applying it")
    c.add_argument("file", nargs="?", help="the file to check (default: the --config file)")
    sub.add_parser("reload", help="ask the running service to reload its config")
    c = sub.add_parser("pool", help="line pools per tenant: shift, lines, in use")
    c.add_argument("--json", action="store_true")
    c = sub.add_parser("calls", help="latest call records")
    c.add_argument("--last", type=int, default=20)
    c.add_argument("--tenant")
    c.add_argument("--json", action="store_true")
    c = sub.add_parser("dial", help="place a test call from a softphone (pjsua2) to the trunk")
    c.add_argument("number", nargs="?", default="1022")
    c.add_argument("--caller", default="0909000111")
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--seconds", type=float, default=8.0)
    c.add_argument("--keys", help='keys to press after the answer, e.g. "1@2 2@5 1@9" '
                                  "(KEYS@SECONDS; RFC 2833)")
    c.add_argument("--host")
    c.add_argument("--port", type=int)
    for module in AREA_COMMANDS:
        importlib.import_module(module).register(sub)
    _add_global_options(p, top=True)
    return p


# Areas that bring their own subcommands: each module has ``register(sub)``, which adds its
# parsers and sets ``handler=fn(args, settings) -> int`` on them with ``set_defaults``.
AREA_COMMANDS: tuple[str, ...] = ("callcenter.ivr.cli", "callcenter.faq.cli",
                                  "callcenter.sms.cli", "callcenter.console.cli",
                                  "callcenter.tickets.cli", "callcenter.queue.cli",
                                  "callcenter.callbacks.cli", "callcenter.quality.cli",
                                  "callcenter.open311.cli",
                                  "callcenter.pbx.cli",
                                  "callcenter.store.db_cli", "callcenter.ops.cli",
                                  "callcenter.ops.install_cli", "callcenter.mail.cli",
                                  "callcenter.config.cli",
                                  "callcenter.cluster.cli")


COMMANDS = {
    "run": cmd_run, "app": cmd_app, "check-config": cmd_check_config, "reload": cmd_reload,
    "pool": cmd_pool, "calls": cmd_calls, "dial": cmd_dial,
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; a failure prints what is wrong and how to fix it (see cli_errors)."""
    args = build_parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if args.config:
        overrides["config_path"] = Path(args.config)  # same as HOTLINE_CONFIG, which it beats
    if args.debug:
        overrides["log_level"] = "DEBUG"
    settings: Settings | None = None
    try:
        settings = Settings.from_env(**overrides)
        _setup_logging(settings.log_level)
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return int(handler(args, settings))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - Ctrl-C included: every failure is explained
        if args.debug:
            traceback.print_exception(e, file=sys.stderr)
        explained = explain(e, settings)
        print("\n".join(explained.lines), file=sys.stderr)
        return explained.code


if __name__ == "__main__":
    sys.exit(main())
