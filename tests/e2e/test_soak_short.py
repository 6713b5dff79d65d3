"""The soak benchmark's short mode (issue 15.10): `bench/soak.py --seconds 45 --rate 3`.

Its own `callcenter run`, SIPp placing IVR/FAQ, queue (four SIPp operators) and busy calls for
45 s. In so short a run the fd/RSS growth is reported but not judged (the script says so); what
must hold: no failed call, a call record for every call placed, no line left in use.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cells(out: str, label: str) -> list[str]:
    """The cells of the result table's row whose first cell starts with `label`."""
    for ln in out.splitlines():
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        if cells and cells[0].startswith(label):
            return cells
    raise AssertionError(f"no row {label!r} in the soak's output:\n{out}")


def test_short_soak_fails_no_call_loses_no_record_and_leaves_no_line() -> None:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--seconds", "45", "--rate", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "RESULT: PASS" in out
    placed = _cells(out, "calls placed")
    assert placed[1] == "135 / 135" and placed[3] == "PASS", placed
    failed = _cells(out, "failed (SIPp FailedCall")
    assert failed[1] == "0; 0" and failed[3] == "PASS", failed
    records = _cells(out, "call records written")
    assert records[1] == "135 / 135 (0)" and records[3] == "PASS", records
    lines = _cells(out, "lines in use")
    assert lines[1] == "0 / 0; 0; 0" and lines[3] == "PASS", lines
    # every kind of call happened: IVR/FAQ, queue answered by an operator, busy
    answered = _cells(out, "answered: IVR/FAQ")[1]
    ivr, by_operator, _gave_up = (int(x) for x in answered.split(":", 1)[1].split("/"))
    busy = int(_cells(out, "busy (183")[1].split(":", 1)[0])
    assert ivr > 0 and by_operator > 0 and busy > 0, (answered, busy)
    # short mode: growth is shown, not judged
    assert "not judged" in _cells(out, "app RSS MiB")[3]
    assert took < 150, f"the short soak took {took:.0f} s (CI budget ~90 s)"
