"""The sans-IO core: the call's state, the guards, the playout and the turn engine.

Nothing here does I/O, reads a clock or imports anyio, sockets, ``os`` or ``json``: every method
takes the events it reacts to and ``now`` (monotonic seconds), and answers with decisions and
actions. The two drivers (the reference media handler in :mod:`voiceguard.runtime` and the
middleware in :mod:`voiceguard.middleware`) carry those actions out.

Import the public names from the top-level package (``from voiceguard import CallState``).
"""
