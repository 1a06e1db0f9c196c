"""The ``voiceguard.testing`` pytest plugin, used the way a user's test suite uses it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import anyio
import pytest

from voiceguard.protocol import (
    ResponseDone,
    SessionCreated,
    dumps,
    parse_realtime_event,
    response_cancel,
    response_create,
)
from voiceguard.sim import CallerSimulator, HangUp, RealtimeSimulator, Reply, SimulatorAddress
from voiceguard.transports.websocket import connect_websocket

# Until the pytest11 entry point is installed, enable the plugin here (registering it twice fails).
if not any(ep.value == "voiceguard.testing" for ep in entry_points(group="pytest11")):
    pytest_plugins = ("voiceguard.testing",)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def realtime_simulator() -> RealtimeSimulator:
    """Overridden as a user would: a scripted reply, generated fast."""
    return RealtimeSimulator(replies=[Reply(text="Hi!", duration=0.3)], audio_speed=20.0)


@pytest.mark.anyio
async def test_realtime_server_fixture_serves_the_configured_simulator(
    realtime_server: SimulatorAddress,
    realtime_simulator: RealtimeSimulator,
    assert_no_protocol_errors: Callable[[], None],
) -> None:
    headers = {"Authorization": "Bearer test"}
    with anyio.fail_after(5):
        async with connect_websocket(realtime_server.url, headers=headers) as ws:
            assert isinstance(parse_realtime_event(await ws.receive()), SessionCreated)
            await ws.send(dumps(response_create()))
            while not isinstance(parse_realtime_event(await ws.receive()), ResponseDone):
                pass
        while realtime_simulator.statistics().connections_open:
            await anyio.sleep(0.01)
    assert_no_protocol_errors()
    assert realtime_simulator.statistics().responses_completed == 1


@pytest.mark.anyio
async def test_assert_no_protocol_errors_reports_them(
    realtime_server: SimulatorAddress,
    realtime_simulator: RealtimeSimulator,
    assert_no_protocol_errors: Callable[[], None],
) -> None:
    with anyio.fail_after(5):
        async with connect_websocket(
            realtime_server.url, headers={"Authorization": "Bearer t"}
        ) as ws:
            await ws.receive()
            await ws.send(dumps(response_cancel()))
            await ws.receive()
        while realtime_simulator.statistics().connections_open:
            await anyio.sleep(0.01)
    with pytest.raises(pytest.fail.Exception, match="response_cancel_not_active"):
        assert_no_protocol_errors()


def test_make_caller_builds_callers(make_caller: Callable[..., CallerSimulator]) -> None:
    caller = make_caller(script=[HangUp(at=1.0)])
    assert caller.script == (HangUp(at=1.0),)


@pytest.mark.realtime
def test_the_docs_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "sim_test_your_bot.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("OK")
    assert "errors: {}" in done.stdout
