"""REDIS_SENTINELS / REDIS_SENTINEL_MASTER: parsed into Settings, errors name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.cli_errors import explain
from callcenter.config.settings import RedisSettingsError, Settings, redis_sentinel_settings
from callcenter.redis_clients import RedisTarget


def test_given_no_sentinel_variables_then_redis_url_rules_unchanged() -> None:
    assert redis_sentinel_settings({}) == {
        "redis_sentinels": (), "redis_sentinel_master": None, "redis_password": None,
        "redis_sentinel_password": None}


def test_given_three_sentinels_and_a_master_then_addresses_in_order() -> None:
    got = redis_sentinel_settings({
        "REDIS_SENTINELS": " 127.0.0.1:26379, 127.0.0.2:26380,[::1]:26381 ",
        "REDIS_SENTINEL_MASTER": "hotline", "REDIS_PASSWORD": "pw",
        "REDIS_SENTINEL_PASSWORD": "spw"})
    assert got == {"redis_sentinels": (("127.0.0.1", 26379), ("127.0.0.2", 26380),
                                       ("::1", 26381)),
                   "redis_sentinel_master": "hotline", "redis_password": "pw",
                   "redis_sentinel_password": "spw"}


@pytest.mark.parametrize(("env", "names", "says"), [
    ({"REDIS_SENTINELS": "127.0.0.1"}, "REDIS_SENTINELS='127.0.0.1'", "not host:port"),
    ({"REDIS_SENTINELS": "127.0.0.1:26379,", "REDIS_SENTINEL_MASTER": "h"},
     "REDIS_SENTINELS=", "'' is not host:port"),
    ({"REDIS_SENTINELS": "127.0.0.1:http", "REDIS_SENTINEL_MASTER": "h"},
     "REDIS_SENTINELS=", "'127.0.0.1:http' is not host:port"),
    ({"REDIS_SENTINELS": "127.0.0.1:70000", "REDIS_SENTINEL_MASTER": "h"},
     "REDIS_SENTINELS=", "is not host:port"),
    ({"REDIS_SENTINELS": ":26379", "REDIS_SENTINEL_MASTER": "h"},
     "REDIS_SENTINELS=", "':26379' is not host:port"),
    ({"REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER is not",
     "the name the sentinels monitor"),
    ({"REDIS_SENTINEL_MASTER": "hotline"}, "REDIS_SENTINEL_MASTER='hotline'",
     "REDIS_SENTINELS is not"),
    ({"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "hot line"},
     "REDIS_SENTINEL_MASTER='hot line'", "a plain name"),
])
def test_given_unusable_sentinel_setting_then_error_names_the_variable(
        env: dict[str, str], names: str, says: str) -> None:
    with pytest.raises(RedisSettingsError) as caught:
        redis_sentinel_settings(env)
    assert names in str(caught.value)
    assert says in str(caught.value)


def test_given_bad_sentinels_in_environment_when_settings_load_then_cli_explains(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path))
    monkeypatch.setenv("REDIS_SENTINELS", "127.0.0.1:26379;127.0.0.1:26380")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "hotline")
    with pytest.raises(RedisSettingsError) as caught:
        Settings.from_env()
    explained = explain(caught.value, None)
    assert explained.code == 1
    assert explained.lines[0].startswith("error: invalid Redis setting: REDIS_SENTINELS=")


def test_given_sentinels_then_target_uses_them_over_redis_url_and_hides_passwords(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://:secret@127.0.0.1:6379/0")
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)
    monkeypatch.delenv("REDIS_SENTINEL_MASTER", raising=False)
    plain = RedisTarget.of(Settings.from_env())
    assert not plain.uses_sentinel
    assert plain.url == "redis://:secret@127.0.0.1:6379/0"
    assert str(plain) == "redis://:***@127.0.0.1:6379/0"
    monkeypatch.setenv("REDIS_SENTINELS", "127.0.0.1:26379,127.0.0.1:26380")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "hotline")
    monkeypatch.setenv("REDIS_PASSWORD", "secret")
    target = RedisTarget.of(Settings.from_env())
    assert target.uses_sentinel
    assert target.sentinels == (("127.0.0.1", 26379), ("127.0.0.1", 26380))
    assert target.password == "secret"
    assert str(target) == "Sentinel service 'hotline' via 127.0.0.1:26379,127.0.0.1:26380"


def test_given_no_redis_url_then_private_socket_as_before(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path))
    for name in ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"):
        monkeypatch.delenv(name, raising=False)
    assert RedisTarget.of(Settings.from_env()).url == f"unix://{tmp_path / 'redis.sock'}"


def test_given_sentinels_when_run_starts_an_app_then_child_gets_them(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from callcenter.ops.processes import RunRecord
    from callcenter.runtime.runner import AppProcess

    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path))
    for name in ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env(redis_sentinels=(("127.0.0.1", 26379), ("127.0.0.1", 26380)),
                                 redis_sentinel_master="hotline")
    env = AppProcess(settings, "", None, RunRecord(tmp_path, "main")).env()
    assert env["REDIS_SENTINELS"] == "127.0.0.1:26379,127.0.0.1:26380"
    assert env["REDIS_SENTINEL_MASTER"] == "hotline"
    plain = AppProcess(Settings.from_env(), "unix:///x.sock", None,
                       RunRecord(tmp_path, "main")).env()
    assert plain["REDIS_URL"] == "unix:///x.sock" and "REDIS_SENTINELS" not in plain
