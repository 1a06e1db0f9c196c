"""The anyio runtime: call scopes and call-scoped timers, and the reference media handler.

Import the public names from the top-level package (``from voiceguard import CallScope``).
"""
