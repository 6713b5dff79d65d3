"""Quality reviews in SQL (SQLite and PostgreSQL): one review per call per reviewer, edited in
place with both versions in the append-only audit log; the calls the sample draws from; the
reviews of a period; the migration matches the models; and `callcenter quality ...`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcenter.cli import AREA_COMMANDS
from callcenter.config.settings import Settings
from callcenter.quality import cli as quality_cli
from callcenter.quality.rules import Scores, parse_period
from callcenter.quality.store import QualityStore
from callcenter.store.migrate import upgrade_head
from callcenter.store.records import CallRecordStore
from callcenter.store.urls import normalise_url
from tests.adapters.test_call_pages import record
from tests.support.api import CONFIG
from tests.support.schema import model_diff

HCM = "Asia/Ho_Chi_Minh"
W49 = parse_period("2026-W49", HCM)
T0 = W49.start + dt.timedelta(days=1, hours=3)  # Tuesday 01/12 10:00 in Đồng Nai
T1 = T0 + dt.timedelta(days=1)


@pytest.fixture
def quality(database_url: str) -> Iterator[QualityStore]:
    upgrade_head(database_url)
    store = QualityStore(database_url)
    yield store
    store.close()


def save(store: QualityStore, call_id: str, who: str, scores: Scores, at: dt.datetime,
         operator: str = "101", arrived: dt.datetime = T0) -> tuple[object, bool]:
    return store.save_review(tenant="dongnai", call_id=call_id, operator=operator,
                             call_arrived_at=arrived, reviewer=who, role="supervisor",
                             scores=scores, at=at)


def test_given_migrated_database_then_quality_tables_match_the_models(database_url: str) -> None:
    assert model_diff(database_url, ["quality_reviews", "quality_audit"]) == []


def test_given_review_when_saved_again_by_same_reviewer_then_edited_and_both_audited(
        quality: QualityStore) -> None:
    first, new = save(quality, "pbx1:1.1", "giamsat.binh", Scores(5, 4, 3, True, ""), T0)
    assert new is True
    second, new = save(quality, "pbx1:1.1", "giamsat.binh",
                       Scores(2, 2, 2, False, "Bảo công dân tự liên hệ Sở."), T1)
    assert new is False
    save(quality, "pbx1:1.1", "quantri", Scores(4, 4, 4, True, ""), T1)

    reviews = quality.reviews_of_call("pbx1:1.1")
    assert [(r.reviewer, r.scores.greeting) for r in reviews] == [("giamsat.binh", 2),
                                                                   ("quantri", 4)]
    mine = quality.review("pbx1:1.1", "giamsat.binh")
    assert mine is not None and (mine.created_at, mine.updated_at) == (T0, T1)
    assert mine.scores == Scores(2, 2, 2, False, "Bảo công dân tự liên hệ Sở.")
    log = quality.audit_log("dongnai", call_id="pbx1:1.1")
    assert [(a.actor, a.action) for a in reversed(log)] == [
        ("giamsat.binh", "review_create"), ("giamsat.binh", "review_update"),
        ("quantri", "review_create")]
    edit = next(a for a in log if a.action == "review_update")
    assert edit.detail is not None
    assert edit.detail["before"]["greeting"] == 5 and edit.detail["scores"]["greeting"] == 2
    assert edit.detail["scores"]["no_buck_passing"] is False


def test_given_audit_rows_when_updated_or_deleted_then_database_refuses(
        quality: QualityStore, database_url: str) -> None:
    quality.audit(tenant="dongnai", actor="giamsat.binh", role="supervisor", action="play",
                  call_id="pbx1:1.1", at=T0)
    engine = sa.create_engine(normalise_url(database_url))
    try:
        for statement in ("UPDATE quality_audit SET actor = 'x'", "DELETE FROM quality_audit"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as c:
                c.execute(sa.text(statement))
    finally:
        engine.dispose()
    assert [a.actor for a in quality.audit_log()] == ["giamsat.binh"]


def test_given_a_score_out_of_range_when_written_directly_then_database_refuses(
        quality: QualityStore) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        save(quality, "pbx1:1.1", "giamsat.binh", Scores(6, 4, 3, True, ""), T0)


def test_given_calls_when_candidates_asked_then_answered_recorded_of_tenant_and_week(
        quality: QualityStore, database_url: str) -> None:
    records = CallRecordStore(database_url)
    try:
        records.insert_once(record(1, T0))
        records.insert_once(record(2, T0, outcome="abandoned", operator=None))
        records.insert_once(record(3, T0, recording=None))
        records.insert_once(record(4, T0, tenant="thanhhoa"))
        records.insert_once(record(5, W49.end))  # next week (Monday 00:00 local)
    finally:
        records.close()
    got = quality.candidates("dongnai", W49)
    assert [c.call_id for c in got] == ["pbx1:1763800000.1"]
    assert got[0].operator == "101" and got[0].recording


def test_given_reviews_of_two_weeks_when_period_asked_then_only_calls_arrived_in_it(
        quality: QualityStore) -> None:
    save(quality, "pbx1:1.1", "giamsat.binh", Scores(5, 5, 5, True, ""), T0)
    save(quality, "pbx1:1.2", "giamsat.binh", Scores(4, 4, 4, True, ""), T0,
         arrived=W49.start - dt.timedelta(seconds=1))
    assert [r.call_id for r in quality.reviews_in("dongnai", W49)] == ["pbx1:1.1"]
    assert [r.call_id for r in quality.reviews_in("dongnai", parse_period("2026-11", HCM))] \
        == ["pbx1:1.2"]
    assert quality.reviews_in("thanhhoa", W49) == []
    assert quality.reviewed_calls(["pbx1:1.1", "pbx1:9.9"]) == {"pbx1:1.1": ["giamsat.binh"]}


# ---- CLI ---------------------------------------------------------------------------------------


def _cli(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    quality_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["quality", *argv])
    return int(args.handler(args, settings))


def test_given_reviews_when_cli_reports_week_then_per_operator_figures_and_xlsx(
        quality: QualityStore, database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert "callcenter.quality.cli" in AREA_COMMANDS
    config = tmp_path / "hotline.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = Settings.from_env(state_dir=tmp_path, database_url=database_url,
                                 config_path=config)
    records = CallRecordStore(database_url)
    try:
        for n in range(1, 4):
            records.insert_once(record(n, T0 + dt.timedelta(minutes=n)))
    finally:
        records.close()
    save(quality, "pbx1:1.1", "giamsat.binh", Scores(5, 4, 3, True, ""), T0)
    save(quality, "pbx1:1.2", "giamsat.binh", Scores(3, 2, 1, False, "đùn đẩy"), T0)
    save(quality, "pbx1:1.3", "giamsat.binh", Scores(4, 4, 4, True, ""), T0, operator="102")

    assert _cli(settings, "report", "--tenant", "dongnai", "--week", "2026-W49", "--json",
                "--xlsx", str(tmp_path / "q.xlsx")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["period"] == "2026-W49"
    by = {r["operator"]: r for r in doc["operators"]}
    assert (by["101"]["reviews"], by["101"]["greeting"], by["101"]["accuracy"]) == (2, 4.0, 3.0)
    assert by["101"]["buck_passing_ids"] == ["pbx1:1.2"] and by["102"]["buck_passing_count"] == 0
    from tests.support.lists import xlsx_rows
    rows = xlsx_rows((tmp_path / "q.xlsx").read_bytes())
    assert [(r[1], r[3], r[9]) for r in rows] == [("101", 2, 1), ("102", 1, 0)]

    assert _cli(settings, "report", "--tenant", "dongnai", "--week", "2026-W49") == 0
    out = capsys.readouterr().out
    assert "tuần 49/2026" in out and "đùn đẩy: pbx1:1.2" in out

    assert _cli(settings, "sample", "--tenant", "dongnai", "--week", "2026-W49", "--json") == 0
    sample = json.loads(capsys.readouterr().out)["sample"]
    assert sorted(sample["101"]) == [f"pbx1:1763800000.{n}" for n in range(1, 4)]

    assert _cli(settings, "report", "--tenant", "hanoi", "--week", "2026-W49") == 1
    assert "no tenant 'hanoi'" in capsys.readouterr().err
    assert _cli(settings, "report", "--tenant", "dongnai", "--week", "2026-W60") == 1
    assert "không tồn tại" in capsys.readouterr().err
