"""Vonage's Voice API WebSocket: binary linear PCM and JSON events, read as Twilio's events.

Vonage's messages as its docs show them (``websocket:connected`` with the NCCO's headers, 20 ms
binary ``audio/l16`` frames, ``websocket:notify``, ``websocket:cleared``, ``websocket:dtmf``);
the bridge's media, marks and clears as whole 20 ms frames, ``notify`` and ``clear`` actions;
the resampling at 16 kHz; the simulated caller speaking Vonage; the server's answer (an NCCO).
The scenario library through the reference server for Vonage (8 kHz, as the server's NCCO asks;
two scenarios also at 16 kHz) is in ``test_server_scenarios.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import anyio
import numpy as np
import pytest

from voiceguard import DialectTransport
from voiceguard.audio import decode_ulaw, encode_ulaw, pcm_energy_dbfs, ulaw_energy_dbfs
from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol import (
    PHONES,
    DtmfReceived,
    MarkPlayed,
    MediaReceived,
    StreamStarted,
    clear_message,
    mark_message,
    media_message,
    parse_twilio_message,
    stream_answer,
    vonage_dialect,
)
from voiceguard.protocol._vonage import VonageLine, content_rate
from voiceguard.server import ServerConfig
from voiceguard.sim.caller import CallerSimulator, HangUp, Speak
from voiceguard.transports import (
    MESSAGE_TOO_BIG,
    NORMAL_CLOSURE,
    FrameTransport,
    TransportClosed,
    memory_pair,
)
from voiceguard.transports.websocket import WebSocketTransport, connect_websocket, serve_websocket

pytestmark = pytest.mark.anyio

VONAGE = PHONES["vonage"]
#: Vonage's example of the first message: the NCCO's ``headers`` beside the content type.
CONNECTED = {"event": "websocket:connected", "content-type": "audio/l16;rate=16000", "app": "demo"}


def _tone(seconds: float, rate: int, level: float = 8000.0) -> np.ndarray[Any, np.dtype[np.int16]]:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def _events(line: VonageLine, frame: str | bytes) -> list[Any]:
    return [parse_twilio_message(text) for text in line.incoming(frame)]


def test_the_content_type_names_the_rate() -> None:
    assert content_rate("audio/l16;rate=16000") == 16000
    assert content_rate("audio/L16; rate=8000") == 8000
    assert content_rate("audio/l16;rate=24000") == 24000
    for refused in ("audio/l16;rate=44100", "audio/l16", "audio/x-mulaw;rate=8000", None, 16000):
        assert content_rate(refused) is None


def test_the_first_message_starts_the_stream_with_the_ncco_headers() -> None:
    line = VonageLine()
    connected, start = _events(line, json.dumps({**CONNECTED, "uuid": "63f61863-4a51"}))
    assert connected.protocol == "Call"
    assert isinstance(start, StreamStarted)
    assert start.call_sid == "63f61863-4a51"
    assert start.custom_parameters == {"app": "demo"}
    assert start.media_format.encoding == "audio/x-mulaw"
    assert start.media_format.sample_rate == 8000


def test_the_first_message_as_older_docs_show_it_starts_the_stream_too() -> None:
    _, start = _events(
        VonageLine(), json.dumps({"app": "demo", "content-type": "audio/l16;rate=16000"})
    )
    assert isinstance(start, StreamStarted) and start.custom_parameters == {"app": "demo"}


def test_a_content_type_the_bridge_cannot_take_is_refused_naming_it() -> None:
    line = VonageLine()
    texts = line.incoming(json.dumps({**CONNECTED, "content-type": "audio/l16;rate=44100"}))
    with pytest.raises(RemoteProtocolError, match="audio/l16;rate=44100"):
        parse_twilio_message(texts[1])


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_binary_frames_become_twilio_media_of_8khz_mulaw(rate: int) -> None:
    line = VonageLine()
    line.incoming(json.dumps({**CONNECTED, "content-type": f"audio/l16;rate={rate}"}))
    pcm = _tone(0.2, rate).astype("<i2").tobytes()
    frame = rate // 50 * 2
    media = [_events(line, pcm[i : i + frame])[0] for i in range(0, len(pcm), frame)]
    assert all(isinstance(m, MediaReceived) for m in media)
    assert [m.timestamp_ms for m in media] == list(range(0, 200, 20))
    assert [m.chunk for m in media] == list(range(1, 11))
    assert {len(m.audio) for m in media} == {160}
    # The tone keeps its level through the resampling (its first frame is the filter's start).
    level = pcm_energy_dbfs(_tone(0.2, rate))
    assert abs(ulaw_energy_dbfs(b"".join(m.audio for m in media[1:])) - level) < 0.5


def test_at_8khz_the_audio_is_only_companded() -> None:
    line = VonageLine()
    line.incoming(json.dumps({**CONNECTED, "content-type": "audio/l16;rate=8000"}))
    ulaw = encode_ulaw(_tone(0.02, 8000))
    (media,) = _events(line, decode_ulaw(ulaw).astype("<i2").tobytes())
    assert media.audio == ulaw


def test_notify_dtmf_and_cleared_read_as_twilios() -> None:
    line = VonageLine()
    line.incoming(json.dumps(CONNECTED))
    notify = {"event": "websocket:notify", "payload": {"name": "m7"}}
    (mark,) = _events(line, json.dumps(notify))
    assert isinstance(mark, MarkPlayed) and mark.name == "m7"
    for dtmf in (
        {"event": "websocket:dtmf", "digit": "5", "duration": 260},
        {"event": "websocket:dtmf", "dtmf": {"digit": "5", "duration": 260}},
    ):
        (event,) = _events(line, json.dumps(dtmf))
        assert isinstance(event, DtmfReceived) and event.digit == "5"
    assert line.incoming(json.dumps({"event": "websocket:cleared"})) == []


def test_a_simulated_vonage_caller_speaks_a_rate_vonage_takes() -> None:
    assert vonage_dialect(16000).name == PHONES["vonage"].name == "vonage"
    with pytest.raises(ValueError, match="allowed: 8000, 16000, 24000"):
        vonage_dialect(11025)


def test_the_bridges_audio_goes_out_in_whole_20ms_frames_and_a_mark_after_it() -> None:
    line = VonageLine()
    line.incoming(json.dumps(CONNECTED))
    audio = encode_ulaw(_tone(0.15, 8000))  # 150 ms: seven frames and a half
    out = line.outgoing(json.dumps(media_message("S", base64.b64encode(audio).decode())))
    assert [len(f) for f in out] == [640] * 7 and all(isinstance(f, bytes) for f in out)
    *padded, notify = line.outgoing(json.dumps(mark_message("S", "m1")))
    assert [len(f) for f in padded] == [640], "the half frame, padded: the mark follows it"
    assert json.loads(notify) == {"action": "notify", "payload": {"name": "m1"}}
    assert line.outgoing(json.dumps(mark_message("S", "m2")))[:-1] == [], "nothing left to pad"
    line.outgoing(
        json.dumps(media_message("S", base64.b64encode(audio[:80]).decode()))
    )  # half a frame
    assert [json.loads(f) for f in line.outgoing(json.dumps(clear_message("S")))] == [
        {"action": "clear"}
    ]
    assert line.outgoing(json.dumps(mark_message("S", "m3")))[:-1] == [], (
        "the clear dropped the half frame"
    )


async def test_the_in_memory_pair_carries_binary_messages() -> None:
    a, b = memory_pair()
    assert isinstance(a, FrameTransport)
    await a.send_bytes(b"\x00\x01")
    await a.send("text")
    await a.send_bytes("é".encode())
    assert await b.receive_frame() == b"\x00\x01"
    assert await b.receive_frame() == "text"
    assert await b.receive() == "é", "receive() decodes a binary message, as it always did"
    await a.aclose()
    await b.aclose()


async def test_the_websocket_transport_carries_binary_messages_both_ways() -> None:
    async def echo(transport: WebSocketTransport) -> None:
        try:
            while True:
                frame = await transport.receive_frame()
                if isinstance(frame, bytes):
                    await transport.send_bytes(frame[::-1])
                else:
                    await transport.send(frame.upper())
        except TransportClosed:
            pass

    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_websocket, echo)
        with anyio.fail_after(5):
            async with connect_websocket(f"ws://127.0.0.1:{port}/") as client:
                frame = bytes(range(256)) * 40  # 10 KB: several TCP reads
                await client.send_bytes(frame)
                await client.send("vonage")
                assert await client.receive_frame() == frame[::-1]
                assert await client.receive_frame() == "VONAGE"
        tg.cancel_scope.cancel()


def test_a_vonage_connection_must_carry_binary_messages() -> None:
    class TextOnly:
        async def send(self, message: str) -> None: ...
        async def receive(self) -> str:
            return ""

        async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None: ...
        async def abort(self) -> None: ...

    with pytest.raises(TypeError, match="Vonage sends its audio in binary frames: TextOnly"):
        DialectTransport(TextOnly(), VONAGE)


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_a_vonage_caller_speaks_vonage(rate: int) -> None:
    """The simulated caller against a raw reader that plays Vonage: its first message is
    ``websocket:connected``, its audio binary frames, and a notify is answered once played."""
    caller_end, bridge_end = memory_pair()
    phone = vonage_dialect(caller_rate=rate)
    caller = CallerSimulator(script=[Speak(at=0.0, duration=0.2), HangUp(at=1.0)], phone=phone)
    seen: list[str | bytes] = []

    async def bridge() -> None:
        with anyio.fail_after(10):
            try:
                while True:
                    frame = await bridge_end.receive_frame()
                    seen.append(frame)
                    if isinstance(frame, str) and "websocket:connected" in frame:
                        await bridge_end.send_bytes(b"\0" * (rate // 50 * 2) * 5)  # 100 ms
                        notify = {"action": "notify", "payload": {"name": "m1"}}
                        await bridge_end.send(json.dumps(notify))
            except TransportClosed:
                pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(bridge)
        record = await caller.run(caller_end)
    await bridge_end.aclose()
    first = json.loads(seen[0])
    assert first["event"] == "websocket:connected"
    assert first["content-type"] == f"audio/l16;rate={rate}"
    assert first["uuid"] == record.call_sid
    frames = [f for f in seen if isinstance(f, bytes)]
    assert frames and {len(f) for f in frames} == {rate // 50 * 2}
    texts = [json.loads(f) for f in seen[1:] if isinstance(f, str)]
    assert {"event": "websocket:notify", "payload": {"name": "m1"}} in texts
    assert record.protocol_errors == []
    assert abs(record.heard_seconds - 0.1) < 0.03


def test_the_webhook_answers_with_an_ncco() -> None:
    from starlette.testclient import TestClient  # noqa: PLC0415 - the server extra

    from voiceguard.server import create_app  # noqa: PLC0415

    url = "wss://voice.example.com/media-stream"
    ncco = json.loads(stream_answer(VONAGE, url, {"uuid": "63f61863"}))
    assert ncco == [
        {
            "action": "connect",
            "endpoint": [
                {
                    "type": "websocket",
                    "uri": url,
                    "content-type": "audio/l16;rate=8000",
                    "headers": {"uuid": "63f61863"},
                }
            ],
        }
    ]
    config = ServerConfig(phone="vonage", public_url="https://voice.example.com")
    with TestClient(create_app(config)) as client:
        answer = client.get("/incoming-call", params={"uuid": "63f61863", "from": "447700900000"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert json.loads(answer.text) == ncco


def test_the_phone_transport_takes_binary_frames_within_its_limit() -> None:
    """The server's phone transport: ``receive_frame`` takes binary frames up to the message
    limit and refuses a bigger one with 1009; ``receive`` (Twilio's streams) refuses any."""
    from starlette.applications import Starlette  # noqa: PLC0415 - the server extra
    from starlette.routing import WebSocketRoute  # noqa: PLC0415
    from starlette.testclient import TestClient  # noqa: PLC0415
    from starlette.websockets import WebSocket, WebSocketDisconnect  # noqa: PLC0415

    from voiceguard.transports import UNSUPPORTED_DATA, StarletteWebSocketTransport  # noqa: PLC0415

    async def frames(websocket: WebSocket) -> None:
        await websocket.accept()
        phone = StarletteWebSocketTransport(websocket, max_message_bytes=1000)
        try:
            while True:
                frame = await phone.receive_frame()
                await phone.send(f"{type(frame).__name__} {len(frame)}")
        except TransportClosed:
            pass

    async def text_only(websocket: WebSocket) -> None:
        await websocket.accept()
        phone = StarletteWebSocketTransport(websocket)
        with contextlib.suppress(TransportClosed):
            await phone.receive()

    app = Starlette(routes=[WebSocketRoute("/frames", frames), WebSocketRoute("/text", text_only)])
    with TestClient(app) as client:
        with client.websocket_connect("/frames") as ws:
            ws.send_bytes(b"\0" * 640)
            assert ws.receive_text() == "bytes 640"
            ws.send_text("{}")
            assert ws.receive_text() == "str 2"
            ws.send_bytes(b"\0" * 1001)
            with pytest.raises(WebSocketDisconnect) as too_big:
                ws.receive_text()
        assert too_big.value.code == MESSAGE_TOO_BIG
        with client.websocket_connect("/text") as ws:
            ws.send_bytes(b"\0" * 640)
            with pytest.raises(WebSocketDisconnect) as binary:
                ws.receive_text()
        assert binary.value.code == UNSUPPORTED_DATA
