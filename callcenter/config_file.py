"""Reading the hotline config file: the one place where the config touches the disk.

Validation itself is pure (callcenter.domain.config); this adapter only reads the bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from callcenter.domain.config import parse_config_text
from callcenter.domain.config_base import ConfigError
from callcenter.domain.model import HotlineConfig


def load_config(path: str | os.PathLike[str]) -> HotlineConfig:
    """Read and validate the config file; every problem raises ConfigError naming the file."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "<file>", exc.object[exc.start:exc.end],
                          f"expected UTF-8 text (bad byte at offset {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(source, "<file>", source,
                          f"cannot read the file: {exc.strerror or exc}") from exc
    return parse_config_text(text, source)
