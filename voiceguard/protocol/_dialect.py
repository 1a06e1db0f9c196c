"""A phone connection in another provider's words, seen in Twilio's: a
:class:`~voiceguard.protocol.PhoneDialect` applied to a :class:`~voiceguard.transports.Transport`
(the reference server's phone side, the simulated caller's, or a handler of your own)."""

from __future__ import annotations

import json
from typing import final

from voiceguard.protocol import PhoneDialect
from voiceguard.protocol._phones import Translate
from voiceguard.transports import NORMAL_CLOSURE, Transport

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
        inner: The connection to the provider (or, for a simulated caller, to the bridge).
        dialect: The provider's dialect.
        caller: Translate for the caller's end (the simulator) instead of the bridge's: the
            caller's messages go out in the provider's words, the bridge's come in in Twilio's,
            with the stream id of the caller's ``start``.
    """

    __slots__ = ("_caller", "_incoming", "_inner", "_outgoing", "_stream_sid")

    def __init__(self, inner: Transport, dialect: PhoneDialect, *, caller: bool = False) -> None:
        self._inner = inner
        self._caller = caller
        self._incoming = dialect.caller_in if caller else dialect.from_phone
        self._outgoing = dialect.caller_out if caller else dialect.to_phone
        self._stream_sid: str | None = None

    async def send(self, message: str) -> None:
        """Send a Twilio-worded message in the provider's words."""
        if self._caller and self._stream_sid is None:
            self._stream_sid = _stream_of(message)
        text = _translated(message, self._outgoing)
        if text is not None:
            await self._inner.send(text)

    async def receive(self) -> str:
        """The next message, in Twilio's words (messages with nothing to say are skipped)."""
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
