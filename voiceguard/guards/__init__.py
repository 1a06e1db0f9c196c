"""The guards: pure, synchronous objects that answer one question each with a Decision.

Import them from the top-level package (``from voiceguard import CancelArbiter``). The submodules
are ``voiceguard.guards.cancel``, ``voiceguard.guards.create`` and
``voiceguard.guards.calibration``.
"""
