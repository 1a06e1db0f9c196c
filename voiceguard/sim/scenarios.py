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

import math
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final, Literal, final

import anyio

from voiceguard.sim.caller import CallerSimulator, CallRecord, EchoPath, HangUp, Speak
from voiceguard.sim.realtime import (
    ConnectionRecord,
    EmittedError,
    EventFault,
    FunctionCall,
    RealtimeSimulator,
    Reply,
)
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
@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """One thing a correct bridge must (or must not) do in a scenario.

    Attributes:
        kind: ``"must"`` or ``"must_not"``.
        text: The rule, in words (``"cancel the greeting because of its own echo"``).
        holds: Returns True when the bridge behaved correctly in the run.
    """

    kind: Literal["must", "must_not"]
    text: str
    holds: Callable[[ScenarioRun], bool]

    def describe(self) -> str:
        """``"must ..."`` or ``"must not ..."``."""
        return f"{'must' if self.kind == 'must' else 'must not'} {self.text}"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A scripted call (or calls) with the rules a correct bridge follows.

    Attributes:
        name: Short identifier, e.g. ``"cancel-races-done"``.
        title: One line for humans.
        description: What happens and why it is hard.
        make_simulator: Builds a fresh :class:`~voiceguard.sim.realtime.RealtimeSimulator`.
        make_caller: Builds a fresh :class:`~voiceguard.sim.caller.CallerSimulator` for call
            number *n* (0, 1, ...).
        calls: How many calls are made one after the other to the same bridge.
        twilio_latency: One-way latency between the caller and the bridge, in seconds.
        model_latency: One-way latency between the bridge and the model, in seconds. It is
            deliberately not a multiple of 5 ms: then a message from the model and a message
            from Twilio never reach the bridge at the same instant, so the bridge's own tasks
            never race and a run in virtual time is reproducible.
        between_calls: Seconds between the end of one call and the start of the next.
        expectations: The rules.
    """

    name: str
    title: str
    description: str
    make_simulator: Callable[[], RealtimeSimulator]
    make_caller: Callable[[int], CallerSimulator]
    calls: int = 1
    twilio_latency: float = 0.03
    model_latency: float = 0.0251
    between_calls: float = 0.5
    expectations: tuple[Expectation, ...] = ()


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


async def run_scenario(scenario: Scenario, bridge: Bridge) -> ScenarioRun:
    """Play *scenario* against *bridge* over in-memory transports.

    Each call runs the bridge as a task of one scenario-wide task group (like a server handling
    connections), so work a bridge leaves behind a finished call can still hit the next call.
    After the last call, bridges get a grace period to finish, then are cancelled and counted in
    :attr:`ScenarioRun.leftover_tasks`.

    Args:
        scenario: The scenario.
        bridge: The bridge under test.

    Returns:
        The outcome; :meth:`ScenarioRun.violations` lists the rules broken.
    """
    return await _run(scenario, scenario.make_simulator(), bridge)


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


async def _run(scenario: Scenario, simulator: RealtimeSimulator, bridge: Bridge) -> ScenarioRun:
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


# ============================================================================================
# Checks shared by several scenarios


def _no_errors(run: ScenarioRun) -> bool:
    return not run.error_codes(crossed=False)


def _no_error(code: str) -> Callable[[ScenarioRun], bool]:
    def check(run: ScenarioRun) -> bool:
        return code not in run.error_codes(crossed=False)

    return check


def _statuses(connection: ConnectionRecord) -> list[tuple[str, str | None]]:
    out = []
    for e in connection.sent("response.done"):
        response = e.event["response"]
        details = response.get("status_details") or {}
        out.append((str(response["status"]), details.get("reason")))
    return out


def _nothing_left(run: ScenarioRun) -> bool:
    return run.leftover_tasks == 0 and run.simulator.statistics().connections_open == 0


_NOTHING_LEFT: Final = Expectation(
    kind="must_not",
    text="leave a task or a model connection behind after the call",
    holds=_nothing_left,
)


def _first_time(connection: ConnectionRecord, event_type: str) -> float | None:
    sent = connection.sent(event_type)
    return sent[0].time if sent else None


# ============================================================================================
# The scenarios

_GREETING: Final = Reply(text="Hello, thanks for calling. How can I help you today?", duration=3.0)


def _echo_in_first_seconds() -> Scenario:
    def greeting_completed(run: ScenarioRun) -> bool:
        statuses = _statuses(run.connections[0]) if run.connections else []
        return bool(statuses) and statuses[0][0] == "completed"

    def heard_whole_greeting(run: ScenarioRun) -> bool:
        return run.calls[0].heard_seconds >= 2.9

    def no_clear(run: ScenarioRun) -> bool:
        return not run.calls[0].clears

    return Scenario(
        name="echo-in-first-seconds",
        title="the greeting's echo trips the server VAD",
        description=(
            "The line has no echo canceller and a poor echo return loss (6 dB): the bot's own "
            "greeting comes back in the caller's audio 100 ms later and the server VAD reports "
            "speech_started. The caller says nothing."
        ),
        make_simulator=lambda: RealtimeSimulator(replies=[_GREETING], audio_speed=4.0),
        make_caller=lambda _n: CallerSimulator(
            script=[HangUp(at=7.0)], echo=EchoPath(delay=0.1, return_loss_db=6.0), noise_dbfs=-62
        ),
        expectations=(
            Expectation(
                kind="must_not",
                text="let the greeting be cancelled by its own echo",
                holds=greeting_completed,
            ),
            Expectation(kind="must", text="play the whole greeting", holds=heard_whole_greeting),
            Expectation(kind="must_not", text="clear the greeting's playout", holds=no_clear),
            _NOTHING_LEFT,
        ),
    )


def _cancel_races_done() -> Scenario:
    def cleared(run: ScenarioRun) -> bool:
        return bool(run.calls[0].clears)

    return Scenario(
        name="cancel-races-done",
        title="barge-in after response.done, while the answer still plays",
        description=(
            "The model generates a 2.5 s answer four times faster than real time, so "
            "response.done arrives while most of it is still buffered on the phone. The caller "
            "interrupts after hearing 1.5 s. A response.cancel now finds nothing active."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[_GREETING, Reply(text="Our opening hours are nine to five.", duration=2.5)]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="What are your hours?"),
                Speak(after_heard=4.5, duration=1.0, text="Sorry, one more thing"),
                HangUp(at=12.0),
            ]
        ),
        expectations=(
            Expectation(
                kind="must_not",
                text="send response.cancel when no response is active",
                holds=_no_error("response_cancel_not_active"),
            ),
            Expectation(kind="must", text="clear the phone's playout on barge-in", holds=cleared),
            _NOTHING_LEFT,
        ),
    )


def _speech_started_burst() -> Scenario:
    return Scenario(
        name="speech-started-burst",
        title="a burst of speech_started while the bot speaks",
        description=(
            "During a long answer the caller says 'uh', 'um', 'wait' with pauses long enough to "
            "end each VAD turn, and the server duplicates one speech_started: several "
            "speech_started arrive within a second."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(text="Let me explain our plans in detail. " * 4, duration=8.0),
            ],
            faults=[
                EventFault(
                    event_type="input_audio_buffer.speech_started",
                    action="duplicate",
                    occurrences=(2,),
                )
            ],
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="Tell me about your plans"),
                Speak(after_heard=4.5, duration=0.3, text="uh"),
                Speak(after_heard=5.1, duration=0.3, text="um"),
                Speak(after_heard=5.7, duration=0.6, text="wait"),
                HangUp(at=16.0),
            ]
        ),
        expectations=(
            Expectation(
                kind="must_not",
                text="send a second response.cancel for the same response",
                holds=_no_error("response_cancel_not_active"),
            ),
            Expectation(
                kind="must_not",
                text="send response.create while a response is active",
                holds=_no_error("conversation_already_has_active_response"),
            ),
            _NOTHING_LEFT,
        ),
    )


def _hangup_fallback_outlives_call() -> Scenario:
    def second_call_not_cut(run: ScenarioRun) -> bool:
        return len(run.calls) == 2 and run.calls[1].ended_by == "caller"

    def first_call(number: int) -> CallerSimulator:
        if number == 0:
            return CallerSimulator(
                script=[
                    Speak(after_heard=3.0, duration=0.8, text="That's all, bye"),
                    HangUp(after_heard=3.6),
                ],
                seed=1,
            )
        return CallerSimulator(script=[HangUp(at=9.0)], seed=2)

    return Scenario(
        name="hangup-fallback-outlives-call",
        title="a hang-up fallback from the last call fires in the next one",
        description=(
            "The model says goodbye and calls end_call. The caller hangs up before the goodbye "
            "has played, so the bridge's ~6 s hang-up fallback is still pending when the call "
            "ends. The next call starts half a second later and must not be hung up by it."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(
                    text="Thanks for calling, goodbye!",
                    duration=2.0,
                    function_call=FunctionCall(name="end_call"),
                ),
            ]
        ),
        make_caller=first_call,
        calls=2,
        expectations=(
            Expectation(
                kind="must_not",
                text="hang up the next call with the previous call's timer",
                holds=second_call_not_cut,
            ),
            _NOTHING_LEFT,
        ),
    )


def _watchdog_after_goodbye() -> Scenario:
    def nothing_after_goodbye(run: ScenarioRun) -> bool:
        connection = run.connections[0] if run.connections else None
        if connection is None:
            return False
        goodbye = _first_time(connection, "response.function_call_arguments.done")
        if goodbye is None:
            return False
        return not [e for e in connection.received("response.create") if e.time > goodbye] and not [
            e for e in connection.sent("response.created") if e.time > goodbye
        ]

    return Scenario(
        name="watchdog-after-goodbye",
        title="a watchdog or turn-end create after the goodbye started",
        description=(
            "The model says a 3 s goodbye and calls end_call; the caller talks over the goodbye. "
            "The caller's turn ends while the hang-up is pending: neither the turn nor a "
            "watchdog may start a new response."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(
                    text="Alright, have a great day, goodbye!",
                    duration=3.0,
                    function_call=FunctionCall(name="end_call"),
                ),
            ]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="Nothing else, thanks"),
                Speak(after_heard=4.0, duration=0.8, text="Oh and also"),
                HangUp(at=16.0),
            ]
        ),
        expectations=(
            Expectation(
                kind="must_not",
                text="start a response after the end_call function call",
                holds=nothing_after_goodbye,
            ),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


def _watchdog_lost_response() -> Scenario:
    def answered(run: ScenarioRun) -> bool:
        call = run.calls[0]
        if not call.spoke:
            return False
        return call.heard_between(call.spoke[0][1]) >= 1.0

    def one_retry(run: ScenarioRun) -> bool:
        creates = len(run.connections[0].received("response.create")) if run.connections else 0
        auto = (
            run.simulator.statistics().responses_created + run.simulator.statistics().responses_lost
        )
        return creates <= 3 and auto <= 3

    return Scenario(
        name="watchdog-lost-response",
        title="the response to a caller's turn is lost",
        description=(
            "The caller's turn ends but the model never answers (no response.created, no "
            "error). A watchdog should ask again, once."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(lost=True),
                Reply(text="Sorry, yes, we're open.", duration=2.0),
            ]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[Speak(after_heard=3.0, duration=0.8, text="Are you open?"), HangUp(at=12.0)]
        ),
        expectations=(
            Expectation(
                kind="must", text="answer the caller despite the lost response", holds=answered
            ),
            Expectation(kind="must_not", text="send a storm of response.create", holds=one_retry),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


def _truncate_long_buffered_audio() -> Scenario:
    def truncated_to_heard(run: ScenarioRun) -> bool:
        connection = run.connections[0] if run.connections else None
        call = run.calls[0]
        if connection is None or not call.clears:
            return False
        truncated = connection.sent("conversation.item.truncated")
        if not truncated:
            return False
        heard_ms = (call.heard_between(0.0, call.clears[0]) - 3.0) * 1000  # minus the greeting
        end_ms = int(truncated[-1].event["audio_end_ms"])
        return heard_ms - 300 <= end_ms <= heard_ms + 100

    def silent_after_clear(run: ScenarioRun) -> bool:
        call = run.calls[0]
        return bool(call.clears) and call.heard_between(call.clears[0] + 0.1) <= 0.05

    return Scenario(
        name="truncate-long-buffered-audio",
        title="barge-in into a long answer buffered far ahead on the phone",
        description=(
            "The model generates a 20 s answer ten times faster than real time: after 2 s all of "
            "it sits in Twilio's buffer. The caller interrupts after hearing 3 s of it. The "
            "truncate must match what was heard (marks), not what was generated or sent."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[_GREETING, Reply(text="Here is the long story. " * 10, duration=20.0)],
            default_reply=Reply(text="", duration=0.0),
            audio_speed=10.0,
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="Tell me everything"),
                Speak(after_heard=6.0, duration=1.0, text="Stop, stop"),
                HangUp(at=14.0),
            ]
        ),
        expectations=(
            Expectation(
                kind="must",
                text="truncate the answer to the audio the caller heard",
                holds=truncated_to_heard,
            ),
            Expectation(
                kind="must_not",
                text="play the interrupted answer after the barge-in",
                holds=silent_after_clear,
            ),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


def _caller_speaks_first() -> Scenario:
    def answered(run: ScenarioRun) -> bool:
        call = run.calls[0]
        created = run.connections[0].sent("response.created") if run.connections else []
        turn_end = call.started_at + call.spoke[0][1] if call.spoke else math.inf
        after_turn = [e.time - call.started_at for e in created if e.time > turn_end]
        return bool(after_turn) and call.heard_between(after_turn[0]) >= 1.0

    return Scenario(
        name="caller-speaks-first",
        title="the caller talks before and over the greeting",
        description=(
            "The caller starts talking as soon as the call connects, over the greeting. The "
            "greeting and the caller's turn compete for the one active response."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[_GREETING, Reply(text="Sure, let me check that for you.", duration=2.0)]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(at=0.1, duration=1.6, text="Hi, I'm calling about my order"),
                HangUp(at=12.0),
            ]
        ),
        expectations=(
            Expectation(kind="must", text="answer the caller after they stop", holds=answered),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


def _socket_drop_mid_response() -> Scenario:
    def ended(run: ScenarioRun) -> bool:
        call = run.calls[0]
        connection = run.connections[0] if run.connections else None
        if connection is None or not connection.dropped:
            return False
        reconnected = len(run.connections) > 1
        return reconnected or (call.ended_by == "bot" and (call.ended_at or 99.0) < 10.0)

    return Scenario(
        name="socket-drop-mid-response",
        title="the model's socket drops in the middle of an answer",
        description=(
            "After 1 s of the answer's audio the Realtime WebSocket is dropped without a close "
            "frame. The bridge must notice, and either reconnect or end the call; it must not "
            "leave the caller on a dead line."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(text="Let me look that up.", duration=4.0, drop_connection_after=1.0),
            ]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="Where is my order?"),
                HangUp(at=20.0),
            ]
        ),
        expectations=(
            Expectation(kind="must", text="end the call or reconnect after the drop", holds=ended),
            _NOTHING_LEFT,
        ),
    )


def _duplicated_and_delayed_events() -> Scenario:
    def answered(run: ScenarioRun) -> bool:
        call = run.calls[0]
        return bool(call.spoke) and call.heard_between(call.spoke[0][1]) >= 1.0

    return Scenario(
        name="duplicated-and-delayed-events",
        title="response.done arrives twice and response.created late",
        description=(
            "The network duplicates every response.done and delays the second response.created "
            "by 0.4 s (after its first audio). A bridge that counts events instead of tracking "
            "ids gets its response state wrong."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[_GREETING, Reply(text="Yes, that's right.", duration=1.5)],
            faults=[
                EventFault(event_type="response.done", action="duplicate"),
                EventFault(
                    event_type="response.created", action="delay", seconds=0.4, occurrences=(2,)
                ),
            ],
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[Speak(after_heard=3.0, duration=0.8, text="Is that right?"), HangUp(at=10.0)]
        ),
        expectations=(
            Expectation(kind="must", text="answer the caller", holds=answered),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


#: Every scenario, by name.
SCENARIOS: Final[Mapping[str, Scenario]] = {
    s.name: s
    for s in (
        _echo_in_first_seconds(),
        _cancel_races_done(),
        _speech_started_burst(),
        _hangup_fallback_outlives_call(),
        _watchdog_after_goodbye(),
        _watchdog_lost_response(),
        _truncate_long_buffered_audio(),
        _caller_speaks_first(),
        _socket_drop_mid_response(),
        _duplicated_and_delayed_events(),
    )
}
