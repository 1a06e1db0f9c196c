"""A Twilio <-> OpenAI Realtime bridge written like the popular Twilio sample.

``twilio_sample_before.py`` is the bridge as such samples are written; ``twilio_sample_guarded.py``
is the same bridge with voiceguard, the example of the tutorial *Add voiceguard to your bot*.
Compare them with ``diff examples/twilio_sample_before.py examples/twilio_sample_guarded.py``.

Check either against voiceguard's simulators (every scenario, in virtual time, no key, no phone):

    .venv/bin/python examples/twilio_sample_before.py --check
    .venv/bin/python examples/twilio_sample_guarded.py --check

Serve one (Twilio calls ``POST /incoming-call``; the media stream comes to ``/media-stream``):

    OPENAI_API_KEY=sk-... .venv/bin/python examples/twilio_sample_guarded.py --port 5050

Needs ``pip install 'voiceguard[server]'`` (Starlette, uvicorn, websockets); ``--check`` runs in
virtual time when ``trio`` is installed, in real time otherwise.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

OPENAI_URL = os.environ.get(
    "OPENAI_REALTIME_URL", "wss://api.openai.com/v1/realtime?model=gpt-realtime"
)
SYSTEM_MESSAGE = "You are a helpful, friendly phone assistant. Keep your answers short."
VOICE = "alloy"


async def initialize_session(openai_ws: Any) -> None:
    """Configure the session (server VAD with its defaults) and greet the caller."""
    session_update = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "instructions": SYSTEM_MESSAGE,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad"},
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": VOICE},
            },
        },
    }
    await openai_ws.send(json.dumps(session_update))
    await openai_ws.send(json.dumps({"type": "response.create"}))  # the greeting


async def handle_call(
    websocket: Any, connect_openai: Callable[[], AbstractAsyncContextManager[Any]]
) -> None:
    """Bridge one call: Twilio media to the model, the model's audio back, barge-in by clear."""
    async with connect_openai() as openai_ws:
        await initialize_session(openai_ws)
        stream_sid = None
        latest_media_timestamp = 0
        last_assistant_item = None
        mark_queue: list[str] = []
        response_start_timestamp_twilio = None

        async def receive_from_twilio() -> None:
            nonlocal stream_sid, latest_media_timestamp, last_assistant_item
            try:
                async for message in websocket.iter_text():
                    data = json.loads(message)
                    if data["event"] == "media":
                        latest_media_timestamp = int(data["media"]["timestamp"])
                        audio_append = {
                            "type": "input_audio_buffer.append",
                            "audio": data["media"]["payload"],
                        }
                        await openai_ws.send(json.dumps(audio_append))
                    elif data["event"] == "start":
                        stream_sid = data["start"]["streamSid"]
                        latest_media_timestamp = 0
                        last_assistant_item = None
                    elif data["event"] == "mark":
                        if mark_queue:
                            mark_queue.pop(0)
                    elif data["event"] == "stop":
                        break
            except Exception as e:  # the model went away, ...
                print(f"Error in receive_from_twilio: {e}", file=sys.stderr)

        async def send_to_twilio() -> None:
            nonlocal last_assistant_item, response_start_timestamp_twilio
            try:
                async for openai_message in openai_ws:
                    response = json.loads(openai_message)
                    if response["type"] == "response.output_audio.delta" and "delta" in response:
                        audio_payload = base64.b64encode(
                            base64.b64decode(response["delta"])
                        ).decode()
                        await websocket.send_json(
                            {
                                "event": "media",
                                "streamSid": stream_sid,
                                "media": {"payload": audio_payload},
                            }
                        )
                        if response_start_timestamp_twilio is None:
                            response_start_timestamp_twilio = latest_media_timestamp
                        if response.get("item_id"):
                            last_assistant_item = response["item_id"]
                        await send_mark()
                    if (
                        response["type"] == "input_audio_buffer.speech_started"
                        and last_assistant_item
                    ):
                        await handle_speech_started_event()
            except Exception as e:  # the caller hung up mid-send, the model went away, ...
                print(f"Error in send_to_twilio: {e}", file=sys.stderr)

        async def handle_speech_started_event() -> None:
            """The caller talks over the bot: truncate what was not heard, clear the phone."""
            nonlocal last_assistant_item, response_start_timestamp_twilio
            if mark_queue and response_start_timestamp_twilio is not None:
                elapsed_time = latest_media_timestamp - response_start_timestamp_twilio
                if last_assistant_item:
                    truncate_event = {
                        "type": "conversation.item.truncate",
                        "item_id": last_assistant_item,
                        "content_index": 0,
                        "audio_end_ms": elapsed_time,
                    }
                    await openai_ws.send(json.dumps(truncate_event))
                await websocket.send_json({"event": "clear", "streamSid": stream_sid})
                mark_queue.clear()
                last_assistant_item = None
                response_start_timestamp_twilio = None

        async def send_mark() -> None:
            if stream_sid:
                await websocket.send_json(
                    {"event": "mark", "streamSid": stream_sid, "mark": {"name": "responsePart"}}
                )
                mark_queue.append("responsePart")

        async with anyio.create_task_group() as tg:

            async def twilio_then_hang_up() -> None:
                await receive_from_twilio()
                tg.cancel_scope.cancel()  # the caller hung up: the call is over

            tg.start_soon(twilio_then_hang_up)
            tg.start_soon(send_to_twilio)


# --------------------------------------------------------------------------------------------
# The server, and checking the bridge against the simulators


async def incoming_call(request: Request) -> Response:
    """TwiML that connects the call's audio to ``/media-stream``."""
    host = request.headers.get("host", request.url.netloc)
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        f'<Stream url="wss://{host}/media-stream"/></Connect></Response>'
    )
    return Response(twiml, media_type="application/xml")


async def media_stream(websocket: WebSocket) -> None:
    """One call's media stream."""
    import websockets  # noqa: PLC0415 - the server extra

    def connect_openai() -> AbstractAsyncContextManager[Any]:
        headers = {"Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', '')}"}
        return websockets.connect(OPENAI_URL, additional_headers=headers)

    await websocket.accept()
    await handle_call(websocket, connect_openai)


app = Starlette(
    routes=[
        Route("/incoming-call", incoming_call, methods=["GET", "POST"]),
        WebSocketRoute("/media-stream", media_stream),
    ]
)


async def bridge(twilio: Any, connect_model: Any) -> None:
    """The bridge as a scenario bridge: the simulator's sockets in Starlette/websockets shape."""
    from voiceguard.sim.adapters import StarletteSocket, websockets_style  # noqa: PLC0415

    try:
        await handle_call(StarletteSocket(twilio), websockets_style(connect_model))
    finally:
        await twilio.aclose()  # as Starlette closes the socket when the endpoint returns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="play every simulator scenario")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050)
    args = parser.parse_args(argv)
    if not args.check:
        import uvicorn  # noqa: PLC0415 - the server extra

        uvicorn.run(app, host=args.host, port=args.port)
        return 0
    from voiceguard.sim.measures import check_bridge, render_checks  # noqa: PLC0415

    async def check() -> str:
        return render_checks(await check_bridge(bridge))

    try:
        from trio.testing import MockClock  # noqa: PLC0415 - virtual time when trio is there
    except ImportError:
        print(anyio.run(check))
    else:
        clock = MockClock(autojump_threshold=0)
        print(anyio.run(check, backend="trio", backend_options={"clock": clock}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
