"""AmiWatcher and AuthGuard against a real Asterisk: an operator's phone registering and
unregistering is seen through AMI, wrong passwords from 127.0.0.2 become AuthFailures, and
after five of them the source is refused (its ACL file rewritten, res_pjsip reloaded)
while the carrier's trusted address keeps working."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from callcenter.pbx.render import write_refused_sources
from callcenter.phones.ami import AmiActionError, AmiWatcher
from callcenter.phones.devices import AuthFailure
from callcenter.phones.guard import AuthGuard
from tests.e2e.phones import OperatorPhone
from tests.e2e.scenarios import nothing_left_after, running
from tests.e2e.stack import Stack

PASSWORDS = {"181": "ami-test-181-password", "182": "ami-test-182-password"}


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: its operators and refused sources touch no other test."""
    s = Stack(tmp_path_factory.mktemp("ami"), operators=PASSWORDS)
    with running(s):
        yield s


# After each test on pbx: no channel, no bridge left in Asterisk, no line held.
nothing_left = nothing_left_after("pbx")


class Seen:
    def __init__(self) -> None:
        self.reach: list[tuple[str, bool]] = []
        self.failures: list[AuthFailure] = []

    async def on_reach(self, endpoint: str, reachable: bool) -> None:
        self.reach.append((endpoint, reachable))

    async def on_failure(self, failure: AuthFailure) -> None:
        self.failures.append(failure)


async def until(predicate: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def watcher_for(pbx: Stack, seen: Seen, on_failure: Any = None) -> AmiWatcher:
    return AmiWatcher("127.0.0.1", int(pbx.config_data["service"]["ami_port"]),
                      pbx.secrets.ami_user, pbx.secrets.ami_password,
                      on_reachability=seen.on_reach,
                      on_auth_failure=on_failure or seen.on_failure)


def phone(pbx: Stack, ext: str, password: str, bind: str = "127.0.0.1") -> OperatorPhone:
    return OperatorPhone(pbx, ext, password, bind=bind)


async def test_given_an_operator_phone_when_it_registers_and_unregisters_then_ami_says_so(
        pbx: Stack) -> None:
    seen = Seen()
    watcher = watcher_for(pbx, seen)
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: {("181", False), ("182", False)} <= set(seen.reach))
        assert watcher.connected
        seen.reach.clear()

        op = await asyncio.to_thread(phone, pbx, "181", PASSWORDS["181"])
        try:
            assert await asyncio.to_thread(op.wait_registered) == 200
            await until(lambda: ("181", True) in seen.reach)
            assert watcher.reachable["181"] is True

            op.unregister()
            assert await asyncio.to_thread(op.wait_registered) == 200
            await until(lambda: seen.reach[-1:] == [("181", False)])
            assert seen.reach == [("181", True), ("181", False)]
        finally:
            await asyncio.to_thread(op.close)
        # An action ARI has no equivalent for, answered on the watcher's session.
        rows = await watcher.send_action({"Action": "PJSIPShowEndpoint", "Endpoint": "181"})
        assert rows[0]["Response"] == "Success"
        assert any(r.get("Event") == "EndpointDetail" for r in rows)
        # Least privilege (manager.conf write = system): what the app never sends is refused.
        for action in ({"Action": "UserEvent", "UserEvent": "probe"},
                       {"Action": "Originate", "Channel": "Local/0@nowhere",
                        "Application": "Wait", "Data": "0"}):
            with pytest.raises(AmiActionError, match="Permission denied"):
                await watcher.send_action(action)
    finally:
        await watcher.close()
        await asyncio.wait_for(task, 5)
    assert not watcher.connected


async def test_given_wrong_passwords_from_127_0_0_2_then_failures_then_refused(
        pbx: Stack) -> None:
    seen = Seen()
    applied: list[tuple[str, ...]] = []

    async def apply(sources: tuple[str, ...]) -> None:
        # What the composition root wires: rewrite the refused-sources file, reload PJSIP.
        def work() -> None:
            write_refused_sources(pbx.layout, sources)
            assert pbx.pbx is not None
            pbx.pbx.rx("module reload res_pjsip.so")
        await asyncio.to_thread(work)
        applied.append(sources)

    guard = AuthGuard(pbx.config_data["trunk"]["trusted_networks"], apply)

    async def on_failure(failure: AuthFailure) -> None:
        await seen.on_failure(failure)
        await guard.record(failure)

    watcher = watcher_for(pbx, seen, on_failure)
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.connected and ("182", False) in seen.reach)
        codes = []
        for _ in range(5):
            bad = await asyncio.to_thread(phone, pbx, "182", "not-the-password", "127.0.0.2")
            try:
                codes.append(await asyncio.to_thread(bad.wait_registered))
            finally:
                await asyncio.to_thread(bad.close)
        assert all(c in (401, 403) for c in codes), codes
        await until(lambda: len(seen.failures) >= 5)
        first = seen.failures[0]
        assert (first.source_ip, first.account, first.kind, first.service) == (
            "127.0.0.2", "182", "ChallengeResponseFailed", "PJSIP")
        await until(lambda: applied == [("127.0.0.2",)])
        assert guard.banned == ("127.0.0.2",)

        # Refused now even with the right password; the carrier's address still registers.
        good_banned = await asyncio.to_thread(phone, pbx, "182", PASSWORDS["182"], "127.0.0.2")
        try:
            assert await asyncio.to_thread(good_banned.wait_registered) == 403
        finally:
            await asyncio.to_thread(good_banned.close)
        good = await asyncio.to_thread(phone, pbx, "182", PASSWORDS["182"], "127.0.0.1")
        try:
            assert await asyncio.to_thread(good.wait_registered) == 200
            await until(lambda: ("182", True) in seen.reach)
        finally:
            await asyncio.to_thread(good.close)
    finally:
        await watcher.close()
        await asyncio.wait_for(task, 5)
        await apply(())  # leave the PBX without refused sources
