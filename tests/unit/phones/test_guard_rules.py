"""Refusing SIP sources after repeated auth failures: the pure rules and the AuthGuard adapter."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from callcenter.config.model import SipGuardConfig
from callcenter.phones import guard_rules as ag
from callcenter.phones.devices import SCANNER_ENDPOINT, AuthFailure
from callcenter.phones.guard import AuthGuard, guard_policy

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
@example([1.0, 1.0, 1.0, 60.0, 5.960464477539063e-08])
def test_given_any_failure_times_when_recorded_then_banned_iff_five_within_60_s(
        raw: list[float]) -> None:
    offsets = sorted(raw)
    state, verdicts = run(offsets)
    first_ban = next((i for i, v in enumerate(verdicts) if v.changed), None)
    # Reference: the first failure that has 4 more within the 60 s before it (inclusive), on
    # the datetimes the rules see (whole microseconds: found, 6e-08 s and 60 s are 60 s apart).
    at = [timedelta(seconds=x) for x in offsets]
    expected = next((i for i, t in enumerate(at)
                     if sum(1 for u in at[:i + 1] if t - u < timedelta(seconds=60)) >= 5), None)
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
    assert warnings == ["SIP source 127.0.0.2 refused for 600 s: 5 wrong passwords in "
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


def probe(source: str, account: str = "5551", kind: str = "InvalidAccountID") -> AuthFailure:
    return AuthFailure(source, account, T0, kind=kind)


def test_given_six_invalid_account_ids_from_one_source_when_recorded_then_not_refused() -> None:
    # Unauthenticated REGISTERs for accounts that do not exist, "from" an operator's address:
    # Asterisk raises InvalidAccountID before any challenge, so the source may be forged.
    state = ag.GuardState()
    for i in range(6):
        v = ag.record_failure(state, probe("127.0.0.7", f"55{i}"), T0 + timedelta(seconds=i),
                              TRUSTED, POLICY)
        assert not v.counted and not v.changed
        state = v.state
    assert state.banned_sources() == () and state.failures == {}


@given(st.lists(st.sampled_from([("InvalidAccountID", "999"),
                                 ("ChallengeResponseFailed", ag.UNKNOWN_ACCOUNT),
                                 ("InvalidPassword", "101"), ("FailedACL", SCANNER_ENDPOINT)]),
                max_size=300))
def test_given_any_flood_of_forgeable_failures_when_recorded_then_never_refused(
        kinds: list[tuple[str, str]]) -> None:
    state = ag.GuardState()
    for i, (kind, account) in enumerate(kinds):
        state = ag.record_failure(state, probe("203.0.113.7", account, kind),
                                  T0 + timedelta(milliseconds=i), TRUSTED, POLICY).state
    assert state == ag.GuardState()


def test_given_forged_digest_answers_for_no_account_when_recorded_then_not_refused() -> None:
    # A REGISTER with a made-up Authorization header for an unknown account: Asterisk's
    # artificial endpoint raises ChallengeResponseFailed with AccountID <unknown>.
    state = ag.GuardState()
    for i in range(10):
        state = ag.record_failure(state, probe("127.0.0.7", ag.UNKNOWN_ACCOUNT,
                                               "ChallengeResponseFailed"),
                                  T0 + timedelta(seconds=i), TRUSTED, POLICY).state
    assert state.banned_sources() == ()


def test_given_five_challenge_response_failures_for_a_real_account_then_refused() -> None:
    state = ag.GuardState()
    for i in range(5):
        v = ag.record_failure(state, AuthFailure("127.0.0.7", "101", T0, "ChallengeResponseFailed"),
                              T0 + timedelta(seconds=i), TRUSTED, POLICY)
        state = v.state
    assert v.counted and v.changed and state.banned_sources() == ("127.0.0.7",)


def test_given_a_never_refuse_network_when_it_sends_wrong_passwords_then_never_refused() -> None:
    office = ag.parse_networks(["127.0.0.1/32", "198.51.100.0/24"])
    state, verdicts = ag.GuardState(), []
    for i in range(20):
        v = ag.record_failure(state, fail("198.51.100.20"), T0 + timedelta(seconds=i), office,
                              POLICY)
        state = v.state
        verdicts.append(v)
    assert all(v.trusted and not v.changed for v in verdicts)
    assert state.banned_sources() == ()


def refuse(state: ag.GuardState, source: str, at: datetime,
           policy: ag.GuardPolicy) -> ag.Verdict:
    for i in range(policy.max_failures):
        v = ag.record_failure(state, fail(source), at + timedelta(milliseconds=i), TRUSTED, policy)
        state = v.state
    return v


def test_given_the_refused_list_full_when_another_source_is_refused_then_the_oldest_goes() -> None:
    # A flood of (possibly forged) wrong passwords from many addresses cannot grow the ACL
    # file, and the PJSIP reload with it, without bound.
    policy = ag.GuardPolicy(max_refused=3)
    state = ag.GuardState()
    for n in range(3):
        state = refuse(state, f"203.0.113.{n}", T0 + timedelta(seconds=n), policy).state
    v = refuse(state, "203.0.113.9", T0 + timedelta(seconds=10), policy)
    assert v.changed and v.evicted == ("203.0.113.0",)
    assert v.state.banned_sources() == ("203.0.113.1", "203.0.113.2", "203.0.113.9")


@given(st.integers(1, 20), st.integers(0, 60))
def test_given_any_number_of_refusals_then_never_more_than_max_refused(cap: int,
                                                                       sources: int) -> None:
    policy = ag.GuardPolicy(max_refused=cap)
    state = ag.GuardState()
    for n in range(sources):
        state = refuse(state, f"203.0.113.{n}", T0 + timedelta(seconds=n), policy).state
    assert len(state.banned) == min(cap, sources)
    assert set(state.banned) == {f"203.0.113.{n}" for n in range(max(0, sources - cap), sources)}


def test_given_a_bad_cap_when_the_policy_is_built_then_refused() -> None:
    with pytest.raises(ValueError):
        ag.GuardPolicy(max_refused=0)


def test_given_a_forged_scanner_user_agent_when_one_request_comes_then_not_refused() -> None:
    # One packet with "friendly-scanner" "from" an operator's address must not cut it off;
    # Asterisk's scanner endpoint denies the request itself.
    v = ag.record_failure(ag.GuardState(), scanner("203.0.113.9"), T0, TRUSTED, POLICY)
    assert not v.counted and not v.changed and v.state.banned_sources() == ()


async def test_given_scanner_requests_and_probes_when_recorded_then_counted_never_applied(
        caplog: pytest.LogCaptureFixture) -> None:
    applied: list[tuple[str, ...]] = []

    async def apply(sources: tuple[str, ...]) -> None:
        applied.append(sources)

    guard = AuthGuard(["127.0.0.1/32"], apply, Clock())
    caplog.set_level(logging.INFO, logger="callcenter.phones.guard")
    await guard.record(scanner("127.0.0.3"))
    await guard.record(scanner("127.0.0.1"))
    for i in range(6):
        await guard.record(probe("127.0.0.7", f"55{i}"))
    await guard.record(fail("127.0.0.4"))  # a wrong password: one of five
    assert (guard.scanner_requests, guard.account_probes) == (2, 6)
    assert applied == [] and guard.banned == ()
    guard.log_probes()
    guard.log_probes()  # nothing new: no second line
    infos = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert infos == [
        "SIP scanner User-Agent from 127.0.0.3: request denied, the source not refused (one "
        "packet proves no source address)",
        "SIP scanner User-Agent from 127.0.0.1 (trusted): request denied, the source not "
        "refused (one packet proves no source address)",
        "SIP authentication failure from 127.0.0.4 (account '101', ChallengeResponseFailed), "
        "1 of 5 in 60 s",
        "6 SIP unknown-account probe(s) since the last tick (last from 127.0.0.7, account "
        "'555', InvalidAccountID): counted, never refused (the source may be forged)"]


async def test_given_never_refuse_networks_and_a_small_cap_when_configured_then_both_hold(
        caplog: pytest.LogCaptureFixture) -> None:
    applied: list[tuple[str, ...]] = []

    async def apply(sources: tuple[str, ...]) -> None:
        applied.append(sources)

    clock = Clock()
    guard = AuthGuard(["127.0.0.1/32"], apply, clock, never_refuse=["198.51.100.0/24"],
                      policy=guard_policy(SipGuardConfig(max_refused=1)))
    for source in ("198.51.100.7", "203.0.113.1", "203.0.113.2"):
        for _ in range(5):
            clock.now += timedelta(seconds=1)
            await guard.record(fail(source))
    assert guard.banned == ("203.0.113.2",)
    assert applied == [("203.0.113.1",), ("203.0.113.2",)]
    assert (guard.refusals, guard.refusals_evicted) == (2, 1)
    assert any("SIP refused list full (1): lifted the oldest refusal(s) of 203.0.113.1"
               in r.getMessage() for r in caplog.records)
    # A config reload that lists the office no more: its address counts again from now on.
    guard.configure(["127.0.0.1/32"], [], guard.policy)
    for _ in range(5):
        await guard.record(fail("198.51.100.7"))
    assert guard.banned == ("198.51.100.7",)
