"""The guarded sample bot (examples/twilio_sample_guarded.py) served as its user serves it.

Its own Starlette app runs under uvicorn on 127.0.0.1, opening its own model connection with
``websockets.connect`` to a ``RealtimeSimulator`` behind the ``ModelRouter``; its callers dial
its ``/media-stream`` as ``voiceguard call --scenario NAME --check`` dials them. Every scenario
of the library must pass as it does through the reference server
(tests/test_server_scenarios.py), with the same checks from the outside. Real time: about two
minutes.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from server_harness import ModelRouter, check_scenario_run, play_scenario

from voiceguard.server import serving
from voiceguard.sim import SCENARIOS

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "twilio_sample_guarded.py"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The app runs on asyncio (uvicorn); so do its tests."""
    return "asyncio"


@pytest.fixture(scope="module")
def sample() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("twilio_sample_guarded", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


@pytest.fixture(scope="module")
async def media_url(sample: ModuleType, router: ModelRouter) -> AsyncIterator[str]:
    # As its environment would say: the model's URL, and a key (the simulator asks for one).
    sample.OPENAI_URL = router.url  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "sk-test")
        async with serving(sample.app) as port:
            yield f"ws://127.0.0.1:{port}/media-stream"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_through_the_guarded_sample_over_real_sockets(
    name: str, media_url: str, router: ModelRouter
) -> None:
    check_scenario_run(await play_scenario(SCENARIOS[name], media_url, router))
