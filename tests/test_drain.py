"""A SIGTERM drains ``voiceguard serve``: no call in progress is cut (a rolling restart).

The server runs as a user runs it (``python -m voiceguard serve``), with one worker and with two;
the callers and the model are the project's simulators on 127.0.0.1, in real time. The SIGTERM
goes to the server's own process only, as Kubernetes and ``docker stop`` send it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from server_harness import ModelRouter, ServerProcess
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from voiceguard.server.drain import DRAIN_GOODBYE
from voiceguard.sim.caller import CallerSimulator, CallRecord, HangUp, Speak
from voiceguard.sim.realtime import RealtimeSimulator, Reply

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


async def wait_draining(server: ServerProcess) -> None:
    with anyio.fail_after(5):
        while True:
            try:
                health = await server.get("/healthz")
            except httpx.RemoteProtocolError:
                # With workers, one without calls ends its drain at once: a request it had
                # just accepted from the shared socket is closed unanswered. Ask again.
                await anyio.sleep(0.05)
                continue
            if health.status_code == 503 and health.json()["status"] == "draining":
                return
            await anyio.sleep(0.05)


async def refused_while_draining(server: ServerProcess) -> int | None:
    """A new media stream during the drain: the close code it gets (asked again, up to three
    times, when a worker that was ending closed the connection without one)."""
    code = None
    for _ in range(3):
        with anyio.fail_after(5):
            try:
                async with connect(server.media_url) as ws:
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.recv()
            except (OSError, InvalidHandshake):
                continue
        code = None if closed.value.rcvd is None else closed.value.rcvd.code
        if code is not None:
            break
    return code


async def exited(server: ServerProcess, timeout: float = 15.0) -> int:
    with anyio.fail_after(timeout):
        while (code := server.process.poll()) is None:
            await anyio.sleep(0.05)
    return code


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_lets_every_call_in_progress_end_on_its_own(
    router: ModelRouter, tmp_path: Path, workers: int
) -> None:
    router.use(
        RealtimeSimulator(
            replies=[Reply(text="Hello!", duration=0.8), Reply(text="Nine to five.", duration=1.0)]
        )
    )
    args = ["--realtime-url", router.url, "--workers", str(workers)]
    async with ServerProcess.running(args, log_dir=tmp_path) as server:
        records: list[CallRecord] = []

        async def one_call() -> None:
            caller = CallerSimulator(script=[Speak(at=1.0, duration=0.8), HangUp(at=6.0)])
            with anyio.fail_after(20):
                records.append(await caller.call(server.media_url))

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(one_call)
            await anyio.sleep(2.0)  # every call up and talking
            os.kill(server.process.pid, signal.SIGTERM)
            await wait_draining(server)
            assert await refused_while_draining(server) == 1012
        code = await exited(server)
        output = server.output()
    assert len(records) == 6
    for record in records:
        # Each call ran to the caller's own hang-up at 6 s: none was cut by the SIGTERM.
        assert record.ended_by == "caller", output
        assert record.ended_at == pytest.approx(6.0, abs=0.5)
        assert record.protocol_errors == []
    assert code == 0, output
    assert "draining: " in output and "drained: no call in progress" in output
    assert "voiceguard serve: stopped" in output
    stats = router.simulator.statistics()
    assert stats.errors_total == 0, stats.errors_by_code
    assert stats.connections_total == 6


async def test_past_the_drain_timeout_a_call_is_wound_up_with_a_goodbye(
    router: ModelRouter, tmp_path: Path
) -> None:
    simulator = router.use(
        RealtimeSimulator(
            replies=[
                Reply(text="Hello!", duration=0.8),
                Reply(text="Sorry, we have to stop here. Goodbye!", duration=1.0),
            ]
        )
    )
    args = ["--realtime-url", router.url, "--drain-timeout", "1"]
    async with ServerProcess.running(args, log_dir=tmp_path) as server:
        caller = CallerSimulator(script=[HangUp(at=60.0)])  # would stay for a minute
        async with anyio.create_task_group() as tg:

            async def terminate() -> None:
                await anyio.sleep(2.0)
                os.kill(server.process.pid, signal.SIGTERM)

            tg.start_soon(terminate)
            with anyio.fail_after(20):
                record = await caller.call(server.media_url)
        code = await exited(server)
        output = server.output()
    # SIGTERM at 2 s, the drain timeout 1 s later: the goodbye, then the hang-up once it played.
    assert record.ended_by == "bot", output
    assert record.ended_at is not None and 3.5 <= record.ended_at <= 8.0
    (connection,) = simulator.connections
    goodbye = connection.received("response.create")[-1].event
    assert goodbye["response"]["instructions"] == DRAIN_GOODBYE
    assert code == 0, output
    assert "winding up 1 call" in output
    assert "hang-up: goodbye played" in output
