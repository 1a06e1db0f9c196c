"""Run a bot written against Starlette's and ``websockets``' APIs on the simulator, in memory.

Most bots take their Twilio socket as a Starlette (or FastAPI) ``WebSocket`` and talk to the
model through a ``websockets`` connection. These adapters give a simulator
:class:`~voiceguard.transports.base.Transport` those two shapes, so the bot's own call handler runs
unchanged against :func:`~voiceguard.sim.scenarios.run_scenario`, in virtual time when the test
runs on trio's ``MockClock``::

    async def bridge(twilio: Transport, connect_model: ConnectModel) -> None:
        await my_bot.handle_call(StarletteSocket(twilio), websockets_style(connect_model))

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, final

from voiceguard.transports import NORMAL_CLOSURE, Transport, TransportClosed

__all__ = ("StarletteSocket", "WebsocketsConnection", "websockets_style")


@final
class StarletteSocket:
    """A :class:`~voiceguard.transports.base.Transport` with the Starlette ``WebSocket`` API a bot
    uses for Twilio: ``accept``, ``iter_text``, ``receive_text``, ``receive_json``,
    ``send_text``, ``send_json`` and ``close``.

    ``iter_text`` ends when the caller hangs up; ``receive_text`` then raises
    :class:`~voiceguard.transports.base.TransportClosed`.

    Args:
        transport: The bot's end of the Twilio stream.
    """

    __slots__ = ("transport",)

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def accept(self) -> None:
        """Nothing to do: the in-memory stream is open from the start."""

    async def receive_text(self) -> str:
        """The next message from Twilio."""
        return await self.transport.receive()

    async def receive_json(self) -> Any:
        """The next message from Twilio, decoded."""
        return json.loads(await self.transport.receive())

    def iter_text(self) -> AsyncIterator[str]:
        """Messages from Twilio until the call ends."""
        return _Messages(self.transport)

    async def send_text(self, data: str) -> None:
        """Send a message to Twilio."""
        await self.transport.send(data)

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Send a JSON message to Twilio (text frames only, as Twilio requires)."""
        if mode != "text":
            raise ValueError("Twilio Media Streams take text frames only (mode='text')")
        await self.transport.send(json.dumps(data, separators=(",", ":")))

    async def close(self, code: int = NORMAL_CLOSURE, reason: str | None = None) -> None:
        """Close the stream: the call ends."""
        await self.transport.aclose(code, reason or "")


@final
class WebsocketsConnection:
    """A :class:`~voiceguard.transports.base.Transport` with the ``websockets`` client API a bot
    uses for the model: ``send``, ``recv``, ``async for`` and ``close``.

    A close raises ``websockets``' own ``ConnectionClosedOK`` (code 1000) or
    ``ConnectionClosedError`` from ``recv``, and ends ``async for`` cleanly on the former, as a
    real connection does. Needs the ``websockets`` package (the ``sim`` extra).

    Args:
        transport: The bot's end of the model connection.
    """

    __slots__ = ("transport",)

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def send(self, message: str | bytes) -> None:
        """Send a message to the model."""
        text = message.decode("utf-8") if isinstance(message, bytes) else message
        try:
            await self.transport.send(text)
        except TransportClosed as exc:
            raise _closed(exc) from exc

    async def recv(self) -> str:
        """The model's next message (cancel-safe)."""
        try:
            return await self.transport.receive()
        except TransportClosed as exc:
            raise _closed(exc) from exc

    def __aiter__(self) -> WebsocketsConnection:
        return self

    async def __anext__(self) -> str:
        try:
            return await self.transport.receive()
        except TransportClosed as exc:
            if exc.code == NORMAL_CLOSURE:
                raise StopAsyncIteration from None
            raise _closed(exc) from exc

    async def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection."""
        await self.transport.aclose(code, reason)


@final
class _Messages:
    """A transport's messages until it closes (an iterator object, not an async generator, so
    that leaving the loop early leaves nothing to finalise)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._transport.receive()
        except TransportClosed:
            raise StopAsyncIteration from None


def _closed(exc: TransportClosed) -> Exception:
    from websockets.exceptions import (  # noqa: PLC0415 - the sim extra
        ConnectionClosedError,
        ConnectionClosedOK,
    )
    from websockets.frames import Close  # noqa: PLC0415

    close = Close(exc.code, exc.reason)
    if exc.code == NORMAL_CLOSURE:
        return ConnectionClosedOK(close, None)
    return ConnectionClosedError(close, None)


def websockets_style(
    connect_model: Callable[[], AbstractAsyncContextManager[Transport]],
) -> Callable[[], AbstractAsyncContextManager[WebsocketsConnection]]:
    """Turn a scenario's ``connect_model`` into a ``websockets.connect``-like opener.

    Returns:
        A function of no arguments returning an async context manager that yields a
        :class:`WebsocketsConnection`, used as ``async with connect() as openai_ws``.
    """

    @asynccontextmanager
    async def connect() -> AsyncIterator[WebsocketsConnection]:
        async with connect_model() as transport:
            yield WebsocketsConnection(transport)

    return connect
