"""A small WebSocket server and client on anyio, for the simulators' real-socket mode.

Built on the Sans-I/O protocol of the ``websockets`` package (install ``voiceguard[sim]``), so it
runs on asyncio and on trio alike, inside the caller's task groups. It is meant for loopback tests
and local tools, not for the internet: no TLS, no compression, one text message at a time.

* :func:`serve_websocket` listens on a host and port and runs a handler per connection, each in its
  own task; a connection that fails is logged and closed without touching the others.
* :func:`connect_websocket` opens a client connection (``ws://`` URLs only).

Both give a :class:`WebSocketTransport`, which implements
:class:`~voiceguard.transports.base.Transport`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Final, final

import anyio
import anyio.abc
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import SEND_EOF, Protocol, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from voiceguard._redact import RedactingLogger
from voiceguard.transports.base import ABNORMAL_CLOSURE, NORMAL_CLOSURE, TransportClosed

__all__ = (
    "HandshakeRejected",
    "WebSocketRequest",
    "WebSocketTransport",
    "connect_websocket",
    "serve_websocket",
)

_LOG: Final = logging.getLogger("voiceguard.sim.websocket")
#: What the WebSocket protocol logs (each header at DEBUG), with credentials blanked.
_PROTOCOL_LOG: Final = RedactingLogger(_LOG)
#: Largest message accepted (the Realtime API allows 15 MiB per append).
MAX_MESSAGE_BYTES: Final = 16 * 2**20
_READ_SIZE: Final = 65536
_CLOSE_TIMEOUT: Final = 2.0
_INTERNAL_ERROR: Final = 1011


class HandshakeRejected(Exception):
    """Raise it from a server's ``accept`` callback to refuse a connection with an HTTP status.

    Attributes:
        status: The HTTP status code, e.g. 404 or 401.
        text: The plain-text body of the response.
    """

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
        super().__init__(f"HTTP {status}: {text}")


@final
class WebSocketRequest:
    """The opening handshake of a WebSocket connection, as the server saw it.

    Attributes:
        path: The request target, with its query string (e.g. ``/v1/realtime?model=x``).
        headers: The request headers; names are case-insensitive.
    """

    __slots__ = ("headers", "path")

    def __init__(self, *, path: str, headers: Mapping[str, str]) -> None:
        self.path = path
        self.headers = headers

    def __repr__(self) -> str:
        return f"WebSocketRequest(path={self.path!r})"


@final
class WebSocketTransport:
    """One open WebSocket connection, carrying text messages.

    Made by :func:`serve_websocket` and :func:`connect_websocket`; implements
    :class:`~voiceguard.transports.base.Transport`. One task may receive while others send.
    """

    __slots__ = (
        "_binary",
        "_close_seen",
        "_closed_info",
        "_fragments",
        "_messages",
        "_protocol",
        "_reading",
        "_send_lock",
        "_stream",
        "_stream_closed",
        "request",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        protocol: Protocol,
        *,
        request: WebSocketRequest | None = None,
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        #: The opening handshake (on the server side; None on the client side).
        self.request = request
        self._messages: deque[str | bytes] = deque()
        self._fragments: list[bytes] = []
        self._binary = False  # whether the message being reassembled is binary
        self._send_lock = anyio.Lock()
        self._closed_info: TransportClosed | None = None
        self._close_seen = anyio.Event()
        self._reading = False
        self._stream_closed = False

    @property
    def closed(self) -> bool:
        """True once the connection is closed or closing."""
        return self._closed_info is not None or self._protocol.state is not State.OPEN

    async def send(self, message: str) -> None:
        """Send one text message.

        Args:
            message: The text.

        Raises:
            TransportClosed: If the connection is closed or closing.
        """
        await self._send(message.encode(), binary=False)

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message.

        Args:
            data: The bytes.

        Raises:
            TransportClosed: If the connection is closed or closing.
        """
        await self._send(bytes(data), binary=True)

    async def _send(self, data: bytes, *, binary: bool) -> None:
        async with self._send_lock:
            if self._closed_info is not None or self._protocol.state is not State.OPEN:
                raise self._closed_info or TransportClosed(NORMAL_CLOSURE, "closing")
            if binary:
                self._protocol.send_binary(data)
            else:
                self._protocol.send_text(data)
            await self._flush()

    async def receive(self) -> str:
        """Wait for the next text message (binary messages are decoded as UTF-8).

        Returns:
            The message.

        Raises:
            TransportClosed: When the connection closed, with the peer's close code, else the
                code this end closed with (1009 for a message over the size limit), else 1006
                (dropped).
        """
        message = await self.receive_frame()
        return message if isinstance(message, str) else message.decode("utf-8", "replace")

    async def receive_frame(self) -> str | bytes:
        """Wait for the next message: ``str`` for a text message, ``bytes`` for a binary one.

        Raises:
            TransportClosed: As :meth:`receive`.
        """
        while not self._messages:
            if self._closed_info is not None:
                raise self._closed_info
            self._reading = True
            try:
                data = await self._stream.receive(_READ_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                data = b""
            finally:
                self._reading = False
            if data:
                self._protocol.receive_data(data)
            else:
                self._protocol.receive_eof()
            await self._after_receive(eof=not data)
        return self._messages.popleft()

    def __aiter__(self) -> WebSocketTransport:
        return self

    async def __anext__(self) -> str:
        try:
            return await self.receive()
        except TransportClosed:
            raise StopAsyncIteration from None

    def _take_frames(self, events: Sequence[object]) -> None:
        for event in events:
            if not isinstance(event, Frame):
                continue
            if event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                if event.opcode is not Opcode.CONT:
                    self._binary = event.opcode is Opcode.BINARY
                self._fragments.append(bytes(event.data))
                if event.fin:
                    data = b"".join(self._fragments)
                    self._messages.append(data if self._binary else data.decode("utf-8", "replace"))
                    self._fragments.clear()

    async def _after_receive(self, *, eof: bool) -> None:
        self._take_frames(self._protocol.events_received())
        with anyio.CancelScope(shield=True):
            async with self._send_lock:
                await self._flush()
        if self._protocol.state is State.CLOSED or eof:
            # When this end failed the connection (a message over the limit: 1009) no close
            # frame is received, but the code sent says why.
            close = self._protocol.close_rcvd or self._protocol.close_sent
            if close is not None:
                info = TransportClosed(int(close.code), close.reason)
            else:
                info = TransportClosed(ABNORMAL_CLOSURE, "connection dropped")
            self._set_closed(info)
            await self._close_stream()
        elif self._protocol.close_rcvd is not None and self._closed_info is None:
            rcvd = self._protocol.close_rcvd
            self._set_closed(TransportClosed(int(rcvd.code), rcvd.reason))

    def _set_closed(self, info: TransportClosed) -> None:
        if self._closed_info is None:
            self._closed_info = info
        self._close_seen.set()

    async def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            try:
                if data == SEND_EOF:
                    if isinstance(self._stream, anyio.abc.SocketStream):
                        await self._stream.send_eof()
                else:
                    await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self._set_closed(TransportClosed(ABNORMAL_CLOSURE, "connection dropped"))
                return

    async def _close_stream(self) -> None:
        if not self._stream_closed:
            self._stream_closed = True
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with a close handshake; waits up to 2 s for the peer's reply, then closes TCP.

        Args:
            code: The close code sent.
            reason: The close reason sent.
        """
        with anyio.CancelScope(shield=True):
            async with self._send_lock:
                if self._protocol.state is State.OPEN:
                    self._protocol.send_close(code, reason)
                    await self._flush()
            if self._closed_info is None:
                with anyio.move_on_after(_CLOSE_TIMEOUT):
                    if self._reading:
                        await self._close_seen.wait()
                    else:
                        while self._closed_info is None:
                            try:
                                await self.receive()
                            except TransportClosed:
                                break
            self._set_closed(TransportClosed(code, reason or "closed by this end"))
            await self._close_stream()

    async def abort(self) -> None:
        """Drop the TCP connection without a close frame (the peer sees code 1006)."""
        self._set_closed(TransportClosed(ABNORMAL_CLOSURE, "dropped by this end"))
        await self._close_stream()

    def __repr__(self) -> str:
        side = "server" if isinstance(self._protocol, ServerProtocol) else "client"
        return f"<WebSocketTransport {side} {self._protocol.state.name}>"


async def _read_handshake(
    stream: anyio.abc.ByteStream, protocol: Protocol
) -> tuple[Request | Response, list[object]]:
    """The handshake event, and any events (frames) that arrived in the same read."""
    while True:
        events = protocol.events_received()
        for index, event in enumerate(events):
            if isinstance(event, (Request, Response)):
                return event, list(events[index + 1 :])
        try:
            data = await stream.receive(_READ_SIZE)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise TransportClosed(ABNORMAL_CLOSURE, "closed during the handshake") from None
        protocol.receive_data(data)


async def _flush_protocol(stream: anyio.abc.ByteStream, protocol: Protocol) -> None:
    for data in protocol.data_to_send():
        if data == SEND_EOF:
            if isinstance(stream, anyio.abc.SocketStream):
                await stream.send_eof()
        else:
            await stream.send(data)


Handler = Callable[[WebSocketTransport], Awaitable[None]]
Acceptor = Callable[[WebSocketRequest], Subprotocol | None]


async def _serve_one(
    stream: anyio.abc.SocketStream,
    handler: Handler,
    accept: Acceptor | None,
    subprotocols: Sequence[str],
    handshake_timeout: float,
) -> None:
    async with stream:

        def select(_protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
            # Pick the first supported subprotocol offered; none offered is fine too.
            return next((Subprotocol(s) for s in subprotocols if s in offered), None)

        protocol = ServerProtocol(
            select_subprotocol=select, max_size=MAX_MESSAGE_BYTES, logger=_PROTOCOL_LOG
        )
        try:
            with anyio.fail_after(handshake_timeout):
                request, _ = await _read_handshake(stream, protocol)
                if not isinstance(request, Request):  # pragma: no cover - a server gets requests
                    return
                info = WebSocketRequest(path=request.path, headers=_header_map(request.headers))
                try:
                    if accept is not None:
                        accept(info)
                except HandshakeRejected as exc:
                    response = protocol.reject(exc.status, exc.text)
                else:
                    response = protocol.accept(request)
                protocol.send_response(response)
                await _flush_protocol(stream, protocol)
        except (TimeoutError, TransportClosed, anyio.BrokenResourceError, OSError) as exc:
            _LOG.info("websocket handshake failed: %s", exc)
            return
        if protocol.state is not State.OPEN:
            return
        transport = WebSocketTransport(stream, protocol, request=info)
        code = NORMAL_CLOSURE
        try:
            await handler(transport)
        except Exception:  # one connection's failure must never stop the server
            code = _INTERNAL_ERROR
            _LOG.exception("websocket handler failed for %s", info.path)
        finally:
            if transport.closed:
                await transport.abort()
            else:
                await transport.aclose(code)


def _header_map(headers: Headers) -> Mapping[str, str]:
    return {key.lower(): value for key, value in headers.raw_items()}


async def serve_websocket(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    accept: Acceptor | None = None,
    subprotocols: Sequence[str] = (),
    handshake_timeout: float = 10.0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen for WebSocket connections and run *handler* for each, until cancelled.

    Use it with ``port = await task_group.start(serve_websocket, handler)``.

    Args:
        handler: Called with each open connection, in its own task; the connection is closed
            when it returns. An exception it raises is logged, never propagated.
        host: The address to listen on.
        port: The TCP port; 0 picks a free one.
        accept: Called with the opening handshake before accepting; raise
            :class:`HandshakeRejected` to refuse the connection with an HTTP status.
        subprotocols: Subprotocols the server may select, in order of preference.
        handshake_timeout: Seconds a client may take to complete the opening handshake.
        task_status: Set by ``task_group.start``; receives the port actually bound.
    """
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener:
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def one(stream: anyio.abc.SocketStream) -> None:
            await _serve_one(stream, handler, accept, subprotocols, handshake_timeout)

        task_status.started(bound)
        await listener.serve(one)


@asynccontextmanager
async def connect_websocket(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    subprotocols: Sequence[str] = (),
    timeout: float = 10.0,
) -> AsyncIterator[WebSocketTransport]:
    """Open a WebSocket client connection; closes it on exit.

    Args:
        url: A ``ws://`` URL, e.g. ``ws://127.0.0.1:8765/media-stream``.
        headers: Extra request headers (e.g. ``Authorization``).
        subprotocols: Subprotocols to offer.
        timeout: Seconds allowed for connecting and the opening handshake.

    Yields:
        The open connection.

    Raises:
        ValueError: If *url* is not a ``ws://`` URL.
        TransportClosed: If the server refused the handshake or closed during it.
        OSError: If the TCP connection failed.
    """
    try:
        uri = parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"url = {url!r}; allowed: a ws:// URL ({exc})") from None
    if uri.secure:
        raise ValueError(f"url = {url!r}; allowed: a ws:// URL (wss:// is not supported here)")
    protocol = ClientProtocol(
        uri,
        subprotocols=[Subprotocol(s) for s in subprotocols] or None,
        max_size=MAX_MESSAGE_BYTES,
        logger=_PROTOCOL_LOG,
    )
    with anyio.fail_after(timeout):
        stream = await anyio.connect_tcp(uri.host, uri.port)
    try:
        request = protocol.connect()
        for key, value in (headers or {}).items():
            request.headers[key] = value
        protocol.send_request(request)
        with anyio.fail_after(timeout):
            await _flush_protocol(stream, protocol)
            response, early = await _read_handshake(stream, protocol)
        # A server may accept and close at once (1013 at capacity, 1012 while draining): its
        # close frame can come in the same read as the response, and the state is CLOSING.
        if protocol.handshake_exc is not None or protocol.state is State.CONNECTING:
            status = response.status_code if isinstance(response, Response) else 0
            raise TransportClosed(ABNORMAL_CLOSURE, f"handshake refused (HTTP {status})")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        raise
    transport = WebSocketTransport(stream, protocol)
    transport._take_frames(early)  # frames that came with the handshake response
    if protocol.close_rcvd is not None:  # and a close among them: receive() raises its code
        await transport._after_receive(eof=False)
    try:
        yield transport
    finally:
        await transport.aclose()
