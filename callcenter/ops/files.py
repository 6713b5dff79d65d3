"""Writing a file safely where another account may own the folder.

Root writes into folders the unprivileged app owns (the PBX instance's etc/, the state folder,
Kannel's folder). A fixed or guessable temporary name there lets that account plant a symlink
and make root overwrite any file. So: a random name created with O_EXCL | O_NOFOLLOW (never an
existing file, never through a link), mode and owner set on the open file, then an atomic
rename over the target (which replaces a link, never follows it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, mode: int = 0o600,
                 owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``data`` at once: readers see the old file or the new one."""
    raw = data.encode() if isinstance(data, str) else data
    for _ in range(10):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"no free temporary name next to {path}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
