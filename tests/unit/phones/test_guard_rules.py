"""Refusing SIP sources after repeated auth failures: the pure rules and the AuthGuard adapter."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.phones import guard_rules as ag
from callcenter.phones.devices import SCANNER_ENDPOINT, AuthFailure
from callcenter.phones.guard import AuthGuard

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
TRUSTED = ag.parse_networks(["127.0.0.1/32", "10.20.0.0/16"])
POLICY = ag.GuardPolicy()  # 5 failures in 60 s -> refused 600 s


def fail(source: str = "127.0.0.2", account: str = "101", at: datetime = T0) -> AuthFailure:
    return AuthFailure(source, account, at)


def run(offsets: list[float], source: str = "127.0.0.2",
        state: ag.GuardState | None = None) -> tuple[ag.GuardState, list[ag.Verdict]]:
    state = state or ag.GuardState()
    verdicts = []
    for s in offsets:
        v = ag.record_failure(state, fail(source), T0 + timedelta(seconds=s), TRUSTED, POLICY)
        state = v.state
        verdicts.append(v)
    return state, verdicts


def test_given_four_failures_when_the_fifth_comes_within_60_s_then_refused_600_s() -> None:
    state, verdicts = run([0, 10, 20, 30, 59.9])
    assert [v.changed for v in verdicts] == [False] * 4 + [True]
    assert [v.failures for v in verdicts] == [1, 2, 3, 4, 5]
    assert verdicts[-1].banned_until == T0 + timedelta(seconds=59.9 + 600)
    assert state.banned_sources() == ("127.0.0.2",)


def test_given_failures_exactly_60_s_apart_from_the_first_when_fifth_then_not_refused() -> None:
    # The first failure leaves the window at exactly 60 s, so only four are in it.
    state, verdicts = run([0, 10, 20, 30, 60])
    assert verdicts[-1].failures == 4
    assert state.banned_sources() == ()


def test_given_a_trusted_carrier_source_when_it_fails_often_then_never_refused() -> None:
    state, verdicts = run([0, 1, 2, 3, 4, 5, 6, 7], source="10.20.3.4")
    assert all(v.trusted and not v.changed for v in verdicts)
    assert verdicts[-1].failures == 8
    assert state.banned_sources() == ()
    flood, _ = run([i / 100 for i in range(ag.TRUSTED_KEEP + 50)], source="10.20.3.4")
    assert len(flood.failures["10.20.3.4"]) == ag.TRUSTED_KEEP  # memory stays bounded


def test_given_a_ban_when_it_ends_then_expire_lifts_it_exactly_at_its_end() -> None:
    state, _ = run([0, 1, 2, 3, 4])
    until = state.banned["127.0.0.2"]
    kept, lifted = ag.expire(state, until - timedelta(microseconds=1), POLICY)
    assert lifted == () and kept.banned_sources() == ("127.0.0.2",)
    cleared, lifted = ag.expire(state, until, POLICY)
    assert lifted == ("127.0.0.2",) and cleared.banned_sources() == ()


def test_given_a_banned_source_when_it_fails_again_then_the_ban_is_not_extended() -> None:
    state, _ = run([0, 1, 2, 3, 4])
    until = state.banned["127.0.0.2"]
    again = ag.record_failure(state, fail(), T0 + timedelta(seconds=30), TRUSTED, POLICY)
    assert not again.changed and again.state.banned["127.0.0.2"] == until


def test_given_a_lifted_ban_when_the_source_fails_again_then_it_starts_from_zero() -> None:
    state, _ = run([0, 1, 2, 3, 4])
    state, _ = ag.expire(state, T0 + timedelta(seconds=1000), POLICY)
    state, verdicts = run([1001], state=state)
    assert verdicts[0].failures == 1 and state.banned_sources() == ()


def test_given_two_sources_when_one_fails_then_the_other_is_unaffected() -> None:
    state, _ = run([0, 1, 2, 3])
    state, verdicts = run([4], source="127.0.0.3", state=state)
    assert verdicts[0].failures == 1 and state.banned_sources() == ()


def test_given_sources_when_sorted_then_numeric_order_ipv4_first() -> None:
    assert ag.sort_sources(["127.0.0.10", "::1", "127.0.0.9", "127.0.0.9"]) == (
        "127.0.0.9", "127.0.0.10", "::1")


def test_given_an_ipv6_source_when_trusted_networks_are_ipv4_then_not_trusted() -> None:
    assert not ag.is_trusted("::1", TRUSTED)
    assert ag.is_trusted("127.0.0.1", TRUSTED)
    assert not ag.is_trusted("not-an-ip", TRUSTED)


def test_given_a_bad_policy_when_built_then_refused() -> None:
    with pytest.raises(ValueError):
        ag.GuardPolicy(max_failures=0)


@given(st.lists(st.floats(min_value=0, max_value=3600, allow_nan=False), max_size=40))
def test_given_any_failure_times_when_recorded_then_banned_iff_five_within_60_s(
        raw: list[float]) -> None:
    offsets = sorted(raw)
    state, verdicts = run(offsets)
    first_ban = next((i for i, v in enumerate(verdicts) if v.changed), None)
    # Reference: the first failure that has 4 more within the 60 s before it (inclusive).
    expected = next((i for i, t in enumerate(offsets)
                     if sum(1 for u in offsets[:i + 1] if t - u < 60) >= 5), None)
    assert first_ban == expected
    if first_ban is not None:
        assert verdicts[first_ban].banned_until == (
            T0 + timedelta(seconds=offsets[first_ban] + 600))


@given(st.lists(st.floats(min_value=0, max_value=3600, allow_nan=False), max_size=40),
       st.sampled_from(["127.0.0.1", "10.20.0.1", "10.20.255.254"]))
def test_given_any_failures_from_trusted_networks_then_never_banned(
        raw: list[float], source: str) -> None:
    state, verdicts = run(sorted(raw), source=source)
    assert state.banned_sources() == ()
    assert not any(v.changed for v in verdicts)


@given(st.floats(min_value=0, max_value=2000, allow_nan=False))
def test_given_a_ban_when_expired_at_any_time_then_lifted_iff_600_s_passed(after: float) -> None:
    state, _ = run([0, 0, 0, 0, 0])
    state, lifted = ag.expire(state, T0 + timedelta(seconds=after), POLICY)
    assert (lifted == ("127.0.0.2",)) == (after >= 600)


# -- the adapter ----------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def test_given_the_guard_when_a_source_is_refused_then_apply_once_and_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    applied: list[tuple[str, ...]] = []

    async def apply(sources: tuple[str, ...]) -> None:
        applied.append(sources)

    clock = Clock()
    guard = AuthGuard(["127.0.0.1/32"], apply, clock)
    caplog.set_level(logging.INFO, logger="callcenter.phones.guard")
    for i in range(7):
        clock.now = T0 + timedelta(seconds=i)
        await guard.record(fail("127.0.0.2", "102"))
    assert applied == [("127.0.0.2",)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["SIP source 127.0.0.2 refused for 600 s: 5 authentication failures in "
                        "60 s (last account '102', ChallengeResponseFailed)"]
    assert guard.banned == ("127.0.0.2",)

    clock.now = T0 + timedelta(seconds=605)
    assert await guard.expire() == ("127.0.0.2",)
    assert applied == [("127.0.0.2",), ()]
    assert guard.banned == ()


async def test_given_the_carrier_when_it_fails_auth_then_logged_but_never_applied(
        caplog: pytest.LogCaptureFixture) -> None:
    applied: list[tuple[str, ...]] = []

    async def apply(sources: tuple[str, ...]) -> None:
        applied.append(sources)

    guard = AuthGuard(["127.0.0.1/32"], apply, Clock())
    for _ in range(10):
        await guard.record(fail("127.0.0.1"))
    assert applied == [] and guard.banned == ()
    assert any("trusted 127.0.0.1" in r.getMessage() for r in caplog.records)


async def test_given_apply_fails_when_the_next_tick_comes_then_it_is_retried() -> None:
    calls: list[tuple[str, ...]] = []

    async def apply(sources: tuple[str, ...]) -> None:
        calls.append(sources)
        if len(calls) == 1:
            raise RuntimeError("asterisk reload failed")

    guard = AuthGuard([], apply, Clock())
    for _ in range(5):
        await guard.record(fail("127.0.0.5"))
    assert calls == [("127.0.0.5",)]
    await guard.expire()
    assert calls == [("127.0.0.5",), ("127.0.0.5",)]
    await guard.expire()
    assert len(calls) == 2  # applied now: nothing more to do


async def test_given_ami_login_failures_when_recorded_then_not_counted_for_sip() -> None:
    applied: list[tuple[str, ...]] = []

    async def apply(sources: tuple[str, ...]) -> None:
        applied.append(sources)

    guard = AuthGuard([], apply, Clock())
    for _ in range(6):
        await guard.record(AuthFailure("127.0.0.9", "admin", T0, "InvalidPassword", "AMI"))
    assert applied == [] and guard.banned == ()


def scanner(source: str) -> AuthFailure:
    return AuthFailure(source, SCANNER_ENDPOINT, T0, kind="FailedACL")


def test_given_a_scanner_user_agent_from_outside_when_one_request_comes_then_refused_at_once(
        ) -> None:
    v = ag.record_failure(ag.GuardState(), scanner("203.0.113.9"), T0, TRUSTED, POLICY)
    assert v.changed and v.banned_until == T0 + timedelta(seconds=POLICY.ban_s)
    assert v.state.banned_sources() == ("203.0.113.9",)


def test_given_a_scanner_user_agent_from_the_carrier_then_never_refused() -> None:
    v = ag.record_failure(ag.GuardState(), scanner("10.20.1.1"), T0, TRUSTED, POLICY)
    assert v.trusted and not v.changed and v.state.banned_sources() == ()


async def test_given_scanner_requests_when_recorded_then_counted_and_outsiders_applied(
        caplog: pytest.LogCaptureFixture) -> None:
    applied: list[tuple[str, ...]] = []

    async def apply(sources: tuple[str, ...]) -> None:
        applied.append(sources)

    guard = AuthGuard(["127.0.0.1/32"], apply, Clock())
    caplog.set_level(logging.INFO, logger="callcenter.phones.guard")
    await guard.record(scanner("127.0.0.3"))
    await guard.record(scanner("127.0.0.1"))
    await guard.record(fail("127.0.0.4"))  # a wrong password: one of five, not a scanner
    assert guard.scanner_requests == 2
    assert applied == [("127.0.0.3",)] and guard.banned == ("127.0.0.3",)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "SIP source 127.0.0.3 refused for 600 s: a SIP scanner's User-Agent",
        "SIP scanner User-Agent from trusted 127.0.0.1: request denied, the source never "
        "refused as a whole (carrier network)"]
