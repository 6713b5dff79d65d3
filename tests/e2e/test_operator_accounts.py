"""Operators' softphones against a real Asterisk: digest registration with the password from the
environment or a file, a wrong password refused, refused sources (ACL), and the carrier trunk
still taking citizens' calls on the same transport."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.config.file import load_config
from callcenter.pbx.install import cache_dir
from callcenter.pbx.render import render, write_refused_sources
from tests.e2e.scenarios import nothing_left_after, running
from tests.e2e.stack import ROOT, Stack, free_port, wait_until

ENV_PW_101 = "env-pass-101-e2e-long"  # at least 16 characters (weaker ones are refused)
FILE_PW_102 = "file;pass-102-e2e-long"  # a ';' Asterisk would read as a comment if unescaped

# One pjsua2 process per scenario (pjsua2 cannot be torn down and rebuilt safely in-process):
# register, report the registrar's answer, optionally place one call, then unregister and quit.
_PHONE = textwrap.dedent("""
    import json, os, select, sys, time
    import pjsua2 as pj
    target, user, password, bind, dial = sys.argv[1:6]
    ep = pj.Endpoint(); ep.libCreate()
    cfg = pj.EpConfig(); cfg.uaConfig.threadCnt = 0; cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 0; cfg.logConfig.consoleLevel = 0
    cfg.medConfig.hasIoqueue = True; cfg.medConfig.threadCnt = 0
    ep.libInit(cfg)
    t = pj.TransportConfig(); t.boundAddress = bind; t.publicAddress = bind; t.port = 0
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, t); ep.libStart(); ep.audDevManager().setNullDev()
    out = {"reg": None, "reg_reason": None, "call": None, "answered_at": None, "ended_at": None}
    class Acc(pj.Account):
        def onRegState(self, prm):
            if prm.code != 100 and out["reg"] is None:
                out["reg"], out["reg_reason"] = prm.code, prm.reason
    class Call(pj.Call):
        def onCallState(self, prm):
            ci = self.getInfo()
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
                out["answered_at"] = time.monotonic()
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                out["ended_at"] = time.monotonic()
                out["call"] = ci.lastStatusCode
    a = pj.AccountConfig()
    a.idUri = f"sip:{user}@{target}"
    a.regConfig.registrarUri = f"sip:{target}"
    a.regConfig.timeoutSec = 300
    a.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
    a.mediaConfig.transportConfig.boundAddress = bind   # RTP stays on loopback
    a.mediaConfig.transportConfig.publicAddress = bind
    acc = Acc(); acc.create(a)
    def pump(until, limit):
        end = time.monotonic() + limit
        while not until() and time.monotonic() < end:
            ep.libHandleEvents(10)
    pump(lambda: out["reg"] is not None, 8)
    print(json.dumps(out), flush=True)
    call = None
    if out["reg"] == 200:
        # The test looks at Asterisk meanwhile; keep answering its OPTIONS (qualify).
        while not select.select([sys.stdin], [], [], 0)[0]:
            ep.libHandleEvents(10)
        sys.stdin.readline()
        if dial != "-":
            call = Call(acc); call.makeCall(f"sip:{dial}@{target}", pj.CallOpParam(True))
            pump(lambda: out["call"] is not None, 15)
            print(json.dumps(out), flush=True)
        acc.setRegistration(False)
        pump(lambda: False, 0.3)
    del call, acc
    ep.libDestroy()
    os._exit(0)
""")


class Registration:
    """A pjsua2 operator phone in a subprocess; ``first`` is what the registrar answered."""

    def __init__(self, stack: Stack, user: str, password: str, bind: str = "127.0.0.1",
                 dial: str = "-"):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PHONE, f"127.0.0.1:{stack.sip_port}", user, password, bind,
             dial], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, cwd=ROOT)
        self.first = self._line()

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:  # pjlib prints a banner before its log level applies
            line = self.proc.stdout.readline()
            assert line, "the phone process died"
            if line.startswith("{"):
                return dict(json.loads(line))

    def finish(self) -> dict[str, Any] | None:
        """Let a registered phone go on (dial, unregister); the call's result if it dialled."""
        result = None
        if self.first["reg"] == 200:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            if "-" not in self.proc.args[-1]:
                result = self._line()
        self.proc.wait(15)
        return result


@pytest.fixture(scope="module")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own whose config has two operators (env and file secrets), a trunk-out."""
    workdir = tmp_path_factory.mktemp("operators")
    s = Stack(workdir)
    s.instance = f"ops-{os.getpid()}"  # never the session stack's instance
    s.config_data["trunk"]["rtp_start"], s.config_data["trunk"]["rtp_end"] = 34000, 34499
    s.config_data["trunk"]["outbound"] = {"host": "127.0.0.1",
                                          "port": free_port(socket.SOCK_DGRAM)}
    s.config_data["tenants"][0]["operators"] = [
        {"extension": "101", "name": "Nguyễn Thị Lan", "secret_env": "HOTLINE_OP_E2E_101"},
        {"extension": "102", "name": "Trần Văn Minh", "secret_file": "secrets/op102",
         "permit": ["127.0.0.1/32"]},
        {"extension": "103", "name": "Chưa có mật khẩu", "secret_env": "HOTLINE_OP_E2E_103"},
    ]
    s.write_config(s.config_data)
    (workdir / "secrets").mkdir()
    (workdir / "secrets/op102").write_text(FILE_PW_102 + "\n")
    os.environ["HOTLINE_OP_E2E_101"] = ENV_PW_101  # the renderer and the app read it
    os.environ.pop("HOTLINE_OP_E2E_103", None)
    try:
        with running(s):
            yield s
    finally:
        os.environ.pop("HOTLINE_OP_E2E_101", None)


# After each test on ops_stack: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("ops_stack")


class AmiEvents:
    """A raw AMI connection collecting events (to see what a wrong password reports)."""

    def __init__(self, stack: Stack):
        self.sock = socket.create_connection(
            ("127.0.0.1", stack.config_data["service"]["ami_port"]), timeout=5)
        self.buf = b""
        self.sock.sendall(f"Action: Login\r\nUsername: {stack.secrets.ami_user}\r\n"
                          f"Secret: {stack.secrets.ami_password}\r\n\r\n".encode())

    def events(self, seconds: float) -> list[dict[str, str]]:
        """Every message received within ``seconds``."""
        self.sock.settimeout(0.2)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            self.buf += chunk
        msgs = []
        for block in self.buf.decode(errors="replace").split("\r\n\r\n"):
            fields = dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)
            if fields:
                msgs.append(fields)
        return msgs

    def close(self) -> None:
        self.sock.close()


def _endpoint_state(stack: Stack, name: str) -> str | None:
    try:
        return str(stack.ari(f"/endpoints/PJSIP/{name}")["state"])
    except OSError:
        return None


def test_given_operators_when_phones_register_then_digest_auth_decides(ops_stack: Stack) -> None:
    s = ops_stack
    assert s.pbx is not None
    endpoints = s.pbx.rx("pjsip show endpoints")
    assert "trunk-out" in endpoints and " 101/" in endpoints and " 102/" in endpoints
    assert " 103" not in endpoints  # no secret: left out, the rest runs
    for module in ("res_pjsip_acl.so", "res_pjsip_refer.so", "res_manager_devicestate.so",
                   "app_queue.so", "app_stasis.so"):
        assert "1 modules loaded" in s.pbx.rx(f"module show like {module}"), module
    # Wrong password: 401 and not registered; AMI reports it (security class, timestamped).
    ami = AmiEvents(s)
    try:
        assert any(e.get("Response") == "Success" for e in ami.events(0.5))
        bad = Registration(s, "102", "wrong-password")
        assert bad.first["reg"] in (401, 403), bad.first
        bad.finish()
        failures = [e for e in ami.events(1.0) if e.get("Event") == "ChallengeResponseFailed"]
    finally:
        ami.close()
    assert failures and failures[0]["AccountID"] == "102", failures
    assert "127.0.0.1" in failures[0]["RemoteAddress"] and "Timestamp" in failures[0]
    assert _endpoint_state(s, "102") != "online"
    assert "102/" not in s.pbx.rx("pjsip show contacts")
    # Right passwords (one from the environment, one from a file with ';' in it): 200, online.
    good = Registration(s, "101", ENV_PW_101, dial="0909123456")
    other = Registration(s, "102", FILE_PW_102)
    assert good.first["reg"] == 200 and other.first["reg"] == 200, (good.first, other.first)
    assert wait_until(lambda: _endpoint_state(s, "101") == "online", 5), s.ari("/endpoints")
    assert wait_until(lambda: _endpoint_state(s, "102") == "online", 5)
    # The carrier trunk still takes a citizen's call from loopback alongside.
    if s.app is None or s.app.poll() is not None:
        s.start_app()
    citizen = s.phone("1022", caller="0909000222")
    assert citizen.wait_for("answered", 1), s.app_log_tail()
    (result,) = citizen.finish()
    assert result["final_code"] == 200
    # An operator dialling anything but a feature code gets congestion (503).
    dialled = good.finish()
    assert dialled is not None and dialled["call"] == 503, dialled
    other.finish()
    assert wait_until(lambda: _endpoint_state(s, "101") != "online", 5)


def test_given_banned_source_when_rendered_and_reloaded_then_refused_with_403(
        ops_stack: Stack) -> None:
    s = ops_stack
    assert s.pbx is not None

    def apply(banned: tuple[str, ...]) -> None:
        write_refused_sources(s.layout, banned)  # what the SIP guard does: the ACL file alone
        s.pbx.rx("module reload res_pjsip.so")  # type: ignore[union-attr]

    apply(("127.0.0.7",))
    try:
        refused = Registration(s, "101", ENV_PW_101, bind="127.0.0.7")
        assert refused.first["reg"] == 403, refused.first
        refused.finish()
        allowed = Registration(s, "101", ENV_PW_101)  # other sources unaffected
        assert allowed.first["reg"] == 200, allowed.first
        allowed.finish()
    finally:
        apply(())
    again = Registration(s, "101", ENV_PW_101, bind="127.0.0.7")
    assert again.first["reg"] == 200, again.first  # lifted by the next render + reload
    again.finish()


def test_given_pbx_log_then_missing_secret_named(ops_stack: Stack, caplog: Any) -> None:
    """The operator without a secret is named at render time (ERROR), not silently dropped."""
    import logging

    with caplog.at_level(logging.ERROR, logger="callcenter.config.secrets"):
        render(load_config(ops_stack.config_path), ops_stack.layout, ops_stack.secrets,
               prompt_cache=cache_dir() / "prompts")
    messages = [r.getMessage() for r in caplog.records]
    assert any("103" in m and "HOTLINE_OP_E2E_103" in m and "is not set" in m
               for m in messages), messages
    assert Path(ops_stack.layout.host("etc") / "pjsip.conf").stat().st_mode & 0o007 == 0


def test_given_app_down_when_operator_dials_feature_code_then_unavailable_prompt_and_hangup(
        ops_stack: Stack) -> None:
    s = ops_stack
    assert s.pbx is not None
    shown = s.pbx.rx("dialplan show from-operators")
    assert "Stasis(hotline-test,agent,login)" in shown
    assert "Stasis(hotline-test,agent,pause,${EXTEN:3})" in shown
    s.kill_app()  # Stasis() then returns at once with STASISSTATUS=FAILED (restarted lazily)
    try:
        phone = Registration(s, "101", ENV_PW_101, dial="*11")
        assert phone.first["reg"] == 200, phone.first
        result = phone.finish()
    finally:
        s.start_app()  # the clean-up check wants the app running again
    assert result is not None and result["answered_at"] is not None, result
    assert result["ended_at"] is not None, result  # Asterisk hung up (the phone never does)
    # Answered, the service-unavailable prompt (seconds of speech), then Asterisk hangs up.
    assert result["ended_at"] - result["answered_at"] > 2.0, result


def test_given_stolen_pjsip_conf_or_a_phone_outside_permit_then_no_registration(
        ops_stack: Stack) -> None:
    s = ops_stack
    pjsip = (s.layout.host("etc") / "pjsip.conf").read_text()
    assert ENV_PW_101 not in pjsip and FILE_PW_102 not in pjsip  # digests only
    assert "password_digest = md5:" in pjsip
    # 102 may register from 127.0.0.1 only: the right password from elsewhere is refused.
    outside = Registration(s, "102", FILE_PW_102, bind="127.0.0.9")
    try:
        assert outside.first["reg"] in (401, 403), outside.first
    finally:
        outside.finish()
    assert "102/" not in s.pbx.rx("pjsip show contacts")  # type: ignore[union-attr]
    inside = Registration(s, "102", FILE_PW_102)
    try:
        assert inside.first["reg"] == 200, inside.first
    finally:
        inside.finish()
