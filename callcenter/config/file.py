"""Reading the hotline config file: the one place where the config touches the disk.

Validation itself is pure (callcenter.config.parse); this adapter reads the bytes, follows a
tenant's ``ivr: FILE.yaml`` to the file it names (relative to the config file), checks that
a prompt given only as a recorded file has that file, and that the console's TLS files load
(``callcenter.config.tls``).
"""

from __future__ import annotations

import os
from pathlib import Path

from callcenter.config.base import ConfigError
from callcenter.config.model import HotlineConfig
from callcenter.config.parse import parse_config, parse_yaml_text
from callcenter.config.secrets import check_operator_secrets
from callcenter.config.tls import check_tls
from callcenter.ivr.tree import Prompt


def _read(source: str) -> str:
    try:
        return Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "<file>", exc.object[exc.start:exc.end],
                          f"expected UTF-8 text (bad byte at offset {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(source, "<file>", source,
                          f"cannot read the file: {exc.strerror or exc}") from exc


def _include_ivr_files(data: object, source: str) -> dict[str, str]:
    """Replace ``ivr: name.yaml`` by that file's content; return key prefix -> file read."""
    included: dict[str, str] = {}
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), list):
        return included
    base = Path(source).resolve().parent
    for i, tenant in enumerate(data["tenants"]):
        if not isinstance(tenant, dict) or not isinstance(tenant.get("ivr"), str):
            continue
        name = tenant["ivr"]
        key = f"tenants[{i}].ivr"
        if not name.endswith((".yaml", ".yml")):
            raise ConfigError(source, key, name,
                              "expected a mapping of menus, or the name of a .yaml file of them")
        path = (base / name).resolve()
        if not path.is_relative_to(base):
            raise ConfigError(source, key, name,
                              "expected a file in the config file's folder or below it")
        try:
            text = _read(str(path))
        except ConfigError as e:
            raise ConfigError(source, key, name, e.reason) from None
        tenant["ivr"] = parse_yaml_text(text, str(path))
        included[key] = str(path)
    return included


def _blame_included(err: ConfigError, included: dict[str, str]) -> ConfigError:
    """Errors inside an included IVR file name that file and the key within it."""
    for e in err.errors:
        for prefix, path in included.items():
            if e.key == prefix or e.key.startswith(prefix + "."):
                e.source = path
                e.key = "ivr" + e.key[len(prefix):]
                e.args = (e.line_text(),)
    return ConfigError.collect(err.errors)


def _check_recorded(config: HotlineConfig, sounds: Path, source: str) -> None:
    """A prompt with no text must have its recorded file, or callers would hear nothing."""
    errors: list[ConfigError] = []
    for i, t in enumerate(config.tenants):
        if t.ivr is None:
            continue
        for node in t.ivr.nodes:
            prompt = getattr(node, "prompt", None)
            if isinstance(prompt, Prompt) and prompt.text is None:
                wav = sounds / t.id / f"{prompt.id}.wav"
                if not wav.is_file():
                    errors.append(ConfigError(
                        source, f"tenants[{i}].ivr.nodes.{node.id}.prompt.file", prompt.id,
                        f"node {node.id!r}: no recorded file {wav} and no text to speak"))
    if errors:
        raise ConfigError.collect(errors)


def load_config(path: str | os.PathLike[str], sounds: Path | None = None, *,
                check_secrets: bool = True) -> HotlineConfig:
    """Read and validate the config file; every problem raises ConfigError naming the file.

    ``check_secrets``: operators' SIP passwords that are set (environment or file) must be
    strong (``secrets.check_operator_secrets``); off only to replace a weak one."""
    source = os.fspath(path)
    data = parse_yaml_text(_read(source), source)
    included = _include_ivr_files(data, source)
    try:
        config = parse_config(data, source)
    except ConfigError as e:
        raise _blame_included(e, included) from None
    _check_recorded(config, sounds or Path(source).resolve().parent / "sounds", source)
    config = check_tls(config, source)
    if check_secrets:
        check_operator_secrets(config)
    return config
