"""The phone's messages of a started call: one reader from the model handshake to the call's end.

:class:`PhoneInput` reads Twilio from the moment the stream started, while the model's session
is still being opened, so a ``stop`` or a closed socket during the handshake ends the call at
once instead of after the handshake (what arrives meanwhile is kept, up to about 5 s of audio).
It drops and counts what a call must not act on: media,
marks and DTMF of another stream (``streamSid`` not the call's), and caller audio arriving faster
than real time by more than a burst (a flood). What passes is kept, in order, for
:meth:`PhoneInput.next` until the call runs; from :meth:`PhoneInput.deliver` on, the reader hands
each message straight to the call (no queue, no second task), so a slow call holds the socket
back rather than growing a queue.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final, final

import anyio

from voiceguard.audio import FRAME_BYTES, FRAME_SECONDS
from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol import StreamStarted, StreamStopped, dumps, parse_twilio_message
from voiceguard.protocol.twilio import (
    Connected,
    MarkPlayed,
    MediaReceived,
    TwilioEvent,
    mark_message,
    media_message,
)
from voiceguard.transports import Transport, TransportClosed

logger = logging.getLogger("voiceguard.handler")

__all__ = (
    "PhoneChecks",
    "PhoneConsumer",
    "PhoneInput",
    "await_start",
    "default_apology",
    "parse_phone_message",
)

#: Takes one phone message of a running call (its text and event); False once the call is over.
PhoneConsumer = Callable[[str, TwilioEvent], Awaitable[bool]]

#: Messages read ahead while the model's session opens (about 5 s of audio).
_READ_AHEAD: Final = 256
#: The mark sent after a clip played by :meth:`PhoneInput.play`: its echo says it was heard.
_PLAYED_MARK: Final = "voiceguard-played"


@final
@dataclass(frozen=True, slots=True)
class PhoneChecks:
    """How the handler reads one phone message and counts a refused one.

    Attributes:
        parse: Parses one message; None for a malformed one (already counted).
        count_bad: Counts and logs a refused message: ``count_bad("twilio", what)``.
        too_many_bad: True (and the call ended) once too many were refused.
    """

    parse: Callable[[str], TwilioEvent | None]
    count_bad: Callable[[str, str], None]
    too_many_bad: Callable[[], bool]


async def await_start(
    phone: Transport, *, timeout: float, checks: PhoneChecks
) -> tuple[StreamStarted, str] | str:
    """Read Twilio until ``start``; nothing of the call is opened before it.

    Returns:
        The start and its text; else why there was none (empty when *too_many_bad* ended the
        call, with its own reason).
    """
    with anyio.move_on_after(timeout):
        while True:
            try:
                text = await phone.receive()
            except TransportClosed:
                return "phone closed before start"
            event = checks.parse(text)
            if isinstance(event, StreamStarted):
                return event, text
            if isinstance(event, StreamStopped):
                return "twilio stop before start"
            if isinstance(event, MediaReceived):
                checks.count_bad("twilio", "media before start")
            elif event is not None and not isinstance(event, Connected):
                logger.debug("ignored before start: %s", type(event).__name__)
            if checks.too_many_bad():
                return ""
    return f"no start within {timeout:g} s"


@final
class PhoneInput:
    """Reads, checks and queues the phone's messages of one started call.

    Args:
        phone: The Twilio connection.
        start: The stream's ``start``: its ``streamSid`` is the only one accepted.
        checks: How a message is parsed and a refused one counted.
        max_audio_burst: Seconds of audio the caller may be ahead of real time.
        clock: The event loop's clock (:func:`anyio.current_time` or the same, looked up once).
    """

    def __init__(
        self,
        phone: Transport,
        start: StreamStarted,
        *,
        checks: PhoneChecks,
        max_audio_burst: float,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self._phone = phone
        self._clock = clock
        self._stream_sid = start.stream_sid
        self._parse = checks.parse
        self._count_bad = checks.count_bad
        self._too_many_bad = checks.too_many_bad
        self._burst = max_audio_burst
        # Read ahead only while the model's session opens; after that each message waits for
        # the call to take the one before, so a slow model holds the phone socket back.
        self._send, self._receive = anyio.create_memory_object_stream[tuple[str, TwilioEvent]](
            _READ_AHEAD
        )
        self._taken = anyio.Event()
        self._opened = False
        self._consumer: PhoneConsumer | None = None
        self._began: float | None = None
        self._audio = 0.0  # seconds of caller audio accepted
        #: Why the phone side ended (``"phone closed"``, ``"twilio stop"``), once it did.
        self.gone: str | None = None
        #: Called once when the phone side ends (a stop, a closed socket, too many bad messages).
        self.on_gone: Callable[[], None] | None = None
        #: Messages dropped, by why (``"another stream"``, ``"audio flood"``).
        self.dropped: dict[str, int] = {}

    async def pump(self) -> None:
        """Read the phone until it ends; run as a task for the whole call."""
        with self._send:
            while True:
                try:
                    text = await self._phone.receive()
                except TransportClosed:
                    self._gone("phone closed")
                    return
                event = self._parse(text)
                if isinstance(event, StreamStarted):
                    self._count_bad("twilio", "a second start")
                    event = None
                if event is None or not self._accept(event):
                    if self._too_many_bad():
                        self._gone("too many malformed messages")
                        return
                    continue
                consumer = self._consumer
                if consumer is None:
                    try:
                        while (
                            self._opened
                            and self._consumer is None
                            and self._send.statistics().current_buffer_used
                        ):
                            self._taken = anyio.Event()
                            await self._taken.wait()
                        consumer = self._consumer
                        if consumer is None:
                            await self._send.send((text, event))
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        return  # the call is over
                more = consumer is None or await consumer(text, event)
                if isinstance(event, StreamStopped):
                    self._gone("twilio stop")
                    return
                if not more:
                    return  # the call is over

    def opened(self) -> None:
        """The model's session is open: no more reading ahead of the call."""
        self._opened = True

    async def deliver(self, consumer: PhoneConsumer) -> None:
        """Hand the call every message from now on: first what was read ahead, in order, then
        each new one as it is read (in the reader's task, with no queue between).

        Returns once the read-ahead is delivered, or *consumer* said the call is over.
        """
        while True:
            try:
                text, event = self._receive.receive_nowait()
            except anyio.WouldBlock:
                break
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            self._taken.set()
            if not await consumer(text, event):
                return
        # No await between the queue found empty and the consumer set: the reader cannot slip
        # a message in between.
        self._consumer = consumer
        self._taken.set()

    async def next(self) -> tuple[str, TwilioEvent] | None:
        """The next message and its event, or None once the phone side ended (before
        :meth:`deliver` only)."""
        try:
            message = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None
        self._taken.set()
        return message

    async def play(self, stream_sid: str, audio: bytes) -> None:
        """Play *audio* (8 kHz mu-law) to the caller and wait until it was heard (its mark came
        back), the phone ended, or the clip's length and a second passed (before :meth:`deliver`
        only)."""
        if self.gone is not None or self._consumer is not None:
            return
        chunk = 50 * FRAME_BYTES  # a second of audio per message
        with anyio.move_on_after(len(audio) / FRAME_BYTES * FRAME_SECONDS + 1.0):
            try:
                for at in range(0, len(audio), chunk):
                    payload = base64.b64encode(audio[at : at + chunk]).decode("ascii")
                    await self._phone.send(dumps(media_message(stream_sid, payload)))
                await self._phone.send(dumps(mark_message(stream_sid, _PLAYED_MARK)))
            except TransportClosed:
                return
            while (message := await self.next()) is not None:
                event = message[1]
                if isinstance(event, MarkPlayed) and event.name == _PLAYED_MARK:
                    return

    def _accept(self, event: TwilioEvent) -> bool:
        sid = getattr(event, "stream_sid", self._stream_sid)
        if sid != self._stream_sid:
            shown = sid if len(sid) <= 40 else sid[:40] + "..."
            what = f"{type(event).__name__} of stream {shown!r}, not this one"
            self._drop("another stream", what)
            return False
        if isinstance(event, MediaReceived):
            now = self._clock()
            if self._began is None:
                self._began = now - FRAME_SECONDS
            seconds = len(event.audio) / FRAME_BYTES * FRAME_SECONDS
            if self._audio + seconds > now - self._began + self._burst:
                ahead = self._audio - (now - self._began)
                self._drop("audio flood", f"media {ahead:.1f} s ahead of real time (a flood)")
                return False
            self._audio += seconds
        return True

    def _drop(self, why: str, what: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1
        self._count_bad("twilio", what)

    def _gone(self, why: str) -> None:
        if self.gone is None:
            self.gone = why
            if self.on_gone is not None:
                self.on_gone()

    def close(self) -> None:
        """Stop queueing (the call is over)."""
        self._receive.close()


def parse_phone_message(text: str) -> TwilioEvent:
    """Parse one Twilio message, and check that a media frame is whole 20 ms frames of audio.

    Raises:
        RemoteProtocolError: Naming the message, the field and the problem.
    """
    event = parse_twilio_message(text)
    if isinstance(event, MediaReceived) and (not event.audio or len(event.audio) % FRAME_BYTES):
        # Twilio sends whole 20 ms frames; the calibration gate measures nothing else.
        raise RemoteProtocolError(
            peer="twilio",
            message_type="media",
            field="media.payload",
            problem=f"{len(event.audio)} bytes of audio; "
            f"expected a positive multiple of {FRAME_BYTES} (20 ms frames)",
        )
    return event


@cache
def default_apology() -> bytes:
    """The packaged apology: "Sorry, we cannot take your call right now. Please try again
    later." (espeak-ng, en-us, 8 kHz mu-law, 4.4 s)."""
    return files("voiceguard.runtime").joinpath("apology.ulaw").read_bytes()
