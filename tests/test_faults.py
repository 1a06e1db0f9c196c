"""The fault matrix (docs/faults.md): every fault of either peer against the reference handler.

Each test runs the real :class:`~voiceguard.MediaHandler` between a simulated caller and the
simulated model over in-memory transports, in virtual time (trio's MockClock), with the fault
injected between the handler and one of its peers. Every faulty call runs side by side with a
healthy control call in the same task group (as calls share a server) and must:

* continue or end cleanly, with the reason logged (``call ending: ...``) and in its summary;
* leave the control call untouched (it still hears its answers and ends by the caller's stop);
* let no exception out of the call's task group (the task group around both calls exits);
* leave no timer pending, no model connection and no phone connection open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio.testing
from fault_injection import Rewrite, Tampered, event_type

from voiceguard import HandlerConfig
from voiceguard.audio import FRAME_BYTES, FRAME_SECONDS
from voiceguard.protocol import StreamStarted, dumps
from voiceguard.runtime._phone_in import default_apology
from voiceguard.runtime.handler import CallSummary, MediaHandler
from voiceguard.sim.caller import CallerSimulator, CallRecord, HangUp, Speak
from voiceguard.sim.realtime import EventFault, FunctionCall, RealtimeSimulator, Reply
from voiceguard.transports import (
    MemoryTransport,
    Transport,
    memory_pair,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


# ============================================================================================
# The harness


@dataclass
class Call:
    summary: CallSummary
    record: CallRecord
    sim: RealtimeSimulator
    phone: MemoryTransport
    log: list[str]


def ending_logged(caplog: pytest.LogCaptureFixture, call_sid: str | None) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "voiceguard.handler"
        and r.getMessage().startswith("call ending: ")
        and getattr(r, "call_sid", None) == call_sid
    ]


async def guarded_call(
    sim: RealtimeSimulator,
    caller: CallerSimulator,
    *,
    caplog: pytest.LogCaptureFixture,
    phone_incoming: Rewrite | None = None,
    phone_send_delay: float = 0.0,
    model_incoming: Rewrite | None = None,
    model_send_delay: float = 0.0,
    connect: Callable[[StreamStarted], contextlib.AbstractAsyncContextManager[Transport]]
    | None = None,
    config: HandlerConfig | None = None,
    drop_caller_at: float | None = None,
) -> Call:
    """One call through the handler, with a fault between it and one of its peers."""
    caller_end, bot_end = memory_pair(latency=0.02, names=("caller", "bot"))
    phone = Tampered(bot_end, incoming=phone_incoming, send_delay=phone_send_delay)

    @contextlib.asynccontextmanager
    async def connect_sim(start: StreamStarted) -> AsyncIterator[Transport]:
        async with sim.connect(latency=0.0251) as model:
            assert isinstance(model, MemoryTransport)
            yield Tampered(model, incoming=model_incoming, send_delay=model_send_delay)

    handler = MediaHandler(phone, connect or connect_sim, config=config)
    summaries: list[CallSummary] = []
    records: list[CallRecord] = []

    async def run_caller() -> None:
        records.append(await caller.run(caller_end))

    async def run_handler() -> None:
        summaries.append(await handler.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_caller)
        tg.start_soon(run_handler)
        if drop_caller_at is not None:
            await anyio.sleep(drop_caller_at)
            await caller_end.abort()  # the caller's line drops: no stop, no close frame
    (summary,) = summaries
    (record,) = records
    # Nothing of the call is left behind, and its end was logged with its reason.
    assert sim.statistics().connections_open == 0, "a model connection was left open"
    assert bot_end.closed, "the phone connection was left open"
    if summary.timers is not None:
        assert summary.timers.pending == 0, "a timer outlived its call"
    log = ending_logged(caplog, summary.call_sid)
    assert log == [f"call ending: {summary.ended_by}"]
    return Call(summary=summary, record=record, sim=sim, phone=bot_end, log=log)


def control_call() -> tuple[RealtimeSimulator, CallerSimulator]:
    sim = RealtimeSimulator(
        replies=[Reply(text="Hello!", duration=1.0), Reply(text="Sure.", duration=1.0)]
    )
    caller = CallerSimulator(script=[Speak(at=2.5, duration=0.8), HangUp(at=7.0)], seed=7)
    return sim, caller


async def alongside(
    caplog: pytest.LogCaptureFixture, faulty: Callable[[], Awaitable[Call]]
) -> Call:
    """Run *faulty* and a healthy control call side by side; the control must be untouched."""
    calls: dict[str, Call] = {}
    control_sim, control_caller = control_call()

    async def run(name: str, make: Callable[[], Awaitable[Call]]) -> None:
        calls[name] = await make()

    with anyio.fail_after(120), caplog.at_level(logging.DEBUG, logger="voiceguard"):
        async with anyio.create_task_group() as tg:  # an escaping exception would fail here
            tg.start_soon(run, "faulty", faulty)
            tg.start_soon(
                run, "control", lambda: guarded_call(control_sim, control_caller, caplog=caplog)
            )
    control = calls["control"]
    assert control.summary.ended_by == "twilio stop"
    assert control.summary.bad_messages == {}
    assert control.summary.state is not None
    assert control.summary.state.responses_created == 2
    assert control.summary.state.anomalies == {}
    assert control.record.heard_seconds == pytest.approx(2.0, abs=0.25)
    assert control.record.protocol_errors == []
    assert control_sim.statistics().errors_by_code == {}
    return calls["faulty"]


def talk(hang_up_at: float = 8.0, seed: int = 1) -> CallerSimulator:
    """A caller who asks one question after the greeting and hangs up later."""
    return CallerSimulator(script=[Speak(at=2.5, duration=0.8), HangUp(at=hang_up_at)], seed=seed)


def two_replies(**sim_options: Any) -> RealtimeSimulator:
    return RealtimeSimulator(
        replies=[Reply(text="Hello!", duration=1.0), Reply(text="Of course.", duration=1.5)],
        **sim_options,
    )


def assert_answered_without_errors(call: Call, heard: float = 2.5) -> None:
    assert call.summary.ended_by == "twilio stop"
    assert call.record.ended_by == "caller"
    assert call.record.heard_seconds == pytest.approx(heard, abs=0.25)
    assert call.record.protocol_errors == []
    assert call.sim.statistics().errors_by_code == {}


# ============================================================================================
# The model's side


async def test_model_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    """The model cannot be reached: the call ends at once, the caller is not left on a dead line."""
    sim = RealtimeSimulator()

    def refused(start: StreamStarted) -> contextlib.AbstractAsyncContextManager[Transport]:
        raise OSError("connection refused")

    call = await alongside(
        caplog, lambda: guarded_call(sim, talk(), caplog=caplog, connect=refused)
    )
    assert call.summary.ended_by == "model connection failed: connection refused"
    assert call.record.ended_by == "bot"
    # The caller hears the apology (4.4 s), then the line ends: never left on a dead line.
    apology = len(default_apology()) / FRAME_BYTES * FRAME_SECONDS
    assert call.record.heard_seconds == pytest.approx(apology, abs=0.05)
    assert call.record.ended_at is not None and call.record.ended_at < apology + 0.5
    assert sim.statistics().connections_total == 0


async def test_model_drops_before_the_session(caplog: pytest.LogCaptureFixture) -> None:
    """The model's socket drops before ``session.created``: the call ends cleanly."""

    async def drop_at_once(link: Tampered, text: str) -> Sequence[str]:
        await link.drop()
        return []

    sim = two_replies()
    call = await alongside(
        caplog,
        lambda: guarded_call(sim, talk(), caplog=caplog, model_incoming=drop_at_once),
    )
    assert call.summary.ended_by == "model closed before its session (1006)"
    assert call.record.ended_by == "bot"
    # Nothing of the model was heard: only the apology.
    apology = len(default_apology()) / FRAME_BYTES * FRAME_SECONDS
    assert call.record.heard_seconds == pytest.approx(apology, abs=0.05)
    assert call.sim.statistics().errors_by_code == {}


async def test_model_drops_mid_response(caplog: pytest.LogCaptureFixture) -> None:
    """The socket drops after 1 s of a 3 s answer: the call ends, nothing more is played."""
    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="Let me look.", duration=3.0, drop_connection_after=1.0),
        ]
    )
    call = await alongside(caplog, lambda: guarded_call(sim, talk(), caplog=caplog))
    assert call.summary.ended_by == "model closed (1006)"
    assert call.record.ended_by == "bot"
    assert call.record.ended_at is not None and call.record.ended_at < 6.0
    assert call.record.heard_seconds <= 1.0 + 1.0 + 0.1


async def test_model_drops_during_a_tool_call(caplog: pytest.LogCaptureFixture) -> None:
    """The socket drops while the model streams a function call's arguments."""

    async def drop_in_tool_call(link: Tampered, text: str) -> Sequence[str]:
        if event_type(text) == "response.function_call_arguments.delta":
            await link.drop()
        return [text]

    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(
                text="Let me check.",
                duration=1.0,
                function_call=FunctionCall(name="lookup_order", arguments='{"id": 7}'),
            ),
        ]
    )
    call = await alongside(
        caplog,
        lambda: guarded_call(sim, talk(), caplog=caplog, model_incoming=drop_in_tool_call),
    )
    assert call.summary.ended_by == "model closed (1006)"
    assert call.record.ended_by == "bot"
    assert call.record.ended_at is not None and call.record.ended_at < 8.0


async def test_model_answers_slowly(caplog: pytest.LogCaptureFixture) -> None:
    """Every answer starts speaking 4 s after ``response.created`` (events 0.3 s late).

    The call goes on: both answers are heard in full, no create is sent twice (the watchdog
    sees the ``response.created`` in time), nothing is refused.
    """
    sim = two_replies(latency=0.3, first_audio_delay=4.0)
    # The caller answers a second after the greeting (heard from about 4.4 s to 5.4 s), past its
    # echo tail: this call is about a slow model, not about a caller who talks into the tail of
    # a short greeting before the echo path is known (the calibration gate's hardest case).
    caller = CallerSimulator(script=[Speak(at=6.5, duration=0.8), HangUp(at=16.0)])
    call = await alongside(caplog, lambda: guarded_call(sim, caller, caplog=caplog))
    assert_answered_without_errors(call)
    assert sim.statistics().responses_created == 2


async def test_model_answers_later_than_the_watchdog(caplog: pytest.LogCaptureFixture) -> None:
    """``response.created`` comes 4 s after the create, past the 3 s watchdog.

    The watchdog's create waits for the lost-looking one to be abandoned and is then refused by
    the server or answered; either way no error reaches the caller and the call goes on.
    """
    sim = two_replies(
        faults=[EventFault(event_type="response.created", action="delay", seconds=4.0)]
    )
    call = await alongside(caplog, lambda: guarded_call(sim, talk(hang_up_at=16.0), caplog=caplog))
    assert call.summary.ended_by == "twilio stop"
    assert call.record.protocol_errors == []
    assert call.record.heard_seconds >= 2.5 - 0.25
    assert set(call.sim.statistics().errors_by_code) <= {"conversation_already_has_active_response"}


async def test_model_stalls_a_response(caplog: pytest.LogCaptureFixture) -> None:
    """An answer starts (``response.created``) and never sends anything more.

    When the caller speaks again, the stalled response is cancelled and the new turn answered.
    """
    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="...", stall=True),
            Reply(text="Sorry, here it is.", duration=1.0),
        ]
    )
    caller = CallerSimulator(
        script=[Speak(at=2.5, duration=0.8), Speak(at=7.0, duration=0.8), HangUp(at=12.0)]
    )
    call = await alongside(caplog, lambda: guarded_call(sim, caller, caplog=caplog))
    assert_answered_without_errors(call, heard=2.0)
    assert sim.statistics().responses_cancelled == 1


async def test_model_duplicates_every_event(caplog: pytest.LogCaptureFixture) -> None:
    """Every ``response.*`` event arrives twice (a replaying proxy): each is counted once."""
    types = (
        "response.created",
        "response.output_item.added",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_item.done",
        "response.done",
    )
    sim = two_replies(faults=[EventFault(event_type=t, action="duplicate") for t in types])
    call = await alongside(caplog, lambda: guarded_call(sim, talk(), caplog=caplog))
    assert_answered_without_errors(call)
    assert call.summary.state is not None
    assert call.summary.state.responses_created == 2
    assert call.summary.state.anomalies["duplicate_response_created"] == 2
    assert call.summary.state.anomalies["duplicate_response_done"] == 2


async def test_model_reorders_done_after_the_next_speech(caplog: pytest.LogCaptureFixture) -> None:
    """The greeting's ``response.done`` is overtaken by the caller's whole next turn."""
    sim = two_replies(
        faults=[
            EventFault(event_type="response.done", action="delay", seconds=2.5, occurrences=(1,))
        ]
    )
    call = await alongside(caplog, lambda: guarded_call(sim, talk(hang_up_at=10.0), caplog=caplog))
    assert call.summary.ended_by == "twilio stop"
    assert call.record.protocol_errors == []
    assert call.sim.statistics().errors_by_code == {}
    assert call.record.heard_seconds >= 1.0 - 0.1


async def test_model_sends_deltas_after_response_done(caplog: pytest.LogCaptureFixture) -> None:
    """Audio deltas of a finished response arrive after its ``response.done``: never played."""
    deltas: list[str] = []

    async def late_deltas(link: Tampered, text: str) -> Sequence[str]:
        kind = event_type(text)
        if kind == "response.output_audio.delta":
            deltas.append(text)
        if kind == "response.done" and deltas:
            return [text, *deltas[-5:]]  # half a second of its audio, again, after the end
        return [text]

    sim = two_replies()
    call = await alongside(
        caplog, lambda: guarded_call(sim, talk(), caplog=caplog, model_incoming=late_deltas)
    )
    assert_answered_without_errors(call, heard=2.5)


async def test_model_sends_done_for_an_unknown_response(caplog: pytest.LogCaptureFixture) -> None:
    """A ``response.done`` for an id never seen arrives mid-answer: counted, nothing changes."""

    async def stray_done(link: Tampered, text: str) -> Sequence[str]:
        if event_type(text) == "response.output_audio.delta" and len(link.received) == 40:
            stray = {
                "type": "response.done",
                "event_id": "event_stray",
                "response": {
                    "id": "resp_never_seen",
                    "object": "realtime.response",
                    "status": "completed",
                    "output": [],
                },
            }
            return [text, dumps(stray)]
        return [text]

    sim = two_replies()
    call = await alongside(
        caplog, lambda: guarded_call(sim, talk(), caplog=caplog, model_incoming=stray_done)
    )
    assert_answered_without_errors(call)
    assert call.summary.state is not None
    assert call.summary.state.anomalies == {"response_done_for_unknown_response": 1}


async def test_model_sends_response_created_twice(caplog: pytest.LogCaptureFixture) -> None:
    """The second ``response.created`` arrives twice, the copy after its first audio."""
    sim = two_replies(
        faults=[EventFault(event_type="response.created", action="duplicate", occurrences=(2,))]
    )
    call = await alongside(caplog, lambda: guarded_call(sim, talk(), caplog=caplog))
    assert_answered_without_errors(call)
    assert call.summary.state is not None
    assert call.summary.state.anomalies == {"duplicate_response_created": 1}


# ============================================================================================
# The caller's side


async def test_caller_drops_mid_speech(caplog: pytest.LogCaptureFixture) -> None:
    """The caller's line drops (no ``stop``, no close frame) while they speak."""
    sim = two_replies()
    call = await alongside(
        caplog, lambda: guarded_call(sim, talk(), caplog=caplog, drop_caller_at=2.9)
    )
    assert call.summary.ended_by == "phone closed"
    assert call.summary.duration == pytest.approx(2.9, abs=0.1)


async def test_caller_never_echoes_marks(caplog: pytest.LogCaptureFixture) -> None:
    """A phone that echoes no mark: the bot still speaks, and a goodbye ends by the fallback."""

    async def no_marks(link: Tampered, text: str) -> Sequence[str]:
        return [] if event_type(text) == "mark" else [text]

    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="Goodbye!", duration=1.0, function_call=FunctionCall(name="end_call")),
        ]
    )
    call = await alongside(
        caplog,
        lambda: guarded_call(sim, talk(hang_up_at=30.0), caplog=caplog, phone_incoming=no_marks),
    )
    assert call.summary.ended_by == "hang-up: hang-up fallback"
    assert call.record.ended_by == "bot"
    assert call.record.heard_seconds == pytest.approx(2.0, abs=0.25)
    assert call.sim.statistics().errors_by_code == {}


async def test_caller_talks_over_a_goodbye_before_its_end_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The caller barges into a goodbye: its ``end_call``, cut off unfinished, hangs nothing up."""
    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="Goodbye then!", duration=2.5, function_call=FunctionCall(name="end_call")),
            Reply(text="Oh, go ahead.", duration=1.0),
        ],
        audio_speed=1.0,  # the function call comes after the goodbye's audio, in real time
    )
    caller = CallerSimulator(
        script=[
            Speak(at=2.5, duration=0.8),
            Speak(after_heard=2.0, duration=1.2, level_dbfs=-15.0),  # "wait, one more thing"
            HangUp(at=12.0),
        ]
    )
    call = await alongside(caplog, lambda: guarded_call(sim, caller, caplog=caplog))
    assert call.summary.ended_by == "twilio stop"
    assert call.record.ended_by == "caller"
    assert sim.statistics().responses_cancelled == 1
    assert call.sim.statistics().errors_by_code == {}


async def test_caller_echoes_marks_twice_and_unknown_marks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every mark is echoed twice, and marks the bot never sent arrive: heard stays exact."""

    async def odd_marks(link: Tampered, text: str) -> Sequence[str]:
        if event_type(text) != "mark":
            return [text]
        message = json.loads(text)
        stranger = {**message, "mark": {"name": "not-ours"}}
        return [text, text, dumps(stranger)]

    sim = two_replies()
    call = await alongside(
        caplog, lambda: guarded_call(sim, talk(), caplog=caplog, phone_incoming=odd_marks)
    )
    assert_answered_without_errors(call)
    assert call.summary.state is not None and call.summary.state.cancels_sent == 0


async def test_caller_echoes_marks_after_clear(caplog: pytest.LogCaptureFixture) -> None:
    """The caller barges in; the marks flushed by the ``clear`` come back after it."""
    sim = RealtimeSimulator(
        replies=[
            Reply(text="Hello!", duration=1.0),
            Reply(text="A long answer that goes on.", duration=6.0),
            Reply(text="Sure.", duration=1.0),
        ]
    )
    caller = CallerSimulator(
        script=[
            Speak(at=2.0, duration=0.8),
            Speak(after_heard=2.0, duration=1.5, level_dbfs=-15.0),
            HangUp(at=12.0),
        ]
    )
    call = await alongside(caplog, lambda: guarded_call(sim, caller, caplog=caplog))
    assert call.record.clears
    assert any(m.cleared for m in call.record.marks), "marks came back after the clear"
    assert call.summary.state is not None and call.summary.state.truncates_sent == 1
    assert call.sim.statistics().errors_by_code == {}
    assert call.summary.ended_by == "twilio stop"


async def test_caller_sends_a_second_start(caplog: pytest.LogCaptureFixture) -> None:
    """A second ``start`` is counted as malformed; the call and its SIDs go on unchanged."""

    async def twice(link: Tampered, text: str) -> Sequence[str]:
        if event_type(text) == "start":
            message = json.loads(text)
            other = {**message, "start": {**message["start"], "callSid": "CA" + "f" * 32}}
            return [text, dumps(other)]
        return [text]

    sim = two_replies()
    call = await alongside(
        caplog, lambda: guarded_call(sim, talk(), caplog=caplog, phone_incoming=twice)
    )
    assert_answered_without_errors(call)
    assert call.summary.bad_messages == {"twilio": 1}
    assert call.summary.call_sid == call.record.call_sid
    assert any("a second start" in r.getMessage() for r in caplog.records)


async def test_caller_sends_media_before_start(caplog: pytest.LogCaptureFixture) -> None:
    """Media before ``start`` is counted and dropped; the call starts with the ``start``."""

    async def early_media(link: Tampered, text: str) -> Sequence[str]:
        if event_type(text) == "start":
            media = {
                "event": "media",
                "streamSid": json.loads(text)["streamSid"],
                "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "//8="},
            }
            return [dumps(media), dumps(media), text]
        return [text]

    sim = two_replies()
    call = await alongside(
        caplog, lambda: guarded_call(sim, talk(), caplog=caplog, phone_incoming=early_media)
    )
    assert_answered_without_errors(call)
    assert call.summary.bad_messages == {"twilio": 2}


async def test_caller_sends_partial_media_frames(caplog: pytest.LogCaptureFixture) -> None:
    """``media`` with an empty payload or a part of a 20 ms frame: counted, never measured."""

    async def partial(link: Tampered, text: str) -> Sequence[str]:
        if event_type(text) == "media" and len(link.received) == 60:
            message = json.loads(text)
            return [
                dumps({**message, "media": {**message["media"], "payload": payload}})
                for payload in ("", "//8=")  # 0 and 2 bytes of audio
            ] + [text]
        return [text]

    sim = two_replies()
    call = await alongside(
        caplog, lambda: guarded_call(sim, talk(), caplog=caplog, phone_incoming=partial)
    )
    assert_answered_without_errors(call)
    assert call.summary.bad_messages == {"twilio": 2}


async def test_caller_sends_stop_twice(caplog: pytest.LogCaptureFixture) -> None:
    """``stop`` twice: the first ends the call, the second is never acted on."""

    async def twice(link: Tampered, text: str) -> Sequence[str]:
        return [text, text] if event_type(text) == "stop" else [text]

    sim = two_replies()
    call = await alongside(
        caplog, lambda: guarded_call(sim, talk(), caplog=caplog, phone_incoming=twice)
    )
    assert_answered_without_errors(call)
    assert call.summary.bad_messages == {}


async def test_caller_floods_malformed_messages(caplog: pytest.LogCaptureFixture) -> None:
    """Past ``max_bad_messages`` the call ends (each one was logged and counted)."""

    async def garbage(link: Tampered, text: str) -> Sequence[str]:
        if event_type(text) == "media" and len(link.received) > 100:
            return [text, "{not json", '{"event": "media"}']
        return [text]

    sim = two_replies()
    call = await alongside(
        caplog,
        lambda: guarded_call(
            sim,
            talk(),
            caplog=caplog,
            phone_incoming=garbage,
            config=HandlerConfig(max_bad_messages=20),
        ),
    )
    assert call.summary.ended_by == "more than 20 malformed messages"
    assert call.summary.bad_messages == {"twilio": 21}
    assert call.record.ended_by == "bot"


# ============================================================================================
# Slow consumers: back-pressure with bounded buffers


async def test_slow_phone_consumer(caplog: pytest.LogCaptureFixture) -> None:
    """Twilio takes 30 ms to accept each message: the bot's audio is late, never lost or doubled.

    The handler's queue of actions is bounded: while the phone is slow the readers wait instead
    of piling up work, and the call still ends by the caller's ``stop``.
    """
    sim = two_replies()
    call = await alongside(
        caplog,
        lambda: guarded_call(sim, talk(hang_up_at=10.0), caplog=caplog, phone_send_delay=0.03),
    )
    assert call.summary.ended_by == "twilio stop"
    assert call.record.protocol_errors == []
    assert call.sim.statistics().errors_by_code == {}
    assert call.record.heard_seconds <= 2.5 + 0.1


async def test_slow_model_consumer(caplog: pytest.LogCaptureFixture) -> None:
    """The model takes 30 ms to accept each message (50 appends a second cannot keep up).

    Back-pressure reaches the phone reader: at no time has the handler read more than a bounded
    number of phone messages it has not yet forwarded, however long the call (the reader waits
    for each send, so it is one or two; a batch queued while another task sends is bounded by
    the handler's backlog of 64).
    """
    lag: list[int] = []
    links: list[Tampered] = []

    async def watch_phone(link: Tampered, text: str) -> Sequence[str]:
        if links:
            read = sum(1 for t in link.received if event_type(t) == "media")
            forwarded = sum(
                1 for t in links[0].sent if event_type(t) == "input_audio_buffer.append"
            )
            lag.append(read - forwarded)
        return [text]

    sim = two_replies()

    @contextlib.asynccontextmanager
    async def slow(start: StreamStarted) -> AsyncIterator[Transport]:
        async with sim.connect(latency=0.0251) as model:
            assert isinstance(model, MemoryTransport)
            link = Tampered(model, send_delay=0.03)
            links.append(link)
            yield link

    call = await alongside(
        caplog,
        lambda: guarded_call(
            sim, talk(hang_up_at=10.0), caplog=caplog, phone_incoming=watch_phone, connect=slow
        ),
    )
    assert call.summary.ended_by == "twilio stop"
    # The model really was too slow: held back, the handler read the caller's 10 s of audio
    # (and the stop behind it) at the model's pace, 30 ms a message.
    assert call.summary.duration > 10.0 * 1.3
    assert len(links[0].sent) >= 10.0 / 0.02, "every frame was forwarded"
    assert max(lag) <= 64 + 4, "the handler buffered without bound"


# ============================================================================================
# The docs


def test_the_fault_matrix_links_every_fault_test_and_only_existing_tests() -> None:
    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "faults.md").read_text(encoding="utf-8")
    linked = re.findall(r"``(tests/[\w/]+\.py)::(\w+)``", page)
    assert len(linked) > 30
    for path, name in linked:
        source = (root / path).read_text(encoding="utf-8")
        assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), f"{path}::{name}"
    here = Path(__file__).read_text(encoding="utf-8")
    faults = set(re.findall(r"^async def (test_\w+)\(", here, re.MULTILINE))
    assert faults - {name for _, name in linked} == set(), "a fault test missing from the page"
