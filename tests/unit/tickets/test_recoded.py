"""The service's fast code swap gives exactly what dataclasses.replace gives; pure."""

from __future__ import annotations

import dataclasses
import datetime as dt

from callcenter.tickets import rules as tk
from callcenter.tickets.config import TicketPolicy
from callcenter.tickets.service import _recoded

AT = dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC)
OP = tk.Actor("op1", "operator")


def test_given_opened_ticket_and_effects_when_recoded_then_equal_to_replace() -> None:
    policy = TicketPolicy(code_prefix="DN")
    ticket, effects = tk.open_ticket(policy, code="DN-20261123-0001", tenant="dongnai",
                                     channel="phone", content="x", field="health", at=AT,
                                     actor=OP, urgent=True)
    ticket, more = tk.apply(ticket, tk.Answer(AT, OP, "y", "faq-1"), policy)
    samples: list[object] = [ticket, *effects, *more,
                             tk.StopClock("DN-20261123-0001", "resolve"),
                             tk.NotifyCitizen("DN-20261123-0001", "resolved", "0912345678",
                                              "t", AT),
                             tk.NotifyUnit("DN-20261123-0001", "u", "forwarded", ("09",), "t",
                                           AT)]
    assert {type(x) for x in samples} >= {tk.Ticket, tk.AuditEntry, tk.StartClock}
    for obj in samples:
        got = _recoded(obj, "DN-20261123-0042")
        assert got == dataclasses.replace(obj, code="DN-20261123-0042")  # type: ignore[type-var]
        assert obj.code == "DN-20261123-0001"  # type: ignore[attr-defined]
        assert not hasattr(type(obj), "__slots__") or "__dict__" in dir(obj)
