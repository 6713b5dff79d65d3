"""`callcenter backup` and `callcenter restore`: the database, recordings, attachments, journal,
config (and, asked for, secrets) in one checked folder.

A backup is a folder ``DIR/hotline1022-backup-YYYYMMDDTHHMMSSZ/`` (not a .tar.gz): off-site
copy tools (rsync, restic) then send only new recordings, a restore reads files in place with
no room for an unpacked copy, and ``manifest.json`` names any damaged file by its own path.
It is written under a ``.partial`` name and renamed when complete, so a folder with the final
name is always whole. Folders 0700, files 0600: it holds citizens' voices and numbers.

Layout::

    manifest.json          format, version, created_at (UTC), database kind and Alembic
                           revision, every file with sha256 and size
    database/hotline.db    SQLite, through the online backup API (safe while the app writes)
    database/hotline.pgdump  PostgreSQL, ``pg_dump --format=custom``
    journal/  recordings/  ticket-files/  config/ (hotline.yaml, its ivr files)  sounds/
    secrets/               only with --with-secrets: secrets.env, operators' secret files,
                           operators.env and hotline.env next to the config

Order, so that nothing is lost between the parts: the journal is copied before the database
is dumped (a record moved from the journal into the database meanwhile is then in one of the
two; a record in both is written once, the primary key decides); recordings and attachments
after the dump (every file a dumped row names exists by then).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
import yaml

from callcenter.cli_errors import EXIT_INVALID, CommandError
from callcenter.config.settings import Settings
from callcenter.ops.files import write_atomic
from callcenter.store.urls import normalise_url, shown_url, sqlite_file

FORMAT = "hotline1022-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PREFIX = "hotline1022-backup-"
SQLITE_NAME = "database/hotline.db"
PGDUMP_NAME = "database/hotline.pgdump"
CHUNK = 1024 * 1024
# Env files of the production layout (/etc/hotline1022/): credentials, so secrets only.
SECRET_ENV_FILES = ("operators.env", "hotline.env")


@dataclass(frozen=True)
class Places:
    """Where each part of the hotline's state lives on this machine (what is backed up from,
    and restored to)."""

    database_url: str
    recordings: Path | None  # None: no PBX instance here (nothing recorded yet)
    ticket_files: Path
    journal: Path
    config_path: Path
    sounds: Path
    secrets_file: Path

    @classmethod
    def of(cls, settings: Settings, recordings: Path | None = None) -> Places:
        """The places the settings name; recordings located without starting anything."""
        if recordings is None:
            from callcenter.recordings.purge import locate_recordings

            recordings = locate_recordings(settings)
        return cls(database_url=settings.database_url, recordings=recordings,
                   ticket_files=settings.state_dir / "ticket-files",
                   journal=settings.journal_dir, config_path=settings.config_path,
                   sounds=settings.sounds_override, secrets_file=settings.secrets_file)

    @property
    def config_dir(self) -> Path:
        """The folder of the config file (IVR files and relative secret files are there)."""
        return self.config_path.resolve().parent


@dataclass
class _Writer:
    """Files going into the backup folder, with their checksums."""

    root: Path
    files: list[dict[str, Any]] = field(default_factory=list)

    def folder(self, rel: str) -> Path:
        path = self.root / rel
        for parent in reversed([path, *path.relative_to(self.root).parents]):
            target = self.root / parent
            if not target.exists():
                target.mkdir(mode=0o700)
                os.chmod(target, 0o700)
        return path

    def add_file(self, src: Path, rel: str) -> None:
        """Copy ``src`` to ``rel`` in the backup, hashing on the way."""
        dest = self.folder(str(Path(rel).parent)) / Path(rel).name
        digest = hashlib.sha256()
        size = 0
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with src.open("rb") as fin, os.fdopen(fd, "wb") as fout:
            while chunk := fin.read(CHUNK):
                digest.update(chunk)
                fout.write(chunk)
                size += len(chunk)
        self.files.append({"path": rel, "sha256": digest.hexdigest(), "size": size})

    def add_written(self, rel: str) -> None:
        """Record a file something else wrote into the backup (a dump)."""
        path = self.root / rel
        os.chmod(path, 0o600)
        self.files.append({"path": rel, "sha256": sha256_of(path),
                           "size": path.stat().st_size})


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tree(folder: Path | None) -> list[tuple[Path, str]]:
    """Every regular file under ``folder`` with its relative name (none if it is missing);
    temporary files of writes in progress are left out."""
    if folder is None or not folder.is_dir():
        return []
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.startswith(".") and name.endswith(".tmp"):
                continue  # the journal's and the ticket service's half-written files
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                out.append((path, path.relative_to(folder).as_posix()))
    return out


def _copy_tree(w: _Writer, folder: Path | None, prefix: str, err: TextIO) -> int:
    """Copy a folder's files under ``prefix``; progress on ``err`` for long copies."""
    from callcenter.tools.progress import Progress

    files = _tree(folder)
    total = sum(p.stat().st_size for p, _ in files)
    print(f"backup: {prefix}: {len(files)} file(s), {total / 1e6:.1f} MB", file=err)
    with Progress(prefix, len(files), stream=err) as progress:
        for path, rel in files:
            try:
                w.add_file(path, f"{prefix}/{rel}")
            except FileNotFoundError:
                continue  # deleted meanwhile (retention, a journal flush): not part of it
            progress.advance()
    return len(files)


# ---- the database ------------------------------------------------------------------------


def database_kind(database_url: str) -> str:
    """``sqlite`` or ``postgresql`` (anything else is refused)."""
    backend = normalise_url(database_url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise CommandError(f"cannot back up a {backend} database ({shown_url(database_url)})",
                           "use SQLite or PostgreSQL (DATABASE_URL)", code=EXIT_INVALID)
    return backend


def _sqlite_path(database_url: str) -> Path:
    path = sqlite_file(normalise_url(database_url))
    if path is None:
        raise CommandError(f"{database_url}: an in-memory SQLite database cannot be backed up",
                           "set DATABASE_URL to the database file", code=EXIT_INVALID)
    return path


def _revision_of_sqlite(path: Path) -> str | None:
    con = sqlite3.connect(path)
    try:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    return None if row is None else str(row[0])


def _dump_sqlite(database_url: str, dest: Path) -> str | None:
    """A consistent copy through SQLite's online backup API; returns its Alembic revision."""
    src_path = _sqlite_path(database_url)
    if not src_path.exists():
        raise CommandError(f"no database at {src_path} (DATABASE_URL)",
                           "check DATABASE_URL / HOTLINE_STATE, or run `callcenter db upgrade` "
                           "to create it")
    src = sqlite3.connect(f"{src_path.resolve().as_uri()}?mode=ro", uri=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    dst = sqlite3.connect(dest)
    try:
        # Pages in steps: the app's writer is never blocked for the whole copy.
        src.backup(dst, pages=1024)
        dst.execute("PRAGMA journal_mode=DELETE")  # one standalone file, no -wal beside it
    finally:
        dst.close()
        src.close()
    return _revision_of_sqlite(dest)


def libpq_args(database_url: str) -> tuple[list[str], dict[str, str]]:
    """``--host/--port/--username/--dbname`` and the environment (PGPASSWORD, PGSSLMODE ...)
    for pg_dump/pg_restore: the password never appears on a command line."""
    url = normalise_url(database_url)
    query = {k: v for k, v in url.query.items() if isinstance(v, str)}
    args: list[str] = []
    host = url.host or query.get("host")
    if host:
        args += ["--host", host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    args += ["--dbname", url.database or "postgres"]
    env: dict[str, str] = {}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    for key, var in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"),
                     ("sslcert", "PGSSLCERT"), ("sslkey", "PGSSLKEY"),
                     ("connect_timeout", "PGCONNECT_TIMEOUT"),
                     ("application_name", "PGAPPNAME")):
        if key in query:
            env[var] = query[key]
    return args, env


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CommandError(f"{name} is not installed (needed for a PostgreSQL database)",
                           "apt-get install postgresql-client (of the server's major version "
                           "or newer)")
    return path


def _major_of(tool: str) -> int:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"\)\s+(\d+)", out) or re.search(r"(\d+)\.", out)
    return int(m.group(1)) if m else 0


def _pg_facts(database_url: str) -> tuple[int, str | None]:
    """The server's major version and the database's Alembic revision."""
    engine = sa.create_engine(normalise_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            version = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
            revision = None
            if sa.inspect(conn).has_table("alembic_version"):
                revision = conn.execute(
                    sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    return version // 10000, None if revision is None else str(revision)


def _run_pg(argv: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise CommandError(f"{what} failed (exit {proc.returncode}): {tail}",
                           "check DATABASE_URL, that the server answers and the user's rights")


def _dump_postgres(database_url: str, dest: Path) -> str | None:
    """``pg_dump --format=custom`` into ``dest``; returns the Alembic revision."""
    pg_dump = _pg_tool("pg_dump")
    server, revision = _pg_facts(database_url)
    client = _major_of(pg_dump)
    if client < server:
        raise CommandError(
            f"pg_dump {client} is older than the PostgreSQL {server} server at "
            f"{shown_url(database_url)}: it cannot dump it",
            f"install postgresql-client-{server} (PostgreSQL's apt repository) and put its "
            f"pg_dump first on PATH")
    args, env = libpq_args(database_url)
    _run_pg([pg_dump, "--format=custom", "--file", str(dest), *args], env, "pg_dump")
    return revision


# ---- backup ------------------------------------------------------------------------------


def _ivr_files(config_path: Path) -> list[Path]:
    """The IVR files the config names (``ivr: FILE.yaml``) and ``ivr-*.yaml`` beside it."""
    base = config_path.resolve().parent
    found = set(base.glob("ivr-*.yaml")) | set(base.glob("ivr-*.yml"))
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        data = None
    tenants = data.get("tenants") if isinstance(data, dict) else None
    for tenant in tenants if isinstance(tenants, list) else []:
        if isinstance(tenant, dict) and isinstance(tenant.get("ivr"), str):
            found.add((base / tenant["ivr"]).resolve())
    return sorted(p for p in found if p.is_file())


def _secret_sources(places: Places) -> tuple[list[tuple[Path, str]], dict[str, str]]:
    """Secret files (with their place in the backup) and environment values to keep."""
    files: list[tuple[Path, str]] = []
    if places.secrets_file.is_file():
        files.append((places.secrets_file, "secrets/secrets.env"))
    base = places.config_dir
    env_text = ""
    for name in SECRET_ENV_FILES:
        if (base / name).is_file():
            files.append((base / name, f"secrets/config/{name}"))
            env_text += (base / name).read_text(errors="replace")
    environment: dict[str, str] = {}
    try:
        from callcenter.config.file import load_config

        config = load_config(places.config_path)
    except Exception:  # an invalid config still gets its files backed up
        return files, environment
    for tenant in config.tenants:
        for op in tenant.operators.operators:
            ref = op.secret
            if ref.kind == "file":
                path = Path(ref.name)
                path = path if path.is_absolute() else base / path
                if not path.is_file():
                    continue
                rel = _relative_to(path.resolve(), base)
                files.append((path, f"secrets/config/{rel}" if rel
                              else f"secrets/absolute/{path.resolve().as_posix().lstrip('/')}"))
            elif ref.name in os.environ and not re.search(
                    rf"^\s*{re.escape(ref.name)}\s*=", env_text, re.M):
                environment[ref.name] = os.environ[ref.name]
    return files, environment


def _relative_to(path: Path, base: Path) -> str | None:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return None


def _app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hotline1022")
    except PackageNotFoundError:
        return "source tree"


def backup(places: Places, to: Path, *, with_secrets: bool = False,
           now: dt.datetime | None = None, err: TextIO | None = None) -> Path:
    """Write a new backup folder under ``to``; return its path."""
    err = err or sys.stderr
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    kind = database_kind(places.database_url)
    to.mkdir(parents=True, exist_ok=True)
    name = PREFIX + now.strftime("%Y%m%dT%H%M%SZ")
    final = to / name
    if final.exists():
        raise CommandError(f"{final} already exists", "wait a second and run it again")
    partial = to / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    os.chmod(partial, 0o700)
    w = _Writer(partial)
    try:
        _copy_tree(w, places.journal, "journal", err)
        w.folder("database")
        print(f"backup: database ({kind}, {shown_url(places.database_url)})", file=err)
        if kind == "sqlite":
            revision = _dump_sqlite(places.database_url, partial / SQLITE_NAME)
            w.add_written(SQLITE_NAME)
        else:
            revision = _dump_postgres(places.database_url, partial / PGDUMP_NAME)
            w.add_written(PGDUMP_NAME)
        if places.recordings is None:
            print("backup: recordings: no PBX instance folder on this machine, none to copy",
                  file=err)
        _copy_tree(w, places.recordings, "recordings", err)
        _copy_tree(w, places.ticket_files, "ticket-files", err)
        config_files = []
        if places.config_path.is_file():
            w.add_file(places.config_path, f"config/{places.config_path.name}")
            config_files.append(f"config/{places.config_path.name}")
        for ivr in _ivr_files(places.config_path):
            rel = _relative_to(ivr, places.config_dir)
            if rel is None or rel == places.config_path.name:
                print(f"backup: warning: {ivr} is outside {places.config_dir}: not included",
                      file=err)
                continue
            w.add_file(ivr, f"config/{rel}")
        _copy_tree(w, places.sounds, "sounds", err)
        environment: dict[str, str] = {}
        if with_secrets:
            secret_files, environment = _secret_sources(places)
            for path, rel in secret_files:
                w.add_file(path, rel)
            if environment:
                env_path = w.folder("secrets") / "environment.env"
                fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write("# Operators' passwords the config takes from the environment\n")
                    f.writelines(f"{k}={v}\n" for k, v in sorted(environment.items()))
                w.add_written("secrets/environment.env")
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION, "app_version": _app_version(),
            "created_at": now.isoformat(),
            "database": {"kind": kind, "file": SQLITE_NAME if kind == "sqlite" else PGDUMP_NAME,
                         "alembic_revision": revision},
            "config_file": config_files[0] if config_files else None,
            "with_secrets": with_secrets,
            "files": w.files,
        }
        fd = os.open(partial / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
            f.write("\n")
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    total = sum(f["size"] for f in w.files)
    print(f"backup: done: {final} ({len(w.files)} files, {total / 1e6:.1f} MB"
          f"{', with secrets' if with_secrets else ', without secrets'})", file=err)
    return final


# ---- restore -----------------------------------------------------------------------------


def read_manifest(source: Path) -> dict[str, Any]:
    """The backup's manifest; refused when missing or of an unknown format."""
    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandError(f"{source} is not a hotline backup: no {MANIFEST} in it",
                           "give the folder `callcenter backup` wrote "
                           f"({PREFIX}...)", code=EXIT_INVALID) from None
    except (OSError, ValueError) as e:
        raise CommandError(f"{path}: unreadable ({e})", "use another backup",
                           code=EXIT_INVALID) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CommandError(f"{path}: not a hotline backup manifest", "use another backup",
                           code=EXIT_INVALID)
    if manifest.get("version") != FORMAT_VERSION:
        raise CommandError(f"{path}: backup format version {manifest.get('version')!r}, this "
                           f"callcenter reads version {FORMAT_VERSION}",
                           "restore it with the callcenter version that wrote it "
                           f"({manifest.get('app_version')})", code=EXIT_INVALID)
    return manifest


# What each part of a backup may hold: names are checked before anything is restored, so a
# backup written by another account cannot place, say, a hotline.env (root's units' environment).
_CONFIG_SUFFIXES = (".yaml", ".yml")
_SECRET_NAMES = ("secrets.env", "environment.env", "operators.env")


def _allowed(rel: str) -> None:
    """Refuse a path a `callcenter backup` never writes (each part holds its own kind)."""
    section, _, rest = rel.partition("/")
    parts = Path(rest).parts
    ok = bool(parts) and ".." not in parts
    if section == "config":
        ok = ok and Path(rest).suffix in _CONFIG_SUFFIXES
    elif section == "secrets":
        sub, _, tail = rest.partition("/")
        ok = ok and (rest in _SECRET_NAMES or sub in ("config", "absolute") and bool(tail))
    if not ok:
        raise CommandError(f"refused backup: {MANIFEST} names {rel!r}, which a hotline backup "
                           f"never holds", "use a backup written by `callcenter backup`",
                           code=EXIT_INVALID)


def _named_secret_files(places: Places) -> set[Path]:
    """Operators' secret files that the config in place names (absolute paths)."""
    from callcenter.config.file import load_config

    try:
        config = load_config(places.config_path)
    except Exception:
        return set()
    base = places.config_path.parent
    return {(Path(op.secret.name) if Path(op.secret.name).is_absolute()
             else base / op.secret.name).resolve()
            for t in config.tenants for op in t.operators.operators if op.secret.kind == "file"}


def verify(source: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is there with its size and checksum, else refuse."""
    for entry in manifest["files"]:
        rel = str(entry["path"])
        path = source / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise CommandError(f"damaged backup: {MANIFEST} names {rel!r}, outside the backup",
                               "use another backup", code=EXIT_INVALID)
        if path.is_symlink() or any(p.is_symlink() for p in path.parents
                                     if p.is_relative_to(source) and p != source):
            # A link would make root copy whatever it points at (/etc/shadow, say) into place.
            raise CommandError(f"refused backup: {rel} in {source} is a symbolic link",
                               "use a backup written by `callcenter backup`", code=EXIT_INVALID)
        if not path.is_file():
            raise CommandError(f"damaged backup: {rel} is missing from {source}",
                               "use another backup (or copy it again from its origin)",
                               code=EXIT_INVALID)
        if path.stat().st_size != entry["size"] or sha256_of(path) != entry["sha256"]:
            raise CommandError(f"damaged backup: {rel} in {source} differs from its checksum "
                               f"in {MANIFEST}",
                               "use another backup (or copy it again from its origin)",
                               code=EXIT_INVALID)


def service_pid(settings: Settings) -> int | None:
    """The pid of a running hotline app (its pid file names a live `callcenter`), or None."""
    try:
        pid = int(settings.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    return pid if "callcenter" in cmdline and pid != os.getpid() else None


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    from callcenter.store.migrate import alembic_config

    try:
        found = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(revision)
    except Exception:  # alembic.util.CommandError: unknown revision
        return False
    return found is not None


def _database_has_rows(database_url: str) -> bool:
    url = normalise_url(database_url)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return False
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                if table == "alembic_version":
                    continue
                t = sa.table(table)
                if conn.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first():
                    return True
    finally:
        engine.dispose()
    return False


def _non_empty(places: Places) -> list[str]:
    """What restoring would overwrite: a database with rows, folders with files."""
    found = []
    if _database_has_rows(places.database_url):
        found.append(f"the database {shown_url(places.database_url)} has rows")
    for label, folder in (("recordings", places.recordings),
                          ("ticket attachments", places.ticket_files),
                          ("journal", places.journal)):
        if _tree(folder):
            found.append(f"{label} in {folder}")
    return found


def _mkdirs(folder: Path) -> None:
    """Create missing folders like their existing parent (owner, group; 0750)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o750)
        if os.geteuid() == 0:
            st = d.parent.stat()
            os.chown(d, st.st_uid, st.st_gid)


def _place(src: Path, dest: Path, *, mode: int = 0o640) -> None:
    """Copy ``src`` over ``dest`` atomically; an existing file keeps its owner and mode, a new
    one takes the folder's owner and group (root) and ``mode``."""
    _mkdirs(dest.parent)
    before = dest.stat() if dest.exists() else None
    keep = before or dest.parent.stat()
    # Never through a name another account could plant in a folder it owns (ops.files).
    write_atomic(dest, src.read_bytes(), before.st_mode & 0o7777 if before else mode,
                 owner=(keep.st_uid, keep.st_gid) if os.geteuid() == 0 else None)


def _restore_sqlite(file: Path, database_url: str) -> None:
    target = _sqlite_path(database_url)
    for suffix in ("-wal", "-shm", "-journal"):  # the old file's, meaningless for the new one
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    _place(file, target)


def _restore_postgres(file: Path, database_url: str) -> None:
    pg_restore = _pg_tool("pg_restore")
    args, env = libpq_args(database_url)
    # One transaction: a failed restore leaves the database as it was. No owner and no
    # grants: the restoring user owns what it creates (roles differ between servers).
    _run_pg([pg_restore, "--clean", "--if-exists", "--no-owner", "--no-acl",
             "--single-transaction", "--exit-on-error", *args, str(file)], env, "pg_restore")


@contextlib.contextmanager
def _step(err: TextIO, what: str) -> Iterator[None]:
    print(f"restore: {what}", file=err)
    yield


def restore(source: Path, places: Places, settings: Settings, *, force: bool = False,
            now: dt.datetime | None = None, err: TextIO | None = None) -> dict[str, Any]:
    """Check the backup, then put everything back and migrate the database to head."""
    from callcenter.store.migrate import upgrade_head

    err = err or sys.stderr
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    manifest = read_manifest(source)
    verify(source, manifest)
    print(f"restore: {source}: {len(manifest['files'])} files verified", file=err)
    pid = service_pid(settings)
    if pid is not None and not force:
        raise CommandError(f"the hotline service is running (pid {pid}, {settings.pid_file})",
                           "stop it first (systemctl stop hotline1022, or Ctrl-C `make run`), "
                           "or give --force")
    kind = manifest["database"]["kind"]
    revision = manifest["database"].get("alembic_revision")
    if revision is not None and not _known_revision(str(revision)):
        raise CommandError(f"the backup's database is at migration {revision}, which this "
                           f"callcenter does not know (it is newer)",
                           f"restore it with callcenter {manifest.get('app_version')} or newer",
                           code=EXIT_INVALID)
    if kind != database_kind(places.database_url):
        raise CommandError(f"the backup holds a {kind} database, DATABASE_URL is "
                           f"{shown_url(places.database_url)}",
                           f"set DATABASE_URL to a {kind} database", code=EXIT_INVALID)
    if not force:
        found = _non_empty(places)
        if found:
            raise CommandError("restore would overwrite existing data: " + "; ".join(found),
                               "restore into an empty installation, or give --force to "
                               "replace it")
    rels = [str(f["path"]) for f in manifest["files"]]
    # Everything that can refuse refuses before the first byte is written.
    if places.recordings is None and any(r.startswith("recordings/") for r in rels):
        raise CommandError("the backup has recordings but this machine has no PBX "
                           "instance folder to put them in",
                           "run `callcenter pbx render` (as root) first, then restore")
    for rel in rels:
        _allowed(rel)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if kind == "sqlite":  # kept: a restore over a live database can be undone
        current = _sqlite_path(places.database_url)
        if current.is_file() and current.stat().st_size:
            kept = current.with_name(f"{current.name}.before-restore-{stamp}")
            shutil.copy2(current, kept)
            print(f"restore: the current database is kept as {kept}", file=err)
    with _step(err, f"database ({kind}) into {shown_url(places.database_url)}"):
        dump = source / manifest["database"]["file"]
        if kind == "sqlite":
            _restore_sqlite(dump, places.database_url)
        else:
            _restore_postgres(dump, places.database_url)
    config_file = manifest.get("config_file")
    env_for_operators = None
    counts: dict[str, int] = {}
    # Files outside the hotline's folders are only ever operators' secret files that the
    # config in place names; the config comes first so a restored one counts.
    rels.sort(key=lambda r: r.startswith("secrets/absolute/"))
    allowed_absolute: set[Path] = set()
    for rel in rels:
        if rel.startswith("secrets/absolute/") and not allowed_absolute:
            allowed_absolute = _named_secret_files(places) or {Path("/nonexistent")}
        section, _, rest = rel.partition("/")
        src = source / rel
        dest: Path | None
        mode = 0o640
        if section in ("database",):
            continue
        if section == "recordings":
            assert places.recordings is not None  # checked before anything was written
            dest = places.recordings / rest
        elif section == "ticket-files":
            dest = places.ticket_files / rest
        elif section == "journal":
            dest = places.journal / rest
        elif section == "sounds":
            dest = places.sounds / rest
        elif section == "config":
            dest = places.config_path if rel == config_file else places.config_dir / rest
            if dest.is_file() and sha256_of(dest) != sha256_of(src):
                kept = dest.with_name(f"{dest.name}.before-restore-{stamp}")
                shutil.copy2(dest, kept)
                print(f"restore: the current {dest.name} is kept as {kept}", file=err)
        elif section == "secrets":
            sub, _, tail = rest.partition("/")
            if rest == "secrets.env":
                dest = places.secrets_file
            elif rest == "environment.env":
                env_for_operators = src
                continue
            elif sub == "config":
                dest = places.config_dir / tail
                if tail not in SECRET_ENV_FILES and dest.resolve() not in (
                        allowed_absolute or _named_secret_files(places)):
                    print(f"restore: warning: {rel}: not a secrets file the config names; "
                          f"left out", file=err)
                    continue
                if tail == "hotline.env":
                    # Root's units read it (EnvironmentFile=); a backup is written by the
                    # unprivileged service account: laid beside, for the admin to compare.
                    dest = places.config_dir / f"hotline.env.from-backup-{stamp}"
                    print(f"restore: hotline.env from the backup is in {dest}: compare it with "
                          f"the one in place and copy what you need by hand", file=err)
            elif sub == "absolute":
                dest = Path("/") / tail
                if dest not in allowed_absolute:
                    print(f"restore: warning: {rel}: the config does not name /{tail} as an "
                          f"operator's secret file; left out", file=err)
                    continue
            else:
                continue
        else:
            print(f"restore: warning: {rel}: unknown part, left out", file=err)
            continue
        _place(src, dest, mode=mode)
        counts[section] = counts.get(section, 0) + 1
    if env_for_operators is not None:
        target = places.config_dir / "operators.env"
        if target.exists():
            print(f"restore: operators' passwords from the environment are in "
                  f"{env_for_operators}; {target} exists, merge them by hand", file=err)
        else:
            _place(env_for_operators, target)
            print(f"restore: operators' passwords from the environment written to {target}",
                  file=err)
    for section, n in sorted(counts.items()):
        print(f"restore: {section}: {n} file(s)", file=err)
    with _step(err, "database migrations to head"):
        upgrade_head(places.database_url)
    print("restore: done", file=err)
    return {"files": counts, "database": kind,
            "alembic_revision": manifest["database"]["alembic_revision"]}
