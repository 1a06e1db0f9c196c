"""The phone side of the middleware: a bot's media-stream socket (Twilio's, or Telnyx's or
Plivo's), watched and paced."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, final

import anyio

from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol import PHONES, PhoneDialect, dumps, parse_twilio_message
from voiceguard.protocol._phones import Translate

if TYPE_CHECKING:
    from voiceguard.middleware.call import GuardedCall

__all__ = ("GuardedPhone",)


@final
class GuardedPhone:
    """The bot's Twilio Media Streams socket, with the turn engine in between.

    What Twilio sends reaches the bot unchanged, except the echoes of the guard's own marks; the
    guards learn from it the call's identity, the caller's audio (for the calibration gate) and
    what the caller heard (to the chunk, from the marks). What the bot sends goes through the
    engine's playout: its audio is handed to the phone at once (its flow does not change), each
    chunk followed by a mark of the guard's; its own marks keep their place after the audio
    before them. On a barge-in the guard pauses the phone itself (``clear``), and either drops
    the rest of the answer (confirmed) or plays it on from where the caller stopped hearing it
    (a false interruption); the bot's own ``clear`` only goes when something is on the phone.

    Works with a Starlette/FastAPI ``WebSocket`` (``iter_text``, ``receive_text``,
    ``receive_json``, ``send_text``, ``send_json``) and with any object with ``send(text)``,
    ``receive()`` or ``recv()`` and ``async for``; every other attribute (``accept``, ``close``,
    ...) is the wrapped socket's.

    With another provider's *dialect* (Telnyx, Plivo), the bot and the socket speak that
    provider's words: the guard reads each message in Twilio's (the bot still gets the
    provider's), reads the bot's the same way, and writes its own (the bot's audio as the playout
    hands it over, its marks, its ``clear``) in the provider's.

    Args:
        call: The guarded call.
        websocket: The phone socket.
        dialect: Whose media streams it carries (:data:`~voiceguard.protocol.PHONES`).

    Raises:
        ValueError: For Vonage, whose audio is binary: the middleware reads JSON streams only.

    Attributes:
        websocket: The wrapped phone socket.
    """

    def __init__(
        self, call: GuardedCall, websocket: Any, dialect: PhoneDialect = PHONES["twilio"]
    ) -> None:
        if dialect.line is not None:
            raise ValueError(
                f"the middleware reads JSON media streams; {dialect.title}'s audio is binary: "
                "serve the call with voiceguard serve --phone, or a MediaHandler over a "
                "DialectTransport"
            )
        self._call = call
        self.websocket = websocket
        self._dialect = None if dialect.is_twilio else dialect
        self._lock = anyio.Lock()
        call.attach_phone(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.websocket, name)

    # ------------------------------------------------------------------ Twilio -> the bot

    async def _shown(self, message: object) -> bool:
        """Let the guard see *message*; False if the bot must not (a mark of the guard's)."""
        call = self._call
        if self._dialect is not None:
            message = _translated(message, self._dialect.from_phone)
            if message is None:
                return True  # nothing the guard reads (Plivo's clearedAudio): the bot's
        try:
            event = parse_twilio_message(message)  # type: ignore[arg-type]
        except RemoteProtocolError:
            return True  # the bot reads it as it is; a bad message is its to report
        shown, step = call.guard.from_phone(event, call.now())
        await call.carry_out(step)
        await call.tick_if_due()
        return shown

    async def _next(self, receive: Callable[[], Awaitable[Any]]) -> Any:
        while True:
            message = await receive()
            if await self._shown(message):
                return message

    async def receive_text(self) -> str:
        """Receive a text message (Starlette's ``receive_text``)."""
        text: str = await self._next(self.websocket.receive_text)
        return text

    async def receive_json(self, *args: Any, **kwargs: Any) -> Any:
        """Receive a JSON message (Starlette's ``receive_json``)."""
        return await self._next(lambda: self.websocket.receive_json(*args, **kwargs))

    async def recv(self) -> Any:
        """Receive a message (``websockets``-style ``recv``)."""
        return await self._next(self.websocket.recv)

    async def receive(self) -> Any:
        """Receive a message (``receive()`` of voiceguard's transports)."""
        return await self._next(self.websocket.receive)

    def iter_text(self) -> AsyncIterator[str]:
        """Iterate over text messages (Starlette's ``iter_text``)."""
        return _Shown(self.websocket.iter_text(), self._shown)

    def iter_json(self) -> AsyncIterator[Any]:
        """Iterate over JSON messages (Starlette's ``iter_json``)."""
        return _Shown(self.websocket.iter_json(), self._shown)

    def __aiter__(self) -> AsyncIterator[Any]:
        return _Shown(self.websocket.__aiter__(), self._shown)

    # ------------------------------------------------------------------ the bot -> Twilio

    async def _outgoing(self, message: object, send_as_is: Callable[[], Awaitable[object]]) -> None:
        data: object = message
        if isinstance(message, (str, bytes, bytearray)):
            try:
                data = json.loads(message)
            except (ValueError, UnicodeDecodeError):
                data = None
        if isinstance(data, Mapping) and self._dialect is not None:
            data = _translated(data, self._dialect.caller_in)  # the bot's words -> Twilio's
            if isinstance(data, dict) and not data.get("streamSid"):
                data["streamSid"] = self._call.guard.state.stream_sid or ""
        if not isinstance(data, Mapping):
            async with self._lock:
                await send_as_is()  # not a Twilio message the guard knows: it goes as it is
            return
        call = self._call
        await call.carry_out(call.guard.to_phone(data, call.now()), original=(data, message))

    async def send_json(self, data: Any, *args: Any, **kwargs: Any) -> None:
        """Send a JSON message (Starlette's ``send_json``)."""
        await self._outgoing(data, lambda: self.websocket.send_json(data, *args, **kwargs))

    async def send_text(self, data: str) -> None:
        """Send a text message (Starlette's ``send_text``)."""
        await self._outgoing(data, lambda: self.websocket.send_text(data))

    async def send(self, message: Any) -> None:
        """Send a message (``websockets``-style ``send``)."""
        await self._outgoing(message, lambda: self.websocket.send(message))

    async def send_direct(self, message: Mapping[str, Any]) -> None:
        """Send a message the guards decided on (the bot's audio as the playout hands it over,
        the guard's ``clear``), in the provider's words. Bots use their usual send methods."""
        if self._dialect is not None:
            worded = _translated(message, self._dialect.to_phone)
            if not isinstance(worded, Mapping):
                return
            message = worded
        text = dumps(message)
        async with self._lock:
            if callable(getattr(self.websocket, "send_text", None)):
                await self.websocket.send_text(text)
            else:
                await self.websocket.send(text)

    async def hang_up(self) -> None:
        """Close the socket: for Twilio, the end of the stream and (with no TwiML after
        ``<Connect>``) of the call."""
        close = getattr(self.websocket, "aclose", None) or getattr(self.websocket, "close", None)
        if callable(close):
            async with self._lock:
                await close()


def _translated(message: object, translate: Translate) -> object:
    """*message* (text or a mapping) translated to a dict by *translate*; None if it drops
    it, and *message* itself if it is not a JSON object of the shape translated (the reader
    after says what is wrong)."""
    data: object = message
    if isinstance(message, (str, bytes, bytearray)):
        try:
            data = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            return message
    if not isinstance(data, Mapping):
        return message
    try:
        return translate(dict(data))
    except (KeyError, TypeError, ValueError, AttributeError):
        return message


@final
class _Shown:
    """An async iterator over what the bot may see of *inner* (the guard sees everything)."""

    __slots__ = ("_inner", "_shown")

    def __init__(
        self, inner: AsyncIterator[Any], shown: Callable[[object], Awaitable[bool]]
    ) -> None:
        self._inner = inner
        self._shown = shown

    def __aiter__(self) -> _Shown:
        return self

    async def __anext__(self) -> Any:
        while True:
            item = await self._inner.__anext__()
            if await self._shown(item):
                return item
