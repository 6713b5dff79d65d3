"""FAQ search for the operator desk, pure: rank a tenant's active FAQ items for a typed query.

Matching is diacritic-insensitive (``faq.fold``: "bệnh viện" finds "benh vien" and the other
way round). Each query word scores where it is found, the best place counting: the question
(highest), the sheet code, the keywords, then the answer (lowest); a whole word counts more
than a prefix, so the results follow the operator's typing ("bảo hi" already finds "bảo
hiểm"). Items matching more of the query words come first, then the higher score, then the
FAQ's own order. An empty query lists the items in the FAQ's order (one field's, if given).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callcenter.faq.rules import fold

MAX_QUERY_WORDS = 12  # a pasted paragraph is not a search: the first words decide

# Weights of a whole-word hit per place; a prefix hit counts half (rounded down).
WEIGHTS: dict[str, int] = {"question": 8, "code": 6, "keywords": 4, "answer": 2}
PHRASE_BONUS = 6  # the whole query, as typed, inside the question


@dataclass(frozen=True)
class FaqDoc:
    """One active FAQ item as the desk shows it."""

    key: str
    code: str | None
    field: str
    position: int
    question: str
    answer: str
    keywords: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class _Folded:
    doc: FaqDoc
    words: dict[str, frozenset[str]]  # place -> folded words
    question: str  # folded question, for the phrase bonus


@dataclass(frozen=True)
class FaqIndex:
    """A tenant's items folded once, searched many times (build it when the FAQ changes)."""

    docs: tuple[_Folded, ...]

    @classmethod
    def build(cls, docs: Iterable[FaqDoc]) -> FaqIndex:
        """Fold every item's texts; the order kept is (field, position, key)."""
        ordered = sorted(docs, key=lambda d: (d.field, d.position, d.key))
        return cls(tuple(_Folded(
            d,
            {"question": frozenset(fold(d.question).split()),
             "code": frozenset(fold(d.code or "").split()),
             "keywords": frozenset(fold(d.keywords or "").split()),
             "answer": frozenset(fold(d.answer).split())},
            fold(d.question)) for d in ordered))

    def __len__(self) -> int:
        return len(self.docs)


def query_words(query: str) -> tuple[str, ...]:
    """The folded words of a query, each once, in typed order (at most MAX_QUERY_WORDS)."""
    seen: dict[str, None] = {}
    for w in fold(query).split():
        seen.setdefault(w, None)
    return tuple(seen)[:MAX_QUERY_WORDS]


def _word_score(word: str, words: frozenset[str], weight: int) -> int:
    if word in words:
        return weight
    if any(w.startswith(word) for w in words):
        return weight // 2
    return 0


def score(item: _Folded, words: Sequence[str], phrase: str) -> tuple[int, int]:
    """(query words found, points) of one item."""
    found = points = 0
    for word in words:
        best = max(_word_score(word, item.words[place], weight)
                   for place, weight in WEIGHTS.items())
        if best:
            found += 1
            points += best
    if found and len(words) > 1 and phrase in item.question:
        points += PHRASE_BONUS
    return found, points


def search(index: FaqIndex, query: str, *, field: str | None = None,
           limit: int = 20) -> list[FaqDoc]:
    """The best ``limit`` items for ``query`` (only ``field``'s when given), best first."""
    pool = [f for f in index.docs if field is None or f.doc.field == field]
    words = query_words(query)
    if not words:
        return [f.doc for f in pool[:limit]]
    phrase = " ".join(fold(query).split())
    ranked: list[tuple[int, int, int, FaqDoc]] = []
    for order, item in enumerate(pool):
        found, points = score(item, words, phrase)
        if found:
            ranked.append((-found, -points, order, item.doc))
    ranked.sort(key=lambda r: r[:3])
    return [r[3] for r in ranked[:limit]]
