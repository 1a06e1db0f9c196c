"""Every scenario of the library through ``voiceguard serve``, over real sockets, in real time.

The server runs as a user starts it (a subprocess); each scenario's scripted model is a
``RealtimeSimulator`` behind the ``ModelRouter``; its callers dial ``/media-stream`` as
``voiceguard call --scenario NAME --check`` dials them (the command's parser, calls and report),
and what the command judged must hold. Every call must meet the scenario's expectations and the
architecture page's invariants, checked from the outside: zero protocol errors at the model (1, 2:
no cancel or create the server refuses), no call hung up by another call's timer (3), no
interruption of the bot while the caller was silent (4: echo and noise are not barge-ins), no
truncate past what the caller had heard (5), nothing of an interrupted answer heard after its clear
(6), nothing left open. This is the slowest test module (10-20 s calls played in real time, one
after the other): about two minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from server_harness import ModelRouter, ServerProcess, check_scenario_run, play_scenario

from voiceguard.sim import SCENARIOS

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
    check_scenario_run(await play_scenario(SCENARIOS[name], server.media_url, router))
