"""Test a Twilio <-> OpenAI Realtime bot against voiceguard's simulators, over real sockets.

Run it: ``.venv/bin/python examples/sim_test_your_bot.py`` (needs
``pip install 'voiceguard[sim]' openai``).
No OpenAI key, no Twilio account, no phone: a ``RealtimeSimulator`` stands in for OpenAI and a
``CallerSimulator`` for Twilio and the caller. It takes about three seconds of real time.

``my_bot`` is the code under test, written the way bots usually are: it serves ``/media-stream``
and talks to the model with the ``openai`` SDK. The only change needed to test it is the model's
URL (``websocket_base_url``).
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
from openai import AsyncOpenAI

from voiceguard.protocol import (
    MarkPlayed,
    MediaReceived,
    StreamStarted,
    StreamStopped,
    clear_message,
    dumps,
    mark_message,
    media_message,
    parse_twilio_message,
)
from voiceguard.sim import CallerSimulator, HangUp, RealtimeSimulator, Reply, Speak
from voiceguard.transports.websocket import WebSocketTransport, serve_websocket


async def my_bot(twilio: WebSocketTransport, model_base_url: str) -> None:
    """One call: Twilio media in, model audio out, barge-in with clear + cancel."""
    stream_sid = ""
    async for text in twilio:
        event = parse_twilio_message(text)
        if isinstance(event, StreamStarted):
            stream_sid = event.stream_sid
            break
    client = AsyncOpenAI(api_key="test", websocket_base_url=model_base_url)
    async with client.realtime.connect(model="gpt-realtime") as model:
        await model.session.update(
            session={
                "type": "realtime",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "turn_detection": {
                            "type": "server_vad",
                            "silence_duration_ms": 300,
                            "interrupt_response": False,
                            "create_response": False,
                        },
                    },
                    "output": {"format": {"type": "audio/pcmu"}},
                },
            }
        )
        await model.response.create()  # the greeting
        state: dict[str, Any] = {"active": None, "marks": 0}

        async with anyio.create_task_group() as tg:

            async def from_twilio() -> None:
                async for text in twilio:
                    event = parse_twilio_message(text)
                    if isinstance(event, MediaReceived):
                        await model.input_audio_buffer.append(audio=event.payload)
                    elif isinstance(event, MarkPlayed):
                        state["marks"] = max(0, state["marks"] - 1)
                    elif isinstance(event, StreamStopped):
                        break
                tg.cancel_scope.cancel()

            async def from_model() -> None:
                async for event in model:
                    if event.type == "response.created":
                        state["active"] = event.response.id
                    elif event.type == "response.done":
                        state["active"] = None
                    elif event.type == "response.output_audio.delta":
                        await twilio.send(dumps(media_message(stream_sid, event.delta)))
                        await twilio.send(dumps(mark_message(stream_sid, "chunk")))
                        state["marks"] += 1
                    elif event.type == "input_audio_buffer.speech_started":
                        if state["marks"]:
                            await twilio.send(dumps(clear_message(stream_sid)))
                        if state["active"]:
                            await model.response.cancel()
                    elif event.type == "input_audio_buffer.committed" and not state["active"]:
                        await model.response.create()
                tg.cancel_scope.cancel()

            tg.start_soon(from_twilio)
            tg.start_soon(from_model)


async def main() -> int:
    model = RealtimeSimulator(
        replies=[
            Reply(text="Hi! How can I help?", duration=1.0),
            Reply(text="We are open nine to five.", duration=0.6),
        ]
    )
    caller = CallerSimulator(
        script=[
            Speak(after_heard=1.0, duration=0.6, text="When are you open?"),
            HangUp(after_heard=1.6),  # once the greeting and the answer were heard
        ]
    )
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg, model.running() as address:

            async def handle(twilio: WebSocketTransport) -> None:
                await my_bot(twilio, address.base_url)

            port = await tg.start(
                lambda task_status: serve_websocket(handle, task_status=task_status)
            )
            record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
            tg.cancel_scope.cancel()

    stats = model.statistics()
    print(f"caller heard {record.heard_seconds:.1f} s of the bot in {len(record.heard)} frames")
    print(f"caller spoke at {[round(start, 2) for start, _ in record.spoke]} s")
    print(f"model: {stats.responses_created} responses, errors: {dict(stats.errors_by_code)}")
    ok = stats.errors_total == 0 and record.heard_seconds >= 1.4
    print("OK" if ok else "PROBLEMS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
