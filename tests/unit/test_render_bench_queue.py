"""The app_queue reference of bench/queue_ring.py (P5): rendered only with the benchmark's plain
number, with the tenant's operators as members and its queue timing (no Asterisk needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.pbx.render import render_texts
from tests.unit.test_render_operators import SECRETS, config_data, layout, load

PASSWORDS = {"101": "pw1", "102": "pw2", "201": "pw3"}


def texts(tmp_path: Path, bench: str | None) -> dict[str, str]:
    data = config_data()
    data["tenants"][0]["queue"] = {"ring_timeout_s": 12, "retry_s": 3, "wrap_up_s": 7}
    cfg = load(tmp_path, data)
    return render_texts(cfg, layout(tmp_path), SECRETS, passwords=PASSWORDS,
                        bench_plain_number=bench)


def section(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"[{name}]")
    out = []
    for ln in lines[start + 1:]:
        if ln.startswith("["):
            break
        if ln.strip() and not ln.startswith(";"):
            out.append(ln.strip())
    return out


def test_no_bench_number_no_reference_queue(tmp_path: Path) -> None:
    t = texts(tmp_path, None)
    assert "[benchq-" not in t["queues.conf"]
    assert section(t["queues.conf"], "general") == [
        "persistentmembers = no", "autofill = yes", "shared_lastcall = no"]
    assert "bench-queue" not in t["extensions.conf"]
    assert "Queue(" not in t["extensions.conf"]
    assert "-bare)" not in t["extensions.conf"]  # nor the floor's bare ARI application


@pytest.mark.parametrize("tenant,members,timeout,retry", [
    ("dongnai", ["PJSIP/101", "PJSIP/102"], 12, 3),
    ("thanhhoa", ["PJSIP/201"], 15, 5),
])
def test_reference_queue_per_tenant(tmp_path: Path, tenant: str, members: list[str],
                                    timeout: int, retry: int) -> None:
    t = texts(tmp_path, "19001022")
    q = section(t["queues.conf"], f"benchq-{tenant}")
    assert [ln.split(" => ")[1] for ln in q if ln.startswith("member =>")] == members
    for setting in ("strategy = leastrecent", f"timeout = {timeout}", f"retry = {retry}",
                    "wrapuptime = 0", "ringinuse = no", "autofill = yes", "joinempty = yes"):
        assert setting in q
    ext = t["extensions.conf"]
    assert f"exten => 19001022q{tenant},1,Goto(bench-queue,{tenant},1)" in \
        section(ext, "from-trunk")
    queue = section(ext, "bench-queue")
    i = queue.index(f"exten => {tenant},1,Answer()")
    assert queue[i + 1].endswith(f"/{tenant}/greeting)")
    assert queue[i + 2:i + 4] == [f"same => n,Queue(benchq-{tenant})", "same => n,Hangup()"]
    # the plain reference of P1 is still there, before the catch-all pattern
    trunk = section(ext, "from-trunk")
    catch_all = next(i for i, ln in enumerate(trunk) if ln.startswith("exten => _[+0-9].,1,"))
    assert trunk.index("exten => 19001022,1,Goto(bench-plain,s,1)") < catch_all
    # and the floor's: a bare ARI application of its own (bench/bare_ari.py), then hang up
    bare = trunk.index("exten => _19001022[bn],1,Stasis(hotline-bare)")
    assert bare < catch_all and trunk[bare + 1] == "same => n,Hangup()"
