"""A whole hotline for end-to-end tests: private Redis, SQLite, a real Asterisk, the app as a
subprocess (so a test can kill and restart it), and pjsua2 phones as subprocesses."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import yaml

from callcenter.config.file import load_config
from callcenter.config.secrets import load_secrets
from callcenter.lines.redis import lines_key
from callcenter.ops.processes import spawn
from callcenter.pbx.install import cache_dir, ensure_asterisk
from callcenter.pbx.layout import PbxLayout
from callcenter.pbx.process import AsteriskProcess
from callcenter.pbx.render import render
from callcenter.pbx.tls import ensure_self_signed
from callcenter.runtime import ports
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.migrate import upgrade_head
from callcenter.store.users import control_token
from callcenter.tools.softphone import PhoneGroup

ROOT = Path(__file__).resolve().parents[2]


# RTP ranges the e2e configs give Asterisk (stack 31000-31999, run command 33000-33499): a
# SIP or HTTP port must not fall inside them, or the config is rightly refused.
RTP_RESERVED = range(30000, 36000)
STACK_NUMBERS = itertools.count(1)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free loopback port outside the tests' RTP ranges, never one handed out before in this
    process (callcenter.runtime.ports: the OS may give the same free port to two binds in a
    row; CI once gave one stack equal ARI and AMI ports)."""
    return ports.free_port(kind, avoid=RTP_RESERVED)


def kannel_ports_env() -> dict[str, str]:
    """Kannel's ports for a `callcenter run` of a test: free ones, not the defaults
    (13100-13103), which two hotlines at once (the two end-to-end workers) would share."""
    return {f"HOTLINE_KANNEL_{name}_PORT": str(free_port())
            for name in ("ADMIN", "SMSBOX", "SENDSMS", "FAKE_SMSC")}


def readiness_summary(http_port: int) -> dict[str, Any]:
    """``/readyz``'s details (a loopback request sees them) in the keys the tests read:
    ari_connected, calls, journal_pending, config_error, status, degraded (what runs in a
    degraded mode, e.g. ["redis"]); {} when the app does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=5) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:  # 503: not ready, the details still tell why
        body = json.loads(e.read())
    except (OSError, ValueError):
        return {}
    checks = body.get("checks") or {}
    if not checks:
        return {}
    return {"ari_connected": bool(checks["ari"]["ok"]), "calls": checks["ari"].get("calls"),
            "journal_pending": checks["journal"].get("pending"),
            "config_error": checks["config"]["error"], "status": body.get("status"),
            "degraded": body.get("degraded")}


def control_get(http_port: int, path: str, token: str) -> Any:
    """GET one of the app's control routes (``/api/pool``, ``/api/ivr`` ...) with an admin's
    bearer token (``callcenter.store.users.control_token``): the decoded JSON answer, or None
    when the app does not answer."""
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


def cli_records(env: dict[str, str], done: Callable[[list[dict[str, Any]]], bool],
                *args: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """``callcenter calls --json ARGS`` with ``env``, asked again until ``done(rows)`` or
    ``timeout``: records leave the app through a batched writer, so a call's may land a moment
    after its end (CI once read the list before it had). The last rows read."""
    rows: list[dict[str, Any]] = []

    def read() -> bool:
        out = subprocess.run([sys.executable, "-m", "callcenter", "calls", "--json", *args],
                             env=env, capture_output=True, text=True, cwd=ROOT, timeout=30)
        rows[:] = json.loads(out.stdout) if out.returncode == 0 else []
        return done(rows)

    wait_until(read, timeout, 0.5)
    return rows


def base_config(sip_port: int, ari_port: int, ami_port: int, http_port: int,
                lines_day: int = 3, lines_night: int = 3,
                tls_port: int | None = None) -> dict[str, Any]:
    return {
        "service": {"ari_port": ari_port, "ami_port": ami_port, "http_port": http_port,
                    "stasis_app": "hotline-test", "node": "testpbx"},
        "trunk": {"port": sip_port, "trusted_networks": ["127.0.0.1/32"],
                  "rtp_start": 31000, "rtp_end": 31999},
        # Its own TLS port: `callcenter run` always listens on one (default 5061, which
        # stacks running side by side would share).
        "sip_tls": {"port": tls_port or free_port()},
        "tenants": [{
            "id": "dongnai", "name": "Đồng Nai", "timezone": "Asia/Ho_Chi_Minh",
            "numbers": ["1022", "02511022"],
            "shifts": [
                {"name": "day", "start": "07:00", "end": "18:00", "lines": lines_day},
                {"name": "night", "start": "18:00", "end": "07:00", "lines": lines_night},
            ],
        }],
    }


def operator_entry(extension: str, name: str | None = None) -> dict[str, str]:
    """An operator as the config lists it: the password in HOTLINE_OP_<extension>."""
    return {"extension": extension, "name": name or f"Tổng đài viên {extension}",
            "secret_env": f"HOTLINE_OP_{extension}"}


class Stack:
    """Everything one test session needs, started once.

    Operators: ``Stack(workdir, operators={"101": "password"}, outbound_port=N)`` or, before or
    after start(), ``add_operators({...})`` / ``set_outbound(N)`` (after start they re-render
    the PBX config and reload PJSIP and the dialplan). Passwords go into the environment of the
    renderer and the app as HOTLINE_OP_<extension>.
    """

    def __init__(self, workdir: Path, operators: dict[str, str] | None = None,
                 outbound_port: int | None = None, tls: bool = False):
        self.workdir = workdir
        self.state = workdir / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "hotline.yaml"
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.ari_port = free_port()
        self.http_port = free_port()
        # tls: a TLS transport on its own port with a self-signed pair made as `callcenter run`
        # makes it (in the state folder, where the app's re-render finds it too).
        self.tls = tls
        self.tls_port = free_port()
        self.config_data = base_config(self.sip_port, self.ari_port, free_port(), self.http_port,
                                       tls_port=self.tls_port)
        self.write_config(self.config_data)
        self.database_url = f"sqlite:///{self.state / 'hotline.db'}"
        self.redis = PrivateRedis(self.state / "redis.sock")
        self.control_token = ""  # an admin's, for the app's control routes: made by start()
        # Each stack its own PBX folder (rootfs/srv/hotline/<instance>): a module's stack
        # stopping (layout.remove) must not delete the session stack's logs and config.
        self.instance = f"test-{os.getpid()}-{next(STACK_NUMBERS)}"
        self.app: subprocess.Popen[bytes] | None = None
        self.app_log = workdir / "app.log"
        self.pbx: AsteriskProcess | None = None
        self.operator_passwords: dict[str, str] = {}
        if operators:
            self.add_operators(operators)
        if outbound_port is not None:
            self.set_outbound(outbound_port)

    # -- config ---------------------------------------------------------------------------
    def write_config(self, data: dict[str, Any] | str) -> None:
        text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True,
                                                                sort_keys=False)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def set_lines(self, lines: int) -> None:
        for shift in self.config_data["tenants"][0]["shifts"]:
            shift["lines"] = lines
        self.write_config(self.config_data)

    def add_operators(self, operators: dict[str, str], tenant: int = 0,
                      names: dict[str, str] | None = None) -> None:
        """Give tenant ``tenant`` these operators (extension -> SIP password); an extension
        already listed keeps its entry and gets the new password. Re-renders if started."""
        # The running app re-renders the PBX config when the file changes, from its own
        # environment: it must be restarted with the new passwords, or it would render the
        # new operators out again.
        app_was_running = self.app is not None and self.app.poll() is None
        if app_was_running:
            self.kill_app(signal.SIGTERM)
        listed = self.config_data["tenants"][tenant].setdefault("operators", [])
        known = {op["extension"] for op in listed}
        for ext, password in operators.items():
            if ext not in known:
                listed.append(operator_entry(ext, (names or {}).get(ext)))
            self.operator_passwords[ext] = password
        self.write_config(self.config_data)
        if self.pbx is not None:
            self.reload_pbx()
        if app_was_running:
            self.start_app()

    def set_outbound(self, port: int, host: str = "127.0.0.1") -> None:
        """Send the outbound trunk (``trunk-out``: units' hotlines) to host:port."""
        self.config_data["trunk"]["outbound"] = {"host": host, "port": port}
        self.write_config(self.config_data)
        if self.pbx is not None:
            self.reload_pbx()

    def operator_env(self) -> dict[str, str]:
        return {f"HOTLINE_OP_{ext}": pw for ext, pw in self.operator_passwords.items()}

    def render_pbx(self) -> list[str]:
        """Render Asterisk's config from the config file now; the names of changed files."""
        config = load_config(self.config_path)
        if self.tls:
            ensure_self_signed(config, self.state)
        return render(config, self.layout, self.secrets, prompt_cache=cache_dir() / "prompts",
                      environ=self.env(), state_dir=self.state)

    def reload_pbx(self) -> None:
        """Re-render, then have the running Asterisk read PJSIP and the dialplan again (even
        if unchanged here: the app may have rendered the same text first)."""
        assert self.pbx is not None
        self.render_pbx()
        self.pbx.rx("module reload res_pjsip.so")
        self.pbx.rx("dialplan reload")

    # -- lifecycle ------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HOTLINE_CONFIG": str(self.config_path), "HOTLINE_STATE": str(self.state),
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis.url,
            "HOTLINE_INSTANCE": self.instance, "HOTLINE_LOG_LEVEL": "INFO",
            # SMS has its own tests against a real Kannel (tests/adapters/test_sms_*).
            "HOTLINE_SMS": "0",
        })
        env.update(self.operator_env())
        return env

    def start(self) -> None:
        self.redis.start()
        upgrade_head(self.database_url)
        self.control_token = control_token(self.database_url, "dongnai")
        install = ensure_asterisk()
        self.layout = PbxLayout.for_instance(install, self.instance, self.state)
        self.layout.remove()
        secrets = load_secrets(self.state)
        self.secrets = secrets
        self.render_pbx()
        self.pbx = AsteriskProcess(self.layout, f"http://127.0.0.1:{self.ari_port}",
                                   secrets.ari_user, secrets.ari_password)
        self.pbx.start()
        self.start_app()

    def start_app(self, **extra_env: str) -> None:
        log = open(self.app_log, "ab")  # noqa: SIM115
        # spawn: the app dies with this test process, and the session checks it is gone.
        self.app = spawn("app", [sys.executable, "-m", "callcenter", "app"],
                         env={**self.env(), **extra_env},
                         stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        ok = wait_until(lambda: self.health().get("ari_connected"), 30)
        if not ok:
            raise RuntimeError(f"app did not connect to ARI:\n{self.app_log_tail()}")

    def kill_app(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        """Send ``sig`` and wait for the app to exit. An app still running after ``timeout``
        (a graceful stop flushes records and hands calls over: seconds, more on a loaded
        machine) dumps its tasks into its log (SIGUSR1), is killed, and fails the test with
        that log, leaving nothing running."""
        if not self.app or self.app.poll() is not None:
            return
        self.app.send_signal(sig)
        try:
            self.app.wait(timeout)
        except subprocess.TimeoutExpired:
            self.app.send_signal(signal.SIGUSR1)
            time.sleep(1)
            self.app.kill()
            self.app.wait(10)
            raise RuntimeError(f"the app did not exit {timeout:.0f} s after signal {sig}:\n"
                               f"{self.app_log_tail(120)}") from None

    def stop(self) -> None:
        try:
            self.kill_app(signal.SIGTERM)
        finally:  # a stuck app still fails the test, after the rest is stopped
            if self.pbx:
                self.pbx.stop()
            self.redis.stop()
        if hasattr(self, "layout"):
            self.layout.remove()

    # -- observation ----------------------------------------------------------------------
    def logged(self, text: str, n: int = 400, timeout: float = 10.0) -> bool:
        """True once ``text`` is in the app log's last ``n`` lines. Log lines leave the app
        through a writer thread (batched): what the app already did may not be in the file
        yet, so a test waits for a line rather than reading the file once."""
        return bool(wait_until(lambda: text in self.app_log_tail(n), timeout, 0.1))

    def app_log_tail(self, n: int = 60) -> str:
        return "\n".join(self.app_log.read_text(errors="replace").splitlines()[-n:])

    def metric(self, name: str) -> float | None:
        """One unlabelled series' value from the app's /metrics (None: not exposed)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics",
                                    timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def health(self) -> dict[str, Any]:
        """The app's readiness as the tests read it (``readiness_summary``); {} when it does
        not answer."""
        return readiness_summary(self.http_port)

    def app_lines(self) -> int | None:
        """The line limit the running app has in force for the test tenant now."""
        pools = control_get(self.http_port, "/api/pool", self.control_token)
        return int(pools[0]["lines"]) if pools else None

    def ari(self, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
        """One ARI request; the decoded JSON answer (None when ARI answers with no body)."""
        import base64

        auth = base64.b64encode(
            f"{self.secrets.ari_user}:{self.secrets.ari_password}".encode()).decode()
        headers = {"Authorization": f"Basic {auth}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"http://127.0.0.1:{self.ari_port}/ari{path}",
                                     data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callcenter", *args], env=self.env(),
                              capture_output=True, text=True, cwd=ROOT, timeout=60)

    def pool_in_use(self) -> int:
        """Lines held now, read straight from Redis (no process start in the way)."""
        client = redis.Redis.from_url(self.redis.url)
        try:
            return int(client.hlen(lines_key("dongnai")))
        finally:
            client.close()

    def cli_pool(self) -> list[dict[str, Any]]:
        """What an administrator sees with `callcenter pool --json`."""
        return list(json.loads(self.cli("pool", "--json").stdout))

    def records(self, n: int = 200) -> list[dict[str, Any]]:
        out = self.cli("calls", "--last", str(n), "--json")
        return list(json.loads(out.stdout))

    def phone(self, number: str = "1022", count: int = 1, hold: float = 60.0,
              caller: str = "0909000111", bind: str = "127.0.0.1") -> PhoneGroup:
        return PhoneGroup(f"127.0.0.1:{self.sip_port}", number, count, hold, caller, bind)

    def operator_phone(self, extension: str, **kwargs: Any) -> Any:
        """An OperatorPhone (tests/e2e/phones.py) registering ``extension`` with its password."""
        from tests.e2e.phones import OperatorPhone  # phones imports this module

        return OperatorPhone(self, extension, self.operator_passwords[extension], **kwargs)
