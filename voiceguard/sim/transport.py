"""Message transports for the simulators: the interface, and an in-memory pair.

Both simulators talk through a :class:`Transport`: something that sends and receives whole text
messages (JSON frames) and can be closed cleanly or dropped. Two implementations exist:

* :func:`memory_pair`: two connected in-memory ends, with an optional one-way latency. Nothing
  touches the network, so a test on trio's ``MockClock`` runs a long call in no real time and gives
  the same result every run.
* :class:`~voiceguard.sim.websocket.WebSocketTransport`: a real WebSocket on 127.0.0.1 (see
  :mod:`voiceguard.sim.websocket`).

A closed transport raises :class:`TransportClosed` from :meth:`~Transport.receive` and
:meth:`~Transport.send`, carrying the WebSocket close code (1006 when the other end dropped the
connection without closing it).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Final, Protocol, final, runtime_checkable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voiceguard.errors import VoiceguardError

__all__ = (
    "ABNORMAL_CLOSURE",
    "NORMAL_CLOSURE",
    "MemoryTransport",
    "Transport",
    "TransportClosed",
    "memory_pair",
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


@dataclass(frozen=True, slots=True)
class _Close:
    deliver_at: float
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Message:
    deliver_at: float
    text: str


@final
class MemoryTransport:
    """One end of an in-memory connection made by :func:`memory_pair`.

    Messages arrive in order, each no earlier than *latency* seconds after it was sent. Iterating
    over the transport yields messages until the other end closes.
    """

    __slots__ = ("_close_info", "_closed", "_latency", "_name", "_pending", "_receive", "_send")

    def __init__(
        self,
        *,
        name: str,
        latency: float,
        link: Any,
    ) -> None:
        self._name = name
        self._latency = latency
        send: MemoryObjectSendStream[_Message | _Close] = link[0]
        receive: MemoryObjectReceiveStream[_Message | _Close] = link[1]
        self._send = send
        self._receive = receive
        self._pending: _Message | _Close | None = None
        self._closed = False
        self._close_info: TransportClosed | None = None

    @property
    def name(self) -> str:
        """The name given to this end (for logs and ``repr``)."""
        return self._name

    @property
    def closed(self) -> bool:
        """True once this end has closed, or has seen the other end close."""
        return self._closed

    async def send(self, message: str) -> None:
        """Send one text message; it arrives after the pair's latency.

        Args:
            message: The text to send.

        Raises:
            TransportClosed: If either end has closed.
        """
        if self._closed:
            raise self._close_info or TransportClosed(NORMAL_CLOSURE, "closed by this end")
        try:
            self._send.send_nowait(_Message(on_grid(anyio.current_time() + self._latency), message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise TransportClosed(ABNORMAL_CLOSURE, "the other end is gone") from None
        await anyio.lowlevel.checkpoint()

    async def receive(self) -> str:
        """Wait for the next message. Cancelling the wait loses nothing.

        Returns:
            The message's text.

        Raises:
            TransportClosed: When the other end closed (its close code) or dropped (1006).
        """
        if self._closed and self._pending is None:
            raise self._close_info or TransportClosed(NORMAL_CLOSURE, "closed by this end")
        if self._pending is None:
            try:
                item = await self._receive.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self._mark_closed(TransportClosed(ABNORMAL_CLOSURE, "connection dropped"))
                raise self._close_info or TransportClosed() from None
            self._pending = item
        pending = self._pending
        if pending.deliver_at > anyio.current_time():
            await anyio.sleep_until(pending.deliver_at)
        self._pending = None
        if isinstance(pending, _Close):
            self._mark_closed(TransportClosed(pending.code, pending.reason))
            raise TransportClosed(pending.code, pending.reason)
        return pending.text

    def receive_nowait(self) -> str | None:
        """The next message if it has already arrived (its latency has passed), else None.

        Simulators call this before acting on a timer, so that a message and a timer due at the
        same instant are always handled in the same order (message first): in virtual time the
        run is then the same every time.

        Raises:
            TransportClosed: If the other end's close has arrived.
        """
        if self._pending is None and not self._closed:
            try:
                self._pending = self._receive.receive_nowait()
            except anyio.WouldBlock:
                return None
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self._mark_closed(TransportClosed(ABNORMAL_CLOSURE, "connection dropped"))
                raise self._close_info or TransportClosed() from None
        pending = self._pending
        if pending is None:
            if self._closed:
                raise self._close_info or TransportClosed()
            return None
        if pending.deliver_at > anyio.current_time():
            return None
        self._pending = None
        if isinstance(pending, _Close):
            self._mark_closed(TransportClosed(pending.code, pending.reason))
            raise TransportClosed(pending.code, pending.reason)
        return pending.text

    def __aiter__(self) -> MemoryTransport:
        return self

    async def __anext__(self) -> str:
        try:
            return await self.receive()
        except TransportClosed:
            raise StopAsyncIteration from None

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Close cleanly; the other end receives the close after the pair's latency.

        Args:
            code: The close code the other end sees.
            reason: The close reason the other end sees.
        """
        if not self._closed:
            self._mark_closed(TransportClosed(code, reason or "closed by this end"))
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._send.send_nowait(
                    _Close(on_grid(anyio.current_time() + self._latency), code, reason)
                )
        self._send.close()
        self._receive.close()
        await anyio.lowlevel.checkpoint()

    async def abort(self) -> None:
        """Drop the connection: the other end sees :data:`ABNORMAL_CLOSURE` at once."""
        if not self._closed:
            self._mark_closed(TransportClosed(ABNORMAL_CLOSURE, "dropped by this end"))
        self._send.close()
        self._receive.close()
        await anyio.lowlevel.checkpoint()

    def _mark_closed(self, info: TransportClosed) -> None:
        self._closed = True
        self._close_info = info

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryTransport {self._name!r} {state}>"


def memory_pair(
    *, latency: float = 0.0, names: tuple[str, str] = ("a", "b")
) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports.

    Args:
        latency: One-way delay of every message and of a clean close, in seconds (0 or more).
            A dropped connection (:meth:`MemoryTransport.abort`) is seen at once.
        names: Names of the two ends, for ``repr`` and logs.

    Returns:
        The two ends; what one sends, the other receives.

    Raises:
        ValueError: If *latency* is negative or not finite.
    """
    value: object = latency  # checked at run time: callers may not be type-checked
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"latency = {latency!r}; allowed: a finite number of seconds >= 0")
    a_to_b_send, a_to_b_receive = anyio.create_memory_object_stream[_Message | _Close](math.inf)
    b_to_a_send, b_to_a_receive = anyio.create_memory_object_stream[_Message | _Close](math.inf)
    a = MemoryTransport(name=names[0], latency=float(latency), link=(a_to_b_send, b_to_a_receive))
    b = MemoryTransport(name=names[1], latency=float(latency), link=(b_to_a_send, a_to_b_receive))
    return a, b
