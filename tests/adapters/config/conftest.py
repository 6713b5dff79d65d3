"""Fixtures of the config adapter tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHIPPED = Path(__file__).resolve().parents[3] / "config"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A copy of the shipped config folder (hotline.yaml and the files it names) in tmp_path."""
    for f in SHIPPED.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "hotline.yaml"
