"""A bot on the ``openai`` SDK's realtime client, guarded by voiceguard's middleware.

The bot talks to the model through ``AsyncOpenAI().realtime.connect(...)``: typed helpers
(``conn.session.update``, ``conn.response.create``, ``conn.response.cancel``,
``conn.conversation.item.truncate``), push-style handlers (``@conn.on(...)`` with
``conn.dispatch_events()``) and ``async for`` all work on the guarded connection unchanged.
``call.model(conn)`` and ``call.phone(twilio)`` are the two lines voiceguard adds (the phone
socket watched, the guards know from Twilio's marks what the caller heard, to the chunk, so a
truncate is never past it; without it they estimate from the clock, which runs ahead when the bot
forwards late); ``@call.barge_in`` is an optional third.

Run it against voiceguard's simulators (the model simulator on 127.0.0.1, a simulated caller; no
key, no phone, about 15 seconds of real time), and the same bot without voiceguard::

    .venv/bin/python examples/openai_sdk_guarded.py
    .venv/bin/python examples/openai_sdk_guarded.py --without-voiceguard

Needs ``pip install 'voiceguard[openai,sim]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from typing import Any

import anyio
from openai import AsyncOpenAI

from voiceguard.middleware import GuardedCall
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
from voiceguard.sim import (
    SCENARIOS,
    Transport,
    TransportClosed,
    render_checks,
    run_scenario_over_websocket,
)
from voiceguard.sim.measures import BridgeCheck

#: The scenarios this example plays: the bot's echo, a cancel racing the end of a response, and a
#: barge-in over a long buffered answer.
PLAYED = ("echo-in-first-seconds", "cancel-races-done", "truncate-long-buffered-audio")


async def bot(
    twilio: Transport, model_base_url: str, *, guarded: bool = True, api_key: str = "test"
) -> None:
    """One call: the caller's audio to the model, the model's audio to the caller."""
    call = GuardedCall()
    if guarded:
        twilio = call.phone(twilio)  # what voiceguard adds: the phone socket, watched
    stream_sid = ""
    while not stream_sid:
        event = parse_twilio_message(await twilio.receive())
        if isinstance(event, StreamStarted):
            stream_sid = event.stream_sid
    client = AsyncOpenAI(api_key=api_key, websocket_base_url=model_base_url)
    connect: Any = client.realtime.connect(model="gpt-realtime")
    if guarded:
        connect = call.model(connect)  # what voiceguard adds
    async with connect as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": "You are a friendly receptionist. Keep it short.",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "turn_detection": {"type": "server_vad"},
                    },
                    "output": {"format": {"type": "audio/pcmu"}},
                },
            }
        )
        await conn.response.create()  # the greeting
        playing: dict[str, Any] = {"item": None, "sent_ms": 0, "marks": 0}

        async def on_audio(event: Any) -> None:
            if event.item_id != playing["item"]:
                playing.update(item=event.item_id, sent_ms=0)
            playing["sent_ms"] += len(event.delta) * 3 // 4 // 8  # base64 -> bytes -> ms
            await twilio.send(dumps(media_message(stream_sid, event.delta)))
            await twilio.send(dumps(mark_message(stream_sid, "chunk")))
            playing["marks"] += 1

        async def on_speech_started(event: Any) -> None:
            if playing["marks"]:
                await twilio.send(dumps(clear_message(stream_sid)))
                playing["marks"] = 0
            await conn.response.cancel()  # voiceguard drops it when it cannot be valid
            if playing["item"] is not None:
                # A rough guess; the guard lowers it to what the caller really heard.
                await conn.conversation.item.truncate(
                    item_id=playing["item"], content_index=0, audio_end_ms=playing["sent_ms"]
                )
                playing["item"] = None

        def on_error(event: Any) -> None:
            print(f"model error: {event.error.code}: {event.error.message}", file=sys.stderr)

        conn.on("response.output_audio.delta", on_audio)
        # call.barge_in: the handler runs for the caller's real speech only, never for echo.
        barge_in = call.barge_in(on_speech_started) if guarded else on_speech_started
        conn.on("input_audio_buffer.speech_started", barge_in)
        conn.on("error", on_error)

        async with anyio.create_task_group() as tg:

            async def from_twilio() -> None:
                with contextlib.suppress(TransportClosed):  # the caller hung up
                    while True:
                        event = parse_twilio_message(await twilio.receive())
                        if isinstance(event, MediaReceived):
                            await conn.input_audio_buffer.append(audio=event.payload)
                        elif isinstance(event, MarkPlayed):
                            playing["marks"] = max(0, playing["marks"] - 1)
                        elif isinstance(event, StreamStopped):
                            break
                tg.cancel_scope.cancel()

            async def from_model() -> None:
                with contextlib.suppress(TransportClosed):  # the caller hung up
                    await conn.dispatch_events()
                tg.cancel_scope.cancel()

            tg.start_soon(from_twilio)
            tg.start_soon(from_model)
    await twilio.aclose()


async def check(names: tuple[str, ...] = PLAYED, *, guarded: bool = True) -> list[BridgeCheck]:
    """Play the scenarios named, all at once, and measure what the bot did."""
    checks: dict[str, BridgeCheck] = {}

    async def one_call(twilio: Transport, model_base_url: str) -> None:
        await bot(twilio, model_base_url, guarded=guarded)

    async def play(name: str) -> None:
        run = await run_scenario_over_websocket(SCENARIOS[name], one_call)
        checks[name] = BridgeCheck.of(run)

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(play, name)
    return [checks[name] for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--without-voiceguard", action="store_true", help="run the same bot unguarded"
    )
    args = parser.parse_args(argv)
    guarded = not args.without_voiceguard
    checks = anyio.run(functools.partial(check, guarded=guarded))
    print(render_checks(checks))
    return 0 if all(c.problems == 0 for c in checks) or not guarded else 1


if __name__ == "__main__":
    sys.exit(main())
