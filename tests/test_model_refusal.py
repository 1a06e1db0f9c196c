"""A model endpoint that refuses the session: one ERROR line saying what to change, the call ends
cleanly with the apology, and the other calls never notice.

The endpoints here answer as OpenAI's does (public reports of the retired beta shape,
2026-05-12): the WebSocket is accepted, the first event is an ``error`` where ``session.created``
belongs, then the socket is closed with 4000. The reference server runs in this process over real
sockets on 127.0.0.1; the caller is the project's simulator.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import anyio
import httpx
import pytest
from server_harness import API_KEY, ServerProcess

from voiceguard.runtime._phone_in import default_apology
from voiceguard.server import ServerConfig, create_app, serving
from voiceguard.sim.caller import CallerSimulator, HangUp
from voiceguard.transports import TransportClosed
from voiceguard.transports.websocket import WebSocketTransport, serve_websocket

pytestmark = pytest.mark.anyio

BETA_RETIRED = {
    "type": "invalid_request_error",
    "code": "beta_api_shape_disabled",
    "message": (
        "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
    ),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _refusing(error: dict[str, str]) -> Callable[[WebSocketTransport], Awaitable[None]]:
    async def refuse(transport: WebSocketTransport) -> None:
        await transport.send(json.dumps({"type": "error", "event_id": "e0", "error": error}))
        await anyio.sleep(0.1)
        await transport.aclose(4000, error["code"])

    return refuse


@pytest.fixture
async def retired_endpoint() -> AsyncIterator[str]:
    async with anyio.create_task_group() as tg:
        handler = _refusing(BETA_RETIRED)
        port = await tg.start(
            lambda task_status: serve_websocket(handler, port=0, task_status=task_status)
        )
        yield f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        tg.cancel_scope.cancel()


async def test_a_refused_session_is_one_clear_line_and_the_apology(
    retired_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = ServerConfig(realtime_url=retired_endpoint, api_key=API_KEY)
    with caplog.at_level(logging.INFO, logger="voiceguard"):
        async with serving(create_app(config)) as port:
            caller = CallerSimulator(script=[HangUp(at=8.0)], noise_dbfs=None)
            with anyio.fail_after(10):
                record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
            async with httpx.AsyncClient(timeout=5.0) as client:
                with anyio.fail_after(5):
                    while (await client.get(f"http://127.0.0.1:{port}/healthz")).json()[
                        "active_calls"
                    ]:
                        await anyio.sleep(0.05)
                page = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "the model refused the session: beta_api_shape_disabled: The Realtime Beta API is no "
        "longer supported. Please use /v1/realtime for the GA API. -- the endpoint no longer "
        "speaks the retired Realtime beta protocol, and voiceguard speaks the GA one: connect to "
        "a GA endpoint (wss://api.openai.com/v1/realtime?model=...) without the OpenAI-Beta header"
    ]
    assert getattr(errors[0], "call_sid", None) == record.call_sid
    assert record.ended_by == "bot"
    assert record.heard_seconds == pytest.approx(len(default_apology()) / 8000, abs=0.1)
    assert 'voiceguard_calls_ended_total{reason="model refused the session"} 1.0' in page
    assert 'code="beta_api_shape_disabled"' in page


async def test_an_error_inside_a_running_call_is_a_warning_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only the first event can refuse a session: a later error is the model's news."""

    async def model(transport: WebSocketTransport) -> None:
        created = {"type": "session.created", "event_id": "e0", "session": {"id": "s1"}}
        await transport.send(json.dumps(created))
        await transport.receive()  # the session.update
        error = {"type": "invalid_request_error", "code": "unknown_parameter", "message": "no"}
        await transport.send(json.dumps({"type": "error", "event_id": "e1", "error": error}))
        with anyio.move_on_after(10), suppress(TransportClosed):
            while True:
                await transport.receive()

    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: serve_websocket(model, port=0, task_status=task_status)
        )
        config = ServerConfig(
            realtime_url=f"ws://127.0.0.1:{port}/v1/realtime?model=m", api_key=API_KEY
        )
        with caplog.at_level(logging.INFO, logger="voiceguard"):
            async with serving(create_app(config)) as server_port:
                caller = CallerSimulator(script=[HangUp(at=1.5)], noise_dbfs=None)
                with anyio.fail_after(10):
                    record = await caller.call(f"ws://127.0.0.1:{server_port}/media-stream")
        tg.cancel_scope.cancel()
    assert record.ended_by == "caller"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("model error unknown_parameter: no" in r.getMessage() for r in caplog.records)


async def test_realtime_beta_is_deprecated_and_sends_no_beta_header(tmp_path: Path) -> None:
    """OpenAI retired the beta shape: the option stays one release, ignored, with a warning."""
    headers: list[dict[str, str]] = []

    async def model(transport: WebSocketTransport) -> None:
        assert transport.request is not None
        headers.append({k.lower(): v for k, v in transport.request.headers.items()})
        await _refusing(BETA_RETIRED)(transport)

    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: serve_websocket(model, port=0, task_status=task_status)
        )
        url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        with pytest.warns(DeprecationWarning, match="retired the Realtime beta protocol"):
            config = ServerConfig(realtime_url=url, api_key=API_KEY, realtime_beta=True)
        async with serving(create_app(config)) as server_port:
            caller = CallerSimulator(script=[HangUp(at=6.0)], noise_dbfs=None)
            with anyio.fail_after(10):
                record = await caller.call(f"ws://127.0.0.1:{server_port}/media-stream")
        args = ["--realtime-url", url, "--realtime-beta"]
        async with ServerProcess.running(args, log_dir=tmp_path) as server:
            banner = server.output()
        tg.cancel_scope.cancel()
    assert record.ended_by == "bot"
    assert headers and all("openai-beta" not in h for h in headers)
    assert "--realtime-beta is deprecated and ignored: OpenAI retired the Realtime beta" in banner
