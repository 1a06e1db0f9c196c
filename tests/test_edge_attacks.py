"""The reference server attacked at its edges, on 127.0.0.1: each case bounded in time.

Slow and idle connections, a process out of descriptors, streams that never start, replayed
signatures and stream tokens, a model that never answers, a stop during the model's handshake,
an idle ladder facing a bot that talks, secrets echoed back by the model, requests for another
app's host, audio floods and media of another stream, and the metrics behind a token. The server
runs in this process (``serving(create_app(...))``) where a case needs a configuration of its
own, and as ``voiceguard serve`` (a subprocess) where the process itself is attacked.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from server_harness import API_KEY, ModelRouter, ServerProcess
from twilio.request_validator import RequestValidator

from voiceguard.audio import FRAME_BYTES, FRAME_SECONDS
from voiceguard.config import BridgeConfig, HandlerConfig, IdleLadderConfig
from voiceguard.server import ServerConfig, create_app, serving
from voiceguard.server.tokens import STREAM_TOKEN_PARAMETER
from voiceguard.sim.caller import CallerSimulator, HangUp, Speak
from voiceguard.sim.realtime import FunctionCall, RealtimeSimulator, Reply
from voiceguard.transports import TransportClosed
from voiceguard.transports.websocket import WebSocketTransport, connect_websocket, serve_websocket

pytestmark = pytest.mark.anyio

TOKEN = "edge-test-twilio-auth-token-0123456789"
ACCOUNT = "AC" + "0" * 32
APOLOGY_SECONDS = 4.38


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn); so do its tests."""
    return "asyncio"


@pytest.fixture(scope="module")
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


def _config(router: ModelRouter, **fields: object) -> ServerConfig:
    return ServerConfig(realtime_url=router.url, api_key=API_KEY, **fields)  # type: ignore[arg-type]


def _greeting(router: ModelRouter, seconds: float = 0.6) -> RealtimeSimulator:
    return router.use(
        RealtimeSimulator(replies=[Reply(text="Hello.", duration=seconds)], audio_speed=8.0)
    )


def _start(call_sid: str, stream_sid: str, parameters: dict[str, str] | None = None) -> list[str]:
    start = {
        "accountSid": ACCOUNT,
        "streamSid": stream_sid,
        "callSid": call_sid,
        "tracks": ["inbound"],
        "customParameters": parameters or {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    return [
        json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        json.dumps(
            {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": start}
        ),
    ]


def _media(stream_sid: str, chunk: int) -> str:
    payload = base64.b64encode(b"\xff" * FRAME_BYTES).decode()
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(chunk + 1),
            "streamSid": stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": "0",
                "payload": payload,
            },
        }
    )


async def _closed_within(stream: anyio.abc.SocketStream, seconds: float) -> bool:
    """Whether the server closed *stream* within *seconds* (it sent nothing else)."""
    with anyio.move_on_after(seconds):
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pass
        return True
    return False


# ============================================================================================
# 1. Connections that never finish a request


async def test_idle_and_half_request_connections_are_closed_and_never_lock_the_server_out(
    router: ModelRouter,
) -> None:
    _greeting(router)
    config = _config(router, request_timeout=0.5, max_waiting_connections=40)
    async with serving(create_app(config)) as port, AsyncExitStack() as stack:
        streams = []
        for number in range(100):  # more than may wait at once: the oldest make room
            stream = await stack.enter_async_context(await anyio.connect_tcp("127.0.0.1", port))
            if number % 2:
                await stream.send(b"POST /incoming-call HTTP/1.1\r\nHost: x\r\nContent-Le")
            streams.append(stream)
        async with httpx.AsyncClient(timeout=2.0) as client:
            health = await client.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200, "the server still answers during the flood"
        # A real call during the flood goes through.
        caller = CallerSimulator(script=[HangUp(at=1.0)], noise_dbfs=None)
        with anyio.fail_after(10):
            record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
        assert record.ended_by == "caller" and record.heard_seconds > 0.3
        # Every idle connection is closed: by the cap at once, or after the request timeout.
        with anyio.fail_after(5):
            closed = [await _closed_within(stream, 2.0) for stream in streams]
        assert all(closed), f"{closed.count(False)} idle connections still open"


async def test_a_webhook_body_that_never_arrives_gets_408(router: ModelRouter) -> None:
    config = _config(router, request_timeout=0.5)
    async with serving(create_app(config)) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            await stream.send(
                b"POST /incoming-call HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nCallSid=CA"
            )
            with anyio.fail_after(3):
                answer = await stream.receive()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]


async def test_out_of_descriptors_the_log_stays_short_and_the_server_recovers(
    router: ModelRouter, tmp_path: Path
) -> None:
    """With a descriptor limit below what the flood needs, accept() fails: one log line per
    episode (not one per failure), and once the idle connections time out the server answers."""
    # On asyncio's loop, which reports each failed accept() (uvloop's libuv closes such
    # connections itself and says nothing).
    args = [
        "--realtime-url", router.url, "--request-timeout", "1", "--max-waiting-connections",
        "10000", "--log-level", "info", "--loop", "asyncio",
    ]  # fmt: skip
    async with ServerProcess.running(args, log_dir=tmp_path, max_open_files=96) as server:
        async with AsyncExitStack() as stack:
            for _ in range(200):
                try:
                    with anyio.fail_after(1):
                        stream = await anyio.connect_tcp("127.0.0.1", server.port)
                except (OSError, TimeoutError):
                    break
                await stack.enter_async_context(stream)
            await anyio.sleep(1.5)
        with anyio.fail_after(10):
            while True:
                try:
                    if (await server.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.1)
        log = server.output()
    assert "cannot accept connections" in log, "the descriptor limit was reached"
    assert log.count("Traceback") == 0
    assert len(log.splitlines()) < 60, f"{len(log.splitlines())} lines of log"


# ============================================================================================
# 2. Streams bound to their call


async def _webhook(port: int, call_sid: str) -> tuple[str, dict[str, str]]:
    """Post a signed webhook for *call_sid*; the TwiML's stream URL and parameters."""
    url = f"http://127.0.0.1:{port}/incoming-call"
    form = {"CallSid": call_sid, "AccountSid": ACCOUNT}
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    async with httpx.AsyncClient(timeout=5.0) as client:
        answer = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text
    stream = ET.fromstring(answer.text).find("./Connect/Stream")
    assert stream is not None
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.iter("Parameter")}
    return stream.attrib["url"], parameters


def _stream_signature(port: int) -> dict[str, str]:
    url = f"wss://127.0.0.1:{port}/media-stream"
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, {})}


async def test_a_replayed_signature_or_token_opens_no_stream(router: ModelRouter) -> None:
    _greeting(router)
    config = _config(router, twilio_auth_token=TOKEN)
    async with serving(create_app(config)) as port:
        url = f"ws://127.0.0.1:{port}/media-stream"
        call_sid = "CA" + "1" * 32
        stream_url, parameters = await _webhook(port, call_sid)
        assert stream_url.endswith("/media-stream") and STREAM_TOKEN_PARAMETER in parameters
        sessions = len(router.requests)
        signed = _stream_signature(port)

        def caller(params: dict[str, str], sid: str = call_sid) -> CallerSimulator:
            return CallerSimulator(
                script=[HangUp(at=1.0)], custom_parameters=params, call_sid=sid, noise_dbfs=None
            )

        with anyio.fail_after(10):
            real = await caller(parameters).call(url, headers=signed)
        assert real.ended_by == "caller" and real.heard_seconds > 0.3
        with anyio.fail_after(10):
            replays = [
                await caller(parameters).call(url, headers=signed),  # the same token again
                await caller({}).call(url, headers=signed),  # the signature alone
                await caller(parameters, "CA" + "2" * 32).call(url, headers=signed),  # other call
            ]
        for replay in replays:
            assert replay.ended_by == "bot" and replay.heard_seconds == 0
            assert replay.ended_at is not None and replay.ended_at < 0.5
        assert len(router.requests) == sessions + 1, "only the real call opened a model session"
        async with httpx.AsyncClient(timeout=5.0) as client:
            page = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'reason="stream token"} 3.0' in page


async def test_debug_logs_never_show_the_signature(router: ModelRouter, tmp_path: Path) -> None:
    _greeting(router)
    args = ["--realtime-url", router.url, "--log-level", "debug", "--no-stream-tokens"]
    async with ServerProcess.running(
        args, log_dir=tmp_path, env={"TWILIO_AUTH_TOKEN": TOKEN}
    ) as server:
        signed = _stream_signature(server.port)
        caller = CallerSimulator(script=[HangUp(at=0.8)], noise_dbfs=None)
        with anyio.fail_after(10):
            record = await caller.call(server.media_url, headers=signed)
        assert record.ended_by == "caller"
        log = server.output()
    assert "x-twilio-signature" in log.lower(), "the headers were logged"
    assert signed["X-Twilio-Signature"] not in log
    assert API_KEY not in log and TOKEN not in log


# ============================================================================================
# 3. Streams that never start


async def test_streams_that_never_start_hold_no_call_slot(router: ModelRouter) -> None:
    _greeting(router)
    handler = HandlerConfig(start_timeout=3.0)
    config = _config(router, max_calls=4, max_pending_streams=8, handler=handler)
    async with serving(create_app(config)) as port, AsyncExitStack() as stack:
        url = f"ws://127.0.0.1:{port}/media-stream"
        for _ in range(30):  # connected, never a start
            ws = await stack.enter_async_context(connect_websocket(url))
            await ws.send(_start("CA" + "3" * 32, "MZ" + "3" * 32)[0])
        async with httpx.AsyncClient(timeout=2.0) as client:
            health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
        assert health["status"] == "ok" and health["active_calls"] == 0
        assert health["pending_streams"] <= 8
        caller = CallerSimulator(script=[HangUp(at=1.0)], noise_dbfs=None)
        with anyio.fail_after(10):
            record = await caller.call(url)
        assert record.ended_by == "caller" and record.heard_seconds > 0.3


# ============================================================================================
# 4. A model that never answers, and a stop during the model's handshake


@pytest.fixture
async def silent_model() -> AsyncIterator[str]:
    """A Realtime endpoint that accepts the WebSocket and never sends anything."""

    async def never_answer(transport: WebSocketTransport) -> None:
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: serve_websocket(never_answer, port=0, task_status=task_status)
        )
        yield f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        tg.cancel_scope.cancel()


@pytest.fixture
async def stuck_handshake() -> AsyncIterator[str]:
    """A TCP endpoint that accepts and never answers the WebSocket handshake."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

    async def hold(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, hold)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        yield f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        tg.cancel_scope.cancel()


async def test_a_silent_model_ends_the_call_with_an_apology(silent_model: str) -> None:
    handler = HandlerConfig(model_timeout=1.0)
    config = ServerConfig(realtime_url=silent_model, api_key=API_KEY, handler=handler)
    async with serving(create_app(config)) as port:
        caller = CallerSimulator(script=[HangUp(at=20.0)], noise_dbfs=None)
        with anyio.fail_after(15):
            record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
        async with httpx.AsyncClient(timeout=2.0) as client:
            with anyio.fail_after(5):  # after the silent model's close handshake times out
                while (await client.get(f"http://127.0.0.1:{port}/healthz")).json()["active_calls"]:
                    await anyio.sleep(0.05)
            page = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert record.ended_by == "bot"
    assert record.heard_seconds == pytest.approx(APOLOGY_SECONDS, abs=0.1)
    assert record.ended_at is not None and record.ended_at < 1.0 + APOLOGY_SECONDS + 1.0
    assert 'voiceguard_calls_ended_total{reason="model timeout"} 1.0' in page


async def test_a_stop_during_the_model_handshake_ends_the_call_at_once(
    stuck_handshake: str,
) -> None:
    handler = HandlerConfig(model_timeout=10.0)
    config = ServerConfig(realtime_url=stuck_handshake, api_key=API_KEY, handler=handler)
    async with serving(create_app(config)) as port:
        caller = CallerSimulator(script=[HangUp(at=0.3)], noise_dbfs=None)
        began = anyio.current_time()
        with anyio.fail_after(5):
            record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
            async with httpx.AsyncClient(timeout=2.0) as client:
                while (await client.get(f"http://127.0.0.1:{port}/healthz")).json()["active_calls"]:
                    await anyio.sleep(0.02)
    assert record.ended_by == "caller"
    assert anyio.current_time() - began < 2.0, "the stop was read during the handshake"


# ============================================================================================
# 5. The idle ladder and a talking bot


async def test_the_idle_ladder_never_hangs_up_while_the_bot_talks(router: ModelRouter) -> None:
    """A caller listening in silence to a long answer is neither prompted nor hung up on.

    The ladder here is the default one scaled down (prompts after 1.0 s and 0.8 s, hang-up
    0.8 s later: 2.6 s of silence); the greeting plays for 4 s, longer than all of it.
    """
    _greeting(router, seconds=4.0)
    handler = HandlerConfig(
        bridge=BridgeConfig(greeting="Greet the caller."),
        idle=IdleLadderConfig(prompt_delays=(1.0, 0.8), hangup_delay=0.8),
    )
    async with serving(create_app(_config(router, handler=handler))) as port:
        caller = CallerSimulator(script=[HangUp(at=4.8)], noise_dbfs=None)
        with anyio.fail_after(15):
            record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
    assert record.ended_by == "caller", f"the bot hung up after {record.ended_at} s"
    assert record.heard_seconds >= 3.9, "the whole greeting was heard"
    log = router.simulator.connections[-1].log
    creates = [e for e in log if e.direction == "received" and e.type == "response.create"]
    assert len(creates) == 1, "no idle prompt while the greeting played"


async def test_a_tool_the_bridge_does_not_know_is_answered_with_an_error(
    router: ModelRouter,
) -> None:
    """The greeting ends in a call of a tool the server does not have: the model is told at once
    (nobody would ever answer it, and the caller would wait in silence), and it goes on."""
    router.use(
        RealtimeSimulator(
            replies=[
                Reply(
                    text="Let me look that up.",
                    duration=0.5,
                    function_call=FunctionCall(name="lookup_order", arguments='{"id": 7}'),
                ),
                Reply(text="Sorry, I cannot look orders up.", duration=0.5),
            ],
            audio_speed=8.0,
        )
    )
    handler = HandlerConfig(idle=IdleLadderConfig(prompt_delays=(2.0, 0.8), hangup_delay=0.8))
    async with serving(create_app(_config(router, handler=handler))) as port:
        caller = CallerSimulator(script=[HangUp(at=2.0)], noise_dbfs=None)
        with anyio.fail_after(15):
            record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
    assert record.ended_by == "caller"
    connection = router.simulator.connections[-1]
    outputs = connection.received("conversation.item.create")
    creates = connection.received("response.create")
    assert [e.event["item"]["output"] for e in outputs] == [
        '{"error": "no tool named \'lookup_order\'"}'
    ]
    assert len(creates) == 2, creates  # the greeting, then the one after the error
    assert outputs[0].time <= creates[1].time
    assert router.simulator.statistics().errors_total == 0


# ============================================================================================
# 6. Secrets echoed back by the model


@pytest.fixture
async def echoing_model() -> AsyncIterator[str]:
    """A Realtime endpoint that quotes the caller's API key back: in an error, in its close."""

    async def echo(transport: WebSocketTransport) -> None:
        request = transport.request
        assert request is not None
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        created = {"type": "session.created", "event_id": "e0", "session": {"id": "s1"}}
        await transport.send(json.dumps(created))
        await transport.receive()  # the session.update
        error = {
            "type": "error",
            "event_id": "e1",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "message": f"Incorrect API key provided: {key}.",
            },
        }
        await transport.send(json.dumps(error))
        await anyio.sleep(0.2)
        await transport.aclose(4000, f"bad key {key}")

    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: serve_websocket(echo, port=0, task_status=task_status)
        )
        yield f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        tg.cancel_scope.cancel()


async def test_secrets_the_model_echoes_are_in_no_log_or_trace(
    echoing_model: str, tmp_path: Path
) -> None:
    traces = tmp_path / "traces"
    args = ["--realtime-url", echoing_model, "--log-level", "debug", "--trace-dir", str(traces)]
    async with ServerProcess.running(args, log_dir=tmp_path / "logs") as server:
        caller = CallerSimulator(script=[Speak(at=0.1, duration=0.3), HangUp(at=3.0)])
        with anyio.fail_after(10):
            record = await caller.call(server.media_url)
        assert record.ended_by == "bot"
        page = (await server.get("/metrics")).text
        log = server.output()
    traced = "\n".join(p.read_text() for p in traces.rglob("*") if p.is_file())
    assert "invalid_api_key" in log and "invalid_api_key" in traced, "the error was recorded"
    assert 'code="invalid_api_key"' in page
    for where, text in (("log", log), ("trace", traced), ("metrics", page)):
        for secret in (API_KEY, API_KEY[:24], API_KEY[-16:]):
            assert secret not in text, f"the key in the {where}"


# ============================================================================================
# 7. The Host header is not trusted


async def test_a_signature_for_another_host_is_refused(router: ModelRouter) -> None:
    config = _config(router, twilio_auth_token=TOKEN, allowed_hosts=frozenset({"voice.example"}))
    async with serving(create_app(config)) as port:
        url = "http://other-app.example/incoming-call"
        form = {"CallSid": "CA" + "4" * 32, "AccountSid": ACCOUNT}
        headers = {
            "Host": "other-app.example",
            "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, form),
        }
        async with httpx.AsyncClient(timeout=5.0) as client:
            answer = await client.post(
                f"http://127.0.0.1:{port}/incoming-call", data=form, headers=headers
            )
        assert answer.status_code == 400
        mine = "http://voice.example/incoming-call"
        headers = {
            "Host": "voice.example",
            "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(mine, form),
        }
        async with httpx.AsyncClient(timeout=5.0) as client:
            answer = await client.post(
                f"http://127.0.0.1:{port}/incoming-call", data=form, headers=headers
            )
        assert answer.status_code == 200, answer.text


# ============================================================================================
# 8. SHA-256 signatures


async def test_a_webhook_signed_with_sha256_is_accepted(router: ModelRouter) -> None:
    config = _config(router, twilio_auth_token=TOKEN)
    async with serving(create_app(config)) as port:
        url = f"http://127.0.0.1:{port}/incoming-call"
        form = {"CallSid": "CA" + "5" * 32, "AccountSid": ACCOUNT}
        signature = RequestValidator(TOKEN).compute_signature(url, form, "HMAC_SHA256")
        headers = {
            "X-Twilio-Signature": signature,
            "X-Twilio-Webhooks-Signature-Settings": "key=sharedkey_1,algorithm=HMAC_SHA256",
        }
        async with httpx.AsyncClient(timeout=5.0) as client:
            answer = await client.post(url, data=form, headers=headers)
            sha1_header = await client.post(
                url, data=form, headers={"X-Twilio-Signature": signature}
            )
    assert answer.status_code == 200, answer.text
    assert sha1_header.status_code == 403, "a SHA-256 signature is not a SHA-1 one"


# ============================================================================================
# 9. Media of another stream, audio floods, and the metrics behind a token


async def _raw_call(port: int, messages: list[str], *, linger: float) -> str:
    """Send *messages* as one stream, read until the server closes or *linger* passes; the
    close reason, if it closed."""
    async with connect_websocket(f"ws://127.0.0.1:{port}/media-stream") as ws:
        for message in messages:
            await ws.send(message)
        with anyio.move_on_after(linger):
            try:
                while True:
                    await ws.receive()
            except TransportClosed as closed:
                return str(closed)
    return ""


async def test_media_of_another_stream_and_audio_floods_are_dropped_and_counted(
    router: ModelRouter,
) -> None:
    sim = _greeting(router)
    async with serving(create_app(_config(router))) as port:
        sid = "MZ" + "6" * 32
        other = [_media("MZ" + "7" * 32, n) for n in range(5)]
        flood = [_media(sid, n) for n in range(400)]  # 8 s of audio at once
        reason = await _raw_call(port, [*_start("CA" + "6" * 32, sid), *other, *flood], linger=3)
        async with httpx.AsyncClient(timeout=2.0) as client:
            page = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert "malformed" in reason, reason  # the flood ended its own call
    appended = sum(
        1
        for event in sim.connections[-1].log
        if event.direction == "received" and event.type == "input_audio_buffer.append"
    )
    assert 0 < appended * FRAME_SECONDS <= 2.0 + 0.5, "no more than the burst was forwarded"
    assert 'voiceguard_bad_messages_total{peer="twilio"}' in page


async def test_the_metrics_need_their_token(router: ModelRouter) -> None:
    async with serving(create_app(_config(router, metrics_token="metrics-secret-0123"))) as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=2.0) as client:
            refused = await client.get(f"{base}/metrics")
            wrong = await client.get(f"{base}/metrics", headers={"Authorization": "Bearer no"})
            page = await client.get(
                f"{base}/metrics", headers={"Authorization": "Bearer metrics-secret-0123"}
            )
            anonymous = (await client.get(f"{base}/healthz")).json()
    assert refused.status_code == 401 and wrong.status_code == 401
    assert page.status_code == 200 and "voiceguard_calls_active" in page.text
    assert anonymous == {"status": "ok"}, "the call counts only to the token's bearer"
