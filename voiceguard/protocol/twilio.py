"""Twilio Media Streams (bidirectional, ``<Connect><Stream>``): typed messages and builders.

:func:`parse_twilio_message` turns one message from Twilio into a frozen event. Twilio sends every
number as a string (``"sequenceNumber": "2"``); the events carry them as ``int``. A message whose
``event`` is not modelled gives an :class:`~voiceguard.protocol.UnknownEvent`; a malformed message
of a modelled kind raises :class:`~voiceguard.errors.RemoteProtocolError`, never anything else.

The builders return the messages voiceguard sends to Twilio (``media``, ``mark``, ``clear``) as
plain dicts, and :func:`connect_stream_twiml` the TwiML that starts the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, final
from urllib.parse import urlsplit

from voiceguard.audio import AudioFormat
from voiceguard.errors import LocalProtocolError
from voiceguard.protocol._common import (
    MAX_DIGITS,
    TWILIO,
    Fields,
    UnknownEvent,
    b64decode,
    error,
    json_type,
    load_message,
    quote,
)
from voiceguard.protocol._table import (
    EventSpec,
    attr,
    attrs,
    decimal,
    event,
    nested,
    optional_decimal,
    read_event,
    string,
    table,
)

__all__ = (
    "MULAW_ENCODING",
    "MULAW_SAMPLE_RATE",
    "Connected",
    "DtmfReceived",
    "MarkPlayed",
    "MediaFormat",
    "MediaReceived",
    "StreamStarted",
    "StreamStopped",
    "TwilioEvent",
    "UnknownEvent",
    "clear_message",
    "connect_stream_twiml",
    "mark_message",
    "media_message",
    "parse_twilio_message",
)

#: The only encoding Twilio Media Streams use (``start.mediaFormat.encoding``).
MULAW_ENCODING: Final = "audio/x-mulaw"
#: The only sample rate Twilio Media Streams use (``start.mediaFormat.sampleRate``).
MULAW_SAMPLE_RATE: Final = 8000


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MediaFormat:
    """``start.mediaFormat``: always µ-law, 8000 Hz, mono (anything else is refused).

    Attributes:
        encoding: ``"audio/x-mulaw"``.
        sample_rate: 8000.
        channels: 1.
    """

    encoding: str
    sample_rate: int
    channels: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """``connected``: the first message of a stream.

    Attributes:
        protocol: ``"Call"``.
        version: The protocol version, e.g. ``"1.0.0"``.
    """

    protocol: str
    version: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStarted:
    """``start``: the stream's metadata, sent once.

    Attributes:
        sequence_number: ``sequenceNumber``, if given.
        stream_sid: ``streamSid``: the id every outbound message must carry.
        account_sid: ``start.accountSid``.
        call_sid: ``start.callSid`` (to end the call through the REST API).
        tracks: ``start.tracks``, e.g. ``("inbound",)``.
        custom_parameters: ``start.customParameters``: the TwiML ``<Parameter>`` values.
        media_format: ``start.mediaFormat``.
    """

    sequence_number: int | None
    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    custom_parameters: Mapping[str, str]
    media_format: MediaFormat


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MediaReceived:
    """``media``: one frame of the caller's audio (µ-law, 8 kHz: 8 bytes per ms).

    ``payload`` and ``audio`` are left out of the ``repr``, so logging the event never logs audio.

    Attributes:
        sequence_number: ``sequenceNumber``, if given.
        stream_sid: ``streamSid``.
        track: ``media.track``: ``"inbound"`` (or ``"outbound"``).
        chunk: ``media.chunk``: the frame's number, starting at 1.
        timestamp_ms: ``media.timestamp``: ms since the stream started.
        payload: ``media.payload`` exactly as received (base64), to pass through unchanged.
        audio: The decoded µ-law bytes.
    """

    sequence_number: int | None
    stream_sid: str
    track: str
    chunk: int
    timestamp_ms: int
    payload: str = field(repr=False)
    audio: bytes = field(repr=False)

    @property
    def num_bytes(self) -> int:
        """The decoded audio's length in bytes, which is its number of samples (160 per 20 ms)."""
        return len(self.audio)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MarkPlayed:
    """``mark``: Twilio echoes a mark voiceguard sent.

    It comes when the audio queued before the mark has played, **or** when a ``clear`` flushed
    it: only marks that arrive before a ``clear`` was sent mean "played".

    Attributes:
        sequence_number: ``sequenceNumber``, if given.
        stream_sid: ``streamSid``.
        name: ``mark.name``, as sent.
    """

    sequence_number: int | None
    stream_sid: str
    name: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived:
    """``dtmf``: the caller pressed a key.

    Attributes:
        sequence_number: ``sequenceNumber``, if given.
        stream_sid: ``streamSid``.
        track: ``dtmf.track`` (``"inbound_track"``).
        digit: ``dtmf.digit``, e.g. ``"1"``, ``"#"``.
    """

    sequence_number: int | None
    stream_sid: str
    track: str
    digit: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStopped:
    """``stop``: the stream stopped or the call ended.

    Attributes:
        sequence_number: ``sequenceNumber``, if given.
        stream_sid: ``streamSid``.
        account_sid: ``stop.accountSid``.
        call_sid: ``stop.callSid``.
    """

    sequence_number: int | None
    stream_sid: str
    account_sid: str
    call_sid: str


#: Every event :func:`parse_twilio_message` can return.
TwilioEvent: TypeAlias = (
    Connected
    | StreamStarted
    | MediaReceived
    | MarkPlayed
    | DtmfReceived
    | StreamStopped
    | UnknownEvent
)

# ============================================================================================
# Parsing: one table keyed by ``event``, read by the generic reader (voiceguard.protocol._table)

# Field readers of their own


def _tracks(start: Fields, key: str) -> tuple[str, ...]:
    """``start.tracks``: an array of strings."""
    tracks = start.req_list(key)
    for index, track in enumerate(tracks):
        if not isinstance(track, str):
            raise start.error(f"{key}.{index}", f"expected a string, got {json_type(track)}")
    return tuple(tracks)


def _custom_parameters(start: Fields, key: str) -> Mapping[str, str]:
    """``start.customParameters``: an object of strings, empty when absent."""
    params = start.opt_obj(key)
    if params is None:
        return {}
    for name, value in params.data.items():
        if not isinstance(value, str):
            raise params.error(str(name), f"expected a string, got {json_type(value)}")
    return params.data


def _start_stream_sid(f: Fields, key: str) -> str:
    """Top-level ``streamSid``; for ``start``, ``start.streamSid`` stands in if it is absent."""
    start = f.req_obj("start")
    if f.data.get(key) is None and key in start.data:
        return start.req_str(key)
    return f.req_str(key)


def _media_format(start: Fields, key: str) -> MediaFormat:
    """``start.mediaFormat``: µ-law at 8000 Hz, mono; anything else is refused."""
    fmt = start.req_obj(key)
    encoding = fmt.req_str("encoding")
    if encoding != MULAW_ENCODING:
        raise fmt.error("encoding", f"expected {MULAW_ENCODING!r}, got {quote(encoding)}")
    sample_rate = fmt.req_numeric_str("sampleRate")
    if sample_rate != MULAW_SAMPLE_RATE:
        raise fmt.error("sampleRate", f"expected {MULAW_SAMPLE_RATE}, got {sample_rate}")
    channels = fmt.req_numeric_str("channels")
    if channels != 1:
        raise fmt.error("channels", f"expected 1 (mono), got {channels}")
    return MediaFormat(encoding=encoding, sample_rate=sample_rate, channels=channels)


def _payload(media: Fields, key: str, _audio_format: AudioFormat | None) -> dict[str, Any]:
    """``media.payload`` as received and decoded."""
    payload, audio = media.req_base64(key)
    return {"payload": payload, "audio": audio}


def _decimal(value: object) -> int | None:
    """A well-formed Twilio number string as an int, or None for anything else."""
    if type(value) is str and 0 < len(value) <= MAX_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    return None


def _well_formed_media(
    data: Mapping[str, Any], _audio_format: AudioFormat | None
) -> MediaReceived | None:
    """The hot path, 50 times a second per call: a well-formed frame is read directly.

    Anything unusual gives None, and the field specs read it and name the field and the problem.
    """
    media = data.get("media")
    if type(media) is dict:
        stream_sid, track, payload = data.get("streamSid"), media.get("track"), media.get("payload")
        number = data.get("sequenceNumber")
        sequence_number = None if number is None else _decimal(number)
        chunk, timestamp_ms = _decimal(media.get("chunk")), _decimal(media.get("timestamp"))
        if (
            type(stream_sid) is str
            and type(track) is str
            and type(payload) is str
            and (number is None or sequence_number is not None)
            and chunk is not None
            and timestamp_ms is not None
        ):
            try:
                audio = b64decode(payload)
            except ValueError:
                return None
            return MediaReceived(
                sequence_number=sequence_number,
                stream_sid=stream_sid,
                track=track,
                chunk=chunk,
                timestamp_ms=timestamp_ms,
                payload=payload,
                audio=audio,
            )
    return None


# The table

_SEQUENCE_NUMBER: Final = attr("sequence_number", optional_decimal, key="sequenceNumber")
_STREAM_SID: Final = attr("stream_sid", string, key="streamSid")

_SPECS: Final[tuple[EventSpec[TwilioEvent], ...]] = (
    event("connected", Connected, attr("protocol", string), attr("version", string)),
    event(
        "start",
        StreamStarted,
        nested("start"),
        attr("tracks", _tracks, within="start"),
        attr("custom_parameters", _custom_parameters, key="customParameters", within="start"),
        _SEQUENCE_NUMBER,
        attr("stream_sid", _start_stream_sid, key="streamSid"),
        attr("account_sid", string, key="accountSid", within="start"),
        attr("call_sid", string, key="callSid", within="start"),
        attr("media_format", _media_format, key="mediaFormat", within="start"),
    ),
    event(
        "media",
        MediaReceived,
        nested("media"),
        _SEQUENCE_NUMBER,
        _STREAM_SID,
        attr("track", string, within="media"),
        attr("chunk", decimal, within="media"),
        attr("timestamp_ms", decimal, key="timestamp", within="media"),
        attrs(_payload, "payload", within="media"),
        fast=_well_formed_media,
    ),
    event(
        "mark",
        MarkPlayed,
        _SEQUENCE_NUMBER,
        _STREAM_SID,
        nested("mark"),
        attr("name", string, within="mark"),
    ),
    event(
        "dtmf",
        DtmfReceived,
        nested("dtmf"),
        _SEQUENCE_NUMBER,
        _STREAM_SID,
        attr("track", string, within="dtmf"),
        attr("digit", string, within="dtmf"),
    ),
    event(
        "stop",
        StreamStopped,
        nested("stop"),
        _SEQUENCE_NUMBER,
        _STREAM_SID,
        attr("account_sid", string, key="accountSid", within="stop"),
        attr("call_sid", string, key="callSid", within="stop"),
    ),
)

#: ``event`` -> event spec.
TWILIO_EVENTS: Final[Mapping[str, EventSpec[TwilioEvent]]] = table(_SPECS)


def parse_twilio_message(message: str | bytes | Mapping[str, Any]) -> TwilioEvent:
    """Parse one message from Twilio Media Streams.

    Args:
        message: A JSON text frame (``str`` or ``bytes``) or an already decoded mapping.

    Returns:
        The typed event, or an :class:`~voiceguard.protocol.UnknownEvent` for an ``event`` that
        is not modelled.

    Raises:
        RemoteProtocolError: If the message is not a JSON object with a string ``event``, or a
            modelled message lacks a field, has one of the wrong type, a number string that is not
            a non-negative integer, bad base64 audio, or a ``start.mediaFormat`` other than
            ``audio/x-mulaw`` at 8000 Hz mono. No other exception escapes.
    """
    data = load_message(TWILIO, message)
    event = data.get("event")
    if not isinstance(event, str):
        raise error(
            TWILIO,
            None,
            "event",
            "missing" if "event" not in data else f"expected a string, got {json_type(event)}",
        )
    spec = TWILIO_EVENTS.get(event)
    if spec is None:
        return UnknownEvent(type=event, raw=data)
    return read_event(spec, Fields(TWILIO, event, data), None)


# ============================================================================================
# Builders


def _check_str(what: str, name: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        kind = "a string" if empty else "a non-empty string"
        raise LocalProtocolError(f"{what}: {name} must be {kind}, got {quote(value)}")
    return value


def media_message(stream_sid: str, payload_b64: str) -> dict[str, Any]:
    """Build a ``media`` message: audio for Twilio to play to the caller.

    Args:
        stream_sid: The stream's ``streamSid`` (from :class:`StreamStarted`).
        payload_b64: Base64 raw µ-law at 8000 Hz, no file header: e.g. an
            :attr:`AudioDelta.payload <voiceguard.protocol.AudioDelta.payload>` of a ``pcmu``
            session, passed through. It is not decoded here (this runs for every frame).

    Returns:
        ``{"event": "media", "streamSid": ..., "media": {"payload": ...}}``.

    Raises:
        LocalProtocolError: If *stream_sid* is not a non-empty string or *payload_b64* is not a
            string.
    """
    return {
        "event": "media",
        "streamSid": _check_str("media", "stream_sid", stream_sid),
        "media": {"payload": _check_str("media", "payload_b64", payload_b64, empty=True)},
    }


def mark_message(stream_sid: str, name: str) -> dict[str, Any]:
    """Build a ``mark`` message; Twilio echoes it once the audio sent before it has played.

    Args:
        stream_sid: The stream's ``streamSid``.
        name: The mark's name; make it unique per chunk to learn the playback position.

    Returns:
        ``{"event": "mark", "streamSid": ..., "mark": {"name": ...}}``.

    Raises:
        LocalProtocolError: If *stream_sid* or *name* is not a non-empty string.
    """
    return {
        "event": "mark",
        "streamSid": _check_str("mark", "stream_sid", stream_sid),
        "mark": {"name": _check_str("mark", "name", name)},
    }


def clear_message(stream_sid: str) -> dict[str, Any]:
    """Build a ``clear`` message: drop all buffered audio; Twilio echoes every pending mark.

    Args:
        stream_sid: The stream's ``streamSid``.

    Returns:
        ``{"event": "clear", "streamSid": ...}``.

    Raises:
        LocalProtocolError: If *stream_sid* is not a non-empty string.
    """
    return {"event": "clear", "streamSid": _check_str("clear", "stream_sid", stream_sid)}


# --------------------------------------------------------------------------------------------
# TwiML

_TEXT_ESCAPES: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES: Final = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&apos;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def _xml_safe(name: str, value: object, *, empty: bool = True) -> str:
    """Check that *value* is a string XML 1.0 can hold (no control characters, no surrogates)."""
    text = _check_str("TwiML", name, value, empty=empty)
    for char in text:
        code = ord(char)
        if (
            (code < 0x20 and char not in "\t\n\r")
            or 0xD800 <= code <= 0xDFFF
            or code
            in (
                0xFFFE,
                0xFFFF,
            )
        ):
            raise LocalProtocolError(
                f"TwiML: {name} contains U+{code:04X}, which XML cannot represent"
            )
    return text


def _check_stream_url(url: object) -> str:
    text = _check_str("TwiML", "url", url)
    if any(char.isspace() or ord(char) < 0x20 for char in text):
        raise LocalProtocolError(f"TwiML: url must not contain whitespace, got {quote(text)}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise LocalProtocolError(f"TwiML: url is not a valid URL ({exc}): {quote(text)}") from None
    if parts.scheme.lower() != "wss":
        raise LocalProtocolError(
            f"TwiML: url must start with wss:// (Twilio error 31920), got {quote(text)}"
        )
    if not parts.hostname:
        raise LocalProtocolError(f"TwiML: url has no host: {quote(text)}")
    if "?" in text:
        raise LocalProtocolError(
            "TwiML: url must not have a query string (Twilio error 31920); pass values as "
            f"parameters, which arrive in start.customParameters. Got {quote(text)}"
        )
    if "#" in text:
        raise LocalProtocolError(f"TwiML: url must not have a fragment, got {quote(text)}")
    if port is not None and port != 443:
        raise LocalProtocolError(
            "TwiML: Twilio connects to wss:// on port 443 only (Twilio error 31910), "
            f"got port {port}"
        )
    return text


def connect_stream_twiml(
    url: str,
    *,
    parameters: Mapping[str, str] = {},
    say: str | None = None,
) -> str:
    """Build the TwiML that connects a call to a bidirectional Media Stream.

    The result looks like (on one line)::

        <?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello</Say><Connect>
        <Stream url="wss://example.com/media-stream"><Parameter name="token" value="abc"/>
        </Stream></Connect></Response>

    Nothing follows ``<Connect>``, so the call ends when the server closes the stream.

    Args:
        url: The ``wss://`` URL of the media stream WebSocket, without a query string (Twilio
            refuses one, error 31920) and on port 443.
        parameters: Values to pass to the stream as ``<Parameter>`` elements; they arrive in
            :attr:`StreamStarted.custom_parameters`.
        say: Text for Twilio to speak (``<Say>``) before connecting, if any.

    Returns:
        The TwiML document, XML-escaped.

    Raises:
        LocalProtocolError: If the URL is not ``wss://``, has a query string, a fragment or a port
            other than 443, or a text holds a character XML cannot represent.
    """
    stream_url = _check_stream_url(url)
    if not isinstance(parameters, Mapping):
        raise LocalProtocolError(f"TwiML: parameters must be a mapping, got {quote(parameters)}")
    elements = []
    for name, value in parameters.items():
        name_attr = _xml_safe("parameter name", name, empty=False).translate(_ATTR_ESCAPES)
        value_attr = _xml_safe(f"parameter {name!r}", value).translate(_ATTR_ESCAPES)
        elements.append(f'<Parameter name="{name_attr}" value="{value_attr}"/>')
    stream_open = f'<Stream url="{stream_url.translate(_ATTR_ESCAPES)}"'
    stream = f"{stream_open}>{''.join(elements)}</Stream>" if elements else f"{stream_open}/>"
    said = "" if say is None else f"<Say>{_xml_safe('say', say).translate(_TEXT_ESCAPES)}</Say>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response>{said}<Connect>{stream}</Connect></Response>"
    )
