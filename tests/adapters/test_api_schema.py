"""The OpenAPI document: it covers every route, and schemathesis, run against the served app
(SQLite and PostgreSQL) with an admin token, finds no server error and no answer outside
the document."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from callcenter.config.model import HotlineConfig
from callcenter.console.openapi import spec
from tests.support import api as support
from tests.support.api import PDF, live_server, make_app, make_tokens

# Fixtures shared with the other API tests.
hotline_config = support.hotline_config

EXAMPLES = 12  # per operation and mode: the whole run stays well under a minute per backend
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _spec_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in spec()["paths"].items() for method in ops}


def test_given_app_when_routes_listed_then_every_one_is_in_the_spec(
        hotline_config: HotlineConfig, tmp_path: Path) -> None:
    from callcenter.console.setup import setup_console

    app = web.Application()
    setup_console(app, database_url=f"sqlite:///{tmp_path}/x.db", config=lambda: hotline_config,
                  files_dir=tmp_path)
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"
              # HTML pages, not API; Open311 is described by the GeoReport v2 spec instead
              and not r.resource.canonical.startswith(("/console", "/open311/"))}
    assert routes == _spec_operations()
    assert any(p.startswith("/api/v1/reports/") for _, p in routes)


def test_given_spec_then_every_operation_documents_errors_and_security() -> None:
    doc = spec()
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "hl1_<id>_<secret>"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("operationId"), (method, path)
            if path.startswith("/api/v1/") and not path.endswith("openapi.json"):
                assert "401" in op["responses"] and "security" not in op, (method, path)
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path
    assert doc["components"]["schemas"]["Error"]["properties"]["error"]["required"] == [
        "id", "message"]


def _seed(base_url: str, token: str) -> str:
    """One ticket with a unit, so generated actions also meet a real ticket."""
    auth = {"Authorization": f"Bearer {token}"}
    r = requests.post(f"{base_url}/api/v1/tickets", headers=auth, timeout=10, json={
        "channel": "phone", "content": "Đường ĐT769 ngập nước.", "field": "transport",
        "place": "long_thanh", "citizen_phone": "0912345678"})
    assert r.status_code == 201, r.text
    code: str = r.json()["code"]
    r = requests.post(f"{base_url}/api/v1/tickets/{code}/actions", headers=auth, timeout=10,
                      json={"action": "forward", "version": 0, "unit": "ubnd_long_thanh"})
    assert r.status_code == 200, r.text
    r = requests.post(f"{base_url}/api/v1/tickets/{code}/attachments", headers=auth,
                      timeout=10, files={"file": ("tra-loi.pdf", PDF, "application/pdf")})
    assert r.status_code == 201, r.text
    return code


def _run(schema: Any, base_url: str, headers: dict[str, str],
         path_parameters: dict[str, Any] | None) -> list[str]:
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p["name"] for p in operation.definition.raw.get("parameters", [])
                 if p.get("in") == "path"}
        fixed = {k: v for k, v in (path_parameters or {}).items() if k in names}
        if path_parameters is not None and not fixed:
            continue  # the second pass is only for operations on the seeded ticket
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode,
                                             path_parameters=fixed or None)

            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      derandomize=True, suppress_health_check=list(HealthCheck),
                      report_multiple_bugs=False)
            @given(case=strategy)
            def check(case: Any) -> None:
                case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                pass  # nothing to negate: the operation takes no input at all
            except BaseException as e:  # collect: one report for every operation and mode
                if isinstance(e, KeyboardInterrupt):
                    raise
                failures.append(f"{operation.label} [{mode.value}]: {str(e)[:1500]}")
    return failures


def test_given_served_spec_when_schemathesis_runs_then_no_5xx_and_answers_conform(
        database_url: str, hotline_config: HotlineConfig, tmp_path: Path) -> None:
    app = make_app(database_url, hotline_config, tmp_path / "files")
    tokens = make_tokens(database_url)
    headers = {"Authorization": f"Bearer {tokens['quantri']}"}
    started = time.monotonic()
    with live_server(app) as base_url:
        served = requests.get(f"{base_url}/api/v1/openapi.json", timeout=10).json()
        assert served == spec()
        code = _seed(base_url, tokens["quantri"])
        schema = schemathesis.openapi.from_dict(served)
        failures = _run(schema, base_url, headers, None)
        failures += _run(schema, base_url, headers, {"code": code, "tenant": "dongnai"})
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 60
