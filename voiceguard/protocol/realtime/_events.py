"""Server events outside a response: input audio, conversation items, transcription of the
caller, rate limits, the WebRTC/SIP output buffer, and errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, final

__all__ = (
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
    "RateLimitsUpdated",
    "RealtimeError",
    "SpeechStarted",
    "SpeechStopped",
)


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
