"""Bots as users write them, adopting voiceguard's middleware, for the tests of the middleware.

``sample_bot`` is a Twilio <-> Realtime bridge in the shape of the popular sample (its own loop,
its own barge-in handler, one mark per audio delta), with the variations users' bots have:

* ``watchdog``: the bot's own response watchdog, as naive as they come: this many seconds after
  each caller turn it asks for a response again, whatever happened meanwhile (a ``@call_timer``
  of the call, as the tutorial shows);
* ``pcm16``: the bot's model session is 16-bit PCM at 24 kHz, so it resamples: the caller's 8 kHz
  mu-law up to 24 kHz for the model, the model's audio down to mu-law for Twilio;
* ``clears``: whether the bot's own barge-in handler clears the phone (the sample's handler does
  so only while its mark queue is not empty);
* ``provider``: whose model it talks to (``"openai"``, ``"azure"``, ``"xai"``): its session
  update in that provider's shape;
* ``phone``: whose media streams it takes (``"twilio"``, ``"telnyx"``, ``"plivo"``): the bot
  speaks that provider's words to ``call.phone(ws, phone=...)`` (its Twilio code behind a
  translation, as a port of the sample would be), and the guards read and write them.

It runs as a scenario bridge (``await sample_bot(twilio, connect_model, ...)``) over the
simulator's transports in Starlette/``websockets`` shape.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import anyio
import numpy as np

from voiceguard import CallScope, DialectTransport
from voiceguard.audio import PCM24K, UlawConverter, decode_ulaw
from voiceguard.middleware import GuardedCall, call_timer
from voiceguard.protocol import PROVIDERS, phone_dialect
from voiceguard.sim.adapters import StarletteSocket, websockets_style
from voiceguard.sim.scenarios import ConnectModel
from voiceguard.transports import NORMAL_CLOSURE, Transport


class _ProviderWords:
    """The guarded phone socket as a transport, in its provider's words (what a bot written for
    that provider reads and writes)."""

    def __init__(self, guarded: Any) -> None:
        self.guarded = guarded

    async def send(self, message: str) -> None:
        await self.guarded.send_text(message)

    async def receive(self) -> str:
        text: str = await self.guarded.receive_text()
        return text

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        await self.guarded.transport.aclose(code, reason)

    async def abort(self) -> None:
        await self.guarded.transport.abort()


def _upsample(ulaw: bytes) -> bytes:
    """8 kHz mu-law to 24 kHz 16-bit PCM (linear interpolation, as a simple bot does)."""
    pcm = decode_ulaw(ulaw).astype(np.float64)
    if pcm.size == 0:
        return b""
    positions = np.arange(pcm.size * 3) / 3.0
    return np.interp(positions, np.arange(pcm.size), pcm).astype("<i2").tobytes()


async def sample_bot(
    twilio: Transport,
    connect_model: ConnectModel,
    *,
    watchdog: float | None = None,
    pcm16: bool = False,
    clears: bool = True,
    calls: list[GuardedCall] | None = None,
    tool_seconds: float | None = None,
    provider: str = "openai",
    phone: str = "twilio",
) -> None:
    """One call, bridged the way the popular sample does it, with voiceguard around it.

    With *tool_seconds*, the bot answers each function call of a finished response itself, as
    such bots do: it works that long, sends the ``function_call_output`` and a
    ``response.create``."""
    call = GuardedCall()
    if calls is not None:
        calls.append(call)
    websocket = call.phone(StarletteSocket(twilio), phone=phone)
    if phone != "twilio":  # the bot's Twilio code, ported: it speaks the provider's words
        websocket = StarletteSocket(
            DialectTransport(_ProviderWords(websocket), phone_dialect(phone))
        )
    fmt = {"type": "audio/pcm", "rate": 24000} if pcm16 else {"type": "audio/pcmu"}
    down = UlawConverter(PCM24K) if pcm16 else None
    try:
        async with CallScope() as scope, call.model(websockets_style(connect_model)()) as openai:
            update = {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "output_modalities": ["audio"],
                    "audio": {
                        "input": {"format": fmt, "turn_detection": {"type": "server_vad"}},
                        "output": {"format": fmt},
                    },
                },
            }
            # The bot writes its session in its provider's shape (xAI's: turn detection on top).
            update = PROVIDERS[provider].adapt_session_update(update)
            await openai.send(json.dumps(update))
            await openai.send(json.dumps({"type": "response.create"}))  # the greeting
            stream_sid = ""
            marks: list[str] = []
            last_item: str | None = None

            @call_timer(watchdog or 3.0, scope=scope)
            async def ask_again() -> None:
                await openai.send(json.dumps({"type": "response.create"}))

            async def from_twilio() -> None:
                nonlocal stream_sid
                async for message in websocket.iter_text():
                    data = json.loads(message)
                    if data["event"] == "start":
                        stream_sid = data["start"]["streamSid"]
                    elif data["event"] == "media":
                        payload = data["media"]["payload"]
                        if pcm16:
                            audio = _upsample(base64.b64decode(payload))
                            payload = base64.b64encode(audio).decode()
                        append = {"type": "input_audio_buffer.append", "audio": payload}
                        await openai.send(json.dumps(append))
                    elif data["event"] == "mark" and marks:
                        marks.pop(0)
                    elif data["event"] == "stop":
                        break

            async def from_model() -> None:
                nonlocal last_item
                async for text in openai:
                    event = json.loads(text)
                    kind = event["type"]
                    if kind == "response.output_audio.delta":
                        audio = base64.b64decode(event["delta"])
                        if down is not None:
                            audio = down.feed(audio)
                        payload = base64.b64encode(audio).decode()
                        media = {"event": "media", "streamSid": stream_sid}
                        await websocket.send_json({**media, "media": {"payload": payload}})
                        last_item = event["item_id"]
                        mark = {"event": "mark", "streamSid": stream_sid}
                        await websocket.send_json({**mark, "mark": {"name": "responsePart"}})
                        marks.append("responsePart")
                    elif kind == "input_audio_buffer.speech_started" and last_item:
                        if marks and clears:
                            await websocket.send_json({"event": "clear", "streamSid": stream_sid})
                        marks.clear()
                        last_item = None
                    elif kind == "input_audio_buffer.committed" and watchdog is not None:
                        ask_again.restart()
                    elif kind == "response.done" and tool_seconds is not None:
                        for item in event["response"]["output"]:
                            if item["type"] == "function_call":
                                scope.start_soon(answer_tool, item["call_id"])

            async def answer_tool(call_id: str) -> None:
                assert tool_seconds is not None
                await anyio.sleep(tool_seconds)
                output = {"type": "function_call_output", "call_id": call_id, "output": "{}"}
                await openai.send(json.dumps({"type": "conversation.item.create", "item": output}))
                await openai.send(json.dumps({"type": "response.create"}))

            async with anyio.create_task_group() as tg:

                async def twilio_then_hang_up() -> None:
                    with contextlib.suppress(Exception):  # the model went away, ... (the sample)
                        await from_twilio()
                    tg.cancel_scope.cancel()

                async def model_then_hang_up() -> None:
                    with contextlib.suppress(Exception):
                        await from_model()
                    tg.cancel_scope.cancel()

                tg.start_soon(twilio_then_hang_up)
                tg.start_soon(model_then_hang_up)
    finally:
        await twilio.aclose()


def bot_of(**options: Any) -> Any:
    """A scenario bridge running :func:`sample_bot` with *options*."""

    async def bridge(twilio: Transport, connect_model: ConnectModel) -> None:
        await sample_bot(twilio, connect_model, **options)

    return bridge
