"""The cluster run's state file (``cluster.json``) as `callcenter cluster status` reads it: the
nodes, the Sentinel service the apps use and the private database's URL when there is one."""

from __future__ import annotations

import json
from pathlib import Path

from callcenter.cluster.edge import EdgeSettings
from callcenter.cluster.plan import NodePlan
from callcenter.cluster.runner import LiveState, write_state
from callcenter.config.settings import Settings


def _settings(tmp_path: Path, **more: object) -> Settings:
    return Settings(config_path=tmp_path / "hotline.yaml", state_dir=tmp_path,
                    database_url="sqlite://", redis_url=None, instance="cluster",
                    sounds_override=tmp_path / "sounds", **more)  # type: ignore[arg-type]


def test_given_sentinel_live_state_and_private_db_when_written_then_status_finds_them(
        tmp_path: Path) -> None:
    plan = NodePlan("node1", 1, "127.0.0.1", 5070, 8022, {})
    live = LiveState(_settings(tmp_path, redis_sentinels=(("127.0.0.1", 26001),
                                                          ("127.0.0.1", 26002)),
                               redis_sentinel_master="hotline"), "redis://127.0.0.1:6400/0")
    url = "postgresql+psycopg://hotline1022@/hotline?host=/x/postgres"
    write_state(tmp_path, EdgeSettings(), [plan], ["cluster-node1"], live, url)
    data = json.loads((tmp_path / "cluster.json").read_text())
    assert data["redis"] == {"master_name": "hotline",
                             "sentinels": ["127.0.0.1:26001", "127.0.0.1:26002"],
                             "private": False}
    assert data["database"] == url
    assert [n["name"] for n in data["nodes"]] == ["node1"]
    assert "Sentinel service 'hotline' via 127.0.0.1:26001,127.0.0.1:26002" in live.describe()


def test_given_plain_redis_when_written_then_no_redis_entry(tmp_path: Path) -> None:
    plan = NodePlan("node1", 1, "127.0.0.1", 5070, 8022, {})
    live = LiveState(_settings(tmp_path), "unix:///x/redis.sock")
    write_state(tmp_path, EdgeSettings(), [plan], ["cluster-node1"], live)
    data = json.loads((tmp_path / "cluster.json").read_text())
    assert "redis" not in data and "database" not in data
    assert live.describe() == "unix:///x/redis.sock"
