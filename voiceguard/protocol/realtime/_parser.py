"""Parsing server events: one table keyed by the wire type, read by the generic reader.

Each entry of the table gives the event class and the spec of its fields, in the order they are
checked (see :mod:`voiceguard.protocol._table`). The fields that need real logic have readers of
their own: the session (:func:`~voiceguard.protocol.realtime._session.session_attrs`), the output
items of ``response.done``, the objects of ``rate_limits.updated`` and the audio delta's payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeAlias

from voiceguard.audio import PCMU, AudioFormat
from voiceguard.protocol._common import (
    REALTIME,
    Fields,
    UnknownEvent,
    b64decode,
    dump_model,
    error,
    json_type,
    load_message,
)
from voiceguard.protocol._table import (
    EventSpec,
    array,
    attr,
    attrs,
    check,
    count,
    event,
    mapping,
    nested,
    optional_mapping,
    optional_string,
    read_event,
    string,
    string_or_empty,
    table,
)
from voiceguard.protocol.realtime._events import (
    InputAudioCleared,
    InputAudioCommitted,
    InputAudioTimeoutTriggered,
    InputTranscriptionCompleted,
    InputTranscriptionDelta,
    InputTranscriptionFailed,
    ItemAdded,
    ItemDeleted,
    ItemDone,
    ItemTruncated,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    RateLimitsUpdated,
    RealtimeError,
    SpeechStarted,
    SpeechStopped,
)
from voiceguard.protocol.realtime._responses import (
    AudioDelta,
    AudioDone,
    ContentPartAdded,
    ContentPartDone,
    FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone,
    OutputItem,
    OutputItemAdded,
    OutputItemDone,
    ResponseCreated,
    ResponseDone,
    TextDelta,
    TextDone,
    TranscriptDelta,
    TranscriptDone,
)
from voiceguard.protocol.realtime._session import SessionCreated, SessionUpdated, session_attrs

__all__ = ("SERVER_EVENTS", "RealtimeServerEvent", "parse_realtime_event")

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
# Field readers of their own


def _optional_array(f: Fields, key: str) -> Any:
    """An array that may be absent or null (``response.output``)."""
    return () if f.data.get(key) is None else f.req_list(key)


def _output_items(response: Fields, key: str) -> tuple[OutputItem, ...]:
    """``response.output`` summarised: one :class:`OutputItem` per item (no audio)."""
    output = _optional_array(response, key)
    return tuple(_output_item(response.item(key, i, v)) for i, v in enumerate(output))


def _output_item(item: Fields) -> OutputItem:
    return OutputItem(
        item_id=item.req_str("id"),
        item_type=item.req_str("type"),
        role=item.opt_str("role"),
        status=item.opt_str("status"),
        name=item.opt_str("name"),
        call_id=item.opt_str("call_id"),
        arguments=item.opt_str("arguments"),
    )


def _objects(f: Fields, key: str) -> tuple[Mapping[str, Any], ...]:
    """An array of objects, each kept as received."""
    return tuple(f.item(key, i, v).data for i, v in enumerate(f.req_list(key)))


def _payload(f: Fields, key: str, audio_format: AudioFormat | None) -> dict[str, Any]:
    """An audio delta's base64 text as received and its audio, a whole number of samples."""
    payload, audio = f.req_base64(key)
    if audio_format is not None and len(audio) % audio_format.sample_width:
        raise f.error(
            key,
            f"{len(audio)} bytes is not a whole number of {audio_format.sample_width * 8}-bit "
            "samples",
        )
    return {"payload": payload, "audio": audio}


def _well_formed_delta(
    data: Mapping[str, Any], audio_format: AudioFormat | None
) -> AudioDelta | None:
    """The hot path, 50 times a second per call: a well-formed audio delta is read directly.

    Anything unusual gives None, and the field specs read it and name the field and the problem.
    """
    event_id, response_id = data.get("event_id"), data.get("response_id")
    item_id, payload = data.get("item_id"), data.get("delta")
    output_index, content_index = data.get("output_index"), data.get("content_index")
    if (
        type(event_id) is str
        and type(response_id) is str
        and type(item_id) is str
        and type(output_index) is int
        and type(content_index) is int
        and type(payload) is str
        and output_index >= 0
        and content_index >= 0
    ):
        try:
            audio = b64decode(payload)
        except ValueError:
            return None
        if audio_format is None or not len(audio) % audio_format.sample_width:
            return AudioDelta(
                event_id=event_id,
                response_id=response_id,
                item_id=item_id,
                output_index=output_index,
                content_index=content_index,
                payload=payload,
                audio=audio,
            )
    return None


# ============================================================================================
# The table

_EVENT_ID: Final = attr("event_id", string)
_RESPONSE_ID: Final = attr("response_id", string)
_ITEM_ID: Final = attr("item_id", string)
_OUTPUT_INDEX: Final = attr("output_index", count)
_CONTENT_INDEX: Final = attr("content_index", count)
#: Where a part of an item's content is: response, item, output index, content index.
_PART: Final = (_EVENT_ID, _RESPONSE_ID, _ITEM_ID, _OUTPUT_INDEX, _CONTENT_INDEX)
#: A piece of streamed text of an item.
_STREAM: Final = (_EVENT_ID, _RESPONSE_ID, _ITEM_ID)
#: What ``conversation.item.added`` / ``.done`` read of their item.
_ITEM: Final = (
    nested("item", name="item"),
    _EVENT_ID,
    attr("item_id", string, key="id", within="item"),
    attr("item_type", string, key="type", within="item"),
    attr("role", optional_string, within="item"),
    attr("status", optional_string, within="item"),
    attr("previous_item_id", optional_string),
)
#: What ``response.output_item.added`` / ``.done`` read of their item.
_OUTPUT_ITEM: Final = (
    nested("item"),
    _EVENT_ID,
    _RESPONSE_ID,
    _OUTPUT_INDEX,
    attr("item_id", string, key="id", within="item"),
    attr("item_type", string, key="type", within="item"),
    attr("role", optional_string, within="item"),
    attr("status", optional_string, within="item"),
    attr("name", optional_string, within="item"),
    attr("call_id", optional_string, within="item"),
)
_BUFFER: Final = (_EVENT_ID, attr("response_id", optional_string))

_SPECS: Final[tuple[EventSpec[RealtimeServerEvent], ...]] = (
    event("session.created", SessionCreated, attrs(session_attrs, "session"), _EVENT_ID),
    event("session.updated", SessionUpdated, attrs(session_attrs, "session"), _EVENT_ID),
    event(
        "input_audio_buffer.speech_started",
        SpeechStarted,
        _EVENT_ID,
        attr("audio_start_ms", count),
        _ITEM_ID,
    ),
    event(
        "input_audio_buffer.speech_stopped",
        SpeechStopped,
        _EVENT_ID,
        attr("audio_end_ms", count),
        _ITEM_ID,
    ),
    event(
        "input_audio_buffer.committed",
        InputAudioCommitted,
        _EVENT_ID,
        _ITEM_ID,
        attr("previous_item_id", optional_string),
    ),
    event("input_audio_buffer.cleared", InputAudioCleared, _EVENT_ID),
    event(
        "input_audio_buffer.timeout_triggered",
        InputAudioTimeoutTriggered,
        _EVENT_ID,
        attr("audio_start_ms", count),
        attr("audio_end_ms", count),
        _ITEM_ID,
    ),
    # conversation.item.created: the beta name, still in the GA union.
    event(("conversation.item.added", "conversation.item.created"), ItemAdded, *_ITEM),
    event("conversation.item.done", ItemDone, *_ITEM),
    event(
        "conversation.item.truncated",
        ItemTruncated,
        _EVENT_ID,
        _ITEM_ID,
        _CONTENT_INDEX,
        attr("audio_end_ms", count),
    ),
    event("conversation.item.deleted", ItemDeleted, _EVENT_ID, _ITEM_ID),
    event(
        "conversation.item.input_audio_transcription.delta",
        InputTranscriptionDelta,
        _EVENT_ID,
        _ITEM_ID,
        attr("delta", string_or_empty),
    ),
    event(
        "conversation.item.input_audio_transcription.completed",
        InputTranscriptionCompleted,
        _EVENT_ID,
        _ITEM_ID,
        attr("transcript", string),
    ),
    event(
        "conversation.item.input_audio_transcription.failed",
        InputTranscriptionFailed,
        _EVENT_ID,
        _ITEM_ID,
        attr("error", mapping),
    ),
    event(
        "response.created",
        ResponseCreated,
        nested("response"),
        _EVENT_ID,
        attr("response_id", string, key="id", within="response"),
        attr("status", string, within="response"),
        attr("metadata", optional_mapping, within="response"),
        attr("conversation_id", optional_string, within="response"),
    ),
    event(
        "response.done",
        ResponseDone,
        nested("response"),
        nested("status_details", name="status_details", optional=True, within="response"),
        check(_optional_array, "output", within="response"),
        _EVENT_ID,
        attr("response_id", string, key="id", within="response"),
        attr("status", string, within="response"),
        attr("status_reason", optional_string, key="reason", within="response.status_details"),
        attr("output", _output_items, within="response"),
        attr("metadata", optional_mapping, within="response"),
        attr("conversation_id", optional_string, within="response"),
        attr("usage", optional_mapping, within="response"),
    ),
    event("response.output_item.added", OutputItemAdded, *_OUTPUT_ITEM),
    event(
        "response.output_item.done",
        OutputItemDone,
        *_OUTPUT_ITEM,
        attr("arguments", optional_string, within="item"),
    ),
    event("response.content_part.added", ContentPartAdded, *_PART),
    event("response.content_part.done", ContentPartDone, *_PART),
    event(
        ("response.output_audio.delta", "response.audio.delta"),
        AudioDelta,
        *_PART,
        attrs(_payload, "delta"),
        fast=_well_formed_delta,
    ),
    event(("response.output_audio.done", "response.audio.done"), AudioDone, *_PART),
    event(
        ("response.output_audio_transcript.delta", "response.audio_transcript.delta"),
        TranscriptDelta,
        *_STREAM,
        attr("delta", string),
    ),
    event(
        ("response.output_audio_transcript.done", "response.audio_transcript.done"),
        TranscriptDone,
        *_STREAM,
        attr("transcript", string),
    ),
    event(
        ("response.output_text.delta", "response.text.delta"),
        TextDelta,
        *_STREAM,
        attr("delta", string),
    ),
    event(
        ("response.output_text.done", "response.text.done"),
        TextDone,
        *_STREAM,
        attr("text", string),
    ),
    event(
        "response.function_call_arguments.delta",
        FunctionCallArgumentsDelta,
        *_STREAM,
        attr("call_id", string),
        attr("delta", string),
    ),
    event(
        "response.function_call_arguments.done",
        FunctionCallArgumentsDone,
        *_STREAM,
        attr("call_id", string),
        attr("name", optional_string),
        attr("arguments", string),
    ),
    event(
        "rate_limits.updated",
        RateLimitsUpdated,
        check(array, "rate_limits"),
        _EVENT_ID,
        attr("rate_limits", _objects),
    ),
    event("output_audio_buffer.started", OutputAudioBufferStarted, *_BUFFER),
    event("output_audio_buffer.stopped", OutputAudioBufferStopped, *_BUFFER),
    event("output_audio_buffer.cleared", OutputAudioBufferCleared, *_BUFFER),
    event(
        "error",
        RealtimeError,
        nested("error"),
        _EVENT_ID,
        attr("error_type", string, key="type", within="error"),
        attr("code", optional_string, within="error"),
        attr("message", string, within="error"),
        attr("param", optional_string, within="error"),
        attr("client_event_id", optional_string, key="event_id", within="error"),
    ),
)

#: Wire type -> event spec: GA names and their beta aliases side by side.
SERVER_EVENTS: Final[Mapping[str, EventSpec[RealtimeServerEvent]]] = table(_SPECS)

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
    spec = SERVER_EVENTS.get(event_type)
    if spec is None:
        return UnknownEvent(type=event_type, raw=data)
    return read_event(spec, REALTIME, event_type, data, audio_format)
