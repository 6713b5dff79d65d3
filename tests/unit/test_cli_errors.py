"""What a user sees when `callcenter` fails: a few lines naming the problem and the fix, the
documented exit code, and no traceback unless `--debug` (issue 13, point 7).

The commands run as a user runs them (`python -m callcenter ...` in a subprocess), so nothing
else, such as the logging thread or an exception hook, can print a traceback unnoticed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.cli import build_parser, main
from callcenter.cli_errors import (
    EXIT_CODES_HELP,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_UNAVAILABLE,
    CommandError,
    explain,
)

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_ENV = ("HOTLINE_CONFIG", "REDIS_URL", "DATABASE_URL", "HOTLINE_SOUNDS", "HOTLINE_STATE")


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    base |= {"HOTLINE_STATE": str(tmp_path / "state"), "HOTLINE_INSTANCE": "cli-errors",
             "HOTLINE_SMS": "0"}
    return subprocess.run([sys.executable, "-m", "callcenter", *args], cwd=tmp_path,
                          env=base | env, capture_output=True, text=True, timeout=60)


def _bad_lines_config(tmp_path: Path) -> Path:
    folder = tmp_path / "etc"
    folder.mkdir()
    text = (ROOT / "config" / "hotline.yaml").read_text()
    assert "lines: 2, callback_when_full" in text  # the night shift
    (folder / "hotline.yaml").write_text(text.replace("lines: 2, callback_when_full",
                                                      "lines: -4, callback_when_full", 1))
    shutil.copy(ROOT / "config" / "ivr-dongnai.yaml", folder)
    return folder / "hotline.yaml"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on leaving: nothing listens there


@pytest.mark.parametrize("command", ["run", "pool", "check-config"])
def test_given_missing_config_when_command_runs_then_exit_1_names_file_without_traceback(
        tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nowhere" / "hotline.yaml"
    done = _cli(tmp_path, command, "--config", str(missing))
    assert done.returncode == EXIT_INVALID, done.stderr
    assert str(missing) in done.stderr and "cannot read the file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was set up


@pytest.mark.parametrize("command", ["run", "pool"])
def test_given_negative_line_count_when_command_runs_then_exit_1_names_key_and_fix(
        tmp_path: Path, command: str) -> None:
    config = _bad_lines_config(tmp_path)
    done = _cli(tmp_path, "--config", str(config), command)
    assert done.returncode == EXIT_INVALID, done.stderr
    assert f"{config}: tenants[0].shifts[1].lines = -4: expected" in done.stderr
    assert "fix: correct the file (`callcenter check-config FILE`" in done.stderr
    assert "Traceback" not in done.stderr


def test_given_redis_url_on_closed_port_when_pool_then_exit_2_names_redis_and_fix(
        tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}"
    done = _cli(tmp_path, "pool", "--config", str(ROOT / "config" / "hotline.yaml"),
                REDIS_URL=url)
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    assert f"error: Redis at {url} is unreachable" in done.stderr
    assert "fix: " in done.stderr and "REDIS_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_given_debug_when_redis_unreachable_then_traceback_and_same_exit_code(
        tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}"
    done = _cli(tmp_path, "--debug", "pool", "--config", str(ROOT / "config" / "hotline.yaml"),
                REDIS_URL=url)
    assert done.returncode == EXIT_UNAVAILABLE
    assert "Traceback (most recent call last)" in done.stderr
    assert f"error: Redis at {url} is unreachable" in done.stderr


def test_given_debug_when_config_missing_then_traceback_shown(tmp_path: Path) -> None:
    done = _cli(tmp_path, "run", "--debug", "--config", str(tmp_path / "nope.yaml"))
    assert done.returncode == EXIT_INVALID
    assert "Traceback (most recent call last)" in done.stderr and "ConfigError" in done.stderr


def test_given_database_unreachable_when_calls_then_exit_2_names_database_and_fix(
        tmp_path: Path) -> None:
    url = f"postgresql://hotline:s3cret@127.0.0.1:{_closed_port()}/hotline"
    done = _cli(tmp_path, "calls", DATABASE_URL=url)
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    assert "error: the database postgresql://hotline:***@127.0.0.1:" in done.stderr
    assert "is unreachable" in done.stderr and "fix: check DATABASE_URL" in done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr


def test_given_empty_sqlite_when_calls_then_told_to_run_db_upgrade(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    done = _cli(tmp_path, "calls", DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    assert "has not been migrated" in done.stderr
    assert "fix: run `callcenter db upgrade`" in done.stderr


# -- in process: options, and what each kind of failure is told ----------------------------


@pytest.mark.parametrize("argv", [
    ["--config", "X.yaml", "check-config"], ["check-config", "--config", "X.yaml"],
    ["db", "upgrade", "--config", "X.yaml"], ["--config", "X.yaml", "db", "current"],
    ["--debug", "pool", "--config", "X.yaml"],
])
def test_given_global_options_before_or_after_subcommand_then_parsed(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.config == "X.yaml"
    assert args.debug is ("--debug" in argv)


def test_given_config_option_then_it_beats_env_and_env_still_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = _bad_lines_config(tmp_path)
    monkeypatch.setenv("HOTLINE_CONFIG", str(bad))
    assert main(["check-config"]) == EXIT_INVALID
    assert str(bad) in capsys.readouterr().err
    good = ROOT / "config" / "hotline.yaml"
    assert main(["check-config", "--config", str(good)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {good}")


def test_given_version_option_then_prints_distribution_version(
        capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"callcenter {version('hotline1022')}\n"


def test_given_help_then_exit_codes_documented(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert EXIT_CODES_HELP.strip() in out and "--config PATH" in out and "--debug" in out


def test_given_usage_error_then_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["pool", "--no-such-option"])
    assert stop.value.code == EXIT_INVALID
    assert "unrecognized arguments" in capsys.readouterr().err


def test_given_no_pjsua2_when_dial_then_exit_2_with_install_hint(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pjsua2", None)  # as if the tools extra were not installed
    assert main(["dial"]) == EXIT_UNAVAILABLE
    err = capsys.readouterr().err
    assert "pjsua2 is not installed: pip install 'hotline1022[tools]'" in err
    assert "Traceback" not in err


def test_given_port_in_use_from_runner_then_exit_2_with_fix() -> None:
    from callcenter.pbx.process import PbxStartError

    told = explain(PbxStartError("ARI port 127.0.0.1:8088 is already in use (Address already "
                                 "in use); is an earlier hotline or Asterisk still running?"))
    assert told.code == EXIT_UNAVAILABLE
    assert told.lines[0].startswith("error: ARI port 127.0.0.1:8088 is already in use")
    assert told.lines[-1].startswith("fix: stop the earlier hotline or Asterisk")


def test_given_asterisk_log_tail_then_cut_to_a_few_lines() -> None:
    from callcenter.pbx.process import PbxStartError

    tail = "\n".join(f"log line {i}" for i in range(200))
    told = explain(PbxStartError(f"Asterisk exited with 1:\n{tail}"))
    assert len(told.lines) <= 17 and told.lines[-2].endswith("log line 199")


def test_given_missing_program_then_named_with_its_debian_package() -> None:
    with pytest.raises(FileNotFoundError) as missing:
        subprocess.run(["hotline1022-no-such-program"], check=False)
    told = explain(missing.value)
    assert told.code == EXIT_UNAVAILABLE
    assert told.lines[0] == "error: the program 'hotline1022-no-such-program' is not installed"
    told = explain(FileNotFoundError(2, "No such file or directory", "debootstrap"))
    if shutil.which("debootstrap") is None:
        assert told.lines[-1] == "fix: apt-get install debootstrap"


def test_given_missing_secret_then_exit_1_naming_operator_and_where() -> None:
    from callcenter.config.secrets import OperatorSecretError

    told = explain(OperatorSecretError("dongnai", "101", "environment variable HOTLINE_OP_101",
                                       "is not set"))
    assert told.code == EXIT_INVALID
    assert "operator 101 of tenant dongnai" in told.lines[0] and "HOTLINE_OP_101" in told.lines[0]


def test_given_unwritable_file_then_exit_2_permission_with_fix() -> None:
    told = explain(PermissionError(13, "Permission denied", "/etc/hotline1022/secrets.env"))
    assert told.code == EXIT_UNAVAILABLE
    assert told.lines[0] == "error: permission denied: /etc/hotline1022/secrets.env"
    assert "hotline1022" in told.lines[-1]


def test_given_command_error_interrupt_or_bug_then_their_codes() -> None:
    assert explain(CommandError("x", "y", 1)).lines == ("error: x", "fix: y")
    assert explain(KeyboardInterrupt()).code == EXIT_INTERRUPTED
    bug = explain(ZeroDivisionError("division by zero"))
    assert bug.code == EXIT_INTERNAL
    assert bug.lines[0] == "error: unexpected ZeroDivisionError: division by zero"
    assert "--debug" in bug.lines[-1]
