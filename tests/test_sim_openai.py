"""Fidelity against a client we did not write: the real ``openai`` SDK talks to the simulator.

Over a real WebSocket on 127.0.0.1 (asyncio only: the SDK's realtime client is asyncio-based).
Every event the SDK receives must also parse with voiceguard's own protocol edge.
"""

from __future__ import annotations

import base64
from typing import Any

import anyio
import pytest

from voiceguard.protocol import UnknownEvent, parse_realtime_event
from voiceguard.sim import RealtimeSimulator, Reply, silence, speech_like

openai = pytest.importorskip("openai")

pytestmark = [pytest.mark.anyio, pytest.mark.realtime]


@pytest.fixture
def anyio_backend() -> str:
    """The SDK's realtime connection runs on asyncio."""
    return "asyncio"


PCMU_SESSION: dict[str, Any] = {
    "type": "realtime",
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "turn_detection": {
                "type": "server_vad",
                "interrupt_response": False,
                "create_response": False,
            },
        },
        "output": {"format": {"type": "audio/pcmu"}},
    },
}


async def recv(conn: Any, seen: list[Any]) -> Any:
    event = await conn.recv()
    parsed = parse_realtime_event(event)  # the SDK model, parsed by our edge
    assert not isinstance(parsed, UnknownEvent) or parsed.type == "conversation.item.retrieved"
    seen.append(event)
    return event


async def until(conn: Any, seen: list[Any], event_type: str) -> Any:
    for _ in range(500):
        event = await recv(conn, seen)
        if event.type == event_type:
            return event
    raise AssertionError(f"no {event_type}")


async def test_the_openai_sdk_drives_a_whole_session() -> None:
    from openai.types.realtime import (  # noqa: PLC0415 - after importorskip
        RealtimeErrorEvent,
        ResponseAudioDeltaEvent,
        ResponseDoneEvent,
        SessionCreatedEvent,
    )

    sim = RealtimeSimulator(
        replies=[Reply(text="Hello there!", duration=1.0), Reply(duration=20.0)],
        audio_speed=20.0,
        first_audio_delay=0.01,
    )
    seen: list[Any] = []
    with anyio.fail_after(10):
        async with sim.running() as address:
            client = openai.AsyncOpenAI(api_key="sk-test", websocket_base_url=address.base_url)
            async with client.realtime.connect(model="gpt-realtime") as conn:
                assert isinstance(await recv(conn, seen), SessionCreatedEvent)
                await conn.session.update(session=PCMU_SESSION)
                updated = await until(conn, seen, "session.updated")
                assert updated.session.audio.input.turn_detection.interrupt_response is False

                await conn.response.create()
                await conn.response.create(event_id="evt_second")
                refused = await until(conn, seen, "error")
                assert isinstance(refused, RealtimeErrorEvent)
                assert refused.error.code == "conversation_already_has_active_response"
                assert refused.error.event_id == "evt_second"
                done = await until(conn, seen, "response.done")
                assert isinstance(done, ResponseDoneEvent)
                assert done.response.status == "completed"
                deltas = [e for e in seen if isinstance(e, ResponseAudioDeltaEvent)]
                assert sum(len(base64.b64decode(e.delta)) for e in deltas) == 8000
                item_id = deltas[0].item_id

                await conn.response.cancel()
                not_active = await until(conn, seen, "error")
                assert not_active.error.code == "response_cancel_not_active"
                assert not_active.error.type == "invalid_request_error"

                await conn.conversation.item.truncate(
                    item_id=item_id, content_index=0, audio_end_ms=400
                )
                truncated = await until(conn, seen, "conversation.item.truncated")
                assert truncated.audio_end_ms == 400
                await conn.conversation.item.truncate(
                    item_id=item_id, content_index=0, audio_end_ms=900
                )
                too_long = await until(conn, seen, "error")
                assert "already shorter than" in too_long.error.message

                audio = silence(0.5) + speech_like(1.0) + silence(1.0)
                await conn.input_audio_buffer.append(audio=base64.b64encode(audio).decode())
                started = await until(conn, seen, "input_audio_buffer.speech_started")
                assert started.audio_start_ms == 200
                committed = await until(conn, seen, "input_audio_buffer.committed")
                assert committed.item_id == started.item_id

                await conn.response.create()
                created = await until(conn, seen, "response.created")
                await until(conn, seen, "response.output_audio.delta")
                await conn.response.cancel(response_id=created.response.id)
                cancelled = await until(conn, seen, "response.done")
                assert cancelled.response.status == "cancelled"
                assert cancelled.response.status_details.reason == "client_cancelled"
    assert sim.statistics().connections_open == 0
    assert sim.statistics().errors_by_code == {
        "conversation_already_has_active_response": 1,
        "response_cancel_not_active": 1,
        "null": 1,
    }
    request_path = sim.connections[0].path
    assert request_path == "/v1/realtime?model=gpt-realtime"


async def test_the_beta_client_gets_beta_event_names() -> None:
    sim = RealtimeSimulator(replies=[Reply(duration=0.2)], audio_speed=20.0)
    seen: list[Any] = []
    with anyio.fail_after(10):
        async with sim.running() as address:
            client = openai.AsyncOpenAI(api_key="sk-test", websocket_base_url=address.base_url)
            async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
                created = await recv(conn, seen)
                assert created.session.input_audio_format == "pcm16"
                await conn.response.create()
                await until(conn, seen, "response.done")
    types = {e.type for e in seen}
    assert "response.audio.delta" in types
    assert "response.output_audio.delta" not in types
    assert sim.connections[0].beta
