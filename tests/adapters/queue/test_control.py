"""Operators' controls against a real Redis: ``apply_action`` (what the phone's feature codes,
the CLI and the HTTP API share) and the ``callcenter agent`` / ``callcenter queue`` commands."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from callcenter.config.file import load_config
from callcenter.config.model import HotlineConfig
from callcenter.config.settings import Settings
from callcenter.queue import agent as ag
from callcenter.queue.control import AgentActionError, apply_action, resolve_reason
from callcenter.queue.policy import QueuePolicy
from callcenter.queue.redis import EVENTS, AcdQueue
from callcenter.runtime.redis_server import PrivateRedis
from tests.support.config_files import config_text

S = ag.AgentStatus
T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> dt.datetime:
        return self.t


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "hotline.yaml"
    path.write_text(config_text("two_provinces_operators.yaml"), encoding="utf-8")
    return path


@pytest.fixture
def config(config_path: Path) -> HotlineConfig:
    return load_config(config_path)


async def synced(acd: AcdQueue, config: HotlineConfig) -> None:
    """What the service does at start: every configured operator exists (logged out)."""
    for t in config.tenants:
        await acd.sync_operators(t.id, t.operators.operators)


@pytest.fixture
async def acd(redis_server: PrivateRedis, config: HotlineConfig) -> AsyncIterator[AcdQueue]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    # Default policies on purpose: apply_action must use the config's (thanhhoa's reasons).
    q = AcdQueue(client, "test", "pbx1", clock=Clock())
    await synced(q, config)
    yield q
    await client.aclose()


async def on_call(acd: AcdQueue, ext: str, call_id: str = "c1") -> None:
    """Put a logged-in, reachable operator on a queued call."""
    await acd.agent_event("dongnai", ext, ag.Reachable())
    await acd.enqueue("dongnai", call_id, caller="0909123456")
    offered = await acd.offer_next("dongnai")
    assert offered is not None and offered.extension == ext
    await acd.answered("dongnai", call_id, ext)


# ---- apply_action --------------------------------------------------------------------------
async def test_given_logged_out_when_login_then_available_and_published(
        acd: AcdQueue, config: HotlineConfig) -> None:
    pubsub = acd.redis.pubsub()
    await pubsub.subscribe(EVENTS)
    await pubsub.get_message(timeout=1)  # the subscription confirmation
    result = await apply_action(acd, config, "101", "login")
    assert (result.tenant, result.extension, result.action) == ("dongnai", "101", "login")
    assert result.state.status is S.AVAILABLE and not result.pending and result.changed
    assert result.message == "Đã đăng nhập. Máy lẻ 101 sẵn sàng nhận cuộc gọi."
    assert result.prompt_id == "agent-login"
    stored = await acd.agent("dongnai", "101")
    assert stored is not None and stored.status is S.AVAILABLE
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert msg is not None
    event = json.loads(msg["data"])
    assert (event["type"], event["cause"], event["extension"], event["state"]) == (
        "agent", "log_in", "101", "available")
    await pubsub.aclose()


async def test_given_logged_in_when_login_again_then_illegal_in_vietnamese(
        acd: AcdQueue, config: HotlineConfig) -> None:
    await apply_action(acd, config, "101", "login")
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "101", "login")
    assert (e.value.id, e.value.tenant) == ("agent.illegal", "dongnai")
    assert e.value.message == "Máy lẻ 101 đã đăng nhập rồi."


async def test_given_no_reason_when_pause_then_first_reason(
        acd: AcdQueue, config: HotlineConfig) -> None:
    await apply_action(acd, config, "101", "login")
    result = await apply_action(acd, config, "101", "pause")
    assert result.state.status is S.PAUSED and result.state.reason == "break"
    assert result.message == "Đã tạm nghỉ: Nghỉ giải lao."


@pytest.mark.parametrize(("reason", "expected"), [
    ("2", "meeting"), (3, "paperwork"), ("training", "training"), (" other ", "other")])
async def test_given_reason_as_digit_or_id_when_pause_then_that_reason(
        acd: AcdQueue, config: HotlineConfig, reason: str | int, expected: str) -> None:
    await apply_action(acd, config, "102", "login")
    result = await apply_action(acd, config, "102", "pause", reason)
    assert result.state.reason == expected and result.reason is not None
    assert result.reason.id == expected


@pytest.mark.parametrize("reason", ["9", 0, "lunch", "no_answer", True, "12"])
async def test_given_unknown_reason_when_pause_then_bad_reason_lists_valid_ones(
        acd: AcdQueue, config: HotlineConfig, reason: str | int) -> None:
    await apply_action(acd, config, "101", "login")
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "101", "pause", reason)
    assert e.value.id == "agent.bad_reason"
    assert [r.id for r in e.value.reasons] == ["break", "meeting", "paperwork", "training",
                                               "other"]
    assert "1: Nghỉ giải lao; 2: Họp" in e.value.message
    stored = await acd.agent("dongnai", "101")
    assert stored is not None and stored.status is S.AVAILABLE  # nothing changed


async def test_given_tenant_own_reasons_when_pause_by_digit_then_config_policy_used(
        acd: AcdQueue, config: HotlineConfig) -> None:
    # The AcdQueue was built with default policies: the tenant's "lunch" is not among them.
    await apply_action(acd, config, "201", "login")
    result = await apply_action(acd, config, "201", "pause", "1")
    assert (result.tenant, result.state.reason) == ("thanhhoa", "lunch")
    assert result.message == "Đã tạm nghỉ: Ăn trưa."
    assert acd.policy("thanhhoa") == config.tenants[1].operators.queue


async def test_given_paused_when_unpause_then_available(
        acd: AcdQueue, config: HotlineConfig) -> None:
    await apply_action(acd, config, "101", "login")
    await apply_action(acd, config, "101", "pause", "2")
    result = await apply_action(acd, config, "101", "unpause")
    assert result.state.status is S.AVAILABLE and result.state.reason is None
    assert result.message == "Đã hết tạm nghỉ. Máy lẻ 101 sẵn sàng nhận cuộc gọi."


async def test_given_available_when_unpause_then_illegal(
        acd: AcdQueue, config: HotlineConfig) -> None:
    await apply_action(acd, config, "101", "login")
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "101", "unpause")
    assert e.value.id == "agent.illegal"
    assert e.value.message == "Máy lẻ 101 không ở trạng thái tạm nghỉ."


async def test_given_logged_out_when_logout_or_pause_then_illegal(
        acd: AcdQueue, config: HotlineConfig) -> None:
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "101", "logout")
    assert e.value.message == "Máy lẻ 101 đã đăng xuất rồi."
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "101", "pause")
    assert (e.value.id, e.value.message) == ("agent.illegal",
                                             "Máy lẻ 101 chưa đăng nhập. Xin đăng nhập trước.")


async def test_given_on_call_when_pause_then_pending_until_ready_after_wrap_up(
        acd: AcdQueue, config: HotlineConfig) -> None:
    await apply_action(acd, config, "101", "login")
    await on_call(acd, "101")
    result = await apply_action(acd, config, "101", "pause", "2")
    assert result.pending and result.state.status is S.ON_CALL
    assert result.state.pending == ag.PENDING_PAUSE and result.state.pending_reason == "meeting"
    assert result.message == "Sẽ tạm nghỉ khi cuộc gọi hiện tại kết thúc: Họp."
    wrap = await acd.call_ended("dongnai", "101", "c1")
    assert wrap.status is S.WRAP_UP  # wrap_up_s 30 in the config
    done = await apply_action(acd, config, "101", "ready")
    assert done.state.status is S.PAUSED and done.state.reason == "meeting"
    assert not done.pending
    assert done.message == ("Đã kết thúc hoàn tất cuộc gọi. Máy lẻ 101 chuyển sang tạm nghỉ: "
                            "Họp.")


async def test_given_on_call_when_logout_then_pending_and_login_cancels_it(
        acd: AcdQueue, config: HotlineConfig) -> None:
    await apply_action(acd, config, "101", "login")
    await on_call(acd, "101")
    out = await apply_action(acd, config, "101", "logout")
    assert out.pending and out.state.pending == ag.PENDING_LOGOUT
    assert out.message == "Máy lẻ 101 sẽ đăng xuất khi cuộc gọi hiện tại kết thúc."
    back = await apply_action(acd, config, "101", "login")
    assert back.state.status is S.ON_CALL and back.state.pending is None and not back.pending
    assert back.message.startswith("Đã hủy yêu cầu đăng xuất.")


async def test_given_wrap_up_when_ready_then_available_now(
        acd: AcdQueue, config: HotlineConfig) -> None:
    await apply_action(acd, config, "101", "login")
    await on_call(acd, "101")
    await acd.call_ended("dongnai", "101", "c1")
    result = await apply_action(acd, config, "101", "ready")
    assert result.state.status is S.AVAILABLE and result.changed
    assert result.message == ("Đã kết thúc hoàn tất cuộc gọi. Máy lẻ 101 sẵn sàng nhận cuộc "
                              "gọi.")
    assert ag.OfferCalls() in result.commands


async def test_given_available_when_ready_then_nothing_changes(
        acd: AcdQueue, config: HotlineConfig) -> None:
    login = await apply_action(acd, config, "101", "login")
    result = await apply_action(acd, config, "101", "ready")
    assert not result.changed and result.state == login.state
    assert result.message == "Máy lẻ 101 đang sẵn sàng nhận cuộc gọi."


async def test_given_logged_out_or_on_call_when_ready_then_illegal(
        acd: AcdQueue, config: HotlineConfig) -> None:
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "101", "ready")
    assert e.value.id == "agent.illegal"
    await apply_action(acd, config, "101", "login")
    await on_call(acd, "101")
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "101", "ready")
    assert e.value.message == "Máy lẻ 101 không ở trạng thái hoàn tất cuộc gọi."


async def test_given_unconfigured_extension_then_unknown(
        acd: AcdQueue, config: HotlineConfig) -> None:
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "999", "login")
    assert (e.value.id, e.value.tenant) == ("agent.unknown", None)
    assert e.value.message == "Máy lẻ này chưa được khai báo là tổng đài viên."
    assert e.value.prompt_id == "agent-unknown"


async def test_given_unknown_action_then_bad_action(
        acd: AcdQueue, config: HotlineConfig) -> None:
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "101", "dance")
    assert e.value.id == "agent.bad_action"


async def test_given_configured_but_not_in_redis_then_not_loaded(
        acd: AcdQueue, config: HotlineConfig) -> None:
    await acd.redis.flushall()
    with pytest.raises(AgentActionError) as e:
        await apply_action(acd, config, "101", "login")
    assert (e.value.id, e.value.tenant) == ("agent.not_loaded", "dongnai")


async def test_given_redis_down_then_unavailable(tmp_path: Path, config: HotlineConfig) -> None:
    client = aioredis.Redis.from_url(f"unix://{tmp_path}/none.sock", socket_connect_timeout=1)
    try:
        with pytest.raises(AgentActionError) as e:
            await apply_action(AcdQueue(client, "t", "pbx1"), config, "101", "login")
    finally:
        await client.aclose()
    assert e.value.id == "agent.unavailable"
    assert e.value.message == "Hệ thống tổng đài viên tạm thời gián đoạn. Xin thử lại sau."


def test_given_reason_forms_then_resolved_against_policy() -> None:
    p = QueuePolicy()
    assert resolve_reason(p, None).id == "break"  # type: ignore[union-attr]
    assert resolve_reason(p, "").id == "break"  # type: ignore[union-attr]
    assert resolve_reason(p, 5).id == "other"  # type: ignore[union-attr]
    assert resolve_reason(p, 6) is None
    assert resolve_reason(p, "٣") is None  # digits, but not ASCII ones


# ---- CLI -----------------------------------------------------------------------------------
def _settings(redis_server: PrivateRedis, config_path: Path) -> Settings:
    return Settings.from_env(config_path=config_path, redis_url=redis_server.url)


def _prepare(redis_server: PrivateRedis, config: HotlineConfig) -> None:
    async def go() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            await client.flushall()
            q = AcdQueue(client, "svc", "pbx1")
            await synced(q, config)
            await q.agent_event("dongnai", "102", ag.Reachable())
            await q.agent_event("dongnai", "102", ag.LogIn())
            await q.enqueue("dongnai", "pbx1-1.1", caller="0909123456", urgent=True)
            await q.enqueue("dongnai", "pbx1-1.2", caller="02513822111")
        finally:
            await client.aclose()

    asyncio.run(go())


def _main(argv: list[str], settings: Settings) -> int:
    from callcenter.cli import build_parser

    args = build_parser().parse_args(argv)
    return int(args.handler(args, settings))


def test_given_cli_when_login_then_exit_0_and_confirmation(
        redis_server: PrivateRedis, config_path: Path, config: HotlineConfig,
        capsys: pytest.CaptureFixture[str]) -> None:
    _prepare(redis_server, config)
    settings = _settings(redis_server, config_path)
    assert _main(["agent", "login", "101"], settings) == 0
    out = capsys.readouterr().out
    assert out == ("101 (dongnai): Đã đăng nhập. Máy lẻ 101 sẵn sàng nhận cuộc gọi. "
                   "[Sẵn sàng (available)]\n")
    assert _main(["agent", "pause", "101", "--reason", "2", "--json"], settings) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reason"] == "meeting" and data["agent"]["state"] == "paused"
    assert data["message"] == "Đã tạm nghỉ: Họp." and data["pending"] is False


def test_given_cli_when_refused_then_exit_2_with_id_and_vietnamese_on_stderr(
        redis_server: PrivateRedis, config_path: Path, config: HotlineConfig,
        capsys: pytest.CaptureFixture[str]) -> None:
    _prepare(redis_server, config)
    settings = _settings(redis_server, config_path)
    assert _main(["agent", "login", "102"], settings) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    # Log lines of the preparation may precede it when an earlier test set up CLI logging.
    assert captured.err.endswith("error: agent.illegal: Máy lẻ 102 đã đăng nhập rồi.\n")
    assert _main(["agent", "unpause", "555"], settings) == 2
    assert "agent.unknown: Máy lẻ này chưa được khai báo là tổng đài viên." in \
        capsys.readouterr().err


def test_given_cli_queue_json_then_exactly_the_snapshot(
        redis_server: PrivateRedis, config_path: Path, config: HotlineConfig,
        capsys: pytest.CaptureFixture[str]) -> None:
    _prepare(redis_server, config)
    settings = _settings(redis_server, config_path)
    assert _main(["queue", "--tenant", "dongnai", "--json"], settings) == 0
    printed = json.loads(capsys.readouterr().out)

    async def snap() -> dict[str, Any]:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            q = AcdQueue(client, "svc", "pbx1", {"dongnai": config.tenants[0].operators.queue})
            return await q.snapshot("dongnai")
        finally:
            await client.aclose()

    expected = asyncio.run(snap())

    def timeless(s: dict[str, Any]) -> dict[str, Any]:
        drop = ("at_ms", "wait_s", "time_in_state_s", "longest_wait_s")
        def clean(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items() if k not in drop}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x
        return dict(clean(s))

    assert timeless(printed) == timeless(expected)
    assert printed["counts"]["queued"] == 2 and printed["calls"][0]["caller"] == "0909123456"
    # Every tenant: one snapshot per line.
    assert _main(["queue", "--json"], settings) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["tenant"] for line in lines] == ["dongnai", "thanhhoa"]


def test_given_cli_queue_human_then_callers_masked_and_states_in_vietnamese(
        redis_server: PrivateRedis, config_path: Path, config: HotlineConfig,
        capsys: pytest.CaptureFixture[str]) -> None:
    _prepare(redis_server, config)
    settings = _settings(redis_server, config_path)
    assert _main(["queue", "--tenant", "dongnai"], settings) == 0
    out = capsys.readouterr().out
    assert "0909123456" not in out and "*******456" in out and "********111" in out
    assert out.startswith("dongnai — Đồng Nai\n")
    assert "waiting calls: 2 (0 ringing, 1 urgent)" in out
    lines = out.splitlines()
    first = next(line for line in lines if line.strip().startswith("1 "))
    assert "!" in first and "*******456" in first  # the urgent call is first
    row = next(line for line in lines if line.strip().startswith("102 "))
    assert "Trần Văn Minh" in row and "Sẵn sàng (available)" in row and row.endswith("yes")
    row = next(line for line in lines if line.strip().startswith("101 "))
    assert "Chưa đăng nhập (logged_out)" in row and row.endswith("no")
    assert "totals: free 1, serving 1, reachable 1" in out


def test_given_cli_agent_list_then_every_operator_with_tenant(
        redis_server: PrivateRedis, config_path: Path, config: HotlineConfig,
        capsys: pytest.CaptureFixture[str]) -> None:
    _prepare(redis_server, config)
    settings = _settings(redis_server, config_path)
    assert _main(["agent", "list", "--json"], settings) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["tenant"], r["extension"], r["state"]) for r in rows] == [
        ("dongnai", "101", "logged_out"), ("dongnai", "102", "available"),
        ("thanhhoa", "201", "logged_out")]
    assert _main(["agent", "list", "--tenant", "thanhhoa"], settings) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("thanhhoa   201 ")
    assert _main(["agent", "list", "--tenant", "nowhere"], settings) == 2
    assert "no tenant 'nowhere'" in capsys.readouterr().err


def test_given_redis_down_when_cli_then_exit_2(
        tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env(config_path=config_path,
                                 redis_url=f"unix://{tmp_path}/none.sock")
    assert _main(["queue"], settings) == 2
    assert "unreachable" in capsys.readouterr().err
    assert _main(["agent", "login", "101"], settings) == 2
    assert "agent.unavailable" in capsys.readouterr().err


# ---- feature codes (fake ARI; real Redis, real prompt library) -----------------------------
class FakeAri:
    """Records REST calls; ``gone`` makes every channel call fail as a hung-up channel does."""

    def __init__(self, gone: bool = False, fail_variable: bool = False) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.gone = gone
        self.fail_variable = fail_variable

    async def request(self, method: str, path: str, **params: Any) -> Any:
        from callcenter.ari_app.client import AriError, ChannelGone

        self.calls.append((method, path, params))
        if self.gone:
            raise ChannelGone(method, path, 404, '{"message":"Channel not found"}')
        if self.fail_variable and path.endswith("/variable"):
            raise AriError(method, path, 500, "boom")
        return None


def channel(ext: str, cid: str = "1763859663.60") -> dict[str, Any]:
    """A StasisStart channel of an operator's phone, as Asterisk 22 sends it."""
    return {"id": cid, "name": f"PJSIP/{ext}-0000001a", "state": "Ring",
            "protocol_id": "abc@127.0.0.1", "caller": {"name": "", "number": ext},
            "connected": {"name": "", "number": ""}, "accountcode": "",
            "dialplan": {"context": "from-operators", "exten": "*11", "priority": 1,
                         "app_name": "Stasis", "app_data": "hotline,agent,login"},
            "creationtime": "2026-11-23T08:00:00.000+0700", "language": "vi"}


@pytest.fixture
def prompts(tmp_path: Path) -> Any:
    from callcenter.ivr.prompt_library import PromptLibrary

    return PromptLibrary(tmp_path / "sounds", "/srv/hotline/main/sounds", None)


def test_given_channel_names_then_extension_is_the_pjsip_endpoint() -> None:
    from callcenter.queue.features import extension_of

    assert extension_of({"name": "PJSIP/101-0000001a"}) == "101"
    assert extension_of({"name": "PJSIP/trunk-out-00000002"}) == "trunk-out"
    assert extension_of({"name": "SIP/101-0000001a"}) is None
    assert extension_of({"name": "PJSIP/"}) is None
    assert extension_of({}) is None


async def test_given_login_code_then_prompt_variable_set_and_channel_continued(
        acd: AcdQueue, config: HotlineConfig, prompts: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    from callcenter.pbx.prompts import cache_key
    from callcenter.queue.features import handle_feature

    ari = FakeAri()
    caplog.set_level("INFO", logger="callcenter.queue.features")
    await handle_feature(ari, acd, config, prompts, channel("101"), ["agent", "login"])  # type: ignore[arg-type]
    text = "Đã đăng nhập. Máy lẻ 101 sẵn sàng nhận cuộc gọi."
    path = f"/srv/hotline/main/sounds/cache/{cache_key(text)}"
    assert ari.calls == [
        ("POST", "/channels/1763859663.60/variable",
         {"variable": "HOTLINE_FEATURE_PROMPT", "value": path}),
        ("POST", "/channels/1763859663.60/continue", {}),
    ]
    assert (prompts.cache_host / f"{cache_key(text)}.wav").stat().st_size > 1000  # spoken
    stored = await acd.agent("dongnai", "101")
    assert stored is not None and stored.status is S.AVAILABLE
    # Only this module's lines: other loggers' INFO lines show up when an earlier test (the
    # CLI) left the root logger at INFO.
    lines = [r.getMessage() for r in caplog.records
             if r.levelname == "INFO" and r.name == "callcenter.queue.features"]
    assert lines == ["feature code: extension=101 tenant=dongnai action=login "
                     "result=ok available"]


async def test_given_pause_with_digit_then_reason_applied(
        acd: AcdQueue, config: HotlineConfig, prompts: Any) -> None:
    from callcenter.pbx.prompts import cache_key
    from callcenter.queue.features import handle_feature

    await apply_action(acd, config, "201", "login")
    ari = FakeAri()
    await handle_feature(ari, acd, config, prompts, channel("201"), ["agent", "pause", "2"])  # type: ignore[arg-type]
    stored = await acd.agent("thanhhoa", "201")
    assert stored is not None and stored.reason == "meeting"
    assert ari.calls[0][2]["value"].endswith(cache_key("Đã tạm nghỉ: Họp giao ban."))


async def test_given_refused_code_then_error_prompt_and_channel_continued(
        acd: AcdQueue, config: HotlineConfig, prompts: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    from callcenter.pbx.prompts import cache_key
    from callcenter.queue.features import handle_feature

    caplog.set_level("INFO", logger="callcenter.queue.features")
    ari = FakeAri()
    await handle_feature(ari, acd, config, prompts, channel("777"), ["agent", "login"])  # type: ignore[arg-type]
    unknown = cache_key("Máy lẻ này chưa được khai báo là tổng đài viên.")
    assert ari.calls[0][2]["value"] == f"/srv/hotline/main/sounds/cache/{unknown}"
    assert ari.calls[1][:2] == ("POST", "/channels/1763859663.60/continue")
    assert "extension=777 tenant=default action=login result=refused agent.unknown" in \
        caplog.text


async def test_given_failures_then_never_raises_and_channel_still_continued(
        acd: AcdQueue, config: HotlineConfig, prompts: Any, tmp_path: Path) -> None:
    from callcenter.queue.features import handle_feature

    # Redis down: the operator hears the "unavailable" sentence.
    client = aioredis.Redis.from_url(f"unix://{tmp_path}/none.sock", socket_connect_timeout=1)
    try:
        ari = FakeAri()
        await handle_feature(ari, AcdQueue(client, "t", "pbx1"), config, prompts,  # type: ignore[arg-type]
                             channel("101"), ["agent", "login"])
    finally:
        await client.aclose()
    assert [c[1].rsplit("/", 1)[1] for c in ari.calls] == ["variable", "continue"]
    # Setting the variable fails: still continued (no prompt, the dialplan hangs up).
    ari = FakeAri(fail_variable=True)
    await handle_feature(ari, acd, config, prompts, channel("101"), ["agent", "login"])  # type: ignore[arg-type]
    assert [c[1].rsplit("/", 1)[1] for c in ari.calls] == ["variable", "continue"]
    # Something unexpected (no args at all, a broken prompt library): still continued.
    ari = FakeAri()
    await handle_feature(ari, acd, config, None, channel("101"), [])  # type: ignore[arg-type]
    assert [c[1].rsplit("/", 1)[1] for c in ari.calls] == ["continue"]
    # The operator hung up: one try, no error.
    ari = FakeAri(gone=True)
    await handle_feature(ari, acd, config, prompts, channel("101"), ["agent", "logout"])  # type: ignore[arg-type]
    assert [c[1].rsplit("/", 1)[1] for c in ari.calls] == ["variable"]
