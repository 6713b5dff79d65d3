"""`callcenter run` as an administrator uses it: all up, a call, reload, Ctrl-C, nothing left."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from callcenter.pbx.install import ensure_asterisk
from callcenter.pbx.layout import PbxLayout
from callcenter.tools.softphone import PhoneGroup
from tests.e2e.stack import ROOT, base_config, free_port, wait_until


def _get(url: str) -> object:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def _pgrep(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def _start_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], dict, Path, dict, str, int, int]:
    sip, http = free_port(socket.SOCK_DGRAM), free_port()
    data = base_config(sip, free_port(), free_port(), http, lines_day=2, lines_night=2)
    data["service"]["stasis_app"] = "hotline-runtest"
    data["service"]["node"] = "runpbx"
    data["trunk"]["rtp_start"], data["trunk"]["rtp_end"] = 33000, 33499
    config = tmp_path / "hotline.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    state = tmp_path / "state"
    instance = f"runtest-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"HOTLINE_CONFIG": str(config), "HOTLINE_STATE": str(state),
                "HOTLINE_INSTANCE": instance, "HOTLINE_WATCH_CONFIG": "0"})
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "callcenter", "run"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    return proc, env, config, data, instance, sip, http


def _assert_nothing_left(instance: str, state: Path) -> None:
    assert _pgrep(f"/srv/hotline/{instance}/") == [] and _pgrep(f"pbx-{instance}") == []
    assert _pgrep(str(state / "redis.sock")) == []
    PbxLayout.for_instance(ensure_asterisk(), instance, state).remove()


def test_given_fresh_state_when_run_then_hotline_answers_reloads_and_stops_cleanly(
        tmp_path: Path) -> None:
    proc, env, config, data, instance, sip, http = _start_run(tmp_path)
    log, state = tmp_path / "run.log", tmp_path / "state"
    try:
        health = wait_until(lambda: (_get(f"http://127.0.0.1:{http}/healthz") or {})
                            .get("ari_connected"), 60)
        assert health, log.read_text()
        # The first run generated private credentials, readable by the owner only.
        secrets = state / "secrets.env"
        assert secrets.stat().st_mode & 0o777 == 0o600
        assert "HOTLINE_ARI_PASSWORD=" in secrets.read_text()

        phone = PhoneGroup(f"127.0.0.1:{sip}", "02511022", caller="0977000001")
        assert phone.wait_for("answered", 1), log.read_text()
        (result,) = phone.finish()
        assert result["final_code"] == 200 and result["rtp_rx_packets"] > 0

        # Reload on request (file watching is off here): the new limit is in force in 2 s.
        data["tenants"][0]["shifts"][0]["lines"] = 7
        data["tenants"][0]["shifts"][1]["lines"] = 7
        config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        reload = subprocess.run([sys.executable, "-m", "callcenter", "reload"], env=env,
                                capture_output=True, text=True, cwd=ROOT)
        assert reload.returncode == 0, reload.stderr
        assert wait_until(lambda: (_get(f"http://127.0.0.1:{http}/api/pool") or [{}])[0]
                          .get("lines") == 7, 2.0)

        calls = subprocess.run([sys.executable, "-m", "callcenter", "calls", "--json"],
                               env=env, capture_output=True, text=True, cwd=ROOT)
        (record,) = json.loads(calls.stdout)
        assert set(record) >= {"id", "tenant", "dialled", "caller", "shift", "outcome",
                               "arrived_at", "answered_at", "ended_at", "cause"}
        assert record["outcome"] == "answered" and record["dialled"] == "02511022"
        assert "0977000001" not in log.read_text(), "caller number logged above DEBUG"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert text.index("Asterisk stopped") < text.index("private Redis stopped")
    _assert_nothing_left(instance, state)


def test_given_starting_hotline_when_sigterm_arrives_then_nothing_is_left_running(
        tmp_path: Path) -> None:
    proc, _env, _config, _data, instance, _sip, _http = _start_run(tmp_path)
    log, state = tmp_path / "run.log", tmp_path / "state"
    # Stop it mid-start: Redis is up, Asterisk is being prepared or started.
    assert wait_until(lambda: "private Redis started" in log.read_text(), 60), log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()
    assert "private Redis stopped" in log.read_text()
    _assert_nothing_left(instance, state)
