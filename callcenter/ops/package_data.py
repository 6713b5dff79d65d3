"""Files shipped with the package that are not Python: deploy/ and the example config.

In a wheel they are package data of `callcenter.ops` (`deploy/` -> `callcenter/ops/deploy/`,
`config/` -> `callcenter/ops/example_config/`, see setup.py); in a source tree (editable
install, tests) they are the repository's own folders. Either way there is one copy.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_SOURCE_TREE = Path(__file__).resolve().parents[2]


def _shipped(name: str, source_folder: str) -> Path:
    installed = Path(str(files("callcenter.ops").joinpath(name)))
    return installed if installed.is_dir() else _SOURCE_TREE / source_folder


def deploy_dir() -> Path:
    """The folder of systemd units (systemd/), monitoring (monitoring/) and logrotate files."""
    return _shipped("deploy", "deploy")


def example_config_dir() -> Path:
    """The folder of the example hotline.yaml and its ivr-*.yaml, for an installer to copy."""
    return _shipped("example_config", "config")
