"""OpenAI Realtime API: typed server events, and builders for the client events voiceguard sends.

:func:`parse_realtime_event` turns one server event (a JSON text frame, a decoded mapping, or an
event model of the ``openai`` SDK) into one of the frozen event classes below. GA names and their
beta aliases (``response.audio.delta`` for ``response.output_audio.delta``, ...) give the same
class. A type that is not modelled gives an :class:`~voiceguard.protocol.UnknownEvent`; a malformed
event of a modelled type raises :class:`~voiceguard.errors.RemoteProtocolError`, never anything
else.

The builders (:func:`session_update`, :func:`response_cancel`, ...) return plain JSON-ready dicts;
serialise them with :func:`~voiceguard.protocol.dumps` or hand them to the SDK's ``send``. They
raise :class:`~voiceguard.errors.LocalProtocolError` on arguments the protocol does not allow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, final

from voiceguard.audio import PCM24K, PCMA, PCMU, AudioEncoding, AudioFormat
from voiceguard.errors import LocalProtocolError
from voiceguard.protocol._common import (
    REALTIME,
    Fields,
    UnknownEvent,
    dump_model,
    error,
    json_type,
    load_message,
    quote,
)

__all__ = (
    "END_CALL_TOOL_NAME",
    "PCM24K",
    "PCMA",
    "PCMU",
    "AudioDelta",
    "AudioDone",
    "AudioEncoding",
    "AudioFormat",
    "ContentPartAdded",
    "ContentPartDone",
    "FunctionCallArgumentsDelta",
    "FunctionCallArgumentsDone",
    "InputAudioCleared",
    "InputAudioCommitted",
    "InputAudioTimeoutTriggered",
    "InputTranscriptionCompleted",
    "InputTranscriptionDelta",
    "InputTranscriptionFailed",
    "ItemAdded",
    "ItemDeleted",
    "ItemDone",
    "ItemTruncated",
    "OutputAudioBufferCleared",
    "OutputAudioBufferStarted",
    "OutputAudioBufferStopped",
    "OutputItem",
    "OutputItemAdded",
    "OutputItemDone",
    "RateLimitsUpdated",
    "RealtimeError",
    "RealtimeServerEvent",
    "ResponseCreated",
    "ResponseDone",
    "SessionCreated",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "TextDelta",
    "TextDone",
    "TranscriptDelta",
    "TranscriptDone",
    "TurnDetection",
    "UnknownEvent",
    "end_call_tool",
    "function_call_output",
    "input_audio_append",
    "input_audio_clear",
    "input_audio_commit",
    "item_delete",
    "item_truncate",
    "parse_realtime_event",
    "response_cancel",
    "response_create",
    "session_update",
)

# ============================================================================================
# Audio formats

_G711_RATE: Final = 8000
_PCM_RATE: Final = 24000

_BETA_FORMATS: Final[Mapping[str, AudioFormat]] = {
    "g711_ulaw": PCMU,
    "g711_alaw": PCMA,
    "pcm16": PCM24K,
    # GA names given as bare strings are accepted too.
    "audio/pcmu": PCMU,
    "audio/pcma": PCMA,
    "audio/pcm": PCM24K,
}


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TurnDetection:
    """A session's turn detection (voice activity detection) settings.

    Attributes:
        type: ``"server_vad"`` or ``"semantic_vad"`` (kept as a string, so new kinds parse).
        interrupt_response: Whether the server cancels the active response itself when speech
            starts. True when the server did not say (the server default).
        create_response: Whether the server creates a response itself when speech stops. True when
            the server did not say (the server default).
        threshold: ``server_vad`` activation threshold (0 to 1), if given.
        prefix_padding_ms: Audio kept from before the detected speech, if given.
        silence_duration_ms: Silence that ends a turn, if given.
        eagerness: ``semantic_vad`` eagerness (``low``, ``medium``, ``high``, ``auto``), if given.
        idle_timeout_ms: ``server_vad`` idle timeout, if given.
    """

    type: str
    interrupt_response: bool = True
    create_response: bool = True
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    eagerness: str | None = None
    idle_timeout_ms: int | None = None


# ============================================================================================
# Server events


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCreated:
    """``session.created``: the first event of a connection, with the default configuration.

    Attributes:
        event_id: The server's event id.
        session: The ``session`` object as received.
        turn_detection: The turn detection settings; None when turn detection is off (``null``)
            or not mentioned (see :attr:`turn_detection_present`). Read from
            ``session.audio.input.turn_detection`` (GA) or ``session.turn_detection`` (beta).
        turn_detection_present: Whether the session mentioned ``turn_detection`` at all, so that
            "off" (present, None) can be told from "not mentioned" (absent, None).
        input_format: Format of the audio the server expects, if the session says
            (``session.audio.input.format`` in GA, ``session.input_audio_format`` in beta).
        output_format: Format of the audio the server sends, if the session says
            (``session.audio.output.format`` in GA, ``session.output_audio_format`` in beta).
    """

    event_id: str
    session: Mapping[str, Any]
    turn_detection: TurnDetection | None
    turn_detection_present: bool
    input_format: AudioFormat | None
    output_format: AudioFormat | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdated:
    """``session.updated``: the reply to ``session.update``, with the full configuration.

    Attributes:
        event_id: The server's event id.
        session: The ``session`` object as received.
        turn_detection: As in :class:`SessionCreated`.
        turn_detection_present: As in :class:`SessionCreated`.
        input_format: As in :class:`SessionCreated`.
        output_format: As in :class:`SessionCreated`.
    """

    event_id: str
    session: Mapping[str, Any]
    turn_detection: TurnDetection | None
    turn_detection_present: bool
    input_format: AudioFormat | None
    output_format: AudioFormat | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStarted:
    """``input_audio_buffer.speech_started``: the server's VAD heard speech begin.

    With ``interrupt_response`` on, this is the moment the server cancels the active response.

    Attributes:
        event_id: The server's event id.
        audio_start_ms: Start of the speech, in ms of all audio appended this session (including
            the prefix padding).
        item_id: The user item that will hold this speech.
    """

    event_id: str
    audio_start_ms: int
    item_id: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStopped:
    """``input_audio_buffer.speech_stopped``: the server's VAD heard speech end.

    Attributes:
        event_id: The server's event id.
        audio_end_ms: End of the speech, in ms of all audio appended this session (including the
            silence duration).
        item_id: The user item that holds this speech.
    """

    event_id: str
    audio_end_ms: int
    item_id: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioCommitted:
    """``input_audio_buffer.committed``: the input buffer became a user item.

    Attributes:
        event_id: The server's event id.
        item_id: The user item created from the buffer.
        previous_item_id: The item it follows, if any.
    """

    event_id: str
    item_id: str
    previous_item_id: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioCleared:
    """``input_audio_buffer.cleared``: the reply to ``input_audio_buffer.clear``.

    Attributes:
        event_id: The server's event id.
    """

    event_id: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioTimeoutTriggered:
    """``input_audio_buffer.timeout_triggered``: the ``server_vad`` idle timeout fired.

    A commit and a response follow.

    Attributes:
        event_id: The server's event id.
        audio_start_ms: Start of the committed (silent) audio.
        audio_end_ms: End of the committed audio.
        item_id: The user item that will hold it.
    """

    event_id: str
    audio_start_ms: int
    audio_end_ms: int
    item_id: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemAdded:
    """``conversation.item.added`` (GA) or ``conversation.item.created`` (beta name).

    For model output the item arrives ``in_progress`` and without content.

    Attributes:
        event_id: The server's event id.
        item_id: ``item.id``.
        item_type: ``item.type``: ``message``, ``function_call``, ``function_call_output``, ...
        role: ``item.role`` for messages (``user``, ``assistant``, ``system``).
        status: ``item.status``, if given.
        previous_item_id: The item it follows, if any.
        item: The ``item`` object as received.
    """

    event_id: str
    item_id: str
    item_type: str
    role: str | None
    status: str | None
    previous_item_id: str | None
    item: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemDone:
    """``conversation.item.done``: an item is complete.

    Attributes:
        event_id: The server's event id.
        item_id: ``item.id``.
        item_type: ``item.type``.
        role: ``item.role``, for messages.
        status: ``item.status``, if given.
        previous_item_id: The item it follows, if any.
        item: The ``item`` object as received.
    """

    event_id: str
    item_id: str
    item_type: str
    role: str | None
    status: str | None
    previous_item_id: str | None
    item: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemTruncated:
    """``conversation.item.truncated``: confirms a ``conversation.item.truncate``.

    Attributes:
        event_id: The server's event id.
        item_id: The truncated assistant item.
        content_index: The content part truncated.
        audio_end_ms: Audio kept, in ms; the rest and the item's transcript are gone.
    """

    event_id: str
    item_id: str
    content_index: int
    audio_end_ms: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemDeleted:
    """``conversation.item.deleted``: confirms a ``conversation.item.delete``.

    Attributes:
        event_id: The server's event id.
        item_id: The deleted item.
    """

    event_id: str
    item_id: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InputTranscriptionDelta:
    """``conversation.item.input_audio_transcription.delta``: part of the caller's transcript.

    Attributes:
        event_id: The server's event id.
        item_id: The user item being transcribed.
        delta: The new text (empty if the server sent none).
    """

    event_id: str
    item_id: str
    delta: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InputTranscriptionCompleted:
    """``conversation.item.input_audio_transcription.completed``: the caller's transcript.

    Attributes:
        event_id: The server's event id.
        item_id: The user item transcribed.
        transcript: What the caller said.
    """

    event_id: str
    item_id: str
    transcript: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InputTranscriptionFailed:
    """``conversation.item.input_audio_transcription.failed``.

    Attributes:
        event_id: The server's event id.
        item_id: The user item that could not be transcribed.
        error: The ``error`` object as received (``type``, ``code``, ``message``, ``param``).
    """

    event_id: str
    item_id: str
    error: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseCreated:
    """``response.created``: a response has begun (from server VAD or a ``response.create``).

    Attributes:
        event_id: The server's event id.
        response_id: ``response.id``.
        status: ``response.status`` (``in_progress``).
        metadata: ``response.metadata``, as given in ``response.create``, if any.
        conversation_id: ``response.conversation_id``; None for an out-of-band response
            (``conversation: "none"``) and when the server did not say.
    """

    event_id: str
    response_id: str
    status: str
    metadata: Mapping[str, Any] | None = None
    conversation_id: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputItem:
    """One item of ``response.output`` in a :class:`ResponseDone`.

    Attributes:
        item_id: ``id``.
        item_type: ``type``: ``message`` or ``function_call`` (or a newer kind).
        role: ``role``, for messages.
        status: ``status`` (``completed``, ``incomplete``, ...), if given. A function call cut off
            by a cancel is ``incomplete``.
        name: The function name, for function calls.
        call_id: The call id, for function calls.
        arguments: The JSON arguments string, for function calls.
    """

    item_id: str
    item_type: str
    role: str | None = None
    status: str | None = None
    name: str | None = None
    call_id: str | None = None
    arguments: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseDone:
    """``response.done``: a response finished. Always sent, whatever the final state.

    Attributes:
        event_id: The server's event id.
        response_id: ``response.id``.
        status: ``completed``, ``cancelled``, ``failed`` or ``incomplete``.
        status_reason: ``response.status_details.reason``: ``turn_detected`` or
            ``client_cancelled`` when cancelled, ``max_output_tokens`` or ``content_filter`` when
            incomplete; None if not given.
        output: A summary of ``response.output`` (no audio).
        metadata: ``response.metadata``, if any.
        conversation_id: ``response.conversation_id``, as in :class:`ResponseCreated`.
        status_details: ``response.status_details`` as received (includes ``error`` of a failed
            response), if any.
        usage: ``response.usage`` as received, if any.
    """

    event_id: str
    response_id: str
    status: str
    status_reason: str | None
    output: tuple[OutputItem, ...]
    metadata: Mapping[str, Any] | None = None
    conversation_id: str | None = None
    status_details: Mapping[str, Any] | None = None
    usage: Mapping[str, Any] | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputItemAdded:
    """``response.output_item.added``: a response started an item (message or function call).

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        output_index: The item's index in the response's output.
        item_id: ``item.id``.
        item_type: ``item.type``.
        role: ``item.role``, for messages.
        status: ``item.status``, if given.
        name: ``item.name``, for function calls.
        call_id: ``item.call_id``, for function calls.
    """

    event_id: str
    response_id: str
    output_index: int
    item_id: str
    item_type: str
    role: str | None = None
    status: str | None = None
    name: str | None = None
    call_id: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputItemDone:
    """``response.output_item.done``: a response finished an item.

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        output_index: The item's index in the response's output.
        item_id: ``item.id``.
        item_type: ``item.type``.
        role: ``item.role``, for messages.
        status: ``item.status``, if given.
        name: ``item.name``, for function calls.
        call_id: ``item.call_id``, for function calls.
        arguments: ``item.arguments`` (a JSON string), for function calls.
    """

    event_id: str
    response_id: str
    output_index: int
    item_id: str
    item_type: str
    role: str | None = None
    status: str | None = None
    name: str | None = None
    call_id: str | None = None
    arguments: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ContentPartAdded:
    """``response.content_part.added``.

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        item_id: The item the part belongs to.
        output_index: The item's index in the response's output.
        content_index: The part's index in the item's content.
    """

    event_id: str
    response_id: str
    item_id: str
    output_index: int
    content_index: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ContentPartDone:
    """``response.content_part.done``.

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        item_id: The item the part belongs to.
        output_index: The item's index in the response's output.
        content_index: The part's index in the item's content.
    """

    event_id: str
    response_id: str
    item_id: str
    output_index: int
    content_index: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioDelta:
    """``response.output_audio.delta`` (GA) or ``response.audio.delta`` (beta): model audio.

    ``payload`` and ``audio`` are left out of the ``repr``, so logging the event never logs audio.

    Attributes:
        event_id: The server's event id.
        response_id: The response producing the audio.
        item_id: The assistant item the audio belongs to.
        output_index: The item's index in the response's output.
        content_index: The audio part's index in the item's content.
        payload: ``delta`` exactly as received (base64), to pass through to Twilio unchanged.
        audio: The decoded audio, in the session's output format.
    """

    event_id: str
    response_id: str
    item_id: str
    output_index: int
    content_index: int
    payload: str = field(repr=False)
    audio: bytes = field(repr=False)

    @property
    def num_bytes(self) -> int:
        """The decoded audio's length in bytes (8 bytes per ms for G.711 at 8 kHz)."""
        return len(self.audio)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioDone:
    """``response.output_audio.done`` (GA) or ``response.audio.done`` (beta).

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        item_id: The assistant item.
        output_index: The item's index in the response's output.
        content_index: The audio part's index in the item's content.
    """

    event_id: str
    response_id: str
    item_id: str
    output_index: int
    content_index: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptDelta:
    """``response.output_audio_transcript.delta`` (GA), ``response.audio_transcript.delta`` (beta).

    The text being generated, not what the caller has heard.

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        item_id: The assistant item.
        delta: The new text.
    """

    event_id: str
    response_id: str
    item_id: str
    delta: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptDone:
    """``response.output_audio_transcript.done`` (GA) or ``response.audio_transcript.done`` (beta).

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        item_id: The assistant item.
        transcript: The whole transcript of the item's audio.
    """

    event_id: str
    response_id: str
    item_id: str
    transcript: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    """``response.output_text.delta`` (GA) or ``response.text.delta`` (beta).

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        item_id: The assistant item.
        delta: The new text.
    """

    event_id: str
    response_id: str
    item_id: str
    delta: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TextDone:
    """``response.output_text.done`` (GA) or ``response.text.done`` (beta).

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        item_id: The assistant item.
        text: The whole text.
    """

    event_id: str
    response_id: str
    item_id: str
    text: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionCallArgumentsDelta:
    """``response.function_call_arguments.delta``.

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        item_id: The function call item.
        call_id: The call id.
        delta: The next piece of the JSON arguments string.
    """

    event_id: str
    response_id: str
    item_id: str
    call_id: str
    delta: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionCallArgumentsDone:
    """``response.function_call_arguments.done``; also sent when the response is cut off.

    Attributes:
        event_id: The server's event id.
        response_id: The response.
        item_id: The function call item.
        call_id: The call id (answer with :func:`function_call_output`).
        name: The function name (absent on some API versions).
        arguments: The whole JSON arguments string.
    """

    event_id: str
    response_id: str
    item_id: str
    call_id: str
    name: str | None
    arguments: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitsUpdated:
    """``rate_limits.updated``: sent at the start of a response.

    Attributes:
        event_id: The server's event id.
        rate_limits: The ``rate_limits`` objects as received (``name``, ``limit``, ``remaining``,
            ``reset_seconds``).
    """

    event_id: str
    rate_limits: tuple[Mapping[str, Any], ...]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputAudioBufferStarted:
    """``output_audio_buffer.started`` (WebRTC/SIP only).

    Attributes:
        event_id: The server's event id.
        response_id: The response whose audio started, if given.
    """

    event_id: str
    response_id: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputAudioBufferStopped:
    """``output_audio_buffer.stopped`` (WebRTC/SIP only).

    Attributes:
        event_id: The server's event id.
        response_id: The response whose audio stopped, if given.
    """

    event_id: str
    response_id: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputAudioBufferCleared:
    """``output_audio_buffer.cleared`` (WebRTC/SIP only).

    Attributes:
        event_id: The server's event id.
        response_id: The response whose audio was cleared, if given.
    """

    event_id: str
    response_id: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeError:
    """``error``: the server refused something. Most errors leave the session open.

    Expected races arrive here too, e.g. ``code="response_cancel_not_active"`` (a cancel that
    landed after ``response.done``: harmless) and ``"conversation_already_has_active_response"``.

    Attributes:
        event_id: The server's event id.
        error_type: ``error.type``, e.g. ``invalid_request_error``.
        code: ``error.code``, if given.
        message: ``error.message``.
        param: ``error.param``, the offending parameter, if given.
        client_event_id: ``error.event_id``: the ``event_id`` of the **client** event that caused
            the error, if that event carried one.
    """

    event_id: str
    error_type: str
    code: str | None
    message: str
    param: str | None = None
    client_event_id: str | None = None


#: Every event :func:`parse_realtime_event` can return.
RealtimeServerEvent: TypeAlias = (
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | InputAudioCommitted
    | InputAudioCleared
    | InputAudioTimeoutTriggered
    | ItemAdded
    | ItemDone
    | ItemTruncated
    | ItemDeleted
    | InputTranscriptionDelta
    | InputTranscriptionCompleted
    | InputTranscriptionFailed
    | ResponseCreated
    | ResponseDone
    | OutputItemAdded
    | OutputItemDone
    | ContentPartAdded
    | ContentPartDone
    | AudioDelta
    | AudioDone
    | TranscriptDelta
    | TranscriptDone
    | TextDelta
    | TextDone
    | FunctionCallArgumentsDelta
    | FunctionCallArgumentsDone
    | RateLimitsUpdated
    | OutputAudioBufferStarted
    | OutputAudioBufferStopped
    | OutputAudioBufferCleared
    | RealtimeError
    | UnknownEvent
)

# ============================================================================================
# Parsing

_Parser: TypeAlias = Callable[[Fields, AudioFormat], RealtimeServerEvent]


def _audio_format(f: Fields, key: str) -> AudioFormat | None:
    """A GA format object (``{"type": "audio/pcm", "rate": 24000}``) or a beta format string."""
    value = f.data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        known = _BETA_FORMATS.get(value)
        if known is None:
            raise f.error(key, f"unsupported audio format {quote(value)}")
        return known
    fmt = f.req_obj(key)
    encoding = fmt.req_str("type")
    if encoding == "audio/pcm":
        rate = fmt.opt_int("rate")
        if rate is None or rate == _PCM_RATE:
            return PCM24K
        if rate == 0 or rate % 1000:
            raise fmt.error("rate", f"expected a positive multiple of 1000 Hz, got {rate}")
        return AudioFormat(encoding="audio/pcm", sample_rate=rate)
    if encoding in ("audio/pcmu", "audio/pcma"):
        rate = fmt.opt_int("rate")
        if rate is not None and rate != _G711_RATE:
            raise fmt.error("rate", f"{encoding} is always {_G711_RATE} Hz, got {rate}")
        return PCMU if encoding == "audio/pcmu" else PCMA
    raise fmt.error("type", f"unsupported audio format {quote(encoding)}")


def _turn_detection(f: Fields, key: str) -> TurnDetection | None:
    td = f.opt_obj(key)
    if td is None:
        return None
    return TurnDetection(
        type=td.req_str("type"),
        interrupt_response=td.bool_or("interrupt_response", True),
        create_response=td.bool_or("create_response", True),
        threshold=td.opt_float("threshold"),
        prefix_padding_ms=td.opt_int("prefix_padding_ms"),
        silence_duration_ms=td.opt_int("silence_duration_ms"),
        eagerness=td.opt_str("eagerness"),
        idle_timeout_ms=td.opt_int("idle_timeout_ms"),
    )


def _session_fields(f: Fields) -> dict[str, Any]:
    session = f.req_obj("session")
    audio = session.opt_obj("audio")
    audio_in = audio.opt_obj("input") if audio is not None else None
    audio_out = audio.opt_obj("output") if audio is not None else None
    # GA keeps these under session.audio.*, beta at the top of the session.
    if audio_in is not None and "turn_detection" in audio_in.data:
        present, turn_detection = True, _turn_detection(audio_in, "turn_detection")
    elif "turn_detection" in session.data:
        present, turn_detection = True, _turn_detection(session, "turn_detection")
    else:
        present, turn_detection = False, None
    input_format = None if audio_in is None else _audio_format(audio_in, "format")
    if input_format is None:
        input_format = _audio_format(session, "input_audio_format")
    output_format = None if audio_out is None else _audio_format(audio_out, "format")
    if output_format is None:
        output_format = _audio_format(session, "output_audio_format")
    return {
        "event_id": f.req_str("event_id"),
        "session": session.data,
        "turn_detection": turn_detection,
        "turn_detection_present": present,
        "input_format": input_format,
        "output_format": output_format,
    }


def _session_created(f: Fields, _fmt: AudioFormat) -> SessionCreated:
    return SessionCreated(**_session_fields(f))


def _session_updated(f: Fields, _fmt: AudioFormat) -> SessionUpdated:
    return SessionUpdated(**_session_fields(f))


def _speech_started(f: Fields, _fmt: AudioFormat) -> SpeechStarted:
    return SpeechStarted(
        event_id=f.req_str("event_id"),
        audio_start_ms=f.req_int("audio_start_ms"),
        item_id=f.req_str("item_id"),
    )


def _speech_stopped(f: Fields, _fmt: AudioFormat) -> SpeechStopped:
    return SpeechStopped(
        event_id=f.req_str("event_id"),
        audio_end_ms=f.req_int("audio_end_ms"),
        item_id=f.req_str("item_id"),
    )


def _committed(f: Fields, _fmt: AudioFormat) -> InputAudioCommitted:
    return InputAudioCommitted(
        event_id=f.req_str("event_id"),
        item_id=f.req_str("item_id"),
        previous_item_id=f.opt_str("previous_item_id"),
    )


def _cleared(f: Fields, _fmt: AudioFormat) -> InputAudioCleared:
    return InputAudioCleared(event_id=f.req_str("event_id"))


def _timeout_triggered(f: Fields, _fmt: AudioFormat) -> InputAudioTimeoutTriggered:
    return InputAudioTimeoutTriggered(
        event_id=f.req_str("event_id"),
        audio_start_ms=f.req_int("audio_start_ms"),
        audio_end_ms=f.req_int("audio_end_ms"),
        item_id=f.req_str("item_id"),
    )


def _item_fields(f: Fields) -> dict[str, Any]:
    item = f.req_obj("item")
    return {
        "event_id": f.req_str("event_id"),
        "item_id": item.req_str("id"),
        "item_type": item.req_str("type"),
        "role": item.opt_str("role"),
        "status": item.opt_str("status"),
        "previous_item_id": f.opt_str("previous_item_id"),
        "item": item.data,
    }


def _item_added(f: Fields, _fmt: AudioFormat) -> ItemAdded:
    return ItemAdded(**_item_fields(f))


def _item_done(f: Fields, _fmt: AudioFormat) -> ItemDone:
    return ItemDone(**_item_fields(f))


def _item_truncated(f: Fields, _fmt: AudioFormat) -> ItemTruncated:
    return ItemTruncated(
        event_id=f.req_str("event_id"),
        item_id=f.req_str("item_id"),
        content_index=f.req_int("content_index"),
        audio_end_ms=f.req_int("audio_end_ms"),
    )


def _item_deleted(f: Fields, _fmt: AudioFormat) -> ItemDeleted:
    return ItemDeleted(event_id=f.req_str("event_id"), item_id=f.req_str("item_id"))


def _input_transcription_delta(f: Fields, _fmt: AudioFormat) -> InputTranscriptionDelta:
    return InputTranscriptionDelta(
        event_id=f.req_str("event_id"), item_id=f.req_str("item_id"), delta=f.str_or("delta", "")
    )


def _input_transcription_completed(f: Fields, _fmt: AudioFormat) -> InputTranscriptionCompleted:
    return InputTranscriptionCompleted(
        event_id=f.req_str("event_id"),
        item_id=f.req_str("item_id"),
        transcript=f.req_str("transcript"),
    )


def _input_transcription_failed(f: Fields, _fmt: AudioFormat) -> InputTranscriptionFailed:
    return InputTranscriptionFailed(
        event_id=f.req_str("event_id"), item_id=f.req_str("item_id"), error=f.req_mapping("error")
    )


def _response_created(f: Fields, _fmt: AudioFormat) -> ResponseCreated:
    response = f.req_obj("response")
    return ResponseCreated(
        event_id=f.req_str("event_id"),
        response_id=response.req_str("id"),
        status=response.req_str("status"),
        metadata=response.opt_mapping("metadata"),
        conversation_id=response.opt_str("conversation_id"),
    )


def _output_item(response: Fields, index: int, value: object) -> OutputItem:
    item = response.item("output", index, value)
    return OutputItem(
        item_id=item.req_str("id"),
        item_type=item.req_str("type"),
        role=item.opt_str("role"),
        status=item.opt_str("status"),
        name=item.opt_str("name"),
        call_id=item.opt_str("call_id"),
        arguments=item.opt_str("arguments"),
    )


def _response_done(f: Fields, _fmt: AudioFormat) -> ResponseDone:
    response = f.req_obj("response")
    details = response.opt_obj("status_details")
    output = () if response.data.get("output") is None else response.req_list("output")
    return ResponseDone(
        event_id=f.req_str("event_id"),
        response_id=response.req_str("id"),
        status=response.req_str("status"),
        status_reason=None if details is None else details.opt_str("reason"),
        output=tuple(_output_item(response, i, v) for i, v in enumerate(output)),
        metadata=response.opt_mapping("metadata"),
        conversation_id=response.opt_str("conversation_id"),
        status_details=None if details is None else details.data,
        usage=response.opt_mapping("usage"),
    )


def _output_item_added(f: Fields, _fmt: AudioFormat) -> OutputItemAdded:
    item = f.req_obj("item")
    return OutputItemAdded(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        output_index=f.req_int("output_index"),
        item_id=item.req_str("id"),
        item_type=item.req_str("type"),
        role=item.opt_str("role"),
        status=item.opt_str("status"),
        name=item.opt_str("name"),
        call_id=item.opt_str("call_id"),
    )


def _output_item_done(f: Fields, _fmt: AudioFormat) -> OutputItemDone:
    item = f.req_obj("item")
    return OutputItemDone(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        output_index=f.req_int("output_index"),
        item_id=item.req_str("id"),
        item_type=item.req_str("type"),
        role=item.opt_str("role"),
        status=item.opt_str("status"),
        name=item.opt_str("name"),
        call_id=item.opt_str("call_id"),
        arguments=item.opt_str("arguments"),
    )


def _content_part_added(f: Fields, _fmt: AudioFormat) -> ContentPartAdded:
    return ContentPartAdded(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        item_id=f.req_str("item_id"),
        output_index=f.req_int("output_index"),
        content_index=f.req_int("content_index"),
    )


def _content_part_done(f: Fields, _fmt: AudioFormat) -> ContentPartDone:
    return ContentPartDone(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        item_id=f.req_str("item_id"),
        output_index=f.req_int("output_index"),
        content_index=f.req_int("content_index"),
    )


def _audio_delta(f: Fields, fmt: AudioFormat) -> AudioDelta:
    event_id = f.req_str("event_id")
    response_id = f.req_str("response_id")
    item_id = f.req_str("item_id")
    output_index = f.req_int("output_index")
    content_index = f.req_int("content_index")
    payload, audio = f.req_base64("delta")
    if len(audio) % fmt.sample_width:
        raise f.error(
            "delta",
            f"{len(audio)} bytes is not a whole number of {fmt.sample_width * 8}-bit samples",
        )
    return AudioDelta(
        event_id=event_id,
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        payload=payload,
        audio=audio,
    )


def _audio_done(f: Fields, _fmt: AudioFormat) -> AudioDone:
    return AudioDone(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        item_id=f.req_str("item_id"),
        output_index=f.req_int("output_index"),
        content_index=f.req_int("content_index"),
    )


def _transcript_delta(f: Fields, _fmt: AudioFormat) -> TranscriptDelta:
    return TranscriptDelta(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        item_id=f.req_str("item_id"),
        delta=f.req_str("delta"),
    )


def _transcript_done(f: Fields, _fmt: AudioFormat) -> TranscriptDone:
    return TranscriptDone(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        item_id=f.req_str("item_id"),
        transcript=f.req_str("transcript"),
    )


def _text_delta(f: Fields, _fmt: AudioFormat) -> TextDelta:
    return TextDelta(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        item_id=f.req_str("item_id"),
        delta=f.req_str("delta"),
    )


def _text_done(f: Fields, _fmt: AudioFormat) -> TextDone:
    return TextDone(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        item_id=f.req_str("item_id"),
        text=f.req_str("text"),
    )


def _arguments_delta(f: Fields, _fmt: AudioFormat) -> FunctionCallArgumentsDelta:
    return FunctionCallArgumentsDelta(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        item_id=f.req_str("item_id"),
        call_id=f.req_str("call_id"),
        delta=f.req_str("delta"),
    )


def _arguments_done(f: Fields, _fmt: AudioFormat) -> FunctionCallArgumentsDone:
    return FunctionCallArgumentsDone(
        event_id=f.req_str("event_id"),
        response_id=f.req_str("response_id"),
        item_id=f.req_str("item_id"),
        call_id=f.req_str("call_id"),
        name=f.opt_str("name"),
        arguments=f.req_str("arguments"),
    )


def _rate_limits(f: Fields, _fmt: AudioFormat) -> RateLimitsUpdated:
    limits = f.req_list("rate_limits")
    return RateLimitsUpdated(
        event_id=f.req_str("event_id"),
        rate_limits=tuple(f.item("rate_limits", i, v).data for i, v in enumerate(limits)),
    )


def _buffer_started(f: Fields, _fmt: AudioFormat) -> OutputAudioBufferStarted:
    return OutputAudioBufferStarted(
        event_id=f.req_str("event_id"), response_id=f.opt_str("response_id")
    )


def _buffer_stopped(f: Fields, _fmt: AudioFormat) -> OutputAudioBufferStopped:
    return OutputAudioBufferStopped(
        event_id=f.req_str("event_id"), response_id=f.opt_str("response_id")
    )


def _buffer_cleared(f: Fields, _fmt: AudioFormat) -> OutputAudioBufferCleared:
    return OutputAudioBufferCleared(
        event_id=f.req_str("event_id"), response_id=f.opt_str("response_id")
    )


def _error(f: Fields, _fmt: AudioFormat) -> RealtimeError:
    error = f.req_obj("error")
    return RealtimeError(
        event_id=f.req_str("event_id"),
        error_type=error.req_str("type"),
        code=error.opt_str("code"),
        message=error.req_str("message"),
        param=error.opt_str("param"),
        client_event_id=error.opt_str("event_id"),
    )


#: Wire type -> parser. GA names and beta aliases side by side (PROTOCOLS.md section 5).
_PARSERS: Final[Mapping[str, _Parser]] = {
    "session.created": _session_created,
    "session.updated": _session_updated,
    "input_audio_buffer.speech_started": _speech_started,
    "input_audio_buffer.speech_stopped": _speech_stopped,
    "input_audio_buffer.committed": _committed,
    "input_audio_buffer.cleared": _cleared,
    "input_audio_buffer.timeout_triggered": _timeout_triggered,
    "conversation.item.added": _item_added,
    "conversation.item.created": _item_added,  # beta name, still in the GA union
    "conversation.item.done": _item_done,
    "conversation.item.truncated": _item_truncated,
    "conversation.item.deleted": _item_deleted,
    "conversation.item.input_audio_transcription.delta": _input_transcription_delta,
    "conversation.item.input_audio_transcription.completed": _input_transcription_completed,
    "conversation.item.input_audio_transcription.failed": _input_transcription_failed,
    "response.created": _response_created,
    "response.done": _response_done,
    "response.output_item.added": _output_item_added,
    "response.output_item.done": _output_item_done,
    "response.content_part.added": _content_part_added,
    "response.content_part.done": _content_part_done,
    "response.output_audio.delta": _audio_delta,
    "response.audio.delta": _audio_delta,  # beta
    "response.output_audio.done": _audio_done,
    "response.audio.done": _audio_done,  # beta
    "response.output_audio_transcript.delta": _transcript_delta,
    "response.audio_transcript.delta": _transcript_delta,  # beta
    "response.output_audio_transcript.done": _transcript_done,
    "response.audio_transcript.done": _transcript_done,  # beta
    "response.output_text.delta": _text_delta,
    "response.text.delta": _text_delta,  # beta
    "response.output_text.done": _text_done,
    "response.text.done": _text_done,  # beta
    "response.function_call_arguments.delta": _arguments_delta,
    "response.function_call_arguments.done": _arguments_done,
    "rate_limits.updated": _rate_limits,
    "output_audio_buffer.started": _buffer_started,
    "output_audio_buffer.stopped": _buffer_stopped,
    "output_audio_buffer.cleared": _buffer_cleared,
    "error": _error,
}

_TEXT_OR_MAPPING: Final = (str, bytes, bytearray, memoryview, Mapping)


def parse_realtime_event(
    message: object, *, audio_format: AudioFormat = PCMU
) -> RealtimeServerEvent:
    """Parse one OpenAI Realtime server event.

    Args:
        message: A JSON text frame (``str`` or ``bytes``), an already decoded mapping, or an event
            model of the ``openai`` SDK (anything with a ``type`` string attribute and a
            ``model_dump()`` method). The SDK may build an unknown or beta-named event as the
            wrong class but keeps its ``type``: the ``type`` string decides, never the class.
        audio_format: The session's output audio format, used to check audio deltas (16-bit PCM
            must have an even number of bytes). Default :data:`PCMU`.

    Returns:
        The typed event, or an :class:`~voiceguard.protocol.UnknownEvent` for a type that is not
        modelled.

    Raises:
        RemoteProtocolError: If the message is not a JSON object with a string ``type``, or an
            event of a modelled type lacks a field, has one of the wrong type, a negative count
            of ms, bad base64 audio, or half a 16-bit sample. No other exception escapes.
    """
    if isinstance(message, _TEXT_OR_MAPPING):
        data = load_message(REALTIME, message)
        event_type = data.get("type")
    else:
        try:
            event_type = getattr(message, "type", None)
            has_dump = callable(getattr(message, "model_dump", None))
        except Exception:  # a foreign object's property raised
            event_type, has_dump = None, False
        if not has_dump:
            raise error(
                REALTIME,
                None,
                None,
                "expected JSON text, a mapping, or an event model with .type and model_dump(), "
                f"got {type(message).__name__}",
            )
        data = dump_model(REALTIME, message)
    if not isinstance(event_type, str):
        problem = (
            "missing"
            if event_type is None and "type" not in data
            else f"expected a string, got {json_type(event_type)}"
        )
        raise error(REALTIME, None, "type", problem)
    parse = _PARSERS.get(event_type)
    if parse is None:
        return UnknownEvent(type=event_type, raw=data)
    return parse(Fields(REALTIME, event_type, data), audio_format)


# ============================================================================================
# Builders (client events)

#: Name of the function tool built by :func:`end_call_tool`.
END_CALL_TOOL_NAME: Final = "end_call"

_MAX_EVENT_ID: Final = 512
_EAGERNESS: Final = ("low", "medium", "high", "auto")


def _event(event_type: str, event_id: object) -> dict[str, Any]:
    message: dict[str, Any] = {"type": event_type}
    if event_id is not None:
        if not isinstance(event_id, str) or not 0 < len(event_id) <= _MAX_EVENT_ID:
            raise LocalProtocolError(
                f"{event_type}: event_id must be a non-empty string of at most {_MAX_EVENT_ID} "
                f"characters, got {quote(event_id)}"
            )
        message["event_id"] = event_id
    return message


def _check_str(event_type: str, name: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        kind = "a string" if empty else "a non-empty string"
        raise LocalProtocolError(f"{event_type}: {name} must be {kind}, got {quote(value)}")
    return value


def _check_ms(event_type: str, name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LocalProtocolError(
            f"{event_type}: {name} must be a non-negative integer, got {quote(value)}"
        )
    return value


def _check_bool(event_type: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise LocalProtocolError(f"{event_type}: {name} must be True or False, got {quote(value)}")
    return value


def _check_format(event_type: str, name: str, value: object) -> AudioFormat:
    if not isinstance(value, AudioFormat):
        raise LocalProtocolError(f"{event_type}: {name} must be an AudioFormat, got {quote(value)}")
    return value


def _turn_detection_config(
    kind: str | None,
    *,
    threshold: object,
    prefix_padding_ms: int | None,
    silence_duration_ms: int | None,
    eagerness: str | None,
    interrupt_response: bool,
    create_response: bool,
) -> dict[str, Any] | None:
    et = "session.update"
    vad_options = {
        "vad_threshold": threshold,
        "prefix_padding_ms": prefix_padding_ms,
        "silence_duration_ms": silence_duration_ms,
        "eagerness": eagerness,
    }
    if kind is None:
        given = [name for name, value in vad_options.items() if value is not None]
        if given:
            raise LocalProtocolError(f"{et}: {', '.join(given)} given but turn_detection is None")
        return None
    if kind not in ("server_vad", "semantic_vad"):
        raise LocalProtocolError(
            f"{et}: turn_detection must be 'server_vad', 'semantic_vad' or None, got {quote(kind)}"
        )
    config: dict[str, Any] = {"type": kind}
    if kind == "server_vad":
        if eagerness is not None:
            raise LocalProtocolError(f"{et}: eagerness applies to semantic_vad only")
        if threshold is not None:
            if (
                not isinstance(threshold, (int, float))
                or isinstance(threshold, bool)
                or not 0.0 <= threshold <= 1.0
            ):
                raise LocalProtocolError(
                    f"{et}: vad_threshold must be a number from 0 to 1, got {quote(threshold)}"
                )
            config["threshold"] = float(threshold)
        if prefix_padding_ms is not None:
            config["prefix_padding_ms"] = _check_ms(et, "prefix_padding_ms", prefix_padding_ms)
        if silence_duration_ms is not None:
            config["silence_duration_ms"] = _check_ms(
                et, "silence_duration_ms", silence_duration_ms
            )
    else:
        given = [
            name for name, value in vad_options.items() if value is not None and name != "eagerness"
        ]
        if given:
            raise LocalProtocolError(f"{et}: {', '.join(given)} apply to server_vad only")
        if eagerness is not None:
            if eagerness not in _EAGERNESS:
                allowed = ", ".join(_EAGERNESS)
                raise LocalProtocolError(
                    f"{et}: eagerness must be one of {allowed}, got {quote(eagerness)}"
                )
            config["eagerness"] = eagerness
    config["interrupt_response"] = _check_bool(et, "interrupt_response", interrupt_response)
    config["create_response"] = _check_bool(et, "create_response", create_response)
    return config


def session_update(
    *,
    instructions: str | None = None,
    voice: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    turn_detection: Literal["server_vad", "semantic_vad"] | None = "server_vad",
    vad_threshold: float | None = None,
    prefix_padding_ms: int | None = None,
    silence_duration_ms: int | None = None,
    eagerness: Literal["low", "medium", "high", "auto"] | None = None,
    interrupt_response: bool = False,
    create_response: bool = False,
    input_format: AudioFormat = PCMU,
    output_format: AudioFormat = PCMU,
    input_transcription_model: str | None = None,
    model: str | None = None,
    beta: bool = False,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Build a ``session.update``. The defaults give voiceguard's full turn control.

    That is: ``audio/pcmu`` both ways (Twilio audio passes through untouched) and ``server_vad``
    with ``interrupt_response`` and ``create_response`` off, so the server reports speech but never
    cancels or creates a response by itself. Options left at None are not sent (``session.update``
    is a partial update), except ``turn_detection=None``, which sends ``null``: turn detection off.

    Args:
        instructions: The system instructions.
        voice: The output voice (e.g. ``"marin"``); fixed once the model has spoken.
        tools: Tool definitions, e.g. ``[end_call_tool()]``; ``[]`` removes all tools.
        turn_detection: ``"server_vad"``, ``"semantic_vad"``, or None for no turn detection.
        vad_threshold: ``server_vad`` activation threshold, 0 to 1.
        prefix_padding_ms: ``server_vad`` audio kept from before the speech.
        silence_duration_ms: ``server_vad`` silence that ends a turn.
        eagerness: ``semantic_vad`` eagerness.
        interrupt_response: Let the server cancel the active response when speech starts.
        create_response: Let the server create a response when speech stops.
        input_format: Format of the audio voiceguard appends.
        output_format: Format of the audio the model sends.
        input_transcription_model: Turn on transcription of the caller with this model
            (e.g. ``"gpt-4o-transcribe"``).
        model: The model (GA: ``session.model``).
        beta: Build the beta shape (``input_audio_format``, top-level ``turn_detection``, no
            ``session.type``) instead of the GA shape (``session.type: "realtime"``,
            ``session.audio.input`` / ``session.audio.output``).
        event_id: Client event id, echoed in ``error.event_id`` if the update fails.

    Returns:
        The ``session.update`` message.

    Raises:
        LocalProtocolError: On a bad option, or an option that does not fit the turn detection
            kind (``vad_threshold`` with ``semantic_vad``, ...).
    """
    et = "session.update"
    message = _event(et, event_id)
    detection = _turn_detection_config(
        turn_detection,
        threshold=vad_threshold,
        prefix_padding_ms=prefix_padding_ms,
        silence_duration_ms=silence_duration_ms,
        eagerness=eagerness,
        interrupt_response=interrupt_response,
        create_response=create_response,
    )
    input_format = _check_format(et, "input_format", input_format)
    output_format = _check_format(et, "output_format", output_format)
    session: dict[str, Any] = {}
    if not beta:
        session["type"] = "realtime"
    if model is not None:
        session["model"] = _check_str(et, "model", model)
    if instructions is not None:
        session["instructions"] = _check_str(et, "instructions", instructions, empty=True)
    if tools is not None:
        tools_value: object = tools  # checked at run time: callers may not be type-checked
        if isinstance(tools_value, (str, bytes)) or not isinstance(tools_value, Sequence):
            raise LocalProtocolError(f"{et}: tools must be a sequence of mappings")
        tool_list = []
        for index, tool in enumerate(tools_value):
            if not isinstance(tool, Mapping):
                raise LocalProtocolError(
                    f"{et}: tools[{index}] must be a mapping, got {quote(tool)}"
                )
            tool_list.append(dict(tool))
        session["tools"] = tool_list
    if voice is not None:
        voice = _check_str(et, "voice", voice)
    transcription = (
        None
        if input_transcription_model is None
        else {"model": _check_str(et, "input_transcription_model", input_transcription_model)}
    )
    if beta:
        if voice is not None:
            session["voice"] = voice
        session["input_audio_format"] = input_format.to_beta()
        session["output_audio_format"] = output_format.to_beta()
        session["turn_detection"] = detection
        if transcription is not None:
            session["input_audio_transcription"] = transcription
    else:
        audio_input: dict[str, Any] = {
            "format": input_format.to_wire(),
            "turn_detection": detection,
        }
        if transcription is not None:
            audio_input["transcription"] = transcription
        audio_output: dict[str, Any] = {"format": output_format.to_wire()}
        if voice is not None:
            audio_output["voice"] = voice
        session["audio"] = {"input": audio_input, "output": audio_output}
    message["session"] = session
    return message


def end_call_tool(
    *, description: str = "End the phone call. Call this only after saying goodbye to the caller."
) -> dict[str, Any]:
    """The function tool ``end_call`` (no arguments), to pass in ``session_update(tools=...)``.

    The reference handler hangs up politely when the model calls it: it lets the goodbye play,
    then closes the Twilio stream.

    Args:
        description: What the model is told about the tool.

    Returns:
        ``{"type": "function", "name": "end_call", "description": ..., "parameters": {...}}``.

    Raises:
        LocalProtocolError: If *description* is not a non-empty string.
    """
    return {
        "type": "function",
        "name": END_CALL_TOOL_NAME,
        "description": _check_str("end_call_tool", "description", description),
        "parameters": {"type": "object", "properties": {}, "required": []},
    }


def response_create(
    response: Mapping[str, Any] | None = None, *, event_id: str | None = None
) -> dict[str, Any]:
    """Build a ``response.create``.

    Args:
        response: Per-response overrides (``instructions``, ``tools``, ``metadata``,
            ``conversation``, ...), sent as ``response``; omitted when None.
        event_id: Client event id, echoed in ``error.event_id`` if the create fails (e.g. with
            ``conversation_already_has_active_response``).

    Returns:
        ``{"type": "response.create"}``, plus ``response`` and ``event_id`` when given.

    Raises:
        LocalProtocolError: If *response* is not a mapping, or *event_id* is invalid.
    """
    message = _event("response.create", event_id)
    if response is not None:
        if not isinstance(response, Mapping):
            raise LocalProtocolError(
                f"response.create: response must be a mapping, got {quote(response)}"
            )
        message["response"] = dict(response)
    return message


def response_cancel(
    response_id: str | None = None, *, event_id: str | None = None
) -> dict[str, Any]:
    """Build a ``response.cancel``.

    Args:
        response_id: The response to cancel; None (the default) cancels the active response of
            the default conversation, and the key is then omitted.
        event_id: Client event id, echoed in ``error.event_id`` if the cancel fails (e.g. with
            ``response_cancel_not_active``).

    Returns:
        Exactly ``{"type": "response.cancel"}``, plus ``response_id`` and ``event_id`` when given.

    Raises:
        LocalProtocolError: If *response_id* is given but not a non-empty string.
    """
    message = _event("response.cancel", event_id)
    if response_id is not None:
        message["response_id"] = _check_str("response.cancel", "response_id", response_id)
    return message


def item_truncate(
    item_id: str, audio_end_ms: int, content_index: int = 0, *, event_id: str | None = None
) -> dict[str, Any]:
    """Build a ``conversation.item.truncate``: keep only the audio the caller heard.

    The server also deletes the item's transcript, so the model's context holds no unheard text.
    Never truncate beyond the audio received for the item: the server answers with an error.

    Args:
        item_id: The assistant audio item.
        audio_end_ms: Audio to keep, in ms (an integer, at least 0).
        content_index: The content part; 0 for audio items.
        event_id: Client event id.

    Returns:
        The ``conversation.item.truncate`` message.

    Raises:
        LocalProtocolError: If *audio_end_ms* or *content_index* is negative or not an integer,
            or *item_id* is not a non-empty string.
    """
    et = "conversation.item.truncate"
    message = _event(et, event_id)
    message["item_id"] = _check_str(et, "item_id", item_id)
    message["content_index"] = _check_ms(et, "content_index", content_index)
    message["audio_end_ms"] = _check_ms(et, "audio_end_ms", audio_end_ms)
    return message


def item_delete(item_id: str, *, event_id: str | None = None) -> dict[str, Any]:
    """Build a ``conversation.item.delete`` (e.g. for a committed turn judged to be echo).

    Args:
        item_id: The item to delete.
        event_id: Client event id.

    Returns:
        The ``conversation.item.delete`` message.

    Raises:
        LocalProtocolError: If *item_id* is not a non-empty string.
    """
    et = "conversation.item.delete"
    message = _event(et, event_id)
    message["item_id"] = _check_str(et, "item_id", item_id)
    return message


def input_audio_append(payload_b64: str, *, event_id: str | None = None) -> dict[str, Any]:
    """Build an ``input_audio_buffer.append`` (no reply comes back).

    Args:
        payload_b64: Base64 audio in the session's input format; a Twilio ``media.payload`` passes
            through unchanged when both sides use ``audio/pcmu``. It is not decoded here (this
            runs for every frame), only checked to be a string.
        event_id: Client event id.

    Returns:
        ``{"type": "input_audio_buffer.append", "audio": payload_b64}``.

    Raises:
        LocalProtocolError: If *payload_b64* is not a string.
    """
    et = "input_audio_buffer.append"
    message = _event(et, event_id)
    message["audio"] = _check_str(et, "payload_b64", payload_b64, empty=True)
    return message


def input_audio_commit(*, event_id: str | None = None) -> dict[str, Any]:
    """Build an ``input_audio_buffer.commit`` (not needed with turn detection on).

    Args:
        event_id: Client event id.

    Returns:
        ``{"type": "input_audio_buffer.commit"}``.

    Raises:
        LocalProtocolError: If *event_id* is invalid.
    """
    return _event("input_audio_buffer.commit", event_id)


def input_audio_clear(*, event_id: str | None = None) -> dict[str, Any]:
    """Build an ``input_audio_buffer.clear``.

    Args:
        event_id: Client event id.

    Returns:
        ``{"type": "input_audio_buffer.clear"}``.

    Raises:
        LocalProtocolError: If *event_id* is invalid.
    """
    return _event("input_audio_buffer.clear", event_id)


def function_call_output(
    call_id: str, output: str, *, event_id: str | None = None
) -> dict[str, Any]:
    """Build the ``conversation.item.create`` that answers a function call.

    A response is not created by this; send :func:`response_create` when the model should go on.

    Args:
        call_id: The ``call_id`` of the function call.
        output: The result, usually a JSON string.
        event_id: Client event id.

    Returns:
        ``{"type": "conversation.item.create", "item": {"type": "function_call_output",
        "call_id": ..., "output": ...}}``.

    Raises:
        LocalProtocolError: If *call_id* is not a non-empty string or *output* is not a string.
    """
    et = "conversation.item.create"
    message = _event(et, event_id)
    message["item"] = {
        "type": "function_call_output",
        "call_id": _check_str(et, "call_id", call_id),
        "output": _check_str(et, "output", output, empty=True),
    }
    return message
