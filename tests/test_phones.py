"""Phone providers as dialects of Twilio Media Streams: Telnyx's and Plivo's messages, as their
docs show them, read as Twilio's events; the bridge's media, marks and clears in their words;
the simulated caller speaking each; the server's ``--phone``.

The scenario library through the reference server for each phone provider is in
``test_server_scenarios.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import anyio
import pytest

from voiceguard.errors import ConfigError, RemoteProtocolError
from voiceguard.protocol import (
    PHONES,
    DtmfReceived,
    MarkPlayed,
    MediaReceived,
    StreamStarted,
    StreamStopped,
    clear_message,
    mark_message,
    media_message,
    parse_twilio_message,
    phone_dialect,
    stream_answer,
)
from voiceguard.server import ServerConfig
from voiceguard.sim.caller import CallerSimulator, HangUp, Speak
from voiceguard.transports import TransportClosed, memory_pair

pytestmark = pytest.mark.anyio

PAYLOAD = "//////////8="  # 8 bytes of mu-law silence, base64

#: The providers' own examples (their docs; the provider pages of the docs cite them).
TELNYX_START = {
    "event": "start",
    "sequence_number": "1",
    "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
    "start": {
        "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
        "call_control_id": "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ",
        "call_session_id": "ff55a038-4f7f-11ef-9c3e-02420a0d4d69",
        "from": "+13122010094",
        "to": "+13122123456",
        "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        "custom_parameters": {"customer_id": "customer_123"},
        "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
    },
}
PLIVO_START = {
    "event": "start",
    "sequenceNumber": 1,
    "start": {
        "callId": "12345678-aaaa-bbbb-cccc-1234567890ab",
        "streamId": "87654321-dddd-eeee-ffff-ba0987654321",
        "accountId": "MAXXXXXXXXXXXXXXXXXX",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
    },
    "extra_headers": "userId=12345;sessionId=abc-xyz",
}


def from_phone(name: str, message: dict[str, Any]) -> Any:
    translated = phone_dialect(name).from_phone(message)
    return None if translated is None else parse_twilio_message(translated)


def test_telnyx_messages_read_as_twilio_events() -> None:
    start = from_phone("telnyx", TELNYX_START)
    assert isinstance(start, StreamStarted)
    assert start.stream_sid == TELNYX_START["stream_id"]
    assert start.call_sid.startswith("v2:T02ll")
    assert start.custom_parameters == {"customer_id": "customer_123"}
    assert start.media_format.encoding == "audio/x-mulaw"
    media = from_phone(
        "telnyx",
        {
            "event": "media",
            "sequence_number": "4",
            "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": PAYLOAD},
            "stream_id": "32de0dea",
        },
    )
    assert isinstance(media, MediaReceived) and media.audio == b"\xff" * 8
    mark = from_phone("telnyx", {"event": "mark", "stream_id": "s", "mark": {"name": "m1"}})
    assert isinstance(mark, MarkPlayed) and mark.name == "m1"
    stop = {"event": "stop", "sequence_number": "5", "stop": {"call_control_id": "v2:x"}}
    assert isinstance(from_phone("telnyx", {**stop, "stream_id": "s"}), StreamStopped)
    dtmf = from_phone("telnyx", {"event": "dtmf", "stream_id": "s", "dtmf": {"digit": "5"}})
    assert isinstance(dtmf, DtmfReceived) and dtmf.digit == "5"


def test_a_telnyx_stream_in_another_codec_is_refused_naming_the_field() -> None:
    opus = json.loads(json.dumps(TELNYX_START))
    opus["start"]["media_format"]["encoding"] = "OPUS"
    with pytest.raises(RemoteProtocolError, match=r"mediaFormat\.encoding") as raised:
        from_phone("telnyx", opus)
    assert "OPUS" in str(raised.value)


def test_plivo_messages_read_as_twilio_events() -> None:
    start = from_phone("plivo", PLIVO_START)
    assert isinstance(start, StreamStarted)
    assert start.stream_sid == "87654321-dddd-eeee-ffff-ba0987654321"
    assert start.call_sid == "12345678-aaaa-bbbb-cccc-1234567890ab"
    assert start.custom_parameters == {"userId": "12345", "sessionId": "abc-xyz"}
    media = from_phone(
        "plivo",
        {
            "event": "media",
            "sequenceNumber": 42,
            "streamId": "87654321",
            "media": {
                "track": "inbound",
                "timestamp": "1705312200000",
                "chunk": 41,
                "payload": PAYLOAD,
            },
        },
    )
    assert isinstance(media, MediaReceived) and media.chunk == 41
    played = from_phone("plivo", {"event": "playedStream", "streamId": "87654321", "name": "vg-3"})
    assert isinstance(played, MarkPlayed) and played.name == "vg-3"
    assert phone_dialect("plivo").from_phone({"event": "clearedAudio", "streamId": "x"}) is None


@pytest.mark.parametrize(
    ("name", "media", "mark", "clear"),
    [
        (
            "telnyx",
            {"event": "media", "media": {"payload": PAYLOAD}},
            {"event": "mark", "mark": {"name": "m1"}},
            {"event": "clear"},
        ),
        (
            "plivo",
            {
                "event": "playAudio",
                "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": PAYLOAD},
            },
            {"event": "checkpoint", "streamId": "S1", "name": "m1"},
            {"event": "clearAudio", "streamId": "S1"},
        ),
        (
            "twilio",
            media_message("S1", PAYLOAD),
            mark_message("S1", "m1"),
            clear_message("S1"),
        ),
    ],
)
def test_the_bridges_messages_go_out_in_the_providers_words(
    name: str, media: dict[str, Any], mark: dict[str, Any], clear: dict[str, Any]
) -> None:
    dialect = phone_dialect(name)
    assert dialect.to_phone(media_message("S1", PAYLOAD)) == media
    assert dialect.to_phone(mark_message("S1", "m1")) == mark
    assert dialect.to_phone(clear_message("S1")) == clear


def test_the_webhook_answers_in_each_providers_markup() -> None:
    url = "wss://voice.example.com/media-stream"
    twilio = stream_answer(PHONES["twilio"], url, {"t": "1"})
    assert '<Connect><Stream url="wss://voice.example.com/media-stream">' in twilio
    telnyx = stream_answer(PHONES["telnyx"], url)
    assert '<Stream bidirectionalMode="rtp" bidirectionalCodec="PCMU" url=' in telnyx
    plivo = stream_answer(PHONES["plivo"], url)
    assert (
        '<Stream bidirectional="true" keepCallAlive="true" '
        'contentType="audio/x-mulaw;rate=8000">wss://voice.example.com/media-stream</Stream>'
    ) in plivo


async def _raw_call(
    phone: str, *, audio_seconds: float = 0.1, clear: bool = False
) -> tuple[list[dict[str, Any]], Any]:
    """A simulated caller of *phone* against a raw reader that plays the bridge in the
    provider's words: at the caller's start, audio, a mark (checkpoint) after it and, with
    *clear*, a clear at once; returns what the caller sent and its record."""
    caller_end, bridge_end = memory_pair()
    speaks = [] if clear else [Speak(at=0.0, duration=0.2)]
    caller = CallerSimulator(script=[*speaks, HangUp(at=1.0)], phone=phone)
    dialect = phone_dialect(phone)
    seen: list[dict[str, Any]] = []
    audio = base64.b64encode(b"\xff" * int(8000 * audio_seconds)).decode()

    async def bridge() -> None:
        with anyio.fail_after(10):
            try:
                while True:
                    message = json.loads(await bridge_end.receive())
                    seen.append(message)
                    if message.get("event") == "start":
                        twilio = parse_twilio_message(dialect.from_phone(message) or {})
                        assert isinstance(twilio, StreamStarted)
                        stream = twilio.stream_sid
                        outs = [media_message(stream, audio), mark_message(stream, "m1")]
                        if clear:
                            outs.append(clear_message(stream))
                        for out in outs:
                            await bridge_end.send(json.dumps(dialect.to_phone(out)))
            except TransportClosed:
                pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(bridge)
        record = await caller.run(caller_end)
    await bridge_end.aclose()
    await caller_end.aclose()
    return seen, record


async def test_a_plivo_caller_speaks_plivo() -> None:
    seen, record = await _raw_call("plivo")
    kinds = [m["event"] for m in seen]
    assert kinds[0] == "start", "Plivo sends no connected"
    assert seen[0]["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000}
    media = next(m for m in seen if m["event"] == "media")
    assert isinstance(media["media"]["chunk"], int) and "streamId" in media
    assert "playedStream" in kinds, "the checkpoint was answered"
    assert record.protocol_errors == []
    assert record.heard_seconds > 0


async def test_a_telnyx_caller_speaks_telnyx() -> None:
    seen, record = await _raw_call("telnyx")
    assert [m["event"] for m in seen][:2] == ["connected", "start"]
    start = seen[1]
    assert "stream_id" in start and start["start"]["media_format"]["encoding"] == "PCMU"
    assert any(m["event"] == "mark" for m in seen[2:])
    assert record.protocol_errors == []


@pytest.mark.parametrize(("phone", "answered"), [("plivo", False), ("telnyx", True)])
async def test_a_cleared_mark_comes_back_only_where_the_provider_sends_it(
    phone: str, answered: bool
) -> None:
    """Plivo answers no checkpoint whose audio was cleared; Telnyx (as Twilio) sends the queued
    marks back: the simulated caller of each does the same."""
    seen, record = await _raw_call(phone, audio_seconds=2.0, clear=True)
    echoes = [m for m in seen if m["event"] in ("mark", "playedStream")]
    assert bool(echoes) is answered, echoes
    assert record.clears and record.protocol_errors == []


def test_the_server_takes_a_phone_provider_and_keeps_twilio_signatures_to_twilio() -> None:
    assert ServerConfig(phone="telnyx").phone_dialect is PHONES["telnyx"]
    with pytest.raises(ConfigError, match="one of twilio, telnyx, plivo, vonage"):
        ServerConfig(phone="bandwidth")
    with pytest.raises(ConfigError, match="unset TWILIO_AUTH_TOKEN"):
        ServerConfig(phone="plivo", twilio_auth_token="tok")
    with pytest.raises(ValueError, match="allowed: twilio, telnyx, plivo, vonage"):
        phone_dialect("bandwidth")


def test_the_servers_webhook_answers_in_the_phone_providers_markup() -> None:
    from starlette.testclient import TestClient  # noqa: PLC0415 - the server extra

    from voiceguard.server import create_app  # noqa: PLC0415

    config = ServerConfig(phone="telnyx", public_url="https://voice.example.com")
    with TestClient(create_app(config)) as client:
        answer = client.post("/incoming-call", data={"CallSid": "x"})
    assert answer.status_code == 200
    assert answer.text == stream_answer(PHONES["telnyx"], "wss://voice.example.com/media-stream")


@pytest.mark.parametrize("phone", ["plivo", "vonage"])
async def test_a_simulated_caller_refuses_twilios_words_where_its_provider_would(
    phone: str,
) -> None:
    """Plivo's and Vonage's callers refuse a bot's Twilio-worded ``media``, ``mark`` and
    ``clear`` (as those providers would), so a translation missed anywhere shows up as a
    protocol error of the call."""
    caller_end, bridge_end = memory_pair()
    caller = CallerSimulator(script=[HangUp(at=0.5)], phone=phone)

    async def bridge() -> None:
        with anyio.fail_after(10):
            await bridge_end.receive_frame()  # the caller's first message
            await bridge_end.send(json.dumps(clear_message("S1")))
            with contextlib.suppress(TransportClosed):
                while True:  # until the caller hangs up
                    await bridge_end.receive_frame()

    async with anyio.create_task_group() as tg:
        tg.start_soon(bridge)
        record = await caller.run(caller_end)
    await bridge_end.aclose()
    assert len(record.protocol_errors) == 1
    assert "Twilio's word" in record.protocol_errors[0]


def test_the_middleware_refuses_vonage_naming_what_takes_it() -> None:
    from voiceguard.middleware import GuardedCall  # noqa: PLC0415

    with pytest.raises(ValueError, match="Vonage's audio is binary: serve the call with"):
        GuardedCall().phone(object(), phone="vonage")
    with pytest.raises(ValueError, match="allowed: twilio, telnyx, plivo, vonage"):
        GuardedCall().phone(object(), phone="bandwidth")
