"""Operators' SIP phones seen through AMI: reachability and refusing abusive SIP sources.

``devices`` and ``guard_rules`` are pure; ``ami`` keeps the AMI session (AmiWatcher), ``guard``
applies refusals to PJSIP (AuthGuard).
"""
