"""Server events of a response: its lifecycle, its output items and content parts, and the
audio, transcript, text and function call arguments it streams."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, final

__all__ = (
    "AudioDelta",
    "AudioDone",
    "ContentPartAdded",
    "ContentPartDone",
    "FunctionCallArgumentsDelta",
    "FunctionCallArgumentsDone",
    "OutputItem",
    "OutputItemAdded",
    "OutputItemDone",
    "ResponseCreated",
    "ResponseDone",
    "TextDelta",
    "TextDone",
    "TranscriptDelta",
    "TranscriptDone",
)


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
