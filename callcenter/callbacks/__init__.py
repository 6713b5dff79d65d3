"""Callback requests: callers who pressed 1 to be called back; the store, the CLI, API and pages."""
