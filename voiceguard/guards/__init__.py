"""Deprecated: the guards moved to :mod:`voiceguard.core.guards`.

Import them from ``voiceguard``. This stub goes away in the next release.
"""
