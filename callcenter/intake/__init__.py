"""Petitions that arrive without a call: the public web form (``webform.py``) and its pure
rules (``rules.py``: validation, the signed form token, spam checks; ``policy.py``: the
tenant's ``webform:`` settings). Tickets are opened through the ticket service like any
other channel's (``channel="web"``, by the ``system`` role)."""
