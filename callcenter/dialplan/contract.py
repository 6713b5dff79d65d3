"""What the dialplan and the Stasis app agree on: context names and Stasis argument verbs.

The templates (``pbx/templates/*.j2``) get ``Context`` and ``Verb`` as render variables
(``contexts``, ``verbs``); the app reads a channel's Stasis args with ``parse_stasis_args``
and builds the args of the legs it originates with ``stasis_args``. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final


class Context(enum.StrEnum):
    """Dialplan contexts (``extensions.conf``; endpoints name theirs in ``pjsip.conf``)."""

    FROM_TRUNK = "from-trunk"  # citizens' calls from the inbound trunk
    FROM_OPERATORS = "from-operators"  # what operators' phones dial
    OPERATOR_FEATURE_DONE = "operator-feature-done"  # after a feature code: its prompt
    TRUNK_OUT_INBOUND = "trunk-out-inbound"  # anything entering through the outbound trunk
    HOTLINE_BUSY = "hotline-busy"  # a tenant's "all lines busy" message, then 486
    HOTLINE_UNAVAILABLE = "hotline-unavailable"  # the app is not connected
    HOTLINE_STASIS = "hotline-stasis"  # several app instances: Stasis() into one that answers
    BENCH_PLAIN = "bench-plain"  # bench/: Asterisk alone, no app
    BENCH_QUEUE = "bench-queue"  # bench/: Asterisk's own app_queue


class Verb(enum.StrEnum):
    """The first Stasis argument of a channel that is not a citizen's call."""

    OPERATOR = "operator"  # our leg to an operator's phone: operator,<call id>
    UNIT = "unit"  # our leg to a unit's hotline: unit,<call id>
    CONSULT = "consult"  # an operator dialled a unit's hotline: consult,<number>
    AGENT = "agent"  # an operator's feature code: agent,<action>[,<N>]
    SUPERVISOR = "supervisor"  # a supervisor's leg listening in: supervisor,<listen id>
    SNOOP = "snoop"  # the snoop channel of a listen-in: snoop,<listen id>
    DIALBACK = "dialback"  # a call back's legs: dialback,<dialback id>,operator|citizen


_VERBS: Final = frozenset(v.value for v in Verb)
# Verbs that mean nothing without their first argument: without it the channel is taken as a
# citizen's call (the listen-in and feature-code handlers cope with a missing one themselves).
NEEDS_ARGUMENT: Final = frozenset({Verb.OPERATOR, Verb.UNIT, Verb.CONSULT, Verb.DIALBACK})


def parse_stasis_args(args: Sequence[str]) -> tuple[Verb | None, list[str]]:
    """A channel's Stasis args as (verb, the args after it); (None, all args) when the first
    is no verb of ours or a verb lacks its argument (a citizen's call has no args)."""
    parts = [str(a) for a in args]
    if not parts or parts[0] not in _VERBS:
        return None, parts
    verb = Verb(parts[0])
    if verb in NEEDS_ARGUMENT and len(parts) < 2:
        return None, parts
    return verb, parts[1:]


def stasis_args(verb: Verb, *rest: str) -> str:
    """The ``appArgs`` of a channel the app originates into its own Stasis app."""
    for part in rest:
        if "," in part:
            raise ValueError(f"Stasis argument {part!r}: no commas")
    return ",".join((verb.value, *rest))
