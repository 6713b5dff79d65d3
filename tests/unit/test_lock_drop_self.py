"""scripts/lock_drop_self.py: the project's own unhashable line leaves `make lock`'s output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lock_drop_self.py"
_spec = importlib.util.spec_from_file_location("lock_drop_self", SCRIPT)
assert _spec is not None and _spec.loader is not None
lock_drop_self = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock_drop_self)

LOCK = """\
hiredis==3.5.0 \\
    --hash=sha256:aa
    # via redis
# WARNING: pip install will require the following package to be hashed.
# Consider using a hashable URL like https://github.com/pypa/pip-tools/archive/SOMECOMMIT.zip
hotline1022 @ file:///tmp/build
    # via hotline1022 (pyproject.toml)
hypothesis==6.170.27 \\
    --hash=sha256:bb
"""


def test_given_lock_with_own_project_when_dropped_then_every_other_pin_and_hash_kept() -> None:
    assert lock_drop_self.drop_self(LOCK) == """\
hiredis==3.5.0 \\
    --hash=sha256:aa
    # via redis
hypothesis==6.170.27 \\
    --hash=sha256:bb
"""


def test_given_committed_lock_then_every_requirement_pinned_with_hashes() -> None:
    text = (SCRIPT.parents[1] / "requirements.lock").read_text()
    pins = [line for line in text.splitlines() if line and not line[0].isspace()
            and not line.startswith("#")]
    assert pins and all("==" in p and p.endswith("\\") for p in pins), pins
    assert not any(p.startswith("hotline1022") for p in pins)
