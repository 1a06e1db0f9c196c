"""Winding a call up (what a draining server does to the calls still running at its deadline).

``MediaHandler.wind_up`` (``BridgeCore.wind_up``, ``TurnEngine.wind_up``): the bot says goodbye
at once, the call hangs up once the goodbye played, and by the grace's end at the latest. In
virtual time (trio's MockClock) against the simulated caller and model, over in-memory
transports; no protocol error at the simulated model, no timer left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import trio.testing
import wire

from voiceguard import BridgeConfig, CreateRequest, GuardConfig, HandlerConfig
from voiceguard.middleware import CallGuard
from voiceguard.protocol import StreamStarted
from voiceguard.runtime.handler import CallSummary, MediaHandler
from voiceguard.sim.caller import CallerSimulator, CallRecord, HangUp, Speak
from voiceguard.sim.realtime import FunctionCall, RealtimeSimulator, Reply
from voiceguard.transports import Transport, memory_pair

GOODBYE = "The service restarts: say goodbye."


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def wound_up_call(
    sim: RealtimeSimulator,
    caller: CallerSimulator,
    *,
    at: float | None,
    within: float,
    config: HandlerConfig | None = None,
) -> tuple[CallSummary, CallRecord, float]:
    """One call through a MediaHandler, wound up *at* seconds after it began (None: before it
    runs); also returns the time of the wind-up."""
    phone_caller, phone_bot = memory_pair(latency=0.02, names=("caller", "bot"))

    @contextlib.asynccontextmanager
    async def connect(start: StreamStarted) -> AsyncIterator[Transport]:
        async with sim.connect(latency=0.03) as model:
            yield model

    handler = MediaHandler(phone_bot, connect, config=config)
    summaries: list[CallSummary] = []
    began = anyio.current_time()
    if at is None:
        handler.wind_up(within=within, instructions=GOODBYE)

    async def run_handler() -> None:
        summaries.append(await handler.run())

    async def wind_up(at: float) -> None:
        await anyio.sleep(at)
        handler.wind_up(within=within, instructions=GOODBYE)

    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_handler)
            if at is not None:
                tg.start_soon(wind_up, at)
            record = await caller.run(phone_caller)
    (summary,) = summaries
    stats = sim.statistics()
    assert stats.errors_by_code == {}
    assert stats.connections_open == 0
    assert record.protocol_errors == []
    assert summary.timers is not None and summary.timers.pending == 0
    return summary, record, began + (at or 0.0)


def creates(sim: RealtimeSimulator) -> list[dict[str, Any]]:
    (connection,) = sim.connections
    return [dict(e.event) for e in connection.received("response.create")]


@pytest.mark.anyio
async def test_a_quiet_call_says_goodbye_at_once_and_hangs_up_once_it_played() -> None:
    sim = RealtimeSimulator(
        replies=[Reply(text="Hello!", duration=1.0), Reply(text="Goodbye!", duration=1.5)]
    )
    summary, record, wound = await wound_up_call(
        sim, CallerSimulator(script=[HangUp(at=120.0)]), at=5.0, within=30.0
    )
    assert summary.ended_by == "hang-up: goodbye played"
    goodbye = creates(sim)[-1]
    assert goodbye["response"]["instructions"] == GOODBYE
    assert record.ended_by == "bot"
    assert record.ended_at is not None and record.started_at is not None
    ended = record.started_at + record.ended_at
    # The goodbye goes out at once and takes 1.5 s to play; the hang-up follows its mark.
    assert wound + 1.5 <= ended <= wound + 3.0
    # The goodbye was heard to its end: 1.5 s of audio played after the wind-up.
    after = [f for f in record.heard if record.started_at + f.time >= wound]
    assert sum(len(f.audio) for f in after) >= 8000 * 1.4


@pytest.mark.anyio
async def test_a_goodbye_with_end_call_hangs_up_the_same_way() -> None:
    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="Bye now.", duration=1.0, function_call=FunctionCall(name="end_call")),
        ]
    )
    summary, record, wound = await wound_up_call(
        sim, CallerSimulator(script=[HangUp(at=120.0)]), at=4.0, within=30.0
    )
    assert summary.ended_by == "hang-up: goodbye played"
    assert record.ended_at is not None and record.started_at is not None
    assert record.started_at + record.ended_at <= wound + 3.0


@pytest.mark.anyio
async def test_a_bot_that_talks_on_is_hung_up_at_the_end_of_the_grace() -> None:
    sim = RealtimeSimulator(
        replies=[Reply(text="Hello!", duration=1.0), Reply(text="On and on.", duration=60.0)]
    )
    summary, record, wound = await wound_up_call(
        sim, CallerSimulator(script=[HangUp(at=200.0)]), at=3.0, within=10.0
    )
    assert summary.ended_by == "hang-up: wind-up deadline"
    assert record.ended_at is not None and record.started_at is not None
    assert record.started_at + record.ended_at == pytest.approx(wound + 10.0, abs=0.3)


@pytest.mark.anyio
async def test_the_answer_that_runs_finishes_first_and_nothing_else_starts() -> None:
    # Wound up while the bot answers the caller: the answer is not cut, the goodbye follows
    # it; the caller who talks over the goodbye stops it (a barge-in as ever), and is not
    # answered any more: the call hangs up.
    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="Our hours are nine to five, every day.", duration=3.0),
            Reply(text="Sorry, we have to stop here. Goodbye!", duration=2.0),
            Reply(text="An answer nobody should hear.", duration=2.0),
        ]
    )
    caller = CallerSimulator(
        script=[Speak(at=2.0, duration=1.0), Speak(at=7.2, duration=0.6), HangUp(at=120.0)]
    )
    summary, record, wound = await wound_up_call(
        sim,
        caller,
        at=4.5,
        within=30.0,
        config=HandlerConfig(bridge=BridgeConfig(greeting="Say hello.")),
    )
    assert summary.ended_by == "hang-up: goodbye played"
    labels = [c.get("response", {}).get("instructions") for c in creates(sim)]
    assert labels[-1] == GOODBYE
    assert len(labels) == 3  # the greeting, the answer, the goodbye: nothing after it
    assert len(record.clears) == 1 and record.clears[0] > 7.0  # the goodbye, not the answer
    assert record.started_at + record.clears[0] > wound
    assert record.ended_at is not None and record.ended_at < 9.0


@pytest.mark.anyio
async def test_a_wind_up_before_the_start_takes_effect_at_the_start() -> None:
    sim = RealtimeSimulator(
        replies=[Reply(text="Hello!", duration=1.0), Reply(text="Goodbye!", duration=1.0)]
    )
    summary, record, _ = await wound_up_call(
        sim, CallerSimulator(script=[HangUp(at=100.0)]), at=None, within=20.0
    )
    assert summary.ended_by == "hang-up: goodbye played"
    assert record.ended_at is not None and record.ended_at < 10.0
    assert creates(sim)[-1]["response"]["instructions"] == GOODBYE


def test_the_middleware_guard_winds_up_the_same_way() -> None:
    # CallGuard, the engine behind the middleware (no phone socket watched): the goodbye goes
    # at the next tick; once it is done nothing else starts, and the call ends after the
    # goodbye's audio (the hang-up fallback bounds it, since no mark can say it played).
    guard = CallGuard(GuardConfig(), call_sid="CA1")
    guard.from_model(wire.session_updated(), wire.session_updated(), 0.0)
    guard.wind_up(1.0, within=30.0, instructions=GOODBYE)
    step = guard.on_tick(1.0)
    assert step.send == ({"type": "response.create", "response": {"instructions": GOODBYE}},)
    for event, now in [
        (wire.response_created("resp_g"), 1.1),
        (wire.output_item_added("resp_g", "item_g"), 1.1),
        (wire.audio_delta("resp_g", "item_g", 1000), 1.2),
        (wire.response_done("resp_g"), 1.3),
    ]:
        assert guard.from_model(event, event, now).end_call is None
    decision, held = guard.request_response(CreateRequest(label="bot"), 1.4)
    assert not decision.allowed and held.send == ()  # the bot's own create: refused
    deadline = guard.next_deadline()
    assert deadline is not None and deadline < 1.0 + 30.0
    assert guard.on_tick(deadline).end_call == "hang-up fallback"


@pytest.mark.parametrize("within", [-1.0, float("inf"), float("nan")])
def test_a_grace_that_is_not_a_finite_number_of_seconds_is_refused(within: float) -> None:
    guard = CallGuard(GuardConfig(), call_sid="CA1")
    with pytest.raises(ValueError, match=r"within = .*; allowed: 0 or more seconds"):
        guard.wind_up(0.0, within=within)
