"""``CallerSimulator``: a Twilio Media Streams client standing in for Twilio and the person calling.

It plays Twilio's side of a bidirectional ``<Connect><Stream>`` (PROTOCOLS.md section 6): it sends
``connected`` and ``start`` (with SIDs and custom parameters), then one 20 ms ``media`` frame every
20 ms, ``dtmf`` when a key is pressed, and ``stop`` when the caller hangs up. Audio the bot sends
goes into a playout buffer that plays in real time, 20 ms per frame, exactly as the phone would;
each ``mark`` is echoed once the audio queued before it has played, and a ``clear`` empties the
buffer and echoes every pending mark at once, as Twilio does.

The caller's frames are what a phone line would carry: the caller's scripted speech (a
speech-like signal or audio you give), plus an echo of what the caller is hearing (a delay and an
echo return loss: phone lines have no echo canceller), plus line noise.

Everything the caller received is recorded with its time, and so is what the caller heard and
when: a :class:`CallRecord` answers "was any of the cancelled answer heard after the barge-in?".
"""

from __future__ import annotations

import base64
import json
import math
import random
import string
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, final

import anyio

from voiceguard.audio import FRAME_BYTES, FRAME_SECONDS
from voiceguard.protocol import dumps
from voiceguard.protocol._common import b64decode
from voiceguard.sim.signals import SILENCE_BYTE, attenuate, line_noise, mix, speech_like
from voiceguard.transports import MemoryTransport, Transport, TransportClosed, on_grid

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

_SILENT_FRAME: Final = bytes([SILENCE_BYTE]) * FRAME_BYTES
_SID_ALPHABET: Final = string.hexdigits[:16]
_NOISE_SECONDS: Final = 2.0


# ============================================================================================
# Script


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Speak:
    """The caller says something.

    It starts at :attr:`at` seconds after the stream started, or once the caller has heard
    :attr:`after_heard` seconds of the bot's audio in total (whichever is given).

    Attributes:
        at: Start time, in seconds since ``start``.
        after_heard: Start once this many seconds of the bot's audio have played.
        duration: Seconds of speech-like signal (ignored when :attr:`audio` is given).
        level_dbfs: Level of the speech-like signal.
        audio: The exact audio to say, as 8 kHz mu-law; None generates a speech-like signal.
        text: What is said, for logs and readers of the scenario (the simulators do not
            recognise speech).
    """

    at: float | None = None
    after_heard: float | None = None
    duration: float = 1.5
    level_dbfs: float = -20.0
    audio: bytes | None = field(default=None, repr=False)
    text: str = ""

    def __post_init__(self) -> None:
        _check_trigger(self.at, self.after_heard)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PressDigit:
    """The caller presses a key (a Twilio ``dtmf`` message).

    Attributes:
        at: Time, in seconds since ``start``.
        after_heard: Or once this many seconds of the bot's audio have played.
        digit: ``0``-``9``, ``*`` or ``#``.
    """

    at: float | None = None
    after_heard: float | None = None
    digit: str = "1"

    def __post_init__(self) -> None:
        _check_trigger(self.at, self.after_heard)
        if self.digit not in tuple("0123456789*#"):
            raise ValueError(f"digit = {self.digit!r}; allowed: one of 0-9, * or #")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HangUp:
    """The caller hangs up: Twilio sends ``stop`` and closes the stream.

    Attributes:
        at: Time, in seconds since ``start``.
        after_heard: Or once this many seconds of the bot's audio have played.
    """

    at: float | None = None
    after_heard: float | None = None

    def __post_init__(self) -> None:
        _check_trigger(self.at, self.after_heard)


#: One step of a caller's script.
ScriptStep: TypeAlias = Speak | PressDigit | HangUp


def _check_trigger(at: float | None, after_heard: float | None) -> None:
    if (at is None) == (after_heard is None):
        raise ValueError(f"at = {at!r}, after_heard = {after_heard!r}; allowed: exactly one given")
    value = at if at is not None else after_heard
    if value is None or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"trigger time {value!r}; allowed: a finite number of seconds >= 0")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EchoPath:
    """The phone line's echo of the bot's voice back into the caller's audio.

    Attributes:
        delay: Seconds from the bot's audio playing to its echo in the caller's frames
            (rounded to whole 20 ms frames).
        return_loss_db: Echo return loss: how many dB quieter the echo is than the audio played
            (6 to 12 dB is a bad line or a speakerphone; 20 to 30 dB a good handset).
    """

    delay: float = 0.1
    return_loss_db: float = 12.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay) and 0 <= self.delay <= 2.0):
            raise ValueError(f"delay = {self.delay!r}; allowed: 0 <= delay <= 2.0 seconds")
        if not (math.isfinite(self.return_loss_db) and self.return_loss_db >= 0):
            raise ValueError(f"return_loss_db = {self.return_loss_db!r}; allowed: a number >= 0")

    @property
    def frames(self) -> int:
        """The delay in whole 20 ms frames."""
        return round(self.delay / FRAME_SECONDS)


# ============================================================================================
# Record


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedMessage:
    """A message the caller received from the bot (audio replaced by its length).

    Attributes:
        time: Seconds since ``start``.
        event: ``media``, ``mark``, ``clear``, or ``invalid`` for a message Twilio would refuse.
        detail: The mark's name, the number of audio bytes, or what was wrong.
    """

    time: float
    event: str
    detail: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MarkEchoed:
    """A mark the caller (as Twilio) echoed back.

    Attributes:
        time: Seconds since ``start``.
        name: The mark's name.
        cleared: True if it was echoed because of a ``clear`` (its audio did not play).
    """

    time: float
    name: str
    cleared: bool


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HeardAudio:
    """20 ms of the bot's audio that the caller heard.

    Attributes:
        time: Seconds since ``start`` when it started playing.
        audio: The mu-law audio (shorter than a frame when the buffer ran dry).
    """

    time: float
    audio: bytes = field(repr=False)


@final
class CallRecord:
    """What happened in one simulated call, from the caller's side; times are seconds since
    ``start``.

    Attributes:
        call_sid: The call's SID.
        stream_sid: The stream's SID.
        received: Every message received from the bot, in order.
        sent: ``(time, event)`` of every message sent to the bot (media included).
        marks: Every mark echoed.
        heard: The bot's audio as played, frame by frame.
        clears: Times of each ``clear`` received.
        protocol_errors: Messages Twilio would have refused, with what was wrong.
        ended_by: ``"caller"`` (hung up), ``"bot"`` (closed the stream), or None while running.
        ended_at: When the call ended, or None while running.
        spoke: ``(start, end)`` of each utterance of the caller.
        started_at: ``anyio.current_time()`` at ``start`` (time 0 of this record), to compare
            with the model simulator's times.
    """

    __slots__ = (
        "call_sid",
        "clears",
        "ended_at",
        "ended_by",
        "heard",
        "marks",
        "protocol_errors",
        "received",
        "sent",
        "spoke",
        "started_at",
        "stream_sid",
    )

    def __init__(self, *, call_sid: str, stream_sid: str) -> None:
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.received: list[ReceivedMessage] = []
        self.sent: list[tuple[float, str]] = []
        self.marks: list[MarkEchoed] = []
        self.heard: list[HeardAudio] = []
        self.clears: list[float] = []
        self.protocol_errors: list[str] = []
        self.ended_by: Literal["caller", "bot"] | None = None
        self.ended_at: float | None = None
        self.spoke: list[tuple[float, float]] = []
        self.started_at = 0.0

    @property
    def heard_seconds(self) -> float:
        """Seconds of the bot's audio the caller heard in total."""
        return sum(len(h.audio) for h in self.heard) / 8000

    def heard_between(self, start: float, end: float = math.inf) -> float:
        """Seconds of the bot's audio heard in frames that started within ``[start, end)``."""
        return sum(len(h.audio) for h in self.heard if start <= h.time < end) / 8000

    def heard_audio(self) -> bytes:
        """Everything heard, concatenated (gaps left out)."""
        return b"".join(h.audio for h in self.heard)

    def played_marks(self) -> list[str]:
        """Names of the marks echoed because their audio played (not flushed by a clear)."""
        return [m.name for m in self.marks if not m.cleared]

    def __repr__(self) -> str:
        return (
            f"<CallRecord {self.call_sid} heard={self.heard_seconds:.2f}s "
            f"marks={len(self.marks)} clears={len(self.clears)} ended_by={self.ended_by}>"
        )


# ============================================================================================
# Outbound (bot -> Twilio) messages


@dataclass(frozen=True, slots=True)
class _Media:
    audio: bytes


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str


@dataclass(frozen=True, slots=True)
class _Clear:
    pass


class _Refused(Exception):
    """A message Twilio would refuse (it logs an error and carries on)."""


def _parse_outbound(text: str, stream_sid: str) -> _Media | _Mark | _Clear:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise _Refused(f"not JSON (length {len(text)})") from None
    if not isinstance(data, dict):
        raise _Refused("not a JSON object")
    event = data.get("event")
    if event not in ("media", "mark", "clear"):
        raise _Refused(f"unknown event {event!r}"[:80])
    if data.get("streamSid") != stream_sid:
        raise _Refused(f"{event}: streamSid does not match the stream")
    if event == "clear":
        return _Clear()
    body = data.get(event)
    if not isinstance(body, dict):
        raise _Refused(f"{event}: field {event!r} missing or not an object")
    if event == "mark":
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise _Refused("mark: field 'mark.name' missing or not a string")
        return _Mark(name)
    payload = body.get("payload")
    if not isinstance(payload, str):
        raise _Refused("media: field 'media.payload' missing or not a string")
    try:
        return _Media(b64decode(payload))
    except ValueError:
        raise _Refused(f"media: payload is not valid base64 (length {len(payload)})") from None


# ============================================================================================
# The simulator


def _receive_ready(transport: Transport) -> str | None:
    if isinstance(transport, MemoryTransport):
        return transport.receive_nowait()
    return None


class _Call:
    """One call's state and its single event loop."""

    def __init__(self, caller: CallerSimulator, transport: Transport, record: CallRecord) -> None:
        self.caller = caller
        self.transport = transport
        self.record = record
        self.queue: deque[bytes | str] = deque()  # audio chunks and mark names, FIFO
        self.played: deque[bytes] = deque(
            maxlen=max(1, caller.echo.frames + 1 if caller.echo else 1)
        )
        self.sequence = 0
        self.chunk = 0
        self.start = 0.0
        self.heard_bytes = 0
        self.pending = list(caller.script)
        self.speaking: bytes = b""
        self.speech_pos = 0
        self.noise = (
            line_noise(_NOISE_SECONDS, level_dbfs=caller.noise_dbfs, seed=caller.seed)
            if caller.noise_dbfs is not None
            else b""
        )
        self.utterances = 0
        self.done = False

    def now(self) -> float:
        return anyio.current_time() - self.start

    async def send(self, message: dict[str, Any]) -> None:
        self.record.sent.append((self.now(), str(message["event"])))
        await self.transport.send(dumps(message))

    def next_sequence(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    async def run(self) -> None:
        caller = self.caller
        record = self.record
        self.start = anyio.current_time()
        record.started_at = self.start
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send(
            {
                "event": "start",
                "sequenceNumber": self.next_sequence(),
                "start": {
                    "accountSid": caller.account_sid,
                    "streamSid": record.stream_sid,
                    "callSid": record.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": dict(caller.custom_parameters),
                    "mediaFormat": {
                        "encoding": "audio/x-mulaw",
                        "sampleRate": 8000,
                        "channels": 1,
                    },
                },
                "streamSid": record.stream_sid,
            }
        )
        tick = 0
        while not self.done:
            # Messages that have arrived go before a tick due at the same instant (see
            # MemoryTransport.receive_nowait): virtual-time runs are then reproducible.
            while (ready := _receive_ready(self.transport)) is not None:
                await self.on_message(ready)
            next_tick = on_grid(self.start + tick * FRAME_SECONDS)
            if anyio.current_time() >= next_tick:
                await self.tick(tick * FRAME_SECONDS)
                tick += 1
                continue
            with anyio.CancelScope(deadline=next_tick):
                text = await self.transport.receive()
                await self.on_message(text)

    async def on_message(self, text: str) -> None:
        now = self.now()
        try:
            message = _parse_outbound(text, self.record.stream_sid)
        except _Refused as exc:
            self.record.received.append(ReceivedMessage(time=now, event="invalid", detail=str(exc)))
            self.record.protocol_errors.append(str(exc))
            return
        if isinstance(message, _Media):
            self.record.received.append(
                ReceivedMessage(time=now, event="media", detail=f"{len(message.audio)} bytes")
            )
            if message.audio:
                self.queue.append(message.audio)
        elif isinstance(message, _Mark):
            self.record.received.append(
                ReceivedMessage(time=now, event="mark", detail=message.name)
            )
            self.queue.append(message.name)
        else:
            self.record.received.append(ReceivedMessage(time=now, event="clear", detail=""))
            self.record.clears.append(now)
            names = [item for item in self.queue if isinstance(item, str)]
            self.queue.clear()
            for name in names:
                await self.echo_mark(name, cleared=True)

    async def echo_mark(self, name: str, *, cleared: bool) -> None:
        self.record.marks.append(MarkEchoed(time=self.now(), name=name, cleared=cleared))
        await self.send(
            {
                "event": "mark",
                "sequenceNumber": self.next_sequence(),
                "streamSid": self.record.stream_sid,
                "mark": {"name": name},
            }
        )

    def play_frame(self) -> bytes:
        """Take up to 20 ms of audio from the playout buffer (marks passed stay for next time)."""
        out = bytearray()
        while self.queue and len(out) < FRAME_BYTES:
            head = self.queue[0]
            if isinstance(head, str):
                if out:
                    break  # the mark is reached when this frame has played
                return b""
            take = FRAME_BYTES - len(out)
            out += head[:take]
            if len(head) > take:
                self.queue[0] = head[take:]
            else:
                self.queue.popleft()
        return bytes(out)

    async def tick(self, t: float) -> None:
        caller = self.caller
        # 1. The script.
        for step in list(self.pending):
            due = (step.at is not None and t >= step.at - 1e-9) or (
                step.after_heard is not None and self.heard_bytes >= step.after_heard * 8000
            )
            if not due:
                continue
            self.pending.remove(step)
            if isinstance(step, HangUp):
                await self.hang_up()
                return
            if isinstance(step, PressDigit):
                await self.send(
                    {
                        "event": "dtmf",
                        "streamSid": self.record.stream_sid,
                        "sequenceNumber": self.next_sequence(),
                        "dtmf": {"track": "inbound_track", "digit": step.digit},
                    }
                )
            else:
                audio = step.audio
                if audio is None:
                    audio = speech_like(
                        step.duration,
                        level_dbfs=step.level_dbfs,
                        seed=caller.seed * 1009 + 17 + self.utterances,
                    )
                self.utterances += 1
                self.speaking = audio
                self.speech_pos = 0
                self.record.spoke.append((t, t + len(audio) / 8000))
        if t >= caller.max_duration:
            await self.hang_up()
            return
        # 2. Playout: marks whose audio has played are echoed, then 20 ms more plays.
        while self.queue and isinstance(self.queue[0], str):
            head = self.queue.popleft()
            assert isinstance(head, str)
            await self.echo_mark(head, cleared=False)
        frame = self.play_frame()
        if frame:
            self.record.heard.append(HeardAudio(time=t, audio=frame))
            self.heard_bytes += len(frame)
        self.played.append(frame + _SILENT_FRAME[len(frame) :])
        # 3. What the line carries to the bot: speech + echo + noise.
        parts: list[bytes] = []
        if self.speech_pos < len(self.speaking):
            piece = self.speaking[self.speech_pos : self.speech_pos + FRAME_BYTES]
            self.speech_pos += FRAME_BYTES
            parts.append(piece + _SILENT_FRAME[len(piece) :])
        echo = caller.echo
        if echo is not None and len(self.played) > echo.frames:
            delayed = self.played[-1 - echo.frames]
            if delayed != _SILENT_FRAME:
                parts.append(attenuate(delayed, echo.return_loss_db))
        if self.noise:
            offset = (self.chunk * FRAME_BYTES) % len(self.noise)
            parts.append(self.noise[offset : offset + FRAME_BYTES])
        out = mix(*parts) if len(parts) > 1 else (parts[0] if parts else _SILENT_FRAME)
        self.chunk += 1
        await self.send(
            {
                "event": "media",
                "sequenceNumber": self.next_sequence(),
                "media": {
                    "track": "inbound",
                    "chunk": str(self.chunk),
                    "timestamp": str(round(t * 1000)),
                    "payload": base64.b64encode(out).decode("ascii"),
                },
                "streamSid": self.record.stream_sid,
            }
        )

    async def hang_up(self) -> None:
        await self.send(
            {
                "event": "stop",
                "sequenceNumber": self.next_sequence(),
                "streamSid": self.record.stream_sid,
                "stop": {"accountSid": self.caller.account_sid, "callSid": self.record.call_sid},
            }
        )
        self.record.ended_by = "caller"
        self.record.ended_at = self.now()
        self.done = True
        await self.transport.aclose()


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
        call = _Call(self, transport, record)
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
        from voiceguard.transports.websocket import connect_websocket  # noqa: PLC0415 - optional dep

        async with connect_websocket(url, headers=headers) as transport:
            return await self.run(transport)

    def __repr__(self) -> str:
        return f"<CallerSimulator steps={len(self.script)} calls={len(self._records)}>"
