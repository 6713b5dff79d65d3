"""`pip install` of the built wheel gives a `callcenter` that runs from any folder (issue 13,
point 6): the wheel carries its templates (Asterisk's, Kannel's, the pages'), migrations, static
files, deploy files and example config, and the installed command works with the source tree
out of reach.

Offline: the wheel is built without build isolation and installed with --no-index into a new
venv whose dependencies come from this test run's venv (a .pth line; the .pth files found there,
such as the editable install's finder, are not run, so the source tree stays out of sys.path).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# Settings the installed command must not inherit from whoever runs the tests.
SETTINGS_ENV = ("HOTLINE_CONFIG", "HOTLINE_STATE", "DATABASE_URL", "REDIS_URL", "HOTLINE_SOUNDS",
                "PYTHONPATH", "VIRTUAL_ENV")


@dataclass(frozen=True)
class Installed:
    """A built wheel and a fresh venv it is installed in."""

    wheel: Path
    venv: Path
    elsewhere: Path  # a working folder outside the source tree

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
        base |= {"HOTLINE_STATE": str(self.elsewhere / "state"), "HOTLINE_SMS": "0"}
        return subprocess.run([str(self.venv / "bin" / argv[0]), *argv[1:]],
                              cwd=self.elsewhere, env=base | env, capture_output=True,
                              text=True, timeout=60)


def _source_copy(dest: Path) -> None:
    """What a fresh clone holds for the build (built from a copy: an in-tree build would leave
    build/ and stale files in the shared work tree)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".history", ".*")
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy(REPO / name, dest / name)
    for folder in ("callcenter", "deploy"):
        if (REPO / folder).is_dir():  # deploy/ missing: the contents test says so
            shutil.copytree(REPO / folder, dest / folder, ignore=skip)
    (dest / "config").mkdir()
    for f in (REPO / "config").glob("*.yaml"):
        shutil.copy(f, dest / "config")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("package")
    src = base / "src"
    src.mkdir()
    _source_copy(src)
    pip_env = os.environ | {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "-w", str(base / "dist"), str(src)],
                   check=True, env=pip_env, timeout=120)
    (wheel,) = (base / "dist").glob("hotline1022-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    site = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path("
         "'purelib'))"], check=True, capture_output=True, text=True).stdout.strip())
    (site / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, env=pip_env, timeout=120)
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return Installed(wheel, venv, elsewhere)


def _repo_files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern)
                  if p.is_file() and "__pycache__" not in p.parts)


def test_given_wheel_then_templates_migrations_static_deploy_and_config_inside(
        installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {
        f"callcenter/{p.relative_to(REPO / 'callcenter')}"
        for folder, pattern in (("pbx/templates", "*.j2"), ("sms/templates", "*.j2"),
                                ("store/migrations", "*.py"), ("store/migrations", "*.mako"),
                                ("store/migrations/versions", "*.py"),
                                ("console/static", "*.js"), ("console/static", "*.css"),
                                ("queue/lua", "*.lua"), ("lines/lua", "*.lua"))
        for p in _repo_files(REPO / "callcenter" / folder, pattern)
    }
    assert "callcenter/pbx/templates/extensions.conf.j2" in expected
    assert {"callcenter/queue/lua/lib.lua", "callcenter/lines/lua/acquire.lua"} <= expected
    pages = {f"callcenter/{p.relative_to(REPO / 'callcenter')}"
             for p in _repo_files(REPO / "callcenter", "**/templates/*.html")}
    assert {"callcenter/console/templates/base.html", "callcenter/tickets/templates/ticket.html",
            "callcenter/wallboard/templates/wallboard.html"} <= pages
    assert not pages - names, sorted(pages - names)  # the console's pages, every slice's
    assert "callcenter/store/migrations/versions/0001_call_records.py" in expected
    deploy = [f"callcenter/ops/deploy/{p.relative_to(REPO / 'deploy')}"
              for p in _repo_files(REPO / "deploy", "**/*")]
    assert any(n.startswith("callcenter/ops/deploy/systemd/") for n in deploy), \
        "deploy/systemd/ (the units) is missing from the source tree"
    config = [f"callcenter/ops/example_config/{p.name}"
              for p in _repo_files(REPO / "config", "*.yaml")]
    assert "callcenter/ops/example_config/hotline.yaml" in config
    missing = (expected | set(deploy) | set(config)) - names
    assert not missing, sorted(missing)


def test_given_installed_wheel_when_run_outside_source_tree_then_it_uses_the_installed_copy(
        installed: Installed) -> None:
    done = installed.run("python", "-c", "import sys, callcenter; print(callcenter.__file__); "
                                         "print('\\n'.join(sys.path))")
    assert done.returncode == 0, done.stderr
    where, *path = done.stdout.splitlines()
    assert Path(where).is_relative_to(installed.venv), where
    assert not any(p and Path(p).resolve() == REPO for p in path), path


def test_given_installed_wheel_when_version_then_distribution_version(
        installed: Installed) -> None:
    done = installed.run("callcenter", "--version")
    assert (done.returncode, done.stdout) == (0, f"callcenter {VERSION}\n"), done.stderr


def test_given_installed_wheel_when_check_config_of_shipped_example_then_ok(
        installed: Installed) -> None:
    done = installed.run("python", "-c", "from callcenter.ops.package_data import "
                         "example_config_dir as d; print(d() / 'hotline.yaml')")
    shipped = Path(done.stdout.strip())
    assert shipped.is_relative_to(installed.venv) and shipped.is_file(), done.stderr
    done = installed.run("callcenter", "check-config", str(shipped))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {shipped}: ") and "dongnai" in done.stdout
    done = installed.run("callcenter", "--config", str(shipped), "check-config")
    assert done.returncode == 0, done.stderr


def test_given_installed_wheel_when_db_upgrade_then_tables_made_from_shipped_migrations(
        installed: Installed) -> None:
    db = installed.elsewhere / "db" / "hotline.db"
    done = installed.run("callcenter", "db", "upgrade", DATABASE_URL=f"sqlite:///{db}")
    assert done.returncode == 0, done.stderr
    assert "revision before: none (empty database)" in done.stdout
    assert "(head)" in done.stdout.splitlines()[2], done.stdout
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"alembic_version", "call_records", "tickets", "sms_messages", "users"} <= tables
    done = installed.run("callcenter", "db", "current", DATABASE_URL=f"sqlite:///{db}")
    assert done.returncode == 0 and "up to date (head)" in done.stdout, done.stderr


def test_given_installed_wheel_then_pages_rendered_from_the_venv_s_templates(
        installed: Installed) -> None:
    done = installed.run("python", "-c", (
        "from callcenter.console.rendering import environment as e; "
        "env = e('callcenter.tickets'); "
        "print(env.get_template('tickets.html').filename, env.get_template('base.html')"
        ".filename, sep='\\n'); "
        "print(e('callcenter.console').get_template('error.html').render(title='<t>', "
        "error_id='x', message='m', back='/', back_label='b').count('&lt;t&gt;'))"))
    assert done.returncode == 0, done.stderr
    ticket, base, count = done.stdout.split()
    for file in (ticket, base):
        assert Path(file).is_relative_to(installed.venv) and Path(file).is_file(), file
    assert count == "2"


def test_given_installed_wheel_then_templates_and_deploy_found_inside_the_venv(
        installed: Installed) -> None:
    done = installed.run("python", "-c", (
        "from callcenter.pbx.render import TEMPLATE_DIR as a; "
        "from callcenter.sms.kannel import TEMPLATE_DIR as k; "
        "from callcenter.store.migrate import SCRIPT_LOCATION as m; "
        "from callcenter.ops.package_data import deploy_dir as d; "
        "print(a, k, m, d(), sep='\\n')"))
    assert done.returncode == 0, done.stderr
    for folder in map(Path, done.stdout.split()):
        assert folder.is_relative_to(installed.venv) and folder.is_dir(), folder
