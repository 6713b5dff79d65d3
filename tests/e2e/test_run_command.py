"""`callcenter run` as an administrator uses it: all up, a call, reload, Ctrl-C, nothing left."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from callcenter.ops.processes import spawn, start_time
from callcenter.pbx.install import cache_dir, ensure_asterisk
from callcenter.pbx.layout import PbxLayout
from callcenter.store.users import control_token
from callcenter.tools.softphone import PhoneGroup
from tests.e2e.stack import (
    ROOT,
    base_config,
    cli_records,
    control_get,
    free_port,
    kannel_ports_env,
    readiness_summary,
    wait_until,
)


def _pool(http: int, token: str) -> dict:
    """The test tenant's line pool as ``/api/pool`` shows an admin ({} if the app is away)."""
    return dict((control_get(http, "/api/pool", token) or [{}])[0])


def _admin_token(state: Path) -> str:
    """An admin's token for the control routes, made as root once the app is up: the app
    (the run's own account) has migrated the database and holds it open, so root's passing
    use leaves its files, WAL included, to that account."""
    return control_token(f"sqlite:///{state / 'hotline.db'}", "dongnai")


def _ari_up(http: int) -> bool:
    """The app answers and is connected to Asterisk (calls can be served)."""
    return bool(readiness_summary(http).get("ari_connected"))


def _pgrep(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A folder the app's unprivileged user can walk into, as an admin's HOTLINE_STATE must be:
    pytest's own are 0700, and pytest closes its root again whenever another session starts."""
    path = Path(tempfile.mkdtemp(prefix="hotline-run-"))
    path.chmod(0o701)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _app_pid(state: Path) -> int | None:
    try:
        return int((state / "app.pid").read_text())
    except (OSError, ValueError):
        return None


def _ended(pid: int) -> bool:
    """Gone, or a zombie its new parent (the machine's init, after an orphaning) has not yet
    collected: either way it no longer runs."""
    return start_time(pid) is None


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def _exit_code(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The run's exit code; a run still going after ``timeout`` fails the test with what it
    logged and the children it was waiting on."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        children = subprocess.run(["ps", "-o", "pid,stat,etime,args", "--ppid", str(proc.pid)],
                                  capture_output=True, text=True).stdout
        text = log.read_text()
        pytest.fail(f"the run (pid {proc.pid}) still ran {timeout:.0f} s after SIGTERM; its "
                    f"log:\n{text[:3000]}\n[...]\n{text[-2000:]}\nits children:\n{children}")


_KANNEL: dict[Path, dict[str, str]] = {}


def _start_run(run_dir: Path, ports: tuple[int, int] | None = None,
               ) -> tuple[subprocess.Popen[bytes], dict, Path, dict, str, int, int]:
    sip, http = ports or (free_port(socket.SOCK_DGRAM), free_port())
    data = base_config(sip, free_port(), free_port(), http, lines_day=2, lines_night=2)
    data["service"]["stasis_app"] = "hotline-runtest"
    data["service"]["node"] = "runpbx"
    data["trunk"]["rtp_start"], data["trunk"]["rtp_end"] = 33000, 33499
    config = run_dir / "hotline.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    state = run_dir / "state"
    instance = f"runtest-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"HOTLINE_CONFIG": str(config), "HOTLINE_STATE": str(state),
                "HOTLINE_INSTANCE": instance, "HOTLINE_WATCH_CONFIG": "0"})
    # The same Kannel ports for every run of one test (a restart must find the last one's).
    env.update(_KANNEL.setdefault(run_dir, kannel_ports_env()))
    log = run_dir / "run.log"
    with open(log, "ab") as out:
        proc = spawn("run", [sys.executable, "-m", "callcenter", "run"], env=env,
                     stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    return proc, env, config, data, instance, sip, http


def _assert_nothing_left(instance: str, state: Path) -> None:
    assert _pgrep(f"/srv/hotline/{instance}/") == [] and _pgrep(f"pbx-{instance}") == []
    assert _pgrep(str(state / "redis.sock")) == []
    PbxLayout.for_instance(ensure_asterisk(), instance, state).remove()


def test_given_fresh_state_when_run_then_hotline_answers_reloads_and_stops_cleanly(
        run_dir: Path) -> None:
    proc, env, config, data, instance, sip, http = _start_run(run_dir)
    log, state = run_dir / "run.log", run_dir / "state"
    try:
        health = wait_until(lambda: _ari_up(http), 60)
        assert health, log.read_text()
        token = _admin_token(state)
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
        assert wait_until(lambda: _pool(http, token).get("lines") == 7, 2.0)

        (record,) = cli_records(env, lambda rs: len(rs) >= 1)
        assert set(record) >= {"id", "tenant", "dialled", "caller", "shift", "outcome",
                               "arrived_at", "answered_at", "ended_at", "cause"}
        assert record["outcome"] == "answered" and record["dialled"] == "02511022"
        assert "0977000001" not in log.read_text(), "caller number logged above DEBUG"

        # The web server runs unprivileged, as the service user; what it stores is private.
        app_pid = _app_pid(state)
        assert app_pid is not None and _uid_of(app_pid) == pwd.getpwnam("hotline1022").pw_uid
        assert _uid_of(proc.pid) == 0  # the run itself: only to chroot Asterisk
        assert stat.S_IMODE((state / "hotline.db").stat().st_mode) & 0o007 == 0
        layout = PbxLayout.for_instance(ensure_asterisk(), instance, state)
        recordings = layout.recordings()
        assert stat.S_IMODE(recordings.stat().st_mode) & 0o007 == 0, "recordings open to all"
        # (an IVR call makes no recording: the closed folder keeps any file from other users;
        # the modes inside are set by tests/adapters/test_render.py's ownership test)

        # The app dies on its own (a crash): the run starts it again and calls are answered.
        os.kill(app_pid, signal.SIGKILL)
        assert wait_until(lambda: (_app_pid(state) or app_pid) != app_pid and _ari_up(http),
                          30), log.read_text()[-3000:]
        assert "app exited with -9; starting it again" in log.read_text()
        phone = PhoneGroup(f"127.0.0.1:{sip}", "1022", caller="0977000002")
        assert phone.wait_for("answered", 30), log.read_text()[-3000:]
        (result,) = phone.finish()
        assert result["final_code"] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert text.index("Asterisk stopped") < text.index("private Redis stopped")
    _assert_nothing_left(instance, state)


def test_given_starting_hotline_when_sigterm_arrives_then_nothing_is_left_running(
        run_dir: Path) -> None:
    proc, _env, _config, _data, instance, _sip, _http = _start_run(run_dir)
    log, state = run_dir / "run.log", run_dir / "state"
    # Stop it mid-start: Redis is up, Asterisk is being prepared or started.
    assert wait_until(lambda: "private Redis started" in log.read_text(), 60), log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert _exit_code(proc, log, 60) == 0, log.read_text()
    assert "private Redis stopped" in log.read_text()
    _assert_nothing_left(instance, state)


def _run_pids(instance: str) -> dict[str, int]:
    """The run record's processes by name (what the run started and watches)."""
    record = json.loads((cache_dir() / "run" / f"{instance}.json").read_text())
    return {p["name"]: p["pid"] for p in record["processes"]}


def _metric(http: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def test_given_asterisk_killed_under_run_when_calls_up_then_restarted_and_answering_in_60s(
        run_dir: Path) -> None:
    """Issue 15.2: Asterisk dies (SIGKILL) with a citizen on the line: the run starts it again,
    the app reconnects and reconciles (the lost call gets its record, its line is freed), new
    calls are answered within 60 s, and the restart is logged and counted in /metrics."""
    proc, env, _config, _data, instance, sip, http = _start_run(run_dir)
    log, state = run_dir / "run.log", run_dir / "state"
    try:
        assert wait_until(lambda: _ari_up(http), 60), log.read_text()
        token = _admin_token(state)
        held = PhoneGroup(f"127.0.0.1:{sip}", "1022", hold=120, caller="0977000010")
        assert held.wait_for("answered", 1, 20), log.read_text()[-3000:]
        assert wait_until(lambda: _pool(http, token).get("in_use") == 1, 5)
        pbx_pid = _run_pids(instance)["asterisk"]
        # Asterisk's channel ids are "<system>-<creation second>.<counter since start>": a fresh
        # Asterisk killed within the second its first call came in gives the first call after
        # its restart the same id (.0 again), and the store keeps one record per id (CI-9).
        # Only a crash loop inside one second can do that in service (noted, not fixed).
        time.sleep(1.1)
        os.kill(pbx_pid, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_until(lambda: _ended(pbx_pid), 10)
        restarted = wait_until(lambda: _run_pids(instance).get("asterisk") not in (None, pbx_pid)
                               and _ari_up(http), 60)
        assert restarted, log.read_text()[-4000:]
        phone = PhoneGroup(f"127.0.0.1:{sip}", "1022", caller="0977000011")
        answered = phone.wait_for("answered", 1, max(1.0, 60 - (time.monotonic() - killed)))
        (result,) = phone.finish()
        assert answered and result["final_code"] == 200, log.read_text()[-4000:]
        assert time.monotonic() - killed < 60
        text = log.read_text()
        assert "Asterisk exited with -9; starting it again" in text
        assert "Asterisk restarted (up since" in text
        assert _metric(http, "hotline_asterisk_restarts_total") == 1
        held.finish()
        # The call Asterisk lost: its record is written, its line no longer counted.
        assert wait_until(lambda: _pool(http, token).get("in_use") == 0, 10), (
            "a line of a lost call still held")
        rows = cli_records(env, lambda rs: len(rs) >= 2)
        assert sorted(r["caller"] for r in rows) == ["0977000010", "0977000011"], (
            f"{rows}\n{log.read_text()[-3000:]}")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, log.read_text()[-3000:]
    _assert_nothing_left(instance, state)


def _guard_of(pid: int) -> int | None:
    """The watcher process that stops Asterisk ``pid`` when its run dies."""
    found = [int(line.split()[0]) for line in _pgrep(f"callcenter.ops.guard {pid} ")]
    return found[0] if found else None


def test_given_run_killed_when_started_again_then_leftovers_stopped_and_calls_answered(
        run_dir: Path) -> None:
    """kill -9 (the OOM killer): children die with the run; with the watcher killed as well,
    the next run stops the orphaned Asterisk it finds in the run record; Ctrl-C and an
    immediate restart work (ports in TIME_WAIT are no obstacle)."""
    proc, env, _config, _data, instance, sip, http = _start_run(run_dir)
    log, state = run_dir / "run.log", run_dir / "state"
    try:
        assert wait_until(lambda: _ari_up(http), 60), log.read_text()
        record = json.loads((cache_dir() / "run" / f"{instance}.json").read_text())
        pids = {p["name"]: p["pid"] for p in record["processes"]}
        assert {"run", "redis-server", "asterisk", "app"} <= set(pids), pids

        # 1. kill -9 of the run alone: every child goes with it, within seconds.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # Each stops gracefully on its SIGTERM (the app flushes and hands over, Asterisk's
        # watcher allows it 10 s): within seconds, up to half a minute on a loaded machine.
        children = ("app", "redis-server", "asterisk")
        assert wait_until(lambda: all(_ended(pids[n]) for n in children), 45), (
            [(n, pids[n]) for n in children if not _ended(pids[n])], _pgrep(instance))

        # 2. A run that finds nothing of the last one alive starts as usual and answers.
        proc, *_ = _start_run(run_dir, (sip, http))
        assert wait_until(lambda: _ari_up(http), 60), log.read_text()[-4000:]
        record = json.loads((cache_dir() / "run" / f"{instance}.json").read_text())
        pids = {p["name"]: p["pid"] for p in record["processes"]}

        # 3. kill -9 of the run and of Asterisk's watcher: Asterisk is orphaned, still running.
        guard = _guard_of(pids["asterisk"])
        assert guard is not None, _pgrep("callcenter.ops.guard")
        os.kill(guard, signal.SIGKILL)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert not _ended(pids["asterisk"])

        # The next run stops it (named in its log), then answers within 60 s.
        started = time.monotonic()
        proc, *_ = _start_run(run_dir, (sip, http))
        assert wait_until(lambda: _ari_up(http), 60), log.read_text()[-4000:]
        assert time.monotonic() - started < 60
        assert (f"stopping asterisk (pid {pids['asterisk']}) left running by an earlier run"
                in log.read_text())
        assert _ended(pids["asterisk"])
        phone = PhoneGroup(f"127.0.0.1:{sip}", "1022", caller="0977000003")
        assert phone.wait_for("answered", 30), log.read_text()[-3000:]
        (result,) = phone.finish()
        assert result["final_code"] == 200
        token = _admin_token(state)
        assert wait_until(lambda: _pool(http, token).get("in_use") == 0, 10), (
            "a line still held after the call ended")

        # 4. Ctrl-C, then start again at once.
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        proc, *_ = _start_run(run_dir, (sip, http))
        assert wait_until(lambda: _ari_up(http), 60), log.read_text()[-4000:]
        assert "already in use" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0, log.read_text()[-3000:]
    _assert_nothing_left(instance, state)
    assert not (cache_dir() / "run" / f"{instance}.json").exists()
