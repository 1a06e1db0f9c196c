"""Parsing OpenAI Realtime server events (GA names and their beta aliases)."""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol import (
    PCM24K,
    PCMA,
    PCMU,
    AudioDelta,
    AudioDone,
    AudioFormat,
    ContentPartAdded,
    ContentPartDone,
    FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone,
    InputAudioCleared,
    InputAudioCommitted,
    InputAudioTimeoutTriggered,
    InputTranscriptionCompleted,
    InputTranscriptionDelta,
    InputTranscriptionFailed,
    ItemAdded,
    ItemDeleted,
    ItemDone,
    ItemTruncated,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputItem,
    OutputItemAdded,
    OutputItemDone,
    RateLimitsUpdated,
    RealtimeError,
    RealtimeServerEvent,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptDelta,
    TranscriptDone,
    TurnDetection,
    UnknownEvent,
    parse_realtime_event,
)
from voiceguard.protocol._table import read_event
from voiceguard.protocol.realtime._parser import SERVER_EVENTS

AUDIO = bytes(range(160))  # 20 ms of µ-law
AUDIO_B64 = base64.b64encode(AUDIO).decode()

GA_SESSION: dict[str, Any] = {
    "type": "realtime",
    "object": "realtime.session",
    "id": "sess_1",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "instructions": "Be brief.",
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "transcription": None,
            "noise_reduction": None,
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 200,
                "idle_timeout_ms": None,
                "create_response": False,
                "interrupt_response": False,
            },
        },
        "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0},
    },
    "tools": [],
}

BETA_SESSION: dict[str, Any] = {
    "id": "sess_2",
    "object": "realtime.session",
    "modalities": ["text", "audio"],
    "voice": "alloy",
    "input_audio_format": "g711_ulaw",
    "output_audio_format": "g711_alaw",
    "turn_detection": {"type": "server_vad", "threshold": 1, "silence_duration_ms": 500},
}

FUNCTION_CALL_ITEM: dict[str, Any] = {
    "id": "item_fc",
    "object": "realtime.item",
    "type": "function_call",
    "status": "completed",
    "name": "end_call",
    "call_id": "call_1",
    "arguments": "{}",
}

MESSAGE_ITEM: dict[str, Any] = {
    "id": "item_a",
    "object": "realtime.item",
    "type": "message",
    "status": "in_progress",
    "role": "assistant",
    "content": [],
}

# (wire message, expected event): GA names, shapes as the server sends them.
GA_CASES: list[tuple[dict[str, Any], RealtimeServerEvent]] = [
    (
        {"type": "input_audio_buffer.speech_started", "event_id": "ev1", "audio_start_ms": 1000,
         "item_id": "item_u"},
        SpeechStarted(event_id="ev1", audio_start_ms=1000, item_id="item_u"),
    ),
    (
        {"type": "input_audio_buffer.speech_stopped", "event_id": "ev2", "audio_end_ms": 2500,
         "item_id": "item_u"},
        SpeechStopped(event_id="ev2", audio_end_ms=2500, item_id="item_u"),
    ),
    (
        {"type": "input_audio_buffer.committed", "event_id": "ev3", "item_id": "item_u",
         "previous_item_id": "item_0"},
        InputAudioCommitted(event_id="ev3", item_id="item_u", previous_item_id="item_0"),
    ),
    (
        {"type": "input_audio_buffer.committed", "event_id": "ev3", "item_id": "item_u",
         "previous_item_id": None},
        InputAudioCommitted(event_id="ev3", item_id="item_u", previous_item_id=None),
    ),
    (
        {"type": "input_audio_buffer.cleared", "event_id": "ev4"},
        InputAudioCleared(event_id="ev4"),
    ),
    (
        {"type": "input_audio_buffer.timeout_triggered", "event_id": "ev5", "audio_start_ms": 10,
         "audio_end_ms": 5010, "item_id": "item_t"},
        InputAudioTimeoutTriggered(event_id="ev5", audio_start_ms=10, audio_end_ms=5010,
                                   item_id="item_t"),
    ),
    (
        {"type": "conversation.item.added", "event_id": "ev6", "previous_item_id": "item_u",
         "item": MESSAGE_ITEM},
        ItemAdded(event_id="ev6", item_id="item_a", item_type="message", role="assistant",
                  status="in_progress", previous_item_id="item_u", item=MESSAGE_ITEM),
    ),
    (
        {"type": "conversation.item.done", "event_id": "ev7", "item": FUNCTION_CALL_ITEM},
        ItemDone(event_id="ev7", item_id="item_fc", item_type="function_call", role=None,
                 status="completed", previous_item_id=None, item=FUNCTION_CALL_ITEM),
    ),
    (
        {"type": "conversation.item.truncated", "event_id": "ev8", "item_id": "item_a",
         "content_index": 0, "audio_end_ms": 1500},
        ItemTruncated(event_id="ev8", item_id="item_a", content_index=0, audio_end_ms=1500),
    ),
    (
        {"type": "conversation.item.deleted", "event_id": "ev9", "item_id": "item_u"},
        ItemDeleted(event_id="ev9", item_id="item_u"),
    ),
    (
        {"type": "conversation.item.input_audio_transcription.delta", "event_id": "ev10",
         "item_id": "item_u", "content_index": 0, "delta": "Hel"},
        InputTranscriptionDelta(event_id="ev10", item_id="item_u", delta="Hel"),
    ),
    (
        {"type": "conversation.item.input_audio_transcription.completed", "event_id": "ev11",
         "item_id": "item_u", "content_index": 0, "transcript": "Hello."},
        InputTranscriptionCompleted(event_id="ev11", item_id="item_u", transcript="Hello."),
    ),
    (
        {"type": "conversation.item.input_audio_transcription.failed", "event_id": "ev12",
         "item_id": "item_u", "content_index": 0,
         "error": {"type": "transcription_error", "code": "audio_unintelligible",
                   "message": "no", "param": None}},
        InputTranscriptionFailed(
            event_id="ev12", item_id="item_u",
            error={"type": "transcription_error", "code": "audio_unintelligible",
                   "message": "no", "param": None},
        ),
    ),
    (
        {"type": "response.created", "event_id": "ev13",
         "response": {"object": "realtime.response", "id": "resp_1", "status": "in_progress",
                      "status_details": None, "output": [], "conversation_id": "conv_1",
                      "metadata": {"topic": "greeting"}}},
        ResponseCreated(event_id="ev13", response_id="resp_1", status="in_progress",
                        metadata={"topic": "greeting"}, conversation_id="conv_1"),
    ),
    (
        {"type": "response.output_item.added", "event_id": "ev14", "response_id": "resp_1",
         "output_index": 0, "item": MESSAGE_ITEM},
        OutputItemAdded(event_id="ev14", response_id="resp_1", output_index=0, item_id="item_a",
                        item_type="message", role="assistant", status="in_progress"),
    ),
    (
        {"type": "response.output_item.done", "event_id": "ev15", "response_id": "resp_1",
         "output_index": 1, "item": FUNCTION_CALL_ITEM},
        OutputItemDone(event_id="ev15", response_id="resp_1", output_index=1, item_id="item_fc",
                       item_type="function_call", status="completed", name="end_call",
                       call_id="call_1", arguments="{}"),
    ),
    (
        {"type": "response.content_part.added", "event_id": "ev16", "response_id": "resp_1",
         "item_id": "item_a", "output_index": 0, "content_index": 0,
         "part": {"type": "audio", "transcript": ""}},
        ContentPartAdded(event_id="ev16", response_id="resp_1", item_id="item_a", output_index=0,
                         content_index=0),
    ),
    (
        {"type": "response.content_part.done", "event_id": "ev17", "response_id": "resp_1",
         "item_id": "item_a", "output_index": 0, "content_index": 0,
         "part": {"type": "audio", "transcript": "Hi!"}},
        ContentPartDone(event_id="ev17", response_id="resp_1", item_id="item_a", output_index=0,
                        content_index=0),
    ),
    (
        {"type": "response.output_audio.delta", "event_id": "ev18", "response_id": "resp_1",
         "item_id": "item_a", "output_index": 0, "content_index": 0, "delta": AUDIO_B64},
        AudioDelta(event_id="ev18", response_id="resp_1", item_id="item_a", output_index=0,
                   content_index=0, payload=AUDIO_B64, audio=AUDIO),
    ),
    (
        {"type": "response.output_audio.done", "event_id": "ev19", "response_id": "resp_1",
         "item_id": "item_a", "output_index": 0, "content_index": 0},
        AudioDone(event_id="ev19", response_id="resp_1", item_id="item_a", output_index=0,
                  content_index=0),
    ),
    (
        {"type": "response.output_audio_transcript.delta", "event_id": "ev20",
         "response_id": "resp_1", "item_id": "item_a", "output_index": 0, "content_index": 0,
         "delta": "Hi"},
        TranscriptDelta(event_id="ev20", response_id="resp_1", item_id="item_a", delta="Hi"),
    ),
    (
        {"type": "response.output_audio_transcript.done", "event_id": "ev21",
         "response_id": "resp_1", "item_id": "item_a", "output_index": 0, "content_index": 0,
         "transcript": "Hi!"},
        TranscriptDone(event_id="ev21", response_id="resp_1", item_id="item_a", transcript="Hi!"),
    ),
    (
        {"type": "response.output_text.delta", "event_id": "ev22", "response_id": "resp_1",
         "item_id": "item_a", "output_index": 0, "content_index": 0, "delta": "x"},
        TextDelta(event_id="ev22", response_id="resp_1", item_id="item_a", delta="x"),
    ),
    (
        {"type": "response.output_text.done", "event_id": "ev23", "response_id": "resp_1",
         "item_id": "item_a", "output_index": 0, "content_index": 0, "text": "xy"},
        TextDone(event_id="ev23", response_id="resp_1", item_id="item_a", text="xy"),
    ),
    (
        {"type": "response.function_call_arguments.delta", "event_id": "ev24",
         "response_id": "resp_1", "item_id": "item_fc", "output_index": 1, "call_id": "call_1",
         "delta": "{"},
        FunctionCallArgumentsDelta(event_id="ev24", response_id="resp_1", item_id="item_fc",
                                   call_id="call_1", delta="{"),
    ),
    (
        {"type": "response.function_call_arguments.done", "event_id": "ev25",
         "response_id": "resp_1", "item_id": "item_fc", "output_index": 1, "call_id": "call_1",
         "name": "end_call", "arguments": "{}"},
        FunctionCallArgumentsDone(event_id="ev25", response_id="resp_1", item_id="item_fc",
                                  call_id="call_1", name="end_call", arguments="{}"),
    ),
    (
        {"type": "response.function_call_arguments.done", "event_id": "ev26",
         "response_id": "resp_1", "item_id": "item_fc", "output_index": 1, "call_id": "call_1",
         "arguments": "{}"},
        FunctionCallArgumentsDone(event_id="ev26", response_id="resp_1", item_id="item_fc",
                                  call_id="call_1", name=None, arguments="{}"),
    ),
    (
        {"type": "rate_limits.updated", "event_id": "ev27",
         "rate_limits": [{"name": "requests", "limit": 1000, "remaining": 999,
                          "reset_seconds": 60},
                         {"name": "tokens", "limit": 50000, "remaining": 49000,
                          "reset_seconds": 1.5}]},
        RateLimitsUpdated(
            event_id="ev27",
            rate_limits=({"name": "requests", "limit": 1000, "remaining": 999,
                          "reset_seconds": 60},
                         {"name": "tokens", "limit": 50000, "remaining": 49000,
                          "reset_seconds": 1.5}),
        ),
    ),
    (
        {"type": "output_audio_buffer.started", "event_id": "ev28", "response_id": "resp_1"},
        OutputAudioBufferStarted(event_id="ev28", response_id="resp_1"),
    ),
    (
        {"type": "output_audio_buffer.stopped", "event_id": "ev29", "response_id": "resp_1"},
        OutputAudioBufferStopped(event_id="ev29", response_id="resp_1"),
    ),
    (
        {"type": "output_audio_buffer.cleared", "event_id": "ev30"},
        OutputAudioBufferCleared(event_id="ev30", response_id=None),
    ),
    (
        {"type": "error", "event_id": "ev31",
         "error": {"type": "invalid_request_error", "code": "response_cancel_not_active",
                   "message": "Cancellation failed: no active response found",
                   "param": None, "event_id": "cancel_7"}},
        RealtimeError(event_id="ev31", error_type="invalid_request_error",
                      code="response_cancel_not_active",
                      message="Cancellation failed: no active response found", param=None,
                      client_event_id="cancel_7"),
    ),
    (
        {"type": "error", "event_id": "ev32",
         "error": {"type": "invalid_request_error", "code": "integer_below_min_value",
                   "message": "Invalid 'audio_end_ms'", "param": "audio_end_ms"}},
        RealtimeError(event_id="ev32", error_type="invalid_request_error",
                      code="integer_below_min_value", message="Invalid 'audio_end_ms'",
                      param="audio_end_ms", client_event_id=None),
    ),
]  # fmt: skip

# GA name -> beta alias (the beta shape).
BETA_ALIASES = {
    "conversation.item.added": "conversation.item.created",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
}


#: typing.final marks a class at run time (``__final__``) from Python 3.11 on; before, only
#: mypy --strict checks it (CI type-checks on the main Python).
FINAL_AT_RUN_TIME = sys.version_info >= (3, 11)


def _case_id(case: tuple[dict[str, Any], RealtimeServerEvent]) -> str:
    return str(case[0]["type"])


@pytest.mark.parametrize("case", GA_CASES, ids=_case_id)
def test_ga_events_parse_from_mapping_text_and_bytes(
    case: tuple[dict[str, Any], RealtimeServerEvent],
) -> None:
    message, expected = case
    text = json.dumps(message)
    assert parse_realtime_event(message) == expected
    assert parse_realtime_event(text) == expected
    assert parse_realtime_event(text.encode()) == expected
    assert parse_realtime_event(bytearray(text.encode())) == expected


@pytest.mark.parametrize(("ga_name", "beta_name"), sorted(BETA_ALIASES.items()))
def test_beta_aliases_give_the_ga_class(ga_name: str, beta_name: str) -> None:
    (message, expected) = next(case for case in GA_CASES if case[0]["type"] == ga_name)
    assert parse_realtime_event({**message, "type": beta_name}) == expected


def test_every_modelled_type_has_a_case() -> None:
    tested = {case[0]["type"] for case in GA_CASES} | set(BETA_ALIASES.values())
    tested |= {"session.created", "session.updated", "response.done"}  # tested below
    assert tested == set(SERVER_EVENTS)


def test_events_are_frozen_slotted_and_final() -> None:
    event = parse_realtime_event(GA_CASES[0][0])
    with pytest.raises(AttributeError):
        event.item_id = "other"  # type: ignore[misc, union-attr]
    assert not hasattr(event, "__dict__")
    assert getattr(type(event), "__final__", not FINAL_AT_RUN_TIME)


# --- session ---------------------------------------------------------------------------------


def test_ga_session_created() -> None:
    event = parse_realtime_event(
        {"type": "session.created", "event_id": "e", "session": GA_SESSION}
    )
    assert event == SessionCreated(
        event_id="e",
        session=GA_SESSION,
        turn_detection=TurnDetection(
            type="server_vad",
            interrupt_response=False,
            create_response=False,
            threshold=0.5,
            prefix_padding_ms=300,
            silence_duration_ms=200,
        ),
        turn_detection_present=True,
        input_format=PCMU,
        output_format=PCMU,
    )


def test_beta_session_updated() -> None:
    event = parse_realtime_event(
        {"type": "session.updated", "event_id": "e", "session": BETA_SESSION}
    )
    assert isinstance(event, SessionUpdated)
    # interrupt_response / create_response absent: the server defaults (True) apply.
    assert event.turn_detection == TurnDetection(
        type="server_vad", threshold=1.0, silence_duration_ms=500
    )
    assert event.turn_detection.interrupt_response is True
    assert event.turn_detection.create_response is True
    assert event.turn_detection_present is True
    assert event.input_format == PCMU
    assert event.output_format == PCMA


def _session_event(session: Mapping[str, Any]) -> SessionUpdated:
    event = parse_realtime_event({"type": "session.updated", "event_id": "e", "session": session})
    assert isinstance(event, SessionUpdated)
    return event


def test_turn_detection_null_means_off() -> None:
    ga = _session_event({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    assert ga.turn_detection is None
    assert ga.turn_detection_present is True
    beta = _session_event({"turn_detection": None})
    assert beta.turn_detection is None
    assert beta.turn_detection_present is True


def test_turn_detection_absent_is_not_off() -> None:
    ga = _session_event(
        {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}
    )
    assert ga.turn_detection is None
    assert ga.turn_detection_present is False
    assert _session_event({"instructions": "x"}).turn_detection_present is False


def test_semantic_vad() -> None:
    event = _session_event(
        {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}}}}
    )
    assert event.turn_detection == TurnDetection(type="semantic_vad", eagerness="low")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "audio/pcmu"}, PCMU),
        ({"type": "audio/pcma"}, PCMA),
        ({"type": "audio/pcm", "rate": 24000}, PCM24K),
        ({"type": "audio/pcm"}, PCM24K),
        (
            {"type": "audio/pcm", "rate": 16000},
            AudioFormat(encoding="audio/pcm", sample_rate=16000),
        ),
        ("g711_ulaw", PCMU),
        ("g711_alaw", PCMA),
        ("pcm16", PCM24K),
    ],
)
def test_audio_formats(fmt: object, expected: AudioFormat) -> None:
    event = _session_event({"audio": {"input": {"format": fmt}, "output": {"format": fmt}}})
    assert event.input_format == expected
    assert event.output_format == expected


def test_beta_format_strings() -> None:
    event = _session_event({"input_audio_format": "pcm16", "output_audio_format": "g711_ulaw"})
    assert event.input_format == PCM24K
    assert event.output_format == PCMU


def test_audio_format_sizes() -> None:
    assert PCMU.bytes_per_ms == 8
    assert PCMA.bytes_per_ms == 8
    assert PCM24K.bytes_per_ms == 48
    assert PCMU.sample_width == 1
    assert PCM24K.sample_width == 2


# --- response.done ---------------------------------------------------------------------------


def test_response_done_summarises_output() -> None:
    message = {
        "type": "response.done",
        "event_id": "e",
        "response": {
            "object": "realtime.response",
            "id": "resp_1",
            "status": "cancelled",
            "status_details": {"type": "cancelled", "reason": "turn_detected"},
            "output": [MESSAGE_ITEM, FUNCTION_CALL_ITEM],
            "conversation_id": "conv_1",
            "metadata": None,
            "usage": {"total_tokens": 10},
        },
    }
    event = parse_realtime_event(message)
    assert event == ResponseDone(
        event_id="e",
        response_id="resp_1",
        status="cancelled",
        status_reason="turn_detected",
        output=(
            OutputItem(item_id="item_a", item_type="message", role="assistant",
                       status="in_progress"),
            OutputItem(item_id="item_fc", item_type="function_call", status="completed",
                       name="end_call", call_id="call_1", arguments="{}"),
        ),
        metadata=None,
        conversation_id="conv_1",
        status_details={"type": "cancelled", "reason": "turn_detected"},
        usage={"total_tokens": 10},
    )  # fmt: skip


def test_response_done_minimal() -> None:
    event = parse_realtime_event(
        {"type": "response.done", "event_id": "e", "response": {"id": "r", "status": "completed"}}
    )
    assert event == ResponseDone(
        event_id="e", response_id="r", status="completed", status_reason=None, output=()
    )


# --- audio -----------------------------------------------------------------------------------


def _delta(payload: str, type_: str = "response.output_audio.delta") -> dict[str, Any]:
    return {
        "type": type_,
        "event_id": "e",
        "response_id": "r",
        "item_id": "i",
        "output_index": 0,
        "content_index": 0,
        "delta": payload,
    }


def test_audio_delta_keeps_the_payload_verbatim() -> None:
    event = parse_realtime_event(_delta(AUDIO_B64))
    assert isinstance(event, AudioDelta)
    assert event.payload == AUDIO_B64
    assert event.audio == AUDIO
    assert event.num_bytes == 160
    # Audio stays out of the repr, so logging an event never logs audio.
    assert AUDIO_B64 not in repr(event)
    assert "payload" not in repr(event)


def test_pcm16_delta_must_hold_whole_samples() -> None:
    even = parse_realtime_event(
        _delta(base64.b64encode(b"\x01\x02" * 3).decode()), audio_format=PCM24K
    )
    assert isinstance(even, AudioDelta)
    assert even.num_bytes == 6
    with pytest.raises(RemoteProtocolError) as info:
        parse_realtime_event(_delta(base64.b64encode(b"\x01" * 7).decode()), audio_format=PCM24K)
    assert info.value.field == "delta"
    assert info.value.problem == "7 bytes is not a whole number of 16-bit samples"
    # An odd length is fine for G.711 (one byte per sample).
    assert parse_realtime_event(_delta(base64.b64encode(b"\x01" * 7).decode())).num_bytes == 7  # type: ignore[union-attr]


def test_empty_audio_delta() -> None:
    event = parse_realtime_event(_delta(""))
    assert isinstance(event, AudioDelta)
    assert event.audio == b""


def test_bad_base64_error_never_shows_the_payload() -> None:
    payload = "SECRETAUDIO" * 20 + "!"
    with pytest.raises(RemoteProtocolError) as info:
        parse_realtime_event(_delta(payload))
    assert info.value.peer == "realtime"
    assert info.value.message_type == "response.output_audio.delta"
    assert info.value.field == "delta"
    assert info.value.problem == f"not valid base64 (length {len(payload)})"
    assert "SECRETAUDIO" not in str(info.value)


@pytest.mark.parametrize(
    "payload",
    ["AAA", "AA==AA==", "A A=", "AAAA\n", "====", "ÄÄÄÄ", "AAA=="],
    ids=["short", "data-after-padding", "space", "newline", "only-padding", "non-ascii", "pad"],
)
def test_base64_is_strict(payload: str) -> None:
    with pytest.raises(RemoteProtocolError, match="not valid base64"):
        parse_realtime_event(_delta(payload))


# --- unknown types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "type_",
    ["conversation.created", "input_audio_buffer.dtmf_event_received", "mcp_list_tools.failed",
     "conversation.item.retrieved", "response.something_new", ""],
)  # fmt: skip
def test_unknown_types_never_raise(type_: str) -> None:
    message = {"type": type_, "whatever": [1, {"x": None}]}
    assert parse_realtime_event(message) == UnknownEvent(type=type_, raw=message)
    assert parse_realtime_event(json.dumps(message)) == UnknownEvent(type=type_, raw=message)


# --- malformed known events ------------------------------------------------------------------

SPEECH: dict[str, Any] = {
    "type": "input_audio_buffer.speech_started",
    "event_id": "e",
    "audio_start_ms": 5,
    "item_id": "i",
}
DONE: dict[str, Any] = {
    "type": "response.done",
    "event_id": "e",
    "response": {"id": "r", "status": "completed"},
}

MALFORMED: list[tuple[object, str | None, str | None, str]] = [
    ("not json", None, None, "not JSON: Expecting value at line 1 column 1"),
    ("", None, None, "not JSON: Expecting value at line 1 column 1"),
    ('{"type": "error",\n "x": }', None, None, "not JSON: Expecting value at line 2 column 7"),
    ("[1, 2]", None, None, "expected a JSON object, got an array"),
    ("null", None, None, "expected a JSON object, got null"),
    ('"type"', None, None, "expected a JSON object, got a string"),
    (b'{"type": "\xff"}', None, None, "not UTF-8 text (length 13)"),
    ("[" * 100_000, None, None, "not JSON (length 100000)"),
    ({}, None, "type", "missing"),
    ({"type": None}, None, "type", "expected a string, got null"),
    ({"type": 5}, None, "type", "expected a string, got a number"),
    ({"type": ["error"]}, None, "type", "expected a string, got an array"),
    ({**SPEECH, "item_id": None}, SPEECH["type"], "item_id", "expected a string, got null"),
    ({k: v for k, v in SPEECH.items() if k != "item_id"}, SPEECH["type"], "item_id", "missing"),
    ({k: v for k, v in SPEECH.items() if k != "event_id"}, SPEECH["type"], "event_id", "missing"),
    ({**SPEECH, "audio_start_ms": "5"}, SPEECH["type"], "audio_start_ms",
     "expected an integer, got a string"),
    ({**SPEECH, "audio_start_ms": True}, SPEECH["type"], "audio_start_ms",
     "expected an integer, got a boolean"),
    ({**SPEECH, "audio_start_ms": 1.5}, SPEECH["type"], "audio_start_ms",
     "expected an integer, got a number"),
    ({**SPEECH, "audio_start_ms": -5}, SPEECH["type"], "audio_start_ms",
     "must not be negative, got -5"),
    ({**DONE, "response": None}, "response.done", "response", "expected an object, got null"),
    ({**DONE, "response": "resp_1"}, "response.done", "response",
     "expected an object, got a string"),
    ({**DONE, "response": {"status": "completed"}}, "response.done", "response.id", "missing"),
    ({**DONE, "response": {"id": "r", "status": "completed", "output": {}}}, "response.done",
     "response.output", "expected an array, got an object"),
    ({**DONE, "response": {"id": "r", "status": "completed", "output": [MESSAGE_ITEM, "x"]}},
     "response.done", "response.output.1", "expected an object, got a string"),
    ({**DONE, "response": {"id": "r", "status": "completed", "output": [{"type": "message"}]}},
     "response.done", "response.output.0.id", "missing"),
    ({**DONE, "response": {"id": "r", "status": "completed", "status_details": {"reason": 3}}},
     "response.done", "response.status_details.reason", "expected a string, got a number"),
    ({**DONE, "response": {"id": "r", "status": "completed", "metadata": []}},
     "response.done", "response.metadata", "expected an object, got an array"),
    ({"type": "session.updated", "event_id": "e",
      "session": {"audio": {"input": {"turn_detection": {"type": "server_vad",
                                                         "interrupt_response": "no"}}}}},
     "session.updated", "session.audio.input.turn_detection.interrupt_response",
     "expected a boolean, got a string"),
    ({"type": "session.updated", "event_id": "e",
      "session": {"audio": {"input": {"turn_detection": {"interrupt_response": False}}}}},
     "session.updated", "session.audio.input.turn_detection.type", "missing"),
    ({"type": "session.updated", "event_id": "e",
      "session": {"audio": {"input": {"turn_detection": {"type": "server_vad",
                                                         "threshold": float("nan")}}}}},
     "session.updated", "session.audio.input.turn_detection.threshold",
     "expected a finite number, got nan"),
    ({"type": "session.updated", "event_id": "e",
      "session": {"audio": {"input": {"format": {"type": "audio/opus"}}}}},
     "session.updated", "session.audio.input.format.type", "unsupported audio format 'audio/opus'"),
    ({"type": "session.updated", "event_id": "e",
      "session": {"audio": {"output": {"format": {"type": "audio/pcm", "rate": 22050}}}}},
     "session.updated", "session.audio.output.format.rate",
     "expected a positive multiple of 1000 Hz, got 22050"),
    ({"type": "session.updated", "event_id": "e",
      "session": {"audio": {"output": {"format": {"type": "audio/pcmu", "rate": 16000}}}}},
     "session.updated", "session.audio.output.format.rate",
     "audio/pcmu is always 8000 Hz, got 16000"),
    ({"type": "session.created", "event_id": "e", "session": {"input_audio_format": "mp3"}},
     "session.created", "session.input_audio_format", "unsupported audio format 'mp3'"),
    ({"type": "session.created", "event_id": "e", "session": {"audio": []}},
     "session.created", "session.audio", "expected an object, got an array"),
    ({"type": "error", "event_id": "e", "error": {"type": "server_error"}}, "error",
     "error.message", "missing"),
    ({"type": "error", "event_id": "e"}, "error", "error", "missing"),
    ({"type": "rate_limits.updated", "event_id": "e", "rate_limits": {}}, "rate_limits.updated",
     "rate_limits", "expected an array, got an object"),
    ({"type": "rate_limits.updated", "event_id": "e", "rate_limits": [1]}, "rate_limits.updated",
     "rate_limits.0", "expected an object, got a number"),
    ({"type": "conversation.item.added", "event_id": "e", "item": {"type": "message"}},
     "conversation.item.added", "item.id", "missing"),
    ({"type": "conversation.item.created", "event_id": "e", "item": {"id": "i", "type": "message",
                                                                     "role": 1}},
     "conversation.item.created", "item.role", "expected a string, got a number"),
    ({**_delta(AUDIO_B64), "delta": 12}, "response.output_audio.delta", "delta",
     "expected a base64 string, got a number"),
    ({**_delta(AUDIO_B64, "response.audio.delta"), "output_index": None}, "response.audio.delta",
     "output_index", "expected an integer, got null"),
    ({"type": "conversation.item.input_audio_transcription.failed", "event_id": "e",
      "item_id": "i", "error": "boom"},
     "conversation.item.input_audio_transcription.failed", "error",
     "expected an object, got a string"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("message", "message_type", "field", "problem"),
    MALFORMED,
    ids=[f"{i}-{m[2]}" for i, m in enumerate(MALFORMED)],
)
def test_malformed_events_raise_remote_protocol_error(
    message: object, message_type: str | None, field: str | None, problem: str
) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_realtime_event(message)
    assert info.value.peer == "realtime"
    assert info.value.message_type == message_type
    assert info.value.field == field
    assert info.value.problem == problem
    assert isinstance(info.value, ValueError)


def test_error_message_format() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_realtime_event({**SPEECH, "audio_start_ms": -5})
    assert str(info.value) == (
        "realtime 'input_audio_buffer.speech_started': field 'audio_start_ms': "
        "must not be negative, got -5"
    )


def test_not_a_message_at_all() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_realtime_event(42)
    assert info.value.field is None
    assert "got int" in info.value.problem


# --- objects from the openai SDK (pydantic) ---------------------------------------------------


def test_sdk_ga_events() -> None:
    rt = pytest.importorskip("openai.types.realtime")
    delta = rt.ResponseAudioDeltaEvent(
        type="response.output_audio.delta", event_id="e", response_id="r", item_id="i",
        output_index=0, content_index=0, delta=AUDIO_B64,
    )  # fmt: skip
    event = parse_realtime_event(delta)
    assert isinstance(event, AudioDelta)
    assert event.audio == AUDIO

    done = rt.ResponseDoneEvent(
        type="response.done",
        event_id="e2",
        response={
            "id": "r",
            "status": "cancelled",
            "status_details": {"type": "cancelled", "reason": "client_cancelled"},
            "output": [FUNCTION_CALL_ITEM],
        },
    )
    event = parse_realtime_event(done)
    assert isinstance(event, ResponseDone)
    assert event.status_reason == "client_cancelled"
    assert event.output[0].name == "end_call"

    error = rt.RealtimeErrorEvent(
        type="error",
        event_id="e3",
        error={"type": "invalid_request_error", "message": "m", "event_id": "mine"},
    )
    event = parse_realtime_event(error)
    assert isinstance(event, RealtimeError)
    assert event.client_event_id == "mine"
    assert event.code is None

    started = rt.InputAudioBufferSpeechStartedEvent(
        type="input_audio_buffer.speech_started", event_id="e4", audio_start_ms=0, item_id="u"
    )
    assert parse_realtime_event(started) == SpeechStarted(
        event_id="e4", audio_start_ms=0, item_id="u"
    )


def test_sdk_session_keeps_absent_apart_from_null() -> None:
    rt = pytest.importorskip("openai.types.realtime")
    off = rt.SessionUpdatedEvent(
        type="session.updated",
        event_id="e",
        session={"type": "realtime", "audio": {"input": {"turn_detection": None}}},
    )
    event = parse_realtime_event(off)
    assert isinstance(event, SessionUpdated)
    assert event.turn_detection is None
    assert event.turn_detection_present is True

    absent = rt.SessionUpdatedEvent(
        type="session.updated",
        event_id="e",
        session={"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
    )
    event = parse_realtime_event(absent)
    assert isinstance(event, SessionUpdated)
    assert event.turn_detection_present is False
    assert event.input_format == PCMU


def test_sdk_parses_a_beta_name_into_the_wrong_class_but_type_decides() -> None:
    # construct_type_unchecked is what the SDK's connection.parse_event / recv() use.
    models = pytest.importorskip("openai._models")
    rt = pytest.importorskip("openai.types.realtime")

    wire = _delta(AUDIO_B64, "response.audio.delta")
    sdk_event = models.construct_type_unchecked(value=wire, type_=rt.RealtimeServerEvent)
    assert type(sdk_event).__name__ != "ResponseAudioDeltaEvent"  # the SDK's pitfall
    assert sdk_event.type == "response.audio.delta"
    event = parse_realtime_event(sdk_event)
    assert isinstance(event, AudioDelta)
    assert event.payload == AUDIO_B64

    unknown = models.construct_type_unchecked(
        value={"type": "response.brand_new", "event_id": "e", "x": 1},
        type_=rt.RealtimeServerEvent,
    )
    event = parse_realtime_event(unknown)
    assert isinstance(event, UnknownEvent)
    assert event.type == "response.brand_new"
    assert event.raw["x"] == 1


def test_sdk_beta_event_classes() -> None:
    beta = pytest.importorskip("openai.types.beta.realtime")
    delta = beta.ResponseAudioDeltaEvent(
        type="response.audio.delta", event_id="e", response_id="r", item_id="i",
        output_index=0, content_index=0, delta=AUDIO_B64,
    )  # fmt: skip
    assert isinstance(parse_realtime_event(delta), AudioDelta)
    created = beta.ConversationItemCreatedEvent(
        type="conversation.item.created",
        event_id="e",
        previous_item_id=None,
        item={"id": "item_u", "type": "message", "role": "user", "status": "completed"},
    )
    event = parse_realtime_event(created)
    assert isinstance(event, ItemAdded)
    assert event.role == "user"


class _PlainModel:
    """A look-alike whose model_dump takes no options (the fallback path)."""

    type = "input_audio_buffer.cleared"

    def model_dump(self) -> dict[str, Any]:
        return {"type": self.type, "event_id": "e"}


class _BrokenModel:
    type = "response.done"

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("boom")


class _ListModel:
    type = "response.done"

    def model_dump(self, **kwargs: Any) -> list[int]:
        return [1]


class _NoDump:
    type = "response.done"


def test_model_like_objects() -> None:
    assert parse_realtime_event(_PlainModel()) == InputAudioCleared(event_id="e")
    with pytest.raises(RemoteProtocolError, match=r"model_dump\(\) failed \(RuntimeError\)"):
        parse_realtime_event(_BrokenModel())
    with pytest.raises(RemoteProtocolError, match="not a mapping"):
        parse_realtime_event(_ListModel())
    with pytest.raises(RemoteProtocolError, match="got _NoDump"):
        parse_realtime_event(_NoDump())


# --- property: nothing but RemoteProtocolError ever escapes -----------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = sorted(
    {
        key
        for case in GA_CASES
        for key in case[0]
    }
    | {"session", "audio", "input", "output", "format", "turn_detection", "rate", "id", "status",
       "status_details", "reason", "input_audio_format", "output_audio_format"}
)  # fmt: skip
VALID_MESSAGES = [case[0] for case in GA_CASES] + [
    {"type": "session.created", "event_id": "e", "session": GA_SESSION},
    {"type": "session.updated", "event_id": "e", "session": BETA_SESSION},
    {"type": "response.done", "event_id": "e", "response": {
        "id": "r", "status": "cancelled", "status_details": {"reason": "turn_detected"},
        "output": [MESSAGE_ITEM, FUNCTION_CALL_ITEM], "metadata": {"k": "v"}}},
]  # fmt: skip


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _mutate(message: Any, path: tuple[str | int, ...], new: object, delete: bool) -> Any:
    copy = json.loads(json.dumps(message))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return copy


def _check(message: object, **kwargs: Any) -> None:
    try:
        parse_realtime_event(message, **kwargs)
    except RemoteProtocolError as exc:
        error = exc
    else:
        return
    assert error.peer == "realtime"
    assert str(error)


@given(st.text() | st.binary())
def test_arbitrary_text_never_raises_anything_else(text: str | bytes) -> None:
    _check(text)


@given(JSON_VALUES)
def test_arbitrary_json_never_raises_anything_else(value: object) -> None:
    _check(json.dumps(value))


@given(
    st.sampled_from(sorted(SERVER_EVENTS)),
    st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=8),
)
def test_arbitrary_fields_of_known_types_never_raise_anything_else(
    type_: str, fields: dict[str, Any]
) -> None:
    _check({**fields, "type": type_})


@given(st.data(), st.sampled_from(VALID_MESSAGES), JSON_VALUES, st.booleans(), st.booleans())
def test_mutated_valid_events_never_raise_anything_else(
    data: st.DataObject, message: dict[str, Any], new: object, delete: bool, pcm: bool
) -> None:
    path = data.draw(st.sampled_from(_paths(message)))
    _check(_mutate(message, path, new, delete), audio_format=PCM24K if pcm else PCMU)


# --- the audio delta's direct path agrees with its field specs ---------------------------------


@given(
    index=st.sampled_from([0, 3, -1, "0", True, None, 1.0]),
    ids=st.sampled_from(["resp_1", "", 7, None]),
    delta=st.sampled_from(["AAAA", "AAA=", "AA==", "", "not base64!", 5, None]),
    pcm=st.booleans(),
    beta=st.booleans(),
)
def test_audio_delta_direct_path_agrees_with_the_field_specs(
    index: object, ids: object, delta: object, pcm: bool, beta: bool
) -> None:
    event_type = "response.audio.delta" if beta else "response.output_audio.delta"
    message: dict[str, Any] = {
        "type": event_type,
        "event_id": "e1",
        "response_id": ids,
        "item_id": "item_1",
        "output_index": index,
        "content_index": 0,
        "delta": delta,
    }
    fmt = PCM24K if pcm else PCMU
    spec = SERVER_EVENTS[event_type]
    assert spec.fast is not None
    slow = dataclasses.replace(spec, fast=None)

    def outcome(read: Any) -> object:
        try:
            return read()
        except RemoteProtocolError as exc:
            return str(exc)

    direct = outcome(lambda: parse_realtime_event(message, audio_format=fmt))
    general = outcome(lambda: read_event(slow, "realtime", event_type, message, fmt))
    assert direct == general
