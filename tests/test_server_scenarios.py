"""Every scenario of the library through ``voiceguard serve``, over real sockets, in real time.

The server runs as a user starts it (a subprocess); each scenario's scripted model is a
``RealtimeSimulator`` behind the ``ModelRouter``; its callers dial ``/media-stream`` as
``voiceguard call --scenario NAME --check`` dials them (the command's parser, calls and report),
and what the command judged must hold. Every call must meet the scenario's expectations and the
architecture page's invariants, checked from the outside: zero protocol errors at the model (1, 2:
no cancel or create the server refuses), no call hung up by another call's timer (3), no
interruption of the bot while the caller was silent (4: echo and noise are not barge-ins), no
truncate past what the caller had heard (5), nothing of an interrupted answer heard after its clear
(6), nothing left open. The library runs once per model provider (OpenAI, Azure OpenAI, xAI:
the server started with ``--model-provider``, the simulator speaking that provider's dialect:
its path, its key header, its session shape) and once per phone provider (Telnyx, Plivo,
Vonage: the server started with ``--phone``, the callers speaking that provider's media
streams; Vonage's at 8 kHz, two scenarios at 16 kHz in ``test_vonage.py``). This is
the slowest test module (10-20 s calls played in real time, one after the other): about two
minutes per pair.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import pytest
from server_harness import (
    API_KEY,
    ModelRouter,
    ServerProcess,
    check_scenario_run,
    play_scenario,
)

from voiceguard.protocol import PCMU, PHONES, PROVIDERS, SessionUpdated, parse_realtime_event
from voiceguard.sim import SCENARIOS

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn); so do its tests."""
    return "asyncio"


#: The model providers, each with Twilio; the other phone providers, each with OpenAI.
SIDES: Final = (
    *((provider, "twilio") for provider in sorted(PROVIDERS)),
    *(("openai", phone) for phone in sorted(PHONES) if phone != "twilio"),
)


@pytest.fixture(scope="module", params=SIDES, ids="-".join)
def sides(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def router(sides: tuple[str, str]) -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running(sides[0]) as running:
        yield running


@pytest.fixture(scope="module")
async def server(
    router: ModelRouter, sides: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    provider = router.provider
    args = ["--model-provider", provider.name, "--realtime-url", router.url, "--phone", sides[1]]
    env = {provider.key_variable: API_KEY}
    log_dir = tmp_path_factory.mktemp(f"serve-{provider.name}-{sides[1]}")
    async with ServerProcess.running(args, log_dir=log_dir, env=env) as running:
        yield running


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_through_the_reference_server(
    name: str, server: ServerProcess, router: ModelRouter, sides: tuple[str, str]
) -> None:
    run = await play_scenario(SCENARIOS[name], server.media_url, router, phone=sides[1])
    check_scenario_run(run)
    for request in router.requests:  # each connection signed in as the provider takes it
        headers = request.headers
        if router.provider.key_header == "api-key":
            assert headers.get("api-key") == API_KEY
            assert "authorization" not in headers
        else:
            assert headers.get("authorization") == f"Bearer {API_KEY}"
    for connection in router.simulator.connections:
        assert connection.provider == router.provider.name
        # The session took voiceguard's turn control in the provider's shape: the server
        # reports speech and never cancels or creates a response by itself.
        updated = parse_realtime_event(connection.sent("session.updated")[-1].event)
        assert isinstance(updated, SessionUpdated)
        assert updated.turn_detection is not None
        assert not updated.turn_detection.create_response
        assert not updated.turn_detection.interrupt_response
        assert updated.input_format == updated.output_format == PCMU
