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

The package is split by concern: the session and its audio formats (``_session``), the events
outside a response (``_events``), the events of a response (``_responses``), the table that parses
them all (``_parser``) and the builders (``_builders``). Everything public is imported from here.
"""

from __future__ import annotations

from voiceguard.audio import PCM24K, PCMA, PCMU, AudioEncoding, AudioFormat
from voiceguard.protocol._common import UnknownEvent
from voiceguard.protocol.realtime._builders import (
    END_CALL_TOOL_NAME,
    end_call_tool,
    function_arguments,
    function_call_output,
    input_audio_append,
    input_audio_clear,
    input_audio_commit,
    item_delete,
    item_truncate,
    response_cancel,
    response_create,
    session_update,
    tool_error_output,
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
from voiceguard.protocol.realtime._parser import RealtimeServerEvent, parse_realtime_event
from voiceguard.protocol.realtime._providers import PROVIDERS, ModelProvider, model_provider
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
from voiceguard.protocol.realtime._session import SessionCreated, SessionUpdated, TurnDetection

__all__ = (
    "END_CALL_TOOL_NAME",
    "PCM24K",
    "PCMA",
    "PCMU",
    "PROVIDERS",
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
    "ModelProvider",
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
    "function_arguments",
    "function_call_output",
    "input_audio_append",
    "input_audio_clear",
    "input_audio_commit",
    "item_delete",
    "item_truncate",
    "model_provider",
    "parse_realtime_event",
    "response_cancel",
    "response_create",
    "session_update",
    "tool_error_output",
)
