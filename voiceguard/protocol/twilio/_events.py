"""Twilio Media Streams messages as frozen events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias, final

from voiceguard.protocol._common import UnknownEvent

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
