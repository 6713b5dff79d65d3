"""`callcenter install`: lay the hotline out on a Debian host as system services. Idempotent.

What it does, each step printed as one line (``created``, ``updated``, ``fixed``, ``kept``):

- the app's system user and group ``hotline1022`` (``asterisk`` comes from Asterisk's package,
  in the rootfs when the host has none; ``kannel`` from Debian's ``kannel``);
- ``/etc/hotline1022/`` (root:hotline1022 1770: the app saves console edits of the config, the
  sticky bit keeps root's files from it): ``hotline.yaml`` and its ``ivr-*.yaml`` (the app's
  own, 0640) from the shipped example when there is no ``hotline.yaml`` (an existing config is never
  touched), ``sounds/``, ``hotline.env`` (the environment of every unit), ``secrets.env``
  (ARI/AMI credentials generated once, 0640 root:hotline1022), ``operators.env`` (operators'
  SIP passwords, a placeholder naming the variables the config expects, 0640), and
  ``kannel.conf`` (rendered from hotline.env at every run, 0600 root: systemd hands it to
  the Kannel units with LoadCredential=, as the kannel user cannot enter /etc/hotline1022);
- ``/var/lib/hotline1022/`` (hotline1022 0750): journal/, ticket-files/, cache/ and the app's
  Kannel credentials ``sms-secrets.env``; ``/var/lib/hotline1022-kannel/spool`` (Kannel's
  store, kannel 0750); Kannel's logs go to ``/var/log/kannel/hotline1022-*.log``;
- the systemd units of ``deploy/systemd`` into ``/etc/systemd/system`` with the prefix of
  the venv (``/opt/hotline1022`` in the shipped files) replaced by ``--prefix``, and
  ``deploy/logrotate/*`` into ``/etc/logrotate.d``;
- without ``--root``: ``callcenter pbx render`` (builds the Asterisk rootfs the first time)
  unless ``--no-pbx``, and ``systemctl daemon-reload`` when systemd runs the machine.

``--root DIR`` installs into another root (an image, a container, a test): the users are
created there with ``useradd --root DIR`` and files are owned by DIR's ids, so
DIR/etc/passwd and DIR/etc/group must exist. Nothing is started.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from callcenter.ops.files import write_atomic
from callcenter.ops.package_data import deploy_dir, example_config_dir
from callcenter.sms.config import SmsSettings

SERVICE_USER = "hotline1022"
KANNEL_USER = "kannel"
UNIT_PREFIX = "/opt/hotline1022"  # the venv's folder as written in deploy/systemd/*
DEFAULT_PREFIX = Path(UNIT_PREFIX)

ETC = "/etc/hotline1022"
STATE = "/var/lib/hotline1022"
# The Asterisk rootfs is root's, never under the app's state folder: root runs programs from it.
PBX_ROOT = "/var/lib/hotline1022-pbx"
KANNEL_STATE = "/var/lib/hotline1022-kannel"
KANNEL_LOGS = "/var/log/kannel"
UNIT_DIR = "/etc/systemd/system"
LOGROTATE_DIR = "/etc/logrotate.d"
UNIT_SUFFIXES = (".service", ".target", ".timer")

ARI_AMI_DEFAULTS = {"HOTLINE_ARI_USER": "hotline-ari", "HOTLINE_AMI_USER": "hotline-ami"}
KANNEL_DEFAULTS = {"HOTLINE_KANNEL_USER": "hotline-sms"}

HOTLINE_ENV = f"""\
# The environment of every hotline1022 unit (EnvironmentFile=) and of admin commands:
#   runuser -u hotline1022 -- env $(grep -v '^#' {ETC}/hotline.env) \\
#       /opt/hotline1022/bin/callcenter pool
# Written once by `callcenter install`, never overwritten: edit it here.
HOTLINE_CONFIG={ETC}/hotline.yaml
HOTLINE_SOUNDS={ETC}/sounds
HOTLINE_SECRETS={ETC}/secrets.env
HOTLINE_STATE={STATE}
HOTLINE_CACHE={STATE}/cache
HOTLINE_ROOTFS={PBX_ROOT}/rootfs
HOTLINE_INSTANCE=main
HOTLINE_USER={SERVICE_USER}
# SQLite in the state folder; PostgreSQL: postgresql+psycopg://hotline:PASSWORD@127.0.0.1/hotline
DATABASE_URL=sqlite:///{STATE}/hotline.db
# Debian's redis-server (listens on 127.0.0.1:6379).
REDIS_URL=redis://127.0.0.1:6379/0
HOTLINE_LOG_LEVEL=INFO
# SMS through the hotline's own Kannel (hotline1022-bearerbox/-smsbox). HOTLINE_KANNEL_SMSC:
# "fake" (Kannel's test SMSC: texts wait in bearerbox's spool) until the carrier's SMSC is
# set up: put its `group = smsc` block in {ETC}/smsc.conf, set HOTLINE_KANNEL_SMSC={ETC}/smsc.conf
# and run `callcenter install` again (it re-renders {ETC}/kannel.conf). HOTLINE_SMS=0: no SMS.
HOTLINE_SMS=1
HOTLINE_KANNEL_SMSC=fake
"""


class InstallError(RuntimeError):
    """The installation cannot go on; the message says what to do."""


@dataclass
class InstallReport:
    """The lines printed, one per step, and whether anything changed."""

    lines: list[str] = field(default_factory=list)
    changes: int = 0

    def add(self, action: str, what: object, detail: str = "") -> None:
        """One line: action (created/updated/fixed/kept/skipped/warning), what, detail."""
        self.lines.append(f"{action:<8} {what}{f' ({detail})' if detail else ''}")
        if action in ("created", "updated", "fixed", "ran"):
            self.changes += 1


@dataclass(frozen=True)
class Accounts:
    """Users and groups of the target root: the host's databases, or DIR/etc/{passwd,group}."""

    root: Path

    @property
    def is_host(self) -> bool:
        return self.root == Path("/")

    def _entries(self, name: str) -> list[list[str]]:
        return [line.split(":") for line in (self.root / "etc" / name).read_text().splitlines()
                if line and not line.startswith("#")]

    def user(self, name: str) -> tuple[int, int] | None:
        """(uid, primary gid) of a user, or None."""
        if self.is_host:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                return None
            return entry.pw_uid, entry.pw_gid
        for parts in self._entries("passwd"):
            if parts[0] == name and len(parts) >= 4:
                return int(parts[2]), int(parts[3])
        return None

    def group(self, name: str) -> int | None:
        """A group's gid, or None."""
        if self.is_host:
            try:
                return grp.getgrnam(name).gr_gid
            except KeyError:
                return None
        for parts in self._entries("group"):
            if parts[0] == name and len(parts) >= 3:
                return int(parts[2])
        return None

    def ensure_system_user(self, name: str, report: InstallReport) -> tuple[int, int]:
        """The user with its own group, created with useradd (--root DIR) when missing."""
        found = self.user(name)
        if found is not None:
            if found[0] == 0:
                raise InstallError(f"the user {name} is root (uid 0): the app must run "
                                   f"unprivileged; remove it and run `callcenter install` again")
            report.add("kept", f"user {name}", f"exists, uid {found[0]}")
            return found
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        argv = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir",
                "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
                "Tong dai 1022 hotline service", name]
        if not self.is_host:
            argv[1:1] = ["--root", str(self.root)]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True)
        except OSError as e:
            raise InstallError(f"cannot run useradd ({e.strerror}): install Debian's passwd "
                               f"package, or create the system user {name} yourself") from None
        found = self.user(name)
        if found is None:
            raise InstallError(f"useradd could not create the system user {name}: "
                               f"{proc.stderr.strip() or f'exit {proc.returncode}'}")
        report.add("created", f"user {name}", f"uid {found[0]}, group {name}")
        return found


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of an environment file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.lstrip().startswith("#"):
                values[key.strip()] = value.strip()
    return values


@dataclass
class Installer:
    """One run of `callcenter install` into ``root`` for a venv at ``prefix``."""

    root: Path = Path("/")
    prefix: Path = DEFAULT_PREFIX
    report: InstallReport = field(default_factory=InstallReport)

    def at(self, absolute: str) -> Path:
        """A path of the target system, under --root."""
        return self.root / absolute.lstrip("/")

    # -- files and folders -------------------------------------------------------------
    def ensure_dir(self, path: Path, uid: int, gid: int, mode: int) -> None:
        """A folder with this owner and mode: created, fixed, or kept."""
        if not path.is_dir():
            path.mkdir(parents=True)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
            self.report.add("created", path, f"{mode:04o} {uid}:{gid}")
            return
        self._fix(path, uid, gid, mode, "exists")

    def _fix(self, path: Path, uid: int, gid: int, mode: int, kept_detail: str) -> None:
        st = path.stat()
        fixes = []
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(path, uid, gid)
            fixes.append(f"owner {st.st_uid}:{st.st_gid} -> {uid}:{gid}")
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
            fixes.append(f"mode {stat.S_IMODE(st.st_mode):04o} -> {mode:04o}")
        if fixes:
            self.report.add("fixed", path, ", ".join(fixes))
        else:
            self.report.add("kept", path, kept_detail)

    def write_new(self, path: Path, text: str, uid: int, gid: int, mode: int,
                  detail: str = "") -> bool:
        """Write a file only if it does not exist (a config is never overwritten)."""
        if path.exists():
            self.report.add("kept", path, "exists")
            return False
        self._write(path, text, uid, gid, mode)
        self.report.add("created", path, detail)
        return True

    def write_rendered(self, path: Path, text: str, uid: int, gid: int, mode: int) -> bool:
        """Write a generated file when its content, owner or mode differs."""
        if path.exists() and path.read_text() == text:
            self._fix(path, uid, gid, mode, "unchanged")
            return False
        existed = path.exists()
        self._write(path, text, uid, gid, mode)
        self.report.add("updated" if existed else "created", path)
        return True

    @staticmethod
    def _write(path: Path, text: str, uid: int, gid: int, mode: int) -> None:
        write_atomic(path, text, mode, owner=(uid, gid))

    def ensure_secrets(self, path: Path, keys: tuple[str, ...], defaults: Mapping[str, str],
                       uid: int, gid: int, mode: int) -> dict[str, str]:
        """An env file holding every key: existing values kept, missing ones generated."""
        values = read_env_file(path)
        missing = [k for k in keys if not values.get(k)]
        if not missing:
            self._fix(path, uid, gid, mode, "exists, every key set")
            return values
        for key in missing:
            values[key] = defaults.get(key) or secrets.token_urlsafe(24)
        existed = path.exists()
        lines = path.read_text().splitlines() if existed else [
            "# Generated by `callcenter install`; keep private. Values set here are kept."]
        lines = [line for line in lines if line.partition("=")[0].strip() not in missing]
        self._write(path, "\n".join([*lines, *(f"{k}={values[k]}" for k in missing)]) + "\n",
                    uid, gid, mode)
        self.report.add("updated" if existed else "created", path,
                        f"{'added ' if existed else ''}{', '.join(missing)}")
        return values

    # -- the steps ---------------------------------------------------------------------
    def run(self, *, render_pbx: bool = False, daemon_reload: bool = False) -> InstallReport:
        """Every step in order; the report says what each did."""
        from callcenter.config.secrets import KEYS as ARI_AMI_KEYS
        from callcenter.sms.credentials import FILE_NAME as SMS_SECRETS
        from callcenter.sms.credentials import KEYS as KANNEL_KEYS

        accounts = self._accounts()
        uid, gid = accounts.ensure_system_user(SERVICE_USER, self.report)
        etc, state = self.at(ETC), self.at(STATE)
        # 1770: the app saves the config it is allowed to edit (shifts from the console, with
        # .history/ beside it) by writing a new file and renaming it; the sticky bit keeps it
        # from replacing or removing what root owns there (secrets, environment, kannel.conf).
        self.ensure_dir(etc, 0, gid, 0o1770)
        self.ensure_dir(etc / "sounds", 0, gid, 0o750)
        self._config(etc, uid, gid)
        self.write_new(etc / "hotline.env", HOTLINE_ENV, 0, gid, 0o640)
        env = read_env_file(etc / "hotline.env")
        self.ensure_secrets(etc / "secrets.env", ARI_AMI_KEYS, ARI_AMI_DEFAULTS, 0, gid, 0o640)
        self.write_new(etc / "operators.env", self._operators_placeholder(etc), 0, gid, 0o640,
                       "placeholder: set the operators' SIP passwords there")
        self.ensure_dir(state, uid, gid, 0o750)
        self.ensure_dir(self.at(PBX_ROOT), 0, 0, 0o755)
        for sub in ("journal", "ticket-files", "cache"):
            self.ensure_dir(state / sub, uid, gid, 0o750)
        kannel_secrets = self.ensure_secrets(state / SMS_SECRETS, KANNEL_KEYS, KANNEL_DEFAULTS,
                                             uid, gid, 0o600)
        self._kannel(accounts, env, kannel_secrets)
        units_changed = self._units()
        self._logrotate()
        self._check_prefix()
        if render_pbx:
            self._render_pbx(env, etc)
        if units_changed and daemon_reload:
            self._daemon_reload()
        return self.report

    def _accounts(self) -> Accounts:
        accounts = Accounts(self.root)
        if not accounts.is_host and not all((self.root / "etc" / n).is_file()
                                            for n in ("passwd", "group")):
            raise InstallError(
                f"--root {self.root}: {self.root}/etc/passwd and {self.root}/etc/group are "
                f"needed (the users are created there with useradd --root); give the root "
                f"of an installed system or image")
        return accounts

    def _config(self, etc: Path, uid: int, gid: int) -> None:
        """The example config when there is no hotline.yaml; an existing one is never touched."""
        config = etc / "hotline.yaml"
        if config.exists():
            self.report.add("kept", config, "exists; never overwritten")
            return
        source = example_config_dir()
        for example in sorted(source.glob("*.yaml")):
            self.write_new(etc / example.name, example.read_text(), uid, gid, 0o640,
                           f"from the example {example}")

    def _operators_placeholder(self, etc: Path) -> str:
        names = self._operator_env_names(etc / "hotline.yaml")
        lines = ["# Operators' SIP passwords, one per line: HOTLINE_OP_<extension>=password",
                 "# (the names the config's secret_env keys give), at least 16 characters:",
                 "# `callcenter operator secret EXT` writes one. Read by the app and by",
                 "# `callcenter pbx render` (EnvironmentFile=); an operator without one cannot",
                 "# register. After a change: systemctl restart hotline1022.target"]
        lines += [f"#{name}=" for name in names] or ["#HOTLINE_OP_101="]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _operator_env_names(config: Path) -> list[str]:
        """The environment variables the config names for operators' passwords."""
        try:
            text = config.read_text()
        except OSError:
            return []
        return sorted(set(re.findall(r"secret_env:\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)", text)))

    def _kannel(self, accounts: Accounts, env: Mapping[str, str],
                kannel_secrets: Mapping[str, str]) -> None:
        conf = self.at(ETC) / "kannel.conf"
        sms = SmsSettings.from_env(env)
        if not sms.enabled or sms.gateway_url:
            why = "HOTLINE_SMS=0" if not sms.enabled else f"an existing Kannel: {sms.gateway_url}"
            self.report.add("skipped", conf, f"{why}; disable hotline1022-bearerbox and "
                                             f"hotline1022-smsbox")
            return
        kannel = accounts.user(KANNEL_USER)
        if kannel is None:
            self.report.add("warning", f"no {KANNEL_USER} user", "Kannel not set up: apt-get "
                            "install kannel, then run `callcenter install` again")
            return
        k_uid, k_gid = kannel
        self.ensure_dir(self.at(KANNEL_STATE), k_uid, k_gid, 0o750)
        self.ensure_dir(self.at(KANNEL_STATE) / "spool", k_uid, k_gid, 0o750)
        logs = self.at(KANNEL_LOGS)
        if logs.is_dir():
            self.report.add("kept", logs, "exists")
        else:
            self.ensure_dir(logs, k_uid, 0, 0o755)  # as Debian's kannel package makes it
        self.write_rendered(conf, self.kannel_conf(sms, kannel_secrets, self._mo_url(
            kannel_secrets)), 0, 0, 0o600)

    def _mo_url(self, kannel_secrets: Mapping[str, str]) -> str | None:
        """Where smsbox passes citizens' SMS (the survey's answers): the app's port from
        hotline.yaml; None (with a warning) when the config cannot be read yet."""
        from callcenter.config.file import load_config
        from callcenter.sms.service import app_mo_url

        config_file = self.at(ETC) / "hotline.yaml"
        try:
            config = load_config(config_file)
        except Exception as e:  # noqa: BLE001 - any config error: Kannel still sends texts
            self.report.add("warning", "citizens' SMS not passed to the app",
                            f"{config_file}: {str(e).splitlines()[0][:200]}; fix it and run "
                            "`callcenter install` again")
            return None
        key = kannel_secrets.get("HOTLINE_SMS_MO_KEY")
        if not key:
            return None
        return app_mo_url(config.service.http_bind, config.service.http_port, key,
                          https=config.console.tls)

    def kannel_conf(self, sms: SmsSettings, kannel_secrets: Mapping[str, str],
                    mo_url: str | None = None) -> str:
        """kannel.conf for the units: spool in KANNEL_STATE, logs in /var/log/kannel, and the
        carrier's SMSC block written in (the kannel user cannot read /etc/hotline1022)."""
        from callcenter.sms.credentials import KannelSecrets
        from callcenter.sms.kannel import render_config

        creds = KannelSecrets(sendsms_user=kannel_secrets["HOTLINE_KANNEL_USER"],
                              sendsms_password=kannel_secrets["HOTLINE_KANNEL_PASSWORD"],
                              admin_password=kannel_secrets["HOTLINE_KANNEL_ADMIN_PASSWORD"],
                              dlr_key=kannel_secrets["HOTLINE_SMS_DLR_KEY"],
                              mo_key=kannel_secrets.get("HOTLINE_SMS_MO_KEY", ""))
        smsc_block = None
        if not sms.fake:
            smsc_file = self.at(sms.smsc)
            try:
                smsc_block = smsc_file.read_text()
            except OSError as e:
                raise InstallError(f"HOTLINE_KANNEL_SMSC={sms.smsc} in {self.at(ETC)}/"
                                   f"hotline.env: cannot read {smsc_file} ({e.strerror}); "
                                   f"put the carrier's `group = smsc` block there, or set "
                                   f"it to fake") from None
            given, sms = sms.smsc, replace(sms, smsc=str(smsc_file))
        text = render_config(sms, creds, Path(KANNEL_STATE), mo_url)
        for box in ("bearerbox", "smsbox"):
            for kind in ("", "-access"):
                text = text.replace(f'"{KANNEL_STATE}/{box}{kind}.log"',
                                    f'"{KANNEL_LOGS}/hotline1022-{box}{kind}.log"')
        if smsc_block is not None:
            include = f'include = "{sms.smsc}"'
            if include not in text:
                raise InstallError(f"kannel.conf template: no `{include}` line to replace")
            text = text.replace(include, f"# From {given} (HOTLINE_KANNEL_SMSC)\n"
                                         + smsc_block.rstrip("\n"))
        return text

    def _units(self) -> bool:
        """Copy the units with the venv's prefix; True when any file changed."""
        source = deploy_dir() / "systemd"
        target = self.at(UNIT_DIR)
        if not target.is_dir():
            target.mkdir(parents=True)
            os.chmod(target, 0o755)
        changed = False
        units = sorted(p for p in source.iterdir() if p.suffix in UNIT_SUFFIXES)
        if not units:
            raise InstallError(f"no systemd units in {source}: a broken installation of the "
                               f"package? (pip install --force-reinstall hotline1022)")
        for unit in units:
            text = unit.read_text().replace(UNIT_PREFIX + "/", str(self.prefix).rstrip("/") + "/")
            changed |= self.write_rendered(target / unit.name, text, 0, 0, 0o644)
        return changed

    def _logrotate(self) -> None:
        """deploy/logrotate/* into /etc/logrotate.d (Asterisk's logs in the instance)."""
        source = deploy_dir() / "logrotate"
        if not source.is_dir():
            return
        target = self.at(LOGROTATE_DIR)
        target.mkdir(parents=True, exist_ok=True)
        for file in sorted(p for p in source.iterdir() if p.is_file()):
            self.write_rendered(target / file.name, file.read_text(), 0, 0, 0o644)

    def _check_prefix(self) -> None:
        exe = self.at(str(self.prefix)) / "bin" / "callcenter"
        if not os.access(exe, os.X_OK):
            self.report.add("warning", exe, "missing: the units run it; make the venv there "
                            "(python3 -m venv PREFIX; PREFIX/bin/pip install hotline1022) or "
                            "pass --prefix")

    def _render_pbx(self, env: Mapping[str, str], etc: Path) -> None:
        """`callcenter pbx render` with the units' environment (builds the rootfs once)."""
        child = {**os.environ, **env, **read_env_file(etc / "operators.env")}
        print("running: callcenter pbx render (the first time builds the Asterisk rootfs, "
              "about a minute)", flush=True)
        proc = subprocess.run([sys.executable, "-m", "callcenter", "pbx", "render"], env=child)
        if proc.returncode != 0:
            raise InstallError(f"`callcenter pbx render` failed (exit {proc.returncode}, see "
                               f"above); fix it and run `callcenter install` again")
        self.report.add("ran", "callcenter pbx render")

    def _daemon_reload(self) -> None:
        proc = subprocess.run(["systemctl", "daemon-reload"], capture_output=True, text=True)
        if proc.returncode == 0:
            self.report.add("ran", "systemctl daemon-reload")
        else:
            self.report.add("warning", "systemctl daemon-reload failed",
                            proc.stderr.strip() or f"exit {proc.returncode}")


def systemd_is_running() -> bool:
    """True when systemd is PID 1 (sd_booted: /run/systemd/system exists)."""
    return Path("/run/systemd/system").is_dir()


def next_steps(root: Path) -> list[str]:
    """What the administrator runs after the installation."""
    on = "" if root == Path("/") else f" (on the system installed into {root})"
    return [f"next{on}:",
            f"  1. edit {ETC}/hotline.yaml (tenants, numbers, trunk) and {ETC}/operators.env",
            "  2. systemctl daemon-reload && systemctl enable --now hotline1022.target",
            "  3. curl -s http://127.0.0.1:8022/readyz  (the console's port in hotline.yaml)",
            "  (an edge machine: the edge: section in hotline.yaml, then only "
            "systemctl enable --now hotline1022-edge.service; docs/scale-out.md, Production)"]
