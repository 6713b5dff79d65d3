"""deploy/monitoring: the alert and recording rules pass ``promtool check rules`` and their unit
tests (``promtool test rules``) when promtool is installed (Debian's ``prometheus`` package, or
``PROMTOOL=/path/to/promtool``); every ``hotline_*`` name the rules and the dashboard use is one
the app's /metrics really exposes (checked always, against a real render)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from callcenter.console.metrics import (
    CallMetrics,
    MetricsSample,
    OutcomeCount,
    TenantLive,
    make_registry,
    render_metrics,
)

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = ("hotline-alerts.yml", "recording.yml")
NAME = re.compile(r"\b(?:hotline|process)_[a-z0-9_]*[a-z0-9]\b")


def promtool() -> str | None:
    """The promtool to run: $PROMTOOL, else the one on PATH."""
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


def needs_promtool() -> str:
    tool = promtool()
    if tool is None:
        reason = ("promtool not installed (Debian package `prometheus`, ~96 MB installed, not "
                  "in DEB_PACKAGES); set PROMTOOL=/path/to/promtool to run this check")
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    return tool


def test_given_rules_when_promtool_check_rules_then_success() -> None:
    tool = needs_promtool()
    run = subprocess.run([tool, "check", "rules", *RULES], cwd=MONITORING,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(RULES)


def test_given_alert_unit_tests_when_promtool_test_rules_then_success() -> None:
    tool = needs_promtool()
    run = subprocess.run([tool, "test", "rules", "hotline-alerts.test.yml"], cwd=MONITORING,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def exposed_names() -> set[str]:
    """Every sample name a scrape of a busy app shows (histogram suffixes included)."""
    live = TenantLive("dongnai", "day", 3, 15, 2, 1, (("available", 1),), 3)
    sample = MetricsSample(
        tenants=("dongnai",), live=(live,), outcomes=(OutcomeCount("dongnai", "answered", 1),),
        redis_up=True, ari_connected=True, ami_connected=True, loop_lag_p99_ms=1.0,
        loop_lag_max_ms=2.0, call_sessions=1, journal_pending=0)
    calls = CallMetrics()
    for histogram in (calls.answer, calls.queue_wait, calls.talk):
        histogram.labels(tenant="dongnai").observe(1.0)
    text = render_metrics(sample, make_registry(calls))
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def used_names() -> dict[str, set[str]]:
    """file -> the metric names its expressions use."""
    out: dict[str, set[str]] = {}
    for name in RULES:
        groups = yaml.safe_load((MONITORING / name).read_text(encoding="utf-8"))["groups"]
        exprs = [r["expr"] for g in groups for r in g["rules"]]
        out[name] = {m for e in exprs for m in NAME.findall(e)}
    dashboard = json.loads((MONITORING / "hotline-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    out["hotline-dashboard.json"] = {m for e in exprs for m in NAME.findall(e)}
    return out


def test_given_rules_and_dashboard_when_names_compared_then_all_exposed_by_metrics() -> None:
    exposed = exposed_names()
    used = used_names()
    assert all(used.values())
    for file, names in used.items():
        assert names <= exposed, f"{file} uses names /metrics does not expose: " \
                                 f"{sorted(names - exposed)}"
    every = set().union(*used.values())
    assert {"hotline_queue_wait_seconds_bucket", "hotline_pool_lines_in_use",
            "hotline_ari_connected", "hotline_journal_records_pending"} <= every


def test_given_dashboard_when_loaded_then_unique_ids_and_panels_inside_the_grid() -> None:
    dashboard = json.loads((MONITORING / "hotline-dashboard.json").read_text(encoding="utf-8"))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "hotline1022"
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
