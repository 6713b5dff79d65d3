"""The IVR interpreter: (tree, FAQ, state, event) -> (new state, commands). Pure.

The caller moves through an ``IvrTree`` (callcenter.ivr.tree) with DTMF digits. The ARI
adapter turns Asterisk events into ``Start``/``Digit``/``PromptEnded``/``TimerFired``/
``CallerLeft`` and carries out ``Say``/``StopSaying``/``StartTimer``/``CancelTimer``/
``ToOperator``/``EndCall``. Playbacks and timers carry a token; an event with a stale token
(a prompt already stopped by barge-in, a timer already replaced) is ignored.

Rules, everywhere: a digit stops the prompt that is playing (barge-in); ``*`` repeats, ``#``
goes back one menu, ``0`` goes to the operator. In a menu, an invalid choice or silence plays
the invalid prompt and the menu again; the ``retries``-th failure sends the caller to the
node's fallback. While an FAQ answer is read (sentence by sentence), any other digit skips to
the next sentence; after the answer the caller is asked whether it helped: 1 yes (thanks,
goodbye), 2 operator. Every step is written to the call's IVR path.

A ``status_lookup`` node asks the adapter to look up the caller's tickets (``LookupTickets``,
answered by ``LookupDone``; callcenter.ivr.status says what is read). While a code is keyed in,
``0`` is a digit (sequence numbers start with 0), ``#`` ends it (alone: back to the menu), a
pause of the node's timeout after some digits ends it too, and ``*`` repeats what was read.

Keys pressed while a lookup runs are typed ahead, as on every IVR (Asterisk's Read() keeps
typed-ahead DTMF): each is logged when pressed and kept in ``MenuState.typed``; when the lookup
answers they are applied in order, as if pressed just after it, so a caller who keys a whole
code (and ``#``) during the lookup gets what one who keys it after gets. Only ``#`` with nothing
typed ahead acts at once (back to the menu: no code starts with ``#``); ``0`` waits with the
others (it is a digit of a code). Only the net effect of the replayed keys goes to the adapter
(a prompt said and cut within the step is not said; of the timers only the last is armed). If
the lookup's answer takes the caller out of the code question (store down, third failure), the
keys left are dropped: typed as a code, they would pick menu options the caller never meant.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from callcenter.ivr import status as st
from callcenter.ivr.tree import (
    BACK,
    DIGITS,
    ITEMS_PER_PAGE,
    MORE_DIGIT,
    OPERATOR,
    REPEAT,
    FaqNode,
    GoodbyeNode,
    IvrTree,
    MenuNode,
    OperatorNode,
    Prompt,
    StatusNode,
)

MAX_PATH = 300  # steps kept in a call's IVR path; a caller pressing keys for an hour stops there
MAX_TYPED_AHEAD = 64  # keys kept while a lookup runs (a code and # are at most 15)


class FaqItemLike(Protocol):
    """What the interpreter needs of an FAQ item."""

    @property
    def key(self) -> str: ...
    @property
    def question(self) -> str: ...
    @property
    def sentences(self) -> tuple[str, ...]: ...


class FaqSource(Protocol):
    """The FAQ in force when the call arrived."""

    def for_field(self, field: str) -> Sequence[FaqItemLike]: ...
    def find(self, ref: str) -> FaqItemLike | None: ...


class NoFaq:
    """An empty FAQ (none imported yet)."""

    def for_field(self, field: str) -> Sequence[FaqItemLike]:
        """No items."""
        return ()

    def find(self, ref: str) -> FaqItemLike | None:
        """No item."""
        return None


class Mode(enum.Enum):
    CHOOSING = "choosing"  # a menu, a FAQ list or the feedback question: waiting for digits
    ANSWERING = "answering"  # reading an FAQ answer, sentence by sentence
    LEAVING = "leaving"  # goodbye or thanks playing; the call ends after it
    TO_OPERATOR = "to_operator"  # the operator node's prompt playing; handed over after it
    LOOKING = "looking"  # a status lookup asked of the ticket store; waiting for LookupDone
    DONE = "done"


class Ask(enum.Enum):
    """What a CHOOSING state is asking for."""

    MENU = "menu"
    LIST = "list"  # a page of a field's FAQ items
    FEEDBACK = "feedback"  # "did this answer your question?"
    CODE = "code"  # a status lookup's ticket number, keyed in digit by digit


@dataclass(frozen=True)
class Step:
    """One line of the IVR path kept in the call record."""

    at: dt.datetime
    # enter, digit, invalid, timeout, faq, feedback, operator, goodbye, hangup, status
    event: str
    node: str | None = None
    digit: str | None = None  # status: the number keyed in (none: by the caller's number)
    faq: str | None = None  # FAQ item key
    answer: str | None = None  # feedback: yes / no; status: found / none / unavailable
    codes: str | None = None  # status: the ticket codes read out, space-separated

    def as_dict(self) -> dict[str, str]:
        """JSON form: ISO time with offset, empty fields left out."""
        d = {"at": self.at.isoformat(), "event": self.event}
        for k in ("node", "digit", "faq", "answer", "codes"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


@dataclass(frozen=True)
class MenuState:
    """Where one caller is in the tree."""

    node: str
    mode: Mode = Mode.CHOOSING
    ask: Ask = Ask.MENU
    history: tuple[str, ...] = ()  # menus '#' goes back to
    failures: int = 0
    buffer: str = ""  # digits of a choice not yet complete ("1" of "12")
    playing: int | None = None  # token of the prompt playing
    queue: tuple[Prompt, ...] = ()  # prompts to say after it
    timer: int | None = None  # token of the armed timer
    seq: int = 0  # last token handed out
    item: str | None = None  # FAQ item key being read or asked about
    sentence: int = 0
    page: int = 0
    path: tuple[Step, ...] = ()
    lookup: int | None = None  # token of the status lookup asked for (mode LOOKING)
    query: str | None = None  # the digits keyed in for that lookup (None: by caller number)
    said: tuple[Prompt, ...] = ()  # the status last read out ('*' says it again)
    typed: str = ""  # keys pressed while the lookup runs, applied in order when it answers


# ---- events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Start:
    at: dt.datetime
    greeting: Prompt | None = None  # said before the root menu's prompt


@dataclass(frozen=True)
class Digit:
    at: dt.datetime
    digit: str


@dataclass(frozen=True)
class PromptEnded:
    at: dt.datetime
    token: int


@dataclass(frozen=True)
class TimerFired:
    at: dt.datetime
    token: int


@dataclass(frozen=True)
class CallerLeft:
    at: dt.datetime


@dataclass(frozen=True)
class LookupDone:
    """The ticket store's answer to ``LookupTickets(token)`` (failed: it did not answer)."""

    at: dt.datetime
    token: int
    result: st.LookupResult


MenuEvent = Start | Digit | PromptEnded | TimerFired | CallerLeft | LookupDone


# ---- commands -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Say:
    prompt: Prompt
    token: int


@dataclass(frozen=True)
class StopSaying:
    token: int


@dataclass(frozen=True)
class StartTimer:
    """Arm the call's one timer (replacing any other) to fire TimerFired(token)."""

    token: int
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    pass


@dataclass(frozen=True)
class ToOperator:
    node: str
    urgent: bool


@dataclass(frozen=True)
class EndCall:
    pass


@dataclass(frozen=True)
class LookupTickets:
    """Look up the caller's tickets (``code`` None: the open ones of the caller's number;
    else that code, the caller's own unless ``any_caller``); answer with LookupDone(token)."""

    token: int
    code: st.TypedCode | None = None
    any_caller: bool = False


MenuCommand = Say | StopSaying | StartTimer | CancelTimer | ToOperator | EndCall | LookupTickets
Result = tuple[MenuState, list[MenuCommand]]


# ---- prompts built from the FAQ ---------------------------------------------------------------
def answer_prompts(item: FaqItemLike) -> tuple[Prompt, ...]:
    """An FAQ answer as one prompt per sentence (ids ``faq-<key>-<n>``)."""
    return tuple(Prompt(f"faq-{item.key}-{i + 1}", s) for i, s in enumerate(item.sentences))


def list_pages(tree: IvrTree, node: FaqNode, items: Sequence[FaqItemLike]) -> list[Prompt]:
    """A field's items as pages of "press N: question", ITEMS_PER_PAGE per page."""
    assert node.field is not None
    pages: list[Prompt] = []
    for start in range(0, len(items), ITEMS_PER_PAGE):
        chunk = items[start:start + ITEMS_PER_PAGE]
        parts = [tree.texts.choice.format(digit=i + 1, question=it.question.rstrip(" ?.") + "?")
                 for i, it in enumerate(chunk)]
        if start + ITEMS_PER_PAGE < len(items):
            parts.append(tree.texts.more)
        pages.append(Prompt(f"faqlist-{node.id}-{len(pages) + 1}", " ".join(parts)))
    return pages


# ---- the interpreter ----------------------------------------------------------------------
class _Run:
    """One step's working copy: the state being built and the commands issued."""

    def __init__(self, tree: IvrTree, faq: FaqSource, state: MenuState, at: dt.datetime):
        self.tree = tree
        self.faq = faq
        self.st = state
        self.at = at
        self.out: list[MenuCommand] = []

    def set(self, **changes: object) -> None:
        self.st = replace(self.st, **changes)  # type: ignore[arg-type]

    def log(self, event: str, **fields: str | None) -> None:
        path = self.st.path
        if len(path) < MAX_PATH:
            self.set(path=(*path, Step(self.at, event, **fields)))

    def token(self) -> int:
        self.set(seq=self.st.seq + 1)
        return self.st.seq

    # -- sound and timers
    def silence(self) -> None:
        """Stop the prompt playing (barge-in) and forget what was queued after it."""
        if self.st.playing is not None:
            self.out.append(StopSaying(self.st.playing))
        self.set(playing=None, queue=())

    def disarm(self) -> None:
        if self.st.timer is not None:
            self.out.append(CancelTimer())
            self.set(timer=None)

    def say(self, prompts: Sequence[Prompt]) -> None:
        """Say these prompts in order (after stopping whatever plays); then ``prompts_done``."""
        self.silence()
        self.disarm()
        if not prompts:
            self.prompts_done()
            return
        token = self.token()
        self.out.append(Say(prompts[0], token))
        self.set(playing=token, queue=tuple(prompts[1:]))

    def arm(self, seconds: float) -> None:
        token = self.token()
        self.out.append(StartTimer(token, seconds))
        self.set(timer=token)

    # -- what the caller is asked
    def node(self) -> MenuNode | FaqNode | OperatorNode | GoodbyeNode | StatusNode:
        return self.tree.node(self.st.node)

    def items(self) -> Sequence[FaqItemLike]:
        node = self.node()
        if isinstance(node, FaqNode) and node.field is not None:
            return self.faq.for_field(node.field)
        return ()

    def question(self) -> list[Prompt]:
        """The prompt(s) of the current CHOOSING state."""
        node = self.node()
        if self.st.ask is Ask.FEEDBACK:
            return [self.tree.texts.feedback]
        if self.st.ask is Ask.CODE:
            return [st.TEXTS.ask]
        if self.st.ask is Ask.LIST:
            assert isinstance(node, FaqNode)
            pages = list_pages(self.tree, node, self.items())
            return [pages[min(self.st.page, len(pages) - 1)]] if pages else []
        assert isinstance(node, MenuNode)
        return [node.prompt]

    def choices(self) -> Mapping[str, str]:
        """Digit strings that are valid answers now -> what they mean."""
        if self.st.ask is Ask.FEEDBACK:
            return {"1": "yes", "2": "no"}
        if self.st.ask is Ask.LIST:
            items = self.items()
            start = self.st.page * ITEMS_PER_PAGE
            page = items[start:start + ITEMS_PER_PAGE]
            choice = {str(i + 1): it.key for i, it in enumerate(page)}
            if start + ITEMS_PER_PAGE < len(items):
                choice[MORE_DIGIT] = "more"
            return choice
        node = self.node()
        assert isinstance(node, MenuNode)
        return node.choices

    def limits(self) -> tuple[float, int, str]:
        """(no-input timeout, failures allowed, fallback node) of the current choice."""
        node = self.node()
        if isinstance(node, (MenuNode, StatusNode)):
            return node.timeout_s, node.retries, node.fallback  # status: "" = back to the menu
        assert isinstance(node, FaqNode)
        fallback = node.fallback or self.tree.operator or self.tree.root
        return node.timeout_s, node.retries, fallback

    # -- moving around
    def enter(self, node_id: str, *, push: bool, before: Sequence[Prompt] = ()) -> None:
        """Go to a node; ``push`` remembers the current menu for ``#``."""
        if push and self.st.node != node_id and self.st.mode is not Mode.DONE:
            self.set(history=(*self.st.history, self.st.node)[-20:])
        self.set(node=node_id, ask=Ask.MENU, failures=0, buffer="", item=None, sentence=0,
                 page=0, lookup=None, query=None, said=(), typed="")
        self.log("enter", node=node_id)
        node = self.tree.node(node_id)
        if isinstance(node, MenuNode):
            self.set(mode=Mode.CHOOSING, ask=Ask.MENU)
            self.say([*before, node.prompt])
        elif isinstance(node, OperatorNode):
            self.set(mode=Mode.TO_OPERATOR)
            self.log("operator", node=node_id)
            self.say([*before, node.prompt])
        elif isinstance(node, GoodbyeNode):
            self.set(mode=Mode.LEAVING)
            self.log("goodbye", node=node_id)
            self.say([*before, node.prompt])
        elif isinstance(node, StatusNode):
            self.enter_status(node, before)
        else:
            self.enter_faq(node, before)

    # -- status by phone
    def enter_status(self, node: StatusNode, before: Sequence[Prompt]) -> None:
        """Say the intro and, while it plays, look up the caller's open tickets."""
        self.set(mode=Mode.LOOKING, ask=Ask.MENU)
        self.say([*before, *([node.prompt] if node.prompt is not None else [])])
        token = self.token()
        self.set(lookup=token, query=None)
        self.out.append(LookupTickets(token, None, node.codes == "any"))

    def submit(self, digits: str) -> None:
        """A keyed-in number ended (# or a pause): look it up, or say it cannot be a code."""
        node = self.node()
        assert isinstance(node, StatusNode)
        self.set(buffer="")
        code = st.parse_typed(digits)
        if code is None:
            self.log("invalid", node=node.id, digit=digits)
            self.fail(st.TEXTS.bad_code)
            return
        token = self.token()
        self.set(mode=Mode.LOOKING, lookup=token, query=digits)
        self.out.append(LookupTickets(token, code, node.codes == "any"))

    def lookup_done(self, result: st.LookupResult) -> None:
        """Read what was found (after the intro, if it still plays), then ask for a code."""
        node = self.node()
        assert isinstance(node, StatusNode)
        query = self.st.query
        self.set(lookup=None, query=None, mode=Mode.CHOOSING, ask=Ask.CODE, buffer="")
        if result.failed:
            self.log("status", node=node.id, digit=query, answer="unavailable")
            self.leave_status([st.TEXTS.unavailable])
            return
        codes = st.codes_text(result) or None
        self.log("status", node=node.id, digit=query,
                 answer="found" if result.tickets else "none", codes=codes)
        if query is None:
            said = [*st.readout(result), st.TEXTS.again] if result.tickets else [st.TEXTS.none]
        elif result.tickets:
            said = [*st.ticket_prompts(result.tickets[0]), st.TEXTS.again]
            self.set(failures=0)
        else:
            self.fail(st.TEXTS.not_found)  # counts: guessing codes ends in the menu
            return
        self.set(said=tuple(said))
        prompts = [*said, *self.question()]
        if self.st.playing is not None:  # the intro still plays: the answer follows it
            self.set(queue=(*self.st.queue, *prompts))
        else:
            self.say(prompts)

    def replay(self, keys: str) -> None:
        """The keys typed ahead during the lookup that just answered, in order. Those left
        when a replayed ``#`` sends a code wait for its answer in turn; those left when the
        caller is no longer asked for a code are dropped (see the module doc)."""
        for i, d in enumerate(keys):
            if self.st.mode is Mode.LOOKING:
                self.set(typed=keys[i:])
                return
            if self.st.mode is not Mode.CHOOSING or self.st.ask is not Ask.CODE:
                return
            self.key(d)

    def net(self, timer_before: int | None) -> None:
        """Only the net effect of this step's commands: a prompt said and stopped within it is
        not said, and of its timer commands only the last counts (StartTimer replaces the armed
        timer, CancelTimer cancels it); a CancelTimer with none armed before is left out."""
        said = {c.token for c in self.out if isinstance(c, Say)}
        cut = {c.token for c in self.out if isinstance(c, StopSaying)} & said
        out = [c for c in self.out if not (isinstance(c, (Say, StopSaying)) and c.token in cut)]
        timers = [i for i, c in enumerate(out) if isinstance(c, (StartTimer, CancelTimer))]
        drop = set(timers[:-1])
        if timers and isinstance(out[timers[-1]], CancelTimer) and timer_before is None:
            drop.add(timers[-1])
        self.out = [c for i, c in enumerate(out) if i not in drop]

    def leave_status(self, before: Sequence[Prompt]) -> None:
        """Back to the menu the caller came from (the root if none)."""
        back = self.st.history[-1] if self.st.history else self.tree.root
        self.set(history=self.st.history[:-1])
        self.enter(back, push=False, before=before)

    def code_digit(self, d: str) -> None:
        """A key while a ticket number is asked for (0 is a digit here)."""
        buffer = self.st.buffer
        if d == REPEAT:
            self.repeat()
        elif d == BACK:
            if buffer:
                self.submit(buffer)
            else:
                self.leave_status([])
        elif len(buffer) >= st.MAX_TYPED:
            self.log("invalid", node=self.st.node, digit=buffer + d)
            self.fail(st.TEXTS.bad_code)
        else:
            self.set(buffer=buffer + d)
            self.arm(self.limits()[0])

    def enter_faq(self, node: FaqNode, before: Sequence[Prompt]) -> None:
        intro = [node.prompt] if node.prompt is not None else []
        if node.item is not None:
            item = self.faq.find(node.item)
            if item is None or not item.sentences:
                self.missing(before)
                return
            self.answer(item, [*before, *intro])
            return
        if not self.items():
            self.missing(before)
            return
        self.set(mode=Mode.CHOOSING, ask=Ask.LIST, page=0)
        self.say([*before, *intro, *self.question()])

    def missing(self, before: Sequence[Prompt]) -> None:
        """The FAQ has nothing for this node (not imported yet): say so, go back."""
        back = self.st.history[-1] if self.st.history else self.tree.root
        self.set(history=self.st.history[:-1])
        if back == self.st.node:  # the root itself is an empty FAQ node: hand over
            back = self.tree.operator or self.st.node
            if back == self.st.node:
                self.set(mode=Mode.LEAVING)
                self.say([*before, self.tree.texts.no_items, self.tree.texts.thanks])
                return
        self.enter(back, push=False, before=[*before, self.tree.texts.no_items])

    def answer(self, item: FaqItemLike, before: Sequence[Prompt] = ()) -> None:
        self.set(mode=Mode.ANSWERING, item=item.key, sentence=0, failures=0, buffer="")
        self.log("faq", node=self.st.node, faq=item.key)
        self.say([*before, answer_prompts(item)[0]])
        # The intro (if any) plays first: sentence 0 is the last queued prompt.

    def current_item(self) -> FaqItemLike | None:
        node = self.node()
        key = self.st.item
        if key is None:
            return None
        if isinstance(node, FaqNode) and node.item is not None:
            return self.faq.find(node.item)
        return next((it for it in self.items() if it.key == key), None)

    def next_sentence(self) -> None:
        item = self.current_item()
        nxt = self.st.sentence + 1
        if item is None or nxt >= len(item.sentences):
            self.set(mode=Mode.CHOOSING, ask=Ask.FEEDBACK, failures=0, buffer="")
            self.say(self.question())
            return
        self.set(sentence=nxt)
        self.say([answer_prompts(item)[nxt]])

    def to_operator(self) -> bool:
        if self.tree.operator is None:
            return False
        self.enter(self.tree.operator, push=True)
        return True

    def back(self) -> None:
        """``#``: from an answer or feedback back to the list; else the previous menu."""
        node = self.node()
        if (self.st.mode is Mode.ANSWERING or self.st.ask is Ask.FEEDBACK) \
                and isinstance(node, FaqNode) and node.field is not None:
            self.set(mode=Mode.CHOOSING, ask=Ask.LIST, item=None, failures=0, buffer="")
            self.say(self.question())
            return
        if not self.st.history:
            self.repeat()
            return
        back = self.st.history[-1]
        self.set(history=self.st.history[:-1])
        self.enter(back, push=False)

    def repeat(self) -> None:
        """``*``: say the current question (or the answer) again."""
        self.set(buffer="")
        if self.st.ask is Ask.CODE and self.st.mode is Mode.CHOOSING:
            self.say([*self.st.said, *self.question()])
            return
        if self.st.mode is Mode.ANSWERING:
            item = self.current_item()
            if item is not None:
                self.set(sentence=0)
                self.say([answer_prompts(item)[0]])
                return
        self.say(self.question())

    def prompts_done(self) -> None:
        """The last queued prompt ended."""
        mode = self.st.mode
        if mode is Mode.CHOOSING:
            short = self.st.buffer and self.st.ask is not Ask.CODE
            timeout = self.tree.inter_digit_s if short else self.limits()[0]
            self.arm(timeout)
        elif mode is Mode.ANSWERING:
            self.next_sentence()
        elif mode is Mode.LEAVING:
            self.set(mode=Mode.DONE)
            self.out.append(EndCall())
        elif mode is Mode.LOOKING:
            pass  # the intro ended before the ticket store answered: LookupDone goes on
        elif mode is Mode.TO_OPERATOR:
            node = self.node()
            self.set(mode=Mode.DONE)
            urgent = isinstance(node, OperatorNode) and node.urgent
            self.out.append(ToOperator(self.st.node, urgent))

    def fail(self, why: Prompt | None = None, *, silent: bool = False) -> None:
        """An invalid or missing answer; the last allowed one goes to the fallback (a status
        lookup without one: back to the menu). ``why`` replaces the invalid prompt; ``silent``
        (no key in a status lookup) says the question again only."""
        _, retries, fallback = self.limits()
        failures = self.st.failures + 1
        self.set(failures=failures, buffer="")
        node = self.node()
        if failures >= retries:
            if isinstance(node, StatusNode) and not fallback:
                self.leave_status([why] if why is not None else [])
            else:
                self.enter(fallback, push=True)
            return
        if why is None:
            why = node.invalid if isinstance(node, MenuNode) else self.tree.invalid
        self.say([*([] if silent else [why]), *self.question()])

    def choose(self, digits: str) -> None:
        """A complete choice in a CHOOSING state."""
        meaning = self.choices().get(digits)
        if meaning is None:
            self.log("invalid", node=self.st.node, digit=digits)
            self.fail()
            return
        if self.st.ask is Ask.FEEDBACK:
            self.log("feedback", node=self.st.node, faq=self.st.item, answer=meaning)
            if meaning == "yes":
                self.set(mode=Mode.LEAVING)
                self.log("goodbye", node=self.st.node)
                self.say([self.tree.texts.thanks])
            elif not self.to_operator():
                self.set(mode=Mode.LEAVING)
                self.say([self.tree.texts.thanks])
            return
        if self.st.ask is Ask.LIST:
            if meaning == "more":
                self.set(page=self.st.page + 1, failures=0, buffer="")
                self.say(self.question())
                return
            item = next(it for it in self.items() if it.key == meaning)
            self.answer(item)
            return
        self.enter(meaning, push=True)

    def digit(self, d: str) -> None:
        """A key pressed now: logged, then applied."""
        if self.st.mode in (Mode.LEAVING, Mode.TO_OPERATOR, Mode.DONE):
            return  # already on the way out: keys change nothing
        self.log("digit", node=self.st.node, digit=d)
        self.key(d)

    def key(self, d: str) -> None:
        """Apply a key (pressed now, or typed ahead during a lookup and replayed)."""
        mode = self.st.mode
        self.silence()  # barge-in
        self.disarm()
        if mode is Mode.LOOKING:  # waiting for the ticket store: typed ahead
            if d == BACK and not self.st.typed:
                self.leave_status([])  # the store's answer will find nobody waiting for it
            elif len(self.st.typed) < MAX_TYPED_AHEAD:
                self.set(typed=self.st.typed + d)
            return
        if self.st.ask is Ask.CODE and mode is Mode.CHOOSING:
            self.code_digit(d)
            return
        if d == OPERATOR and not self.st.buffer:
            if self.to_operator():
                return
            if mode is Mode.ANSWERING:
                self.next_sentence()
                return
            self.log("invalid", node=self.st.node, digit=d)
            self.fail()
            return
        if d == REPEAT:
            self.repeat()
            return
        if d == BACK and not self.st.buffer:
            self.back()
            return
        if mode is Mode.ANSWERING:
            self.next_sentence()  # any other key skips to the next sentence
            return
        if d == BACK:  # '#' ends a multi-digit choice early
            self.choose(self.st.buffer)
            return
        buffer = self.st.buffer + d
        choices = self.choices()
        longer = any(c != buffer and c.startswith(buffer) for c in choices)
        if longer:
            self.set(buffer=buffer)
            self.arm(self.tree.inter_digit_s)  # wait for a possible second digit
            return
        self.set(buffer="")
        self.choose(buffer)

    def timer(self) -> None:
        self.set(timer=None)
        if self.st.mode is not Mode.CHOOSING:
            return
        if self.st.ask is Ask.CODE:
            if self.st.buffer:
                self.submit(self.st.buffer)  # a pause after the digits ends the number too
            else:
                self.log("timeout", node=self.st.node)
                self.fail(silent=True)
            return
        if self.st.buffer:
            buffer = self.st.buffer
            self.set(buffer="")
            self.choose(buffer)
            return
        self.log("timeout", node=self.st.node)
        self.fail()


def start_state(tree: IvrTree) -> MenuState:
    """A caller about to enter the tree."""
    return MenuState(node=tree.root, mode=Mode.DONE)


def step(tree: IvrTree, faq: FaqSource, state: MenuState, event: MenuEvent) -> Result:
    """Apply one event; return the new state and exactly the commands to carry out."""
    run = _Run(tree, faq, state, event.at)
    if isinstance(event, Start):
        run.set(mode=Mode.CHOOSING)
        run.enter(tree.root, push=False, before=[event.greeting] if event.greeting else [])
    elif isinstance(event, CallerLeft):
        if state.mode is not Mode.DONE or state.timer is not None:
            run.disarm()
            if state.mode is not Mode.DONE:
                run.log("hangup", node=state.node)
            run.set(mode=Mode.DONE, playing=None, queue=(), typed="")
    elif state.mode is Mode.DONE:
        return state, []  # late echoes after the caller left the tree
    elif isinstance(event, Digit):
        if event.digit not in DIGITS or len(event.digit) != 1:
            return state, []  # not a phone key: ignore it, the caller is still served
        run.digit(event.digit)
    elif isinstance(event, PromptEnded):
        if event.token != state.playing:
            return state, []  # a prompt stopped by barge-in, or already replaced
        if state.queue:
            token = run.token()
            run.out.append(Say(state.queue[0], token))
            run.set(playing=token, queue=state.queue[1:])
        else:
            run.set(playing=None)
            run.prompts_done()
    elif isinstance(event, TimerFired):
        if event.token != state.timer:
            return state, []  # a timer replaced or cancelled meanwhile
        run.timer()
    elif isinstance(event, LookupDone):
        if event.token != state.lookup or state.mode is not Mode.LOOKING:
            return state, []  # the caller left the lookup (# or 0) before it answered
        typed = state.typed
        run.set(typed="")
        run.lookup_done(event.result)
        if typed:
            run.replay(typed)
            run.net(state.timer)
    return run.st, run.out


def path_dicts(state: MenuState) -> list[dict[str, str]]:
    """The IVR path as it goes into the call record."""
    return [s.as_dict() for s in state.path]
