"""The guards: pure, synchronous objects that answer one question each with a Decision.

Import them from the top-level package (``from voiceguard import CancelArbiter``). The submodules
are ``voiceguard.core.guards.cancel``, ``voiceguard.core.guards.create`` and
``voiceguard.core.guards.calibration``.
"""
