"""``CallerSimulator``: a Twilio Media Streams client standing in for Twilio and the person calling.

It plays Twilio's side of a bidirectional ``<Connect><Stream>`` (see the protocol page of the docs):
it sends ``connected`` and ``start`` (with SIDs and custom parameters), then one 20 ms ``media``
frame every 20 ms, ``dtmf`` when a key is pressed, and ``stop`` when the caller hangs up. Audio the
bot sends goes into a playout buffer that plays in real time, 20 ms per frame, exactly as the phone
would; each ``mark`` is echoed once the audio queued before it has played, and a ``clear`` empties
the buffer and echoes every pending mark at once, as Twilio does.

The caller's frames are what a phone line would carry: the caller's scripted speech (a
speech-like signal or audio you give), plus an echo of what the caller is hearing (a delay and an
echo return loss: phone lines have no echo canceller), plus line noise.

Everything the caller received is recorded with its time, and so is what the caller heard and
when: a :class:`CallRecord` answers "was any of the cancelled answer heard after the barge-in?".
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Mapping, Sequence
from typing import Final, TypeAlias, final

import anyio

from voiceguard.protocol import PhoneDialect, phone_dialect
from voiceguard.protocol._dialect import DialectTransport
from voiceguard.sim._caller.call import Call
from voiceguard.sim._caller.records import CallRecord, HeardAudio, MarkEchoed, ReceivedMessage
from voiceguard.sim._caller.script import EchoPath, HangUp, PressDigit, Speak
from voiceguard.transports import Transport, TransportClosed

__all__ = (
    "CallRecord",
    "CallerSimulator",
    "EchoPath",
    "HangUp",
    "HeardAudio",
    "MarkEchoed",
    "PressDigit",
    "ReceivedMessage",
    "ScriptStep",
    "Speak",
)

#: One step of a caller's script.
ScriptStep: TypeAlias = Speak | PressDigit | HangUp

_SID_ALPHABET: Final = string.hexdigits[:16]


@final
class CallerSimulator:
    """A person calling through Twilio: connects to a bot's media stream and plays a script.

    One instance can make several calls (each :meth:`run` is one call, with new SIDs unless
    given).

    Args:
        script: What the caller does, e.g. ``[Speak(at=1.0, duration=1.2), HangUp(at=8.0)]``.
        echo: The line's echo of the bot's voice; None for a perfect line.
        noise_dbfs: Line noise level; None for digital silence between words.
        custom_parameters: ``start.customParameters`` (the TwiML ``<Parameter>`` values).
        account_sid: ``start.accountSid``.
        call_sid: ``start.callSid`` of the first call; None generates one (``CA`` + 32 hex).
        stream_sid: ``streamSid`` of the first call; None generates one (``MZ`` + 32 hex).
        max_duration: The caller hangs up after this many seconds, whatever the script says.
        seed: Seed of the generated SIDs, speech and noise.
        phone: Whose media-stream protocol the call speaks: ``"twilio"`` (the default),
            ``"telnyx"``, ``"plivo"`` or ``"vonage"`` (:data:`~voiceguard.protocol.PHONES`), or a
            dialect of one's own (e.g. a Vonage caller at 16 kHz); the script and the record
            are the same for each.

    Raises:
        ValueError: On an option out of range.

    Example:
        >>> caller = CallerSimulator(script=[Speak(at=0.5, duration=1.0), HangUp(at=4.0)])
        >>> caller.records
        ()
    """

    def __init__(
        self,
        *,
        script: Sequence[ScriptStep] = (),
        echo: EchoPath | None = None,
        noise_dbfs: float | None = -65.0,
        custom_parameters: Mapping[str, str] | None = None,
        account_sid: str = "AC" + "0" * 32,
        call_sid: str | None = None,
        stream_sid: str | None = None,
        max_duration: float = 60.0,
        seed: int = 0,
        phone: str | PhoneDialect = "twilio",
    ) -> None:
        if not (math.isfinite(max_duration) and max_duration > 0):
            raise ValueError(f"max_duration = {max_duration!r}; allowed: a number of seconds > 0")
        self.script = tuple(script)
        self.echo = echo
        self.noise_dbfs = noise_dbfs
        self.custom_parameters: Mapping[str, str] = dict(custom_parameters or {})
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.max_duration = float(max_duration)
        self.seed = seed
        self.phone = phone if isinstance(phone, PhoneDialect) else phone_dialect(phone)
        self._rng = random.Random(seed)
        self._records: list[CallRecord] = []

    @property
    def records(self) -> tuple[CallRecord, ...]:
        """The record of every call made so far."""
        return tuple(self._records)

    def _sid(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choice(_SID_ALPHABET) for _ in range(32))

    async def run(self, transport: Transport) -> CallRecord:
        """Make one call over *transport* (the bot's media stream); returns when it ends.

        The call ends when the caller hangs up (the script, or *max_duration*) or when the bot
        closes the stream.

        Args:
            transport: The caller's end of a connection to the bot's ``/media-stream``.

        Returns:
            What happened in the call.
        """
        first = not self._records
        record = CallRecord(
            call_sid=(self.call_sid if first and self.call_sid else self._sid("CA")),
            stream_sid=(self.stream_sid if first and self.stream_sid else self._sid("MZ")),
        )
        self._records.append(record)
        if not self.phone.is_twilio:  # the caller's messages in its provider's words
            transport = DialectTransport(transport, self.phone, caller=True)
        call = Call(self, transport, record)
        try:
            await call.run()
        except TransportClosed:
            if record.ended_by is None:
                record.ended_by = "bot"
                record.ended_at = call.now()
        finally:
            with anyio.CancelScope(shield=True):
                await transport.aclose()
        return record

    async def call(self, url: str, *, headers: Mapping[str, str] | None = None) -> CallRecord:
        """Make one call to a bot's media stream over a real WebSocket (``ws://`` only).

        Args:
            url: The bot's media stream, e.g. ``ws://127.0.0.1:5050/media-stream``.
            headers: Extra headers for the upgrade request (e.g. ``X-Twilio-Signature``).

        Returns:
            What happened in the call.
        """
        from voiceguard.transports.websocket import connect_websocket  # noqa: PLC0415 - optional

        async with connect_websocket(url, headers=headers) as transport:
            return await self.run(transport)

    def __repr__(self) -> str:
        return f"<CallerSimulator steps={len(self.script)} calls={len(self._records)}>"
