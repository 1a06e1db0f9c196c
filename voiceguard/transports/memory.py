"""Two connected in-memory transports, with an optional one-way latency.

Nothing touches the network, so a test on trio's ``MockClock`` runs a long call in no real time
and gives the same result every run.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voiceguard.transports.base import ABNORMAL_CLOSURE, NORMAL_CLOSURE, TransportClosed, on_grid

__all__ = ("MemoryTransport", "memory_pair")


@dataclass(frozen=True, slots=True)
class _Close:
    deliver_at: float
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Message:
    deliver_at: float
    text: str | bytes


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
        await self._put(message)

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message; it arrives after the pair's latency.

        Raises:
            TransportClosed: If either end has closed.
        """
        await self._put(bytes(data))

    async def _put(self, message: str | bytes) -> None:
        if self._closed:
            raise self._close_info or TransportClosed(NORMAL_CLOSURE, "closed by this end")
        try:
            self._send.send_nowait(_Message(on_grid(anyio.current_time() + self._latency), message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise TransportClosed(ABNORMAL_CLOSURE, "the other end is gone") from None
        await anyio.lowlevel.checkpoint()

    async def receive(self) -> str:
        """Wait for the next message (a binary one decoded as UTF-8). Cancelling the wait
        loses nothing.

        Returns:
            The message's text.

        Raises:
            TransportClosed: When the other end closed (its close code) or dropped (1006).
        """
        message = await self.receive_frame()
        return message if isinstance(message, str) else message.decode("utf-8", "replace")

    async def receive_frame(self) -> str | bytes:
        """Wait for the next message: ``str`` for a text message, ``bytes`` for a binary one.

        Raises:
            TransportClosed: As :meth:`receive`.
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
        text = pending.text
        return text if isinstance(text, str) else text.decode("utf-8", "replace")

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
        """Drop the connection: the other end sees
        :data:`~voiceguard.transports.base.ABNORMAL_CLOSURE` at once."""
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
