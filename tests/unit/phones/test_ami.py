"""AmiWatcher against AMI sessions replayed from captured Asterisk 22 traffic.

panoramisk's own testing helper (``panoramisk.testing.Manager``) answers each action from a
fixture file; events are fed to the protocol the way the socket would deliver them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from panoramisk import testing, utils

from callcenter.phones.ami import (
    AmiActionError,
    AmiManager,
    AmiUnavailable,
    AmiWatcher,
)
from callcenter.phones.devices import AuthFailure

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ami"
LOG = "callcenter.phones.ami"


class ReplayManager(AmiManager, testing.Manager):  # type: ignore[misc]
    """An AmiManager whose actions are answered from fixture files (None: never answered)."""

    def __init__(self, answers: dict[str, str | None], **config: Any):
        self.answers = {k.lower(): v for k, v in answers.items()}
        utils.EOL = "\n"  # testing.Manager sets it only after replaying the login
        super().__init__(**config)
        # testing.Manager "closes" its fake protocol while setting it up (connection_made
        # closes the protocol it already holds): reopen it so a Shutdown or a drop is seen.
        self.protocol.closed = False

    def send_action(self, action: Any, as_list: Any = None, **kwargs: Any) -> Any:
        name = self.answers.get(str(action.get("Action", "")).lower())
        self.stream = str(FIXTURES / name) if name else None
        return super().send_action(action, as_list=as_list, **kwargs)

    def feed(self, fixture: str) -> None:
        """Deliver captured events as if they came from the socket."""
        self.protocol.data_received((FIXTURES / fixture).read_bytes())


DEFAULT_ANSWERS: dict[str, str | None] = {
    "login": "login_ok.txt",
    "pjsipshowendpoints": "pjsip_show_endpoints_none_registered.txt",
    "ping": "ping.txt",
    "bogus": "unknown_action.txt",
    "pjsipshowcontacts": "pjsip_show_contacts_none.txt",
}


@pytest.fixture(autouse=True)
def _restore_eol() -> Iterator[None]:
    # panoramisk.testing switches the module-wide line ending to "\n"; real sessions need CRLF.
    eol = utils.EOL
    yield
    utils.EOL = eol


class Harness:
    def __init__(self, *answer_sets: dict[str, str | None], fail_first: int = 0):
        self.answer_sets = list(answer_sets) or [DEFAULT_ANSWERS]
        self.fail_first = fail_first
        self.attempts = 0
        self.managers: list[ReplayManager] = []
        self.reach: list[tuple[str, bool]] = []
        self.failures: list[AuthFailure] = []
        self.watcher = AmiWatcher("127.0.0.1", 5038, "hotline-ami", "s3cret",
                                  on_reachability=self.on_reach,
                                  on_auth_failure=self.on_failure, connector=self.connect,
                                  backoff_initial_s=0.01, backoff_max_s=0.05,
                                  keepalive_s=3600, action_timeout_s=0.5)
        self.task: asyncio.Task[None] | None = None

    async def on_reach(self, endpoint: str, reachable: bool) -> None:
        self.reach.append((endpoint, reachable))

    async def on_failure(self, failure: AuthFailure) -> None:
        self.failures.append(failure)

    async def connect(self) -> AmiManager:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            raise ConnectionRefusedError(111, "Connection refused")
        answers = self.answer_sets[min(len(self.managers), len(self.answer_sets) - 1)]
        m = ReplayManager(answers, username="hotline-ami", secret="s3cret",
                          loop=asyncio.get_running_loop())
        self.managers.append(m)
        return m

    async def start(self, sessions: int = 1) -> None:
        self.task = asyncio.create_task(self.watcher.run())
        await self.until(lambda: self.watcher.sessions >= sessions and self.watcher.connected)
        await asyncio.sleep(0.01)  # let the seed finish

    async def until(self, predicate: Any, timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)

    async def settle(self) -> None:
        await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.watcher.close()
        assert self.task is not None
        await asyncio.wait_for(self.task, 2)


async def test_given_a_session_when_connected_then_every_endpoint_is_seeded() -> None:
    h = Harness({**DEFAULT_ANSWERS,
                 "pjsipshowendpoints": "pjsip_show_endpoints_101_registered.txt"})
    await h.start()
    assert h.watcher.connected
    assert h.reach == [("101", True), ("102", False), ("trunk", False)]
    await h.stop()
    assert not h.watcher.connected


async def test_given_an_operator_registering_then_unregistering_then_one_report_each() -> None:
    h = Harness()
    await h.start()
    assert h.reach == [("101", False), ("102", False), ("trunk", False)]
    h.reach.clear()
    h.managers[-1].feed("events_101_registers.txt")
    await h.until(lambda: h.reach)
    await h.settle()
    # PeerStatus and DeviceStateChange both say so: reported once, when the value changes.
    assert h.reach == [("101", True)]
    h.managers[-1].feed("events_101_unregisters.txt")
    await h.until(lambda: len(h.reach) == 2)
    await h.settle()
    assert h.reach == [("101", True), ("101", False)]
    assert h.watcher.reachable["101"] is False
    await h.stop()


async def test_given_a_phone_that_stops_answering_qualify_then_reported_unreachable() -> None:
    h = Harness()
    await h.start()
    h.reach.clear()
    h.managers[-1].feed("events_102_registers_then_stops_answering.txt")
    await h.until(lambda: len(h.reach) == 2)
    await h.settle()
    assert h.reach == [("102", True), ("102", False)]
    await h.stop()


async def test_given_wrong_passwords_from_127_0_0_2_then_auth_failures_in_order() -> None:
    h = Harness()
    await h.start()
    h.managers[-1].feed("events_auth_failures_from_127.0.0.2.txt")
    await h.until(lambda: len(h.failures) == 4)
    assert [(f.source_ip, f.account, f.kind) for f in h.failures] == [
        ("127.0.0.2", "102", "ChallengeResponseFailed"),
        ("127.0.0.2", "999", "InvalidAccountID"),
        ("127.0.0.2", "999", "InvalidAccountID"),
        ("127.0.0.2", "<unknown>", "ChallengeResponseFailed"),
    ]
    await h.stop()


async def test_given_asterisk_down_at_start_and_restarted_later_then_one_log_per_outage(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    h = Harness(DEFAULT_ANSWERS,
                {**DEFAULT_ANSWERS,
                 "pjsipshowendpoints": "pjsip_show_endpoints_101_registered.txt"},
                fail_first=4)
    await h.start()
    assert h.attempts == 5
    outage = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage) == 1 and outage[0].levelno == logging.WARNING
    assert "Connection refused" in outage[0].getMessage()
    assert any("connected again" in r.getMessage() for r in caplog.records)

    # Asterisk restarts: it says Shutdown; the watcher reconnects and seeds everything again.
    h.reach.clear()
    caplog.clear()
    h.managers[-1].feed("events_shutdown.txt")
    await h.until(lambda: h.watcher.sessions == 2 and h.watcher.connected)
    await h.until(lambda: len(h.reach) == 3)
    assert h.reach == [("101", True), ("102", False), ("trunk", False)]
    lost = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lost) == 2 and "session lost (Asterisk sent Shutdown)" in lost[0]
    assert "connected again" in lost[1]
    await h.stop()


async def test_given_a_refused_login_then_one_error_and_retries_until_closed(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    h = Harness({**DEFAULT_ANSWERS, "login": "login_failed.txt"})
    h.task = asyncio.create_task(h.watcher.run())
    await h.until(lambda: h.attempts >= 3)
    assert not h.watcher.connected
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "Authentication failed" in errors[0].getMessage()
    await h.stop()
    assert h.reach == []


async def test_given_a_session_when_actions_are_sent_then_answers_or_typed_errors() -> None:
    h = Harness({**DEFAULT_ANSWERS, "coreshowchannels": None})
    await h.start()
    [pong] = await h.watcher.send_action({"Action": "Ping"})
    assert pong["Response"] == "Success" and pong["Ping"] == "Pong"
    with pytest.raises(AmiActionError, match="Invalid/unknown command: Bogus"):
        await h.watcher.send_action({"Action": "Bogus"})
    with pytest.raises(AmiActionError, match="No Contacts found"):
        await h.watcher.send_action({"Action": "PJSIPShowContacts"})
    # No answer, then the connection drops: the caller hears so at once, no replay later.
    pending = asyncio.create_task(h.watcher.send_action({"Action": "CoreShowChannels"}))
    await asyncio.sleep(0.02)
    h.managers[-1].protocol.connection_lost(None)
    with pytest.raises(AmiUnavailable):
        await pending
    await h.stop()
    with pytest.raises(AmiUnavailable):
        await h.watcher.send_action({"Action": "Ping"})


async def test_given_asterisk_silent_when_keepalive_ping_unanswered_then_reconnects() -> None:
    h = Harness({**DEFAULT_ANSWERS, "ping": None}, DEFAULT_ANSWERS)
    h.watcher.keepalive_s = 0.05
    h.watcher.action_timeout_s = 0.1
    await h.start()
    await h.until(lambda: h.watcher.sessions == 2 and h.watcher.connected)
    assert h.managers[0].lost.done()
    await h.stop()


async def test_given_a_failing_consumer_when_reporting_then_the_session_survives() -> None:
    h = Harness()
    calls: list[tuple[str, bool]] = []

    async def broken(endpoint: str, reachable: bool) -> None:
        calls.append((endpoint, reachable))
        raise RuntimeError("redis down")

    h.watcher._on_reachability = broken
    await h.start()
    h.managers[-1].feed("events_101_registers.txt")
    await h.until(lambda: ("101", True) in calls)
    assert h.watcher.connected and h.watcher.sessions == 1
    await h.stop()


async def test_given_no_endpoints_configured_when_seeding_then_nothing_reported() -> None:
    # Asterisk answers an empty PJSIPShowEndpoints with "Response: Error / No endpoints found".
    empty = FIXTURES / "pjsip_show_endpoints_empty.txt"
    assert empty.exists()
    h = Harness({**DEFAULT_ANSWERS, "pjsipshowendpoints": empty.name})
    await h.start()
    assert h.reach == [] and h.watcher.connected
    await h.stop()
