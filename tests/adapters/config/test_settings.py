"""Where `make run` finds its config and state when the environment names none."""

from __future__ import annotations

from pathlib import Path

import pytest

import callcenter
from callcenter.config.settings import Settings, default_places

CHECKOUT = Path(__file__).resolve().parents[3]


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOTLINE_CONFIG", "HOTLINE_STATE", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_given_a_checkout_when_nothing_is_set_then_its_config_and_var_folder_are_used(
        bare_env: None) -> None:
    assert Path(callcenter.__file__).resolve().parents[1] == CHECKOUT  # an editable install
    config, state = default_places()
    assert (config, state) == (CHECKOUT / "config" / "hotline.yaml", CHECKOUT / "var")
    settings = Settings.from_env()
    assert settings.config_path == CHECKOUT / "config" / "hotline.yaml"
    assert settings.state_dir == CHECKOUT / "var"
    assert settings.database_url == f"sqlite:///{CHECKOUT / 'var' / 'hotline.db'}"


def test_given_no_checkout_around_the_package_then_the_installed_layout_is_used(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("callcenter.config.settings.ROOT", tmp_path)
    assert default_places() == (Path("/etc/hotline1022/hotline.yaml"),
                                Path("/var/lib/hotline1022"))
