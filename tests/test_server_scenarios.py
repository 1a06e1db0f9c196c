"""Every scenario of the library through ``voiceguard serve``, over real sockets, in real time.

The server runs as a user starts it (a subprocess); each scenario's scripted model is a
``RealtimeSimulator`` behind the ``ModelRouter``; each call is a ``CallerSimulator`` over a
WebSocket to ``/media-stream``. Every call must meet the scenario's expectations and DESIGN.md's
invariants, checked from the outside: zero protocol errors at the model (1, 2: no cancel or
create the server refuses), no call hung up by another call's timer (3), no interruption of the
bot while the caller was silent (4: echo and noise are not barge-ins), no truncate past what the
caller had heard (5), nothing of an interrupted answer heard after its clear (6), nothing left
open. This is the slowest test module (10-20 s calls played in real time, one after the other):
about two minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from server_harness import ModelRouter, ServerProcess

from voiceguard.demo.measures import cut_by_another_call  # the demo's measures, for each call
from voiceguard.sim import SCENARIOS
from voiceguard.sim.caller import CallRecord
from voiceguard.sim.measures import false_barge_ins, truncations_beyond_heard
from voiceguard.sim.scenarios import ScenarioRun

pytestmark = pytest.mark.anyio


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
    args = ["--realtime-url", router.url]
    async with ServerProcess.running(args, log_dir=tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_through_the_reference_server(
    name: str, server: ServerProcess, router: ModelRouter
) -> None:
    scenario = SCENARIOS[name]
    simulator = router.use(scenario.make_simulator())
    started = anyio.current_time()
    records: list[CallRecord] = []
    with anyio.fail_after(60):
        for number in range(scenario.calls):
            if number:
                await anyio.sleep(scenario.between_calls)
            records.append(await scenario.make_caller(number).call(server.media_url))
        # The server closes the model connection right after the phone's.
        while simulator.statistics().connections_open:
            await anyio.sleep(0.02)
    run = ScenarioRun(
        scenario=scenario,
        simulator=simulator,
        calls=tuple(records),
        leftover_tasks=0,
        started_at=started,
    )
    assert run.violations() == ()
    stats = simulator.statistics()
    assert stats.errors_by_code == {}
    assert stats.connections_total == scenario.calls
    connections = simulator.connections
    assert len(connections) == len(records)
    for record, connection in zip(records, connections, strict=True):
        own = [connection]
        assert record.protocol_errors == []
        assert not cut_by_another_call(record, own)
        assert false_barge_ins(record, own) == 0
        assert truncations_beyond_heard(record, own) == 0
        for cleared_at in record.clears:
            # The clear stops the bot at once; a resumed false interruption may play on later.
            assert record.heard_between(cleared_at + 0.1, cleared_at + 0.3) <= 0.05
