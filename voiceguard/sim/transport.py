"""Deprecated: moved to :mod:`voiceguard.transports`.

Import from there, or from ``voiceguard``. This stub goes away in the next release.
"""

from voiceguard._deprecated import moved_module

__getattr__ = moved_module(__name__)
