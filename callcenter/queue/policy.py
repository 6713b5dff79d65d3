"""A tenant's operators (tổng đài viên) and queue policy; pure parsing.

Schema (tenant keys ``operators`` and ``queue``; both optional)::

    operators:                          # operators' SIP softphones (PJSIP endpoints)
      - extension: "101"                # 3-6 digits, quoted; unique in the tenant
        name: "Nguyễn Thị Lan"
        secret_env: HOTLINE_OP_101      # the SIP password is read from this environment variable
      - extension: "102"
        name: "Trần Văn Minh"
        secret_file: secrets/op102      # ... or from this file (relative: to the config file)
        permit: ["10.20.0.0/24"]        # optional: the phone is accepted only from these
                                        #   networks (from others no password passes)
        require_tls: false              # optional: overrides operators_require_tls
    operators_require_tls: true         # softphones register over TLS (sip_tls) and send
                                        #   SRTP (SDES) only; plain UDP is refused
    queue:
      strategy: longest_idle            # the only strategy: longest-idle available operator
      ring_timeout_s: 15                # ring an operator this long, then the next one
      retry_s: 5                        # after every operator let a call ring out: wait this
                                        #   long before ringing the same ones again
      wrap_up_s: 10                     # after-call work before the next call (0: none)
      max_wait_s: 300                   # waited this long: offer a callback (again every
                                        #   max_wait_s while the caller keeps waiting)
      announce_every_s: 45              # position and estimated wait every 45 s (0: never)
      callback_offer: true              # false: callers simply keep waiting
      auto_pause_on_no_answer: false    # true: an operator who lets a call ring out is paused
                                        #   (reason "no_answer") instead of staying available
      handle_time_window: 20            # estimated wait uses the last N calls' handle time
      pause_reasons:                    # replaces the default list; the phone's pause feature
        - {id: break, label: "Nghỉ giải lao"}   #   code takes the reason's position (1-9)
        - {id: meeting, label: "Họp"}
        - {id: paperwork, label: "Xử lý hồ sơ"}

Decisions:

* **No secret in the YAML.** An operator names where the password is (``secret_env`` or
  ``secret_file``, exactly one); a ``secret``/``password`` key is refused. Only the reference's
  shape is checked here: the adapter that renders PJSIP auth reads it (the file may live only
  on the PBX host, and the environment of the config checker is not the service's).
* **Extensions are quoted strings**: YAML reads ``0101`` unquoted as an octal integer.
  Uniqueness across tenants is the tenant list's check (PJSIP endpoint names are global).
* ``no_answer`` is a reserved pause reason (the automatic one); a tenant's list cannot use it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from callcenter.config.base import MISSING, BaseParser, join_key, type_name

# Tenant keys this module parses (config.py passes them on untouched).
OPERATOR_KEYS: tuple[str, ...] = ("operators", "queue", "operators_require_tls")

Strategy = Literal["longest_idle"]
STRATEGIES: tuple[Strategy, ...] = ("longest_idle",)
MAX_OPERATORS = 500
MAX_PAUSE_REASONS = 9  # one digit after the pause feature code

_EXTENSION = re.compile(r"[0-9]{3,6}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_REASON_ID = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_KEYS = ("secret", "password", "pass", "secret_value")


@dataclass(frozen=True)
class SecretRef:
    """Where an operator's SIP password is kept: an environment variable or a file."""

    kind: Literal["env", "file"]
    name: str  # variable name, or file path as written (relative: to the config file)


@dataclass(frozen=True)
class Operator:
    """One operator's softphone account."""

    extension: str  # 3-6 digits: PJSIP endpoint/auth user and what other phones dial
    name: str
    secret: SecretRef
    permit: tuple[str, ...] = ()  # networks the phone may use (CIDR); empty: any source
    require_tls: bool | None = None  # None: the tenant's operators_require_tls


@dataclass(frozen=True)
class PauseReason:
    """Why an operator is paused; ``label`` is what supervisors and prompts show."""

    id: str  # a-z 0-9 _ (CLI, API, Redis)
    label: str  # Vietnamese


# The automatic pause after a call rang out (auto_pause_on_no_answer); reserved.
NO_ANSWER_REASON = PauseReason("no_answer", "Không nghe máy")

DEFAULT_PAUSE_REASONS: tuple[PauseReason, ...] = (
    PauseReason("break", "Nghỉ giải lao"),
    PauseReason("meeting", "Họp"),
    PauseReason("paperwork", "Xử lý hồ sơ"),
    PauseReason("training", "Đào tạo"),
    PauseReason("other", "Lý do khác"),
)


@dataclass(frozen=True)
class QueuePolicy:
    """How a tenant's queue hands calls to operators."""

    strategy: Strategy = "longest_idle"
    ring_timeout_s: int = 15
    retry_s: int = 5
    wrap_up_s: int = 10
    max_wait_s: int = 300
    announce_every_s: int = 45  # 0: no periodic announcement
    callback_offer: bool = True
    auto_pause_on_no_answer: bool = False
    handle_time_window: int = 20
    pause_reasons: tuple[PauseReason, ...] = DEFAULT_PAUSE_REASONS

    def reason(self, reason_id: str) -> PauseReason | None:
        """The pause reason with this id (the reserved ``no_answer`` included), or None."""
        if reason_id == NO_ANSWER_REASON.id:
            return NO_ANSWER_REASON
        return next((r for r in self.pause_reasons if r.id == reason_id), None)

    def reason_by_code(self, digit: int) -> PauseReason | None:
        """The reason the phone's pause feature code + ``digit`` (1-based position) means."""
        if 1 <= digit <= len(self.pause_reasons):
            return self.pause_reasons[digit - 1]
        return None


@dataclass(frozen=True)
class OperatorsConfig:
    """A tenant's operators and queue policy."""

    operators: tuple[Operator, ...] = ()
    queue: QueuePolicy = QueuePolicy()
    require_tls: bool = False  # operators_require_tls: TLS signalling and SRTP media only

    def tls_required(self, op: Operator) -> bool:
        """Whether ``op``'s softphone must use TLS and SRTP (its own setting, else the
        tenant's)."""
        return self.require_tls if op.require_tls is None else op.require_tls

    def operator(self, extension: str) -> Operator | None:
        """The configured operator with this extension, or None."""
        return next((o for o in self.operators if o.extension == extension), None)


DEFAULT_OPERATORS = OperatorsConfig()

# Integer settings: (default, low, high).
_INT_KEYS: dict[str, tuple[int, int]] = {
    "ring_timeout_s": (5, 120),
    "retry_s": (0, 300),
    "wrap_up_s": (0, 3600),
    "max_wait_s": (30, 7200),
    "announce_every_s": (0, 600),
    "handle_time_window": (1, 1000),
}
_BOOL_KEYS = ("callback_offer", "auto_pause_on_no_answer")
_QUEUE_KEYS = ("strategy", *_INT_KEYS, *_BOOL_KEYS, "pause_reasons")


def _extension(p: BaseParser, value: object, key: str) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        p.error(key, value, 'expected a quoted extension such as "101": YAML reads unquoted '
                            "digits as an integer (a leading 0 is lost, 0-prefixed digits may "
                            "be read as octal)")
        return None
    s = p.text(value, key, max_len=6)
    if s is not None and not _EXTENSION.fullmatch(s):
        p.error(key, value, "expected 3-6 digits")
        return None
    return s


def _secret(p: BaseParser, m: Mapping[str, object], key: str) -> SecretRef | None:
    has_env, has_file = m.get("secret_env") is not None, m.get("secret_file") is not None
    if has_env and has_file:
        p.error(join_key(key, "secret_file"), m["secret_file"],
                "expected only one of secret_env and secret_file")
        return None
    if not has_env and not has_file:
        p.error(join_key(key, "secret_env"), MISSING,
                "required: secret_env (an environment variable) or secret_file (a file) "
                "holding the SIP password")
        return None
    if has_env:
        k = join_key(key, "secret_env")
        name = p.text(m["secret_env"], k, max_len=128)
        if name is not None and not _ENV_NAME.fullmatch(name):
            p.error(k, name, "expected an environment variable name (A-Z a-z 0-9 _, not "
                             "starting with a digit)")
            return None
        return SecretRef("env", name) if name is not None else None
    k = join_key(key, "secret_file")
    path = p.text(m["secret_file"], k, max_len=4096)
    if path is None:
        return None
    if path != path.strip() or any(c in path for c in "\0\n\r"):
        p.error(k, path, "expected a file path without surrounding spaces or line breaks")
        return None
    return SecretRef("file", path)


def _operator(p: BaseParser, value: object, key: str) -> Operator | None:
    if isinstance(value, dict):
        for bad in _SECRET_KEYS:
            if bad in value:
                p.error(join_key(key, bad), "<hidden>",
                        "a password never goes in the YAML; expected secret_env (environment "
                        "variable) or secret_file (file path) naming where it is kept")
        value = {k: v for k, v in value.items() if k not in _SECRET_KEYS}
    m = p.mapping(value, key, ("extension", "name", "secret_env", "secret_file", "permit",
                               "require_tls"), ("extension", "name"))
    if m is None:
        return None
    ext = _extension(p, m["extension"], join_key(key, "extension")) if "extension" in m else None
    name = p.text(m["name"], join_key(key, "name"), max_len=100) if "name" in m else None
    secret = _secret(p, m, key)
    permit = _networks(p, m["permit"], join_key(key, "permit")) if "permit" in m else ()
    require_tls = (p.boolean(m["require_tls"], join_key(key, "require_tls"))
                   if "require_tls" in m else None)
    if ext is None or name is None or secret is None or permit is None:
        return None
    return Operator(ext, name.strip(), secret, permit, require_tls)


def _networks(p: BaseParser, value: object, key: str) -> tuple[str, ...] | None:
    """A non-empty list of IPv4/IPv6 networks (CIDR; a bare address is one host)."""
    items = p.list_(value, key)
    if items is None:
        return None
    nets = []
    for i, item in enumerate(items):
        k = join_key(key, i)
        s = p.text(item, k, max_len=64)
        if s is None:
            return None
        try:
            nets.append(str(ipaddress.ip_network(s.strip())))
        except ValueError:
            p.error(k, item, "expected a network such as 10.20.0.0/24 (address/prefix, no "
                             "host bits set) or one address")
            return None
    return tuple(nets)


def _operators(p: BaseParser, value: object, key: str,
               numbers: tuple[str, ...]) -> tuple[Operator, ...] | None:
    items = p.list_(value, key, non_empty=False)
    if items is None:
        return None
    if len(items) > MAX_OPERATORS:
        p.error(key, f"<{len(items)} operators>", f"expected at most {MAX_OPERATORS} operators")
        return None
    result: list[Operator] = []
    seen: dict[str, int] = {}
    ok = True
    for i, item in enumerate(items):
        ok_key = join_key(key, i)
        op = _operator(p, item, ok_key)
        if op is None:
            ok = False
            continue
        if op.extension in seen:
            p.error(join_key(ok_key, "extension"), op.extension,
                    f"expected a unique extension; {key}[{seen[op.extension]}] has it too")
            ok = False
            continue
        if op.extension in numbers:
            p.error(join_key(ok_key, "extension"), op.extension,
                    "expected an extension other than the tenant's hotline numbers")
            ok = False
            continue
        seen[op.extension] = i
        result.append(op)
    return tuple(result) if ok else None


def _pause_reasons(p: BaseParser, value: object, key: str) -> tuple[PauseReason, ...] | None:
    items = p.list_(value, key)
    if items is None:
        return None
    if len(items) > MAX_PAUSE_REASONS:
        p.error(key, f"<{len(items)} reasons>",
                f"expected at most {MAX_PAUSE_REASONS} pause reasons (one phone digit each)")
        return None
    result: list[PauseReason] = []
    seen: dict[str, int] = {}
    ok = True
    for i, item in enumerate(items):
        rk = join_key(key, i)
        m = p.mapping(item, rk, ("id", "label"), ("id", "label"))
        if m is None or "id" not in m or "label" not in m:
            ok = False
            continue
        rid = p.text(m["id"], join_key(rk, "id"), max_len=32)
        label = p.text(m["label"], join_key(rk, "label"), max_len=100)
        if rid is not None and not _REASON_ID.fullmatch(rid):
            p.error(join_key(rk, "id"), rid, "expected 1-32 characters from a-z 0-9 _")
            rid = None
        elif rid == NO_ANSWER_REASON.id:
            p.error(join_key(rk, "id"), rid,
                    "reserved for the automatic pause after a call rang out; expected another id")
            rid = None
        elif rid is not None and rid in seen:
            p.error(join_key(rk, "id"), rid,
                    f"expected a unique pause reason id; {key}[{seen[rid]}] has it too")
            rid = None
        if rid is None or label is None:
            ok = False
            continue
        seen[rid] = i
        result.append(PauseReason(rid, label.strip()))
    return tuple(result) if ok else None


def _queue(p: BaseParser, value: object, key: str) -> QueuePolicy | None:
    m = p.mapping(value, key, _QUEUE_KEYS)
    if m is None:
        return None
    before = len(p.errors)
    d = QueuePolicy()
    strategy: Strategy = d.strategy
    if "strategy" in m:
        raw = m["strategy"]
        if raw not in STRATEGIES:
            got = f"got {raw!r}" if isinstance(raw, str) else f"got {type_name(raw)}"
            p.error(join_key(key, "strategy"), raw,
                    f"expected {' or '.join(STRATEGIES)} (the only supported strategy), {got}")
        else:
            strategy = "longest_idle"
    ints: dict[str, int] = {}
    for name, (low, high) in _INT_KEYS.items():
        if name in m:
            got_int = p.integer(m[name], join_key(key, name), low, high)
            if got_int is not None:
                ints[name] = got_int
    bools: dict[str, bool] = {}
    for name in _BOOL_KEYS:
        if name in m:
            if isinstance(m[name], bool):
                bools[name] = bool(m[name])
            else:
                p.error(join_key(key, name), m[name],
                        f"expected true or false, got {type_name(m[name])}")
    reasons = d.pause_reasons
    if "pause_reasons" in m:
        reasons = _pause_reasons(p, m["pause_reasons"], join_key(key, "pause_reasons")) or reasons
    if len(p.errors) > before:
        return None
    return QueuePolicy(
        strategy=strategy,
        ring_timeout_s=ints.get("ring_timeout_s", d.ring_timeout_s),
        retry_s=ints.get("retry_s", d.retry_s),
        wrap_up_s=ints.get("wrap_up_s", d.wrap_up_s),
        max_wait_s=ints.get("max_wait_s", d.max_wait_s),
        announce_every_s=ints.get("announce_every_s", d.announce_every_s),
        callback_offer=bools.get("callback_offer", d.callback_offer),
        auto_pause_on_no_answer=bools.get("auto_pause_on_no_answer", d.auto_pause_on_no_answer),
        handle_time_window=ints.get("handle_time_window", d.handle_time_window),
        pause_reasons=reasons,
    )


def parse_operators_section(p: BaseParser, m: Mapping[str, object],
                            key: str) -> OperatorsConfig | None:
    """Validate the tenant's ``operators`` and ``queue`` keys; errors go to ``p``.

    ``m`` is the tenant's mapping and ``key`` its path (``tenants[0]``). Returns the defaults
    (no operators, default queue policy) when neither key is given, None when there are errors.
    """
    before = len(p.errors)
    raw_numbers = m.get("numbers")
    numbers = tuple(n for n in raw_numbers if isinstance(n, str)) \
        if isinstance(raw_numbers, list) else ()
    operators: tuple[Operator, ...] = ()
    if m.get("operators") is not None:
        operators = _operators(p, m["operators"], join_key(key, "operators"), numbers) or ()
    queue = DEFAULT_OPERATORS.queue
    if m.get("queue") is not None:
        queue = _queue(p, m["queue"], join_key(key, "queue")) or queue
    require_tls = False
    if m.get("operators_require_tls") is not None:
        require_tls = bool(p.boolean(m["operators_require_tls"],
                                     join_key(key, "operators_require_tls")))
    if len(p.errors) > before:
        return None
    return OperatorsConfig(operators=operators, queue=queue, require_tls=require_tls)
