"""Vonage's Voice API WebSocket, in Twilio's words: binary linear PCM and JSON events.

Vonage's WebSocket is not a JSON dialect of Twilio Media Streams: the caller's audio comes as
binary frames of 16-bit little-endian linear PCM (``audio/l16``, 8 or 16 kHz, 20 ms a frame), the
bot's audio goes back the same way, and only events travel as JSON text. The first message,
``websocket:connected``, names the ``content-type`` (and so the rate) and carries the headers the
NCCO's ``connect`` action set; there is no stream id and no stop message (the call's end closes
the socket). The bot's ``{"action": "clear"}`` empties the playback buffer (answered by
``websocket:cleared``), and ``{"action": "notify", "payload": ...}`` is answered by
``websocket:notify`` with the same payload once the audio sent before it has played: Twilio's
``mark``.

A translator here keeps what a stateless JSON translation cannot: the call's rate, the filters of
the resampling, the sample count the media timestamps come from, and the part of a 20 ms frame
not yet sent. The bridge works in 8 kHz mu-law (the model session's G.711): at 8 kHz only the
companding changes, at 16 kHz the audio is also resampled (what that costs is on the Vonage page
of the documentation, with the sources of every message shape).
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Mapping
from typing import Any, Final, final

from voiceguard.audio import SAMPLE_RATE, AudioFormat, UlawConverter, UlawUpsampler
from voiceguard.protocol._common import dumps

__all__ = ("CALLER_RATE", "RATES", "VonageCaller", "VonageLine", "content_rate")

#: The rates of ``audio/l16`` this translation takes: Vonage's 8 and 16 kHz, and 24 kHz.
RATES: Final = (8000, 16000, 24000)
#: The simulated caller's rate by default: 8 kHz, what :func:`~voiceguard.protocol.stream_answer`
#: asks Vonage for.
CALLER_RATE: Final = 8000
#: Frames per second: Vonage sends and takes 20 ms frames.
_FRAMES_PER_SECOND: Final = 50


def content_rate(content_type: object) -> int | None:
    """The rate of a supported ``audio/l16;rate=N`` content type, else None."""
    if not isinstance(content_type, str):
        return None
    kind, _, params = content_type.replace(" ", "").lower().partition(";")
    if kind != "audio/l16":
        return None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name == "rate" and value.isdigit() and int(value) in RATES:
            return int(value)
    return None


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _to_ulaw(rate: int) -> UlawConverter:
    return UlawConverter(AudioFormat(encoding="audio/pcm", sample_rate=rate))


@final
class VonageLine:
    """The bridge's end of a Vonage WebSocket: Vonage's frames in, Twilio's messages out, and
    back.

    Vonage's ``websocket:connected`` becomes Twilio's ``connected`` and ``start`` (the call sid
    from the ``uuid`` header when the NCCO set one, the other headers as custom parameters), each
    binary frame a ``media`` message of 8 kHz mu-law, ``websocket:notify`` a ``mark`` and
    ``websocket:dtmf`` a ``dtmf``; ``websocket:cleared`` says nothing the bridge waits for. The
    bridge's ``media`` goes out as binary frames of exactly 20 ms, its ``mark`` as a ``notify``
    (the frame in progress padded with silence first, so the notify follows all of the audio
    before it) and its ``clear`` as a ``clear``.
    """

    __slots__ = (
        "_chunks",
        "_frame_bytes",
        "_heard_bytes",
        "_pending",
        "_sequence",
        "_stream_sid",
        "_to_pcm",
        "_to_ulaw",
    )

    def __init__(self) -> None:
        self._stream_sid = ""
        self._sequence = itertools.count(1)
        self._chunks = itertools.count(1)
        self._heard_bytes = 0  # mu-law bytes of the caller's audio so far: the media clock
        self._to_ulaw = _to_ulaw(SAMPLE_RATE)
        self._to_pcm = UlawUpsampler(SAMPLE_RATE)
        self._frame_bytes = SAMPLE_RATE // _FRAMES_PER_SECOND * 2
        self._pending = bytearray()  # the bot's PCM not yet a whole frame

    def _head(self, event: str) -> dict[str, Any]:
        sequence = str(next(self._sequence))
        return {"event": event, "sequenceNumber": sequence, "streamSid": self._stream_sid}

    def incoming(self, frame: str | bytes) -> list[str]:
        """Vonage's message (text or binary) as Twilio's messages (none, one or two)."""
        if isinstance(frame, bytes):
            return [self._media(frame)]
        data = _json_object(frame)
        if data is None:
            return [frame]  # the Twilio reader says what is wrong with it
        kind = data.get("event")
        if kind == "websocket:connected" or (kind is None and "content-type" in data):
            return self._connected(data)  # (older docs show the first message without event)
        if kind == "websocket:notify":
            payload = data.get("payload")
            name = payload.get("name") if isinstance(payload, dict) else None
            return [dumps({**self._head("mark"), "mark": {"name": name}})]
        if kind == "websocket:cleared":
            return []  # the answer to clear: nothing the bridge waits for
        if kind == "websocket:dtmf":
            dtmf = data.get("dtmf")
            digit = data.get("digit") or (dtmf.get("digit") if isinstance(dtmf, dict) else None)
            return [
                dumps({**self._head("dtmf"), "dtmf": {"track": "inbound_track", "digit": digit}})
            ]
        return [frame]

    def _connected(self, data: Mapping[str, Any]) -> list[str]:
        content_type = data.get("content-type")
        rate = content_rate(content_type)
        uuid = data.get("uuid")
        call_sid = uuid if isinstance(uuid, str) and uuid else "vonage-call"
        self._stream_sid = f"vonage-{call_sid}"
        params = {
            str(name): value if isinstance(value, str) else json.dumps(value)
            for name, value in data.items()
            if name not in ("event", "content-type", "uuid")
        }
        if rate is None:
            # The Twilio reader names the field and the value: Vonage's own content type.
            media_format: dict[str, Any] = {"encoding": content_type, "sampleRate": "0"}
        else:
            media_format = {"encoding": "audio/x-mulaw", "sampleRate": "8000", "channels": "1"}
            self._to_ulaw = _to_ulaw(rate)
            self._to_pcm = UlawUpsampler(rate)
            self._frame_bytes = rate // _FRAMES_PER_SECOND * 2
        start = {
            "streamSid": self._stream_sid,  # Twilio's start has it twice
            "accountSid": "",
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": params,
            "mediaFormat": media_format,
        }
        return [
            dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
            dumps({**self._head("start"), "start": start}),
        ]

    def _media(self, frame: bytes) -> str:
        ulaw = self._to_ulaw.feed(frame)
        timestamp = self._heard_bytes * 1000 // SAMPLE_RATE
        self._heard_bytes += len(ulaw)
        media = {
            "track": "inbound",
            "chunk": str(next(self._chunks)),
            "timestamp": str(timestamp),
            "payload": base64.b64encode(ulaw).decode("ascii"),
        }
        return dumps({**self._head("media"), "media": media})

    def outgoing(self, text: str) -> list[str | bytes]:
        """The bridge's Twilio message as Vonage's frames (binary audio, or a JSON action)."""
        data = _json_object(text)
        kind = None if data is None else data.get("event")
        if data is None or kind not in ("media", "mark", "clear"):
            return [text]
        if kind == "media":
            media = data.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                return [text]
            self._pending += self._to_pcm.feed(base64.b64decode(payload))
            return self._whole_frames()
        if kind == "mark":
            mark = data.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            frames = self._whole_frames()
            if self._pending:  # the end of the audio: padded to a frame, so the notify follows it
                frames.append(bytes(self._pending.ljust(self._frame_bytes, b"\0")))
                self._pending.clear()
            return [*frames, dumps({"action": "notify", "payload": {"name": name}})]
        self._pending.clear()
        self._to_pcm.reset()
        return [dumps({"action": "clear"})]

    def _whole_frames(self) -> list[str | bytes]:
        size = self._frame_bytes
        whole = len(self._pending) - len(self._pending) % size
        frames: list[str | bytes] = [
            bytes(self._pending[i : i + size]) for i in range(0, whole, size)
        ]
        del self._pending[:whole]
        return frames


@final
class VonageCaller:
    """The simulated caller's end of a Vonage WebSocket: the caller's Twilio messages out in
    Vonage's frames (at *rate*), the bot's frames in as Twilio's.

    The caller's ``start`` becomes ``websocket:connected`` (its call sid as the ``uuid`` header,
    as an NCCO that passes the call's uuid sets it; its custom parameters as the other headers),
    its ``media`` binary frames, its echo of a played ``mark`` ``websocket:notify`` and its
    ``dtmf`` ``websocket:dtmf``; ``connected`` and ``stop`` have no Vonage message (the caller
    hangs up by closing). The bot's binary frames become ``media`` (8 kHz mu-law), ``notify`` a
    ``mark`` to echo and ``clear`` a ``clear``.

    Args:
        rate: The rate of the ``audio/l16`` the caller speaks, one of :data:`RATES`.

    Raises:
        ValueError: For another rate.
    """

    __slots__ = ("_rate", "_stream_sid", "_to_pcm", "_to_ulaw")

    def __init__(self, rate: int = CALLER_RATE) -> None:
        if rate not in RATES:
            raise ValueError(f"rate = {rate!r}; allowed: {', '.join(map(str, RATES))}")
        self._rate = rate
        self._stream_sid = ""
        self._to_pcm = UlawUpsampler(rate)
        self._to_ulaw = _to_ulaw(rate)

    def outgoing(self, text: str) -> list[str | bytes]:
        """The caller's Twilio message as Vonage's frames."""
        data = _json_object(text)
        kind = None if data is None else data.get("event")
        if data is None:
            return [text]
        if kind in ("connected", "stop"):
            return []
        if kind == "start":
            start = data["start"]
            self._stream_sid = str(data.get("streamSid", ""))
            headers = dict(start.get("customParameters", {}))
            connected = {
                "event": "websocket:connected",
                "content-type": f"audio/l16;rate={self._rate}",
                "uuid": start.get("callSid"),
                **headers,
            }
            return [dumps(connected)]
        if kind == "media":
            return [self._to_pcm.feed(base64.b64decode(data["media"]["payload"]))]
        if kind == "mark":
            return [dumps({"event": "websocket:notify", "payload": data.get("mark") or {}})]
        if kind == "dtmf":
            digit = (data.get("dtmf") or {}).get("digit")
            return [dumps({"event": "websocket:dtmf", "digit": digit, "duration": 250})]
        return [text]

    def incoming(self, frame: str | bytes) -> list[str]:
        """The bot's Vonage frame as Twilio's message to a caller."""
        sid = {"streamSid": self._stream_sid}
        if isinstance(frame, bytes):
            audio = base64.b64encode(self._to_ulaw.feed(frame)).decode("ascii")
            return [dumps({"event": "media", **sid, "media": {"payload": audio}})]
        data = _json_object(frame)
        action = None if data is None else data.get("action")
        if data is None:
            return [frame]
        if action == "notify":
            payload = data.get("payload")
            name = payload.get("name") if isinstance(payload, dict) else None
            return [dumps({"event": "mark", **sid, "mark": {"name": name}})]
        if action == "clear":
            return [dumps({"event": "clear", **sid})]
        if data.get("event") in ("media", "mark", "clear"):  # Twilio's words: not Vonage's
            kind = data["event"]
            return [dumps({"event": f"{kind} (Twilio's word; Vonage takes binary audio)"})]
        return [frame]
