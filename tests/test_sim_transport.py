"""Transports: the in-memory pair and the WebSocket server/client, on asyncio and trio."""

from __future__ import annotations

import contextlib

import anyio
import anyio.abc
import pytest

from voiceguard.protocol import (
    SessionCreated,
    StreamStarted,
    parse_realtime_event,
    parse_twilio_message,
)
from voiceguard.sim import (
    CallerSimulator,
    HangUp,
    RealtimeSimulator,
    TransportClosed,
    memory_pair,
)
from voiceguard.transports.websocket import (
    HandshakeRejected,
    WebSocketRequest,
    WebSocketTransport,
    connect_websocket,
    serve_websocket,
)

pytestmark = pytest.mark.anyio


async def test_memory_pair_delivers_in_order_after_the_latency() -> None:
    a, b = memory_pair(latency=0.05)
    with anyio.fail_after(5):
        start = anyio.current_time()
        await a.send("one")
        await a.send("two")
        assert await b.receive() == "one"
        assert anyio.current_time() - start >= 0.05 - 1e-3
        assert await b.receive() == "two"
        await a.aclose(4000, "bye")
        with pytest.raises(TransportClosed) as info:
            await b.receive()
        assert (info.value.code, info.value.reason) == (4000, "bye")
        with pytest.raises(TransportClosed):
            await b.send("late")
        await b.aclose()


async def test_memory_abort_is_seen_as_1006() -> None:
    a, b = memory_pair()
    with anyio.fail_after(5):
        await a.abort()
        with pytest.raises(TransportClosed) as info:
            await b.receive()
        assert info.value.code == 1006
        await b.aclose()


def test_memory_pair_checks_latency() -> None:
    with pytest.raises(ValueError, match="latency"):
        memory_pair(latency=-1.0)


async def test_websocket_round_trip_close_codes_and_rejection() -> None:
    async def echo(transport: WebSocketTransport) -> None:
        async for message in transport:
            if message == "bye":
                await transport.aclose(4001, "done")
                return
            await transport.send(message.upper())

    def accept(request: WebSocketRequest) -> None:
        if not request.path.startswith("/ok"):
            raise HandshakeRejected(404, "nope\n")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                lambda task_status: serve_websocket(echo, accept=accept, task_status=task_status)
            )
            async with connect_websocket(f"ws://127.0.0.1:{port}/ok") as ws:
                await ws.send("hi" * 50_000)
                assert await ws.receive() == "HI" * 50_000
                await ws.send("bye")
                with pytest.raises(TransportClosed) as info:
                    await ws.receive()
                assert info.value.code == 4001
            with pytest.raises(TransportClosed, match="HTTP 404"):
                async with connect_websocket(f"ws://127.0.0.1:{port}/other"):
                    pass
            tg.cancel_scope.cancel()


async def test_a_close_that_comes_with_the_handshake_response_keeps_its_code() -> None:
    # A server that accepts and closes at once (1013 at capacity, 1012 while draining) may send
    # the 101 response and the close frame in one write; the client must report the code, not
    # a dropped connection (1006).
    from websockets.server import ServerProtocol  # noqa: PLC0415

    async def accept_and_close(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            protocol = ServerProtocol()
            while not (events := protocol.events_received()):
                protocol.receive_data(await stream.receive())
            protocol.send_response(protocol.accept(events[0]))  # type: ignore[arg-type]
            protocol.send_close(1013, "at capacity")
            await stream.send(b"".join(protocol.data_to_send()))  # one write
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await stream.receive()

    with anyio.fail_after(5):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, accept_and_close)
            async with connect_websocket(f"ws://127.0.0.1:{port}/media-stream") as ws:
                with pytest.raises(TransportClosed) as info:
                    await ws.receive()
            assert (info.value.code, info.value.reason) == (1013, "at capacity")
            tg.cancel_scope.cancel()


def test_connect_websocket_refuses_other_schemes() -> None:
    async def main() -> None:
        async with connect_websocket("wss://127.0.0.1:1/x"):
            pass

    with pytest.raises(ValueError, match="ws://"):
        anyio.run(main)


async def test_realtime_simulator_over_websocket_paths_and_auth() -> None:
    sim = RealtimeSimulator()
    with anyio.fail_after(5):
        async with sim.running() as address:
            for path in ("/v1/realtime?model=gpt-realtime", "/realtime"):
                url = f"ws://127.0.0.1:{address.port}{path}"
                async with connect_websocket(url, headers={"Authorization": "Bearer any"}) as ws:
                    assert isinstance(parse_realtime_event(await ws.receive()), SessionCreated)
            with pytest.raises(TransportClosed, match="HTTP 401"):
                async with connect_websocket(address.url):
                    pass
            with pytest.raises(TransportClosed, match="HTTP 404"):
                async with connect_websocket(
                    f"ws://127.0.0.1:{address.port}/v2/x", headers={"Authorization": "Bearer k"}
                ):
                    pass
    stats = sim.statistics()
    assert (stats.connections_total, stats.connections_open) == (2, 0)


async def test_a_caller_calls_a_bot_over_websocket() -> None:
    started: list[StreamStarted] = []

    async def bot(transport: WebSocketTransport) -> None:
        async for text in transport:
            event = parse_twilio_message(text)
            if isinstance(event, StreamStarted):
                started.append(event)

    caller = CallerSimulator(script=[HangUp(at=0.3)], custom_parameters={"k": "v"})
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            port = await tg.start(lambda task_status: serve_websocket(bot, task_status=task_status))
            record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
            tg.cancel_scope.cancel()
    assert record.ended_by == "caller"
    assert started[0].custom_parameters == {"k": "v"}
    assert len([e for _, e in record.sent if e == "media"]) >= 10
