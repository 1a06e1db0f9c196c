"""Production transports: the phone side over an ASGI WebSocket, the model side over ``websockets``.

:class:`~voiceguard.MediaHandler` speaks to both peers through the
:class:`~voiceguard.transports.base.Transport` protocol (whole text messages, a clean close, a
drop). This module adapts the two connections a deployed server has:

* :class:`StarletteWebSocketTransport`: Twilio's Media Stream, accepted by a Starlette (ASGI)
  WebSocket endpoint. Twilio sends text frames only; a binary frame or an over-size message is
  refused (counted in :attr:`~StarletteWebSocketTransport.refused`, the connection closed with
  1003 or 1009) and never raises anything but
  :class:`~voiceguard.transports.base.TransportClosed`.
* :func:`connect_realtime`: a WebSocket client to the OpenAI Realtime API (``wss://`` or, for a
  local simulator, ``ws://``), sending ``Authorization: Bearer <key>``. It runs on asyncio (the
  ``websockets`` asyncio client). The key is never logged: ``websockets`` logs the request headers
  at DEBUG level, so its log records pass through a filter that blanks the key first.

Both need the ``server`` extra (``pip install 'voiceguard[server]'``).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, cast, final
from urllib.parse import urlsplit

import anyio

from voiceguard._redact import RedactingLogger
from voiceguard._version import __version__
from voiceguard.transports.base import ABNORMAL_CLOSURE, NORMAL_CLOSURE, TransportClosed

if TYPE_CHECKING:
    import starlette.websockets
    import websockets.asyncio.client

__all__ = (
    "DEFAULT_MAX_PHONE_MESSAGE_BYTES",
    "DEFAULT_MAX_REALTIME_MESSAGE_BYTES",
    "MESSAGE_TOO_BIG",
    "UNSUPPORTED_DATA",
    "RealtimeConnection",
    "StarletteWebSocketTransport",
    "connect_realtime",
)

#: WebSocket close code for a binary frame where only text is accepted.
UNSUPPORTED_DATA: Final = 1003
#: WebSocket close code for a message larger than the limit.
MESSAGE_TOO_BIG: Final = 1009
#: The largest Twilio message accepted by default (a 20 ms ``media`` frame is about 400 bytes,
#: and the biggest regular message, ``start`` with its custom parameters, a few kilobytes).
DEFAULT_MAX_PHONE_MESSAGE_BYTES: Final = 64 * 1024
#: Largest Realtime API message accepted by default (one audio delta is far smaller).
DEFAULT_MAX_REALTIME_MESSAGE_BYTES: Final = 16 * 2**20

_LOG: Final = logging.getLogger("voiceguard.transports")
_WEBSOCKETS_LOG: Final = logging.getLogger("voiceguard.transports.realtime")
#: A close reason must fit a control frame (125 bytes less the 2-byte code).
_MAX_REASON_BYTES: Final = 123
_CLOSE_TIMEOUT: Final = 2.0


def _close_reason(reason: str) -> str:
    data = reason.encode("utf-8")[:_MAX_REASON_BYTES]
    return data.decode("utf-8", "ignore")


def _utf8_length_over(text: str, limit: int) -> bool:
    """Whether *text* takes more than *limit* bytes in UTF-8 (without encoding short texts)."""
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


@final
class StarletteWebSocketTransport:
    """The phone side of a call: a Starlette WebSocket, as a text-message transport.

    Wrap the WebSocket after accepting it. Text messages pass through unchanged; a binary frame
    (Twilio never sends one) is refused with close code :data:`UNSUPPORTED_DATA`, and a message
    over *max_message_bytes* with :data:`MESSAGE_TOO_BIG` (the ASGI server may enforce the limit
    itself first, e.g. uvicorn's ``ws_max_size``; such a close is counted the same way). Either
    way the refusal is logged, counted in :attr:`refused`, and :meth:`receive` raises
    :class:`~voiceguard.transports.base.TransportClosed` with that code.

    Args:
        websocket: An accepted Starlette WebSocket.
        max_message_bytes: The largest text message accepted, in UTF-8 bytes.

    Raises:
        ValueError: If *max_message_bytes* is not a positive integer.
    """

    __slots__ = ("_closed", "_max", "_refused", "_websocket")

    def __init__(
        self,
        websocket: starlette.websockets.WebSocket,
        *,
        max_message_bytes: int = DEFAULT_MAX_PHONE_MESSAGE_BYTES,
    ) -> None:
        value: object = max_message_bytes
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise ValueError(f"max_message_bytes = {max_message_bytes!r}; allowed: an integer > 0")
        self._websocket = websocket
        self._max = max_message_bytes
        self._closed: TransportClosed | None = None
        self._refused: Counter[str] = Counter()

    @property
    def refused(self) -> MappingProxyType[str, int]:
        """How many messages were refused, by kind (``"binary"``, ``"oversize"``)."""
        return MappingProxyType(dict(self._refused))

    @property
    def closed(self) -> bool:
        """True once the connection is closed (by either end)."""
        return self._closed is not None

    async def send(self, message: str) -> None:
        """Send one text message.

        Args:
            message: The text.

        Raises:
            ~voiceguard.transports.base.TransportClosed: If the connection is closed.
        """
        if self._closed is not None:
            raise self._closed
        try:
            await self._websocket.send_text(message)
        except Exception as exc:  # WebSocketDisconnect, OSError, RuntimeError after a close
            raise self._mark_closed(
                ABNORMAL_CLOSURE, f"send failed: {type(exc).__name__}"
            ) from None

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message (for a phone provider that takes its audio so: Vonage).

        Raises:
            ~voiceguard.transports.base.TransportClosed: If the connection is closed.
        """
        if self._closed is not None:
            raise self._closed
        try:
            await self._websocket.send_bytes(bytes(data))
        except Exception as exc:  # WebSocketDisconnect, OSError, RuntimeError after a close
            raise self._mark_closed(
                ABNORMAL_CLOSURE, f"send failed: {type(exc).__name__}"
            ) from None

    async def receive(self) -> str:
        """Wait for the next text message.

        Returns:
            The message.

        Raises:
            ~voiceguard.transports.base.TransportClosed: When the peer closed (its close code),
                the connection dropped (1006), or a frame was refused (1003 binary, 1009 too
                big).
        """
        return cast("str", await self._next(binary=False))  # binary frames were refused

    async def receive_frame(self) -> str | bytes:
        """Wait for the next message, text (``str``) or binary (``bytes``): what a phone
        provider that sends its audio in binary frames (Vonage) needs.

        Raises:
            ~voiceguard.transports.base.TransportClosed: As :meth:`receive` (a binary frame is
                not refused; one over *max_message_bytes* is).
        """
        return await self._next(binary=True)

    async def _next(self, *, binary: bool) -> str | bytes:
        if self._closed is not None:
            raise self._closed
        try:
            message = await self._websocket.receive()
        except Exception as exc:  # RuntimeError once a disconnect was seen, OSError
            raise self._mark_closed(
                ABNORMAL_CLOSURE, f"receive failed: {type(exc).__name__}"
            ) from None
        kind = message.get("type")
        if kind == "websocket.disconnect":
            code = int(message.get("code") or NORMAL_CLOSURE)
            reason = str(message.get("reason") or "")
            if code == MESSAGE_TOO_BIG:
                self._refuse("oversize", f"a message over the server's limit (close {code})")
            raise self._mark_closed(code, reason)
        text = message.get("text")
        data = message.get("bytes")
        if binary and not isinstance(text, str) and isinstance(data, bytes):
            if len(data) > self._max:
                self._refuse("oversize", f"a binary frame of {len(data)} bytes (limit {self._max})")
                await self.aclose(MESSAGE_TOO_BIG, f"message over {self._max} bytes")
                raise self._mark_closed(MESSAGE_TOO_BIG, f"message over {self._max} bytes")
            return data
        if not isinstance(text, str):
            size = len(data or b"")
            self._refuse("binary", f"a binary frame of {size} bytes (Twilio sends text only)")
            await self.aclose(UNSUPPORTED_DATA, "binary frames are not accepted")
            raise self._mark_closed(UNSUPPORTED_DATA, "binary frames are not accepted")
        if _utf8_length_over(text, self._max):
            self._refuse("oversize", f"a message of {len(text)} characters (limit {self._max})")
            await self.aclose(MESSAGE_TOO_BIG, f"message over {self._max} bytes")
            raise self._mark_closed(MESSAGE_TOO_BIG, f"message over {self._max} bytes")
        return text

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with a close frame (idempotent; a no-op once either end closed).

        Args:
            code: The close code sent.
            reason: The close reason sent (cut to fit a close frame).
        """
        if self._closed is not None:
            return
        self._mark_closed(code, reason or "closed by this end")
        try:
            await self._websocket.close(code, _close_reason(reason))
        except Exception as exc:  # the peer is already gone
            _LOG.debug("closing the phone WebSocket failed: %r", exc)

    async def abort(self) -> None:
        """End the connection at once.

        ASGI has no way to drop a connection without a close frame, so this closes with 1011
        (internal error) without waiting for anything.
        """
        await self.aclose(1011, "aborted")

    def _refuse(self, kind: str, what: str) -> None:
        self._refused[kind] += 1
        _LOG.warning("refused from the phone: %s", what, extra={"peer": "twilio"})

    def _mark_closed(self, code: int, reason: str) -> TransportClosed:
        if self._closed is None:
            self._closed = TransportClosed(code, reason)
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed is not None else "open"
        return f"<StarletteWebSocketTransport {state}>"


@final
class RealtimeConnection:
    """The model side of a call: a ``websockets`` client connection, as a text transport.

    Made by :func:`connect_realtime`. A binary message (the Realtime API sends none) is decoded
    as UTF-8 and left to the event parser to refuse.
    """

    __slots__ = ("_closed", "_connection", "_gone")

    def __init__(self, connection: websockets.asyncio.client.ClientConnection) -> None:
        from websockets.exceptions import ConnectionClosed  # noqa: PLC0415 - optional dep

        self._connection = connection
        self._closed: TransportClosed | None = None
        # Looked up once: an import statement per message showed in the server's profile.
        self._gone = ConnectionClosed

    async def send(self, message: str) -> None:
        """Send one text message.

        Args:
            message: The text (a JSON client event).

        Raises:
            ~voiceguard.transports.base.TransportClosed: If the connection is closed.
        """
        if self._closed is not None:
            raise self._closed
        try:
            await self._connection.send(message)
        except self._gone as exc:
            raise self._closed_from(exc) from None

    async def receive(self) -> str:
        """Wait for the next message.

        Returns:
            The message's text.

        Raises:
            ~voiceguard.transports.base.TransportClosed: When the connection closed, with the
                server's close code, else the code this end closed with (1009 for a message
                over *max_message_bytes*), else 1006 (dropped).
        """
        if self._closed is not None:
            raise self._closed
        try:
            data = await self._connection.recv()
        except self._gone as exc:
            raise self._closed_from(exc) from None
        if isinstance(data, bytes):
            return data.decode("utf-8", "replace")
        return data

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with a close handshake (idempotent).

        Args:
            code: The close code sent.
            reason: The close reason sent (cut to fit a close frame).
        """
        if self._closed is None:
            self._closed = TransportClosed(code, reason or "closed by this end")
        with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await self._connection.close(code, _close_reason(reason))

    async def abort(self) -> None:
        """Drop the TCP connection without a close frame (the server sees 1006)."""
        if self._closed is None:
            self._closed = TransportClosed(ABNORMAL_CLOSURE, "dropped by this end")
        self._connection.transport.abort()

    def _closed_from(self, exc: Exception) -> TransportClosed:
        if self._closed is None:
            # When this end failed the connection (a message over the limit: 1009) no close
            # frame is received, but the code sent says why.
            close = getattr(exc, "rcvd", None) or getattr(exc, "sent", None)
            if close is not None:
                self._closed = TransportClosed(int(close.code), str(close.reason))
            else:
                self._closed = TransportClosed(ABNORMAL_CLOSURE, "connection dropped")
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed is not None else "open"
        return f"<RealtimeConnection {state}>"


def _check_url(url: str) -> str:
    value: object = url
    if not isinstance(value, str):
        raise ValueError(f"url = {url!r}; allowed: a ws:// or wss:// URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"url = {url!r}; allowed: a ws:// or wss:// URL ({exc})") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"url = {url!r}; allowed: a ws:// or wss:// URL with a host")
    return value


@asynccontextmanager
async def connect_realtime(
    url: str,
    *,
    api_key: str | None,
    beta: bool = False,
    headers: Mapping[str, str] | None = None,
    max_message_bytes: int = DEFAULT_MAX_REALTIME_MESSAGE_BYTES,
    open_timeout: float = 10.0,
) -> AsyncIterator[RealtimeConnection]:
    """Open a WebSocket to the Realtime API (asyncio only); closes it on exit.

    Use it as the model connector of a :class:`~voiceguard.MediaHandler`::

        handler = MediaHandler(
            phone, lambda start: connect_realtime(url, api_key=key), config=config
        )

    Args:
        url: The Realtime URL, e.g. ``wss://api.openai.com/v1/realtime?model=gpt-realtime``, or a
            ``ws://`` URL of a local simulator.
        api_key: Sent as ``Authorization: Bearer <api_key>``; None sends no ``Authorization``.
            Never logged.
        beta: Add ``OpenAI-Beta: realtime=v1`` (the beta protocol); off for GA. OpenAI retired
            the beta protocol on 2026-05-12 (it refuses such a session with
            ``beta_api_shape_disabled``); only for other servers that still speak it.
        headers: More request headers.
        max_message_bytes: The largest message accepted from the server; a bigger one closes
            the connection with 1009.
        open_timeout: Seconds allowed for connecting and the opening handshake.

    Yields:
        The open connection.

    Raises:
        ValueError: If *url* is not a ``ws://`` or ``wss://`` URL.
        ~voiceguard.transports.base.TransportClosed: If the server refused the handshake (e.g.
            HTTP 401), or it failed or timed out.
        OSError: If the TCP or TLS connection failed.
    """
    from websockets.asyncio.client import connect  # noqa: PLC0415 - optional dependency
    from websockets.exceptions import InvalidHandshake, InvalidStatus  # noqa: PLC0415

    _check_url(url)
    sent: list[tuple[str, str]] = []
    if api_key:
        sent.append(("Authorization", f"Bearer {api_key}"))
    if beta:
        sent.append(("OpenAI-Beta", "realtime=v1"))
    sent.extend((headers or {}).items())
    credentials = [v for k, v in sent if k.lower() in ("authorization", "api-key")]
    logger = RedactingLogger(_WEBSOCKETS_LOG, (api_key or "", *credentials))
    try:
        connection = await connect(
            url,
            additional_headers=sent,
            user_agent_header=f"voiceguard/{__version__}",
            max_size=max_message_bytes,
            open_timeout=open_timeout,
            compression=None,
            close_timeout=_CLOSE_TIMEOUT,
            logger=logger,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise TransportClosed(ABNORMAL_CLOSURE, f"handshake refused (HTTP {status})") from None
    except InvalidHandshake as exc:
        raise TransportClosed(ABNORMAL_CLOSURE, f"handshake failed: {type(exc).__name__}") from None
    except TimeoutError:
        raise TransportClosed(ABNORMAL_CLOSURE, f"no handshake within {open_timeout:g} s") from None
    transport = RealtimeConnection(connection)
    try:
        yield transport
    finally:
        await transport.aclose()
