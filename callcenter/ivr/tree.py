"""IVR menu trees as pure data; ``ivr.menu`` walks them, ``ivr.config`` builds them.

A tree is a set of named nodes:

* ``menu``: a prompt, then a choice of digits -> node, with a no-input timeout, a number of
  invalid/silent answers allowed before the ``fallback`` node, and an invalid-input prompt.
* ``faq``: either one FAQ item read aloud (``item``: the sheet's code or the item key), or a
  sub-menu of a field's FAQ items (``field``), built from the FAQ in force when the call arrives.
  After an answer the caller is asked whether it answered the question (1 yes, 2 operator).
* ``operator``: says its prompt ("please hold") and hands the call to the operators' queue.
* ``goodbye``: says its prompt and hangs up.
* ``status_lookup``: reads the state of the caller's open tickets, or of one whose number the
  caller keys in (callcenter.ivr.status); then back to the menu the caller came from.

Anywhere: ``*`` repeats, ``#`` goes back one menu, ``0`` goes to the operator node.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

# Digits with a meaning everywhere; a menu option may not use them.
REPEAT, BACK, OPERATOR = "*", "#", "0"
DIGITS = frozenset("0123456789*#")


@dataclass(frozen=True)
class Prompt:
    """Something the caller hears: synthesised from ``text``, unless a recorded file with ``id``
    exists (``config/sounds/<tenant>/<id>.wav``); a prompt may be a recorded file only."""

    id: str
    text: str | None
    clip: bool = False  # a fragment said in a row with others: speech padding trimmed


@dataclass(frozen=True)
class MenuNode:
    """Choose with digits: ``options`` maps a digit string ("1", "12") to a node id."""

    id: str
    prompt: Prompt
    options: tuple[tuple[str, str], ...]
    timeout_s: float
    retries: int  # invalid or silent answers allowed; the last one sends the caller to fallback
    invalid: Prompt
    fallback: str

    @functools.cached_property
    def choices(self) -> Mapping[str, str]:
        """Digits -> node id."""
        return dict(self.options)


@dataclass(frozen=True)
class FaqNode:
    """Read one FAQ item (``item``) or offer a field's items as a sub-menu (``field``)."""

    id: str
    prompt: Prompt | None  # said first (e.g. "Các câu hỏi về y tế"); None: nothing
    field: str | None = None
    item: str | None = None  # the sheet's code, or the item key
    timeout_s: float = 6.0
    retries: int = 3
    fallback: str = ""  # node after too many invalid/silent answers in the sub-menu


@dataclass(frozen=True)
class OperatorNode:
    """Hand the call to the operators (the queue); ``urgent`` calls go ahead of others."""

    id: str
    prompt: Prompt
    urgent: bool = False


@dataclass(frozen=True)
class GoodbyeNode:
    """Say goodbye and hang up."""

    id: str
    prompt: Prompt


CODES_SCOPES = ("own", "any")


@dataclass(frozen=True)
class StatusNode:
    """Status by phone: the caller's open tickets, or one keyed in (callcenter.ivr.status).

    ``codes``: whose tickets a keyed-in whole code may find: ``own`` (the caller's number's
    only) or ``any`` (any of the tenant's). ``fallback``: where too many invalid or silent
    answers go; empty: back to the menu the caller came from."""

    id: str
    prompt: Prompt | None  # said first (e.g. "Tra cứu tình trạng phản ánh"); None: nothing
    codes: str = "own"
    timeout_s: float = 6.0
    retries: int = 3
    fallback: str = ""


Node = MenuNode | FaqNode | OperatorNode | GoodbyeNode | StatusNode


@dataclass(frozen=True)
class IvrTexts:
    """The built-in sentences of the IVR (a tenant may change any of them)."""

    feedback: Prompt  # "did this answer your question? 1 yes, 2 operator"
    thanks: Prompt  # after "yes", before hanging up
    no_items: Prompt  # a FAQ node whose items are missing (sheet not imported yet)
    more: str  # list page: "press 9 for more", appended to a page that has more items
    choice: str  # list item: "Bấm {digit}: {question}."


DEFAULT_TEXTS = IvrTexts(
    feedback=Prompt(
        "feedback",
        "Thông tin trên có giải đáp được câu hỏi của quý khách không? "
        "Nếu có, xin bấm phím 1. Để gặp tổng đài viên, xin bấm phím 2.",
    ),
    thanks=Prompt("thanks", "Cảm ơn quý khách đã gọi Tổng đài 1022. Xin chào và hẹn gặp lại."),
    no_items=Prompt(
        "no_items",
        "Nội dung này đang được cập nhật. Xin quý khách vui lòng chọn mục khác.",
    ),
    more="Để nghe các câu hỏi tiếp theo, xin bấm phím 9.",
    choice="Bấm phím {digit}: {question}.",
)
DEFAULT_INVALID = Prompt("invalid", "Lựa chọn không hợp lệ, xin quý khách vui lòng chọn lại.")
DEFAULT_TIMEOUT_S = 6.0
DEFAULT_INTER_DIGIT_S = 2.0
DEFAULT_RETRIES = 3
ITEMS_PER_PAGE = 8  # list pages offer digits 1-8; 9 is "more"
MORE_DIGIT = "9"


@dataclass(frozen=True)
class IvrTree:
    """A tenant's validated menu tree."""

    root: str
    nodes: tuple[Node, ...]
    operator: str | None  # the node ``0`` goes to; None: ``0`` is an invalid choice
    inter_digit_s: float = DEFAULT_INTER_DIGIT_S
    texts: IvrTexts = DEFAULT_TEXTS
    invalid: Prompt = DEFAULT_INVALID  # said on a bad choice in FAQ lists and the feedback

    @functools.cached_property
    def by_id(self) -> Mapping[str, Node]:
        """Node id -> node."""
        return {n.id: n for n in self.nodes}

    def node(self, node_id: str) -> Node:
        """The node with this id (KeyError if the tree has none: validation prevents that)."""
        return self.by_id[node_id]

    def prompts(self) -> list[Prompt]:
        """Every fixed prompt of the tree (FAQ answers and lists come from the FAQ)."""
        found: dict[str, Prompt] = {}
        for n in self.nodes:
            for p in (getattr(n, "prompt", None), getattr(n, "invalid", None)):
                if isinstance(p, Prompt):
                    found.setdefault(p.id, p)
        for p in (self.texts.feedback, self.texts.thanks, self.texts.no_items, self.invalid):
            found.setdefault(p.id, p)
        return list(found.values())
