"""One simulated call: the caller's script, Twilio's playout buffer, and the line to the bot."""

from __future__ import annotations

import base64
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any, Final, Protocol, final

import anyio
from typing_extensions import assert_never

from voiceguard.audio import FRAME_BYTES, FRAME_SECONDS
from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol import (
    OutboundClear,
    OutboundMark,
    OutboundMedia,
    PhoneDialect,
    dumps,
    parse_twilio_outbound,
)
from voiceguard.sim._caller.records import CallRecord, HeardAudio, MarkEchoed, ReceivedMessage
from voiceguard.sim._caller.script import EchoPath, HangUp, PressDigit, Speak
from voiceguard.sim.signals import SILENCE_BYTE, attenuate, line_noise, mix, speech_like
from voiceguard.transports import MemoryTransport, Transport, on_grid

__all__ = ("Call", "CallerSettings")

_SILENT_FRAME: Final = bytes([SILENCE_BYTE]) * FRAME_BYTES
_NOISE_SECONDS: Final = 2.0
_LOG: Final = logging.getLogger("voiceguard.sim.caller")


class CallerSettings(Protocol):
    """What a call reads of its caller (a :class:`~voiceguard.sim.caller.CallerSimulator`)."""

    script: tuple[Speak | PressDigit | HangUp, ...]
    echo: EchoPath | None
    noise_dbfs: float | None
    custom_parameters: Mapping[str, str]
    account_sid: str
    max_duration: float
    seed: int
    phone: PhoneDialect


def _receive_ready(transport: Transport) -> str | None:
    if isinstance(transport, MemoryTransport):
        return transport.receive_nowait()
    return None


@final
class Call:
    """One call's state and its single event loop."""

    def __init__(self, caller: CallerSettings, transport: Transport, record: CallRecord) -> None:
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
        """Seconds since the stream started."""
        return anyio.current_time() - self.start

    async def send(self, message: dict[str, Any]) -> None:
        """Send a message to the bot (and note it in the record)."""
        self.record.sent.append((self.now(), str(message["event"])))
        await self.transport.send(dumps(message))

    def next_sequence(self) -> str:
        """The next ``sequenceNumber``."""
        self.sequence += 1
        return str(self.sequence)

    async def run(self) -> None:
        """Play the call until the caller hangs up (the bot closing the stream raises)."""
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
        try:
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
        finally:
            self.note_skipped()

    def note_skipped(self) -> None:
        """Record (and log) the ``after_heard`` steps the call ended without reaching.

        Such a step waits for the bot's audio; when the bot says less than the script expects
        (a shorter greeting), it silently never runs, and the call looks as if the bot had
        ignored the caller. Steps timed with ``at`` are left out: the call simply ended first.
        """
        heard = round(self.heard_bytes / 8000, 2)
        ended = round(self.now(), 1)
        for step in self.pending:
            if step.after_heard is None:
                continue
            match step:
                case Speak():
                    what = "spoke"
                case PressDigit():
                    what = "pressed its key"
                case HangUp():
                    what = "hung up"
                case _:
                    assert_never(step)
            text = (
                f"{type(step).__name__}(after_heard={float(step.after_heard)!r}) never {what}: "
                f"only {heard} s of the bot was heard before the call ended at {ended} s"
            )
            self.record.skipped.append(text)
            _LOG.warning("call %s: %s", self.record.call_sid, text)
        self.pending.clear()

    async def on_message(self, text: str) -> None:
        """Take one message from the bot, as Twilio would."""
        now = self.now()
        try:
            message = parse_twilio_outbound(text, stream_sid=self.record.stream_sid)
        except RemoteProtocolError as exc:
            self.record.received.append(ReceivedMessage(time=now, event="invalid", detail=str(exc)))
            self.record.protocol_errors.append(str(exc))
            return
        match message:
            case OutboundMedia():
                self.record.received.append(
                    ReceivedMessage(time=now, event="media", detail=f"{len(message.audio)} bytes")
                )
                if message.audio:
                    self.queue.append(message.audio)
            case OutboundMark():
                self.record.received.append(
                    ReceivedMessage(time=now, event="mark", detail=message.name)
                )
                self.queue.append(message.name)
            case OutboundClear():
                self.record.received.append(ReceivedMessage(time=now, event="clear", detail=""))
                self.record.clears.append(now)
                names = [item for item in self.queue if isinstance(item, str)]
                self.queue.clear()
                if self.caller.phone.marks_after_clear:  # Plivo answers no cleared checkpoint
                    for name in names:
                        await self.echo_mark(name, cleared=True)
            case _:
                assert_never(message)

    async def echo_mark(self, name: str, *, cleared: bool) -> None:
        """Echo a mark back to the bot."""
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
        """One 20 ms frame at *t*: the script, the playout, and the frame sent to the bot."""
        caller = self.caller
        # 1. The script.
        for step in list(self.pending):
            due = (step.at is not None and t >= step.at - 1e-9) or (
                step.after_heard is not None and self.heard_bytes >= step.after_heard * 8000
            )
            if not due:
                continue
            self.pending.remove(step)
            match step:
                case HangUp():
                    await self.hang_up()
                    return
                case PressDigit():
                    await self.send(
                        {
                            "event": "dtmf",
                            "streamSid": self.record.stream_sid,
                            "sequenceNumber": self.next_sequence(),
                            "dtmf": {"track": "inbound_track", "digit": step.digit},
                        }
                    )
                case Speak():
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
                case _:
                    assert_never(step)
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
        """The caller hangs up: ``stop``, then the stream closes."""
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
