"""Parsing Twilio messages: one table keyed by ``event``, read by the generic reader.

Each entry gives the event class and the spec of its fields, in the order they are checked (see
:mod:`voiceguard.protocol._table`); ``start``'s tracks, custom parameters, stream sid and media
format and ``media``'s payload have readers of their own, and a well-formed ``media`` frame takes
a direct path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from voiceguard.audio import AudioFormat
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
from voiceguard.protocol.twilio._events import (
    MULAW_ENCODING,
    MULAW_SAMPLE_RATE,
    Connected,
    DtmfReceived,
    MarkPlayed,
    MediaFormat,
    MediaReceived,
    StreamStarted,
    StreamStopped,
    TwilioEvent,
)

__all__ = ("TWILIO_EVENTS", "parse_twilio_message", "read_payload")

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


def read_payload(media: Fields, key: str, _audio_format: AudioFormat | None) -> dict[str, Any]:
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
        attrs(read_payload, "payload", within="media"),
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
    return read_event(spec, TWILIO, event, data, None)
