"""The web console and API: login and roles, shared page and API helpers, the pages that belong to
no single capability (calls, admin, reports, health, metrics). Capability pages live in their slice.
"""
