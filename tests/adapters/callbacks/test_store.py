"""Callback requests (a waiting caller pressed 1): the store, its CLI and its HTTP routes, on
SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcenter.callbacks import cli as callbacks_cli
from callcenter.callbacks.store import CallbackError, CallbackStore
from callcenter.cli import AREA_COMMANDS
from callcenter.config.settings import Settings
from callcenter.store.migrate import upgrade_head
from callcenter.store.models import Base
from tests.support import api as support
from tests.support.api import Api
from tests.support.concurrency import run_together
from tests.support.schema import model_diff

api = support.api
hotline_config = support.hotline_config

T0 = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)  # 08:00 in Vietnam
CALLER = "0912345678"


@pytest.fixture
def callbacks(database_url: str) -> Iterator[CallbackStore]:
    upgrade_head(database_url)
    store = CallbackStore(database_url)
    yield store
    store.close()


def test_given_migrated_database_then_callbacks_and_call_records_match_the_models(
        database_url: str) -> None:
    assert model_diff(database_url, ["callbacks", "call_records"]) == []


def test_given_request_twice_for_one_call_then_one_open_request_the_first_kept(
        callbacks: CallbackStore) -> None:
    first = callbacks.request("dongnai", "pbx1:1.1", CALLER, T0)
    again = callbacks.request("dongnai", "pbx1:1.1", "0999999999", T0 + dt.timedelta(seconds=5))
    assert again == first
    assert (first.status, first.caller, first.requested_at, first.handled_by) == (
        "open", CALLER, T0, None)
    assert callbacks.open() == [first]


def test_given_eight_threads_requesting_for_one_call_then_one_row(
        callbacks: CallbackStore) -> None:
    ids: list[int] = []
    errors = run_together(lambda: ids.append(
        callbacks.request("dongnai", "pbx1:2.2", CALLER, T0).id), 8)
    assert errors == []
    assert len(set(ids)) == 1 and len(ids) == 8
    assert len(callbacks.recent()) == 1


def test_given_requests_of_two_tenants_when_open_then_filtered_and_oldest_first(
        callbacks: CallbackStore) -> None:
    late = callbacks.request("dongnai", "pbx1:3.1", "0911000001", T0 + dt.timedelta(minutes=9))
    early = callbacks.request("dongnai", "pbx1:3.2", "0911000002", T0)
    other = callbacks.request("thanhhoa", "pbx1:3.3", "0911000003", T0 + dt.timedelta(minutes=1))
    assert [r.id for r in callbacks.open("dongnai")] == [early.id, late.id]
    assert [r.id for r in callbacks.open("thanhhoa")] == [other.id]
    assert [r.id for r in callbacks.open()] == [early.id, other.id, late.id]


def test_given_open_request_when_done_then_closed_and_not_open_any_more(
        callbacks: CallbackStore) -> None:
    req = callbacks.request("dongnai", "pbx1:4.1", CALLER, T0)
    at = T0 + dt.timedelta(minutes=12)
    done = callbacks.done(req.id, "101", "Đã gọi lại, công dân hẹn gửi hồ sơ.", at=at)
    assert (done.status, done.handled_by, done.handled_at, done.note) == (
        "done", "101", at, "Đã gọi lại, công dân hẹn gửi hồ sơ.")
    assert callbacks.open() == []
    assert callbacks.recent() == [done]
    # A second "done" (another operator, a double click) is refused, the first stands.
    with pytest.raises(CallbackError) as e:
        callbacks.done(req.id, "102")
    assert e.value.id == "callback.closed"
    assert callbacks.get(req.id) == done


def test_given_unanswered_attempts_then_counted_last_result_kept_still_open(
        callbacks: CallbackStore) -> None:
    req = callbacks.request("dongnai", "pbx1:4.1", CALLER, T0)
    assert (req.attempts, req.last_result) == (0, None)
    first = callbacks.attempt(req.id, "busy", at=T0 + dt.timedelta(minutes=5))
    second = callbacks.attempt(req.id, "no_answer", at=T0 + dt.timedelta(minutes=35))
    assert (first.attempts, first.last_result) == (1, "busy")
    assert (second.status, second.attempts, second.last_result, second.last_attempt_at) == (
        "open", 2, "no_answer", T0 + dt.timedelta(minutes=35))
    assert callbacks.open() == [second]
    assert second.to_json_dict()["attempts"] == 2


def test_given_call_back_answered_then_done_with_its_call_recording_and_attempt(
        callbacks: CallbackStore) -> None:
    req = callbacks.request("dongnai", "pbx1:4.1", CALLER, T0)
    callbacks.attempt(req.id, "busy", at=T0 + dt.timedelta(minutes=5))
    at = T0 + dt.timedelta(minutes=40)
    done = callbacks.done(req.id, "101", "Gọi lại từ máy 101", at=at,
                          dial_call_id="cb1-abcdef-out", recording="dongnai-x.wav")
    assert (done.status, done.handled_by, done.attempts, done.last_result,
            done.last_attempt_at, done.dial_call_id, done.recording) == (
        "done", "101", 2, "answered", at, "cb1-abcdef-out", "dongnai-x.wav")
    with pytest.raises(CallbackError) as e:  # closed: no more attempts
        callbacks.attempt(req.id, "busy", at=at)
    assert e.value.id == "callback.closed"
    assert callbacks.get(req.id) == done
    with pytest.raises(CallbackError) as e:
        callbacks.attempt(4242, "busy", at=at)
    assert e.value.id == "callback.not_found"


def test_given_source_when_requested_then_kept_default_queue_unknown_refused(
        callbacks: CallbackStore) -> None:
    plain = callbacks.request("dongnai", "pbx1:4.1", CALLER, T0)
    night = callbacks.request("dongnai", "pbx1:4.2", CALLER, T0, source="pool_full")
    assert (plain.source, night.source) == ("queue", "pool_full")
    assert callbacks.get(night.id).to_json_dict()["source"] == "pool_full"  # type: ignore
    with pytest.raises(ValueError, match="source"):
        callbacks.request("dongnai", "pbx1:4.3", CALLER, T0, source="sms")


def test_given_request_when_ticket_linked_then_kept_listed_by_ticket_and_unlinked(
        callbacks: CallbackStore) -> None:
    a = callbacks.request("dongnai", "pbx1:4.5", CALLER, T0)
    b = callbacks.request("dongnai", "pbx1:4.6", CALLER, T0 + dt.timedelta(minutes=1))
    assert a.ticket is None and a.to_json_dict()["ticket"] is None
    callbacks.done(b.id, "101")
    for req in (b, a):  # a closed request may be linked too
        assert callbacks.link_ticket(req.id, "DN-20261123-0042").ticket == "DN-20261123-0042"
    assert [r.id for r in callbacks.by_ticket("DN-20261123-0042")] == [a.id, b.id]
    assert callbacks.link_ticket(a.id, None).ticket is None
    assert [r.id for r in callbacks.by_ticket("DN-20261123-0042")] == [b.id]
    with pytest.raises(CallbackError) as e:
        callbacks.link_ticket(4242, "DN-20261123-0042")
    assert e.value.id == "callback.not_found"
    with pytest.raises(ValueError, match="ticket"):
        callbacks.link_ticket(a.id, "X" * 33)


def test_given_unknown_id_when_done_then_not_found(callbacks: CallbackStore) -> None:
    with pytest.raises(CallbackError) as e:
        callbacks.done(4242, "101")
    assert e.value.id == "callback.not_found"


def test_given_open_request_when_cancelled_then_status_cancelled(
        callbacks: CallbackStore) -> None:
    req = callbacks.request("dongnai", "pbx1:5.1", CALLER, T0)
    assert callbacks.cancel(req.id, "giamsat.binh", "số sai").status == "cancelled"
    assert callbacks.open() == []


def test_given_status_outside_the_set_then_database_refuses(callbacks: CallbackStore) -> None:
    table = Base.metadata.tables["callbacks"]
    with pytest.raises(sa.exc.IntegrityError), callbacks.engine.begin() as conn:
        conn.execute(sa.insert(table).values(tenant="dongnai", call_id="pbx1:6.1",
                                             caller=CALLER, requested_at=T0, status="lost"))


def test_given_naive_time_when_request_then_refused(callbacks: CallbackStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        callbacks.request("dongnai", "pbx1:7.1", CALLER, dt.datetime(2026, 11, 23, 8, 0))


def test_given_request_and_done_then_number_never_logged_above_debug(
        callbacks: CallbackStore, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="callcenter.callbacks.store"):
        req = callbacks.request("dongnai", "pbx1:8.1", CALLER, T0)
        callbacks.done(req.id, "101")
    above_debug = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    assert above_debug and not any(CALLER in m for m in above_debug)
    assert any("*******678" in m for m in above_debug)


# ---- CLI ---------------------------------------------------------------------------------------
def _cli(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    callbacks_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["callbacks", *argv])
    return int(args.handler(args, settings))


def test_given_cli_when_built_then_callbacks_area_registered() -> None:
    assert "callcenter.callbacks.cli" in AREA_COMMANDS


def test_given_open_requests_when_cli_lists_and_marks_done_then_numbers_in_full(
        callbacks: CallbackStore, database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env(state_dir=tmp_path, database_url=database_url)
    a = callbacks.request("dongnai", "pbx1:9.1", CALLER, T0)
    callbacks.request("thanhhoa", "pbx1:9.2", "0911000003", T0)

    assert _cli(settings, "--tenant", "dongnai") == 0
    out = capsys.readouterr().out
    assert CALLER in out and "chờ gọi lại" in out and "0911000003" not in out

    assert _cli(settings, "done", str(a.id), "--by", "101", "--note", "đã gọi") == 0
    assert "đã gọi lại" in capsys.readouterr().out
    assert _cli(settings, "--json", "--tenant", "dongnai") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert _cli(settings, "--all", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["call_id"], r["status"], r["handled_by"]) for r in rows] == [
        ("pbx1:9.2", "open", None), ("pbx1:9.1", "done", "101")]

    assert _cli(settings, "done", str(a.id), "--by", "102") == 1
    assert "callback.closed" in capsys.readouterr().err
    assert _cli(settings, "done", "999", "--by", "102") == 1
    assert "callback.not_found" in capsys.readouterr().err


# ---- HTTP --------------------------------------------------------------------------------------
V1 = "/api/v1"


def _seed(database_url: str) -> tuple[int, int]:
    store = CallbackStore(database_url)
    try:
        mine = store.request("dongnai", "pbx1:10.1", CALLER, T0).id
        other = store.request("thanhhoa", "pbx1:10.2", "0911000003", T0).id
        return mine, other
    finally:
        store.close()


async def test_given_open_requests_when_operator_lists_then_own_tenant_with_full_number(
        api: Api, database_url: str) -> None:
    mine, _ = _seed(database_url)
    body = await api.call("GET", f"{V1}/callbacks", "tdv.an", 200)
    assert [(r["id"], r["caller"], r["status"]) for r in body["items"]] == [
        (mine, CALLER, "open")]
    assert (await api.call("GET", f"{V1}/callbacks?tenant=dongnai", "giamsat.binh",
                           200))["items"][0]["id"] == mine
    forbidden = await api.call("GET", f"{V1}/callbacks?tenant=dongnai", "tdv.thanhhoa", 403)
    assert forbidden["error"]["id"] == "auth.forbidden"
    unit = await api.call("GET", f"{V1}/callbacks", "syt.dongnai", 403)
    assert unit["error"]["id"] == "auth.forbidden"
    assert (await api.call("GET", f"{V1}/callbacks", None, 401))["error"]["id"] == \
        "auth.required"


async def test_given_open_request_when_done_over_http_then_closed_by_the_user(
        api: Api, database_url: str) -> None:
    mine, other = _seed(database_url)
    done = await api.call("POST", f"{V1}/callbacks/{mine}/done", "tdv.an", 200,
                          json={"note": "Đã gọi lại lúc 9 giờ."})
    assert (done["status"], done["handled_by"], done["note"]) == (
        "done", "tdv.an", "Đã gọi lại lúc 9 giờ.")
    assert (await api.call("GET", f"{V1}/callbacks", "tdv.an", 200))["items"] == []
    everything = await api.call("GET", f"{V1}/callbacks?all=true", "tdv.an", 200)
    assert [r["status"] for r in everything["items"]] == ["done"]

    again = await api.call("POST", f"{V1}/callbacks/{mine}/done", "giamsat.binh", 409)
    assert again["error"]["id"] == "callback.closed"
    # Another tenant's request is not found (not "forbidden": its existence is not told).
    elsewhere = await api.call("POST", f"{V1}/callbacks/{other}/done", "tdv.an", 404)
    assert elsewhere["error"]["id"] == "callback.not_found"
    bad = await api.call("POST", f"{V1}/callbacks/{other}/done", "tdv.thanhhoa", 422,
                         json={"note": "x", "by": "101"})
    assert bad["error"]["id"] == "request.invalid"
    ok = await api.call("POST", f"{V1}/callbacks/{other}/done", "tdv.thanhhoa", 200)
    assert (ok["status"], ok["note"]) == ("done", None)
