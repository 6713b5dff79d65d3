"""Drop the project's own entry (``hotline1022 @ file://...``, pulled in by the dev extra's
``hotline1022[tools]``) from a pip-compile lock: a local path has no hash, and `make venv`
installs the project itself (editable, without dependencies)."""

from __future__ import annotations

import sys
from pathlib import Path

# pip-compile's note above an entry it could not hash
WARNING_LINES = ("# WARNING: pip install will require", "# Consider using a hashable URL")


def drop_self(text: str, name: str = "hotline1022") -> str:
    """``text`` without the ``name @ file://`` requirement, its continuation lines and the
    warning pip-compile writes above it."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if line.startswith(f"{name} @ file://"):
            skipping = True
            while out and out[-1].startswith(WARNING_LINES):
                out.pop()
            continue
        if skipping and line.startswith("    "):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


if __name__ == "__main__":
    path = Path(sys.argv[1])
    path.write_text(drop_self(path.read_text()))
