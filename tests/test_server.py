"""The reference server end to end: ``voiceguard serve`` as a subprocess, simulated peers.

Real sockets on 127.0.0.1 only. The server runs as a user would start it; the model side is a
``RealtimeSimulator`` served in this process (through ``ModelRouter``), and each call is a
``CallerSimulator`` over a WebSocket to ``/media-stream``. The server runs on asyncio (uvicorn),
and so do these tests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_harness import API_KEY, ModelRouter, ServerProcess
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from voiceguard.sim.caller import CallerSimulator, CallRecord, EchoPath, HangUp, Speak
from voiceguard.sim.realtime import FunctionCall, RealtimeSimulator, Reply
from voiceguard.transports import Transport, TransportClosed
from voiceguard.transports.websocket import connect_websocket

pytestmark = pytest.mark.anyio

GREETING = Reply(text="Hello, how can I help?", duration=0.8)
ANSWER = Reply(text="We are open from nine to five.", duration=0.8)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn); so do its tests."""
    return "asyncio"


@pytest.fixture(scope="module")
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


@pytest.fixture(scope="module")
async def server(
    router: ModelRouter, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    args = ["--realtime-url", router.url, "--log-level", "debug", "--max-calls", "4"]
    async with ServerProcess.running(args, log_dir=tmp_path_factory.mktemp("serve")) as running:
        yield running


def metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def assert_clean(simulator: RealtimeSimulator) -> None:
    stats = simulator.statistics()
    assert stats.errors_total == 0, stats.errors_by_code
    assert stats.connections_open == 0


async def call(server: ServerProcess, caller: CallerSimulator, timeout: float = 10.0) -> CallRecord:
    with anyio.fail_after(timeout):
        return await caller.call(server.media_url)


async def wait_closed(simulator: RealtimeSimulator) -> None:
    """The server closes the model connection right after the phone's; wait for it."""
    with anyio.fail_after(5):
        while simulator.statistics().connections_open:
            await anyio.sleep(0.02)


async def test_normal_call_greets_answers_and_ends_cleanly(
    server: ServerProcess, router: ModelRouter
) -> None:
    simulator = router.use(RealtimeSimulator(replies=[GREETING, ANSWER], audio_speed=8.0))
    caller = CallerSimulator(
        script=[Speak(at=2.2, duration=0.7, text="When are you open?"), HangUp(at=5.0)]
    )
    record = await call(server, caller)
    await wait_closed(simulator)

    assert record.ended_by == "caller"
    assert record.protocol_errors == []
    assert record.heard_seconds > 1.0  # the greeting and the answer
    assert_clean(simulator)
    (conn,) = simulator.connections
    assert len(conn.received("response.create")) == 2
    (session,) = conn.received("session.update")
    tools = session.event["session"]["tools"]
    assert [tool["name"] for tool in tools] == ["end_call"]
    # The key went to the model as a bearer token, and nowhere else.
    assert router.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"
    assert "openai-beta" not in router.requests[-1].headers


# ---------------------------------------------------------------------------------------------
# Calls


async def test_barge_in_clears_the_phone_and_cancels_the_answer(
    server: ServerProcess, router: ModelRouter
) -> None:
    long_answer = Reply(text="Let me tell you all about our opening hours. " * 3, duration=3.0)
    # Generated at 1.5 times real time, the answer is still being generated at the barge-in.
    simulator = router.use(RealtimeSimulator(replies=[GREETING, long_answer], audio_speed=1.5))
    caller = CallerSimulator(
        script=[
            Speak(at=2.2, duration=0.7, text="When are you open?"),
            Speak(at=4.0, duration=1.0, text="Sorry, actually, one more thing"),
            HangUp(at=6.5),
        ],
        echo=EchoPath(delay=0.1, return_loss_db=20.0),
    )
    record = await call(server, caller)
    await wait_closed(simulator)

    assert record.ended_by == "caller"
    assert record.protocol_errors == []
    assert len(record.clears) >= 1
    assert_clean(simulator)
    (conn,) = simulator.connections
    answer_id = conn.sent("response.created")[1].event["response"]["id"]
    cancels = [e for e in conn.received("response.cancel") if e.event["response_id"] == answer_id]
    assert len(cancels) == 1
    assert len(conn.received("conversation.item.truncate")) == 1
    # Nothing of the cancelled answer was heard after the clear (a clear before the caller
    # spoke is the greeting pausing to listen whether its echo was the caller).
    first_clear = next(at for at in record.clears if at >= 2.2)
    assert record.heard_between(first_clear + 0.1, first_clear + 0.8) == 0.0


async def test_a_call_ends_when_the_model_calls_end_call(
    server: ServerProcess, router: ModelRouter
) -> None:
    goodbye = Reply(text="Goodbye!", duration=0.6, function_call=FunctionCall(name="end_call"))
    simulator = router.use(RealtimeSimulator(replies=[GREETING, goodbye], audio_speed=8.0))
    caller = CallerSimulator(
        script=[Speak(at=2.2, duration=0.6, text="That's all, bye"), HangUp(at=9.0)]
    )
    before = metrics((await server.get("/metrics")).text)
    record = await call(server, caller)
    await wait_closed(simulator)

    assert record.ended_by == "bot"
    assert record.ended_at is not None and record.ended_at < 6.0
    assert record.protocol_errors == []
    assert record.heard_seconds >= 1.3  # the greeting and the whole goodbye
    assert_clean(simulator)
    with anyio.fail_after(5):
        while True:
            after = metrics((await server.get("/metrics")).text)
            key = ("voiceguard_calls_ended_total", (("reason", "hang-up: goodbye played"),))
            if after.get(key, 0) == before.get(key, 0) + 1:
                break
            await anyio.sleep(0.02)


async def test_concurrent_calls_are_isolated_and_counted(
    server: ServerProcess, router: ModelRouter
) -> None:
    simulator = router.use(RealtimeSimulator(replies=[GREETING, ANSWER], audio_speed=8.0))
    before = metrics((await server.get("/metrics")).text)
    records: list[CallRecord] = []

    async def one(seed: int) -> None:
        caller = CallerSimulator(script=[Speak(at=2.2, duration=0.6), HangUp(at=4.0)], seed=seed)
        records.append(await call(server, caller))

    async with anyio.create_task_group() as tg:
        for seed in range(3):
            tg.start_soon(one, seed)
    await wait_closed(simulator)
    ended = ("voiceguard_calls_ended_total", (("reason", "twilio stop"),))
    with anyio.fail_after(5):  # the server records a call once both sockets are closed
        while True:
            after = metrics((await server.get("/metrics")).text)
            if after.get(ended, 0) - before.get(ended, 0) == 3:
                break
            await anyio.sleep(0.02)

    assert [r.ended_by for r in records] == ["caller"] * 3
    assert all(r.protocol_errors == [] for r in records)
    assert all(r.heard_seconds > 1.0 for r in records)
    assert len({r.call_sid for r in records}) == 3
    assert_clean(simulator)
    assert simulator.statistics().connections_total == 3
    started = ("voiceguard_calls_started_total", ())
    assert after[started] - before.get(started, 0) == 3
    assert after["voiceguard_calls_active", ()] == 0

    def decisions(guard: str, verdict: str, reason: str) -> float:
        key = (
            "voiceguard_guard_decisions_total",
            (("guard", guard), ("reason", reason), ("verdict", verdict)),
        )
        return after.get(key, 0) - before.get(key, 0)

    assert decisions("response_create_guard", "ALLOW", "FORCED_GREETING") == 3
    assert decisions("response_create_guard", "ALLOW", "OK") == 3  # one answer each


# ---------------------------------------------------------------------------------------------
# Bad input from the phone


def twilio_start(call_sid: str, stream_sid: str) -> list[str]:
    return [
        json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        json.dumps(
            {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": stream_sid,
                "start": {
                    "accountSid": "AC" + "0" * 32,
                    "streamSid": stream_sid,
                    "callSid": call_sid,
                    "tracks": ["inbound"],
                    "customParameters": {},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        ),
    ]


def twilio_media(stream_sid: str, chunk: int, payload: str) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(chunk + 1),
            "streamSid": stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(20 * chunk),
                "payload": payload,
            },
        }
    )


SILENCE = base64.b64encode(b"\xff" * 160).decode()


async def test_bad_input_is_counted_and_the_other_call_is_unaffected(
    server: ServerProcess, router: ModelRouter
) -> None:
    simulator = router.use(RealtimeSimulator(replies=[GREETING, ANSWER], audio_speed=8.0))
    before = metrics((await server.get("/metrics")).text)
    stream_sid = "MZ" + "b" * 32
    received: list[dict[str, Any]] = []

    async def bad_caller() -> None:
        async with connect_websocket(server.media_url) as ws:
            await ws.send(twilio_media(stream_sid, 1, SILENCE))  # media before start
            for message in twilio_start("CA" + "b" * 32, stream_sid):
                await ws.send(message)
            await ws.send("this is not JSON")
            await ws.send(json.dumps({"event": "surprise", "streamSid": stream_sid}))
            await ws.send(twilio_media(stream_sid, 2, "***not base64***"))
            await ws.send(json.dumps(["an", "array"]))
            # The call goes on: the bot greets, and good media is still taken.
            with anyio.fail_after(5):
                chunk = 3
                while not any(m.get("event") == "media" for m in received):
                    await ws.send(twilio_media(stream_sid, chunk, SILENCE))
                    chunk += 1
                    with anyio.move_on_after(0.02):
                        received.append(json.loads(await ws.receive()))
            stop = {"accountSid": "AC" + "0" * 32, "callSid": "CA" + "b" * 32}
            await ws.send(json.dumps({"event": "stop", "streamSid": stream_sid, "stop": stop}))

    good = CallerSimulator(script=[Speak(at=2.2, duration=0.6), HangUp(at=4.0)], seed=7)
    records: list[CallRecord] = []

    async def good_caller() -> None:
        records.append(await call(server, good))

    async with anyio.create_task_group() as tg:
        tg.start_soon(bad_caller)
        tg.start_soon(good_caller)
    await wait_closed(simulator)

    (record,) = records
    assert record.ended_by == "caller"
    assert record.protocol_errors == []
    assert record.heard_seconds > 1.0
    assert_clean(simulator)
    after = metrics((await server.get("/metrics")).text)
    bad = ("voiceguard_bad_messages_total", (("peer", "twilio"),))
    assert after[bad] - before.get(bad, 0) >= 4
    assert after["voiceguard_calls_active", ()] == 0


async def drain(transport: Transport) -> None:
    while True:
        await transport.receive()


async def test_an_oversize_message_closes_that_stream_with_1009(
    server: ServerProcess, router: ModelRouter
) -> None:
    router.use(RealtimeSimulator(replies=[GREETING]))
    before = metrics((await server.get("/metrics")).text)
    stream_sid = "MZ" + "c" * 32
    with anyio.fail_after(5):
        async with connect_websocket(server.media_url) as ws:
            for message in twilio_start("CA" + "c" * 32, stream_sid):
                await ws.send(message)
            await ws.send(twilio_media(stream_sid, 1, "A" * 2**20))  # a 1 MB frame
            with pytest.raises(TransportClosed) as closed:
                await drain(ws)
    assert closed.value.code == 1009
    with anyio.fail_after(5):
        while True:
            after = metrics((await server.get("/metrics")).text)
            bad = ("voiceguard_bad_messages_total", (("peer", "twilio"),))
            if after.get(bad, 0) > before.get(bad, 0) and after["voiceguard_calls_active", ()] == 0:
                break
            await anyio.sleep(0.02)
    assert (await server.get("/healthz")).status_code == 200


async def test_a_binary_frame_closes_that_stream_with_1003(server: ServerProcess) -> None:
    with anyio.fail_after(5):
        async with connect(server.media_url) as ws:
            await ws.send(b"\x00\x01\x02")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1003


# ---------------------------------------------------------------------------------------------
# Operations


async def test_healthz_reports_capacity_and_past_it_streams_are_refused(
    server: ServerProcess, router: ModelRouter
) -> None:
    health = await server.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "active_calls": 0,
        "max_calls": 4,
        "pending_streams": 0,
    }
    sessions = len(router.requests)
    async with AsyncExitStack() as stack:
        # Four calls hold all four places (a stream is a call from its start on).
        for number in range(4):
            ws = await stack.enter_async_context(connect_websocket(server.media_url))
            for message in twilio_start("CA" + "d" * 31 + str(number), "MZ" + "d" * 32):
                await ws.send(message)
        with anyio.fail_after(5):
            while (await server.get("/healthz")).status_code != 503:
                await anyio.sleep(0.02)
        assert (await server.get("/healthz")).json()["status"] == "full"
        with anyio.fail_after(5):
            async with connect(server.media_url) as one_too_many:
                with pytest.raises(ConnectionClosed) as closed:
                    await one_too_many.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
        assert closed.value.rcvd.reason == "at capacity (4 calls)"
    with anyio.fail_after(5):
        while (await server.get("/healthz")).status_code != 200:
            await anyio.sleep(0.02)
    assert len(router.requests) == sessions + 4, "the stream refused opened no model session"
    page = metrics((await server.get("/metrics")).text)
    refused = (
        "voiceguard_requests_refused_total",
        (("endpoint", "/media-stream"), ("reason", "capacity")),
    )
    assert page[refused] >= 1


async def test_incoming_call_answers_twiml_for_the_request_host(server: ServerProcess) -> None:
    response = await server.post("/incoming-call", data={"CallSid": "CA" + "e" * 32})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        '<Stream url="wss://127.0.0.1/media-stream"/></Connect></Response>'
    )
    too_big = await server.post(
        "/incoming-call",
        content=b"a=" + b"x" * 70_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert too_big.status_code == 413


async def test_the_phone_socket_is_not_compressed_and_the_fast_loop_runs(
    server: ServerProcess,
) -> None:
    # The websockets client offers permessage-deflate; base64 audio does not compress, so the
    # server declines it (it cost a tenth of the server's CPU).
    with anyio.fail_after(5):
        async with connect(server.media_url) as ws:
            assert ws.response is not None
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
    assert "event loop: uvloop, HTTP parser httptools" in server.output()


async def test_the_api_key_is_in_no_log_line(server: ServerProcess) -> None:
    # Runs after the calls above, with DEBUG logging (websockets logs request headers there).
    output = server.output()
    assert "voiceguard.server: call" in output  # the calls were logged
    assert "Authorization" in output or "authorization" in output  # headers were logged...
    assert API_KEY not in output  # ...but not the key
    assert API_KEY[8:24] not in output
