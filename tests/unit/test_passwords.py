"""Console passwords (argon2id), the password rules, the CSRF derivation, the login rate limit."""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher, extract_parameters

from callcenter.config.model import ServiceConfig
from callcenter.console.passwords import (
    DEFAULT_PARAMS,
    MAX_LENGTH,
    MIN_LENGTH,
    TEST_PARAMS,
    PasswordRejected,
    Passwords,
    check_password_rules,
)
from callcenter.console.sessions import LoginRateLimiter, SessionPolicy
from callcenter.store.users import csrf_token_of, login_delay

T0 = dt.datetime(2026, 11, 26, 1, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def fast() -> Passwords:
    return Passwords(TEST_PARAMS)


def test_given_default_params_when_hashing_then_argon2id_3_passes_64_mib_4_lanes() -> None:
    stored = Passwords().hash("mật khẩu rất dài 2026")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    params = extract_parameters(stored)
    assert (params.time_cost, params.memory_cost, params.parallelism, params.hash_len,
            params.salt_len) == (DEFAULT_PARAMS.time_cost, DEFAULT_PARAMS.memory_kib,
                                 DEFAULT_PARAMS.parallelism, 32, 16)


def test_given_hash_when_verifying_then_only_the_same_password_matches(fast: Passwords) -> None:
    stored = fast.hash("Tổng đài 1022 Đồng Nai")
    assert "Tổng đài" not in stored
    assert fast.verify(stored, "Tổng đài 1022 Đồng Nai")
    assert not fast.verify(stored, "Tong dai 1022 Dong Nai")
    assert not fast.verify(stored, "Tổng đài 1022 Đồng Nai ")
    assert not fast.verify(stored, "x" * (MAX_LENGTH + 500))


def test_given_same_password_twice_when_hashing_then_salts_differ(fast: Passwords) -> None:
    assert fast.hash("cùng một mật khẩu") != fast.hash("cùng một mật khẩu")


@pytest.mark.parametrize("stored", [None, "", "not a hash", "$argon2id$v=19$m=1,t=1,p=1$x$y"])
def test_given_no_or_broken_hash_when_verifying_then_refused(fast: Passwords,
                                                             stored: str | None) -> None:
    assert fast.verify(stored, "hotline1022 dummy password, never valid") is False


def test_given_hash_with_other_params_when_checked_then_needs_rehash(fast: Passwords) -> None:
    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1).hash("mật khẩu cũ 123")
    assert fast.verify(old, "mật khẩu cũ 123")  # still valid ...
    assert fast.needs_rehash(old)  # ... but to be replaced at the next login
    assert not fast.needs_rehash(fast.hash("mật khẩu mới 123"))
    assert fast.needs_rehash("garbage")


@pytest.mark.parametrize(("password", "error_id"), [
    ("a" * (MIN_LENGTH - 1), "password.too_short"),
    ("a" * (MAX_LENGTH + 1), "password.too_long"),
    (" " * MIN_LENGTH, "password.blank"),
    ("Quantri.Dongnai", "password.is_name"),
])
def test_given_bad_password_when_checked_then_refused_with_id(password: str,
                                                              error_id: str) -> None:
    with pytest.raises(PasswordRejected) as e:
        check_password_rules(password, "quantri.dongnai")
    assert e.value.id == error_id
    assert password.strip() not in str(e.value) or not password.strip()


def test_given_good_password_when_checked_then_accepted() -> None:
    check_password_rules("a" * MIN_LENGTH, "quantri")
    check_password_rules("mật khẩu có dấu", "quantri")


def test_given_session_id_when_csrf_derived_then_stable_and_bound_to_that_id() -> None:
    a, b = "A" * 43, "B" * 43
    assert csrf_token_of(a) == csrf_token_of(a)
    assert csrf_token_of(a) != csrf_token_of(b)
    assert a not in csrf_token_of(a) and len(csrf_token_of(a)) == 43


def test_given_limit_when_attempts_exceed_it_then_refused_until_window_passes() -> None:
    limiter = LoginRateLimiter()
    window = dt.timedelta(minutes=1)
    for i in range(10):
        assert limiter.hit("10.0.0.1", T0 + dt.timedelta(seconds=i), 10, window) is None
    wait = limiter.hit("10.0.0.1", T0 + dt.timedelta(seconds=30), 10, window)
    assert wait == pytest.approx(30.0)
    assert limiter.hit("10.0.0.2", T0 + dt.timedelta(seconds=30), 10, window) is None
    # The first attempt leaves the window at 60 s: one more is allowed, then refused again.
    assert limiter.hit("10.0.0.1", T0 + dt.timedelta(seconds=60), 10, window) is None
    assert limiter.hit("10.0.0.1", T0 + dt.timedelta(seconds=60), 10, window) is not None


def test_given_many_addresses_when_counted_then_memory_stays_bounded() -> None:
    limiter = LoginRateLimiter()
    limiter.MAX_ADDRESSES = 50
    for i in range(200):
        limiter.hit(f"10.0.{i // 256}.{i % 256}", T0, 10, dt.timedelta(minutes=1))
    assert len(limiter._hits) == 50


def test_given_defaults_then_they_are_the_documented_ones() -> None:
    p = SessionPolicy()
    assert (p.cookie, p.lifetime, p.idle, p.free_failures, p.max_delay, p.attempts_per_ip,
            p.attempts_window, p.secure) == (
        "hotline_session", dt.timedelta(hours=8), dt.timedelta(minutes=30), 3,
        dt.timedelta(minutes=15), None, dt.timedelta(minutes=1), None)
    assert ServiceConfig().login_attempts_per_minute == 10  # what None stands for


# Wrong passwords slow an account down without ever shutting its owner out for long.
@pytest.mark.parametrize(("failures", "seconds"), [
    (0, None), (2, None), (3, 1), (4, 2), (5, 4), (12, 512), (13, 900), (50, 900),
    (10_000, 900)])
def test_given_failures_in_a_row_when_delay_computed_then_doubles_from_the_third_capped_15_min(
        failures: int, seconds: int | None) -> None:
    delay = login_delay(failures, 3, dt.timedelta(minutes=15))
    assert delay == (None if seconds is None else dt.timedelta(seconds=seconds))
