"""Hypothesis strategies for fuzzing a voice bot: messages of both peers, and whole calls.

Three kinds of input, for each peer:

* **valid** messages, as the real service sends them (:func:`realtime_events`,
  :func:`twilio_messages` with ``near_valid=False``);
* **near-valid** ones: a valid message with one field deleted, retyped or replaced by arbitrary
  JSON, or its type swapped for another's (the default): what a parser's error paths meet;
* **arbitrary** text frames: random text, random JSON, truncated JSON (:func:`realtime_texts`,
  :func:`twilio_texts`).

:func:`call_plans` draws whole calls for the simulators: what the model says and how its
events are tampered with, what the caller does, and stray messages from both peers at random
moments: arbitrary interleavings of the two sides for a bridge.

Use them in your own tests::

    from hypothesis import given
    from voiceguard.testing.strategies import realtime_texts

    @given(realtime_texts())
    def test_my_parser_raises_only_its_documented_error(text):
        try:
            my_bot.parse(text)
        except MyParseError:
            pass

Needs hypothesis: ``pip install 'voiceguard[testing]'``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, final

from hypothesis import strategies as st

from voiceguard.sim.caller import CallerSimulator, HangUp, PressDigit, ScriptStep, Speak
from voiceguard.sim.realtime import EventFault, FunctionCall, RealtimeSimulator, Reply

__all__ = (
    "CallPlan",
    "call_plans",
    "json_values",
    "near_valid",
    "realtime_events",
    "realtime_texts",
    "twilio_messages",
    "twilio_texts",
)

_ID: Final = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=16)
_MS: Final = st.integers(min_value=0, max_value=3_600_000)
_AUDIO: Final = st.binary(min_size=0, max_size=320).map(lambda b: base64.b64encode(b).decode())
_ERROR_CODES: Final = (
    "response_cancel_not_active",
    "conversation_already_has_active_response",
    "input_audio_buffer_commit_empty",
    "integer_below_min_value",
    "unsupported_content_type",
    "invalid_value",
    None,
)
_FAULT_ACTIONS: Final[tuple[Literal["delay", "duplicate", "drop"], ...]] = (
    "delay",
    "duplicate",
    "drop",
)
#: Server events the fault strategies tamper with (GA names).
_TAMPERED_TYPES: Final = (
    "response.created",
    "response.done",
    "response.output_audio.delta",
    "response.output_item.added",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
)


def json_values(*, max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values: null, booleans, numbers, strings, lists and objects, nested.

    Args:
        max_leaves: At most this many scalars in one value.
    """
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _wrong_type(value: object) -> object:
    """A value of another JSON type than *value*."""
    if isinstance(value, str):
        return 7
    if isinstance(value, bool):
        return "true"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, dict)):
        return "x"
    return {}


@st.composite
def _mutated(draw: st.DrawFn, message: Mapping[str, Any], type_key: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(message))
    paths = [p for p in _paths(copy) if p != (type_key,)]
    how = draw(st.sampled_from(("delete", "retype", "replace", "extra", "type")))
    if how == "type" or not paths:
        copy[type_key] = draw(st.text(max_size=40) | json_values(max_leaves=3))
        return copy
    if how == "extra":
        copy[draw(st.text(max_size=12))] = draw(json_values(max_leaves=5))
        return copy
    path = draw(st.sampled_from(paths))
    parent: Any = copy
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "retype":
        parent[last] = _wrong_type(parent[last])
    else:
        parent[last] = draw(json_values(max_leaves=5))
    return copy


def near_valid(
    messages: st.SearchStrategy[dict[str, Any]], *, type_key: str = "type"
) -> st.SearchStrategy[dict[str, Any]]:
    """Messages one step away from valid ones: a field deleted, retyped or replaced, a field
    added, or the type changed.

    Args:
        messages: Valid messages to start from.
        type_key: The field naming the message's type (``"type"`` for the Realtime API,
            ``"event"`` for Twilio).
    """
    return messages.flatmap(lambda message: _mutated(message, type_key))


# ============================================================================================
# The Realtime API


def _session(session_id: str, fmt: str, create: bool, interrupt: bool) -> dict[str, Any]:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": fmt},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "create_response": create,
                    "interrupt_response": interrupt,
                },
            },
            "output": {"format": {"type": fmt}, "voice": "marin"},
        },
        "tools": [],
    }


def _item(item_id: str, kind: str, status: str) -> dict[str, Any]:
    if kind == "function_call":
        return {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": status,
            "name": "end_call",
            "call_id": "call_" + item_id,
            "arguments": "{}",
        }
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [],
    }


@st.composite
def _realtime_valid(draw: st.DrawFn) -> dict[str, Any]:
    event_id = "event_" + draw(_ID)
    response_id = "resp_" + draw(_ID)
    item_id = "item_" + draw(_ID)
    kind = draw(
        st.sampled_from(
            (
                "session.created",
                "session.updated",
                "input_audio_buffer.speech_started",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
                "response.created",
                "response.output_item.added",
                "response.output_item.done",
                "response.output_audio.delta",
                "response.output_audio.done",
                "response.output_audio_transcript.delta",
                "response.function_call_arguments.done",
                "response.done",
                "conversation.item.truncated",
                "error",
                "rate_limits.updated",
                "something.new",
            )
        )
    )
    common: dict[str, Any] = {"type": kind, "event_id": event_id}
    in_response = {"response_id": response_id, "item_id": item_id, "output_index": 0}
    if kind.startswith("session."):
        fmt = draw(st.sampled_from(("audio/pcmu", "audio/pcma", "audio/pcm")))
        session = _session("sess_" + draw(_ID), fmt, draw(st.booleans()), draw(st.booleans()))
        return {**common, "session": session}
    if kind == "input_audio_buffer.speech_started":
        return {**common, "audio_start_ms": draw(_MS), "item_id": item_id}
    if kind == "input_audio_buffer.speech_stopped":
        return {**common, "audio_end_ms": draw(_MS), "item_id": item_id}
    if kind == "input_audio_buffer.committed":
        return {**common, "item_id": item_id, "previous_item_id": None}
    if kind in ("response.created", "response.done"):
        status = (
            "in_progress"
            if kind == "response.created"
            else draw(st.sampled_from(("completed", "cancelled", "failed", "incomplete")))
        )
        details = None
        if status == "cancelled":
            reason = draw(st.sampled_from(("turn_detected", "client_cancelled")))
            details = {"type": "cancelled", "reason": reason}
        response = {
            "object": "realtime.response",
            "id": response_id,
            "status": status,
            "status_details": details,
            "output": [_item(item_id, "message", "completed")] if kind == "response.done" else [],
        }
        return {**common, "response": response}
    if kind in ("response.output_item.added", "response.output_item.done"):
        item_kind = draw(st.sampled_from(("message", "function_call")))
        status = "in_progress" if kind.endswith("added") else "completed"
        return {
            **common,
            "response_id": response_id,
            "output_index": 0,
            "item": _item(item_id, item_kind, status),
        }
    if kind == "response.output_audio.delta":
        return {**common, **in_response, "content_index": 0, "delta": draw(_AUDIO)}
    if kind == "response.output_audio.done":
        return {**common, **in_response, "content_index": 0}
    if kind == "response.output_audio_transcript.delta":
        return {**common, **in_response, "content_index": 0, "delta": draw(st.text(max_size=20))}
    if kind == "response.function_call_arguments.done":
        return {
            **common,
            **in_response,
            "call_id": "call_" + draw(_ID),
            "name": draw(st.sampled_from(("end_call", "lookup_order"))),
            "arguments": "{}",
        }
    if kind == "conversation.item.truncated":
        return {**common, "item_id": item_id, "content_index": 0, "audio_end_ms": draw(_MS)}
    if kind == "error":
        error: dict[str, Any] = {
            "type": "invalid_request_error",
            "message": draw(st.text(max_size=40)),
            "param": None,
        }
        code = draw(st.sampled_from(_ERROR_CODES))
        if code is not None:
            error["code"] = code
        return {**common, "error": error}
    if kind == "rate_limits.updated":
        limits = [{"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 1.5}]
        return {**common, "rate_limits": limits}
    return {**common, "anything": draw(json_values(max_leaves=4))}


def realtime_events(*, near_valid_share: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """OpenAI Realtime server events as decoded JSON objects (GA names, ``audio/pcmu`` audio).

    Args:
        near_valid_share: Also draw near-valid events (:func:`near_valid`); False draws only
            valid ones, which :func:`~voiceguard.protocol.parse_realtime_event` accepts (an
            unknown type included: it becomes an ``UnknownEvent``).
    """
    valid = _realtime_valid()
    if not near_valid_share:
        return valid
    return valid | near_valid(valid, type_key="type")


def _frames(messages: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[str]:
    encoded = messages.map(lambda m: json.dumps(m, separators=(",", ":")))
    truncated = st.tuples(encoded, st.integers(min_value=0, max_value=200)).map(
        lambda pair: pair[0][: pair[1]]
    )
    arbitrary_json = json_values().map(json.dumps)
    return encoded | encoded | truncated | arbitrary_json | st.text(max_size=200)


def realtime_texts() -> st.SearchStrategy[str]:
    """Text frames as the model's WebSocket could carry them: valid and near-valid events,
    truncated JSON, arbitrary JSON and arbitrary text."""
    return _frames(realtime_events())


# ============================================================================================
# Twilio Media Streams


@st.composite
def _twilio_valid(draw: st.DrawFn, stream_sid: str | None) -> dict[str, Any]:
    sid = stream_sid if stream_sid is not None else "MZ" + draw(_ID)
    sequence = str(draw(st.integers(min_value=1, max_value=10**6)))
    kind = draw(st.sampled_from(("connected", "start", "media", "mark", "dtmf", "stop", "other")))
    if kind == "connected":
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    if kind == "start":
        params = draw(st.dictionaries(_ID, st.text(max_size=20), max_size=3))
        return {
            "event": "start",
            "sequenceNumber": sequence,
            "start": {
                "accountSid": "AC" + draw(_ID),
                "streamSid": sid,
                "callSid": "CA" + draw(_ID),
                "tracks": ["inbound"],
                "customParameters": params,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": sid,
        }
    if kind == "media":
        payload = base64.b64encode(draw(st.binary(min_size=0, max_size=320))).decode()
        return {
            "event": "media",
            "sequenceNumber": sequence,
            "media": {
                "track": "inbound",
                "chunk": str(draw(st.integers(min_value=1, max_value=10**6))),
                "timestamp": str(draw(_MS)),
                "payload": payload,
            },
            "streamSid": sid,
        }
    if kind == "mark":
        name = draw(st.text(min_size=1, max_size=24))
        return {
            "event": "mark",
            "sequenceNumber": sequence,
            "streamSid": sid,
            "mark": {"name": name},
        }
    if kind == "dtmf":
        digit = draw(st.sampled_from(tuple("0123456789*#")))
        return {
            "event": "dtmf",
            "streamSid": sid,
            "sequenceNumber": sequence,
            "dtmf": {"track": "inbound_track", "digit": digit},
        }
    if kind == "stop":
        return {
            "event": "stop",
            "sequenceNumber": sequence,
            "streamSid": sid,
            "stop": {"accountSid": "AC" + draw(_ID), "callSid": "CA" + draw(_ID)},
        }
    return {"event": "x_" + draw(_ID), "streamSid": sid}  # a newer event, unknown here


def twilio_messages(
    *, stream_sid: str | None = None, near_valid_share: bool = True
) -> st.SearchStrategy[dict[str, Any]]:
    """Twilio Media Streams messages (to the bot) as decoded JSON objects.

    Args:
        stream_sid: The ``streamSid`` every message carries; None draws one per message.
        near_valid_share: Also draw near-valid messages (:func:`near_valid`); False draws only
            valid ones, which :func:`~voiceguard.protocol.parse_twilio_message` accepts (an
            unknown event included: it becomes an ``UnknownEvent``).
    """
    valid = _twilio_valid(stream_sid)
    if not near_valid_share:
        return valid
    return valid | near_valid(valid, type_key="event")


def twilio_texts(*, stream_sid: str | None = None) -> st.SearchStrategy[str]:
    """Text frames as Twilio's WebSocket could carry them: valid and near-valid messages,
    truncated JSON, arbitrary JSON and arbitrary text.

    Args:
        stream_sid: The ``streamSid`` of the valid messages; None draws one per message.
    """
    return _frames(twilio_messages(stream_sid=stream_sid))


# ============================================================================================
# Whole calls


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallPlan:
    """One simulated call, drawn by :func:`call_plans`.

    Attributes:
        replies: What the model says, response by response (some with faults: a lost or
            stalled response, a dropped socket, a tool call).
        faults: How the model's events are tampered with on the way (delayed, duplicated,
            dropped).
        script: What the caller does (speak, press keys, hang up).
        phone_noise: Stray text frames from the phone side, each with the second of the call
            at which it arrives.
        model_noise: Stray text frames from the model side, likewise.
        seed: Seed of the simulators (SIDs, audio, noise).
    """

    replies: tuple[Reply, ...]
    faults: tuple[EventFault, ...]
    script: tuple[ScriptStep, ...]
    phone_noise: tuple[tuple[float, str], ...]
    model_noise: tuple[tuple[float, str], ...]
    seed: int

    def simulator(self) -> RealtimeSimulator:
        """A fresh model simulator playing this plan's replies and faults."""
        return RealtimeSimulator(replies=self.replies, faults=self.faults, seed=self.seed)

    def caller(self) -> CallerSimulator:
        """A fresh caller simulator playing this plan's script (with an echo-free line)."""
        return CallerSimulator(script=self.script, seed=self.seed)


_SECONDS: Final = st.integers(min_value=0, max_value=160).map(lambda n: n / 20)


@st.composite
def _reply(draw: st.DrawFn) -> Reply:
    duration = draw(st.sampled_from((0.0, 0.4, 1.0, 2.5)))
    fault = draw(st.sampled_from(("none", "none", "none", "lost", "stall", "drop", "status")))
    tool = draw(st.sampled_from((None, None, None, "end_call", "lookup_order")))
    return Reply(
        text="" if duration == 0 and tool else "Okay.",
        duration=duration,
        function_call=FunctionCall(name=tool) if tool else None,
        lost=fault == "lost",
        stall=fault == "stall",
        drop_connection_after=duration / 2 if fault == "drop" and duration else None,
        status="incomplete" if fault == "status" else "completed",
    )


@st.composite
def _fault(draw: st.DrawFn) -> EventFault:
    action = draw(st.sampled_from(_FAULT_ACTIONS))
    occurrences = draw(st.none() | st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple))
    return EventFault(
        event_type=draw(st.sampled_from(_TAMPERED_TYPES)),
        action=action,
        seconds=draw(_SECONDS) if action == "delay" else 0.0,
        occurrences=occurrences,
    )


@st.composite
def _step(draw: st.DrawFn) -> ScriptStep:
    at = draw(_SECONDS)
    kind = draw(st.sampled_from(("speak", "speak", "speak_over", "digit")))
    if kind == "speak":
        return Speak(at=at, duration=draw(st.sampled_from((0.3, 0.8, 1.5))))
    if kind == "speak_over":
        return Speak(after_heard=draw(_SECONDS), duration=1.0, level_dbfs=-15.0)
    return PressDigit(at=at, digit=draw(st.sampled_from(tuple("0123456789*#"))))


def call_plans(*, max_duration: float = 8.0) -> st.SearchStrategy[CallPlan]:
    """Whole calls: model replies and faults, a caller's script and stray messages of both
    peers at random moments.

    Args:
        max_duration: The caller hangs up at the latest this many seconds into the call.

    Raises:
        ValueError: If *max_duration* is below 0.05 s (one step of the drawn times) or above an
            hour.
    """
    if not 0.05 <= max_duration <= 3600:
        raise ValueError(f"max_duration = {max_duration!r}; allowed: 0.05 to 3600 seconds")
    noise_time = st.integers(min_value=0, max_value=int(max_duration * 20)).map(lambda n: n / 20)

    @st.composite
    def plan(draw: st.DrawFn) -> CallPlan:
        steps = draw(st.lists(_step(), max_size=4))
        hang_up = draw(
            st.integers(min_value=1, max_value=int(max_duration * 20)).map(lambda n: n / 20)
        )
        phone_noise = draw(st.lists(st.tuples(noise_time, twilio_texts()), max_size=4))
        model_noise = draw(st.lists(st.tuples(noise_time, realtime_texts()), max_size=4))
        return CallPlan(
            replies=tuple(draw(st.lists(_reply(), max_size=4))),
            faults=tuple(draw(st.lists(_fault(), max_size=3))),
            script=(*steps, HangUp(at=hang_up)),
            phone_noise=tuple(sorted(phone_noise, key=lambda pair: pair[0])),
            model_noise=tuple(sorted(model_noise, key=lambda pair: pair[0])),
            seed=draw(st.integers(min_value=0, max_value=2**16)),
        )

    return plan()
