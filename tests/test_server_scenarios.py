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
streams; Vonage's at 8 kHz, and two scenarios at 16 kHz). This is
the slowest test module (10-20 s calls played in real time): each scenario gets a server and a
model of its own, and six play at once, so a pair takes under a minute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio
import pytest
from server_harness import (
    API_KEY,
    ModelRouter,
    ServerProcess,
    check_scenario_run,
    play_scenario,
)

from voiceguard.protocol import (
    PCMU,
    PHONES,
    PROVIDERS,
    PhoneDialect,
    SessionUpdated,
    parse_realtime_event,
    vonage_dialect,
)
from voiceguard.sim import SCENARIOS
from voiceguard.sim.scenarios import ScenarioRun

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
#: Scenarios played at once, each through a server and a model of its own.
AT_ONCE: Final = 6


@dataclass(frozen=True, slots=True)
class Played:
    """One scenario through its own server: the run and the model's requests, or what failed."""

    run: ScenarioRun | None = None
    router: ModelRouter | None = None
    failure: BaseException | None = None


async def _play(
    name: str,
    sides: tuple[str, str | PhoneDialect],
    log_dir: Path,
    limiter: anyio.CapacityLimiter,
) -> Played:
    provider, phone = sides
    async with limiter:
        try:
            async with ModelRouter.running(provider) as router:
                model = router.provider
                args = ["--model-provider", model.name, "--realtime-url", router.url]
                env = {model.key_variable: API_KEY}
                args += ["--phone", phone if isinstance(phone, str) else phone.name]
                async with ServerProcess.running(args, log_dir=log_dir / name, env=env) as server:
                    run = await play_scenario(
                        SCENARIOS[name], server.media_url, router, phone=phone
                    )
                    return Played(run=run, router=router)
        except Exception as exc:  # reported by the scenario's own test
            return Played(failure=exc)


def _checked(outcome: Played) -> tuple[ScenarioRun, ModelRouter]:
    """The run of a scenario that played; what failed, raised in its own test."""
    if outcome.failure is not None:
        raise outcome.failure
    assert outcome.run is not None and outcome.router is not None
    return outcome.run, outcome.router


async def _play_all(
    names: Sequence[str], sides: tuple[str, str | PhoneDialect], log_dir: Path
) -> Mapping[str, Played]:
    limiter = anyio.CapacityLimiter(AT_ONCE)
    results: dict[str, Played] = {}

    async def one(name: str) -> None:
        results[name] = await _play(name, sides, log_dir, limiter)

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(one, name)
    return results


@pytest.fixture(scope="module", params=SIDES, ids="-".join)
async def played(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Mapping[str, Played]:
    """Every scenario of the library through ``voiceguard serve`` for one pair of sides,
    :data:`AT_ONCE` at a time (the calls are real time and mostly wait: played one after the
    other they took two minutes a pair)."""
    sides: tuple[str, str] = request.param
    log_dir = tmp_path_factory.mktemp("serve-" + "-".join(sides))
    return await _play_all(sorted(SCENARIOS), sides, log_dir)


#: Played with Vonage's caller at 16 kHz too (the audio resampled both ways): a barge-in over
#: buffered audio (the heard position from notifies) and echo in the first seconds.
WIDEBAND: Final = ("echo-in-first-seconds", "truncate-long-buffered-audio")


@pytest.fixture(scope="module")
async def wideband(tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, Played]:
    log_dir = tmp_path_factory.mktemp("serve-vonage-16k")
    return await _play_all(WIDEBAND, ("openai", vonage_dialect(caller_rate=16000)), log_dir)


@pytest.mark.parametrize("name", WIDEBAND)
async def test_scenarios_with_a_vonage_caller_at_16khz(
    name: str, wideband: Mapping[str, Played]
) -> None:
    check_scenario_run(_checked(wideband[name])[0])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_through_the_reference_server(
    name: str, played: Mapping[str, Played]
) -> None:
    run, router = _checked(played[name])
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
