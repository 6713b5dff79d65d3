"""Several Asterisk nodes behind a Kamailio SIP edge: the edge's config and process (edge.py),
``make cluster``'s runner (runner.py) and ``callcenter cluster status`` (status.py).
See docs/scale-out.md."""
