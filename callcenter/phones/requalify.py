"""When to ask this node's Asterisk to qualify an operator's phone now (pure).

In a cluster every node has a static contact for each operator, pointing at the SIP edge, and
learns whether the phone answers only by its own qualify (every ``qualify_frequency`` s). The
node that qualifies first tells the tenant-wide queue ("reachable"); the ACD publishes that as
an agent event (cause ``reachable``/``unreachable``) on ``hotline:events``, which every app
follows. A node whose own view differs asks its Asterisk to qualify the endpoint at once
(AMI ``PJSIPQualify``) instead of waiting up to ``qualify_frequency`` s, during which it could
not ring the operator ("Allocation failed").

No storm: nothing is asked when this node already sees the endpoint as the news says (its own
news comes back to it that way), and at most once per ``min_interval_s`` per endpoint.

The flag is the province's, last writer wins: a node whose qualify failed (its own trouble, a
lost OPTIONS) would take the operator out of the queue for every node. A node that still
reaches the phone after its own qualify says so again (``reassert_reachable``); a node that
cannot reach it then only fails to ring it, and the call keeps its place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

REACHABILITY_CAUSES = frozenset({"reachable", "unreachable"})
MIN_INTERVAL_S = 2.0
# How long after asking for a qualify this node's view is read back: the qualify's timeout
# (pjsip.conf.j2 ``qualify_timeout = 3.0``) and a margin.
SETTLE_S = 3.5


def reassert_reachable(news: ReachabilityNews, known_after: bool | None) -> bool:
    """True when this node, having qualified the phone on news that it is unreachable, still
    reaches it: the province's flag must say reachable again."""
    return not news.reachable and known_after is True


@dataclass(frozen=True)
class ReachabilityNews:
    """Some node's phone reachability for an operator, as the queue published it."""

    tenant: str
    extension: str
    reachable: bool


def news_of(event: Mapping[str, object]) -> ReachabilityNews | None:
    """The reachability news in one decoded ``hotline:events`` message, if it is one."""
    if event.get("type") != "agent" or event.get("cause") not in REACHABILITY_CAUSES:
        return None
    tenant, extension, reachable = (event.get("tenant"), event.get("extension"),
                                    event.get("reachable"))
    if not isinstance(tenant, str) or not isinstance(extension, str) or not extension:
        return None
    if not isinstance(reachable, bool):
        return None
    return ReachabilityNews(tenant, extension, reachable)


class RequalifyLimiter:
    """Decides, per endpoint, whether news calls for a qualify now; ``now`` is a monotonic
    clock in seconds, passed in."""

    def __init__(self, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.min_interval_s = min_interval_s
        self._last: dict[str, float] = {}

    def decide(self, news: ReachabilityNews, known: bool | None, now: float) -> bool:
        """True when this node should qualify ``news.extension`` now (and records it).

        ``known``: this node's own last view of the endpoint (None: never seen)."""
        if known is news.reachable:
            return False
        last = self._last.get(news.extension)
        if last is not None and now - last < self.min_interval_s:
            return False
        self._last[news.extension] = now
        return True
