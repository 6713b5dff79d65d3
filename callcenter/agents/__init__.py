"""Operators' phones through AMI: reachability (AmiWatcher) and refusing abusive SIP sources
(AuthGuard)."""
