"""The scenario library against the real bridges, in virtual time.

The reference MediaHandler passes every scenario with zero protocol errors at the simulated
model; the naive bridge (written like the popular Twilio sample) fails the races; a scenario in
virtual time gives the same event log twice."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio.testing

from voiceguard.demo import NaiveBridge, guarded_bridge
from voiceguard.sim import SCENARIOS, run_scenario
from voiceguard.sim.realtime import RealtimeSimulator, Reply
from voiceguard.sim.scenarios import CROSSING_WINDOW, ScenarioRun

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> Any:
    """Virtual time: each scenario covers 10-20 s of call time in a fraction of a second."""
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


#: Scenarios the naive (twilio-samples style) bridge must fail.
NAIVE_FAILS = {
    "echo-in-first-seconds",
    "cancel-races-done",
    "speech-started-burst",
    "hangup-fallback-outlives-call",
    "watchdog-after-goodbye",
    "watchdog-lost-response",
    "truncate-long-buffered-audio",
    "duplicated-and-delayed-events",
}


def test_the_library_covers_the_seed_failures_and_the_faults() -> None:
    assert set(SCENARIOS) >= NAIVE_FAILS | {"socket-drop-mid-response"}
    for scenario in SCENARIOS.values():
        assert scenario.expectations, scenario.name
        assert scenario.description and scenario.title


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_the_guarded_bridge_passes(name: str) -> None:
    with anyio.fail_after(600):
        run = await run_scenario(SCENARIOS[name], guarded_bridge())
    assert run.violations() == ()
    assert run.leftover_tasks == 0
    assert run.simulator.statistics().errors_by_code == {}
    assert run.simulator.statistics().connections_open == 0


@pytest.mark.parametrize("name", sorted(NAIVE_FAILS))
async def test_the_naive_bridge_is_caught(name: str) -> None:
    with anyio.fail_after(600):
        run = await run_scenario(SCENARIOS[name], NaiveBridge())
    assert run.violations()


@pytest.mark.parametrize(
    "name",
    ["speech-started-burst", "truncate-long-buffered-audio", "hangup-fallback-outlives-call"],
)
async def test_the_same_scenario_gives_the_same_event_log_twice(name: str) -> None:
    scenario = SCENARIOS[name]
    with anyio.fail_after(600):
        first = await run_scenario(scenario, guarded_bridge())
        second = await run_scenario(scenario, guarded_bridge())
    log = first.event_log()
    assert len(log) > 500
    assert log == second.event_log()
    assert first.calls[0].heard_audio() == second.calls[0].heard_audio()


async def test_a_cancel_crossing_response_done_is_told_from_a_late_one() -> None:
    """The scenarios' rules leave out the one race no bridge can close, and only that."""
    sim = RealtimeSimulator(replies=[Reply(text="Hi.", duration=0.5)], audio_speed=10.0)
    async with sim.connect() as model:
        await model.send('{"type": "response.create"}')
        while '"response.done"' not in await model.receive():
            pass
        await anyio.sleep(CROSSING_WINDOW / 2)
        await model.send('{"type": "response.cancel"}')  # crossed it on the wire
        await anyio.sleep(CROSSING_WINDOW * 5)
        await model.send('{"type": "response.cancel"}')  # long after: the bridge's mistake
        await anyio.sleep(0.1)
    run = ScenarioRun(
        scenario=SCENARIOS["cancel-races-done"], simulator=sim, calls=(), leftover_tasks=0
    )
    assert run.error_codes() == ["response_cancel_not_active"] * 2
    assert run.crossed_cancels() == 1
    assert run.error_codes(crossed=False) == ["response_cancel_not_active"]
