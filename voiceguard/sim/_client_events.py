"""The simulator's protocol edge: OpenAI Realtime *client* events, parsed into typed objects.

:mod:`voiceguard.protocol` parses what the server sends; the simulator needs the other direction.
A malformed client event raises :class:`ClientEventError`, which the simulator answers with an
``error`` event of type ``invalid_request_error`` (as the real server does) and never crashes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, final

from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol._common import REALTIME, Fields, b64decode, json_type, load_message, quote

__all__ = (
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
        code: ``error.code``.
        message: ``error.message``.
        param: ``error.param``, if any.
        event_id: The offending event's ``event_id``, if it had one.
        event_type: The offending event's ``type``, if known.
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
    """``session.update``."""

    event_id: str | None
    session: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioAppend:
    """``input_audio_buffer.append``."""

    event_id: str | None
    audio: bytes = field(repr=False)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioCommit:
    """``input_audio_buffer.commit``."""

    event_id: str | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioClear:
    """``input_audio_buffer.clear``."""

    event_id: str | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemCreate:
    """``conversation.item.create``."""

    event_id: str | None
    item: Mapping[str, Any]
    previous_item_id: str | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemTruncate:
    """``conversation.item.truncate``."""

    event_id: str | None
    item_id: str
    content_index: int
    audio_end_ms: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemDelete:
    """``conversation.item.delete``."""

    event_id: str | None
    item_id: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemRetrieve:
    """``conversation.item.retrieve``."""

    event_id: str | None
    item_id: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseCreate:
    """``response.create``."""

    event_id: str | None
    response: Mapping[str, Any] | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseCancel:
    """``response.cancel``."""

    event_id: str | None
    response_id: str | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputAudioClear:
    """``output_audio_buffer.clear`` (WebRTC/SIP only)."""

    event_id: str | None


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


def _session_update(f: Fields, event_id: str | None) -> ClientEvent:
    return SessionUpdate(event_id=event_id, session=f.req_mapping("session"))


def _append(f: Fields, event_id: str | None) -> ClientEvent:
    value = f.data.get("audio")
    if not isinstance(value, str):
        raise f.error(
            "audio", "missing" if value is None else f"expected a string, got {json_type(value)}"
        )
    try:
        audio = b64decode(value)
    except ValueError:
        raise ClientEventError(
            "invalid_value",
            "Invalid 'audio'. Expected base64-encoded audio bytes.",
            param="audio",
            event_id=event_id,
        ) from None
    return AudioAppend(event_id=event_id, audio=audio)


def _commit(_f: Fields, event_id: str | None) -> ClientEvent:
    return AudioCommit(event_id=event_id)


def _clear(_f: Fields, event_id: str | None) -> ClientEvent:
    return AudioClear(event_id=event_id)


def _item_create(f: Fields, event_id: str | None) -> ClientEvent:
    item = f.req_obj("item")
    item.req_str("type")
    return ItemCreate(
        event_id=event_id, item=item.data, previous_item_id=f.opt_str("previous_item_id")
    )


def _signed_int(f: Fields, key: str, event_id: str | None) -> int:
    value = f.data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ClientEventError(
                "integer_below_min_value",
                f"Invalid '{key}': integer below minimum value. "
                f"Expected a value >= 0, but got {value} instead.",
                param=key,
                event_id=event_id,
            )
        return value
    raise f.error(
        key, "missing" if value is None else f"expected an integer, got {json_type(value)}"
    )


def _truncate(f: Fields, event_id: str | None) -> ClientEvent:
    return ItemTruncate(
        event_id=event_id,
        item_id=f.req_str("item_id"),
        content_index=_signed_int(f, "content_index", event_id),
        audio_end_ms=_signed_int(f, "audio_end_ms", event_id),
    )


def _delete(f: Fields, event_id: str | None) -> ClientEvent:
    return ItemDelete(event_id=event_id, item_id=f.req_str("item_id"))


def _retrieve(f: Fields, event_id: str | None) -> ClientEvent:
    return ItemRetrieve(event_id=event_id, item_id=f.req_str("item_id"))


def _response_create(f: Fields, event_id: str | None) -> ClientEvent:
    return ResponseCreate(event_id=event_id, response=f.opt_mapping("response"))


def _response_cancel(f: Fields, event_id: str | None) -> ClientEvent:
    return ResponseCancel(event_id=event_id, response_id=f.opt_str("response_id"))


def _output_clear(_f: Fields, event_id: str | None) -> ClientEvent:
    return OutputAudioClear(event_id=event_id)


_PARSERS: Final = {
    "session.update": _session_update,
    "input_audio_buffer.append": _append,
    "input_audio_buffer.commit": _commit,
    "input_audio_buffer.clear": _clear,
    "conversation.item.create": _item_create,
    "conversation.item.truncate": _truncate,
    "conversation.item.delete": _delete,
    "conversation.item.retrieve": _retrieve,
    "response.create": _response_create,
    "response.cancel": _response_cancel,
    "output_audio_buffer.clear": _output_clear,
}

#: Every client event type the simulator understands.
CLIENT_EVENT_TYPES: Final = tuple(_PARSERS)


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


def parse_client_event(message: str | bytes | Mapping[str, Any]) -> ClientEvent:
    """Parse one client event.

    Args:
        message: A JSON text frame or a decoded mapping.

    Returns:
        The typed event.

    Raises:
        ClientEventError: For anything the real server would refuse with an
            ``invalid_request_error``: not JSON, no ``type``, an unknown ``type``, a missing or
            mistyped field, bad base64 audio, a negative ``audio_end_ms``.
    """
    try:
        data = load_message(REALTIME, message)
    except RemoteProtocolError as exc:
        raise ClientEventError(
            "invalid_json",
            f"We could not parse the JSON body of your event: {exc.problem}.",
        ) from None
    raw_id = data.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= _MAX_EVENT_ID else None
    if raw_id is not None and event_id is None:
        raise ClientEventError(
            "invalid_value",
            f"Invalid 'event_id': expected a string of at most {_MAX_EVENT_ID} characters.",
            param="event_id",
        )
    event_type = data.get("type")
    if not isinstance(event_type, str):
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
    parse = _PARSERS.get(event_type)
    if parse is None:
        supported = ", ".join(f"'{name}'" for name in CLIENT_EVENT_TYPES)
        raise ClientEventError(
            "invalid_value",
            f"Invalid value: {quote(event_type)}. Supported values are: {supported}.",
            param="type",
            event_id=event_id,
            event_type=event_type,
        )
    try:
        return parse(Fields(REALTIME, event_type, data), event_id)
    except RemoteProtocolError as exc:
        raise _translate(exc, event_id) from None
    except ClientEventError as exc:
        exc.event_type = event_type
        raise
