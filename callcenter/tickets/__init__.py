"""Petition tickets as a service: the store, deadlines job, reports and CLI around the pure core.

See ``callcenter.tickets.service`` for the public API the HTTP layer uses.
"""
