"""``RealtimeSimulator``: a local, protocol-faithful stand-in for the OpenAI Realtime server.

It speaks the Realtime WebSocket protocol (GA event names; beta names as an option) over a real
WebSocket on 127.0.0.1 or over an in-memory :class:`~voiceguard.transports.base.Transport`, and
keeps the server's rules strictly (PROTOCOLS.md sections 2 to 5):

* ``session.created`` on connect; ``session.update`` is a partial update answered by
  ``session.updated`` with the whole merged configuration.
* An energy VAD (:class:`~voiceguard.sim.vad.EnergyVad`) listens to the appended audio and emits
  ``input_audio_buffer.speech_started`` / ``speech_stopped`` / ``committed`` with
  ``audio_start_ms`` / ``audio_end_ms`` counted in ms of all audio appended this session. With
  ``interrupt_response`` on, a speech start cancels the active response (``response.done`` with
  ``status: "cancelled"``, ``reason: "turn_detected"``); with ``create_response`` on, a speech stop
  creates a response.
* Responses: ``response.created``, the output item, audio deltas generated faster than real time,
  transcript deltas, function calls, and ``response.done`` with the right ``status`` and
  ``status_details.reason``.
* Strict errors: ``response_cancel_not_active``, ``conversation_already_has_active_response``,
  truncation beyond the audio, unknown items, malformed client events (``invalid_request_error``);
  the session stays open after each, as on the real server.
* Scripting and faults: what the model says, function calls (e.g. ``end_call``), lost and stalled
  responses, a socket dropped mid-response, and delayed, duplicated or dropped server events.

Time comes from anyio only, so the same code runs in real time over sockets and in virtual time
(trio's ``MockClock``) over in-memory transports, where a scenario gives the same event log on
every run.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import math
import random
import string
from collections import Counter
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, final

import anyio
import anyio.abc

from voiceguard.audio import FRAME_BYTES
from voiceguard.protocol import PCM24K, PCMA, PCMU, AudioFormat, dumps
from voiceguard.protocol.client import (
    AudioAppend,
    AudioClear,
    AudioCommit,
    ClientEvent,
    ClientEventError,
    ItemCreate,
    ItemDelete,
    ItemRetrieve,
    ItemTruncate,
    OutputAudioClear,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    parse_client_event,
)
from voiceguard.sim._codec import from_ulaw, to_ulaw
from voiceguard.sim.signals import speech_like
from voiceguard.sim.vad import EnergyVad, VadSpeechStarted
from voiceguard.transports import (
    MemoryTransport,
    Transport,
    TransportClosed,
    memory_pair,
    on_grid,
)

__all__ = (
    "ConnectionRecord",
    "EmittedError",
    "EventFault",
    "FunctionCall",
    "LoggedEvent",
    "RealtimeSimulator",
    "RealtimeSimulatorStatistics",
    "Reply",
    "ReplySource",
    "SimulatorAddress",
)

_LOG: Final = logging.getLogger("voiceguard.sim.realtime")
_ID_ALPHABET: Final = string.ascii_letters + string.digits
_BETA_NAMES: Final[Mapping[str, str]] = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}
#: Paths the WebSocket server accepts (the SDK appends ``/realtime`` to its base URL).
REALTIME_PATHS: Final = ("/v1/realtime", "/realtime")
_VAD_TYPES: Final = ("server_vad", "semantic_vad")
_FORMATS: Final[Mapping[str, AudioFormat]] = {
    "audio/pcmu": PCMU,
    "audio/pcma": PCMA,
    "audio/pcm": PCM24K,
    "g711_ulaw": PCMU,
    "g711_alaw": PCMA,
    "pcm16": PCM24K,
}
_COMMIT_MIN_MS: Final = 100
_CHARS_PER_SECOND: Final = 15.0

# ============================================================================================
# Scripting


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionCall:
    """A function call the simulated model makes at the end of a response.

    Attributes:
        name: The function's name, e.g. ``"end_call"``.
        arguments: The JSON arguments string.
    """

    name: str
    arguments: str = "{}"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What the simulated model does for one response.

    The default is a short spoken answer. Set :attr:`text` and :attr:`duration` (or
    :attr:`audio`) to change what is said, :attr:`function_call` to call a tool after speaking,
    and the fault fields to make the response misbehave.

    Attributes:
        text: The transcript of what the model says; empty with :attr:`duration` 0 for a
            response without a message (e.g. a bare function call).
        duration: Seconds of speech-like audio to generate; None derives it from the text
            (about 15 characters a second, at least 0.5 s). Ignored when :attr:`audio` is given.
        audio: The exact audio to send, as 8 kHz mu-law (converted to the session's output
            format); None generates a speech-like signal.
        function_call: A function call made after the message (e.g. ``end_call`` after a
            goodbye).
        lost: The ``response.create`` vanishes: no ``response.created``, no error, nothing
            active (a lost request, for watchdog tests).
        stall: The response starts (``response.created``) and then sends nothing until it is
            cancelled.
        drop_connection_after: Drop the socket (no close frame) after this many seconds of audio
            have been sent.
        status: The final ``response.done`` status when the response runs to its end:
            ``completed``, or ``incomplete`` (``reason: "max_output_tokens"``) or ``failed``.
    """

    text: str = "Sure, I can help you with that."
    duration: float | None = None
    audio: bytes | None = field(default=None, repr=False)
    function_call: FunctionCall | None = None
    lost: bool = False
    stall: bool = False
    drop_connection_after: float | None = None
    status: Literal["completed", "incomplete", "failed"] = "completed"

    def audio_seconds(self) -> float:
        """Seconds of audio this reply speaks."""
        if self.audio is not None:
            return len(self.audio) / 8000
        if self.duration is not None:
            return max(0.0, self.duration)
        if not self.text:
            return 0.0
        return max(0.5, len(self.text) / _CHARS_PER_SECOND)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EventFault:
    """Tamper with the server events of one type on their way to the client.

    Delaying an event past the ones after it reorders them (e.g. delay ``response.done`` by
    0.2 s and a ``speech_started`` sent meanwhile overtakes it).

    Attributes:
        event_type: The GA event type, e.g. ``"response.done"`` (matches the beta alias too).
        action: ``"delay"``, ``"duplicate"`` (sent twice in a row) or ``"drop"`` (never sent).
        seconds: The delay, for ``"delay"``.
        occurrences: Which occurrences on a connection are affected, counting from 1; None
            affects all.
    """

    event_type: str
    action: Literal["delay", "duplicate", "drop"]
    seconds: float = 0.0
    occurrences: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.action not in ("delay", "duplicate", "drop"):
            raise ValueError(f"action = {self.action!r}; allowed: 'delay', 'duplicate' or 'drop'")
        if not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise ValueError(f"seconds = {self.seconds!r}; allowed: a finite number >= 0")


#: What the model says on a connection, as replies in order or a function of the response number.
ReplySource: TypeAlias = Sequence[Reply] | Callable[[int], Reply]

# ============================================================================================
# Records


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedEvent:
    """One event the simulator received or sent, with audio replaced by its length.

    Attributes:
        time: ``anyio.current_time()`` when it was received or sent.
        direction: ``"received"`` (from the client) or ``"sent"`` (to the client).
        type: The event's ``type``.
        event: The event, with base64 audio replaced by ``"<N bytes>"``.
    """

    time: float
    direction: Literal["received", "sent"]
    type: str
    event: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EmittedError:
    """A protocol ``error`` event the simulator sent.

    Attributes:
        time: When it was emitted.
        code: ``error.code`` (None for errors the real server sends without a code).
        message: ``error.message``.
        param: ``error.param``, if any.
        client_event_id: ``error.event_id``: the client event that caused it, if it had an id.
    """

    time: float
    code: str | None
    message: str
    param: str | None
    client_event_id: str | None


@final
class ConnectionRecord:
    """What happened on one connection to the simulator.

    Attributes:
        index: The connection's number, from 0.
        path: The request path (``/v1/realtime?model=...``), or ``"memory"``.
        beta: Whether the connection spoke beta event names.
        log: Every event received and sent, in order.
        errors: Every ``error`` event sent.
        open: True while the connection is open.
        dropped: True if the simulator dropped the socket (a scripted fault).
    """

    __slots__ = ("beta", "dropped", "errors", "index", "log", "open", "path")

    def __init__(self, *, index: int, path: str, beta: bool) -> None:
        self.index = index
        self.path = path
        self.beta = beta
        self.log: list[LoggedEvent] = []
        self.errors: list[EmittedError] = []
        self.open = True
        self.dropped = False

    def sent(self, event_type: str | None = None) -> list[LoggedEvent]:
        """The events sent, optionally only those of one type (GA or beta name)."""
        return [
            e
            for e in self.log
            if e.direction == "sent" and (event_type is None or e.type == event_type)
        ]

    def received(self, event_type: str | None = None) -> list[LoggedEvent]:
        """The events received, optionally only those of one type."""
        return [
            e
            for e in self.log
            if e.direction == "received" and (event_type is None or e.type == event_type)
        ]

    def __repr__(self) -> str:
        return (
            f"<ConnectionRecord {self.index} {self.path!r} events={len(self.log)} "
            f"errors={len(self.errors)} open={self.open}>"
        )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeSimulatorStatistics:
    """A snapshot of a :class:`RealtimeSimulator`'s counters.

    Attributes:
        connections_total: Connections accepted so far.
        connections_open: Connections still open.
        errors_total: Protocol ``error`` events sent.
        errors_by_code: Those errors counted by ``error.code`` (``"null"`` for no code).
        responses_created: Responses started (``response.created`` sent).
        responses_completed: Responses that ran to their end.
        responses_cancelled: Responses cancelled (by the client or by server VAD).
        responses_lost: ``response.create`` requests scripted to vanish.
    """

    connections_total: int
    connections_open: int
    errors_total: int
    errors_by_code: Mapping[str, int]
    responses_created: int
    responses_completed: int
    responses_cancelled: int
    responses_lost: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorAddress:
    """Where a :class:`RealtimeSimulator` listens.

    Attributes:
        host: The address, e.g. ``127.0.0.1``.
        port: The TCP port.
    """

    host: str
    port: int

    @property
    def base_url(self) -> str:
        """The URL to pass as ``AsyncOpenAI(websocket_base_url=...)``, ``ws://HOST:PORT/v1``."""
        return f"ws://{self.host}:{self.port}/v1"

    @property
    def url(self) -> str:
        """The full Realtime URL, ``ws://HOST:PORT/v1/realtime?model=gpt-realtime``."""
        return f"{self.base_url}/realtime?model=gpt-realtime"


# ============================================================================================
# Per-connection state


@dataclass(slots=True, kw_only=True)
class _Item:
    id: str
    type: str
    role: str | None = None
    status: str = "completed"
    content: str | None = None  # "input_audio", "output_audio", "output_text", "input_text", ...
    audio_ms: int = 0
    transcript: str | None = None
    text: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    in_conversation: bool = True


@dataclass(slots=True, kw_only=True)
class _Response:
    id: str
    number: int
    reply: Reply
    default_conversation: bool
    metadata: Mapping[str, Any] | None
    text_only: bool
    items: list[_Item] = field(default_factory=list)
    steps: Generator[float, None, None] | None = None
    current: _Item | None = None
    part_open: bool = False
    transcript_sent: str = ""
    audio_sent_ms: int = 0
    done: bool = False
    running: bool = False


def _new_vad(turn_detection: Mapping[str, Any] | None) -> EnergyVad | None:
    if turn_detection is None:
        return None
    threshold = turn_detection.get("threshold")
    prefix = turn_detection.get("prefix_padding_ms")
    silence = turn_detection.get("silence_duration_ms")
    return EnergyVad(
        threshold=0.5 if not isinstance(threshold, (int, float)) else min(1.0, max(0.0, threshold)),
        prefix_padding_ms=300 if not isinstance(prefix, int) else min(10_000, max(0, prefix)),
        silence_duration_ms=500 if not isinstance(silence, int) else min(10_000, max(0, silence)),
    )


def _redact(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message with base64 audio replaced by its decoded length (for logs)."""
    out = dict(message)
    for key in ("delta", "audio"):
        value = out.get(key)
        if isinstance(value, str) and (
            key == "audio" or str(out.get("type", "")).endswith("audio.delta")
        ):
            out[key] = f"<{len(value) * 3 // 4 - value[-2:].count('=')} bytes>"
    return out


class _Drop(Exception):
    """Raised inside the engine when a scripted fault drops the connection."""


@final
class _Connection:
    """One connection's server state and event loop (sans-IO core plus one receive loop)."""

    def __init__(
        self,
        sim: RealtimeSimulator,
        transport: Transport,
        record: ConnectionRecord,
    ) -> None:
        self.sim = sim
        self.transport = transport
        self.record = record
        self.beta = record.beta
        self.rng = random.Random(sim.seed * 1_000_003 + record.index)
        self.seq = itertools.count()
        self.outbox: list[tuple[float, int, dict[str, Any]]] = []
        self.timers: list[tuple[float, int, _Response]] = []
        self.fault_counts: Counter[str] = Counter()
        self.session: dict[str, Any] = self._default_session()
        self.vad = _new_vad(self.turn_detection)
        self.vad_offset_ms = 0
        self.appended_ms = 0.0
        self.buffer_start_ms = 0.0
        self.pending_input = b""
        self.speech_item_id: str | None = None
        self.items: dict[str, _Item] = {}
        self.order: list[str] = []
        self.responses: dict[str, _Response] = {}
        self.active: _Response | None = None
        self.response_count = 0
        self.conversation_id = self._id("conv_")
        self.dropping = False
        self.voice_locked = False

    # -------------------------------------------------------------------------------- ids

    def _id(self, prefix: str) -> str:
        return prefix + "".join(self.rng.choice(_ID_ALPHABET) for _ in range(21))

    # -------------------------------------------------------------------------------- session

    def _default_session(self) -> dict[str, Any]:
        sim = self.sim
        td = {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
            "idle_timeout_ms": None,
            "create_response": True,
            "interrupt_response": True,
        }
        if self.beta:
            return {
                "id": self._id("sess_"),
                "object": "realtime.session",
                "model": sim.model,
                "expires_at": 0,
                "modalities": ["audio", "text"],
                "instructions": "",
                "voice": sim.voice,
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "input_audio_transcription": None,
                "turn_detection": td,
                "tools": [],
                "tool_choice": "auto",
                "temperature": 0.8,
                "max_response_output_tokens": "inf",
            }
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self._id("sess_"),
            "model": sim.model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "expires_at": 0,
            "include": None,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": td,
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": sim.voice,
                    "speed": 1.0,
                },
            },
        }

    @property
    def turn_detection(self) -> Mapping[str, Any] | None:
        if self.beta:
            td = self.session.get("turn_detection")
        else:
            td = self.session["audio"]["input"].get("turn_detection")
        return td if isinstance(td, Mapping) else None

    def _format(self, direction: Literal["input", "output"]) -> AudioFormat:
        if self.beta:
            value = self.session.get(f"{direction}_audio_format")
            return _FORMATS.get(value if isinstance(value, str) else "", PCM24K)
        fmt = self.session["audio"][direction].get("format")
        kind = fmt.get("type") if isinstance(fmt, Mapping) else None
        return _FORMATS.get(kind if isinstance(kind, str) else "", PCM24K)

    def _text_only(self, overrides: Mapping[str, Any] | None) -> bool:
        key = "modalities" if self.beta else "output_modalities"
        modalities = (overrides or {}).get(key, self.session.get(key))
        return isinstance(modalities, list) and "audio" not in modalities

    def _session_update(self, event: SessionUpdate) -> None:
        update = event.session
        if not self.beta:
            kind = update.get("type")
            if kind is None:
                raise ClientEventError(
                    "missing_required_parameter",
                    "Missing required parameter: 'session.type'.",
                    param="session.type",
                    event_id=event.event_id,
                )
            if kind != "realtime":
                raise ClientEventError(
                    "invalid_value",
                    f"Invalid value: '{kind}'. Supported values are: 'realtime'.",
                    param="session.type",
                    event_id=event.event_id,
                )
        merged = _merge(self.session, update)
        self._validate_session(merged, event.event_id)
        old_td = self.turn_detection
        self.session = merged
        new_td = self.turn_detection
        if new_td is not None:
            filled = {
                "type": new_td.get("type"),
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
                "idle_timeout_ms": None,
                "create_response": True,
                "interrupt_response": True,
            }
            filled.update(new_td)
            if self.beta:
                self.session["turn_detection"] = filled
            else:
                self.session["audio"]["input"]["turn_detection"] = filled
        if old_td != self.turn_detection:
            self._reset_vad()
        self.emit({"type": "session.updated", "session": _copy(self.session)})

    def _validate_session(self, session: Mapping[str, Any], event_id: str | None) -> None:
        def bad(param: str, value: object, allowed: Sequence[str]) -> ClientEventError:
            names = ", ".join(f"'{a}'" for a in allowed)
            return ClientEventError(
                "invalid_value",
                f"Invalid value: '{value}'. Supported values are: {names}.",
                param=param,
                event_id=event_id,
            )

        if self.beta:
            for key in ("input_audio_format", "output_audio_format"):
                value = session.get(key)
                if value not in ("pcm16", "g711_ulaw", "g711_alaw"):
                    raise bad(f"session.{key}", value, ("pcm16", "g711_ulaw", "g711_alaw"))
            td = session.get("turn_detection")
            td_param = "session.turn_detection"
        else:
            audio = session.get("audio")
            if not isinstance(audio, Mapping):
                raise bad("session.audio", audio, ("an object",))
            for direction in ("input", "output"):
                part = audio.get(direction)
                fmt = part.get("format") if isinstance(part, Mapping) else None
                kind = fmt.get("type") if isinstance(fmt, Mapping) else None
                if kind not in ("audio/pcm", "audio/pcmu", "audio/pcma"):
                    raise bad(
                        f"session.audio.{direction}.format.type",
                        kind,
                        ("audio/pcm", "audio/pcmu", "audio/pcma"),
                    )
                if kind == "audio/pcm" and isinstance(fmt, Mapping):
                    rate = fmt.get("rate", 24000)
                    if rate != 24000:
                        raise bad(f"session.audio.{direction}.format.rate", rate, ("24000",))
            inp = audio.get("input")
            td = inp.get("turn_detection") if isinstance(inp, Mapping) else None
            td_param = "session.audio.input.turn_detection"
        if td is not None:
            if not isinstance(td, Mapping) or td.get("type") not in _VAD_TYPES:
                kind = td.get("type") if isinstance(td, Mapping) else td
                raise bad(f"{td_param}.type", kind, _VAD_TYPES)
            threshold = td.get("threshold")
            if threshold is not None and not (
                isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0
            ):
                raise ClientEventError(
                    "invalid_value",
                    f"Invalid '{td_param}.threshold': expected a number from 0 to 1.",
                    param=f"{td_param}.threshold",
                    event_id=event_id,
                )
            for key in ("create_response", "interrupt_response"):
                value = td.get(key)
                if value is not None and not isinstance(value, bool):
                    raise ClientEventError(
                        "invalid_type",
                        f"Invalid type for '{td_param}.{key}': expected a boolean.",
                        param=f"{td_param}.{key}",
                        event_id=event_id,
                    )

    def _reset_vad(self) -> None:
        self.vad = _new_vad(self.turn_detection)
        self.vad_offset_ms = int(self.appended_ms)
        self.pending_input = b""
        self.speech_item_id = None

    # -------------------------------------------------------------------------------- output

    def emit(self, event: dict[str, Any], *, extra_delay: float = 0.0) -> None:
        """Queue a server event (GA name); faults and the beta renaming apply here."""
        event_type = event["type"]
        wire_type = _BETA_NAMES.get(event_type, event_type) if self.beta else event_type
        if self.beta and event_type == "conversation.item.done":
            return  # the beta API has no item.done
        event = {"type": wire_type, "event_id": self._id("event_"), **event}
        event["type"] = wire_type
        now = anyio.current_time()
        if event_type == "error":
            error = event["error"]
            self.record.errors.append(
                EmittedError(
                    time=now,
                    code=error.get("code"),
                    message=error["message"],
                    param=error.get("param"),
                    client_event_id=error.get("event_id"),
                )
            )
            self.sim._errors[error.get("code") or "null"] += 1
        delay = self.sim.latency + extra_delay
        copies = 1
        self.fault_counts[event_type] += 1
        occurrence = self.fault_counts[event_type]
        for fault in self.sim.faults:
            if fault.event_type not in (event_type, wire_type):
                continue
            if fault.occurrences is not None and occurrence not in fault.occurrences:
                continue
            if fault.action == "drop":
                return
            if fault.action == "delay":
                delay += fault.seconds
            else:
                copies += 1
        for _ in range(copies):
            heapq.heappush(self.outbox, (on_grid(now + delay), next(self.seq), event))

    def error(self, exc: ClientEventError) -> None:
        self.emit(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": exc.code,
                    "message": exc.message,
                    "param": exc.param,
                    "event_id": exc.event_id,
                },
            }
        )

    # -------------------------------------------------------------------------------- loop

    async def run(self) -> None:
        self.emit({"type": "session.created", "session": _copy(self.session)})
        try:
            while True:
                # Messages that have arrived go first, so that a message and a timer due at the
                # same instant are handled in the same order on every run.
                while (ready := _receive_ready(self.transport)) is not None:
                    self._on_message(ready)
                now = anyio.current_time()
                self._run_timers(now)
                await self._flush()
                if self.dropping:
                    raise _Drop
                deadline = min(
                    self.timers[0][0] if self.timers else math.inf,
                    self.outbox[0][0] if self.outbox else math.inf,
                )
                with anyio.CancelScope(deadline=deadline):
                    text = await self.transport.receive()
                    self._on_message(text)
        except TransportClosed:
            pass
        except _Drop:
            self.record.dropped = True
            await self.transport.abort()
        finally:
            for response in list(self.responses.values()):
                if response.steps is not None:
                    response.steps.close()

    async def _flush(self) -> None:
        while self.outbox and self.outbox[0][0] <= (now := anyio.current_time()):
            _, _, event = heapq.heappop(self.outbox)
            self.record.log.append(
                LoggedEvent(time=now, direction="sent", type=event["type"], event=_redact(event))
            )
            await self.transport.send(dumps(event))

    def _run_timers(self, now: float) -> None:
        while self.timers and self.timers[0][0] <= now and not self.dropping:
            _, _, response = heapq.heappop(self.timers)
            self._advance(response, now)

    def _advance(self, response: _Response, now: float) -> None:
        if response.done or response.steps is None:
            return
        response.running = True
        try:
            delay = next(response.steps)
        except StopIteration:
            return
        finally:
            response.running = False
        heapq.heappush(self.timers, (on_grid(now + delay), next(self.seq), response))

    def _on_message(self, text: str) -> None:
        now = anyio.current_time()
        try:
            event = parse_client_event(text)
        except ClientEventError as exc:
            self.record.log.append(
                LoggedEvent(
                    time=now,
                    direction="received",
                    type=exc.event_type or "<invalid>",
                    event={"error": exc.message},
                )
            )
            self.error(exc)
            return
        self.record.log.append(
            LoggedEvent(
                time=now,
                direction="received",
                type=_client_type(event),
                event=_redact(_loads_for_log(text)),
            )
        )
        try:
            self._dispatch(event)
        except ClientEventError as exc:
            if exc.event_id is None:
                exc.event_id = event.event_id
            self.error(exc)

    def _dispatch(self, event: ClientEvent) -> None:
        match event:
            case SessionUpdate():
                self._session_update(event)
            case AudioAppend():
                self._append(event.audio)
            case AudioCommit():
                self._commit(event)
            case AudioClear():
                self.buffer_start_ms = self.appended_ms
                self._reset_vad()
                self.emit({"type": "input_audio_buffer.cleared"})
            case ItemCreate():
                self._item_create(event)
            case ItemTruncate():
                self._truncate(event)
            case ItemDelete():
                self._delete(event)
            case ItemRetrieve():
                item = self._find(event.item_id, event.event_id, "item_retrieve_invalid_item_id")
                self.emit({"type": "conversation.item.retrieved", "item": self._item_wire(item)})
            case ResponseCreate():
                self._create(event.response, event.event_id)
            case ResponseCancel():
                self._cancel(event)
            case OutputAudioClear():
                raise ClientEventError(
                    None,
                    "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
                )

    # -------------------------------------------------------------------------------- audio in

    def _append(self, audio: bytes) -> None:
        fmt = self._format("input")
        if len(audio) % fmt.sample_width:
            raise ClientEventError(
                "invalid_value",
                "Invalid 'audio': not a whole number of samples.",
                param="audio",
            )
        self.appended_ms += len(audio) / fmt.bytes_per_ms
        if self.vad is None:
            return
        data = self.pending_input + to_ulaw(audio, fmt)
        whole = len(data) - len(data) % FRAME_BYTES
        self.pending_input = data[whole:]
        if not whole:
            return
        for vad_event in self.vad.push(data[:whole]):
            if isinstance(vad_event, VadSpeechStarted):
                self._speech_started(self.vad_offset_ms + vad_event.audio_start_ms)
            else:
                self._speech_stopped(self.vad_offset_ms + vad_event.audio_end_ms)
            if self.dropping:
                return

    def _speech_started(self, audio_start_ms: int) -> None:
        self.speech_item_id = self._id("item_")
        self.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self.speech_item_id,
            }
        )
        td = self.turn_detection or {}
        if td.get("interrupt_response", True) and self.active is not None:
            self._finish(self.active, status="cancelled", reason="turn_detected")

    def _speech_stopped(self, audio_end_ms: int) -> None:
        item_id = self.speech_item_id or self._id("item_")
        self.speech_item_id = None
        self.emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": audio_end_ms,
                "item_id": item_id,
            }
        )
        self._commit_item(item_id)
        self.buffer_start_ms = float(audio_end_ms)
        td = self.turn_detection or {}
        if td.get("create_response", True):
            if self.active is not None:
                self._reject_create(self.active, None)
            else:
                self._create(None, None)

    def _commit(self, event: AudioCommit) -> None:
        buffered = self.appended_ms - self.buffer_start_ms
        if buffered < _COMMIT_MIN_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{_COMMIT_MIN_MS}ms of audio, but buffer only has {buffered:.2f}ms of audio.",
                event_id=event.event_id,
            )
        item_id = self.speech_item_id or self._id("item_")
        self._commit_item(item_id)
        self.buffer_start_ms = self.appended_ms
        self._reset_vad()

    def _commit_item(self, item_id: str) -> None:
        previous = self.order[-1] if self.order else None
        self.emit(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        item = _Item(id=item_id, type="message", role="user", content="input_audio")
        self._add_item(item, previous)

    # -------------------------------------------------------------------------------- items

    def _add_item(self, item: _Item, previous: str | None) -> None:
        self.items[item.id] = item
        self.order.append(item.id)
        wire = self._item_wire(item)
        self.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": wire})
        if item.status == "completed":
            self.emit(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": wire}
            )

    def _item_wire(self, item: _Item) -> dict[str, Any]:
        wire: dict[str, Any] = {"id": item.id, "object": "realtime.item", "type": item.type}
        if item.type == "message":
            wire["status"] = item.status
            wire["role"] = item.role
            content: list[dict[str, Any]] = []
            if item.content == "input_audio":
                content.append({"type": "input_audio", "transcript": None})
            elif item.content == "output_audio":
                kind = "audio" if self.beta else "output_audio"
                content.append({"type": kind, "transcript": item.transcript or ""})
            elif item.content == "output_text":
                kind = "text" if self.beta else "output_text"
                content.append({"type": kind, "text": item.text or ""})
            elif item.content is not None:
                content.append({"type": item.content, "text": item.text or ""})
            wire["content"] = content
        elif item.type == "function_call":
            wire.update(
                status=item.status, name=item.name, call_id=item.call_id, arguments=item.arguments
            )
        elif item.type == "function_call_output":
            wire.update(call_id=item.call_id, output=item.output)
        return wire

    def _find(self, item_id: str, event_id: str | None, code: str) -> _Item:
        item = self.items.get(item_id)
        if item is None:
            raise ClientEventError(
                code,
                f"Item with item_id not found: {item_id}",
                param="item_id",
                event_id=event_id,
            )
        return item

    def _item_create(self, event: ItemCreate) -> None:
        raw = event.item
        kind = raw.get("type")
        allowed = ("message", "function_call", "function_call_output")
        if kind not in allowed:
            names = ", ".join(f"'{a}'" for a in allowed)
            raise ClientEventError(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: {names}.",
                param="item.type",
                event_id=event.event_id,
            )
        previous = event.previous_item_id
        if previous is not None and previous != "root" and previous not in self.items:
            raise ClientEventError(
                "invalid_value",
                f"Previous item with item_id not found: {previous}",
                param="previous_item_id",
                event_id=event.event_id,
            )
        raw_id = raw.get("id")
        item_id = raw_id if isinstance(raw_id, str) and raw_id else self._id("item_")
        if item_id in self.items:
            raise ClientEventError(
                "invalid_value",
                f"Item with item_id already exists: {item_id}",
                param="item.id",
                event_id=event.event_id,
            )
        item = _Item(id=item_id, type=str(kind))
        if kind == "message":
            role = raw.get("role")
            if role not in ("user", "assistant", "system"):
                raise ClientEventError(
                    "invalid_value",
                    f"Invalid value: '{role}'. Supported values are: 'user', 'assistant', "
                    "'system'.",
                    param="item.role",
                    event_id=event.event_id,
                )
            item.role = str(role)
            parts = raw.get("content")
            first = parts[0] if isinstance(parts, list) and parts else {}
            part_type = first.get("type") if isinstance(first, Mapping) else None
            if role == "assistant" and part_type in ("audio", "output_audio"):
                raise ClientEventError(
                    "invalid_value",
                    "Assistant audio messages cannot be created; only text content is allowed.",
                    param="item.content",
                    event_id=event.event_id,
                )
            item.content = part_type if isinstance(part_type, str) else "input_text"
            text = first.get("text") if isinstance(first, Mapping) else None
            item.text = text if isinstance(text, str) else None
        elif kind == "function_call":
            item.name = str(raw.get("name", ""))
            item.call_id = str(raw.get("call_id", ""))
            item.arguments = str(raw.get("arguments", ""))
        else:
            call_id = raw.get("call_id")
            if not isinstance(call_id, str):
                raise ClientEventError(
                    "missing_required_parameter",
                    "Missing required parameter: 'item.call_id'.",
                    param="item.call_id",
                    event_id=event.event_id,
                )
            item.call_id = call_id
            output = raw.get("output")
            item.output = output if isinstance(output, str) else ""
        if previous is None:
            previous = self.order[-1] if self.order else None
        self._add_item(item, None if previous == "root" else previous)

    def _truncate(self, event: ItemTruncate) -> None:
        item = self._find(event.item_id, event.event_id, "item_truncate_invalid_item_id")
        if (
            item.type != "message"
            or item.role != "assistant"
            or item.content != "output_audio"
            or (item.audio_ms == 0 and item.status == "in_progress")
        ):
            raise ClientEventError(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                param="item_id",
                event_id=event.event_id,
            )
        if event.content_index != 0:
            raise ClientEventError(
                "invalid_value",
                f"Invalid 'content_index': item has no content part {event.content_index}.",
                param="content_index",
                event_id=event.event_id,
            )
        if event.audio_end_ms > item.audio_ms:
            raise ClientEventError(
                None,
                f"Audio content of {item.audio_ms}ms is already shorter than "
                f"{event.audio_end_ms}ms",
                param="audio_end_ms",
                event_id=event.event_id,
            )
        item.audio_ms = event.audio_end_ms
        item.transcript = ""
        self.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item.id,
                "content_index": event.content_index,
                "audio_end_ms": event.audio_end_ms,
            }
        )

    def _delete(self, event: ItemDelete) -> None:
        item = self._find(event.item_id, event.event_id, "item_delete_invalid_item_id")
        del self.items[item.id]
        if item.id in self.order:
            self.order.remove(item.id)
        self.emit({"type": "conversation.item.deleted", "item_id": item.id})

    # -------------------------------------------------------------------------------- responses

    def _response_wire(self, response: _Response, status: str) -> dict[str, Any]:
        output_format = self._format("output")
        wire: dict[str, Any] = {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": None,
            "output": [self._item_wire(item) for item in response.items],
            "metadata": response.metadata,
            "usage": None,
        }
        if self.beta:
            wire["modalities"] = ["text"] if response.text_only else ["audio", "text"]
            wire["voice"] = self.session.get("voice", self.sim.voice)
            wire["output_audio_format"] = self.session.get("output_audio_format")
            wire["max_output_tokens"] = "inf"
        else:
            wire["conversation_id"] = (
                self.conversation_id if response.default_conversation else None
            )
            wire["output_modalities"] = ["text"] if response.text_only else ["audio"]
            wire["max_output_tokens"] = "inf"
            wire["audio"] = {
                "output": {
                    "format": output_format.to_wire(),
                    "voice": self.session["audio"]["output"].get("voice", self.sim.voice),
                }
            }
        return wire

    def _reject_create(self, active: _Response, event_id: str | None) -> None:
        self.error(
            ClientEventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {active.id}. Wait "
                "until the response is finished before creating a new one.",
                event_id=event_id,
            )
        )

    def _create(self, overrides: Mapping[str, Any] | None, event_id: str | None) -> None:
        default = (overrides or {}).get("conversation", "auto") != "none"
        if default and self.active is not None:
            self._reject_create(self.active, event_id)
            return
        number = self.response_count
        self.response_count += 1
        reply = self.sim._reply(number)
        if reply.lost:
            self.sim._lost += 1
            return
        metadata = (overrides or {}).get("metadata")
        response = _Response(
            id=self._id("resp_"),
            number=number,
            reply=reply,
            default_conversation=default,
            metadata=metadata if isinstance(metadata, Mapping) else None,
            text_only=self._text_only(overrides),
        )
        self.responses[response.id] = response
        if default:
            self.active = response
        self.sim._created += 1
        self.emit(
            {"type": "response.created", "response": self._response_wire(response, "in_progress")}
        )
        self.emit(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                    {"name": "tokens", "limit": 400000, "remaining": 395000, "reset_seconds": 0.75},
                ],
            }
        )
        response.steps = self._steps(response)
        heapq.heappush(self.timers, (on_grid(anyio.current_time()), next(self.seq), response))

    def _steps(self, response: _Response) -> Generator[float, None, None]:
        """The response's timeline: emits events, yields seconds to wait before the next step."""
        sim = self.sim
        reply = response.reply
        if reply.stall:
            yield math.inf
            return
        yield sim.first_audio_delay
        output_index = 0
        seconds = reply.audio_seconds()
        if seconds > 0 or reply.text:
            item = _Item(
                id=self._id("item_"),
                type="message",
                role="assistant",
                status="in_progress",
                content="output_text" if response.text_only else "output_audio",
                transcript="",
                text="",
                in_conversation=response.default_conversation,
            )
            response.items.append(item)
            response.current = item
            self._item_started(response, item, output_index)
            if response.text_only:
                yield from self._text(response, item, output_index)
            else:
                yield from self._audio(response, item, output_index, seconds)
            self._item_finished(response, item, output_index, "completed")
            output_index += 1
        if reply.function_call is not None:
            call = reply.function_call
            item = _Item(
                id=self._id("item_"),
                type="function_call",
                status="in_progress",
                name=call.name,
                call_id=self._id("call_")[:21],
                arguments="",
                in_conversation=response.default_conversation,
            )
            response.items.append(item)
            response.current = item
            self._item_started(response, item, output_index)
            yield sim.delta_seconds
            item.arguments = call.arguments
            common = {
                "response_id": response.id,
                "item_id": item.id,
                "output_index": output_index,
                "call_id": item.call_id,
            }
            self.emit(
                {
                    "type": "response.function_call_arguments.delta",
                    **common,
                    "delta": call.arguments,
                }
            )
            self.emit(
                {
                    "type": "response.function_call_arguments.done",
                    **common,
                    "name": call.name,
                    "arguments": call.arguments,
                }
            )
            self._item_finished(response, item, output_index, "completed")
        final = reply.status
        reason = {"completed": None, "incomplete": "max_output_tokens", "failed": None}[final]
        self._finish(response, status=final, reason=reason)

    def _item_started(self, response: _Response, item: _Item, output_index: int) -> None:
        wire = self._item_wire(item)
        if item.type == "message":
            wire["content"] = []
        self.emit(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": output_index,
                "item": wire,
            }
        )
        if response.default_conversation:
            previous = self.order[-1] if self.order else None
            self.items[item.id] = item
            self.order.append(item.id)
            self.emit(
                {"type": "conversation.item.added", "previous_item_id": previous, "item": wire}
            )
        if item.type == "message":
            part = (
                {"type": "text", "text": ""}
                if response.text_only
                else {"type": "audio", "transcript": ""}
            )
            self.emit(
                {
                    "type": "response.content_part.added",
                    "response_id": response.id,
                    "item_id": item.id,
                    "output_index": output_index,
                    "content_index": 0,
                    "part": part,
                }
            )
            response.part_open = True

    def _audio(
        self, response: _Response, item: _Item, output_index: int, seconds: float
    ) -> Generator[float, None, None]:
        sim = self.sim
        reply = response.reply
        audio = reply.audio
        if audio is None:
            audio = speech_like(
                seconds,
                level_dbfs=sim.audio_level_dbfs,
                seed=sim.seed * 7919 + self.record.index * 131 + response.number,
            )
        fmt = self._format("output")
        chunk = max(1, sim.delta_ms) * 8
        words = reply.text.split(" ") if reply.text else []
        total = max(1, math.ceil(len(audio) / chunk))
        common = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": output_index,
            "content_index": 0,
        }
        self.voice_locked = True
        for index in range(total):
            piece = audio[index * chunk : (index + 1) * chunk]
            payload = _b64(from_ulaw(piece, fmt))
            self.emit({"type": "response.output_audio.delta", **common, "delta": payload})
            item.audio_ms += len(piece) // 8
            response.audio_sent_ms = item.audio_ms
            upto = math.ceil(len(words) * (index + 1) / total)
            said = len(response.transcript_sent.split(" ")) if response.transcript_sent else 0
            if upto > said:
                text = " ".join(words[said:upto])
                delta = text if not said else " " + text
                response.transcript_sent += delta
                item.transcript = response.transcript_sent
                self.emit(
                    {"type": "response.output_audio_transcript.delta", **common, "delta": delta}
                )
            if (
                reply.drop_connection_after is not None
                and item.audio_ms >= reply.drop_connection_after * 1000
            ):
                self.dropping = True
                yield math.inf
                return
            yield len(piece) / 8000 / sim.audio_speed

    def _text(
        self, response: _Response, item: _Item, output_index: int
    ) -> Generator[float, None, None]:
        common = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": output_index,
            "content_index": 0,
        }
        for word_index, word in enumerate(response.reply.text.split(" ")):
            delta = word if word_index == 0 else " " + word
            item.text = (item.text or "") + delta
            self.emit({"type": "response.output_text.delta", **common, "delta": delta})
            yield self.sim.delta_seconds

    def _close_part(self, response: _Response, item: _Item, output_index: int) -> None:
        if not response.part_open:
            return
        response.part_open = False
        common = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": output_index,
            "content_index": 0,
        }
        if item.content == "output_text":
            self.emit({"type": "response.output_text.done", **common, "text": item.text or ""})
            part: dict[str, Any] = {"type": "text", "text": item.text or ""}
        else:
            self.emit({"type": "response.output_audio.done", **common})
            self.emit(
                {
                    "type": "response.output_audio_transcript.done",
                    **common,
                    "transcript": response.transcript_sent,
                }
            )
            part = {"type": "audio", "transcript": response.transcript_sent}
        self.emit({"type": "response.content_part.done", **common, "part": part})

    def _item_finished(
        self, response: _Response, item: _Item, output_index: int, status: str
    ) -> None:
        self._close_part(response, item, output_index)
        item.status = status
        wire = self._item_wire(item)
        self.emit(
            {
                "type": "response.output_item.done",
                "response_id": response.id,
                "output_index": output_index,
                "item": wire,
            }
        )
        if response.default_conversation and item.id in self.items:
            self.emit({"type": "conversation.item.done", "previous_item_id": None, "item": wire})
        response.current = None

    def _finish(self, response: _Response, *, status: str, reason: str | None) -> None:
        if response.done:
            return
        response.done = True
        if response.steps is not None and not response.running:
            response.steps.close()
        current = response.current
        if current is not None:
            self._item_finished(response, current, response.items.index(current), "incomplete")
        wire = self._response_wire(response, status)
        if status == "cancelled":
            wire["status_details"] = {"type": "cancelled", "reason": reason}
            self.sim._cancelled += 1
        elif status == "incomplete":
            wire["status_details"] = {"type": "incomplete", "reason": reason}
        elif status == "failed":
            wire["status_details"] = {
                "type": "failed",
                "error": {"type": "server_error", "code": "server_error", "message": "simulated"},
            }
        else:
            self.sim._completed += 1
        wire["usage"] = {
            "total_tokens": 120 + response.audio_sent_ms // 50,
            "input_tokens": 100,
            "output_tokens": 20 + response.audio_sent_ms // 50,
        }
        if self.active is response:
            self.active = None
        self.emit({"type": "response.done", "response": wire})

    def _cancel(self, event: ResponseCancel) -> None:
        target = self.active
        if event.response_id is not None:
            candidate = self.responses.get(event.response_id)
            target = candidate if candidate is not None and not candidate.done else None
        if target is None or target.done:
            raise ClientEventError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                event_id=event.event_id,
            )
        self._finish(target, status="cancelled", reason="client_cancelled")


# ============================================================================================
# Helpers


def _receive_ready(transport: Transport) -> str | None:
    """A message that has already arrived on an in-memory transport, else None."""
    if isinstance(transport, MemoryTransport):
        return transport.receive_nowait()
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


_MERGED_OBJECTS: Final = frozenset({"audio", "input", "output"})


def _merge(base: Mapping[str, Any], update: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """A partial session update: nested ``audio``/``input``/``output`` objects merge; the rest
    (``turn_detection`` included) is replaced."""
    merged: dict[str, Any] = dict(_copy(base))
    for key, value in update.items():
        if (
            key in _MERGED_OBJECTS
            and depth < 2
            and isinstance(value, Mapping)
            and isinstance(merged.get(key), Mapping)
        ):
            merged[key] = _merge(merged[key], value, depth + 1)
        else:
            merged[key] = _copy(value)
    return merged


def _client_type(event: ClientEvent) -> str:
    return {
        SessionUpdate: "session.update",
        AudioAppend: "input_audio_buffer.append",
        AudioCommit: "input_audio_buffer.commit",
        AudioClear: "input_audio_buffer.clear",
        ItemCreate: "conversation.item.create",
        ItemTruncate: "conversation.item.truncate",
        ItemDelete: "conversation.item.delete",
        ItemRetrieve: "conversation.item.retrieve",
        ResponseCreate: "response.create",
        ResponseCancel: "response.cancel",
        OutputAudioClear: "output_audio_buffer.clear",
    }[type(event)]


def _loads_for_log(text: str) -> Mapping[str, Any]:
    data = json.loads(text)
    return data if isinstance(data, dict) else {}


# ============================================================================================
# The simulator


@final
class RealtimeSimulator:
    """A local OpenAI Realtime server for tests, demos and users' own test suites.

    One simulator serves any number of connections, each with its own session and conversation
    (and its own copy of the reply script). Serve it over a real WebSocket with :meth:`serve` /
    :meth:`running`, or connect in memory with :meth:`connect`.

    Args:
        replies: What the model does for each response on a connection, in order: a sequence of
            :class:`Reply` (after the last, *default_reply* is used) or a function of the
            response number (0, 1, ...) that returns one.
        default_reply: The reply used when *replies* is exhausted (a default
            :class:`Reply` when None).
        beta: Speak beta event names (``response.audio.delta``, ...) and the beta session
            shape; None (the default) picks beta for a connection that sends the
            ``OpenAI-Beta: realtime=v1`` header, GA otherwise.
        seed: Seed of ids and generated audio; the same seed gives the same bytes.
        audio_speed: How many times faster than real time audio is generated (the real service
            is faster than real time too).
        first_audio_delay: Seconds from ``response.created`` to the first output item.
        delta_ms: Milliseconds of audio per ``response.output_audio.delta``.
        audio_level_dbfs: Level of the generated speech-like audio.
        latency: Extra seconds before each server event is sent (on top of the transport's).
        faults: Tampering with server events (delay, duplicate, drop); see :class:`EventFault`.
        model: The model name reported in the session.
        voice: The default voice reported in the session.

    Raises:
        ValueError: On an option out of range.

    Example:
        >>> sim = RealtimeSimulator(replies=[Reply(text="Hello! How can I help?")])
        >>> sim.statistics().connections_total
        0
    """

    def __init__(
        self,
        *,
        replies: ReplySource = (),
        default_reply: Reply | None = None,
        beta: bool | None = None,
        seed: int = 0,
        audio_speed: float = 4.0,
        first_audio_delay: float = 0.15,
        delta_ms: int = 100,
        audio_level_dbfs: float = -16.0,
        latency: float = 0.0,
        faults: Sequence[EventFault] = (),
        model: str = "gpt-realtime",
        voice: str = "marin",
    ) -> None:
        if not (math.isfinite(audio_speed) and audio_speed > 0):
            raise ValueError(f"audio_speed = {audio_speed!r}; allowed: a finite number > 0")
        delta: object = delta_ms  # checked at run time: callers may not be type-checked
        if not (isinstance(delta, int) and 20 <= delta <= 5000 and delta % 20 == 0):
            raise ValueError(f"delta_ms = {delta_ms!r}; allowed: a multiple of 20 from 20 to 5000")
        for name, value in (("first_audio_delay", first_audio_delay), ("latency", latency)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} = {value!r}; allowed: a finite number of seconds >= 0")
        self.replies = replies
        self.default_reply = default_reply if default_reply is not None else Reply()
        self.beta = beta
        self.seed = seed
        self.audio_speed = float(audio_speed)
        self.first_audio_delay = float(first_audio_delay)
        self.delta_ms = delta_ms
        self.audio_level_dbfs = audio_level_dbfs
        self.latency = float(latency)
        self.faults = tuple(faults)
        self.model = model
        self.voice = voice
        self._records: list[ConnectionRecord] = []
        self._errors: Counter[str] = Counter()
        self._created = 0
        self._completed = 0
        self._cancelled = 0
        self._lost = 0

    @property
    def delta_seconds(self) -> float:
        """Seconds between two deltas at the simulator's *audio_speed*."""
        return self.delta_ms / 1000 / self.audio_speed

    @property
    def connections(self) -> tuple[ConnectionRecord, ...]:
        """Every connection so far, open or closed, in order."""
        return tuple(self._records)

    def statistics(self) -> RealtimeSimulatorStatistics:
        """A snapshot of the counters (errors emitted, connections open, responses)."""
        return RealtimeSimulatorStatistics(
            connections_total=len(self._records),
            connections_open=sum(1 for r in self._records if r.open),
            errors_total=sum(self._errors.values()),
            errors_by_code=dict(self._errors),
            responses_created=self._created,
            responses_completed=self._completed,
            responses_cancelled=self._cancelled,
            responses_lost=self._lost,
        )

    def _reply(self, number: int) -> Reply:
        source = self.replies
        if callable(source):
            return source(number)
        if number < len(source):
            return source[number]
        return self.default_reply

    async def serve_connection(
        self,
        transport: Transport,
        *,
        path: str = "memory",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Serve one client connection until it closes (or a scripted fault drops it).

        Args:
            transport: The server's end of the connection.
            path: The request path, for the record.
            headers: The request headers (lower-case names); ``openai-beta: realtime=v1``
                selects beta names when the simulator's *beta* is None.
        """
        beta = self.beta
        if beta is None:
            beta = "realtime=v1" in (headers or {}).get("openai-beta", "")
        record = ConnectionRecord(index=len(self._records), path=path, beta=beta)
        self._records.append(record)
        try:
            await _Connection(self, transport, record).run()
        finally:
            record.open = False
            with anyio.CancelScope(shield=True):
                await transport.aclose()

    @asynccontextmanager
    async def connect(
        self, *, latency: float = 0.0, beta: bool = False
    ) -> AsyncIterator[Transport]:
        """Connect in memory: yields the client's end; the server runs until the block ends.

        Args:
            latency: One-way network latency of the in-memory link, in seconds.
            beta: Behave as if the client sent ``OpenAI-Beta: realtime=v1``.

        Yields:
            The client's end of the connection; send client events as JSON text.
        """
        client, server = memory_pair(latency=latency, names=("client", "realtime-sim"))
        headers = {"openai-beta": "realtime=v1"} if beta else {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: self.serve_connection(server, path="memory", headers=headers))
            try:
                yield client
            finally:
                await client.aclose()

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: anyio.abc.TaskStatus[SimulatorAddress] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen for WebSocket clients until cancelled (needs ``voiceguard[sim]``).

        Accepts ``/v1/realtime`` and ``/realtime`` (any query string) with any
        ``Authorization: Bearer`` key; refuses other paths (404) and requests without a bearer
        key (401), as the real service would.

        Args:
            host: The address to listen on.
            port: The TCP port; 0 picks a free one.
            task_status: Receives the :class:`SimulatorAddress` once listening.
        """
        from voiceguard.transports.websocket import (  # noqa: PLC0415 - websockets is optional
            HandshakeRejected,
            WebSocketRequest,
            WebSocketTransport,
            serve_websocket,
        )

        def accept(request: WebSocketRequest) -> None:
            route = request.path.split("?", 1)[0].rstrip("/")
            if route not in REALTIME_PATHS:
                raise HandshakeRejected(404, f"Not found: {route}\n")
            auth = request.headers.get("authorization", "")
            protocols = request.headers.get("sec-websocket-protocol", "")
            has_key = auth.lower().startswith("bearer ") and len(auth) > len("bearer ")
            if not has_key and "openai-insecure-api-key." not in protocols:
                raise HandshakeRejected(401, "Missing bearer authentication in header\n")

        async def handler(transport: WebSocketTransport) -> None:
            request = transport.request
            assert request is not None
            await self.serve_connection(transport, path=request.path, headers=request.headers)

        async with anyio.create_task_group() as tg:
            bound = await tg.start(
                lambda task_status: serve_websocket(
                    handler,
                    host=host,
                    port=port,
                    accept=accept,
                    subprotocols=("realtime",),
                    task_status=task_status,
                )
            )
            task_status.started(SimulatorAddress(host=host, port=bound))

    @asynccontextmanager
    async def running(
        self, *, host: str = "127.0.0.1", port: int = 0
    ) -> AsyncIterator[SimulatorAddress]:
        """Serve over WebSocket for the duration of an ``async with`` block.

        Args:
            host: The address to listen on.
            port: The TCP port; 0 picks a free one.

        Yields:
            Where it listens; pass :attr:`SimulatorAddress.base_url` to the ``openai`` SDK.
        """
        async with anyio.create_task_group() as tg:
            address = await tg.start(
                lambda task_status: self.serve(host=host, port=port, task_status=task_status)
            )
            try:
                yield address
            finally:
                tg.cancel_scope.cancel()

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<RealtimeSimulator connections={stats.connections_total} "
            f"open={stats.connections_open} errors={stats.errors_total}>"
        )
