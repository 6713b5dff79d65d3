"""Call recordings: how long they are kept per tenant (``retention``, pure), the daily purge
(``purge``) and the append-only audit of deletions (``audit``).
"""
