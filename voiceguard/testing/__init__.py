"""pytest fixtures for testing your own bot against voiceguard's simulators.

Enable the plugin with ``-p voiceguard.testing`` or ``pytest_plugins = ["voiceguard.testing"]``
in your ``conftest.py`` (it is also registered as a ``pytest11`` entry point when voiceguard is
installed with the ``sim`` extra). The async fixtures need anyio's pytest plugin (installed with
anyio): mark your tests ``@pytest.mark.anyio``.

Fixtures:

``realtime_simulator``
    A fresh :class:`~voiceguard.sim.RealtimeSimulator` with default behaviour. Override this
    fixture in your ``conftest.py`` to script replies or faults.
``realtime_server``
    The ``realtime_simulator`` served over a WebSocket on 127.0.0.1 (a free port) for the test's
    duration; gives a :class:`~voiceguard.sim.SimulatorAddress` (pass
    :attr:`~voiceguard.sim.SimulatorAddress.base_url` to ``AsyncOpenAI(websocket_base_url=...)``
    or :attr:`~voiceguard.sim.SimulatorAddress.url` to your own client).
``make_caller``
    A function that builds :class:`~voiceguard.sim.CallerSimulator` objects with your options;
    call ``await caller.call("ws://127.0.0.1:PORT/media-stream")`` against your bot.
``assert_no_protocol_errors``
    A function you call at the end of a test: fails, listing them, if the simulator sent any
    ``error`` event or still has a connection open.

:mod:`voiceguard.testing.strategies` has hypothesis strategies for fuzzing a bot with messages of
both peers (arbitrary, valid and near-valid) and with whole calls; it needs hypothesis
(``pip install 'voiceguard[testing]'``), which this plugin itself does not import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from voiceguard.sim.caller import CallerSimulator
from voiceguard.sim.realtime import RealtimeSimulator, SimulatorAddress

#: Nothing to import: pytest finds the fixtures by name once the plugin is enabled.
__all__: tuple[str, ...] = ()


@pytest.fixture
def realtime_simulator() -> RealtimeSimulator:
    """A fresh simulator with default behaviour; override the fixture to configure it."""
    return RealtimeSimulator()


@pytest.fixture
async def realtime_server(realtime_simulator: RealtimeSimulator) -> AsyncIterator[SimulatorAddress]:
    """The simulator listening on 127.0.0.1 (a free port) for the duration of the test."""
    async with realtime_simulator.running(host="127.0.0.1", port=0) as address:
        yield address


@pytest.fixture
def make_caller() -> Callable[..., CallerSimulator]:
    """Build :class:`~voiceguard.sim.CallerSimulator` objects: ``make_caller(script=[...])``."""

    def make(**options: Any) -> CallerSimulator:
        return CallerSimulator(**options)

    return make


@pytest.fixture
def assert_no_protocol_errors(realtime_simulator: RealtimeSimulator) -> Callable[[], None]:
    """A check to call at the end of a test: no ``error`` events sent, no connection left open."""

    def check() -> None:
        errors = [
            f"connection {c.index}: {e.code or 'null'}: {e.message}"
            for c in realtime_simulator.connections
            for e in c.errors
        ]
        still_open = [c.index for c in realtime_simulator.connections if c.open]
        problems = errors + [f"connection {i} is still open" for i in still_open]
        if problems:
            pytest.fail("the Realtime simulator saw protocol problems:\n  " + "\n  ".join(problems))

    return check
