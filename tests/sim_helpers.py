"""Helpers shared by the simulator tests: a client that parses every server event strictly."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import anyio

from voiceguard.protocol import RealtimeServerEvent, UnknownEvent, dumps, parse_realtime_event
from voiceguard.transports import Transport

#: Types the protocol edge does not model (the simulator sends them anyway).
UNMODELLED = frozenset({"conversation.item.retrieved"})


class Client:
    """Sends client events and receives server events, each parsed by the protocol edge."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.seen: list[RealtimeServerEvent] = []

    async def send(self, message: Mapping[str, Any]) -> None:
        await self.transport.send(dumps(message))

    async def send_raw(self, text: str) -> None:
        await self.transport.send(text)

    async def append(self, audio: bytes, chunk: int = 160) -> None:
        for start in range(0, len(audio), chunk):
            piece = base64.b64encode(audio[start : start + chunk]).decode("ascii")
            await self.send({"type": "input_audio_buffer.append", "audio": piece})

    async def recv(self) -> RealtimeServerEvent:
        event = parse_realtime_event(await self.transport.receive())
        assert not isinstance(event, UnknownEvent) or event.type in UNMODELLED, event
        self.seen.append(event)
        return event

    async def until(self, event_type: type[Any], *, limit: int = 2000) -> Any:
        """Receive until an event of *event_type*; return it."""
        for _ in range(limit):
            event = await self.recv()
            if isinstance(event, event_type):
                return event
        raise AssertionError(f"no {event_type.__name__} within {limit} events")

    async def drain(self, seconds: float) -> list[RealtimeServerEvent]:
        """Everything received within *seconds*."""
        out: list[RealtimeServerEvent] = []
        with anyio.move_on_after(seconds):
            while True:
                out.append(await self.recv())
        return out


def types(events: list[RealtimeServerEvent]) -> list[str]:
    """Class names of *events*, for readable asserts."""
    return [type(e).__name__ for e in events]
