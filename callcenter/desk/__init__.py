"""The operator desk: what it shows of a call (``rules``, pure), its page and its API."""
