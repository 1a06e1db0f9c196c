"""A phone connection in another provider's words, seen in Twilio's: a
:class:`~voiceguard.protocol.PhoneDialect` applied to a :class:`~voiceguard.transports.Transport`
(the reference server's phone side, the simulated caller's, or a handler of your own)."""

from __future__ import annotations

import json
from collections import deque
from typing import final

from voiceguard.protocol import PhoneDialect
from voiceguard.protocol._phones import PhoneLine, Translate
from voiceguard.transports import NORMAL_CLOSURE, FrameTransport, Transport

__all__ = ("DialectTransport",)


def _translated(text: str, translate: Translate, stream_sid: str | None = None) -> str | None:
    """*text* translated.

    Text that is not a JSON object passes as it is (the reader after reports it); the text is
    None when the translation drops the message. With *stream_sid*, a translated message
    without a stream id gets it (Telnyx's and Plivo's outbound messages may carry none).
    """
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    try:
        out = translate(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return text  # not of the shape translated: the reader names what is wrong
    if out is None:
        return None
    if stream_sid is not None and not out.get("streamSid"):
        out["streamSid"] = stream_sid
    return json.dumps(out, separators=(",", ":"))


def _stream_of(text: str) -> str | None:
    """The ``streamSid`` of a Twilio-worded ``start``, if *text* is one."""
    if '"start"' not in text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("event") == "start":
        sid = data.get("streamSid")
        return sid if isinstance(sid, str) else None
    return None


@final
class DialectTransport:
    """A phone connection in a provider's dialect, seen in Twilio's words.

    Args:
        inner: The connection to the provider (or, for a simulated caller, to the bridge). For a
            dialect with a :attr:`~voiceguard.protocol.PhoneDialect.line` (Vonage), a
            :class:`~voiceguard.transports.base.FrameTransport`.
        dialect: The provider's dialect.
        caller: Translate for the caller's end (the simulator) instead of the bridge's: the
            caller's messages go out in the provider's words, the bridge's come in in Twilio's,
            with the stream id of the caller's ``start``.

    Raises:
        TypeError: If the dialect's audio is binary and *inner* carries text only.
    """

    __slots__ = (
        "_caller",
        "_frames",
        "_incoming",
        "_inner",
        "_line",
        "_outgoing",
        "_ready",
        "_stream_sid",
    )

    def __init__(self, inner: Transport, dialect: PhoneDialect, *, caller: bool = False) -> None:
        self._inner = inner
        self._caller = caller
        self._incoming = dialect.caller_in if caller else dialect.from_phone
        self._outgoing = dialect.caller_out if caller else dialect.to_phone
        self._stream_sid: str | None = None
        self._line: PhoneLine | None = None
        self._frames: FrameTransport | None = None
        self._ready: deque[str] = deque()  # translated messages not yet received
        if dialect.line is not None:
            if not isinstance(inner, FrameTransport):
                raise TypeError(
                    f"{dialect.title} sends its audio in binary frames: {type(inner).__name__} "
                    "carries text only (use a FrameTransport, e.g. a WebSocketTransport)"
                )
            self._line = dialect.line(caller)
            self._frames = inner

    async def send(self, message: str) -> None:
        """Send a Twilio-worded message in the provider's words."""
        if self._line is not None and self._frames is not None:
            for frame in self._line.outgoing(message):
                if isinstance(frame, str):
                    await self._frames.send(frame)
                else:
                    await self._frames.send_bytes(frame)
            return
        if self._caller and self._stream_sid is None:
            self._stream_sid = _stream_of(message)
        text = _translated(message, self._outgoing)
        if text is not None:
            await self._inner.send(text)

    async def receive(self) -> str:
        """The next message, in Twilio's words (messages with nothing to say are skipped)."""
        if self._line is not None and self._frames is not None:
            while not self._ready:
                frame = await self._frames.receive_frame()
                self._ready.extend(self._line.incoming(frame))
            return self._ready.popleft()
        while True:
            text = _translated(await self._inner.receive(), self._incoming, self._stream_sid)
            if text is not None:
                return text

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the inner connection."""
        await self._inner.aclose(code, reason)

    async def abort(self) -> None:
        """Abort the inner connection."""
        await self._inner.abort()
