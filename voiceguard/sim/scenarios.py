"""Named, reusable call scenarios that provoke the classic races, with what a bridge must do.

A :class:`Scenario` scripts both peers (what the model says and how it misbehaves, what the caller
says and how the line echoes) and states what a correct bridge **must** and **must not** do, as
checks over the outcome. :func:`run_scenario` plays it against your bridge over in-memory
transports; on trio with ``MockClock`` it takes no real time and gives the same event log on every
run::

    run = await run_scenario(SCENARIOS["echo-in-first-seconds"], my_bridge)
    assert run.violations() == ()

A bridge is any ``async def bridge(twilio, connect_model)``: *twilio* is the bridge's end of the
Twilio media stream (a :class:`~voiceguard.transports.base.Transport`), and ``connect_model()``
is an async context manager that opens a connection to the simulated Realtime server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, final

import anyio

from voiceguard.protocol import PHONES, PhoneDialect, phone_dialect
from voiceguard.sim._library import LIBRARY
from voiceguard.sim._scenario import Expectation, Scenario
from voiceguard.sim.caller import CallRecord
from voiceguard.sim.realtime import ConnectionRecord, EmittedError, RealtimeSimulator
from voiceguard.transports import Transport, memory_pair

__all__ = (
    "CROSSING_WINDOW",
    "SCENARIOS",
    "Bridge",
    "ConnectModel",
    "Expectation",
    "Scenario",
    "ScenarioRun",
    "UrlBot",
    "run_scenario",
    "run_scenario_over_websocket",
)

#: Opens a connection to the simulated model, as in ``async with connect_model() as model``.
ConnectModel = Callable[[], AbstractAsyncContextManager[Transport]]
#: The bridge under test; ``await bridge(twilio_transport, connect_model)`` handles one call.
Bridge = Callable[[Transport, ConnectModel], Awaitable[None]]

_GRACE: Final = 8.0
#: Seconds after the server sent ``response.done`` within which a ``response.cancel`` that
#: arrives counts as having crossed it on the wire (the bridge could not have known yet): one-way
#: latency both ways plus the time to read the event, with room for a loaded machine.
CROSSING_WINDOW: Final = 0.2


def _crossed_cancel(connection: ConnectionRecord, error: EmittedError) -> bool:
    if error.code != "response_cancel_not_active":
        return False
    done = [e for e in connection.sent("response.done") if e.time <= error.time]
    if not done or error.time - done[-1].time > CROSSING_WINDOW:
        return False
    # A response the server cancelled itself at speech start (interrupt_response) was never
    # the client's to cancel: a bridge that knows its session sends no cancel then.
    response = done[-1].event.get("response")
    details = response.get("status_details") if isinstance(response, Mapping) else None
    return not (isinstance(details, Mapping) and details.get("reason") == "turn_detected")


@final
class ScenarioRun:
    """The outcome of one :func:`run_scenario`.

    Attributes:
        scenario: The scenario played.
        simulator: The model simulator (its statistics and connection records).
        calls: The caller's record of each call.
        leftover_tasks: Bridge calls still running (and cancelled) after the grace period at
            the end: a bridge that leaves work behind a finished call.
    """

    __slots__ = ("calls", "leftover_tasks", "scenario", "simulator", "started_at")

    def __init__(
        self,
        *,
        scenario: Scenario,
        simulator: RealtimeSimulator,
        calls: tuple[CallRecord, ...],
        leftover_tasks: int,
        started_at: float = 0.0,
    ) -> None:
        #: ``anyio.current_time()`` when the run started (time 0 of :meth:`event_log`).
        self.started_at = started_at
        self.scenario = scenario
        self.simulator = simulator
        self.calls = calls
        self.leftover_tasks = leftover_tasks

    @property
    def connections(self) -> tuple[ConnectionRecord, ...]:
        """The model connections, in order."""
        return self.simulator.connections

    def error_codes(self, *, crossed: bool = True) -> list[str | None]:
        """Codes of the ``error`` events the model simulator sent, over all connections.

        Args:
            crossed: Include the cancels that crossed ``response.done`` on the wire (see
                :meth:`crossed_cancels`); the rules of the scenarios leave them out.
        """
        return [
            e.code
            for c in self.connections
            for e in c.errors
            if crossed or not _crossed_cancel(c, e)
        ]

    def crossed_cancels(self) -> int:
        """``response_cancel_not_active`` errors for cancels that crossed ``response.done``.

        A ``response.cancel`` that reaches the server less than :data:`CROSSING_WINDOW` after
        the server sent ``response.done`` left the bridge before the bridge could know the
        response was over: the one race no client can close (the server calls the error
        harmless). A cancel of a response finished longer ago, or of one the server cancelled
        by itself at the caller's speech (``interrupt_response``), is the bridge's mistake and is
        counted as an error.
        """
        return sum(1 for c in self.connections for e in c.errors if _crossed_cancel(c, e))

    def violations(self) -> tuple[str, ...]:
        """The rules the bridge broke (empty when it behaved)."""
        return tuple(e.describe() for e in self.scenario.expectations if not e.holds(self))

    def event_log(self) -> list[tuple[Any, ...]]:
        """Everything both simulators saw and did, in a comparable form.

        Times are seconds since the run started (rounded to the nanosecond), so two runs of
        the same scenario in virtual time give equal logs.
        """
        log: list[tuple[Any, ...]] = []
        for connection in self.connections:
            log.extend(
                (
                    connection.index,
                    round(e.time - self.started_at, 9),
                    e.direction,
                    e.type,
                    sorted(e.event.items(), key=str),
                )
                for e in connection.log
            )
        for number, call in enumerate(self.calls):
            offset = call.started_at - self.started_at
            log.extend(
                ("call", number, round(offset + t, 9), "sent", event) for t, event in call.sent
            )
            log.extend(
                ("call", number, round(offset + m.time, 9), m.event, m.detail)
                for m in call.received
            )
        return log


async def run_scenario(
    scenario: Scenario, bridge: Bridge, *, provider: str = "openai", phone: str = "twilio"
) -> ScenarioRun:
    """Play *scenario* against *bridge* over in-memory transports.

    Each call runs the bridge as a task of one scenario-wide task group (like a server handling
    connections), so work a bridge leaves behind a finished call can still hit the next call.
    After the last call, bridges get a grace period to finish, then are cancelled and counted in
    :attr:`ScenarioRun.leftover_tasks`.

    Args:
        scenario: The scenario.
        bridge: The bridge under test.
        provider: Whose dialect the scenario's model speaks (:meth:`Scenario.simulator_for`).
        phone: Whose media streams the scenario's callers speak (``"twilio"``, ``"telnyx"``,
            ``"plivo"``, ``"vonage"``): the bridge gets them in that provider's words.

    Returns:
        The outcome; :meth:`ScenarioRun.violations` lists the rules broken.

    Raises:
        ValueError: For an unknown phone provider.
    """
    return await _run(scenario, scenario.simulator_for(provider), bridge, phone_dialect(phone))


#: A bot under test that opens its own model connection by URL, as in
#: ``await bot(twilio, model_base_url)``.
UrlBot = Callable[[Transport, str], Awaitable[None]]


async def run_scenario_over_websocket(scenario: Scenario, bot: UrlBot) -> ScenarioRun:
    """Play *scenario* against a bot that opens its own model connection by URL.

    For bots on the ``openai`` SDK (``AsyncOpenAI(websocket_base_url=model_base_url)``) or any
    WebSocket client: the scenario's model simulator listens on 127.0.0.1 for the run, the
    Twilio side stays in memory. It runs in real time (sockets need a real event loop: asyncio).

    Args:
        scenario: The scenario.
        bot: ``async def bot(twilio, model_base_url)`` handling one call; *model_base_url* is
            ``ws://127.0.0.1:PORT/v1``.

    Returns:
        The outcome, as :func:`run_scenario` gives it.
    """
    simulator = scenario.make_simulator()
    async with simulator.running() as address:

        async def bridge(twilio: Transport, _connect_model: ConnectModel) -> None:
            await bot(twilio, address.base_url)

        return await _run(scenario, simulator, bridge)


async def _run(
    scenario: Scenario,
    simulator: RealtimeSimulator,
    bridge: Bridge,
    phone: PhoneDialect = PHONES["twilio"],
) -> ScenarioRun:
    started_at = anyio.current_time()
    records: list[CallRecord] = []
    running = 0

    def connect_model() -> AbstractAsyncContextManager[Transport]:
        return simulator.connect(latency=scenario.model_latency)

    async def one_call(bot_end: Transport) -> None:
        nonlocal running
        running += 1
        try:
            await bridge(bot_end, connect_model)
        finally:
            running -= 1

    leftover = 0
    async with anyio.create_task_group() as tg:
        for number in range(scenario.calls):
            if number:
                await anyio.sleep(scenario.between_calls)
            caller = scenario.make_caller(number)
            caller.phone = phone
            caller_end, bot_end = memory_pair(
                latency=scenario.twilio_latency, names=("caller", "bot")
            )
            tg.start_soon(one_call, bot_end)
            records.append(await caller.run(caller_end))
        with anyio.move_on_after(_GRACE):
            while running:
                await anyio.sleep(0.05)
        leftover = running
        tg.cancel_scope.cancel()
    return ScenarioRun(
        scenario=scenario,
        simulator=simulator,
        calls=tuple(records),
        leftover_tasks=leftover,
        started_at=started_at,
    )


#: Every scenario, by name.
SCENARIOS: Final[Mapping[str, Scenario]] = {s.name: s for s in LIBRARY}
