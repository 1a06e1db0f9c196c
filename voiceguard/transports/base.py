"""The :class:`Transport` protocol: whole text messages, a clean close, a drop.

Everything in voiceguard that talks to a peer (the media handler, the middleware's channels, both
simulators) speaks through a :class:`Transport`. The implementations are in
:mod:`voiceguard.transports`: an in-memory pair
(:func:`~voiceguard.transports.memory.memory_pair`), WebSockets on anyio
(:mod:`voiceguard.transports.websocket`), an ASGI WebSocket and a client of the Realtime API
(:mod:`voiceguard.transports.production`).

A closed transport raises :class:`TransportClosed` from :meth:`~Transport.receive` and
:meth:`~Transport.send`, carrying the WebSocket close code (1006 when the other end dropped the
connection without closing it).
"""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

from voiceguard.errors import VoiceguardError

__all__ = (
    "ABNORMAL_CLOSURE",
    "NORMAL_CLOSURE",
    "FrameTransport",
    "Transport",
    "TransportClosed",
    "on_grid",
)

#: WebSocket close code of a clean close.
NORMAL_CLOSURE: Final = 1000
#: WebSocket close code reported when the connection was dropped without a close frame.
ABNORMAL_CLOSURE: Final = 1006


def on_grid(seconds: float) -> float:
    """*seconds* rounded to the microsecond: the grid every simulated event is scheduled on.

    Two events due "at the same time" must compare equal however the time was computed, or a
    virtual-time run would order them by floating-point noise; on the grid they tie exactly, and
    the simulators break ties the same way on every run.
    """
    return round(seconds, 6)


class TransportClosed(VoiceguardError):
    """The transport is closed: the other end closed it or dropped it, or this end closed it.

    Attributes:
        code: The WebSocket close code; :data:`NORMAL_CLOSURE` for a clean close and
            :data:`ABNORMAL_CLOSURE` for a dropped connection.
        reason: The close reason, if any.
    """

    def __init__(self, code: int = ABNORMAL_CLOSURE, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        detail = f" ({reason})" if reason else ""
        super().__init__(f"transport closed with code {code}{detail}")


@runtime_checkable
class Transport(Protocol):
    """A connection that carries whole text messages; what both simulators speak over."""

    async def send(self, message: str) -> None:
        """Send one text message.

        Raises:
            TransportClosed: If the transport is closed.
        """

    async def receive(self) -> str:
        """Wait for the next text message.

        Raises:
            TransportClosed: When the other end closed or dropped the connection.
        """
        ...

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Close cleanly with a close code (idempotent)."""

    async def abort(self) -> None:
        """Drop the connection without a close handshake (the other end sees code 1006)."""


@runtime_checkable
class FrameTransport(Transport, Protocol):
    """A :class:`Transport` that carries binary messages too (a phone provider that sends its
    audio as binary WebSocket frames, as Vonage does, needs one).

    :meth:`~Transport.receive` still gives text only; :meth:`receive_frame` gives each message
    as it came.
    """

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message.

        Raises:
            TransportClosed: If the transport is closed.
        """

    async def receive_frame(self) -> str | bytes:
        """Wait for the next message: ``str`` for a text message, ``bytes`` for a binary one.

        Raises:
            TransportClosed: When the other end closed or dropped the connection.
        """
        ...
