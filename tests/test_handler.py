"""MediaHandler end to end, in virtual time: a simulated caller, the handler, the simulated model.

Every call runs over in-memory transports on trio's MockClock, so a call of several seconds takes
a fraction of a second and gives the same result every run. After every call: zero protocol errors
at the simulated model, zero messages the simulated Twilio would refuse, no connection left open,
no timer left pending.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio.testing

from voiceguard import (
    Action,
    BridgeConfig,
    Decision,
    DecisionSink,
    HandlerConfig,
    IdleLadderConfig,
    MaxCallDurationConfig,
    Verdict,
)
from voiceguard.observe.trace import TraceRecorder, load_trace
from voiceguard.protocol import StreamStarted, dumps
from voiceguard.runtime.handler import CallSummary, MediaHandler
from voiceguard.sim.caller import CallerSimulator, CallRecord, EchoPath, HangUp, Speak
from voiceguard.sim.realtime import FunctionCall, RealtimeSimulator, Reply
from voiceguard.transports import Transport, TransportClosed, memory_pair


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def call(
    sim: RealtimeSimulator,
    caller: CallerSimulator,
    *,
    config: HandlerConfig | None = None,
    before_start: Sequence[str] = (),
    trace: TraceRecorder | None = None,
    on_decision: DecisionSink | None = None,
) -> tuple[CallSummary, CallRecord]:
    """One call through a MediaHandler; both peers simulated, 20-30 ms of latency each way."""
    phone_caller, phone_bot = memory_pair(latency=0.02, names=("caller", "bot"))

    @contextlib.asynccontextmanager
    async def connect(start: StreamStarted) -> AsyncIterator[Transport]:
        async with sim.connect(latency=0.03) as model:
            yield model

    handler = MediaHandler(phone_bot, connect, config=config, trace=trace, on_decision=on_decision)
    summaries: list[CallSummary] = []

    async def run_handler() -> None:
        summaries.append(await handler.run())

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_handler)
            for text in before_start:
                await phone_caller.send(text)
            record = await caller.run(phone_caller)
    (summary,) = summaries
    stats = sim.statistics()
    assert stats.errors_by_code == {}, "the guarded bridge caused protocol errors"
    assert stats.connections_open == 0, "a model connection was left open"
    assert record.protocol_errors == [], "Twilio would have refused messages"
    assert summary.timers is not None
    assert summary.timers.pending == 0, "a timer outlived its call"
    return summary, record


@pytest.mark.anyio
async def test_greeting_then_a_caller_turn_is_answered() -> None:
    replies = [Reply(text="Hello! How can I help you today?"), Reply(text="Sure, one moment.")]
    sim = RealtimeSimulator(replies=replies)
    caller = CallerSimulator(script=[Speak(at=3.5, duration=1.0), HangUp(at=14.0)])
    summary, record = await call(sim, caller)
    assert summary.ended_by == "twilio stop"
    assert summary.state is not None
    assert summary.state.responses_created == 2
    assert summary.cancels is not None and summary.cancels.total == 0
    assert record.heard_seconds == pytest.approx(
        sum(reply.audio_seconds() for reply in replies), abs=0.25
    )
    assert sim.statistics().responses_completed == 2


def barged_in_answer() -> tuple[RealtimeSimulator, CallerSimulator]:
    """A greeting, a question, a long answer the caller talks over, a short reply."""
    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="A long explanation that goes on and on.", duration=8.0),
            Reply(text="Of course.", duration=1.0),
        ]
    )
    caller = CallerSimulator(
        script=[
            Speak(at=2.0, duration=0.8),  # asks a question
            Speak(after_heard=1.5, duration=1.5, level_dbfs=-15.0),  # talks over the answer
            HangUp(at=16.0),
        ]
    )
    return sim, caller


@pytest.mark.anyio
async def test_barge_in_stops_the_bot_cancels_and_truncates_to_what_was_heard() -> None:
    sim, caller = barged_in_answer()
    summary, record = await call(sim, caller)
    assert record.clears, "the phone's buffer was cleared"
    assert summary.state is not None
    assert summary.state.cancels_sent == 1
    assert summary.state.truncates_sent == 1
    assert sim.statistics().responses_cancelled == 1
    # Of the 8 s answer the caller heard about half a second before the bot stopped.
    assert record.heard_seconds < 1.0 + 8.0


@pytest.mark.anyio
async def test_on_decision_sees_every_decision_the_trace_records(tmp_path: Path) -> None:
    sim, caller = barged_in_answer()
    seen: list[Decision] = []
    recorder = TraceRecorder(tmp_path)
    await call(sim, caller, trace=recorder, on_decision=seen.append)
    made = [(d.action, d.verdict) for d in seen]
    assert (Action.BARGE_IN, Verdict.ALLOW) in made
    assert (Action.CANCEL, Verdict.ALLOW) in made
    assert recorder.path is not None
    traced = load_trace(recorder.path).decisions()
    assert [(d["action"], d["verdict"], d["reason"]) for d in traced] == [
        (d.action.value, d.verdict.value, d.reason.value) for d in seen
    ]


@pytest.mark.anyio
async def test_echo_of_the_greeting_is_no_barge_in() -> None:
    sim = RealtimeSimulator(replies=[Reply(text="Hello, thanks for calling!", duration=4.0)])
    caller = CallerSimulator(script=[HangUp(at=8.0)], echo=EchoPath(delay=0.15, return_loss_db=8.0))
    summary, record = await call(sim, caller)
    # The echo path is not known yet when the echo first trips the VAD: the bot may pause once
    # to listen, and plays on at once when the energy ends with its audio.
    assert len(record.clears) <= 1, "the bot cut itself off on its own echo"
    for cleared in record.clears:
        assert record.heard_between(cleared, cleared + 1.0) > 0, "and resumed"
    assert summary.state is not None and summary.state.cancels_sent == 0
    assert record.heard_seconds == pytest.approx(4.0, abs=0.25)


@pytest.mark.anyio
async def test_end_call_hangs_up_after_the_goodbye_played() -> None:
    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="Goodbye!", duration=1.5, function_call=FunctionCall(name="end_call")),
        ]
    )
    caller = CallerSimulator(script=[Speak(at=2.0, duration=0.6), HangUp(at=30.0)])
    summary, record = await call(sim, caller)
    assert summary.ended_by == "hang-up: goodbye played"
    assert record.ended_by == "bot"
    assert record.heard_seconds == pytest.approx(2.5, abs=0.25), "the whole goodbye was heard"


@pytest.mark.anyio
async def test_model_dropping_mid_response_ends_the_call_cleanly() -> None:
    sim = RealtimeSimulator(
        replies=[Reply(text="Hello there!", duration=3.0, drop_connection_after=1.0)]
    )
    caller = CallerSimulator(script=[HangUp(at=10.0)])
    summary, record = await call(sim, caller)
    assert summary.ended_by.startswith("model closed")
    assert record.ended_by == "bot"


@pytest.mark.anyio
async def test_bad_messages_from_the_phone_are_counted_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = RealtimeSimulator(replies=[Reply(text="Hello!", duration=1.0)])
    caller = CallerSimulator(script=[HangUp(at=4.0)])
    with caplog.at_level(logging.WARNING, logger="voiceguard.handler"):
        summary, _ = await call(
            sim,
            caller,
            before_start=[
                "not json",
                '{"event": "media", "streamSid": "MZ1", "media": {"payload": "////"}}',
                '{"event": "something_new"}',
            ],
        )
    assert summary.ended_by == "twilio stop"
    assert summary.bad_messages == {"twilio": 2}
    assert any("not JSON" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_no_start_means_no_model_session() -> None:
    sim = RealtimeSimulator()
    phone_caller, phone_bot = memory_pair(names=("caller", "bot"))

    @contextlib.asynccontextmanager
    async def connect(start: StreamStarted) -> AsyncIterator[Transport]:
        async with sim.connect() as model:
            yield model

    handler = MediaHandler(
        phone_bot, connect, config=HandlerConfig(start_timeout=2.0, bridge=BridgeConfig())
    )
    with anyio.fail_after(10):
        summary = await handler.run()
    assert summary.ended_by == "no start within 2 s"
    assert sim.statistics().connections_total == 0
    await phone_caller.aclose()


@pytest.mark.realtime
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_short_call_in_real_time_on_asyncio(anyio_backend: str) -> None:
    sim = RealtimeSimulator(replies=[Reply(text="Hi!", duration=0.6)], audio_speed=8.0)
    caller = CallerSimulator(script=[HangUp(at=1.5)])
    summary, record = await call(sim, caller)
    assert summary.ended_by == "twilio stop"
    assert record.heard_seconds == pytest.approx(0.6, abs=0.25)


@pytest.mark.anyio
async def test_a_silent_caller_is_prompted_twice_then_hung_up() -> None:
    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="Are you still there?", duration=1.0),
            Reply(text="Hello? Are you there?", duration=1.0),
        ]
    )
    caller = CallerSimulator(script=[HangUp(at=60.0)])  # says nothing
    config = HandlerConfig(
        idle=IdleLadderConfig(prompt_delays=(4.0, 4.0), hangup_delay=4.0),
    )
    summary, record = await call(sim, caller, config=config)
    assert summary.ended_by == "hang-up: caller silent"
    assert record.ended_by == "bot"
    assert sim.statistics().responses_created == 3  # the greeting and two prompts
    assert record.ended_at is not None
    # Greeting ~1.3 s, then three rungs of 4 s, each counted from the end of the bot's audio.
    assert 13.0 <= record.ended_at <= 16.0


@pytest.mark.anyio
async def test_the_time_limit_says_goodbye_and_the_hard_limit_ends_the_call() -> None:
    polite = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(
                text="Sorry, we are out of time. Bye!", function_call=FunctionCall(name="end_call")
            ),
        ]
    )
    limits = MaxCallDurationConfig(limit=5.0, hard_limit=12.0)
    summary, record = await call(
        polite,
        CallerSimulator(script=[HangUp(at=60.0)]),
        config=HandlerConfig(max_duration=limits),
    )
    assert summary.ended_by == "hang-up: goodbye played"
    assert record.ended_at is not None and record.ended_at < 12.0

    stubborn = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="Let me go on and on.", duration=2.0),
        ]
    )
    summary, record = await call(
        stubborn,
        CallerSimulator(script=[HangUp(at=60.0)]),
        config=HandlerConfig(max_duration=limits),
    )
    assert summary.ended_by == "hang-up: maximum call duration"
    assert record.ended_at == pytest.approx(12.0, abs=0.2)


@pytest.mark.anyio
async def test_bad_input_from_the_model_is_counted_and_the_call_goes_on() -> None:
    """A raw model peer that sends an unknown event, a malformed one and errors of every code."""
    phone_caller, phone_bot = memory_pair(latency=0.02, names=("caller", "bot"))
    model_bot, model_peer = memory_pair(latency=0.02, names=("bot", "model"))
    error_codes = [
        "response_cancel_not_active",
        "conversation_already_has_active_response",
        "input_audio_buffer_commit_empty",
        "integer_below_min_value",
        "unsupported_content_type",
        None,
    ]

    async def raw_model() -> None:
        await model_peer.send('{"type": "session.created", "event_id": "e0", "session": {}}')
        await model_peer.send('{"type": "something.new", "event_id": "e1"}')
        await model_peer.send('{"type": "response.done", "event_id": "e2", "response": {}}')
        await model_peer.send("{not json")
        for n, code in enumerate(error_codes):
            error = {"type": "invalid_request_error", "message": f"problem {n}"}
            if code is not None:
                error["code"] = code
            await model_peer.send(dumps({"type": "error", "event_id": f"x{n}", "error": error}))
        with contextlib.suppress(TransportClosed):
            while True:
                await model_peer.receive()
        await model_peer.aclose()

    @contextlib.asynccontextmanager
    async def connect(start: StreamStarted) -> AsyncIterator[Transport]:
        yield model_bot

    caller = CallerSimulator(script=[HangUp(at=3.0)])
    handler = MediaHandler(phone_bot, connect)
    summaries: list[CallSummary] = []

    async def run_handler() -> None:
        summaries.append(await handler.run())
        await model_bot.aclose()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_handler)
            tg.start_soon(raw_model)
            record = await caller.run(phone_caller)
    (summary,) = summaries
    assert summary.ended_by == "twilio stop", "the call went on until the caller hung up"
    assert summary.bad_messages == {"realtime": 2}  # the malformed response.done and the non-JSON
    assert summary.model_errors == {
        "response_cancel_not_active": 1,
        "conversation_already_has_active_response": 1,
        "input_audio_buffer_commit_empty": 1,
        "integer_below_min_value": 1,
        "unsupported_content_type": 1,
        "invalid_request_error": 1,
    }
    assert record.protocol_errors == []
    assert summary.timers is not None and summary.timers.pending == 0
