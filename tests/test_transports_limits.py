"""Message size limits of the WebSocket transports, over real sockets on 127.0.0.1.

A message over the limit makes the receiving end fail the connection with 1009 (message too
big). No close frame comes back from the peer then (the failing end ignores what follows), so
the code must be taken from the close frame sent: reported as 1006 it read as a dropped line.
"""

from __future__ import annotations

import anyio
import pytest

from voiceguard.transports import MESSAGE_TOO_BIG, TransportClosed, connect_realtime
from voiceguard.transports.websocket import (
    MAX_MESSAGE_BYTES,
    WebSocketTransport,
    connect_websocket,
    serve_websocket,
)

pytestmark = pytest.mark.anyio


class OversizeServer:
    """Sends one message of *size* bytes to each client, then records the close it gets."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.closed_with: list[int] = []
        self.done = anyio.Event()

    async def handle(self, transport: WebSocketTransport) -> None:
        await transport.send("x" * self.size)
        try:
            while True:
                await transport.receive()
        except TransportClosed as exc:
            self.closed_with.append(exc.code)
        finally:
            self.done.set()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # connect_realtime runs on asyncio only
async def test_the_realtime_client_reports_1009_for_a_message_over_its_limit() -> None:
    server = OversizeServer(2048)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                lambda task_status: serve_websocket(server.handle, task_status=task_status)
            )
            url = f"ws://127.0.0.1:{port}/v1/realtime"
            async with connect_realtime(url, api_key=None, max_message_bytes=1024) as model:
                with pytest.raises(TransportClosed) as closed:
                    await model.receive()
                with pytest.raises(TransportClosed) as again:
                    await model.send("{}")
            await server.done.wait()
            tg.cancel_scope.cancel()
    assert closed.value.code == MESSAGE_TOO_BIG
    assert again.value is closed.value
    assert server.closed_with == [MESSAGE_TOO_BIG]


async def test_the_loopback_client_reports_1009_for_a_message_over_its_limit() -> None:
    server = OversizeServer(MAX_MESSAGE_BYTES + 1)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                lambda task_status: serve_websocket(server.handle, task_status=task_status)
            )
            async with connect_websocket(f"ws://127.0.0.1:{port}/") as client:
                with pytest.raises(TransportClosed) as closed:
                    await client.receive()
            await server.done.wait()
            tg.cancel_scope.cancel()
    assert closed.value.code == MESSAGE_TOO_BIG
    assert server.closed_with == [MESSAGE_TOO_BIG]
