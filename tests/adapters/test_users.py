"""Users and API tokens on SQLite and PostgreSQL: roles, hashing, expiry, revocation, CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from callcenter.cli import main
from callcenter.store.migrate import alembic_config, upgrade_head
from callcenter.store.urls import normalise_url
from callcenter.store.users import UserError, UserStore
from tests.support.config_files import config_text
from tests.support.schema import model_diff

T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
MY_TABLES = {"users", "api_tokens"}


@pytest.fixture
def users(database_url: str) -> Iterator[UserStore]:
    """A UserStore on a migrated database."""
    upgrade_head(database_url)
    store = UserStore(database_url)
    yield store
    store.close()


def test_given_migrated_database_when_compared_to_user_models_then_no_difference(
        database_url: str) -> None:
    diff = model_diff(database_url, MY_TABLES)
    assert diff == []


def test_given_head_when_downgraded_below_users_and_upgraded_then_tables_go_and_come_back(
        database_url: str) -> None:
    upgrade_head(database_url)
    cfg = alembic_config(database_url)
    command.downgrade(cfg, "0004")
    engine = sa.create_engine(normalise_url(database_url))
    try:
        assert not MY_TABLES & set(sa.inspect(engine).get_table_names())
        command.upgrade(cfg, "head")
        assert MY_TABLES <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_given_new_user_when_token_issued_then_it_authenticates_and_only_its_hash_is_stored(
        users: UserStore) -> None:
    users.add_user("an.nguyen", "operator", "dongnai", now=T0)
    info, token = users.issue_token("an.nguyen", label="desk 3", now=T0)
    assert token.startswith(f"hl1_{info.id}_")
    user = users.authenticate(token, now=T0 + dt.timedelta(minutes=5))
    assert user is not None and (user.name, user.role, user.tenant) == (
        "an.nguyen", "operator", "dongnai")
    secret = token[len(f"hl1_{info.id}_"):]
    with users.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT secret_sha256, last_used_at FROM api_tokens")).one()
        dump = json.dumps([list(map(str, r)) for r in conn.execute(
            sa.text("SELECT * FROM api_tokens"))])
    assert stored[0] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in dump
    assert stored[1] is not None  # last use recorded


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
    lambda t: "hl1_" + "0" * 16 + t[20:],  # unknown id
    lambda t: t + "x",  # malformed
    lambda t: "",
    lambda t: "Bearer " + t,
])
def test_given_mangled_token_when_authenticating_then_refused(users: UserStore, mangle) -> None:
    users.add_user("an.nguyen", "operator", "dongnai", now=T0)
    _, token = users.issue_token("an.nguyen", now=T0)
    assert users.authenticate(mangle(token), now=T0) is None


def test_given_expired_revoked_or_disabled_when_authenticating_then_refused(
        users: UserStore) -> None:
    users.add_user("so-y-te", "unit", "dongnai", "so_y_te", now=T0)
    _, short = users.issue_token("so-y-te", expires_at=T0 + dt.timedelta(hours=1), now=T0)
    _, kept = users.issue_token("so-y-te", now=T0)
    assert users.authenticate(short, now=T0 + dt.timedelta(minutes=59)) is not None
    assert users.authenticate(short, now=T0 + dt.timedelta(hours=1)) is None

    users.set_active("so-y-te", False, now=T0)
    assert users.authenticate(kept, now=T0) is None
    users.set_active("so-y-te", True, now=T0)
    user = users.authenticate(kept, now=T0)
    assert user is not None and user.unit == "so_y_te"

    assert users.revoke("so-y-te", now=T0) == 2  # the expired one too: it is not revoked yet
    assert users.authenticate(kept, now=T0) is None


def test_given_two_tokens_when_one_revoked_by_id_then_the_other_still_works(
        users: UserStore) -> None:
    users.add_user("giam-sat", "supervisor", "dongnai", now=T0)
    a, token_a = users.issue_token("giam-sat", now=T0)
    _, token_b = users.issue_token("giam-sat", now=T0)
    assert users.revoke("giam-sat", a.id, now=T0) == 1
    assert users.authenticate(token_a, now=T0) is None
    assert users.authenticate(token_b, now=T0) is not None
    with pytest.raises(UserError) as e:
        users.revoke("giam-sat", a.id, now=T0)
    assert e.value.id == "user.token_not_found"
    assert [t.revoked for t in users.tokens("giam-sat")].count(True) == 1


@pytest.mark.parametrize(("args", "error_id"), [
    (("X", "operator", "dongnai", None), "user.invalid_name"),
    (("an", "root", "dongnai", None), "user.invalid_role"),
    (("an", "unit", "dongnai", None), "user.unit_required"),
    (("an", "operator", "dongnai", "so_y_te"), "user.unit_not_allowed"),
    (("an", "operator", "Dong Nai", None), "user.invalid_tenant"),
])
def test_given_malformed_user_when_added_then_refused_with_id(
        users: UserStore, args: tuple[str, str, str, str | None], error_id: str) -> None:
    with pytest.raises(UserError) as e:
        users.add_user(*args, now=T0)
    assert e.value.id == error_id


def test_given_existing_name_when_added_again_then_user_exists(users: UserStore) -> None:
    users.add_user("an", "operator", "dongnai", now=T0)
    with pytest.raises(UserError) as e:
        users.add_user("an", "admin", "dongnai", now=T0)
    assert e.value.id == "user.exists"


def test_given_database_when_unit_role_without_unit_inserted_directly_then_refused(
        users: UserStore) -> None:
    with pytest.raises(sa.exc.IntegrityError), users.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO users (name, role, tenant, unit, active, failed_logins, created_at, "
            "updated_at) VALUES ('x1', 'unit', 'dongnai', NULL, true, 0, :t, :t)"),
            {"t": T0.replace(tzinfo=None)})


def test_given_disabled_user_when_token_requested_then_refused(users: UserStore) -> None:
    users.add_user("an", "operator", "dongnai", now=T0)
    users.set_active("an", False, now=T0)
    with pytest.raises(UserError) as e:
        users.issue_token("an", now=T0)
    assert e.value.id == "user.inactive"


# -- CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> str:
    config = tmp_path / "hotline.yaml"
    config.write_text(config_text("one_province_one_unit.yaml"), encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))
    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


def test_given_cli_when_user_added_token_issued_listed_and_revoked_then_store_follows(
        cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["user", "add", "so-y-te", "--role", "unit", "--tenant", "dongnai",
                 "--unit", "so_y_te", "--full-name", "Đầu mối Sở Y tế"]) == 0
    capsys.readouterr()
    assert main(["user", "token", "so-y-te", "--label", "máy trực", "--days", "30"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("hl1_") and "shown once" in out.err
    store = UserStore(cli_env)
    try:
        user = store.authenticate(token)
        assert user is not None and user.unit == "so_y_te"
        assert main(["user", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed[0]["name"] == "so-y-te" and listed[0]["tokens"][0]["usable"]
        assert token not in json.dumps(listed)
        assert main(["user", "revoke", "so-y-te"]) == 0
        assert "revoked 1" in capsys.readouterr().out
        assert store.authenticate(token) is None
    finally:
        store.close()


@pytest.mark.parametrize(("argv", "message"), [
    (["user", "add", "x1", "--role", "operator", "--tenant", "hanoi"], "unknown tenant"),
    (["user", "add", "x1", "--role", "unit", "--tenant", "dongnai", "--unit", "so_xyz"],
     "unknown unit"),
    (["user", "add", "x1", "--role", "unit", "--tenant", "dongnai"], "user.unit_required"),
    (["user", "token", "nobody"], "user.not_found"),
    (["user", "revoke", "nobody"], "user.not_found"),
])
def test_given_cli_when_refused_then_exit_1_with_reason(
        cli_env: str, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    assert main(argv) == 1
    assert message in capsys.readouterr().err
