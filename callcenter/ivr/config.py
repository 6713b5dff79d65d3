"""Parsing a tenant's ``ivr:`` section into an ``IvrTree`` (pure; see callcenter.ivr.tree).

Schema (all durations in seconds)::

    ivr:
      root: main                 # first menu after the greeting
      operator: operator         # node that 0 leads to (default: the first operator node)
      timeout: 6                 # defaults for every menu ...
      retries: 3
      fallback: operator
      invalid: "Lựa chọn không hợp lệ ..."
      inter_digit: 2             # wait for a second digit when an option has two ("1", "12")
      texts: {feedback, thanks, no_items, more, choice}
      nodes:
        main: {type: menu, prompt: "...", options: {"1": faq_health, "9": operator},
               timeout: 6, retries: 3, invalid: "...", fallback: operator}
        faq_health: {type: faq, field: health, prompt: "..."}   # sub-menu of a field's items
        faq_mask: {type: faq, item: "YT-01"}                     # one answer (code or key)
        operator: {type: operator, prompt: "...", urgent: false}
        bye: {type: goodbye, prompt: "..."}
        status: {type: status_lookup, prompt: "...", codes: own}   # status by phone:
            # the caller's open tickets read out, or one keyed in; codes: own (a keyed-in code
            # finds only the caller's number's tickets, the default) or any (any of the
            # tenant's); timeout/retries as menus; fallback: default back to the calling menu

A prompt is a text, or ``{text: ..., file: ID}`` where ``file`` names a recorded
``config/sounds/<tenant>/<ID>.wav`` that replaces the synthesised text (a prompt may be a file
only; whether the file exists is checked when the config file is read).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from callcenter.config.base import BaseParser, join_key
from callcenter.ivr.tree import (
    BACK,
    CODES_SCOPES,
    DEFAULT_INTER_DIGIT_S,
    DEFAULT_INVALID,
    DEFAULT_RETRIES,
    DEFAULT_TEXTS,
    DEFAULT_TIMEOUT_S,
    OPERATOR,
    REPEAT,
    FaqNode,
    GoodbyeNode,
    IvrTexts,
    IvrTree,
    MenuNode,
    Node,
    OperatorNode,
    Prompt,
    StatusNode,
)

if TYPE_CHECKING:
    from callcenter.config.model import Field

_NODE_ID = re.compile(r"[a-z0-9_-]{1,32}")
_PROMPT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_OPTION = re.compile(r"[1-9][0-9]?")
MAX_NODES = 200
MAX_OPTIONS = 20
NODE_TYPES = ("menu", "faq", "operator", "goodbye", "status_lookup")
_TREE_KEYS = ("root", "operator", "timeout", "retries", "fallback", "invalid", "inter_digit",
              "texts", "nodes")
_NODE_KEYS = {
    "menu": ("type", "prompt", "options", "timeout", "retries", "invalid", "fallback"),
    "faq": ("type", "prompt", "field", "item", "timeout", "retries", "fallback"),
    "operator": ("type", "prompt", "urgent"),
    "goodbye": ("type", "prompt"),
    "status_lookup": ("type", "prompt", "codes", "timeout", "retries", "fallback"),
}


def _seconds(p: BaseParser, value: object, key: str, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        p.error(key, value, f"expected a number of seconds {low:g}..{high:g}")
        return None
    if not low <= value <= high:
        p.error(key, value, f"expected a number of seconds {low:g}..{high:g}")
        return None
    return float(value)


def _prompt(p: BaseParser, value: object, key: str, default_id: str) -> Prompt | None:
    """A text, or {text, file}; needs at least one of them."""
    if isinstance(value, str):
        text = p.text(value, key, max_len=2000)
        return Prompt(default_id, text) if text is not None else None
    m = p.mapping(value, key, ("text", "file"))
    if m is None:
        return None
    text = p.text(m["text"], join_key(key, "text"), max_len=2000) if "text" in m else None
    file_id: str | None = None
    if "file" in m:
        file_id = p.text(m["file"], join_key(key, "file"), max_len=64)
        if file_id is not None and not _PROMPT_ID.fullmatch(file_id):
            p.error(join_key(key, "file"), file_id,
                    "expected a recorded prompt id (A-Z a-z 0-9 _ . -, no folders or .wav)")
            return None
    if text is None and file_id is None:
        if "text" not in m and "file" not in m:
            p.error(key, value, "a prompt needs a text or a recorded file (text: or file:)")
        return None
    return Prompt(file_id or default_id, text)


def _texts(p: BaseParser, value: object, key: str) -> IvrTexts | None:
    d = DEFAULT_TEXTS
    m = p.mapping(value, key, ("feedback", "thanks", "no_items", "more", "choice"))
    if m is None:
        return None
    feedback = (_prompt(p, m["feedback"], join_key(key, "feedback"), d.feedback.id)
                if "feedback" in m else d.feedback)
    thanks = (_prompt(p, m["thanks"], join_key(key, "thanks"), d.thanks.id)
              if "thanks" in m else d.thanks)
    no_items = (_prompt(p, m["no_items"], join_key(key, "no_items"), d.no_items.id)
                if "no_items" in m else d.no_items)
    more: str | None = d.more
    if "more" in m:
        more = p.text(m["more"], join_key(key, "more"), max_len=500)
    choice: str | None = d.choice
    if "choice" in m:
        choice = p.text(m["choice"], join_key(key, "choice"), max_len=500)
        if choice is not None and ("{digit}" not in choice or "{question}" not in choice):
            p.error(join_key(key, "choice"), choice,
                    "expected a text with {digit} and {question} in it")
            choice = None
    if None in (feedback, thanks, no_items, more, choice):
        return None
    assert feedback and thanks and no_items and more and choice
    return IvrTexts(feedback, thanks, no_items, more, choice)


class _Defaults:
    def __init__(self, timeout: float, retries: int, fallback: str | None, invalid: Prompt):
        self.timeout = timeout
        self.retries = retries
        self.fallback = fallback
        self.invalid = invalid


def _options(p: BaseParser, value: object, key: str) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(value, dict) or not value:
        p.error(key, value, 'expected a mapping of digits to node ids, e.g. {"1": faq_health}')
        return None
    if len(value) > MAX_OPTIONS:
        p.error(key, value, f"expected at most {MAX_OPTIONS} options")
        return None
    result: list[tuple[str, str]] = []
    ok = True
    for raw_digit, target in value.items():
        digit = str(raw_digit) if isinstance(raw_digit, int) and not isinstance(
            raw_digit, bool) else raw_digit
        ok_key = join_key(key, str(raw_digit))
        if digit in (REPEAT, BACK, OPERATOR):
            p.error(ok_key, target, f"{digit!r} is reserved everywhere (* repeats, # goes back, "
                                    "0 asks for an operator); use 1-9 or two digits 10-99")
            ok = False
            continue
        if not isinstance(digit, str) or not _OPTION.fullmatch(digit):
            p.error(ok_key, target, "expected an option of one or two digits, 1-99 "
                                    "(not starting with 0)")
            ok = False
            continue
        if not isinstance(target, str) or not target:
            p.error(ok_key, target, "expected the id of the node this digit leads to")
            ok = False
            continue
        result.append((digit, target))
    return tuple(sorted(result)) if ok else None


def _node(p: BaseParser, node_id: str, value: object, key: str, defaults: _Defaults,
          field_ids: frozenset[str]) -> Node | None:
    if not isinstance(value, dict):
        p.error(key, value, "expected a mapping with a type: " + ", ".join(NODE_TYPES))
        return None
    kind = value.get("type")
    if kind not in NODE_TYPES:
        p.error(join_key(key, "type"), kind, "expected one of: " + ", ".join(NODE_TYPES))
        return None
    m = p.mapping(value, key, _NODE_KEYS[str(kind)])
    if m is None:
        return None
    prompt: Prompt | None = None
    if "prompt" in m:
        prompt = _prompt(p, m["prompt"], join_key(key, "prompt"), node_id)
        if prompt is None:
            return None
    elif kind not in ("faq", "status_lookup"):
        p.error(join_key(key, "prompt"), m.get("prompt"),
                f"node {node_id!r} needs a prompt (a text or a recorded file)")
        return None
    timeout = defaults.timeout
    if "timeout" in m:
        timeout = _seconds(p, m["timeout"], join_key(key, "timeout"), 1, 60) or 0
    retries = defaults.retries
    if "retries" in m:
        retries = p.integer(m["retries"], join_key(key, "retries"), 1, 10) or 0
    # A status lookup goes back to the calling menu unless it names its own fallback.
    fallback = defaults.fallback if kind != "status_lookup" else ""
    if "fallback" in m:
        fallback = p.text(m["fallback"], join_key(key, "fallback"), max_len=32)
    if not timeout or not retries:
        return None
    if kind == "menu":
        assert prompt is not None
        if "options" not in m:
            p.error(join_key(key, "options"), None, f"menu {node_id!r} needs options")
            return None
        options = _options(p, m["options"], join_key(key, "options"))
        invalid: Prompt | None = defaults.invalid
        if "invalid" in m:
            invalid = _prompt(p, m["invalid"], join_key(key, "invalid"), f"{node_id}-invalid")
        if options is None or invalid is None:
            return None
        if fallback is None:
            p.error(join_key(key, "fallback"), None,
                    f"menu {node_id!r} needs a fallback node (or ivr.fallback)")
            return None
        return MenuNode(node_id, prompt, options, timeout, retries, invalid, fallback)
    if kind == "faq":
        field = item = None
        if "field" in m:
            field = p.text(m["field"], join_key(key, "field"), max_len=32)
            if field is not None and field not in field_ids:
                p.error(join_key(key, "field"), field,
                        f"expected one of the tenant's fields: {', '.join(sorted(field_ids))}")
                return None
        if "item" in m:
            item = p.text(m["item"], join_key(key, "item"), max_len=64)
        if (field is None) == (item is None):
            if "field" not in m and "item" not in m or "field" in m and "item" in m:
                p.error(key, value, f"FAQ node {node_id!r} needs exactly one of field: "
                                    "(a sub-menu of the field's items) or item: (one answer)")
            return None
        return FaqNode(node_id, prompt, field=field, item=item, timeout_s=timeout,
                       retries=retries, fallback=fallback or "")
    if kind == "status_lookup":
        codes = m.get("codes", "own")
        if codes not in CODES_SCOPES:
            p.error(join_key(key, "codes"), codes,
                    "expected own (a keyed-in code finds only the caller's number's tickets) "
                    "or any (any ticket of the tenant)")
            return None
        return StatusNode(node_id, prompt, codes=str(codes), timeout_s=timeout,
                          retries=retries, fallback=fallback or "")
    assert prompt is not None
    if kind == "operator":
        urgent = m.get("urgent", False)
        if not isinstance(urgent, bool):
            p.error(join_key(key, "urgent"), urgent, "expected true or false")
            return None
        return OperatorNode(node_id, prompt, urgent)
    return GoodbyeNode(node_id, prompt)


def _dead_ends(nodes: Mapping[str, Node]) -> list[str]:
    """Menus from which no option path reaches an operator, goodbye or FAQ node."""
    exits = {nid for nid, n in nodes.items() if not isinstance(n, MenuNode)}
    changed = True
    while changed:
        changed = False
        for nid, n in nodes.items():
            if nid in exits or not isinstance(n, MenuNode):
                continue
            if any(target in exits for _, target in n.options):
                exits.add(nid)
                changed = True
    return sorted(nid for nid in nodes if nid not in exits)


def parse_ivr(p: BaseParser, value: object, key: str,
              fields: tuple[Field, ...]) -> IvrTree | None:
    """Validate the menu tree; errors go to ``p`` and name the node."""
    errors_before = len(p.errors)
    m = p.mapping(value, key, _TREE_KEYS, ("root", "nodes"))
    if m is None or "root" not in m or "nodes" not in m:
        return None
    timeout = _seconds(p, m.get("timeout", DEFAULT_TIMEOUT_S), join_key(key, "timeout"), 1, 60)
    retries = p.integer(m.get("retries", DEFAULT_RETRIES), join_key(key, "retries"), 1, 10)
    inter_digit = _seconds(p, m.get("inter_digit", DEFAULT_INTER_DIGIT_S),
                           join_key(key, "inter_digit"), 0.5, 10)
    invalid = (_prompt(p, m["invalid"], join_key(key, "invalid"), DEFAULT_INVALID.id)
               if "invalid" in m else DEFAULT_INVALID)
    fallback = p.text(m["fallback"], join_key(key, "fallback"), max_len=32) \
        if "fallback" in m else None
    texts = _texts(p, m["texts"], join_key(key, "texts")) if "texts" in m else DEFAULT_TEXTS
    raw_nodes = m["nodes"]
    nkey = join_key(key, "nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        p.error(nkey, raw_nodes, "expected a mapping of node id -> node")
        return None
    if len(raw_nodes) > MAX_NODES:
        p.error(nkey, f"{len(raw_nodes)} nodes", f"expected at most {MAX_NODES} nodes")
        return None
    if timeout is None or retries is None or inter_digit is None or invalid is None \
            or texts is None:
        return None
    # The tree-wide fallback defaults to the first operator node, else the first goodbye.
    if fallback is None:
        for kind in ("operator", "goodbye"):
            fallback = next((nid for nid, n in raw_nodes.items()
                             if isinstance(n, dict) and n.get("type") == kind), None)
            if fallback:
                break
    defaults = _Defaults(timeout, retries, fallback, invalid)
    field_ids = frozenset(f.id for f in fields)
    nodes: dict[str, Node] = {}
    for node_id, raw in raw_nodes.items():
        k = join_key(nkey, str(node_id))
        if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
            p.error(k, node_id, "expected a node id of 1-32 characters from a-z 0-9 _ -")
            continue
        node = _node(p, node_id, raw, k, defaults, field_ids)
        if node is not None:
            nodes[node_id] = node
    if len(p.errors) > errors_before:
        return None
    # References: every option, fallback and the root must name a node.
    for nid, n in nodes.items():
        k = join_key(nkey, nid)
        if isinstance(n, MenuNode):
            for digit, target in n.options:
                if target not in nodes:
                    p.error(join_key(join_key(k, "options"), digit), target,
                            f"option {digit} of menu {nid!r} points to no node "
                            f"(nodes: {', '.join(sorted(nodes))})")
        if isinstance(n, (MenuNode, FaqNode, StatusNode)) and n.fallback \
                and n.fallback not in nodes:
            p.error(join_key(k, "fallback"), n.fallback,
                    f"fallback of {nid!r} points to no node")
        if isinstance(n, FaqNode) and n.field is not None and not n.fallback:
            p.error(join_key(k, "fallback"), None,
                    f"FAQ sub-menu {nid!r} needs a fallback node (or ivr.fallback)")
    root = m["root"]
    if root not in nodes:
        p.error(join_key(key, "root"), root, "expected the id of a node in ivr.nodes")
    elif isinstance(nodes[root], StatusNode):
        p.error(join_key(key, "root"), root, "a status_lookup node returns to the menu the "
                                             "caller came from: the root must be another node")
    operator = m.get("operator")
    if operator is None:
        operator = next((nid for nid, n in nodes.items() if isinstance(n, OperatorNode)), None)
    elif not isinstance(nodes.get(str(operator)), OperatorNode):
        p.error(join_key(key, "operator"), operator, "expected the id of an operator node")
    for nid in _dead_ends(nodes):
        p.error(join_key(nkey, nid), "options",
                f"menu {nid!r} is a loop with no exit: no choice from it ever reaches an "
                "operator, goodbye or FAQ node")
    if len(p.errors) > errors_before:
        return None
    return IvrTree(root=str(root), nodes=tuple(nodes.values()),
                   operator=str(operator) if operator else None, inter_digit_s=inter_digit,
                   texts=texts, invalid=invalid)
