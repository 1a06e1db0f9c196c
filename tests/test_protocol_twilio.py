"""Parsing Twilio Media Streams messages (what Twilio sends)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol import (
    AudioDelta,
    Connected,
    DtmfReceived,
    MarkPlayed,
    MediaFormat,
    MediaReceived,
    OutboundClear,
    OutboundMark,
    OutboundMedia,
    StreamStarted,
    StreamStopped,
    TwilioEvent,
    UnknownEvent,
    clear_message,
    dumps,
    input_audio_append,
    mark_message,
    media_message,
    parse_realtime_event,
    parse_twilio_message,
    parse_twilio_outbound,
)
from voiceguard.protocol.twilio._parser import TWILIO_EVENTS

AUDIO = bytes(range(96, 256))  # 160 bytes = 20 ms of µ-law
AUDIO_B64 = base64.b64encode(AUDIO).decode()

CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "AC123",
        "streamSid": "MZ123",
        "callSid": "CA123",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"token": "t0k", "caller": "+15550100"},
    },
    "streamSid": "MZ123",
}
MEDIA: dict[str, Any] = {
    "event": "media",
    "sequenceNumber": "3",
    "media": {"track": "inbound", "chunk": "2", "timestamp": "40", "payload": AUDIO_B64},
    "streamSid": "MZ123",
}
MARK = {"event": "mark", "sequenceNumber": "4", "streamSid": "MZ123", "mark": {"name": "r1:3"}}
DTMF = {
    "event": "dtmf",
    "streamSid": "MZ123",
    "sequenceNumber": "5",
    "dtmf": {"track": "inbound_track", "digit": "#"},
}
STOP = {
    "event": "stop",
    "sequenceNumber": "6",
    "streamSid": "MZ123",
    "stop": {"accountSid": "AC123", "callSid": "CA123"},
}

CASES: list[tuple[dict[str, Any], TwilioEvent]] = [
    (CONNECTED, Connected(protocol="Call", version="1.0.0")),
    (
        START,
        StreamStarted(
            sequence_number=1,
            stream_sid="MZ123",
            account_sid="AC123",
            call_sid="CA123",
            tracks=("inbound",),
            custom_parameters={"token": "t0k", "caller": "+15550100"},
            media_format=MediaFormat(encoding="audio/x-mulaw", sample_rate=8000, channels=1),
        ),
    ),
    (
        MEDIA,
        MediaReceived(
            sequence_number=3,
            stream_sid="MZ123",
            track="inbound",
            chunk=2,
            timestamp_ms=40,
            payload=AUDIO_B64,
            audio=AUDIO,
        ),
    ),
    (MARK, MarkPlayed(sequence_number=4, stream_sid="MZ123", name="r1:3")),
    (DTMF, DtmfReceived(sequence_number=5, stream_sid="MZ123", track="inbound_track", digit="#")),
    (
        STOP,
        StreamStopped(sequence_number=6, stream_sid="MZ123", account_sid="AC123", call_sid="CA123"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: str(case[0]["event"]))
def test_messages_parse_from_mapping_text_and_bytes(
    case: tuple[dict[str, Any], TwilioEvent],
) -> None:
    message, expected = case
    assert parse_twilio_message(message) == expected
    assert parse_twilio_message(json.dumps(message)) == expected
    assert parse_twilio_message(json.dumps(message).encode()) == expected


def test_every_modelled_event_has_a_case() -> None:
    assert {case[0]["event"] for case in CASES} == set(TWILIO_EVENTS)


def test_media_format_numbers_may_be_strings() -> None:
    start = json.loads(json.dumps(START))
    start["start"]["mediaFormat"] = {
        "encoding": "audio/x-mulaw",
        "sampleRate": "8000",
        "channels": "1",
    }
    event = parse_twilio_message(start)
    assert isinstance(event, StreamStarted)
    assert event.media_format == MediaFormat(encoding="audio/x-mulaw", sample_rate=8000, channels=1)


def test_start_optional_parts() -> None:
    start = json.loads(json.dumps(START))
    del start["sequenceNumber"]
    del start["start"]["customParameters"]
    del start["streamSid"]  # start.streamSid stands in
    event = parse_twilio_message(start)
    assert isinstance(event, StreamStarted)
    assert event.sequence_number is None
    assert event.custom_parameters == {}
    assert event.stream_sid == "MZ123"


def test_media_payload_is_kept_verbatim_and_out_of_repr() -> None:
    event = parse_twilio_message(MEDIA)
    assert isinstance(event, MediaReceived)
    assert event.payload == AUDIO_B64
    assert event.num_bytes == 160
    assert AUDIO_B64 not in repr(event)


def test_unknown_events_never_raise() -> None:
    for message in (
        {"event": "clear", "streamSid": "MZ1"},
        {"event": "something_new", "x": [1, 2]},
        {"event": ""},
    ):
        assert parse_twilio_message(message) == UnknownEvent(
            type=str(message["event"]), raw=message
        )


# --- round trips: payloads pass through untouched ---------------------------------------------


def test_media_round_trip() -> None:
    # What we send to Twilio, and the same frame as Twilio delivers a frame (it adds the track,
    # chunk and timestamp): the payload is the same string and the same bytes.
    sent = json.loads(dumps(media_message("MZ123", AUDIO_B64)))
    sent["sequenceNumber"] = "7"
    sent["media"].update(track="inbound", chunk="5", timestamp="80")
    event = parse_twilio_message(dumps(sent))
    assert isinstance(event, MediaReceived)
    assert event.payload == AUDIO_B64
    assert event.audio == AUDIO
    assert event.stream_sid == "MZ123"


def test_payloads_pass_through_both_ways() -> None:
    inbound = parse_twilio_message(MEDIA)
    assert isinstance(inbound, MediaReceived)
    assert input_audio_append(inbound.payload)["audio"] is inbound.payload

    delta = parse_realtime_event(
        {
            "type": "response.output_audio.delta",
            "event_id": "e",
            "response_id": "r",
            "item_id": "i",
            "output_index": 0,
            "content_index": 0,
            "delta": AUDIO_B64,
        }
    )
    assert isinstance(delta, AudioDelta)
    assert media_message("MZ123", delta.payload)["media"]["payload"] is delta.payload


# --- malformed messages ----------------------------------------------------------------------


def _with(message: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A deep copy of *message* with the dotted *path* set to *value* (``...`` deletes it)."""
    copy: dict[str, Any] = json.loads(json.dumps(message))
    parent = copy
    *steps, last = path.split(".")
    for step in steps:
        parent = parent[step]
    if value is ...:
        del parent[last]
    else:
        parent[last] = value
    return copy


MALFORMED: list[tuple[object, str | None, str | None, str]] = [
    ("{", None, None,
     "not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    ("[]", None, None, "expected a JSON object, got an array"),
    (b"\xff", None, None, "not UTF-8 text (length 1)"),
    ({"streamSid": "MZ1"}, None, "event", "missing"),
    ({"event": 1}, None, "event", "expected a string, got a number"),
    ({"event": None}, None, "event", "expected a string, got null"),
    (_with(START, "start.mediaFormat.encoding", "audio/l16"), "start",
     "start.mediaFormat.encoding", "expected 'audio/x-mulaw', got 'audio/l16'"),
    (_with(START, "start.mediaFormat.sampleRate", 16000), "start", "start.mediaFormat.sampleRate",
     "expected 8000, got 16000"),
    (_with(START, "start.mediaFormat.sampleRate", "16000"), "start",
     "start.mediaFormat.sampleRate", "expected 8000, got 16000"),
    (_with(START, "start.mediaFormat.channels", "2"), "start", "start.mediaFormat.channels",
     "expected 1 (mono), got 2"),
    (_with(START, "start.mediaFormat", ...), "start", "start.mediaFormat", "missing"),
    (_with(START, "start.tracks", "inbound"), "start", "start.tracks",
     "expected an array, got a string"),
    (_with(START, "start.tracks", ["inbound", 2]), "start", "start.tracks.1",
     "expected a string, got a number"),
    (_with(START, "start.customParameters", {"a": 1}), "start", "start.customParameters.a",
     "expected a string, got a number"),
    (_with(START, "start.callSid", ...), "start", "start.callSid", "missing"),
    (_with(START, "start", ...), "start", "start", "missing"),
    (_with(MEDIA, "media.payload", "!!!!"), "media", "media.payload",
     "not valid base64 (length 4)"),
    (_with(MEDIA, "media.payload", "AAA"), "media", "media.payload",
     "not valid base64 (length 3)"),
    (_with(MEDIA, "media.payload", "é" * 8), "media", "media.payload",
     "not valid base64 (length 8)"),
    (_with(MEDIA, "media.payload", None), "media", "media.payload",
     "expected a base64 string, got null"),
    (_with(MEDIA, "media.chunk", "abc"), "media", "media.chunk",
     "expected a non-negative decimal integer string, got 'abc'"),
    (_with(MEDIA, "media.chunk", "-1"), "media", "media.chunk",
     "expected a non-negative decimal integer string, got '-1'"),
    (_with(MEDIA, "media.chunk", "١٢"), "media", "media.chunk",
     "expected a non-negative decimal integer string, got '١٢'"),
    (_with(MEDIA, "media.chunk", ""), "media", "media.chunk",
     "expected a non-negative decimal integer string, got ''"),
    (_with(MEDIA, "media.chunk", -3), "media", "media.chunk", "must not be negative, got -3"),
    (_with(MEDIA, "media.timestamp", "9" * 5000), "media", "media.timestamp",
     f"expected a non-negative decimal integer string, got '{'9' * 40}'... (5000 characters)"),
    (_with(MEDIA, "media.timestamp", 1.5), "media", "media.timestamp",
     "expected a decimal integer string, got a number"),
    (_with(MEDIA, "sequenceNumber", True), "media", "sequenceNumber",
     "expected a decimal integer string, got a boolean"),
    (_with(MEDIA, "streamSid", ...), "media", "streamSid", "missing"),
    (_with(MEDIA, "media.track", ...), "media", "media.track", "missing"),
    (_with(MEDIA, "media", []), "media", "media", "expected an object, got an array"),
    (_with(MARK, "mark.name", ...), "mark", "mark.name", "missing"),
    (_with(DTMF, "dtmf.digit", 1), "dtmf", "dtmf.digit", "expected a string, got a number"),
    (_with(STOP, "stop", ...), "stop", "stop", "missing"),
    (_with(CONNECTED, "version", ...), "connected", "version", "missing"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("message", "message_type", "field", "problem"),
    MALFORMED,
    ids=[f"{i}-{m[2]}" for i, m in enumerate(MALFORMED)],
)
def test_malformed_messages_raise_remote_protocol_error(
    message: object, message_type: str | None, field: str | None, problem: str
) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_twilio_message(message)  # type: ignore[arg-type]
    assert info.value.peer == "twilio"
    assert info.value.message_type == message_type
    assert info.value.field == field
    assert info.value.problem == problem


def test_error_message_names_the_media_format_value() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_twilio_message(_with(START, "start.mediaFormat.encoding", "audio/l16"))
    assert str(info.value) == (
        "twilio 'start': field 'start.mediaFormat.encoding': "
        "expected 'audio/x-mulaw', got 'audio/l16'"
    )


def test_bad_payload_never_appears_in_the_error() -> None:
    payload = "CALLERVOICE" * 30 + "*"
    with pytest.raises(RemoteProtocolError) as info:
        parse_twilio_message(_with(MEDIA, "media.payload", payload))
    assert "CALLERVOICE" not in str(info.value)


# --- property: nothing but RemoteProtocolError ever escapes -----------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _check(message: Any, parse: Callable[[Any], object] = parse_twilio_message) -> None:
    try:
        parse(message)
    except RemoteProtocolError as exc:
        error = exc
    else:
        return
    assert error.peer == "twilio"


def _paths(value: object, prefix: str = "") -> list[str]:
    found = [prefix[:-1]] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, f"{prefix}{key}.")
    return found


@given(st.text() | st.binary())
def test_arbitrary_text_never_raises_anything_else(text: str | bytes) -> None:
    _check(text)


@given(JSON_VALUES)
def test_arbitrary_json_never_raises_anything_else(value: object) -> None:
    _check(json.dumps(value))


@given(
    st.data(),
    st.sampled_from([case[0] for case in CASES]),
    JSON_VALUES | st.just(...),
)
def test_mutated_valid_messages_never_raise_anything_else(
    data: st.DataObject, message: dict[str, Any], new: object
) -> None:
    path = data.draw(st.sampled_from(_paths(message)))
    _check(_with(message, path, new))


# --- what a bot sends to Twilio ----------------------------------------------------------------

OUTBOUND = (
    media_message("MZ1", base64.b64encode(b"\xff" * 160).decode()),
    mark_message("MZ1", "greeting-1"),
    clear_message("MZ1"),
)


def test_the_builders_messages_read_back_as_twilio_reads_them() -> None:
    media, mark, clear = (parse_twilio_outbound(dumps(m)) for m in OUTBOUND)
    assert media == OutboundMedia(
        stream_sid="MZ1", payload=OUTBOUND[0]["media"]["payload"], audio=b"\xff" * 160
    )
    assert mark == OutboundMark(stream_sid="MZ1", name="greeting-1")
    assert clear == OutboundClear(stream_sid="MZ1")
    assert parse_twilio_outbound(OUTBOUND[2], stream_sid="MZ1") == clear  # a mapping too


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"streamSid": "MZ1"}, "twilio message: field 'event': missing"),
        (
            {"event": "start", "streamSid": "MZ1"},
            "twilio message: field 'event': expected 'media', 'mark' or 'clear', got 'start'",
        ),
        ({"event": "clear"}, "twilio 'clear': field 'streamSid': missing"),
        (
            {"event": "mark", "streamSid": "MZ1", "mark": {"name": ""}},
            "twilio 'mark': field 'mark.name': empty (Twilio needs a name to echo)",
        ),
        (
            {"event": "media", "streamSid": "MZ1", "media": {"payload": "abc"}},
            "twilio 'media': field 'media.payload': not valid base64 (length 3)",
        ),
        (
            {"event": "media", "streamSid": "MZ1", "media": {}},
            "twilio 'media': field 'media.payload': missing",
        ),
        (
            {"event": "clear", "streamSid": "MZ2"},
            "twilio 'clear': field 'streamSid': not the stream of this connection",
        ),
    ],
)
def test_a_message_twilio_would_refuse_names_the_field(message: dict[str, Any], error: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_twilio_outbound(json.dumps(message), stream_sid="MZ1")
    assert str(info.value) == error


@given(
    st.data(),
    st.sampled_from(OUTBOUND),
    JSON_VALUES | st.just(...),
)
def test_mutated_outbound_messages_never_raise_anything_else(
    data: st.DataObject, message: dict[str, Any], new: object
) -> None:
    path = data.draw(st.sampled_from(_paths(message)))
    _check(_with(message, path, new), parse_twilio_outbound)
