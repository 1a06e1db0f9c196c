"""Transports: the connections voiceguard speaks over, whole text messages at a time.

* :mod:`voiceguard.transports.base`: the :class:`~voiceguard.transports.base.Transport`
  protocol and :class:`~voiceguard.transports.base.TransportClosed`.
* :mod:`voiceguard.transports.memory`: two connected in-memory ends
  (:func:`~voiceguard.transports.memory.memory_pair`), for tests in virtual time.
* :mod:`voiceguard.transports.websocket`: a WebSocket server and client on anyio, for loopback
  tests and local tools (needs ``websockets``; import it from its module).
* :mod:`voiceguard.transports.production`: Twilio's media stream on an ASGI server
  (:class:`~voiceguard.transports.production.StarletteWebSocketTransport`) and a client of the
  Realtime API (:func:`~voiceguard.transports.production.connect_realtime`).

Everything but the WebSocket module is importable from ``voiceguard.transports`` itself.
Production code imports its transports from here, never from the simulator.
"""

from __future__ import annotations

from voiceguard.transports.base import (
    ABNORMAL_CLOSURE,
    NORMAL_CLOSURE,
    FrameTransport,
    Transport,
    TransportClosed,
    on_grid,
)
from voiceguard.transports.memory import MemoryTransport, memory_pair
from voiceguard.transports.production import (
    DEFAULT_MAX_PHONE_MESSAGE_BYTES,
    DEFAULT_MAX_REALTIME_MESSAGE_BYTES,
    MESSAGE_TOO_BIG,
    UNSUPPORTED_DATA,
    RealtimeConnection,
    StarletteWebSocketTransport,
    connect_realtime,
)

__all__ = (
    "ABNORMAL_CLOSURE",
    "DEFAULT_MAX_PHONE_MESSAGE_BYTES",
    "DEFAULT_MAX_REALTIME_MESSAGE_BYTES",
    "MESSAGE_TOO_BIG",
    "NORMAL_CLOSURE",
    "UNSUPPORTED_DATA",
    "FrameTransport",
    "MemoryTransport",
    "RealtimeConnection",
    "StarletteWebSocketTransport",
    "Transport",
    "TransportClosed",
    "connect_realtime",
    "memory_pair",
    "on_grid",
)
