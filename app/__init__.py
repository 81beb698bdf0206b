"""Clawback's domain and application services.

Nothing in this package imports Flask, HTTP clients or a connector: the web layer (`web/`) and
the platform connectors (`connectors/`) depend on it, never the other way round.
"""
