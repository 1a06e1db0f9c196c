"""The messages a bot sends to Twilio (``media``, ``mark``, ``clear``), read as Twilio reads them.

The simulator's caller reads the bot's messages with :func:`parse_twilio_outbound`, and so does
the middleware when it watches a bot's phone socket: one reading of the phone-bound direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, final

from voiceguard.protocol._common import (
    TWILIO,
    Fields,
    b64decode,
    error,
    json_type,
    load_message,
    quote,
)
from voiceguard.protocol._table import EventSpec, attr, attrs, event, nested, read_event, table
from voiceguard.protocol.twilio._parser import read_payload

__all__ = (
    "OutboundClear",
    "OutboundMark",
    "OutboundMedia",
    "TwilioOutbound",
    "parse_twilio_outbound",
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMedia:
    """``media``: audio for Twilio to play (µ-law, 8 kHz), queued after what it has already.

    Attributes:
        stream_sid: ``streamSid``.
        payload: ``media.payload`` exactly as sent (base64).
        audio: The decoded µ-law bytes.
    """

    stream_sid: str
    payload: str = field(repr=False)
    audio: bytes = field(repr=False)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMark:
    """``mark``: for Twilio to echo once the audio queued before it has played (or is cleared).

    Attributes:
        stream_sid: ``streamSid``.
        name: ``mark.name`` (not empty).
    """

    stream_sid: str
    name: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundClear:
    """``clear``: for Twilio to drop the audio queued and echo every pending mark.

    Attributes:
        stream_sid: ``streamSid``.
    """

    stream_sid: str


#: A message a bot sends to Twilio Media Streams.
TwilioOutbound: TypeAlias = OutboundMedia | OutboundMark | OutboundClear


def _mark_name(mark: Fields, key: str) -> str:
    name = mark.req_str(key)
    if not name:
        raise mark.error(key, "empty (Twilio needs a name to echo)")
    return name


def _well_formed_media(data: Mapping[str, Any], _audio_format: object) -> OutboundMedia | None:
    """The hot path (a bot's audio, 50 frames a second): read directly when well formed."""
    media, stream_sid = data.get("media"), data.get("streamSid")
    payload = media.get("payload") if type(media) is dict else None
    if type(stream_sid) is str and type(payload) is str:
        try:
            return OutboundMedia(stream_sid=stream_sid, payload=payload, audio=b64decode(payload))
        except ValueError:
            return None  # the field specs name the problem
    return None


_STREAM_SID: Final = attr("stream_sid", Fields.req_str, key="streamSid")

_SPECS: Final[tuple[EventSpec[TwilioOutbound], ...]] = (
    event(
        "media",
        OutboundMedia,
        _STREAM_SID,
        nested("media"),
        attrs(read_payload, "payload", within="media"),
        fast=_well_formed_media,
    ),
    event(
        "mark", OutboundMark, _STREAM_SID, nested("mark"), attr("name", _mark_name, within="mark")
    ),
    event("clear", OutboundClear, _STREAM_SID),
)

_OUTBOUND: Final[Mapping[str, EventSpec[TwilioOutbound]]] = table(_SPECS)


def parse_twilio_outbound(
    message: str | bytes | Mapping[str, Any], *, stream_sid: str | None = None
) -> TwilioOutbound:
    """Read one message a bot sends to Twilio, as Twilio would.

    Args:
        message: A JSON text frame (``str`` or ``bytes``) or an already decoded mapping.
        stream_sid: The stream the connection carries, if known: a message for another one is
            refused.

    Returns:
        The typed message.

    Raises:
        RemoteProtocolError: If it is not a JSON object, its ``event`` is not ``media``, ``mark``
            or ``clear``, or a field is missing, of the wrong type, bad base64 or an empty mark
            name, or ``streamSid`` is not *stream_sid* (naming the field). No other exception
            escapes.

    .. versionadded:: 0.2.0
    """
    data = load_message(TWILIO, message)
    kind = data.get("event")
    if not isinstance(kind, str):
        problem = "missing" if "event" not in data else f"expected a string, got {json_type(kind)}"
        raise error(TWILIO, None, "event", problem)
    spec = _OUTBOUND.get(kind)
    if spec is None:
        problem = f"expected 'media', 'mark' or 'clear', got {quote(kind)}"
        raise error(TWILIO, None, "event", problem)
    parsed = read_event(spec, TWILIO, kind, data, None)
    if stream_sid is not None and parsed.stream_sid != stream_sid:
        raise error(TWILIO, kind, "streamSid", "not the stream of this connection")
    return parsed
