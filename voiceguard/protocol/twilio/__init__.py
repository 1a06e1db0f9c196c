"""Twilio Media Streams (bidirectional, ``<Connect><Stream>``): typed messages and builders.

:func:`parse_twilio_message` turns one message from Twilio into a frozen event. Twilio sends every
number as a string (``"sequenceNumber": "2"``); the events carry them as ``int``. A message whose
``event`` is not modelled gives an :class:`~voiceguard.protocol.UnknownEvent`; a malformed message
of a modelled kind raises :class:`~voiceguard.errors.RemoteProtocolError`, never anything else.

The builders return the messages voiceguard sends to Twilio (``media``, ``mark``, ``clear``) as
plain dicts, and :func:`connect_stream_twiml` the TwiML that starts the stream;
:func:`parse_twilio_outbound` reads such a message back as Twilio would (the simulated caller and
the middleware read a bot's phone-bound messages with it).
"""

from __future__ import annotations

from voiceguard.protocol._common import UnknownEvent
from voiceguard.protocol.twilio._builders import (
    clear_message,
    connect_stream_twiml,
    mark_message,
    media_message,
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
from voiceguard.protocol.twilio._outbound import (
    OutboundClear,
    OutboundMark,
    OutboundMedia,
    TwilioOutbound,
    parse_twilio_outbound,
)
from voiceguard.protocol.twilio._parser import parse_twilio_message

__all__ = (
    "MULAW_ENCODING",
    "MULAW_SAMPLE_RATE",
    "Connected",
    "DtmfReceived",
    "MarkPlayed",
    "MediaFormat",
    "MediaReceived",
    "OutboundClear",
    "OutboundMark",
    "OutboundMedia",
    "StreamStarted",
    "StreamStopped",
    "TwilioEvent",
    "TwilioOutbound",
    "UnknownEvent",
    "clear_message",
    "connect_stream_twiml",
    "mark_message",
    "media_message",
    "parse_twilio_message",
    "parse_twilio_outbound",
)
