"""Hotline configs that several test files share, kept as YAML files in tests/support/configs/.
A test applies its own differences in code, on the parsed data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIGS = Path(__file__).resolve().parent / "configs"


def config_text(name: str) -> str:
    """The text of ``configs/<name>``, comments and all."""
    return (CONFIGS / name).read_text(encoding="utf-8")


def config_data(name: str) -> dict[str, Any]:
    """``configs/<name>`` parsed: a fresh dict on every call, for the test to change."""
    data = yaml.safe_load(config_text(name))
    assert isinstance(data, dict), name
    return data


def as_yaml(data: dict[str, Any]) -> str:
    """Config data as the text of a config file."""
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
