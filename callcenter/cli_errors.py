"""What `callcenter` prints when a command fails: the problem, the fix, and an exit code.

Commands raise; `callcenter.cli.main` hands the exception to `explain` once, prints its few
lines (no traceback unless `--debug`) and exits with its code. A failure a user can fix that
has no type of its own is raised as `CommandError(problem, fix, code)`.

Known exception types are matched by module and class name, and only when their module is
already imported (an exception cannot come from a module nobody loaded): the error path
imports nothing heavy and this module depends on no adapter.
"""

from __future__ import annotations

import errno
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callcenter.config.settings import Settings

EXIT_OK = 0
EXIT_INVALID = 1  # invalid config or input (a file, a value, the command line): fix it
EXIT_UNAVAILABLE = 2  # something it needs is missing or unreachable: service, tool, port, right
EXIT_INTERNAL = 3  # an unexpected error, a bug: `--debug` shows the traceback to report
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT (128 + 2)

EXIT_CODES_HELP = """\
exit codes:
  0    done
  1    invalid config or input: the message names the file, key or value to fix
  2    something needed is unavailable: Redis, the database, Asterisk, a port, a program,
       a file or a permission; the message says which and how to fix it
  3    unexpected error (a bug): run again with --debug and report the traceback
  130  interrupted (Ctrl-C)
"""

# Programs the hotline runs and the Debian package that has each (`make deps` installs them).
DEBIAN_PACKAGE = {
    "espeak-ng": "espeak-ng", "sox": "sox", "redis-server": "redis-server",
    "debootstrap": "debootstrap", "bearerbox": "kannel", "smsbox": "kannel",
    "sipp": "sip-tester", "pg_dump": "postgresql-client", "psql": "postgresql-client",
    "systemd-analyze": "systemd", "useradd": "passwd", "chroot": "coreutils",
    "asterisk": "asterisk",
}

_MAX_LINES = 15  # a log tail carried by an error is cut to its last lines


class CommandError(Exception):
    """A failure the user can fix: what is wrong, how to fix it, and the exit code."""

    def __init__(self, problem: str, fix: str | None = None, code: int = EXIT_UNAVAILABLE):
        super().__init__(problem)
        self.problem, self.fix, self.code = problem, fix, code


@dataclass(frozen=True)
class Explained:
    """The exit code and the lines to print for one failure."""

    code: int
    lines: tuple[str, ...]


def _is(exc: BaseException, module: str, *names: str) -> bool:
    """True when exc is an instance of module.Name for one of names (module already loaded)."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return False
    types = tuple(t for n in names if isinstance(t := getattr(loaded, n, None), type))
    return bool(types) and isinstance(exc, types)


def _tail(text: str) -> list[str]:
    lines = [line for line in text.strip().splitlines() if line.strip()] or [text.strip()]
    if len(lines) > _MAX_LINES:
        lines = [lines[0], f"  ... ({len(lines) - _MAX_LINES} lines left out)",
                 *lines[-(_MAX_LINES - 1):]]
    return lines


def _first(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _safe_db_url(settings: Settings | None) -> str:
    if settings is None:
        return "DATABASE_URL"
    from callcenter.store.urls import shown_url

    return shown_url(settings.database_url)


def _redis_url(settings: Settings | None) -> str:
    if settings is None:
        return "REDIS_URL"
    if settings.redis_sentinels:
        from callcenter.redis_clients import RedisTarget

        return str(RedisTarget.of(settings))
    return settings.redis_url or f"unix://{settings.private_redis_socket} (private Redis)"


def _error(code: int, problem: str | list[str], fix: str | None) -> Explained:
    lines = problem if isinstance(problem, list) else _tail(problem)
    out = [f"error: {lines[0]}", *(f"  {line}" for line in lines[1:])]
    if fix:
        out.append(f"fix: {fix}")
    return Explained(code, tuple(out))


def _config_error(exc: BaseException) -> Explained:
    errors = list(getattr(exc, "errors", None) or [exc])
    shown = [e.line_text() if hasattr(e, "line_text") else str(e) for e in errors[:10]]
    if len(errors) > 10:
        shown.append(f"... and {len(errors) - 10} more")
    out = ["error: invalid config:", *(f"  {line}" for line in shown)]
    if any(getattr(e, "key", None) == "<file>" for e in errors):
        out.append("fix: name the config file with --config PATH (or HOTLINE_CONFIG); "
                   "`callcenter check-config FILE` checks a file")
    else:
        out.append("fix: correct the file (`callcenter check-config FILE` checks it), then "
                   "run the command again; a running hotline keeps its last good config")
    return Explained(EXIT_INVALID, tuple(out))


def _os_error(exc: OSError, settings: Settings | None) -> Explained:
    filename = exc.filename
    what = exc.strerror or str(exc)
    if filename is not None and settings is not None and Path(str(filename)) == \
            Path(settings.config_path):
        return _error(EXIT_INVALID, f"config file {filename}: {what}",
                      "name the config file with --config PATH (or HOTLINE_CONFIG)")
    if isinstance(exc, FileNotFoundError) and isinstance(filename, str) and "/" not in filename \
            and shutil.which(filename) is None:
        package = DEBIAN_PACKAGE.get(filename)
        return _error(EXIT_UNAVAILABLE, f"the program {filename!r} is not installed",
                      f"apt-get install {package}" if package
                      else "install it (`make deps` installs what the hotline needs)")
    if isinstance(exc, PermissionError):
        return _error(EXIT_UNAVAILABLE, f"permission denied: {filename or what}",
                      "run as the account that owns it (the service user `hotline1022`; root "
                      "for `install` and `pbx render`), or correct its owner and mode")
    if exc.errno in (errno.EADDRINUSE,):
        return _error(EXIT_UNAVAILABLE, f"address already in use: {what}",
                      "stop what holds the port (`ss -ltnup`), or change the port in the config")
    if exc.errno in (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH):
        return _error(EXIT_UNAVAILABLE, f"a service did not answer: {what}",
                      "start it, or correct its address in the environment or config")
    return _error(EXIT_UNAVAILABLE, f"{what}: {filename}" if filename else what, None)


def _not_migrated(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", None) or exc)
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _database_error(exc: BaseException, settings: Settings | None) -> Explained:
    url = _safe_db_url(settings)
    if _not_migrated(exc):
        return _error(EXIT_UNAVAILABLE, f"the database {url} has not been migrated "
                      f"({_first(exc)})", "run `callcenter db upgrade`")
    return _error(EXIT_UNAVAILABLE, f"the database {url} is unreachable: {_first(exc)}",
                  "check DATABASE_URL and that the database server runs (PostgreSQL: "
                  "`systemctl start postgresql`; SQLite: its folder exists and this user may "
                  "write it), then `callcenter db upgrade`")


def explain(exc: BaseException, settings: Settings | None = None) -> Explained:
    """The exit code and the few lines that tell the user what failed and how to fix it."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return explain(exc.exceptions[0], settings)
    if isinstance(exc, KeyboardInterrupt):
        return Explained(EXIT_INTERRUPTED, ("interrupted",))
    if isinstance(exc, CommandError):
        return _error(exc.code, exc.problem, exc.fix)
    if _is(exc, "callcenter.config.base", "ConfigError"):
        return _config_error(exc)
    if _is(exc, "callcenter.config.settings", "RedisSettingsError"):
        return _error(EXIT_INVALID, f"invalid Redis setting: {exc}",
                      "correct that environment variable (docs/sentinel.md)")
    if _is(exc, "callcenter.sms.config", "SmsSettingsError"):
        return _error(EXIT_INVALID, f"invalid SMS setting: {exc}",
                      "correct that environment variable (see hotline.env)")
    if _is(exc, "callcenter.config.secrets", "OperatorSecretError"):
        return _error(EXIT_INVALID, f"missing or unusable secret: {exc}",
                      "set it where the config says (operators.env or the secret file)")
    if _is(exc, "callcenter.runtime.redis_server", "RedisUnavailable"):
        return _error(EXIT_UNAVAILABLE, str(exc),
                      "start Redis (`systemctl start redis-server`) or set REDIS_URL to one "
                      "that answers")
    if _is(exc, "redis.exceptions", "ConnectionError", "TimeoutError") and settings is not None \
            and settings.redis_sentinels:
        return _error(EXIT_UNAVAILABLE, f"Redis at {_redis_url(settings)} is unreachable: "
                      f"{_first(exc)}",
                      "start the sentinels and their primary, or correct REDIS_SENTINELS / "
                      "REDIS_SENTINEL_MASTER (docs/sentinel.md)")
    if _is(exc, "redis.exceptions", "ConnectionError", "TimeoutError"):
        return _error(EXIT_UNAVAILABLE, f"Redis at {_redis_url(settings)} is unreachable: "
                      f"{_first(exc)}",
                      "start the hotline (`callcenter run`, which starts a private Redis) or "
                      "Redis itself, or set REDIS_URL to a Redis that answers")
    if _is(exc, "sqlalchemy.exc", "ArgumentError", "NoSuchModuleError"):
        return _error(EXIT_INVALID, f"DATABASE_URL is not usable: {_first(exc)}",
                      "write it as sqlite:///PATH or postgresql://USER@HOST/DB")
    if _is(exc, "sqlalchemy.exc", "OperationalError", "InterfaceError") or (
            _is(exc, "sqlalchemy.exc", "ProgrammingError") and _not_migrated(exc)):
        return _database_error(exc, settings)
    if _is(exc, "callcenter.pbx.process", "PbxStartError"):
        fix = ("stop the earlier hotline or Asterisk that holds it (`pgrep -a asterisk`), or "
               "change the port in the config" if "in use" in str(exc)
               else "read Asterisk's lines above; its full log is in the instance's log/ folder")
        return _error(EXIT_UNAVAILABLE, str(exc), fix)
    if _is(exc, "callcenter.pbx.install", "ProvisionError"):
        return _error(EXIT_UNAVAILABLE, f"Asterisk is not available: {exc}", None)
    if _is(exc, "callcenter.sms.kannel", "KannelUnavailable", "KannelStartError"):
        return _error(EXIT_UNAVAILABLE, f"SMS gateway (Kannel): {exc}",
                      "install Debian's kannel (`make deps`), or run without SMS "
                      "(HOTLINE_SMS=0: texts wait in the outbox)")
    if _is(exc, "callcenter.pbx.prompts", "PromptError"):
        return _error(EXIT_UNAVAILABLE, f"prompts: {exc}", None)
    if _is(exc, "callcenter.phones.ami", "AmiUnavailable", "AmiLoginRefused"):
        return _error(EXIT_UNAVAILABLE, f"Asterisk's AMI: {exc}",
                      "is the hotline running? (`callcenter run`, or its systemd units)")
    if _is(exc, "callcenter.ops.processes", "AlreadyRunning") or _is(
            exc, "callcenter.ops.accounts", "AccountError") or _is(
            exc, "callcenter.runtime.runner", "AppCrashLoop"):
        return _error(EXIT_UNAVAILABLE, str(exc), None)
    if isinstance(exc, OSError):
        return _os_error(exc, settings)
    return _error(EXIT_INTERNAL, f"unexpected {type(exc).__name__}: {_first(exc)}",
                  "run the command again with --debug for the traceback, and report it")
