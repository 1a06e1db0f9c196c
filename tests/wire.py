"""Realtime server events in their real wire shapes (as the server sends them), parsed by the
protocol edge, for the core tests."""

from __future__ import annotations

import base64
import itertools
from typing import Any

from voiceguard.protocol.realtime import RealtimeServerEvent, parse_realtime_event

_ids = itertools.count(1)


def _event_id() -> str:
    return f"event_{next(_ids)}"


def parse(raw: dict[str, Any]) -> RealtimeServerEvent:
    return parse_realtime_event({"event_id": _event_id(), **raw})


def session_updated(
    *, interrupt_response: bool = False, create_response: bool = False, transcribes: bool = False
) -> Any:
    return parse(
        {
            "type": "session.updated",
            "session": {
                "type": "realtime",
                "object": "realtime.session",
                "id": "sess_1",
                "model": "gpt-realtime",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "transcription": {"model": "gpt-4o-transcribe"} if transcribes else None,
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.5,
                            "prefix_padding_ms": 300,
                            "silence_duration_ms": 500,
                            "interrupt_response": interrupt_response,
                            "create_response": create_response,
                        },
                    },
                    "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
                },
            },
        }
    )


def response_created(response_id: str) -> Any:
    return parse(
        {
            "type": "response.created",
            "response": {
                "object": "realtime.response",
                "id": response_id,
                "status": "in_progress",
                "status_details": None,
                "output": [],
            },
        }
    )


def response_done(
    response_id: str,
    status: str = "completed",
    reason: str | None = None,
    *,
    output: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> Any:
    """A ``response.done``; *output* lists function calls as ``(name, status)``."""
    details = None if reason is None else {"type": status, "reason": reason}
    items = [
        {
            "id": f"item_fc_{index}",
            "object": "realtime.item",
            "type": "function_call",
            "status": item_status,
            "name": name,
            "call_id": f"call_{index}",
            "arguments": "{}",
        }
        for index, (name, item_status) in enumerate(output)
    ]
    return parse(
        {
            "type": "response.done",
            "response": {
                "object": "realtime.response",
                "id": response_id,
                "status": status,
                "status_details": details,
                "output": items,
            },
        }
    )


def output_item_added(response_id: str, item_id: str) -> Any:
    return parse(
        {
            "type": "response.output_item.added",
            "response_id": response_id,
            "output_index": 0,
            "item": {
                "id": item_id,
                "object": "realtime.item",
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
        }
    )


def audio_delta(response_id: str, item_id: str, ms: int) -> Any:
    payload = base64.b64encode(b"\xff" * (8 * ms)).decode("ascii")
    return parse(
        {
            "type": "response.output_audio.delta",
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": payload,
        }
    )


def error(code: str, message: str = "", client_event_id: str | None = None) -> Any:
    return parse(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": code,
                "message": message or code,
                "param": None,
                "event_id": client_event_id,
            },
        }
    )


def audio_done(response_id: str, item_id: str) -> Any:
    return parse(
        {
            "type": "response.output_audio.done",
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
        }
    )


def parse_audio(response_id: str, item_id: str, payload: str) -> Any:
    return parse(
        {
            "type": "response.output_audio.delta",
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": payload,
        }
    )
