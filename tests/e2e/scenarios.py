"""What the end-to-end tests do over and over, in one place: read the live queue from Redis, wait
for a call's record, call the HTTP API, list Asterisk's bridges, follow a phone's events, put a
citizen through to an operator, start a stack of a module's own, and check that a test left
nothing behind (no channel, no bridge, no line held).

The test tenant is ``dongnai`` (tests/e2e/stack.py ``base_config``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from callcenter.queue import agent as ag
from callcenter.queue.redis import AcdQueue
from callcenter.store.records import CallRecordStore
from callcenter.store.users import UserStore
from tests.e2e.phones import OperatorPhone, UnitPhone
from tests.e2e.stack import Stack, wait_until
from tests.support.config_files import config_data

TENANT = "dongnai"


# ---- the live queue (Redis) ----------------------------------------------------------------------
def acd(stack: Stack, work: Callable[[AcdQueue], Any]) -> Any:
    """``await work(queue)`` on an ``AcdQueue`` over the stack's Redis; its result.

    In a thread of its own: Playwright's sync API keeps an event loop running in the test's
    thread, where ``asyncio.run`` would be refused. The queue's instance name matters only to
    enqueueing and offering, which the tests leave to the app."""
    async def go() -> Any:
        client = aioredis.Redis.from_url(stack.redis.url)
        try:
            return await work(AcdQueue(client, "e2e-test", "testpbx"))
        finally:
            await client.aclose()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def snap(stack: Stack) -> dict[str, Any]:
    """The tenant's live queue (the snapshot of docs/live-state.md, what ``callcenter queue
    --json`` prints), read straight from Redis: no CLI process in the way."""
    return dict(acd(stack, lambda q: q.snapshot(TENANT)))


def agents(stack: Stack) -> dict[str, dict[str, Any]]:
    """Every operator of the tenant as the snapshot shows it, by extension."""
    return {a["extension"]: a for a in snap(stack)["agents"]}


def agent(stack: Stack, ext: str = "101") -> dict[str, Any]:
    """One operator as the queue's snapshot shows it."""
    return dict(next(a for a in snap(stack)["agents"] if a["extension"] == ext))


def agent_event(stack: Stack, ext: str, event: ag.Event) -> None:
    """What an operator's own action does (``ag.LogIn()``, ``ag.LogOut()``...)."""
    acd(stack, lambda q: q.agent_event(TENANT, ext, event))


# ---- call records --------------------------------------------------------------------------------
def record(stack: Stack, call_id: str | None = None, *, caller: str | None = None,
           dialled: str | None = None, last: int = 20, timeout: float = 10.0,
           interval: float = 0.2, cli: bool = False) -> dict[str, Any]:
    """The record of the call (asserted, waiting up to ``timeout`` for it to be written): the
    newest of the ``last`` records whose id is ``<node>:<call_id>`` and whose caller and
    dialled number are the ones given. Read with ``CallRecordStore`` (the tenant's records),
    or with ``cli``: ``callcenter calls --last N --json``, as an administrator would."""
    def matches(r: dict[str, Any]) -> bool:
        return ((call_id is None or r["id"].endswith(":" + call_id))
                and (caller is None or r["caller"] == caller)
                and (dialled is None or r["dialled"] == dialled))

    def rows() -> list[dict[str, Any]]:
        if cli:
            return stack.records(last)
        store = CallRecordStore(stack.database_url)
        try:
            return [r.to_json_dict() for r in store.last(last, tenant=TENANT)]
        finally:
            store.close()

    rec = wait_until(lambda: next((r for r in rows() if matches(r)), None), timeout, interval)
    assert rec, f"no record for {call_id or caller or dialled}:\n{stack.app_log_tail()}"
    return dict(rec)


def records_of(stack: Stack, callers: Any, last: int = 60,
               timeout: float = 10.0) -> list[dict[str, Any]]:
    """The records (``callcenter calls``) of these callers once there is one for each, waiting
    up to ``timeout``; what there is by then otherwise (the caller's assertion tells)."""
    wanted = set(callers)

    def complete() -> list[dict[str, Any]] | None:
        found = [r for r in stack.records(last) if r["caller"] in wanted]
        return found if len(found) >= len(wanted) else None

    done = wait_until(complete, timeout)
    return list(done) if done else [r for r in stack.records(last) if r["caller"] in wanted]


# ---- the HTTP API --------------------------------------------------------------------------------
def api(stack: Stack, method: str, path: str, body: dict[str, Any] | None = None, *,
        token: str | None = None, prefix: str = "/api/v1",
        timeout: float = 5.0) -> tuple[int, Any]:
    """One request to the app's ``prefix + path`` (JSON body, a Bearer ``token`` if given):
    (status, decoded JSON answer). An error status is answered, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{stack.http_port}{prefix}{path}",
                                 data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def ivr_in_force(stack: Stack) -> list[dict[str, Any]]:
    """``/api/ivr``: per tenant, the menus the running app has in force (root, FAQ items)."""
    status, body = api(stack, "GET", "/api/ivr", prefix="", token=stack.control_token,
                       timeout=3)
    assert status == 200, (status, body)
    return list(body)


def api_token(stack: Stack, user: str, role: str) -> str:
    """A console user of the tenant (no password) and an API token for them."""
    users = UserStore(stack.database_url)
    try:
        users.add_user(user, role, TENANT)
        return users.issue_token(user)[1]
    finally:
        users.close()


# ---- Asterisk ------------------------------------------------------------------------------------
def bridges(stack: Stack) -> dict[str, list[str]]:
    """Asterisk's bridges now: id -> the channels in it."""
    return {b["id"]: list(b["channels"]) for b in stack.ari("/bridges")}


def assert_nothing_left(stack: Stack) -> None:
    """The app still running (a test that stops it on purpose starts it again), no channel
    (within 10 s) and no bridge left in Asterisk, no line held and no call queued (within 5 s),
    no call record waiting in the journal (within 10 s)."""
    code = stack.app.poll() if stack.app is not None else "never started"
    assert code is None, f"the app died during the test (exit {code}):\n{stack.app_log_tail()}"
    assert wait_until(lambda: stack.ari("/channels") == [], 10), (
        f"channels left in Asterisk: {stack.ari('/channels')}")
    assert stack.ari("/bridges") == [], f"bridges left in Asterisk: {stack.ari('/bridges')}"
    assert wait_until(lambda: stack.pool_in_use() == 0, 5), "lines still held after the test"
    assert wait_until(lambda: snap(stack)["calls"] == [], 5), f"calls left queued: {snap(stack)}"
    assert wait_until(lambda: stack.health().get("journal_pending") == 0, 10), (
        f"call records left in the journal: {stack.health()}")


def nothing_left_after(stack_fixture: str) -> Any:
    """A fixture for a module with a stack of its own (the fixture named ``stack_fixture``):
    after each test that uses that stack, ``assert_nothing_left``. Tests that do not use it
    (and so start no stack) are left alone. In the module::

        nothing_left = nothing_left_after("guard_stack")
    """
    @pytest.fixture(autouse=True)
    def nothing_left(request: pytest.FixtureRequest) -> Iterator[None]:
        if stack_fixture not in request.fixturenames:
            yield
            return
        stack = request.getfixturevalue(stack_fixture)
        yield
        assert_nothing_left(stack)

    return nothing_left


# ---- phones --------------------------------------------------------------------------------------
def since(phone: Any, mark: int, kind: str, **match: Any) -> list[dict[str, Any]]:
    """The phone's ``kind`` events after its first ``mark`` events, with these field values."""
    with phone._lock:
        events = phone.events[mark:]
    return [e for e in events if e["event"] == kind
            and all(e.get(k) == v for k, v in match.items())]


def grows(phone: Any, index: int, by: int = 25, timeout: float = 5.0) -> bool:
    """Whether call ``index`` of ``phone`` keeps receiving RTP (``by`` more packets)."""
    start = phone.rtp_rx(index)
    return bool(wait_until(lambda: phone.rtp_rx(index) > start + by, timeout, 0.1))


def caller_rtp(phone: Any) -> int:
    """RTP packets a citizen's ``PhoneGroup`` has received so far (asks it for a report)."""
    before = len(phone.of("report"))
    phone.send("report")
    reports = phone.wait_for("report", before + 1, timeout=5)
    return int(reports[-1]["rtp_rx_packets"])


def connect(stack: Stack, op: OperatorPhone, citizen: UnitPhone) -> tuple[str, int]:
    """The citizen calls 1022 and is bridged with the operator (whose phone answers by itself),
    both hearing each other: (call id, the operator phone's call index)."""
    mark = len(op.events)
    citizen.dial(f"sip:1022@127.0.0.1:{stack.sip_port}")
    assert wait_until(lambda: since(op, mark, "confirmed"), 20), stack.app_log_tail()
    index = since(op, mark, "confirmed")[0]["index"]
    found = wait_until(lambda: [b for b, chans in bridges(stack).items()
                                if b.endswith("-bridge") and len(chans) == 2], 5)
    assert found, bridges(stack)
    assert wait_until(lambda: citizen.rtp_rx(0) > 10 and op.rtp_rx(index) > 10, 5)
    return found[0].removesuffix("-bridge"), int(index)


@contextmanager
def registered(stack: Stack, ext: str, **kwargs: Any) -> Iterator[OperatorPhone]:
    """Operator ``ext``'s phone (``Stack.operator_phone`` options), registered and reachable in
    the queue; closed afterwards."""
    phone = stack.operator_phone(ext, **kwargs)
    try:
        assert phone.wait_registered() == 200
        assert wait_until(lambda: agent(stack, ext)["reachable"], 15), snap(stack)
        yield phone
    finally:
        phone.close()


# ---- a stack of a module's own -------------------------------------------------------------------
def configure_tenant(stack: Stack, **keys: Any) -> None:
    """Set these keys of the test tenant's config (queue, prompts, units...) and write it."""
    stack.config_data["tenants"][0].update(keys)
    stack.write_config(stack.config_data)


@contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    """The stack started; stopped however the block ends (also when it failed to start)."""
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


# ---- operator 101 and the units' hotlines (transfers, hang-ups mid-transfer) ------------------
UNITS = config_data("e2e_transfer_units.yaml")


@contextmanager
def transfer_stack(workdir: Any, password: str, unit_port: int) -> Iterator[Stack]:
    """A started stack of a module's own: operator 101 (API token in ``.token``), the units of
    e2e_transfer_units.yaml, the outbound trunk to ``unit_port``."""
    s = Stack(workdir, operators={"101": password}, outbound_port=unit_port)
    configure_tenant(s, **config_data("e2e_operator_tenant.yaml"), **UNITS)
    with running(s):
        s.token = api_token(s, "101", "operator")  # type: ignore[attr-defined]
        yield s


@contextmanager
def logged_in_101(stack: Stack) -> Iterator[OperatorPhone]:
    """Operator 101's phone, answering by itself, registered and logged in."""
    with registered(stack, "101", auto_answer=0.2) as phone:
        agent_event(stack, "101", ag.LogIn())
        yield phone


@contextmanager
def operator_free_around(stack: Stack, op: OperatorPhone) -> Iterator[Stack]:
    """Operator 101 free before; after: nothing left (assert_nothing_left), no queued call,
    the operator free again; the phone hung up whatever happened."""
    def state() -> str:
        return str(agent(stack, "101")["state"])

    assert wait_until(lambda: state() == "available", 10), snap(stack)
    try:
        yield stack
        assert_nothing_left(stack)
        s = snap(stack)
        assert not s["calls"] and s["counts"]["queued"] == 0, s
        assert wait_until(lambda: state() == "available", 5), snap(stack)
    finally:
        op.hangup()
