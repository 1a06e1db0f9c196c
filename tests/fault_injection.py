"""Faults between a bridge and its peers: a transport wrapper that rewrites, drops or slows
messages (shared by the fault matrix and the fuzz tests)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import anyio

from voiceguard.transports import (
    ABNORMAL_CLOSURE,
    NORMAL_CLOSURE,
    MemoryTransport,
    TransportClosed,
)

#: What a tampered link does with one message: the messages that go on instead (none: dropped).
Rewrite = Callable[["Tampered", str], Awaitable[Sequence[str]]]


def event_type(text: str) -> str:
    """The ``type`` (model) or ``event`` (Twilio) of a JSON message, or "" for anything else."""
    try:
        message = json.loads(text)
    except ValueError:
        return ""
    if not isinstance(message, dict):
        return ""
    return str(message.get("type") or message.get("event") or "")


class Tampered:
    """The handler's end of a link with a fault in it: rewrites, drops or slows messages.

    Attributes:
        received: Messages the handler received through this link.
        sent: Messages the handler sent through this link.
    """

    def __init__(
        self,
        inner: MemoryTransport,
        *,
        incoming: Rewrite | None = None,
        outgoing: Rewrite | None = None,
        send_delay: float = 0.0,
    ) -> None:
        self.inner = inner
        self.incoming = incoming
        self.outgoing = outgoing
        self.send_delay = send_delay
        self.ready: deque[str] = deque()
        self.received: list[str] = []
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        if self.send_delay:
            await anyio.sleep(self.send_delay)  # a slow reader on the other side
        out = [message] if self.outgoing is None else await self.outgoing(self, message)
        for text in out:
            await self.inner.send(text)
        self.sent.append(message)

    async def receive(self) -> str:
        while not self.ready:
            text = await self.inner.receive()
            self.ready.extend([text] if self.incoming is None else await self.incoming(self, text))
        text = self.ready.popleft()
        self.received.append(text)
        return text

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        await self.inner.aclose(code, reason)

    async def abort(self) -> None:
        await self.inner.abort()

    async def drop(self) -> None:
        """The link breaks without a close frame: both ends see 1006."""
        await self.inner.abort()
        raise TransportClosed(ABNORMAL_CLOSURE, "connection dropped")
