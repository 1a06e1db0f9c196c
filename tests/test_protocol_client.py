"""Parsing OpenAI Realtime client events (what a bot sends), and refusing malformed ones."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceguard import protocol
from voiceguard.protocol import (
    CLIENT_EVENT_TYPES,
    PCM24K,
    PCMA,
    PCMU,
    AudioAppend,
    AudioClear,
    AudioCommit,
    AudioFormat,
    ClientEvent,
    ClientEventError,
    ItemCreate,
    ItemDelete,
    ItemRetrieve,
    ItemTruncate,
    OutputAudioClear,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    input_audio_append,
    item_truncate,
    parse_client_event,
    response_cancel,
    session_update,
)
from voiceguard.protocol import client as client_module


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


ITEM = {"type": "message", "role": "user", "content": []}

CASES: list[tuple[dict[str, Any], ClientEvent]] = [
    (
        {"type": "session.update", "event_id": "e1", "session": {"type": "realtime"}},
        SessionUpdate(event_id="e1", session={"type": "realtime"}),
    ),
    (
        {"type": "input_audio_buffer.append", "audio": b64(b"\x7f\xff\x00")},
        AudioAppend(event_id=None, audio=b"\x7f\xff\x00"),
    ),
    ({"type": "input_audio_buffer.commit"}, AudioCommit(event_id=None)),
    ({"type": "input_audio_buffer.clear", "event_id": "c"}, AudioClear(event_id="c")),
    (
        {"type": "conversation.item.create", "item": ITEM, "previous_item_id": "item_a"},
        ItemCreate(event_id=None, item=ITEM, previous_item_id="item_a"),
    ),
    (
        {
            "type": "conversation.item.truncate",
            "item_id": "item_b",
            "content_index": 0,
            "audio_end_ms": 1500,
        },
        ItemTruncate(event_id=None, item_id="item_b", content_index=0, audio_end_ms=1500),
    ),
    (
        {"type": "conversation.item.delete", "item_id": "item_c"},
        ItemDelete(event_id=None, item_id="item_c"),
    ),
    (
        {"type": "conversation.item.retrieve", "item_id": "item_d"},
        ItemRetrieve(event_id=None, item_id="item_d"),
    ),
    (
        {"type": "response.create", "response": {"instructions": "Hi."}},
        ResponseCreate(event_id=None, response={"instructions": "Hi."}),
    ),
    ({"type": "response.create"}, ResponseCreate(event_id=None, response=None)),
    (
        {"type": "response.cancel", "response_id": "resp_1"},
        ResponseCancel(event_id=None, response_id="resp_1"),
    ),
    ({"type": "output_audio_buffer.clear"}, OutputAudioClear(event_id=None)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: str(case[0]["type"]))
def test_client_events_parse_from_mapping_text_and_bytes(
    case: tuple[dict[str, Any], ClientEvent],
) -> None:
    message, expected = case
    text = json.dumps(message)
    assert parse_client_event(message) == expected
    assert parse_client_event(text) == expected
    assert parse_client_event(text.encode()) == expected


def test_every_client_event_type_has_a_case() -> None:
    assert {case[0]["type"] for case in CASES} == set(CLIENT_EVENT_TYPES)
    assert set(CLIENT_EVENT_TYPES) == set(client_module.CLIENT_EVENTS)


def test_the_builders_messages_parse() -> None:
    assert isinstance(parse_client_event(session_update()), SessionUpdate)
    assert parse_client_event(response_cancel("resp_9", event_id="x")) == ResponseCancel(
        event_id="x", response_id="resp_9"
    )
    assert parse_client_event(item_truncate("item_a", 240)) == ItemTruncate(
        event_id=None, item_id="item_a", content_index=0, audio_end_ms=240
    )
    assert parse_client_event(input_audio_append("AAAA"), input_format=PCMU) == AudioAppend(
        event_id=None, audio=b"\x00\x00\x00"
    )


def test_the_module_is_exported_from_the_protocol_package() -> None:
    for name in client_module.__all__:
        assert getattr(protocol, name) is getattr(client_module, name), name


def test_append_audio_is_left_out_of_the_repr() -> None:
    event = parse_client_event({"type": "input_audio_buffer.append", "audio": "AAAA"})
    assert "audio" not in repr(event)


# --- refusals: each names the event type, the field and the problem ---------------------------

# (message, code, param, event_type, message)
REFUSALS: list[tuple[Any, str, str | None, str | None, str]] = [
    (
        "{not json",
        "invalid_json",
        None,
        None,
        "We could not parse the JSON body of your event: "
        "not JSON: Expecting property name enclosed in double quotes at line 1 column 2.",
    ),
    (
        "[1, 2]",
        "invalid_json",
        None,
        None,
        "We could not parse the JSON body of your event: expected a JSON object, got an array.",
    ),
    (
        {"event_id": "e"},
        "missing_required_parameter",
        "type",
        None,
        "Missing required parameter: 'type'.",
    ),
    (
        {"type": 7},
        "invalid_type",
        "type",
        None,
        "Invalid type for 'type': expected a string, but got a number instead.",
    ),
    (
        {"type": "response.explode"},
        "invalid_value",
        "type",
        "response.explode",
        "Invalid value: 'response.explode'. Supported values are: "
        + ", ".join(f"'{name}'" for name in CLIENT_EVENT_TYPES)
        + ".",
    ),
    (
        {"type": "response.cancel", "event_id": 5},
        "invalid_value",
        "event_id",
        "response.cancel",
        "Invalid 'event_id': expected a string of at most 512 characters.",
    ),
    (
        {"type": "response.cancel", "event_id": "e" * 513},
        "invalid_value",
        "event_id",
        "response.cancel",
        "Invalid 'event_id': expected a string of at most 512 characters.",
    ),
    (
        {"type": "conversation.item.delete"},
        "missing_required_parameter",
        "item_id",
        "conversation.item.delete",
        "Missing required parameter: 'item_id'.",
    ),
    (
        {"type": "conversation.item.delete", "item_id": 5},
        "invalid_type",
        "item_id",
        "conversation.item.delete",
        "Invalid type for 'item_id': expected a string, got a number.",
    ),
    (
        {"type": "conversation.item.delete", "item_id": None},
        "invalid_type",
        "item_id",
        "conversation.item.delete",
        "Invalid type for 'item_id': expected a string, got null.",
    ),
    (
        {"type": "session.update"},
        "missing_required_parameter",
        "session",
        "session.update",
        "Missing required parameter: 'session'.",
    ),
    (
        {"type": "response.create", "response": []},
        "invalid_type",
        "response",
        "response.create",
        "Invalid type for 'response': expected an object, got an array.",
    ),
    (
        {"type": "response.cancel", "response_id": 1},
        "invalid_type",
        "response_id",
        "response.cancel",
        "Invalid type for 'response_id': expected a string, got a number.",
    ),
    (
        {"type": "conversation.item.create", "item": {"role": "user"}},
        "missing_required_parameter",
        "item.type",
        "conversation.item.create",
        "Missing required parameter: 'item.type'.",
    ),
    (
        {"type": "conversation.item.create", "item": ITEM, "previous_item_id": 3},
        "invalid_type",
        "previous_item_id",
        "conversation.item.create",
        "Invalid type for 'previous_item_id': expected a string, got a number.",
    ),
    (
        {"type": "input_audio_buffer.append"},
        "missing_required_parameter",
        "audio",
        "input_audio_buffer.append",
        "Missing required parameter: 'audio'.",
    ),
    (
        {"type": "input_audio_buffer.append", "audio": 12},
        "invalid_type",
        "audio",
        "input_audio_buffer.append",
        "Invalid type for 'audio': expected a string, got a number.",
    ),
    (
        {"type": "input_audio_buffer.append", "audio": "!!!"},
        "invalid_value",
        "audio",
        "input_audio_buffer.append",
        "Invalid 'audio'. Expected base64-encoded audio bytes.",
    ),
    (
        {"type": "input_audio_buffer.append", "audio": "AAA"},  # bad padding
        "invalid_value",
        "audio",
        "input_audio_buffer.append",
        "Invalid 'audio'. Expected base64-encoded audio bytes.",
    ),
    (
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": 0,
            "audio_end_ms": -1,
        },
        "integer_below_min_value",
        "audio_end_ms",
        "conversation.item.truncate",
        "Invalid 'audio_end_ms': integer below minimum value. "
        "Expected a value >= 0, but got -1 instead.",
    ),
    (
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": -2,
            "audio_end_ms": 10,
        },
        "integer_below_min_value",
        "content_index",
        "conversation.item.truncate",
        "Invalid 'content_index': integer below minimum value. "
        "Expected a value >= 0, but got -2 instead.",
    ),
    (
        {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0},
        "missing_required_parameter",
        "audio_end_ms",
        "conversation.item.truncate",
        "Missing required parameter: 'audio_end_ms'.",
    ),
    (
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": 0,
            "audio_end_ms": True,
        },
        "invalid_type",
        "audio_end_ms",
        "conversation.item.truncate",
        "Invalid type for 'audio_end_ms': expected an integer, got a boolean.",
    ),
    (
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": 0,
            "audio_end_ms": 1.5,
        },
        "invalid_type",
        "audio_end_ms",
        "conversation.item.truncate",
        "Invalid type for 'audio_end_ms': expected an integer, got a number.",
    ),
]


@pytest.mark.parametrize(
    ("message", "code", "param", "event_type", "text"),
    REFUSALS,
    ids=[f"{case[1]}-{case[2]}-{i}" for i, case in enumerate(REFUSALS)],
)
def test_refusals_name_the_type_the_field_and_the_problem(
    message: Any, code: str, param: str | None, event_type: str | None, text: str
) -> None:
    with pytest.raises(ClientEventError) as caught:
        parse_client_event(message)
    exc = caught.value
    assert (exc.code, exc.param, exc.event_type, exc.message) == (code, param, event_type, text)
    assert str(exc) == text


def test_refusals_carry_the_event_id() -> None:
    with pytest.raises(ClientEventError) as caught:
        parse_client_event({"type": "input_audio_buffer.append", "event_id": "e7", "audio": "!"})
    assert caught.value.event_id == "e7"
    with pytest.raises(ClientEventError) as caught:
        parse_client_event({"type": "conversation.item.delete", "event_id": "e8"})
    assert caught.value.event_id == "e8"
    with pytest.raises(ClientEventError) as caught:
        parse_client_event({"type": "nope", "event_id": "e9"})
    assert caught.value.event_id == "e9"


# --- the sample check: input_format ------------------------------------------------------------


def _append(audio: bytes, event_id: str | None = None) -> dict[str, Any]:
    message = {"type": "input_audio_buffer.append", "audio": b64(audio)}
    if event_id is not None:
        message["event_id"] = event_id
    return message


@pytest.mark.parametrize("size", [1, 3, 161, 959])
def test_half_a_16_bit_sample_is_refused(size: int) -> None:
    with pytest.raises(ClientEventError) as caught:
        parse_client_event(_append(bytes(size), "e1"), input_format=PCM24K)
    exc = caught.value
    assert (exc.code, exc.param, exc.event_type, exc.event_id) == (
        "invalid_value",
        "audio",
        "input_audio_buffer.append",
        "e1",
    )
    assert exc.message == (
        f"Invalid 'audio': {size} bytes is not a whole number of 16-bit samples "
        "(audio/pcm at 24000 Hz)."
    )


def test_the_sample_check_uses_the_rate_of_the_format_given() -> None:
    pcm16k = AudioFormat(encoding="audio/pcm", sample_rate=16000)
    with pytest.raises(ClientEventError, match=r"16-bit samples \(audio/pcm at 16000 Hz\)"):
        parse_client_event(_append(bytes(5)), input_format=pcm16k)


@pytest.mark.parametrize("size", [0, 2, 160, 960])
def test_whole_16_bit_samples_pass(size: int) -> None:
    event = parse_client_event(_append(bytes(size)), input_format=PCM24K)
    assert event == AudioAppend(event_id=None, audio=bytes(size))


@pytest.mark.parametrize("fmt", [PCMU, PCMA, None], ids=["pcmu", "pcma", "none"])
def test_any_byte_count_is_whole_g711_samples_or_unchecked(fmt: AudioFormat | None) -> None:
    for size in (1, 3, 161):
        assert parse_client_event(_append(bytes(size)), input_format=fmt) == AudioAppend(
            event_id=None, audio=bytes(size)
        )


def test_bad_base64_is_reported_before_the_sample_check() -> None:
    with pytest.raises(ClientEventError, match="Expected base64-encoded audio bytes"):
        parse_client_event(_append(b"\x00") | {"audio": "AA"}, input_format=PCM24K)


def test_input_format_concerns_appends_only() -> None:
    for message, expected in CASES:
        assert parse_client_event(message, input_format=PCMU) == expected
    assert parse_client_event({"type": "input_audio_buffer.commit"}, input_format=PCM24K) == (
        AudioCommit(event_id=None)
    )


# --- nothing else ever escapes ------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False)
    | st.sampled_from(["", "AAAA", "AAA=", "!!", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["type", "id", "role"]), children, max_size=3)
    ),
    max_leaves=6,
)
FIELD_NAMES = [
    "event_id",
    "audio",
    "session",
    "item",
    "previous_item_id",
    "item_id",
    "content_index",
    "audio_end_ms",
    "response",
    "response_id",
]


@given(
    st.sampled_from([*CLIENT_EVENT_TYPES, "nope"]),
    st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=6),
    st.sampled_from([None, PCMU, PCM24K]),
)
def test_arbitrary_fields_raise_only_client_event_errors(
    type_: str, fields: dict[str, Any], fmt: AudioFormat | None
) -> None:
    error = None
    try:
        parse_client_event({**fields, "type": type_}, input_format=fmt)
    except ClientEventError as exc:
        error = exc
    assert error is None or (error.event_type == type_ and error.message)


@given(st.text() | st.binary())
def test_arbitrary_text_raises_only_client_event_errors(text: str | bytes) -> None:
    error = None
    try:
        parse_client_event(text)
    except ClientEventError as exc:
        error = exc
    assert error is None or error.message
