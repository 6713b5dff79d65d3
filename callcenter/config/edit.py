"""Edit a tenant's shifts (start, end, lines) in the hotline config file, as the console asks.

The file stays as its authors wrote it: the YAML composer (PyYAML's, on libyaml when built
with it) gives the exact character range of every scalar, and only the ranges of the changed
values are replaced, so comments, flow mappings, indentation, quoting and line wrapping stay
byte for byte (a dump would re-indent the whole file and unwrap every long flow mapping).
libyaml composes the 63-province config (92 kB) in ~25 ms; ruamel.yaml's round-trip composer,
used before, took ~900 ms, three times per console save.

``ConfigEditor.save`` (the console's entry point):

1. the file's SHA-256 must still be the one the form was rendered from (optimistic
   concurrency; hand edits keep working), and each changed field must still hold the value
   the admin saw, else ``config.stale``;
2. the patched text is written to a temporary file next to the config (same folder: the
   ``ivr:`` include files and recorded prompts resolve alike) and validated there by
   ``load_config`` -- the very parser of the running service. Any problem refuses the edit
   (``config.invalid``, each error mapped to its shift and field); nothing else is written;
3. under an exclusive ``flock`` (two app instances on one file), the SHA-256 is checked
   once more, the previous version is kept as ``.history/<name>.<UTC timestamp>`` next to
   the file (the newest ``KEEP_VERSIONS`` are kept), the temporary file is fsynced and
   ``os.replace``d over the config, and the folder is fsynced;
4. the LiveConfig reloads the file (no restart; the next call uses the new limits).

Values are written safely: a time that looks like one is written ``"HH:MM"`` (quoted: YAML
1.1 reads an unquoted 18:00 as an integer), a whole number plainly, and anything else as a
JSON-quoted string so the parser refuses it by its own rules -- input never becomes YAML
structure.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from callcenter.config.base import ConfigError
from callcenter.config.file import load_config
from callcenter.config.live import LiveConfig

log = logging.getLogger("callcenter.config.edit")

FIELDS: Final = ("start", "end", "lines")
HISTORY_DIR: Final = ".history"
KEEP_VERSIONS: Final = 50
MAX_INPUT: Final = 32  # characters of one submitted value that are kept
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")
_INT = re.compile(r"[+-]?[0-9]{1,9}")
_SHIFT_KEY = re.compile(r"tenants\[(\d+)\]\.shifts(?:\[(\d+)\](?:\.(\w+))?)?")


@dataclass(frozen=True)
class ShiftValues:
    """One shift's editable values as written in the file (plain scalar text)."""

    name: str
    start: str
    end: str
    lines: str


@dataclass(frozen=True)
class ShiftEdit:
    """One field the admin changed: the value the form showed and the value now wanted."""

    shift: str  # the shift's name (its identity; names are not edited here)
    field: str  # start | end | lines
    seen: str
    new: str


@dataclass(frozen=True)
class FieldChange:
    """One field of one shift as written before and after the edit."""

    shift: str
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class FieldError:
    """A validation problem placed on the form: ``field`` is start/end/lines of shift
    ``shift_index``, ``shifts`` (the set: gaps, overlaps), or ``None`` (elsewhere)."""

    shift_index: int | None
    field: str | None
    key: str
    shift: str | None  # the name of shift ``shift_index`` in the file
    reason: str
    text: str  # the parser's full line: file, key, value, reason


class ConfigEditError(Exception):
    """A refused edit; ``id`` is stable: config.stale, config.invalid, config.not_editable,
    config.write_failed."""

    def __init__(self, error_id: str, message: str,
                 errors: Sequence[FieldError] = ()) -> None:
        self.id = error_id
        self.message = message
        self.errors = tuple(errors)
        super().__init__(f"{error_id}: {message}")


@dataclass(frozen=True)
class SaveResult:
    """What a save did; ``changes`` empty means nothing differed and nothing was written."""

    changes: tuple[FieldChange, ...]
    sha256_before: str
    sha256_after: str
    previous: Path | None = None  # where the previous version was kept
    reloaded: bool = False
    reload_error: str | None = None


@dataclass(frozen=True)
class FileState:
    """The config file as read now: its SHA-256 and the tenant's shifts in it."""

    sha256: str
    shifts: tuple[ShiftValues, ...] = field(default=())


def sha256_of(data: bytes) -> str:
    """Hex SHA-256 of the file's bytes."""
    return hashlib.sha256(data).hexdigest()


def canonical_time(value: str) -> str | None:
    """``"7:00"`` -> ``"07:00"``; ``"24:00"`` stays; None when not shaped like a time."""
    m = _TIME.fullmatch(value.strip())
    if m is None:
        return None
    text = f"{int(m[1]):02d}:{m[2]}"
    return text + f":{m[3]}" if m[3] and m[3] != "00" else text


def same_value(field_name: str, a: str, b: str) -> bool:
    """Whether two written values mean the same (``07:00`` = ``7:00``, end ``24:00`` =
    ``00:00``, ``02`` = ``2``)."""
    if field_name == "lines":
        if _INT.fullmatch(a.strip()) and _INT.fullmatch(b.strip()):
            return int(a) == int(b)
        return a.strip() == b.strip()
    ca, cb = canonical_time(a), canonical_time(b)
    if ca is None or cb is None:
        return a.strip() == b.strip()
    if field_name == "end":
        ca, cb = ("00:00" if c == "24:00" else c for c in (ca, cb))
    return ca == cb


def _yaml_token(field_name: str, raw: str) -> tuple[str, str]:
    """The YAML text to write for a submitted value, and the scalar it reads back as."""
    value = raw.strip()[:MAX_INPUT]
    if field_name == "lines" and _INT.fullmatch(value):
        number = str(int(value))
        return number, number
    if field_name in ("start", "end"):
        time = canonical_time(value)
        if time is not None:
            return f'"{time}"', time
    return json.dumps(value), value  # a JSON string is a YAML double-quoted scalar


# ---- locating the shifts in the text ---------------------------------------------------

def _get(node: Node, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return cast(Node, v)
    return None


@dataclass(frozen=True)
class _Located:
    tenant_index: int
    names: tuple[str, ...]
    scalars: tuple[dict[str, ScalarNode], ...]  # per shift: field -> node


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _anchored(text: str, node: Node) -> bool:
    """Whether the node carries an anchor (``&name``): its range starts with it. An alias
    (``*name``) is the anchored node itself, so it is found the same way."""
    return text.startswith("&", node.start_mark.index)


def _compose(text: str, source: str) -> Node:
    try:
        root = yaml.compose(text, Loader=_Loader)  # noqa: S506 - a safe loader, nodes only
    except yaml.YAMLError as e:
        raise ConfigEditError("config.not_editable",
                              f"{source}: the file is not readable YAML now: {e}") from e
    if root is None:
        raise ConfigEditError("config.not_editable", f"{source}: the file is empty")
    return root


def _locate(text: str, tenant_id: str, source: str) -> _Located:
    """Find the tenant's ``shifts`` and each shift's start/end/lines scalar nodes."""
    root = _compose(text, source)
    tenants = _get(root, "tenants")
    if not isinstance(tenants, SequenceNode):
        raise ConfigEditError("config.not_editable", f"{source}: no tenants list")
    ids = [_get(t, "id") for t in tenants.value]
    found_at = [i for i, n in enumerate(ids) if isinstance(n, ScalarNode) and n.value == tenant_id]
    if not found_at:
        raise ConfigEditError("config.not_editable",
                              f"{source}: no tenant {tenant_id!r} in the file")
    index = found_at[0]
    tenant = tenants.value[index]
    shifts = _get(tenant, "shifts")
    if not isinstance(shifts, SequenceNode):
        raise ConfigEditError("config.not_editable",
                              f"{source}: tenant {tenant_id!r} has no shifts list")
    names: list[str] = []
    scalars: list[dict[str, ScalarNode]] = []
    for j, shift in enumerate(shifts.value):
        found: dict[str, ScalarNode] = {}
        for key in ("name", *FIELDS):
            node = _get(shift, key)
            if not isinstance(node, ScalarNode):
                raise ConfigEditError(
                    "config.not_editable",
                    f"{source}: tenants[{index}].shifts[{j}].{key} is not a single value")
            found[key] = node
        # An anchored node may be shared with another tenant through an alias: editing it
        # here would change that tenant too, behind the admin's back.
        if any(_anchored(text, n) for n in (shifts, shift, *found.values())):
            raise ConfigEditError(
                "config.not_editable",
                f"{source}: tenants[{index}].shifts uses a YAML anchor (&): edit it by hand")
        names.append(str(found["name"].value))
        scalars.append(found)
    return _Located(index, tuple(names), tuple(scalars))


def read_shifts(text: str, tenant_id: str, source: str = "<text>") -> tuple[ShiftValues, ...]:
    """The tenant's shifts as written in ``text`` (raises ConfigEditError if not found)."""
    located = _locate(text, tenant_id, source)
    return tuple(ShiftValues(name=s["name"].value, start=str(s["start"].value),
                             end=str(s["end"].value), lines=str(s["lines"].value))
                 for s in located.scalars)


def tenant_index(text: str, tenant_id: str, source: str = "<text>") -> int:
    """The tenant's position in the file's ``tenants`` list (the index in error keys)."""
    return _locate(text, tenant_id, source).tenant_index


def patch_shifts(text: str, tenant_id: str, edits: Sequence[ShiftEdit],
                 source: str = "<text>") -> tuple[str, tuple[FieldChange, ...]]:
    """Apply ``edits`` to the text; only the changed scalars' characters are replaced.

    An edit whose new value means what the form showed is no change. A changed field whose
    value in the file is no longer what the form showed raises ``config.stale``.
    """
    located = _locate(text, tenant_id, source)
    replacements: list[tuple[int, int, str]] = []
    changes: list[FieldChange] = []
    expected: list[tuple[int, str, str]] = []
    for edit in edits:
        if edit.field not in FIELDS:
            raise ConfigEditError("config.not_editable", f"field {edit.field!r} is not editable")
        if same_value(edit.field, edit.new, edit.seen):
            continue
        try:
            j = located.names.index(edit.shift)
        except ValueError:
            raise ConfigEditError(
                "config.stale", f"{source}: tenant {tenant_id!r} has no shift {edit.shift!r} "
                                "any more") from None
        node = located.scalars[j][edit.field]
        old = str(node.value)
        if not same_value(edit.field, old, edit.seen):
            raise ConfigEditError(
                "config.stale", f"{source}: shift {edit.shift!r} {edit.field} is {old!r} in "
                                f"the file, not {edit.seen!r} as the form showed")
        token, reads_as = _yaml_token(edit.field, edit.new)
        replacements.append((node.start_mark.index, node.end_mark.index, token))
        changes.append(FieldChange(edit.shift, edit.field, old, reads_as))
        expected.append((j, edit.field, reads_as))
    out = text
    for start, end, token in sorted(replacements, reverse=True):
        out = out[:start] + token + out[end:]
    if replacements:
        # The patch must read back as meant, and only there (ranges are exact, but a
        # surprise here must never reach the live file).
        after = _locate(out, tenant_id, source)
        for j, name, value in expected:
            if str(after.scalars[j][name].value) != value:
                raise ConfigEditError("config.not_editable",
                                      f"{source}: the edit of {name} did not read back")
    return out, tuple(changes)


def field_errors(err: ConfigError, tenant_at: int,
                 names: Sequence[str] = ()) -> tuple[FieldError, ...]:
    """Place each of the parser's errors on the form: shift and field, or general.

    ``tenant_at`` is the tenant's index in the file, ``names`` its shifts' names in order.
    """
    placed: list[FieldError] = []
    for e in err.errors:
        m = _SHIFT_KEY.fullmatch(e.key)
        if m is not None and int(m[1]) == tenant_at:
            if m[2] is None:
                placed.append(FieldError(None, "shifts", e.key, None, e.reason, e.line_text()))
                continue
            j = int(m[2])
            what = m[3] if m[3] in FIELDS else None
            name = names[j] if j < len(names) else None
            placed.append(FieldError(j, what, e.key, name, e.reason, e.line_text()))
            continue
        placed.append(FieldError(None, None, e.key, None, e.reason, e.line_text()))
    return tuple(placed)


# ---- writing ---------------------------------------------------------------------------

def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)  # a config file is small: one write
        os.fchmod(fd, mode)  # not reduced by the umask: keep the original's mode
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _file_lock(folder: Path, name: str) -> Iterator[None]:
    """Exclusive across processes (two app instances sharing one config file)."""
    fd = os.open(folder / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _keep_previous(path: Path, data: bytes, mode: int, now: dt.datetime) -> Path:
    """Save the version being replaced as ``.history/<name>.<UTC timestamp>``; prune."""
    folder = path.parent / HISTORY_DIR
    folder.mkdir(mode=0o750, exist_ok=True)
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{path.name}.{stamp}"
    n = 1
    while target.exists():  # two saves in one second
        target = folder / f"{path.name}.{stamp}-{n}"
        n += 1
    _write_synced(target, data, mode)
    _fsync_dir(folder)
    versions = sorted((p for p in folder.glob(f"{path.name}.*") if p.is_file()),
                      key=lambda p: p.stat().st_mtime_ns)
    for old in versions[:-KEEP_VERSIONS]:
        with suppress(OSError):
            old.unlink()
    return target


def read_state(path: Path, tenant_id: str) -> FileState:
    """The file's SHA-256 and the tenant's shifts as written (blocking)."""
    data = path.read_bytes()
    return FileState(sha256_of(data), read_shifts(data.decode("utf-8"), tenant_id, str(path)))


def save_shift_edits(path: Path, tenant_id: str, edits: Sequence[ShiftEdit], *,
                     expected_sha256: str, now: dt.datetime) -> SaveResult:
    """Validate and write the edits (blocking; steps 1-3 of the module docstring)."""
    path = Path(os.path.realpath(path))  # a symlinked config: replace its target
    source = str(path)
    data = path.read_bytes()
    before = sha256_of(data)
    if before != expected_sha256:
        raise ConfigEditError("config.stale", f"{source} changed since the form was opened")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigEditError("config.not_editable", f"{source}: not UTF-8 text") from e
    new_text, changes = patch_shifts(text, tenant_id, edits, source)
    if not changes:
        return SaveResult((), before, before)
    located = _locate(text, tenant_id, source)
    mode = stat.S_IMODE(path.stat().st_mode)
    tmp = path.parent / f".{path.name}.edit-{secrets.token_hex(6)}.tmp"
    try:
        _write_synced(tmp, new_text.encode("utf-8"), mode)
        try:
            load_config(tmp)  # the running service's own parser and file checks
        except ConfigError as e:
            for one in e.errors:  # name the real file, not the temporary one
                if one.source == str(tmp):
                    one.source = source
            placed = field_errors(e, located.tenant_index, located.names)
            raise ConfigEditError("config.invalid", e.format_all(), placed) from None
        with _file_lock(path.parent, path.name):
            current = path.read_bytes()
            if sha256_of(current) != before:
                raise ConfigEditError("config.stale",
                                      f"{source} changed while the edit was being checked")
            try:
                previous = _keep_previous(path, current, mode, now)
                os.replace(tmp, path)
                _fsync_dir(path.parent)
            except OSError as e:
                raise ConfigEditError("config.write_failed",
                                      f"{source}: cannot write: {e}") from e
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()
    return SaveResult(changes, before, sha256_of(new_text.encode("utf-8")), previous)


class ConfigEditor:
    """Edits the LiveConfig's file and has it reload; one save at a time in this process."""

    def __init__(self, live: LiveConfig) -> None:
        self.live = live
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        """The config file the service runs from."""
        return self.live.path

    async def state(self, tenant_id: str) -> FileState:
        """The file's SHA-256 and the tenant's shifts as written now."""
        return await asyncio.to_thread(read_state, self.live.path, tenant_id)

    async def save(self, tenant_id: str, edits: Sequence[ShiftEdit], *, expected_sha256: str,
                   now: dt.datetime, who: str) -> SaveResult:
        """Validate, write atomically (previous kept) and reload; ConfigEditError if refused."""
        async with self._lock:
            result = await asyncio.to_thread(save_shift_edits, self.live.path, tenant_id,
                                             edits, expected_sha256=expected_sha256, now=now)
            if not result.changes:
                return result
            what = ", ".join(f"{c.shift}.{c.field} {c.old} -> {c.new}" for c in result.changes)
            log.info("config: %s changed the shifts of %s in %s: %s (previous kept as %s)",
                     who, tenant_id, self.live.path, what, result.previous)
            ok = await self.live.reload(f"console edit by {who}")
            return SaveResult(result.changes, result.sha256_before, result.sha256_after,
                              result.previous, ok, None if ok else self.live.last_error)


def describe(change: FieldChange) -> dict[str, Any]:
    """A change as plain data (logs, JSON)."""
    return {"shift": change.shift, "field": change.field, "old": change.old, "new": change.new}
