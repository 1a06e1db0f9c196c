"""Builders of the messages voiceguard sends: client events (GA, beta), Twilio messages, TwiML."""

from __future__ import annotations

import importlib
import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from voiceguard import protocol
from voiceguard.errors import LocalProtocolError
from voiceguard.protocol import (
    END_CALL_TOOL_NAME,
    PCM24K,
    PCMA,
    PCMU,
    AudioFormat,
    SessionUpdated,
    clear_message,
    client,
    connect_stream_twiml,
    dumps,
    end_call_tool,
    function_call_output,
    input_audio_append,
    input_audio_clear,
    input_audio_commit,
    item_delete,
    item_truncate,
    mark_message,
    media_message,
    parse_realtime_event,
    realtime,
    response_cancel,
    response_create,
    session_update,
    twilio,
)

#: The peer-independent helpers (a private module: looked up by name, not imported from).
_COMMON = importlib.import_module("voiceguard.protocol._common")
_PHONES = importlib.import_module("voiceguard.protocol._phones")

FULL_TURN_CONTROL = {
    "type": "server_vad",
    "interrupt_response": False,
    "create_response": False,
}

# --- session.update --------------------------------------------------------------------------


#: typing.final marks a class at run time (``__final__``) from Python 3.11 on; before, only
#: mypy --strict checks it (CI type-checks on the main Python).
FINAL_AT_RUN_TIME = sys.version_info >= (3, 11)


def test_session_update_defaults_ga() -> None:
    assert session_update() == {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}, "turn_detection": FULL_TURN_CONTROL},
                "output": {"format": {"type": "audio/pcmu"}},
            },
        },
    }


def test_session_update_defaults_beta() -> None:
    assert session_update(beta=True) == {
        "type": "session.update",
        "session": {
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "turn_detection": FULL_TURN_CONTROL,
        },
    }


def test_session_update_all_options_ga() -> None:
    tool = end_call_tool()
    message = session_update(
        instructions="Be brief.",
        voice="marin",
        tools=[tool],
        vad_threshold=0.6,
        prefix_padding_ms=300,
        silence_duration_ms=500,
        interrupt_response=True,
        create_response=True,
        input_format=PCM24K,
        output_format=PCMA,
        input_transcription_model="gpt-4o-transcribe",
        model="gpt-realtime",
        event_id="cfg_1",
    )
    assert message == {
        "type": "session.update",
        "event_id": "cfg_1",
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "instructions": "Be brief.",
            "tools": [tool],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.6,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "interrupt_response": True,
                        "create_response": True,
                    },
                    "transcription": {"model": "gpt-4o-transcribe"},
                },
                "output": {"format": {"type": "audio/pcma"}, "voice": "marin"},
            },
        },
    }


def test_session_update_all_options_beta() -> None:
    message = session_update(
        beta=True,
        instructions="",
        voice="alloy",
        tools=[],
        turn_detection="semantic_vad",
        eagerness="high",
        input_format=PCM24K,
        input_transcription_model="whisper-1",
    )
    assert message == {
        "type": "session.update",
        "session": {
            "instructions": "",
            "tools": [],
            "voice": "alloy",
            "input_audio_format": "pcm16",
            "output_audio_format": "g711_ulaw",
            "turn_detection": {
                "type": "semantic_vad",
                "eagerness": "high",
                "interrupt_response": False,
                "create_response": False,
            },
            "input_audio_transcription": {"model": "whisper-1"},
        },
    }


def test_session_update_turn_detection_off_sends_null() -> None:
    ga = session_update(turn_detection=None)
    assert ga["session"]["audio"]["input"]["turn_detection"] is None
    beta = session_update(turn_detection=None, beta=True)
    assert beta["session"]["turn_detection"] is None


@pytest.mark.parametrize("beta", [False, True])
def test_session_update_round_trips_through_the_parser(beta: bool) -> None:
    # The server echoes the session in session.updated; our own parser must read it back.
    sent = session_update(beta=beta)
    event = parse_realtime_event(
        {"type": "session.updated", "event_id": "e", "session": sent["session"]}
    )
    assert isinstance(event, SessionUpdated)
    assert event.turn_detection is not None
    assert event.turn_detection.interrupt_response is False
    assert event.turn_detection.create_response is False
    assert event.input_format == PCMU
    assert event.output_format == PCMU


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vad_threshold": 1.5}, "vad_threshold must be a number from 0 to 1, got 1.5"),
        ({"vad_threshold": True}, "vad_threshold must be a number from 0 to 1, got True"),
        ({"prefix_padding_ms": -1}, "prefix_padding_ms must be a non-negative integer, got -1"),
        ({"silence_duration_ms": 0.5}, "silence_duration_ms must be a non-negative integer"),
        ({"turn_detection": "semantic_vad", "vad_threshold": 0.5}, "apply to server_vad only"),
        ({"eagerness": "low"}, "eagerness applies to semantic_vad only"),
        ({"turn_detection": "semantic_vad", "eagerness": "now"}, "eagerness must be one of"),
        ({"turn_detection": None, "silence_duration_ms": 100}, "turn_detection is None"),
        ({"turn_detection": "vad"}, "turn_detection must be 'server_vad', 'semantic_vad' or None"),
        ({"interrupt_response": 1}, "interrupt_response must be True or False"),
        ({"create_response": None}, "create_response must be True or False"),
        ({"voice": ""}, "voice must be a non-empty string"),
        ({"instructions": 3}, "instructions must be a string"),
        ({"tools": "end_call"}, "tools must be a sequence of mappings"),
        ({"tools": ["end_call"]}, r"tools\[0\] must be a mapping"),
        ({"input_format": "g711_ulaw"}, "input_format must be an AudioFormat"),
        ({"event_id": "x" * 513}, "event_id must be a non-empty string of at most 512"),
        ({"event_id": ""}, "event_id must be a non-empty string"),
        (
            {"beta": True, "output_format": AudioFormat(encoding="audio/pcm", sample_rate=16000)},
            "the beta API has PCM only at 24000 Hz",
        ),
    ],
)
def test_session_update_rejects_bad_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        session_update(**kwargs)


def test_end_call_tool() -> None:
    assert END_CALL_TOOL_NAME == "end_call"
    assert end_call_tool(description="Hang up.") == {
        "type": "function",
        "name": "end_call",
        "description": "Hang up.",
        "parameters": {"type": "object", "properties": {}, "required": []},
    }
    assert end_call_tool()["description"]
    with pytest.raises(LocalProtocolError):
        end_call_tool(description="")


# --- the other client events -----------------------------------------------------------------


def test_simple_client_events() -> None:
    assert response_create() == {"type": "response.create"}
    assert response_create({"instructions": "Say goodbye.", "metadata": {"k": "v"}}) == {
        "type": "response.create",
        "response": {"instructions": "Say goodbye.", "metadata": {"k": "v"}},
    }
    assert response_cancel() == {"type": "response.cancel"}
    assert response_cancel("resp_1") == {"type": "response.cancel", "response_id": "resp_1"}
    assert item_truncate("item_a", 1500) == {
        "type": "conversation.item.truncate",
        "item_id": "item_a",
        "content_index": 0,
        "audio_end_ms": 1500,
    }
    assert item_truncate("item_a", 0, content_index=1)["content_index"] == 1
    assert item_delete("item_u") == {"type": "conversation.item.delete", "item_id": "item_u"}
    assert input_audio_append("AAAA") == {"type": "input_audio_buffer.append", "audio": "AAAA"}
    assert input_audio_commit() == {"type": "input_audio_buffer.commit"}
    assert input_audio_clear() == {"type": "input_audio_buffer.clear"}
    assert function_call_output("call_1", '{"ok": true}') == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"ok": true}'},
    }


def test_event_id_is_added_only_when_given() -> None:
    builders: list[Callable[[str | None], dict[str, Any]]] = [
        lambda event_id: response_create(event_id=event_id),
        lambda event_id: response_cancel(event_id=event_id),
        lambda event_id: item_truncate("i", 10, event_id=event_id),
        lambda event_id: item_delete("i", event_id=event_id),
        lambda event_id: input_audio_append("", event_id=event_id),
        lambda event_id: input_audio_commit(event_id=event_id),
        lambda event_id: input_audio_clear(event_id=event_id),
        lambda event_id: function_call_output("c", "", event_id=event_id),
        lambda event_id: session_update(event_id=event_id),
    ]
    for build in builders:
        assert "event_id" not in build(None)
        assert build("x" * 512)["event_id"] == "x" * 512
        with pytest.raises(LocalProtocolError, match="at most 512"):
            build("x" * 513)


@pytest.mark.parametrize(
    "bad_ms", [-1, 1.5, True, "100", None], ids=["negative", "float", "bool", "str", "none"]
)
def test_item_truncate_rejects_bad_ms(bad_ms: object) -> None:
    with pytest.raises(LocalProtocolError, match="audio_end_ms must be a non-negative integer"):
        item_truncate("item_a", bad_ms)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="content_index must be a non-negative integer"):
        item_truncate("item_a", 10, content_index=bad_ms)  # type: ignore[arg-type]


def test_builders_reject_bad_ids() -> None:
    with pytest.raises(LocalProtocolError, match="item_id must be a non-empty string"):
        item_truncate("", 10)
    with pytest.raises(LocalProtocolError, match="item_id"):
        item_delete(None)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="response_id"):
        response_cancel("")
    with pytest.raises(LocalProtocolError, match="call_id"):
        function_call_output("", "x")
    with pytest.raises(LocalProtocolError, match="output must be a string"):
        function_call_output("c", {"ok": True})  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="response must be a mapping"):
        response_create("now")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="payload_b64"):
        input_audio_append(b"AAAA")  # type: ignore[arg-type]


def test_audio_format_validation() -> None:
    with pytest.raises(LocalProtocolError, match="always 8000 Hz"):
        AudioFormat(encoding="audio/pcmu", sample_rate=16000)
    with pytest.raises(LocalProtocolError, match="positive multiple of 1000"):
        AudioFormat(encoding="audio/pcm", sample_rate=22050)
    with pytest.raises(LocalProtocolError, match="unknown audio encoding"):
        AudioFormat(encoding="audio/opus", sample_rate=48000)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="must be an integer"):
        AudioFormat(encoding="audio/pcm", sample_rate=24000.0)  # type: ignore[arg-type]
    assert PCMU.to_wire() == {"type": "audio/pcmu"}
    assert PCM24K.to_wire() == {"type": "audio/pcm", "rate": 24000}
    assert (PCMU.to_beta(), PCMA.to_beta(), PCM24K.to_beta()) == ("g711_ulaw", "g711_alaw", "pcm16")


# --- Twilio ----------------------------------------------------------------------------------


def test_twilio_messages() -> None:
    assert media_message("MZ1", "AAAA") == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": "AAAA"},
    }
    assert mark_message("MZ1", "r1:3") == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "r1:3"},
    }
    assert clear_message("MZ1") == {"event": "clear", "streamSid": "MZ1"}
    with pytest.raises(LocalProtocolError, match="stream_sid must be a non-empty string"):
        clear_message("")
    with pytest.raises(LocalProtocolError, match="name must be a non-empty string"):
        mark_message("MZ1", "")
    with pytest.raises(LocalProtocolError, match="payload_b64 must be a string"):
        media_message("MZ1", None)  # type: ignore[arg-type]


def test_twiml_minimal() -> None:
    assert connect_stream_twiml("wss://example.com/media-stream") == (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Response><Connect><Stream url="wss://example.com/media-stream"/></Connect></Response>'
    )


def test_twiml_with_say_and_parameters() -> None:
    twiml = connect_stream_twiml(
        "wss://example.com:443/media-stream",
        parameters={"token": "abc", "caller": "+1555"},
        say="Hello!",
    )
    assert twiml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello!</Say><Connect>'
        '<Stream url="wss://example.com:443/media-stream">'
        '<Parameter name="token" value="abc"/><Parameter name="caller" value="+1555"/>'
        "</Stream></Connect></Response>"
    )


def test_twiml_escaping() -> None:
    nasty = "a&b <c> \"d\" 'e'\nf"
    twiml = connect_stream_twiml(
        "wss://example.com/a&b", parameters={'k"<': nasty}, say='Tom & Jerry <3 "x"'
    )
    assert '<Say>Tom &amp; Jerry &lt;3 "x"</Say>' in twiml
    assert 'url="wss://example.com/a&amp;b"' in twiml
    assert (
        '<Parameter name="k&quot;&lt;" '
        'value="a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos;&#10;f"/>' in twiml
    )
    # A real XML parser reads back exactly what went in.
    root = ET.fromstring(twiml.encode())
    assert root.tag == "Response"
    assert root.findtext("Say") == 'Tom & Jerry <3 "x"'
    stream = root.find("Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://example.com/a&b"
    parameter = stream.find("Parameter")
    assert parameter is not None
    assert parameter.get("name") == 'k"<'
    assert parameter.get("value") == nasty


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/media-stream", "must start with wss://"),
        ("ws://example.com/media-stream", "must start with wss://"),
        ("example.com/media-stream", "must start with wss://"),
        ("wss://example.com/media-stream?token=abc", "must not have a query string"),
        ("wss://example.com/media-stream?", "must not have a query string"),
        ("wss://example.com/media#x", "must not have a fragment"),
        ("wss://example.com:8443/media-stream", "port 443 only"),
        ("wss://example.com:http/x", "not a valid URL"),
        ("wss:///media-stream", "has no host"),
        ("wss://example.com/media stream", "must not contain whitespace"),
        ("", "url must be a non-empty string"),
    ],
)
def test_twiml_rejects_bad_urls(url: str, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        connect_stream_twiml(url)


def test_twiml_rejects_text_xml_cannot_hold() -> None:
    with pytest.raises(LocalProtocolError, match="U\\+0000"):
        connect_stream_twiml("wss://example.com/x", say="a\x00b")
    with pytest.raises(LocalProtocolError, match="U\\+DC80"):
        connect_stream_twiml("wss://example.com/x", parameters={"k": "\udc80"})
    with pytest.raises(LocalProtocolError, match="parameter name must be a non-empty string"):
        connect_stream_twiml("wss://example.com/x", parameters={"": "v"})
    with pytest.raises(LocalProtocolError, match="must be a string"):
        connect_stream_twiml("wss://example.com/x", parameters={"k": 1})  # type: ignore[dict-item]


# --- dumps -----------------------------------------------------------------------------------


def test_dumps_is_compact_json() -> None:
    text = dumps(item_truncate("item_a", 1500))
    assert text == (
        '{"type":"conversation.item.truncate","item_id":"item_a","content_index":0,'
        '"audio_end_ms":1500}'
    )
    assert json.loads(dumps(session_update())) == session_update()
    assert dumps({"say": "héllo"}) == '{"say":"héllo"}'


@pytest.mark.parametrize(
    "message", [{"x": float("nan")}, {"x": object()}, {1j: 1}], ids=["nan", "object", "key"]
)
def test_dumps_rejects_what_json_cannot_carry(message: dict[Any, Any]) -> None:
    with pytest.raises(LocalProtocolError, match="not JSON-serialisable"):
        dumps(message)


# --- public names ----------------------------------------------------------------------------


def _isort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return (kind, name)


@pytest.mark.parametrize(
    "module", [protocol, realtime, client, twilio, _COMMON], ids=lambda m: m.__name__
)
def test_all_is_a_sorted_tuple_of_real_names(module: Any) -> None:
    names = module.__all__
    assert isinstance(names, tuple)
    assert list(names) == sorted(names, key=_isort_key)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(module, name), name


def test_package_exports_everything_public() -> None:
    expected = (
        set(realtime.__all__)
        | set(client.__all__)
        | set(twilio.__all__)
        | set(_COMMON.__all__)
        | set(_PHONES.__all__)
    )
    assert set(protocol.__all__) == expected
    assert protocol.UnknownEvent is realtime.UnknownEvent is twilio.UnknownEvent
    assert protocol.parse_client_event is client.parse_client_event


def test_public_classes_are_final_frozen_dataclasses() -> None:
    for name in protocol.__all__:
        obj = getattr(protocol, name)
        if isinstance(obj, type) and not issubclass(obj, BaseException):
            assert getattr(obj, "__final__", not FINAL_AT_RUN_TIME), name
            params = obj.__dataclass_params__  # type: ignore[attr-defined]
            assert params.frozen, name
            assert hasattr(obj, "__slots__"), name
