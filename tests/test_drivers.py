"""Every recorded call of the scenario library, fed to both drivers of the turn engine: the same
decisions.

Each call is recorded through the reference server's handler (a scenario of the simulator
library, in virtual time). Its inputs (Twilio's frames and the model's events, at the times they
arrived) are then fed, open loop, to each driver in turn:

* the reference bridge (:class:`~voiceguard.BridgeCore`), which paces the model's audio itself;
* the middleware (:class:`~voiceguard.middleware.CallGuard`) under a minimal bot written like the
  popular sample: it forwards every caller frame to the model and every audio delta it is given
  to the phone, with a mark after each.

Each driver's phone is a faithful model of Twilio (audio plays in real time, a mark comes back
when the audio before it has played, all pending marks at once on ``clear``), so each driver
hears the echoes of its own marks. The calibration gate's judgements, the cancels, the creates,
the phone's ``clear`` messages and the truncation points must be the same.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio.testing

from voiceguard import BridgeAction, BridgeCore, Decision, GuardConfig, Reason
from voiceguard.core.actions import Deliver, EndCall, RunTool, SendToModel, SendToPhone
from voiceguard.demo import guarded_bridge
from voiceguard.middleware import CallGuard, GuardStep
from voiceguard.observe.trace import Trace, TraceRecorder, load_trace
from voiceguard.protocol import (
    AudioDelta,
    input_audio_append,
    mark_message,
    media_message,
    parse_realtime_event,
    parse_twilio_message,
    response_create,
    session_update,
)
from voiceguard.sim.scenarios import SCENARIOS, run_scenario

#: Scenarios whose calls have barge-in judgements to compare (the others: creates, clears).
JUDGED = (
    "echo-in-first-seconds",  # the greeting's echo: suppressed
    "speech-started-burst",  # barge-ins over a long answer, cancels refused
    "truncate-long-buffered-audio",  # a barge-in confirmed, truncated to what was heard
    "cough-during-the-answer",  # a false interruption: the answer resumes
    "cancel-races-done",  # a barge-in after response.done
)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def recorded(scenario: str, directory: Path) -> list[Trace]:
    recorders: list[TraceRecorder] = []

    def new_recorder() -> TraceRecorder:
        recorders.append(TraceRecorder(directory, audio="full"))
        return recorders[-1]

    run = await run_scenario(SCENARIOS[scenario], guarded_bridge(trace=new_recorder))
    assert run.violations() == ()
    traces = []
    for recorder in recorders:  # a call each
        assert recorder.path is not None
        traces.append(load_trace(recorder.path))
    return traces


@dataclass
class Twilio:
    """Twilio's side of one driver: plays in real time, echoes marks as their audio ends."""

    end: float = 0.0
    pending: list[tuple[float, str]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)

    def receive(self, message: Mapping[str, Any], now: float) -> list[str]:
        """Take a message; return the marks echoed at once (a clear's)."""
        match message["event"]:
            case "media":
                audio = base64.b64decode(message["media"]["payload"])
                self.end = max(self.end, now) + len(audio) / 8000
            case "mark":
                self.pending.append((max(self.end, now), message["mark"]["name"]))
            case "clear":
                self.clears.append(round(now, 3))
                echoed = [name for _, name in self.pending]
                self.pending.clear()
                self.end = now
                return echoed
        return []

    def next_echo(self) -> float | None:
        return self.pending[0][0] if self.pending else None

    def echo(self) -> str:
        return self.pending.pop(0)[1]


@dataclass
class Outcome:
    decisions: list[Decision] = field(default_factory=list)
    truncates: list[int] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)

    def of(self, guard: str) -> list[tuple[str, str]]:
        prefix = {"gate": "BARGE_IN", "cancel": "CANCEL", "create": "CREATE"}[guard]
        return [
            (d.verdict.value, d.reason.value) for d in self.decisions if d.action.value == prefix
        ]


def _inputs(trace: Trace) -> list[tuple[float, str, dict[str, Any]]]:
    """The recorded inputs, minus Twilio's mark echoes (each driver's Twilio makes its own)."""
    out = []
    for record in trace.of_kind("in"):
        message = record["msg"]
        if record["peer"] == "phone" and message.get("event") == "mark":
            continue
        out.append((float(record["t"]), str(record["peer"]), message))
    return out


class Driver:
    """Feeds one driver the recorded inputs in time order, with its own Twilio and ticks."""

    def __init__(self) -> None:
        self.twilio = Twilio()
        self.outcome = Outcome()
        self.now = 0.0

    # What each driver does with an input, and when it wants a tick.
    def phone(self, message: dict[str, Any], now: float) -> None:
        raise NotImplementedError

    def model(self, message: dict[str, Any], now: float) -> None:
        raise NotImplementedError

    def echo(self, name: str, now: float) -> None:
        raise NotImplementedError

    def tick(self, now: float) -> None:
        raise NotImplementedError

    def deadline(self) -> float | None:
        raise NotImplementedError

    def carry_out(self, actions: Sequence[BridgeAction], now: float) -> None:
        for action in actions:
            match action:
                case SendToPhone():
                    for name in self.twilio.receive(action.message, now):
                        self.echo(name, now)
                case SendToModel():
                    if action.message.get("type") == "conversation.item.truncate":
                        self.outcome.truncates.append(int(action.message["audio_end_ms"]))
                case Deliver():
                    self.delivered(action.event, now)
                case EndCall() | RunTool():
                    pass  # the traces here call no tool

    def delivered(self, raw: object, now: float) -> None:
        pass

    def run(self, trace: Trace) -> Outcome:
        inputs = _inputs(trace)
        index = 0
        end = inputs[-1][0] + 2.0
        while True:
            times = [
                inputs[index][0] if index < len(inputs) else math.inf,
                self.deadline() or math.inf,
                self.twilio.next_echo() or math.inf,
            ]
            at = min(times)
            if at > end:
                break
            self.now = now = max(self.now, at)
            if at == times[2]:
                self.echo(self.twilio.echo(), now)
            elif at == times[0]:
                _, peer, message = inputs[index]
                index += 1
                if peer == "phone":
                    self.phone(message, now)
                else:
                    self.model(message, now)
            else:
                self.tick(now)
        self.outcome.clears = self.twilio.clears
        return self.outcome


class Reference(Driver):
    def __init__(self, trace: Trace) -> None:
        super().__init__()
        self.core = BridgeCore(config=trace.config, on_decision=self.outcome.decisions.append)

    def phone(self, message: dict[str, Any], now: float) -> None:
        self.carry_out(self.core.on_phone(parse_twilio_message(message), now), now)

    def model(self, message: dict[str, Any], now: float) -> None:
        self.carry_out(self.core.on_model(parse_realtime_event(message), now), now)

    def echo(self, name: str, now: float) -> None:
        mark = {"event": "mark", "streamSid": "MZ", "sequenceNumber": "1", "mark": {"name": name}}
        self.carry_out(self.core.on_phone(parse_twilio_message(mark), now), now)

    def tick(self, now: float) -> None:
        self.carry_out(self.core.on_tick(now), now)

    def deadline(self) -> float | None:
        return self.core.next_deadline()


class Middleware(Driver):
    """The middleware under a bot written like the popular sample."""

    def __init__(self, trace: Trace) -> None:
        super().__init__()
        bridge = trace.config
        config = GuardConfig(
            confirm_barge_in=bridge.confirm_barge_in,
            min_barge_in_speech=bridge.min_barge_in_speech,
            calibration=bridge.calibration,
        )
        self.guard = CallGuard(config, on_decision=self.outcome.decisions.append)
        self.guard.watch_phone()
        self.stream_sid = ""
        self.greeting = bridge.greeting

    def step(self, step: GuardStep, now: float) -> None:
        self.carry_out(step.actions, now)

    def phone(self, message: dict[str, Any], now: float) -> None:
        shown, step = self.guard.from_phone(parse_twilio_message(message), now)
        self.step(step, now)
        assert shown
        if message["event"] == "start":
            self.stream_sid = message["start"]["streamSid"]
            # The bot configures its session with the server's defaults (the guard takes turn
            # control) and greets the caller.
            update = session_update(interrupt_response=True, create_response=True)
            self.step(self.guard.to_model(update, now), now)
            greeting = response_create({"instructions": self.greeting})
            self.step(self.guard.to_model(greeting, now), now)
        elif message["event"] == "media":
            append = input_audio_append(message["media"]["payload"])
            self.step(self.guard.to_model(append, now), now)

    def model(self, message: dict[str, Any], now: float) -> None:
        event = parse_realtime_event(message)
        self.step(self.guard.from_model(event, message, now), now)

    def delivered(self, raw: object, now: float) -> None:
        event = parse_realtime_event(raw)
        if isinstance(event, AudioDelta):  # the bot forwards the model's audio, and a mark
            payload = base64.b64encode(event.audio).decode("ascii")
            self.step(self.guard.to_phone(media_message(self.stream_sid, payload), now), now)
            mark = mark_message(self.stream_sid, "responsePart")
            self.step(self.guard.to_phone(mark, now), now)

    def echo(self, name: str, now: float) -> None:
        mark = {"event": "mark", "streamSid": "MZ", "sequenceNumber": "1", "mark": {"name": name}}
        _shown, step = self.guard.from_phone(parse_twilio_message(mark), now)
        self.step(step, now)

    def tick(self, now: float) -> None:
        self.step(self.guard.on_tick(now), now)

    def deadline(self) -> float | None:
        return self.guard.next_deadline()


def _creates(outcome: Outcome) -> list[tuple[str, str]]:
    # The reference greets under its own greeting lock; the bot's greeting is a create of its own.
    return [
        (verdict, Reason.OK.value if reason == Reason.FORCED_GREETING.value else reason)
        for verdict, reason in outcome.of("create")
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_every_recorded_call_gets_the_same_decisions_from_both_drivers(
    scenario: str, tmp_path: Path
) -> None:
    traces = await recorded(scenario, tmp_path)
    assert len(traces) == SCENARIOS[scenario].calls
    for trace in traces:
        reference = Reference(trace).run(trace)
        middleware = Middleware(trace).run(trace)
        assert reference.of("create"), "the call has decisions to compare"
        if scenario in JUDGED:
            assert reference.of("gate"), "the call has judgements to compare"
        assert middleware.of("gate") == reference.of("gate")
        assert middleware.of("cancel") == reference.of("cancel")
        assert _creates(middleware) == _creates(reference)
        assert middleware.clears == reference.clears
        assert len(middleware.truncates) == len(reference.truncates)
        for ours, theirs in zip(middleware.truncates, reference.truncates, strict=True):
            # Both are what the caller heard, to the chunk: the chunks differ (paced 100 ms
            # chunks, or the bot's deltas handed over as they come).
            assert abs(ours - theirs) <= 100
