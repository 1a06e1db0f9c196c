"""Phone providers as dialects of Twilio Media Streams: Telnyx, Plivo and Vonage beside Twilio.

voiceguard's phone side speaks Twilio Media Streams: the bridge reads Twilio's events
(:mod:`voiceguard.protocol.twilio`) and sends ``media``, ``mark`` and ``clear``. Telnyx media
streaming and Plivo audio streams carry the same things under other names: a
:class:`PhoneDialect` translates each message between the provider's wording and Twilio's, both
ways and for both ends (the bridge's, and the simulated caller's), so the turn engine, the
guards and the handler work unchanged, and a Twilio call costs no translation at all. Vonage's
WebSocket carries its audio as binary linear PCM: its dialect translates with a stateful
:class:`PhoneLine` per connection (:mod:`voiceguard.protocol._vonage`) instead of message by
message.
:class:`~voiceguard.DialectTransport` applies a dialect to a
:class:`~voiceguard.transports.Transport`.

Every message shape is recorded with its source on the provider's page of the documentation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, final

from voiceguard.protocol._vonage import VonageCaller, VonageLine
from voiceguard.protocol.twilio._builders import connect_stream_twiml

__all__ = ("PHONES", "PhoneDialect", "phone_dialect", "stream_answer", "vonage_dialect")

#: A translation of one JSON message (as a dict); None drops the message (nothing to say).
Translate = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def _same(message: dict[str, Any]) -> dict[str, Any] | None:
    return message


class PhoneLine(Protocol):
    """The translator of one connection, for a provider whose messages are not all JSON text
    (Vonage's audio is binary): it keeps state from one message to the next."""

    def incoming(self, frame: str | bytes) -> list[str]:
        """A message received, as the Twilio-worded messages it makes (none, one or more)."""
        ...

    def outgoing(self, text: str) -> list[str | bytes]:
        """A Twilio-worded message to send, as the provider's messages (text or binary)."""
        ...


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneDialect:
    """One phone provider's media-stream protocol, as translations to and from Twilio's.

    Attributes:
        name: The provider's name, as ``voiceguard serve --phone`` takes it.
        title: Its name for people.
        heard: How the bridge learns what the caller has heard: the provider's answer to a
            ``mark`` (Twilio, Telnyx) or ``checkpoint`` (Plivo).
        marks_after_clear: Whether a clear sends back the marks still queued (Twilio and Telnyx
            do; Plivo answers no checkpoint whose audio was cleared). The simulated caller
            follows it.
        from_phone: The provider's message to the bridge -> Twilio's.
        to_phone: Twilio's message from the bridge (``media``, ``mark``, ``clear``) -> the
            provider's.
        caller_out: Twilio's message from a caller (what the caller simulator writes) -> the
            provider's; the simulator's side of :attr:`from_phone`.
        caller_in: The provider's message to a caller -> Twilio's; the simulator's side of
            :attr:`to_phone`.
        line: For a provider whose audio is not JSON text (Vonage): makes the stateful
            translator of one connection, for the caller's end (``True``) or the bridge's; the
            four translations above are then unused. Its connection must carry binary messages
            (a :class:`~voiceguard.transports.base.FrameTransport`).
        answer_type: The media type of the voice webhook's answer (:func:`stream_answer`).
    """

    name: str
    title: str
    heard: str
    marks_after_clear: bool = True
    from_phone: Translate = _same
    to_phone: Translate = _same
    caller_out: Translate = _same
    caller_in: Translate = _same
    line: Callable[[bool], PhoneLine] | None = None
    answer_type: str = "application/xml"

    @property
    def is_twilio(self) -> bool:
        """Whether this is Twilio's own protocol (nothing to translate)."""
        return self.name == "twilio"


def _head(
    m: Mapping[str, Any],
    sequence: tuple[str, str, Callable[[Any], object]],
    stream: tuple[str, str],
) -> dict[str, Any]:
    """A translated message's ``event``, sequence number and stream id, renamed (and the
    number converted) from one wording to the other."""
    out: dict[str, Any] = {"event": m.get("event")}
    old, new, convert = sequence
    if old in m:
        out[new] = convert(m[old])
    if stream[0] in m:
        out[stream[1]] = m[stream[0]]
    return out


def _media_in_strings(media: Mapping[str, Any]) -> dict[str, Any]:
    """A ``media`` object with ``chunk`` and ``timestamp`` as decimal strings (as Twilio and
    Telnyx send them; Plivo's chunk is a number)."""
    return {
        "track": media.get("track", "inbound"),
        "chunk": str(media.get("chunk")),
        "timestamp": str(media.get("timestamp")),
        "payload": media.get("payload"),
    }


# --------------------------------------------------------------------------------------------
# Telnyx media streaming (bidirectional, RTP mode): snake_case, no stream id on outbound


def _telnyx_from_phone(m: dict[str, Any]) -> dict[str, Any] | None:
    kind = m.get("event")
    out = _head(m, ("sequence_number", "sequenceNumber", str), ("stream_id", "streamSid"))
    if kind == "connected":
        return {"event": "connected", "protocol": "Call", "version": str(m.get("version", ""))}
    if kind == "start":
        start = m.get("start")
        if not isinstance(start, dict):
            return out  # the Twilio reader names the missing object
        fmt = start.get("media_format")
        media_format: Any = fmt
        if isinstance(fmt, dict):
            encoding = fmt.get("encoding")
            media_format = {
                "encoding": "audio/x-mulaw" if encoding == "PCMU" else encoding,
                "sampleRate": str(fmt.get("sample_rate")),
                "channels": str(fmt.get("channels", 1)),
            }
        params = start.get("custom_parameters")
        out["start"] = {
            "streamSid": m.get("stream_id"),  # Twilio's start has it twice
            "accountSid": str(start.get("user_id", "")),
            "callSid": start.get("call_control_id"),
            "tracks": ["inbound"],
            "customParameters": params if isinstance(params, dict) else {},
            "mediaFormat": media_format,
        }
        return out
    if kind == "media":
        media = m.get("media")
        if isinstance(media, dict):
            out["media"] = _media_in_strings(media)
        return out
    if kind == "mark":
        out["mark"] = m.get("mark")
        return out
    if kind == "stop":
        stop = m.get("stop") or {}
        out["stop"] = {
            "accountSid": str(stop.get("user_id", "")),
            "callSid": stop.get("call_control_id", ""),
        }
        return out
    if kind == "dtmf":
        out["dtmf"] = {"digit": (m.get("dtmf") or {}).get("digit"), "track": "inbound_track"}
        return out
    return m  # error and anything else: reported as what it is


def _telnyx_to_phone(m: dict[str, Any]) -> dict[str, Any] | None:
    kind = m.get("event")
    if kind == "media":
        return {"event": "media", "media": {"payload": (m.get("media") or {}).get("payload")}}
    if kind == "mark":
        return {"event": "mark", "mark": m.get("mark")}
    if kind == "clear":
        return {"event": "clear"}
    return m


def _telnyx_caller_out(m: dict[str, Any]) -> dict[str, Any] | None:
    kind = m.get("event")
    out = _head(m, ("sequenceNumber", "sequence_number", int), ("streamSid", "stream_id"))
    if kind == "connected":
        return {"event": "connected", "version": m.get("version", "1.0.0")}
    if kind == "start":
        start = m["start"]
        fmt = start["mediaFormat"]
        out["start"] = {
            "user_id": start.get("accountSid"),
            "call_control_id": start.get("callSid"),
            "call_session_id": start.get("callSid"),
            "client_state": None,
            "custom_parameters": start.get("customParameters", {}),
            "media_format": {
                "encoding": "PCMU" if fmt["encoding"] == "audio/x-mulaw" else fmt["encoding"],
                "sample_rate": int(fmt["sampleRate"]),
                "channels": int(fmt["channels"]),
            },
        }
        return out
    if kind == "media":
        out["media"] = _media_in_strings(m["media"])
        return out
    if kind == "mark":
        out["mark"] = m.get("mark")
        return out
    if kind == "stop":
        stop = m.get("stop") or {}
        out["stop"] = {"user_id": stop.get("accountSid"), "call_control_id": stop.get("callSid")}
        return out
    if kind == "dtmf":
        out["dtmf"] = {"digit": (m.get("dtmf") or {}).get("digit")}
        return out
    return m


def _telnyx_caller_in(m: dict[str, Any]) -> dict[str, Any] | None:
    """Telnyx's outbound messages carry no stream id; the caller's reader takes any."""
    kind = m.get("event")
    if kind == "media":
        return {"event": "media", "streamSid": "", "media": m.get("media")}
    if kind in ("mark", "clear"):
        return {**m, "streamSid": ""}
    return m


# --------------------------------------------------------------------------------------------
# Plivo audio streams (bidirectional): playAudio, checkpoint / playedStream, clearAudio


def _plivo_from_phone(m: dict[str, Any]) -> dict[str, Any] | None:
    kind = m.get("event")
    out = _head(m, ("sequenceNumber", "sequenceNumber", str), ("streamId", "streamSid"))
    if kind == "start":
        start = m.get("start")
        if not isinstance(start, dict):
            return out
        if "streamId" in start and "streamSid" not in out:
            out["streamSid"] = start["streamId"]
        fmt = start.get("mediaFormat")
        media_format: Any = fmt
        if isinstance(fmt, dict):
            media_format = {
                "encoding": fmt.get("encoding"),
                "sampleRate": str(fmt.get("sampleRate")),
                "channels": "1",  # Plivo streams are mono and do not say so
            }
        out["start"] = {
            "streamSid": out.get("streamSid"),  # Twilio's start has it twice
            "accountSid": str(start.get("accountId", "")),
            "callSid": start.get("callId"),
            "tracks": start.get("tracks", ["inbound"]),
            "customParameters": _plivo_headers(m.get("extra_headers")),
            "mediaFormat": media_format,
        }
        return out
    if kind == "media":
        media = m.get("media")
        if isinstance(media, dict):
            out["media"] = _media_in_strings(media)
        return out
    if kind == "playedStream":
        return {"event": "mark", "streamSid": m.get("streamId"), "mark": {"name": m.get("name")}}
    if kind == "clearedAudio":
        return None  # the answer to clearAudio: nothing the bridge waits for
    if kind == "stop":  # its fields are not documented: the stream's end is what counts
        out["stop"] = {"accountSid": "", "callSid": str((m.get("stop") or {}).get("callId", ""))}
        return out
    if kind == "dtmf":
        out["dtmf"] = {"digit": (m.get("dtmf") or {}).get("digit"), "track": "inbound_track"}
        return out
    return m


def _plivo_headers(text: object) -> dict[str, str]:
    """Plivo's ``extra_headers`` (``"a=1;b=2"``) as parameters."""
    if not isinstance(text, str):
        return {}
    pairs = (part.partition("=") for part in text.split(";") if part.strip())
    return {name.strip(): value for name, _, value in pairs}


def _plivo_to_phone(m: dict[str, Any]) -> dict[str, Any] | None:
    kind = m.get("event")
    stream = m.get("streamSid")
    if kind == "media":
        payload = (m.get("media") or {}).get("payload")
        return {
            "event": "playAudio",
            "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": payload},
        }
    if kind == "mark":
        return {
            "event": "checkpoint",
            "streamId": stream,
            "name": (m.get("mark") or {}).get("name"),
        }
    if kind == "clear":
        return {"event": "clearAudio", "streamId": stream}
    return m


#: The simulated caller's clock start as Plivo's epoch milliseconds (a fixed instant: runs repeat).
_PLIVO_EPOCH_MS: Final = 1_705_312_200_000


def _plivo_caller_out(m: dict[str, Any]) -> dict[str, Any] | None:
    kind = m.get("event")
    if kind == "connected":
        return None  # Plivo sends no connected: start comes first
    out = _head(m, ("sequenceNumber", "sequenceNumber", int), ("streamSid", "streamId"))
    if kind == "start":
        start = m["start"]
        fmt = start["mediaFormat"]
        params = start.get("customParameters", {})
        out["start"] = {
            "callId": start.get("callSid"),
            "streamId": m.get("streamSid"),
            "accountId": start.get("accountSid"),
            "tracks": start.get("tracks", ["inbound"]),
            "mediaFormat": {"encoding": fmt["encoding"], "sampleRate": int(fmt["sampleRate"])},
        }
        out["extra_headers"] = ";".join(f"{k}={v}" for k, v in params.items())
        return out
    if kind == "media":
        media = m["media"]
        out["media"] = {
            "track": media.get("track", "inbound"),
            "timestamp": str(_PLIVO_EPOCH_MS + int(media.get("timestamp", 0))),  # epoch ms
            "chunk": int(media.get("chunk", 0)),  # a number, unlike Twilio's
            "payload": media.get("payload"),
        }
        return out
    if kind == "mark":  # Twilio's echo of a played mark: Plivo's playedStream
        return {"event": "playedStream", "streamId": m.get("streamSid"), **(m.get("mark") or {})}
    if kind == "dtmf":
        out["dtmf"] = {"digit": (m.get("dtmf") or {}).get("digit")}
        return out
    return out


def _plivo_caller_in(m: dict[str, Any]) -> dict[str, Any] | None:
    kind = m.get("event")
    if kind == "playAudio":
        return {"event": "media", "streamSid": "", "media": {"payload": m["media"]["payload"]}}
    if kind == "checkpoint":
        return {"event": "mark", "streamSid": m.get("streamId"), "mark": {"name": m.get("name")}}
    if kind == "clearAudio":
        return {"event": "clear", "streamSid": m.get("streamId")}
    if kind in ("media", "mark", "clear"):  # Twilio's words: Plivo refuses them
        return {"event": f"{kind} (Twilio's word; Plivo takes playAudio, checkpoint, clearAudio)"}
    return m


#: Twilio Media Streams: the protocol itself.
TWILIO: Final = PhoneDialect(name="twilio", title="Twilio", heard="mark")
#: Telnyx media streaming, bidirectional in RTP mode.
TELNYX: Final = PhoneDialect(
    name="telnyx",
    title="Telnyx",
    heard="mark",
    from_phone=_telnyx_from_phone,
    to_phone=_telnyx_to_phone,
    caller_out=_telnyx_caller_out,
    caller_in=_telnyx_caller_in,
)
#: Plivo audio streams, bidirectional.
PLIVO: Final = PhoneDialect(
    name="plivo",
    title="Plivo",
    heard="checkpoint",
    marks_after_clear=False,
    from_phone=_plivo_from_phone,
    to_phone=_plivo_to_phone,
    caller_out=_plivo_caller_out,
    caller_in=_plivo_caller_in,
)


def vonage_dialect(caller_rate: int = 8000) -> PhoneDialect:
    """Vonage's dialect, its simulated caller speaking ``audio/l16`` at *caller_rate*.

    The bridge's end reads the rate from the stream's first message, whatever it is; only a
    simulated caller needs to be told. ``PHONES["vonage"]`` is ``vonage_dialect(8000)``, the
    rate :func:`stream_answer` asks Vonage for.

    Raises:
        ValueError: For a rate other than 8000, 16000 or 24000.
    """
    VonageCaller(caller_rate)  # checks the rate now, not at the first call

    def line(caller: bool) -> PhoneLine:
        return VonageCaller(caller_rate) if caller else VonageLine()

    return PhoneDialect(
        name="vonage",
        title="Vonage",
        heard="notify",
        marks_after_clear=False,
        line=line,
        answer_type="application/json",
    )


#: Vonage's Voice API WebSocket: binary linear PCM, JSON events (translated per connection).
VONAGE: Final = vonage_dialect()

#: Every phone provider, by name.
PHONES: Final[Mapping[str, PhoneDialect]] = {d.name: d for d in (TWILIO, TELNYX, PLIVO, VONAGE)}


def phone_dialect(name: str) -> PhoneDialect:
    """The phone provider called *name* (``"twilio"``, ``"telnyx"``, ``"plivo"`` or
    ``"vonage"``).

    Raises:
        ValueError: Naming the providers there are.
    """
    dialect = PHONES.get(name.strip().lower())
    if dialect is None:
        raise ValueError(f"phone provider {name!r}; allowed: {', '.join(PHONES)}")
    return dialect


def stream_answer(dialect: PhoneDialect, url: str, parameters: Mapping[str, str] = {}) -> str:
    """The voice webhook's answer that connects a call to the media stream at *url*, in the
    provider's markup: Twilio's TwiML ``<Connect><Stream>``; Telnyx's TeXML, the same with
    ``bidirectionalMode="rtp"`` (without it Telnyx plays nothing sent back) and
    ``bidirectionalCodec="PCMU"``; Plivo's XML ``<Stream bidirectional="true"
    keepCallAlive="true" contentType="audio/x-mulaw;rate=8000">`` (Plivo has no per-stream
    parameters; *parameters* are dropped); Vonage's NCCO, a JSON ``connect`` action to a
    ``websocket`` endpoint with ``content-type`` ``audio/l16;rate=8000`` (the model's G.711
    rate: no resampling) and *parameters* as its ``headers``.

    Raises:
        LocalProtocolError: As :func:`~voiceguard.protocol.connect_stream_twiml`.
    """
    twiml = connect_stream_twiml(url, parameters=parameters)
    if dialect.name == "telnyx":
        return twiml.replace(
            "<Stream url=", '<Stream bidirectionalMode="rtp" bidirectionalCodec="PCMU" url=', 1
        )
    if dialect.name == "plivo":
        stream = twiml.split('<Stream url="', 1)[1].split('"', 1)[0]  # checked and escaped
        return (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Stream bidirectional="true" '
            'keepCallAlive="true" contentType="audio/x-mulaw;rate=8000">'
            f"{stream}</Stream></Response>"
        )
    if dialect.name == "vonage":
        endpoint = {
            "type": "websocket",
            "uri": url,
            "content-type": "audio/l16;rate=8000",
            "headers": dict(parameters),
        }
        return json.dumps([{"action": "connect", "endpoint": [endpoint]}])
    return twiml
