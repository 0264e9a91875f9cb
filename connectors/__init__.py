"""Connectors: the outside world (and its simulation) behind the venue port of `core.venue`."""
