"""The satisfaction question of the resolve SMS and the citizen's reply: pure rules.

When a tenant turns ``tickets.survey`` on, the resolve notice ends with a question ("Hài lòng
nhắn 1, chưa được giải quyết nhắn 2.") and the service records one *ask* per notice (ticket,
number, when, until when a reply counts). A reply comes back through Kannel's MO path
(``callcenter.sms.mo``) and is matched here:

* **Parsing** (``parse_reply``): "1" is satisfied, "2" is not resolved; the digit alone,
  after Unicode NFKC (a full-width "１" is a 1), with spaces and a trailing ".", "!" or ")"
  allowed. Words are not read: "hai" is both "two" and "hài lòng" (satisfied) typed without
  diacritics, so guessing could reopen a ticket the citizen is happy with. Anything else is
  ``unrecognised``: recorded, never answered (an answer would be a billed SMS).
* **Matching** (``match_reply``): the sender's most recent ask that has no answer yet and
  whose window is still open (``reply_days``, default 7, from the notice). Nothing open: the
  reply is ``no_survey`` (or ``already_answered`` when an ask of that number in its window was
  answered before: a second reply never overrides the first).

What the adapter does with the outcome: ``satisfied`` records the answer and a ``Satisfied``
event (audit); ``not_resolved`` records it and ``Reopen`` s the ticket with
``REOPEN_REASON`` as the ``system`` actor (the unit is told by SMS); the others are only
recorded. Kannel delivering the same MO twice changes nothing (its message id is unique).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SurveyAnswer = Literal["satisfied", "not_resolved"]
Outcome = Literal["satisfied", "not_resolved", "unrecognised", "no_survey", "already_answered"]
OUTCOMES: tuple[Outcome, ...] = ("satisfied", "not_resolved", "unrecognised", "no_survey",
                                 "already_answered")
REOPEN_REASON = "Công dân phản hồi qua SMS: chưa được giải quyết (citizen says not resolved)"
MAX_REPLY_TEXT = 500  # what is kept of a reply (a reply is one SMS; more is not a reply)

_REPLY = re.compile(r"\s*([12])\s*[.!)]?\s*")
_ANSWERS: dict[str, SurveyAnswer] = {"1": "satisfied", "2": "not_resolved"}


@dataclass(frozen=True)
class SurveyAsk:
    """One resolve notice that asked the question."""

    id: int
    code: str  # the ticket
    tenant: str
    phone: str  # national form, as the ticket holds it
    asked_at: dt.datetime
    until: dt.datetime  # a reply counts until then
    answer: SurveyAnswer | None = None


@dataclass(frozen=True)
class ReplyMatch:
    """What a reply means: its outcome and the ask it answers (or concerns), if any."""

    outcome: Outcome
    ask: SurveyAsk | None


def parse_reply(text: str | None) -> SurveyAnswer | None:
    """"1" satisfied, "2" not resolved (see the module docstring); None for anything else."""
    if text is None:
        return None
    m = _REPLY.fullmatch(unicodedata.normalize("NFKC", text))
    return _ANSWERS[m.group(1)] if m else None


def match_reply(text: str | None, asks: Sequence[SurveyAsk], now: dt.datetime) -> ReplyMatch:
    """The outcome of a reply from a number whose asks are ``asks`` (any order), at ``now``."""
    live = [a for a in asks if a.asked_at <= now <= a.until]
    waiting = max((a for a in live if a.answer is None), key=lambda a: (a.asked_at, a.id),
                  default=None)
    answer = parse_reply(text)
    if answer is None:
        return ReplyMatch("unrecognised", waiting)
    if waiting is not None:
        return ReplyMatch(answer, waiting)
    answered = max(live, key=lambda a: (a.asked_at, a.id), default=None)
    if answered is not None:
        return ReplyMatch("already_answered", answered)
    return ReplyMatch("no_survey", None)
