"""A minimal hand-written Twilio <-> OpenAI Realtime bridge: the yardstick of the server benchmarks.

Usage::

    OPENAI_API_KEY=... python benchmarks/handwritten_bridge.py [--host 127.0.0.1] [--port 5050]
        [--realtime-url wss://api.openai.com/v1/realtime?model=gpt-realtime]
        [--loop auto|uvloop|asyncio]

What a competent engineer writes by hand for a correct bridge, and nothing more: plain
``websockets`` (its asyncio server and client, no compression), ``asyncio`` and ``json``, no
voiceguard import. ``--loop auto`` runs on uvloop when it is installed, as ``voiceguard serve``
does. Each Twilio media stream on ``/media-stream`` (other paths: 404) gets one Realtime
connection, opened at ``start``, and

* the reference server's ``session.update`` (GA shape: ``audio/pcmu`` both ways, ``server_vad``
  with 300 ms padding and 500 ms silence) with ``create_response`` on, since nothing here decides
  turns, and ``interrupt_response`` off, since the barge-in below cancels; then the reference
  server's greeting ``response.create``;
* every caller frame forwarded as an ``input_audio_buffer.append``, its base64 untouched (frames
  that come before the model connection is open are held, then sent);
* the model's audio paced to the phone as the reference playout paces it: each delta a ``media``
  message followed by a ``mark`` (not re-cut: the simulator's deltas are 100 ms, the reference's
  chunk), the phone never more than 0.3 s ahead of real time (the default
  ``PlayoutConfig.lead``); an echoed mark is the caller's heard position in its item;
* a barge-in (``input_audio_buffer.speech_started``): Twilio ``clear`` if bot audio is queued or
  unheard, ``response.cancel`` if a response is active (``response.created`` seen, its
  ``response.done`` not yet), ``conversation.item.truncate`` at the heard position for each item
  not all heard; the cancelled response's late deltas are dropped.

What it deliberately lacks, since voiceguard is what adds it: no echo gate (the bot's own echo on
the line, or a cough, stops the bot like a real interruption), no create guard, no cancel arbiter
beyond "a response is active", no resume after a false interruption, no call-scoped timers (idle
prompts, time limits, hang-up), no ``end_call`` tool, no Twilio signature check, no metrics.

The benchmarks run it as a child process in place of ``voiceguard serve`` (given ``--host``,
``--port 0`` and ``--realtime-url``), read the line ``listening on http://HOST:PORT`` from its
standard output, drive calls through it and stop it with SIGTERM (it exits with code 0). Not for
production.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import sys
from collections import deque
from http import HTTPStatus
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

#: How far ahead of real time the phone's buffer may be filled (voiceguard's default lead).
LEAD = 0.3
MAX_MESSAGE = 2**20
MULAW_BYTES_PER_MS = 8
SESSION_UPDATE = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "turn_detection": {
                    "type": "server_vad",
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "interrupt_response": False,
                    "create_response": True,
                },
            },
            "output": {"format": {"type": "audio/pcmu"}},
        },
    },
}
GREETING = {
    "type": "response.create",
    "response": {"instructions": "Greet the caller briefly and ask how you can help."},
}


def dumps(message: dict[str, Any]) -> str:
    """Compact JSON, as the reference server sends it."""
    return json.dumps(message, separators=(",", ":"))


def append(payload: str) -> str:
    return dumps({"type": "input_audio_buffer.append", "audio": payload})


def log(text: str) -> None:
    print(f"handwritten_bridge: {text}", file=sys.stderr, flush=True)


def audio_bytes(b64: str) -> int:
    """The length of the audio in a base64 string, without decoding it."""
    return len(b64) * 3 // 4 - b64[-2:].count("=")


class Call:
    """One Twilio media stream and its model connection."""

    def __init__(self, phone: ServerConnection, url: str, api_key: str) -> None:
        self.phone = phone
        self.url = url
        self.api_key = api_key
        self.sid = ""
        self.model: ClientConnection | None = None
        self.held: list[str] = []  # caller audio that came before the model connection opened
        # Bot audio not yet sent to the phone: (item, base64 payload, seconds, end in the item).
        self.queue: deque[tuple[str, str, float, int]] = deque()
        self.wake = asyncio.Event()
        self.phone_end = 0.0  # loop time when the phone will have played all audio sent
        self.unheard: deque[tuple[str, str, int]] = deque()  # marks sent: (name, item, end_ms)
        self.received: dict[str, int] = {}  # bytes of audio received per assistant item
        self.heard: dict[str, int] = {}  # ms heard per assistant item (from the marks)
        self.active: str | None = None  # the response between response.created and .done
        self.cancelled: str | None = None  # the response cancelled at the last barge-in

    async def run(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        try:
            async for text in self.phone:
                try:
                    event = json.loads(text)
                    kind = event["event"]
                    if kind == "media":
                        payload = event["media"]["payload"]
                        if self.model is None:
                            self.held.append(payload)
                        else:
                            await self.model.send(append(payload))
                    elif kind == "mark":
                        self.on_mark(event["mark"]["name"])
                    elif kind == "start" and not tasks:
                        self.sid = event["streamSid"]
                        tasks.append(asyncio.create_task(self.model_side()))
                        tasks.append(asyncio.create_task(self.pace()))
                    elif kind == "stop":
                        break
                except (ValueError, KeyError, TypeError):
                    continue  # not JSON, or not a Twilio message: ignore it
        except ConnectionClosed:
            pass
        finally:
            if self.model is not None:
                await self.model.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ model -> phone

    async def model_side(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        try:
            async with connect(
                self.url,
                additional_headers=headers,
                compression=None,
                max_size=MAX_MESSAGE,
                open_timeout=10,
                close_timeout=2,
            ) as model:
                await model.send(dumps(SESSION_UPDATE))
                await model.send(dumps(GREETING))
                while self.held:
                    held, self.held = self.held, []
                    for payload in held:
                        await model.send(append(payload))
                self.model = model
                async for text in model:
                    try:
                        await self.on_model(json.loads(text))
                    except (ValueError, KeyError, TypeError):
                        continue  # not JSON, or not an event as documented: ignore it
        except ConnectionClosed:
            pass
        except Exception as exc:
            log(f"call {self.sid}: model connection failed: {type(exc).__name__}: {exc}")
        finally:
            await self.phone.close()  # the model is gone: so is the call

    async def on_model(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "response.output_audio.delta":
            item, delta = event["item_id"], event["delta"]
            if event["response_id"] == self.cancelled or not delta:
                return  # the late audio of a response cancelled at a barge-in
            size = audio_bytes(delta)
            end = self.received.get(item, 0) + size
            self.received[item] = end
            self.queue.append((item, delta, size / 8000, end // MULAW_BYTES_PER_MS))
            self.wake.set()
        elif kind == "input_audio_buffer.speech_started":
            await self.barge_in()
        elif kind == "response.created":
            self.active = event["response"]["id"]
        elif kind == "response.done":
            if event["response"]["id"] == self.active:
                self.active = None
        elif kind == "error":
            error = event["error"]
            log(f"call {self.sid}: model error {error.get('code')}: {error.get('message')}")

    async def pace(self) -> None:
        """Send the queued audio, each chunk with its mark, at most LEAD ahead of real time."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self.queue:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                now = loop.time()
                self.phone_end = max(self.phone_end, now)  # after a pause it plays from now
                item, payload, seconds, end_ms = self.queue[0]
                wait = self.phone_end + seconds - LEAD - now
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue  # a barge-in may have emptied the queue meanwhile
                self.queue.popleft()
                self.phone_end += seconds
                mark = f"{item}:{end_ms}"
                self.unheard.append((mark, item, end_ms))
                await self.phone.send(
                    dumps({"event": "media", "streamSid": self.sid, "media": {"payload": payload}})
                )
                await self.phone.send(
                    dumps({"event": "mark", "streamSid": self.sid, "mark": {"name": mark}})
                )
        except ConnectionClosed:
            pass

    def on_mark(self, name: str) -> None:
        """Twilio played the audio up to mark *name* (and so everything before it)."""
        if not any(sent == name for sent, _, _ in self.unheard):
            return  # echoed because of a clear, or not ours: not heard
        while self.unheard:
            sent, item, end_ms = self.unheard.popleft()
            self.heard[item] = end_ms
            if sent == name:
                return

    async def barge_in(self) -> None:
        # The items with audio queued or unheard; then nothing is (before any await: the pacer
        # must not send more after the clear).
        playing = dict.fromkeys([item for _, item, _ in self.unheard] + [c[0] for c in self.queue])
        self.queue.clear()
        self.unheard.clear()
        self.phone_end = 0.0
        if playing:
            await self.phone.send(dumps({"event": "clear", "streamSid": self.sid}))
        model = self.model
        if model is None:
            return
        if self.active is not None and self.active != self.cancelled:
            self.cancelled = self.active
            await model.send(dumps({"type": "response.cancel"}))
        for item in playing:
            heard = self.heard.get(item, 0)
            if heard < self.received.get(item, 0) // MULAW_BYTES_PER_MS:
                await model.send(
                    dumps(
                        {
                            "type": "conversation.item.truncate",
                            "item_id": item,
                            "content_index": 0,
                            "audio_end_ms": heard,
                        }
                    )
                )
        self.received.clear()  # every item is now heard or truncated: no more audio comes
        self.heard.clear()


def not_found(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?", 1)[0] != "/media-stream":
        return connection.respond(HTTPStatus.NOT_FOUND, "Not found\n")
    return None


async def main(host: str, port: int, url: str, api_key: str) -> None:
    async def handle(phone: ServerConnection) -> None:
        call = Call(phone, url, api_key)
        try:
            await call.run()
        except Exception as exc:  # one call failing never stops the server
            log(f"call {call.sid or '?'} failed: {type(exc).__name__}: {exc}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        handle,
        host,
        port,
        process_request=not_found,
        compression=None,
        max_size=MAX_MESSAGE,
        close_timeout=2,
    ) as server:
        bound = next(iter(server.sockets)).getsockname()
        print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
        await stop.wait()


def run() -> None:
    parser = argparse.ArgumentParser(description="a minimal hand-written Twilio-Realtime bridge")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument(
        "--realtime-url", default="wss://api.openai.com/v1/realtime?model=gpt-realtime"
    )
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    args = parser.parse_args()
    api_key = os.environ.get("OPENAI_API_KEY", "")
    if not api_key:
        parser.error("OPENAI_API_KEY is not set")
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    if args.loop == "uvloop" and not has_uvloop:
        parser.error("--loop uvloop: uvloop is not installed")
    coroutine = main(args.host, args.port, args.realtime_url, api_key)
    if args.loop == "asyncio" or not has_uvloop:
        asyncio.run(coroutine)
    else:
        import uvloop  # noqa: PLC0415 - optional

        uvloop.run(coroutine)


if __name__ == "__main__":
    run()
