"""OpenAI Realtime *client* events, parsed into typed objects.

:mod:`voiceguard.protocol.realtime` parses what the server sends and builds what voiceguard sends;
this module parses the other direction: what a client (a bot, or voiceguard itself) sends to the
server. The simulator answers a refused event with an ``error`` event of type
``invalid_request_error``, as the real server does; the middleware refuses a bot's malformed event
before it reaches the model.

A malformed client event raises :class:`ClientEventError`, never anything else. Its attributes
name the event type (when the message had a string ``type``), the field (``param``) and the
problem (``message``), in the words and codes the real server uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, final

from voiceguard.audio import AudioFormat
from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol._common import REALTIME, Fields, b64decode, json_type, load_message, quote
from voiceguard.protocol._table import (
    EventSpec,
    attr,
    audio,
    check,
    event,
    mapping,
    nested,
    optional_mapping,
    optional_string,
    read_event,
    string,
    table,
)

__all__ = (
    "CLIENT_EVENT_TYPES",
    "AudioAppend",
    "AudioClear",
    "AudioCommit",
    "ClientEvent",
    "ClientEventError",
    "ItemCreate",
    "ItemDelete",
    "ItemRetrieve",
    "ItemTruncate",
    "OutputAudioClear",
    "ResponseCancel",
    "ResponseCreate",
    "SessionUpdate",
    "parse_client_event",
)

_MAX_EVENT_ID: Final = 512


class ClientEventError(Exception):
    """A client event the server refuses; becomes an ``error`` event.

    Attributes:
        code: ``error.code``: ``invalid_json``, ``missing_required_parameter``, ``invalid_type``,
            ``invalid_value``, ``integer_below_min_value``, ...
        message: ``error.message``: what is wrong, in the server's words.
        param: ``error.param``: the offending field (a dotted path for a nested one), if any.
        event_id: The offending event's ``event_id``, if it had one.
        event_type: The offending event's ``type``, if it had a string one.
    """

    def __init__(
        self,
        code: str | None,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
        event_type: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id
        self.event_type = event_type
        super().__init__(message)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdate:
    """``session.update``.

    Attributes:
        event_id: The client's event id, if any.
        session: The ``session`` object as received.
    """

    event_id: str | None
    session: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioAppend:
    """``input_audio_buffer.append``.

    Attributes:
        event_id: The client's event id, if any.
        audio: The decoded audio (left out of the ``repr``).
    """

    event_id: str | None
    audio: bytes = field(repr=False)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioCommit:
    """``input_audio_buffer.commit``.

    Attributes:
        event_id: The client's event id, if any.
    """

    event_id: str | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioClear:
    """``input_audio_buffer.clear``.

    Attributes:
        event_id: The client's event id, if any.
    """

    event_id: str | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemCreate:
    """``conversation.item.create``.

    Attributes:
        event_id: The client's event id, if any.
        item: The ``item`` object as received (it has a string ``type``).
        previous_item_id: The item it is to follow, if given.
    """

    event_id: str | None
    item: Mapping[str, Any]
    previous_item_id: str | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemTruncate:
    """``conversation.item.truncate``.

    Attributes:
        event_id: The client's event id, if any.
        item_id: The assistant item to truncate.
        content_index: The content part.
        audio_end_ms: The audio to keep, in ms.
    """

    event_id: str | None
    item_id: str
    content_index: int
    audio_end_ms: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemDelete:
    """``conversation.item.delete``.

    Attributes:
        event_id: The client's event id, if any.
        item_id: The item to delete.
    """

    event_id: str | None
    item_id: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemRetrieve:
    """``conversation.item.retrieve``.

    Attributes:
        event_id: The client's event id, if any.
        item_id: The item to retrieve.
    """

    event_id: str | None
    item_id: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseCreate:
    """``response.create``.

    Attributes:
        event_id: The client's event id, if any.
        response: The ``response`` overrides as received, if given.
    """

    event_id: str | None
    response: Mapping[str, Any] | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseCancel:
    """``response.cancel``.

    Attributes:
        event_id: The client's event id, if any.
        response_id: The response to cancel, if given.
    """

    event_id: str | None
    response_id: str | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputAudioClear:
    """``output_audio_buffer.clear`` (WebRTC/SIP only).

    Attributes:
        event_id: The client's event id, if any.
    """

    event_id: str | None


#: Every event :func:`parse_client_event` can return.
ClientEvent: TypeAlias = (
    SessionUpdate
    | AudioAppend
    | AudioCommit
    | AudioClear
    | ItemCreate
    | ItemTruncate
    | ItemDelete
    | ItemRetrieve
    | ResponseCreate
    | ResponseCancel
    | OutputAudioClear
)

# ============================================================================================
# Field readers of their own


def _audio(f: Fields, key: str, input_format: AudioFormat | None) -> bytes:
    """The base64 audio of an append, decoded; a whole number of samples of *input_format*."""
    value = f.data.get(key)
    if not isinstance(value, str):
        raise f.error(
            key, "missing" if value is None else f"expected a string, got {json_type(value)}"
        )
    try:
        decoded = b64decode(value)
    except ValueError:
        raise ClientEventError(
            "invalid_value", f"Invalid '{key}'. Expected base64-encoded audio bytes.", param=key
        ) from None
    if input_format is not None and len(decoded) % input_format.sample_width:
        bits = input_format.sample_width * 8
        raise ClientEventError(
            "invalid_value",
            f"Invalid '{key}': {len(decoded)} bytes is not a whole number of {bits}-bit samples "
            f"({input_format.encoding} at {input_format.sample_rate} Hz).",
            param=key,
        )
    return decoded


def _non_negative(f: Fields, key: str) -> int:
    """A required integer of at least 0; a negative one has a code of its own."""
    value = f.data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ClientEventError(
                "integer_below_min_value",
                f"Invalid '{key}': integer below minimum value. "
                f"Expected a value >= 0, but got {value} instead.",
                param=key,
            )
        return value
    raise f.error(
        key, "missing" if value is None else f"expected an integer, got {json_type(value)}"
    )


# ============================================================================================
# The table

#: Every client event starts with its (already checked) ``event_id``.
_EVENT_ID: Final = attr("event_id", optional_string)

_SPECS: Final[tuple[EventSpec[ClientEvent], ...]] = (
    event("session.update", SessionUpdate, _EVENT_ID, attr("session", mapping)),
    event("input_audio_buffer.append", AudioAppend, _EVENT_ID, audio("audio", _audio)),
    event("input_audio_buffer.commit", AudioCommit, _EVENT_ID),
    event("input_audio_buffer.clear", AudioClear, _EVENT_ID),
    event(
        "conversation.item.create",
        ItemCreate,
        _EVENT_ID,
        nested("item", name="item"),
        check(string, "type", within="item"),
        attr("previous_item_id", optional_string),
    ),
    event(
        "conversation.item.truncate",
        ItemTruncate,
        _EVENT_ID,
        attr("item_id", string),
        attr("content_index", _non_negative),
        attr("audio_end_ms", _non_negative),
    ),
    event("conversation.item.delete", ItemDelete, _EVENT_ID, attr("item_id", string)),
    event("conversation.item.retrieve", ItemRetrieve, _EVENT_ID, attr("item_id", string)),
    event("response.create", ResponseCreate, _EVENT_ID, attr("response", optional_mapping)),
    event("response.cancel", ResponseCancel, _EVENT_ID, attr("response_id", optional_string)),
    event("output_audio_buffer.clear", OutputAudioClear, _EVENT_ID),
)

#: Wire type -> event spec.
CLIENT_EVENTS: Final[Mapping[str, EventSpec[ClientEvent]]] = table(_SPECS)

#: Every client event type :func:`parse_client_event` understands.
CLIENT_EVENT_TYPES: Final = tuple(CLIENT_EVENTS)


def _translate(exc: RemoteProtocolError, event_id: str | None) -> ClientEventError:
    param = exc.field
    problem = exc.problem
    if problem == "missing":
        return ClientEventError(
            "missing_required_parameter",
            f"Missing required parameter: '{param}'.",
            param=param,
            event_id=event_id,
            event_type=exc.message_type,
        )
    return ClientEventError(
        "invalid_type",
        f"Invalid type for '{param}': {problem}.",
        param=param,
        event_id=event_id,
        event_type=exc.message_type,
    )


def parse_client_event(
    message: str | bytes | Mapping[str, Any], *, input_format: AudioFormat | None = None
) -> ClientEvent:
    """Parse one client event.

    Args:
        message: A JSON text frame or a decoded mapping.
        input_format: The session's input audio format. When given, the audio of an
            ``input_audio_buffer.append`` must be a whole number of its samples (for 16-bit PCM,
            an even number of bytes). When None, audio is only checked to be base64.

    Returns:
        The typed event.

    Raises:
        ClientEventError: For anything the real server would refuse with an
            ``invalid_request_error``: not JSON (``invalid_json``), no ``type``
            (``missing_required_parameter``), an unknown ``type`` (``invalid_value``), a
            missing or mistyped field (``missing_required_parameter``, ``invalid_type``), a bad
            ``event_id``, bad base64 audio or audio that is not a whole number of samples of
            *input_format* (``invalid_value``, ``param="audio"``), a negative ``audio_end_ms``
            or ``content_index`` (``integer_below_min_value``). ``event_type`` is set whenever
            the message had a string ``type``, ``param`` whenever one field is at fault.
    """
    try:
        data = load_message(REALTIME, message)
    except RemoteProtocolError as exc:
        raise ClientEventError(
            "invalid_json",
            f"We could not parse the JSON body of your event: {exc.problem}.",
        ) from None
    event_type = data.get("type")
    known_type = event_type if isinstance(event_type, str) else None
    raw_id = data.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= _MAX_EVENT_ID else None
    if raw_id is not None and event_id is None:
        raise ClientEventError(
            "invalid_value",
            f"Invalid 'event_id': expected a string of at most {_MAX_EVENT_ID} characters.",
            param="event_id",
            event_type=known_type,
        )
    if known_type is None:
        if event_type is None:
            raise ClientEventError(
                "missing_required_parameter",
                "Missing required parameter: 'type'.",
                param="type",
                event_id=event_id,
            )
        raise ClientEventError(
            "invalid_type",
            f"Invalid type for 'type': expected a string, but got {json_type(event_type)} instead.",
            param="type",
            event_id=event_id,
        )
    spec = CLIENT_EVENTS.get(known_type)
    if spec is None:
        supported = ", ".join(f"'{name}'" for name in CLIENT_EVENT_TYPES)
        raise ClientEventError(
            "invalid_value",
            f"Invalid value: {quote(known_type)}. Supported values are: {supported}.",
            param="type",
            event_id=event_id,
            event_type=known_type,
        )
    try:
        return read_event(spec, REALTIME, known_type, data, input_format)
    except RemoteProtocolError as exc:
        raise _translate(exc, event_id) from None
    except ClientEventError as exc:
        exc.event_type = known_type
        if exc.event_id is None:
            exc.event_id = event_id
        raise
