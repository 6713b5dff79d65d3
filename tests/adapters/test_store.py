"""The call-record store and its migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from callcenter.calls.node_loss import NODE_LOST_CAUSE
from callcenter.store.data import JSON_KEYS, CallRecordData
from callcenter.store.migrate import alembic_config, upgrade_head
from callcenter.store.models import Base
from callcenter.store.records import CallRecordStore
from callcenter.store.urls import normalise_url
from tests.adapters.conftest import MakeRecord
from tests.support.concurrency import run_together
from tests.support.schema import model_diff

# The migrations themselves are under test: every migration each time, no template copy.
pytestmark = pytest.mark.real_migrations

REPO = Path(__file__).resolve().parents[2]
VN = ZoneInfo("Asia/Ho_Chi_Minh")
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _inspect(database_url: str) -> tuple[set[str], set[str | None], list[str]]:
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            tables = set(insp.get_table_names())
            indexes = {i["name"] for i in insp.get_indexes("call_records")} if (
                "call_records" in tables) else set()
            versions = list(MigrationContext.configure(conn).get_current_heads())
        return tables, indexes, versions
    finally:
        engine.dispose()


# -- migrations ---------------------------------------------------------------------------


def test_given_empty_database_when_upgrade_head_twice_then_table_and_indexes_once(
        database_url: str) -> None:
    upgrade_head(database_url)
    tables, indexes, versions = _inspect(database_url)
    assert {"call_records", "alembic_version"} <= tables
    assert {"ix_call_records_tenant", "ix_call_records_linkedid",
            "ix_call_records_arrived_at"} <= indexes
    assert versions == [HEAD]

    upgrade_head(database_url)  # already at head: nothing to do, nothing fails
    assert _inspect(database_url) == (tables, indexes, versions)


def test_given_migrated_database_when_compared_to_models_then_no_difference(
        database_url: str) -> None:
    diff = model_diff(database_url)
    assert diff == []


def test_given_migrated_database_when_outcome_outside_the_set_then_database_refuses(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    row = {k: v for k, v in dataclasses.asdict(make_record(1)).items() if k != "created_at"}
    row["outcome"] = "transferred"
    table = Base.metadata.tables["call_records"]
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.insert(table).values(**row))
    assert store.count() == 0


def test_given_relative_sqlite_url_when_upgrade_from_another_cwd_then_file_made_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    upgrade_head("sqlite:///var/hotline.db")
    assert (tmp_path / "var" / "hotline.db").is_file()
    tables, _, versions = _inspect(f"sqlite:///{tmp_path / 'var' / 'hotline.db'}")
    assert "call_records" in tables and versions == [HEAD]


def test_given_alembic_ini_and_database_url_env_when_cli_upgrade_then_migrated(
        database_url: str, tmp_path: Path) -> None:
    # Plain `postgresql://` in the environment, as operators write it: psycopg 3 is used.
    env = os.environ | {"DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    tables, _, versions = _inspect(database_url)
    assert "call_records" in tables and versions == [HEAD]


@pytest.mark.postgres
def test_given_postgres_when_three_instances_upgrade_at_once_then_all_succeed(
        postgres_database: str) -> None:
    # Separate processes, as app instances are (Alembic's context is process-global).
    code = ("import sys; from callcenter.store.migrate import upgrade_head; "
            "upgrade_head(sys.argv[1])")
    procs = [subprocess.Popen([sys.executable, "-c", code, postgres_database], cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0, 0, 0], results
    assert _inspect(postgres_database)[2] == [HEAD]


@pytest.mark.parametrize(("given", "expected"), [
    ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    ("postgres://u:p%40ss@db/hotline", "postgresql+psycopg://u:p%40ss@db/hotline"),
    ("postgresql+psycopg://db/hotline", "postgresql+psycopg://db/hotline"),
    ("sqlite:///var/hotline.db", "sqlite:///var/hotline.db"),
])
def test_given_database_url_when_normalised_then_psycopg3_driver(given: str, expected: str) -> None:
    assert normalise_url(given).render_as_string(hide_password=False) == expected


# -- the repository -----------------------------------------------------------------------


def test_given_record_when_insert_once_twice_then_one_row_and_second_false(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    rec = make_record(1)
    assert store.insert_once(rec) is True
    assert store.insert_once(rec) is False
    assert store.insert_once(dataclasses.replace(rec, caller="0999")) is False  # id decides
    assert store.count() == 1
    assert store.get(rec.id) == rec


def test_given_call_closed_by_survivor_when_its_node_writes_its_own_record_then_it_replaces(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    """A survivor took the node for lost (its beat lapsed) and closed the call `failed`; the node
    served it on and writes what happened: that record wins. Never the other way round."""
    real = dataclasses.replace(make_record(1), outcome="answered", cause="Normal Clearing")
    provisional = dataclasses.replace(real, outcome="failed", cause=NODE_LOST_CAUSE)
    assert store.insert_once(provisional) is True
    assert store.insert_once(real) is True
    assert store.get(real.id) == real
    assert store.insert_once(provisional) is False  # a late provisional never undoes it
    assert store.insert_once(dataclasses.replace(real, caller="0999")) is False
    assert store.get(real.id) == real
    assert store.count() == 1


def test_given_records_when_got_many_then_those_that_exist_by_id(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    recs = [make_record(n) for n in range(1, 1203)]  # more than one batch of 500
    for rec in recs:
        store.insert_once(rec)
    wanted = [r.id for r in recs[::2]] + ["pbx1:missing", recs[0].id]
    found = store.get_many(wanted)
    assert set(found) == {r.id for r in recs[::2]}
    assert found[recs[2].id] == recs[2]
    assert store.get_many([]) == {}


def test_given_many_threads_when_same_record_inserted_concurrently_then_exactly_one_row(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    rec = make_record(7)
    results: list[bool] = []
    errors = run_together(lambda: results.append(store.insert_once(rec)), 8)
    assert errors == []
    assert sorted(results) == [False] * 7 + [True]
    assert store.count() == 1


def test_given_records_when_last_n_then_newest_arrival_first_and_limited(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    # Inserted out of order; one tenant per parity.
    for n in (3, 1, 5, 2, 4, 6):
        store.insert_once(make_record(n, tenant="dongnai" if n % 2 else "binhduong"))
    assert [r.id.rsplit(".", 1)[1] for r in store.last(4)] == ["6", "5", "4", "3"]
    assert [r.id.rsplit(".", 1)[1] for r in store.last(10, tenant="dongnai")] == ["5", "3", "1"]
    assert store.last(0) == []
    assert store.last(5, tenant="hanoi") == []
    assert store.count() == 6
    assert store.count(tenant="binhduong") == 3


def test_given_arrivals_across_utc_midnight_in_other_zones_when_last_then_ordered_by_instant(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    # 06:59 Vietnam time is 23:59 UTC the day before: wall-clock order would invert them.
    early = make_record(1, arrived_at=dt.datetime(2025, 11, 3, 6, 59, tzinfo=VN))
    late = make_record(2, arrived_at=dt.datetime(2025, 11, 3, 0, 1, tzinfo=dt.UTC))
    store.insert_once(late)
    store.insert_once(early)
    assert [r.id for r in store.last(2)] == [late.id, early.id]


@pytest.mark.parametrize("arrived", [
    dt.datetime(2025, 11, 3, 7, 0, 0, 123456, tzinfo=VN),
    dt.datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin")),  # just after DST
    dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-9, minutes=-30))),
])
def test_given_aware_times_in_any_zone_when_round_tripped_then_same_instant_in_utc(
        store: CallRecordStore, make_record: MakeRecord, arrived: dt.datetime) -> None:
    rec = make_record(1, arrived_at=arrived, answered_at=arrived + dt.timedelta(seconds=3),
                      ended_at=arrived + dt.timedelta(minutes=2))
    store.insert_once(rec)
    got = store.get(rec.id)
    assert got is not None
    for name in ("arrived_at", "answered_at", "ended_at", "created_at"):
        value = getattr(got, name)
        assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0), name
    assert got.arrived_at == arrived
    assert got.answered_at == arrived + dt.timedelta(seconds=3)
    assert got.ended_at == arrived + dt.timedelta(minutes=2)
    assert got.created_at is not None
    assert abs(got.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_given_unanswered_busy_call_with_nulls_and_extra_when_stored_then_read_back_equal(
        store: CallRecordStore, make_record: MakeRecord) -> None:
    rec = make_record(9, outcome="busy", answered_at=None, shift=None, pool_limit=None,
                      cause=None, cause_code=None,
                      extra={"ivr_path": ["1", "2"], "ghi_chú": "Tổng đài bận"})
    assert store.insert_once(rec)
    assert store.get(rec.id) == rec
    assert store.get("pbx1:nope") is None


def test_given_record_when_to_json_dict_then_fixed_keys_and_iso_times_with_offset(
        make_record: MakeRecord) -> None:
    rec = make_record(1, arrived_at=dt.datetime(2025, 11, 3, 7, 30, tzinfo=VN), ended_at=None)
    d = rec.to_json_dict()
    assert tuple(d) == JSON_KEYS
    assert d["arrived_at"] == "2025-11-03T00:30:00+00:00"
    assert d["ended_at"] is None
    assert dt.datetime.fromisoformat(d["answered_at"]).utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("bad", [
    {"outcome": "transferred"},
    {"arrived_at": dt.datetime(2025, 11, 3, 7, 30)},  # naive
    {"id": "x" * 65},
    {"id": ""},
])
def test_given_invalid_fields_when_record_built_then_value_error(
        make_record: MakeRecord, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_record(1, **bad)


def test_given_record_when_to_dict_and_back_then_equal(make_record: MakeRecord) -> None:
    rec = make_record(3, extra={"ivr_path": ["9"]})
    assert CallRecordData.from_dict(rec.to_dict()) == rec
