"""`callcenter faq ...` as an administrator uses it, against a real database (and Redis)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from callcenter.cli import main
from callcenter.faq.rules import FAQ_CHANNEL, item_key
from callcenter.faq.store import FaqStore
from callcenter.runtime.redis_server import PrivateRedis
from callcenter.store.migrate import upgrade_head
from callcenter.store.records import CallRecordStore
from tests.adapters.conftest import MakeRecord

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "faq-dongnai.xlsx"
T0 = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> str:
    """The shipped config, a fresh database, and a Redis that is not there."""
    monkeypatch.setenv("HOTLINE_CONFIG", str(REPO / "config" / "hotline.yaml"))
    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")  # refused at once
    return database_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["faq", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_given_example_when_imported_listed_and_stats_then_each_shows_it(
        env: str, capsys: pytest.CaptureFixture[str], make_record: MakeRecord) -> None:
    code, out, err = run(capsys, "import", str(EXAMPLE), "--tenant", "dongnai", "--by", "lan")
    assert code == 0, err
    assert out.splitlines()[:4] == [
        f"{f}: version 1 active, 2 questions from faq-dongnai.xlsx"
        for f in ("admin_procedures", "health", "social_security", "transport")]
    assert "unreachable" in out and "poll interval" in out  # Redis down: said, not fatal

    code, out, _ = run(capsys, "list", "--tenant", "dongnai", "--field", "Y tế")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.startswith("health") for line in lines)
    assert "1. Thẻ bảo hiểm y tế hết hạn thì gia hạn ở đâu?" in lines[0]

    key = item_key("dongnai", "health", "Khi có người cần cấp cứu thì gọi số nào?")
    calls = CallRecordStore(env)
    try:
        for n, answer in enumerate(("yes", "yes", "no"), start=1):
            calls.insert_once(make_record(n, ivr_path=[
                {"at": T0.isoformat(), "event": "faq", "faq": key},
                {"at": T0.isoformat(), "event": "feedback", "faq": key, "answer": answer}]))
    finally:
        calls.close()

    code, out, _ = run(capsys, "stats", "--tenant", "dongnai")
    assert code == 0
    top = out.splitlines()[1].split()
    assert top[:5] == ["3", "2", "1", "67%", "dongnai"]
    assert out.splitlines()[1].endswith("Khi có người cần cấp cứu thì gọi số nào?")

    code, out, _ = run(capsys, "stats", "--json")
    rows = json.loads(out)
    assert len(rows) == 8
    assert rows[0] == {"tenant": "dongnai", "key": key, "field": "health", "code": None,
                       "question": "Khi có người cần cấp cứu thì gọi số nào?", "heard": 3,
                       "yes": 2, "no": 1, "deflection": pytest.approx(2 / 3)}

    code, out, _ = run(capsys, "stats", "--tenant", "dongnai", "--since", "2026-11-24", "--json")
    assert code == 0 and all(r["heard"] == 0 for r in json.loads(out))


def test_given_imports_when_versions_and_rollback_then_active_mark_moves(
        env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "import", str(EXAMPLE), "--tenant", "dongnai")[0] == 0
    code, out, _ = run(capsys, "import", str(EXAMPLE), "--tenant", "dongnai")
    assert code == 0 and out.count("unchanged: active version 1 already has this file") == 4
    assert "announced" not in out and "unreachable" not in out  # nothing changed: no reload

    yte = tmp_path / "yte.csv"
    yte.write_text("Câu hỏi,Trả lời\nKhám ngoài giờ ở đâu?,Tại bệnh viện tỉnh.\n",
                   encoding="utf-8")
    code, out, _ = run(capsys, "import", str(yte), "--tenant", "dongnai", "--field", "y te")
    assert code == 0 and out.startswith("health: version 2 active, 1 questions from yte.csv")

    code, out, _ = run(capsys, "versions", "--tenant", "dongnai", "--field", "health")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[1].split()[:3] == ["health", "2", "*"] and lines[2].split()[:2] == ["health", "1"]
    assert "*" not in lines[2]

    code, out, _ = run(capsys, "rollback", "--tenant", "dongnai", "--field", "health",
                       "--version", "1")
    assert code == 0 and out.startswith("health: version 1 active again (2 questions")
    code, out, _ = run(capsys, "versions", "--tenant", "dongnai", "--field", "health")
    assert out.splitlines()[2].split()[:3] == ["health", "1", "*"]

    code, _, err = run(capsys, "rollback", "--tenant", "dongnai", "--field", "health",
                       "--version", "9")
    assert code == 1 and "no version 9 (versions: 1, 2)" in err


def test_given_broken_file_when_imported_then_every_error_printed_exit_1_nothing_stored(
        env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "faq-yte.csv"
    bad.write_text("STT;Lĩnh vực;Câu hỏi;Trả lời\n1;Y tế;Hỏi?;\n2;Y khoa;Hỏi 2?;Đáp.\n"
                   "3;Y tế;hỏi?;Đáp.\n", encoding="utf-8-sig")
    code, out, err = run(capsys, "import", str(bad), "--tenant", "dongnai")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "error: faq-yte.csv: row 2, column D (Trả lời): empty answer",
        'error: faq-yte.csv: row 3, column B (Lĩnh vực): unknown field "Y khoa"',
        "error: faq-yte.csv: row 4, column C (Câu hỏi): duplicate question: same as row 2",
        err.splitlines()[3],
        "refused: 3 error(s) in faq-yte.csv; nothing was imported",
    ]
    assert err.splitlines()[3].startswith("known fields: Y tế (health), An sinh xã hội")
    upgrade_head(env)  # the refused import never reached the database
    store = FaqStore(env)
    try:
        assert store.versions("dongnai") == []
    finally:
        store.close()


@pytest.mark.parametrize("argv, message", [
    (["import", str(EXAMPLE), "--tenant", "hanoi"], "no tenant 'hanoi'"),
    (["import", str(EXAMPLE), "--tenant", "dongnai", "--field", "nông nghiệp"],
     "unknown field 'nông nghiệp' for tenant dongnai; known fields: Y tế (health)"),
    (["import", "/nonexistent/faq.xlsx", "--tenant", "dongnai"], "faq.xlsx: cannot read"),
    (["import", str(REPO / "pyproject.toml"), "--tenant", "dongnai"],
     "pyproject.toml: not a spreadsheet"),
    (["stats", "--since", "yesterday"], "--since 'yesterday'"),
])
def test_given_bad_request_when_run_then_exit_1_with_reason(
        env: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1 and message in err


def test_given_long_import_when_not_a_terminal_then_progress_lines_on_stderr(
        env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_text("Câu hỏi,Trả lời\n" + "".join(f"Câu hỏi {i}?,Trả lời {i}.\n"
                                                 for i in range(1, 1001)), encoding="utf-8")
    code, out, err = run(capsys, "import", str(big), "--tenant", "dongnai", "--field", "other")
    assert code == 0 and "other: version 1 active, 1000 questions" in out
    progress = [line for line in err.splitlines() if line.startswith("importing big.csv:")]
    assert progress and progress[-1].startswith("importing big.csv: 1000/1000 (100%)")
    assert len(progress) <= 10


@pytest.fixture
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = PrivateRedis(Path(tmp_path_factory.mktemp("redis")) / "redis.sock")
    server.start()
    yield server
    server.stop()


def test_given_running_redis_when_imported_and_rolled_back_then_reload_published(
        env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        private_redis: PrivateRedis, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_URL", private_redis.url)
    client = redis.Redis.from_url(private_redis.url)
    pubsub = client.pubsub()
    pubsub.subscribe(FAQ_CHANNEL)
    confirmation = pubsub.get_message(timeout=5)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    yte = tmp_path / "yte.csv"
    yte.write_text("Câu hỏi,Trả lời\nHỏi?,Đáp.\n", encoding="utf-8")
    try:
        code, out, _ = run(capsys, "import", str(EXAMPLE), "--tenant", "dongnai")
        assert code == 0 and f"reload announced on {FAQ_CHANNEL} (1 app instance(s)" in out
        assert run(capsys, "import", str(yte), "--tenant", "dongnai", "--field", "health")[0] == 0
        code, out, _ = run(capsys, "rollback", "--tenant", "dongnai", "--field", "health",
                           "--version", "1")
        assert code == 0 and "reload announced" in out
        messages = [pubsub.get_message(timeout=5) for _ in range(3)]
        assert [json.loads(m["data"]) for m in messages if m] == [{"tenant": "dongnai"}] * 3
    finally:
        pubsub.close()
        client.close()
