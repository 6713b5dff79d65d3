"""Re-qualifying an operator's phone on another node's reachability news (pure rules)."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.phones.requalify import (
    ReachabilityNews,
    RequalifyLimiter,
    news_of,
    reassert_reachable,
)


def agent_event(**over: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "agent", "tenant": "dongnai", "cause": "reachable",
                             "extension": "101", "reachable": True, "state": "logged_out"}
    event.update(over)
    return event


def test_given_agent_reachable_event_then_news_of_reads_it() -> None:
    assert news_of(agent_event()) == ReachabilityNews("dongnai", "101", True)
    assert news_of(agent_event(cause="unreachable", reachable=False)) == ReachabilityNews(
        "dongnai", "101", False)


@pytest.mark.parametrize("over", [
    {"cause": "log_in"},  # not about the phone: the flag it carries is not news
    {"cause": "no_answer"},
    {"type": "queue"},
    {"extension": ""},
    {"extension": None},
    {"tenant": None},
    {"reachable": "yes"},
])
def test_given_other_messages_then_no_news(over: dict[str, Any]) -> None:
    assert news_of(agent_event(**over)) is None


NEWS_UP = ReachabilityNews("dongnai", "101", True)
NEWS_DOWN = ReachabilityNews("dongnai", "101", False)


def test_given_node_already_agrees_then_no_qualify() -> None:
    """The node's own news comes back to it: it already sees the phone that way."""
    limiter = RequalifyLimiter()
    assert not limiter.decide(NEWS_UP, True, 0.0)
    assert not limiter.decide(NEWS_DOWN, False, 0.0)


@pytest.mark.parametrize("news,known", [(NEWS_UP, False), (NEWS_UP, None), (NEWS_DOWN, True),
                                        (NEWS_DOWN, None)])
def test_given_node_sees_otherwise_then_qualify(news: ReachabilityNews,
                                                known: bool | None) -> None:
    assert RequalifyLimiter().decide(news, known, 100.0)


def test_given_repeated_news_then_once_per_interval_per_extension() -> None:
    limiter = RequalifyLimiter(min_interval_s=2.0)
    assert limiter.decide(NEWS_UP, False, 10.0)
    assert not limiter.decide(NEWS_UP, False, 11.0)
    assert not limiter.decide(NEWS_DOWN, True, 11.9)  # either way: one per extension
    other = ReachabilityNews("dongnai", "102", True)
    assert limiter.decide(other, False, 11.0)  # another extension has its own allowance
    assert limiter.decide(NEWS_UP, False, 12.0)
    assert not limiter.decide(NEWS_UP, False, 13.5)


def test_given_agreeing_news_then_allowance_is_not_spent() -> None:
    limiter = RequalifyLimiter(min_interval_s=2.0)
    assert not limiter.decide(NEWS_UP, True, 10.0)
    assert limiter.decide(NEWS_DOWN, True, 10.5)


def test_given_unreachable_news_when_this_node_still_reaches_phone_then_reasserted() -> None:
    gone = ReachabilityNews("dongnai", "101", reachable=False)
    assert reassert_reachable(gone, known_after=True) is True
    assert reassert_reachable(gone, known_after=False) is False
    assert reassert_reachable(gone, known_after=None) is False


def test_given_reachable_news_then_never_reasserted() -> None:
    back = ReachabilityNews("dongnai", "101", reachable=True)
    assert reassert_reachable(back, known_after=True) is False
    assert reassert_reachable(back, known_after=False) is False
