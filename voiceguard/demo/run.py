"""``voiceguard demo``: the guarded bridge and a naive one, side by side, on the same calls.

With no API key and no network, the demo starts everything on 127.0.0.1: one
:class:`~voiceguard.sim.realtime.RealtimeSimulator` per scenario run, the reference server
(:func:`~voiceguard.server.create_app`, under uvicorn) as the guarded bridge, a
:class:`NaiveBridge` (written like the popular Twilio sample) as the counter-example, and
:class:`~voiceguard.sim.caller.CallerSimulator` callers. It plays every scenario of
:data:`~voiceguard.sim.scenarios.SCENARIOS` through both bridges at once, in real time over real
sockets, measures what each bridge did to the calls (:class:`BridgeMeasures`) and prints them side
by side (:meth:`DemoReport.render`).

Run it with ``voiceguard demo``; from Python, ``report = await run_demo()``.

The module also holds the two bridges as scenario bridges for
:func:`~voiceguard.sim.scenarios.run_scenario` (virtual time, in memory): :func:`guarded_bridge` and
:class:`NaiveBridge`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import parse_qs, urlsplit

import anyio

from voiceguard.config import HandlerConfig
from voiceguard.observe.trace import TraceRecorder
from voiceguard.protocol import (
    AudioDelta,
    FunctionCallArgumentsDone,
    MarkPlayed,
    MediaReceived,
    SpeechStarted,
    StreamStarted,
    StreamStopped,
    clear_message,
    dumps,
    input_audio_append,
    item_truncate,
    mark_message,
    media_message,
    parse_realtime_event,
    parse_twilio_message,
    response_cancel,
    response_create,
    session_update,
)
from voiceguard.runtime.handler import MediaHandler
from voiceguard.sim.caller import CallerSimulator, CallRecord
from voiceguard.sim.measures import false_barge_ins as _false_barge_ins
from voiceguard.sim.measures import truncations_beyond_heard as _truncations_beyond_heard
from voiceguard.sim.realtime import ConnectionRecord
from voiceguard.sim.scenarios import SCENARIOS, Bridge, ConnectModel, Scenario, ScenarioRun
from voiceguard.transports import NORMAL_CLOSURE, Transport, TransportClosed

if TYPE_CHECKING:
    from voiceguard.transports.websocket import WebSocketTransport

__all__ = (
    "BridgeMeasures",
    "DemoReport",
    "NaiveBridge",
    "RunOutcome",
    "add_demo_command",
    "guarded_bridge",
    "run_demo",
)


def guarded_bridge(
    config: HandlerConfig | None = None, *, trace: Callable[[], TraceRecorder] | None = None
) -> Bridge:
    """The reference :class:`~voiceguard.MediaHandler` as a scenario bridge (one handler a call).

    Args:
        config: The handler's configuration; the defaults when omitted.
        trace: Makes the :class:`~voiceguard.observe.trace.TraceRecorder` of each call; no
            traces when omitted.

    Returns:
        ``async def bridge(twilio, connect_model)`` for
        :func:`voiceguard.sim.scenarios.run_scenario`.
    """

    async def bridge(twilio: Transport, connect_model: ConnectModel) -> None:
        @asynccontextmanager
        async def connect(_start: StreamStarted) -> AsyncIterator[Transport]:
            async with connect_model() as model:
                yield model

        recorder = trace() if trace is not None else None
        await MediaHandler(twilio, connect, config=config, trace=recorder).run()

    return bridge


async def _start(twilio: Transport) -> str:
    while True:
        event = parse_twilio_message(await twilio.receive())
        if isinstance(event, StreamStarted):
            return event.stream_sid


class NaiveBridge:
    """The popular Twilio sample's bridge, kept as the counter-example the demo contrasts with.

    One bot object serves every call (shared state), the session keeps the server defaults
    (``interrupt_response`` and ``create_response`` on), every ``speech_started`` clears the
    phone, truncates at a wall-clock estimate and sends ``response.cancel``, marks only count
    "still playing", and the hang-up fallback is a plain sleep that is not scoped to its call:
    when it fires it closes whatever call is current by then. Do not use it for anything but a
    comparison.
    """

    def __init__(self) -> None:
        self.current: Transport | None = None

    async def __call__(self, twilio: Transport, connect_model: ConnectModel) -> None:
        self.current = twilio
        hang_up_at = await _naive_call(twilio, connect_model)
        if hang_up_at is not None:
            # The fallback outlives the call and hangs up whatever call is current by then.
            await anyio.sleep_until(hang_up_at)
            if self.current is not None:
                await self.current.aclose()


async def _naive_call(twilio: Transport, connect_model: ConnectModel) -> float | None:
    """One call of the naive bridge: server VAD defaults, wall-clock truncate, cancel on speech.

    Returns:
        When its hang-up fallback is due, if the model called ``end_call``.
    """
    hang_up_at: float | None = None
    try:
        stream_sid = await _start(twilio)
    except TransportClosed:
        return None
    async with connect_model() as model:
        await model.send(dumps(session_update(interrupt_response=True, create_response=True)))
        await model.send(dumps(response_create()))  # the greeting
        latest_ms = 0
        last_item: str | None = None
        start_ms: int | None = None
        marks: list[str] = []

        async with anyio.create_task_group() as tg:

            async def from_twilio() -> None:
                nonlocal latest_ms
                try:
                    async for text in twilio:  # type: ignore[attr-defined]
                        event = parse_twilio_message(text)
                        if isinstance(event, MediaReceived):
                            latest_ms = event.timestamp_ms
                            await model.send(dumps(input_audio_append(event.payload)))
                        elif isinstance(event, MarkPlayed) and marks:
                            marks.pop(0)
                        elif isinstance(event, StreamStopped):
                            break
                except TransportClosed:
                    pass
                finally:
                    tg.cancel_scope.cancel()

            async def from_model() -> None:
                nonlocal last_item, start_ms, hang_up_at
                try:
                    async for text in model:  # type: ignore[attr-defined]
                        event = parse_realtime_event(text)
                        if isinstance(event, AudioDelta):
                            await twilio.send(dumps(media_message(stream_sid, event.payload)))
                            if event.item_id != last_item:
                                last_item, start_ms = event.item_id, latest_ms
                            await twilio.send(dumps(mark_message(stream_sid, "responsePart")))
                            marks.append("responsePart")
                        elif (
                            isinstance(event, SpeechStarted) and last_item and start_ms is not None
                        ):
                            if marks:
                                elapsed = latest_ms - start_ms
                                await model.send(dumps(item_truncate(last_item, elapsed)))
                                await twilio.send(dumps(clear_message(stream_sid)))
                                marks.clear()
                            await model.send(dumps(response_cancel()))
                            last_item, start_ms = None, None
                        elif isinstance(event, FunctionCallArgumentsDone):
                            hang_up_at = anyio.current_time() + 6.0  # the hang-up fallback
                except TransportClosed:
                    pass
                finally:
                    tg.cancel_scope.cancel()

            tg.start_soon(from_twilio)
            tg.start_soon(from_model)
    await twilio.aclose()
    return hang_up_at


# ============================================================================================
# The demo: every scenario through both bridges, over real sockets on 127.0.0.1

_HOST: Final = "127.0.0.1"
_BRIDGES: Final = ("naive", "guarded")
#: Seconds each bridge gets after a run's last call to finish its work for the run's calls.
_GRACE: Final = 8.0
#: An interruption this long after the caller stopped talking is still the caller's.
_SPEECH_TAIL: Final = 1.0
#: Bot audio heard in the 60 ms after the caller starts talking that makes it a barge-in.
_BARGE_IN_OVERLAP: Final = 0.04
#: Seconds between the starts of two runs of the first batch.
_STAGGER: Final = 0.1
#: Runs played at the same time; more would overload the one event loop, and its lag would
#: show as the bridges' faults (20 at once on a loaded 2-core machine made the guarded bridge
#: miss a barge-in; 10 did not). The default demo (10 scenarios, 2 bridges) is two batches.
_CONCURRENT_RUNS: Final = 10
#: The ``start.customParameters`` key that routes a call to its run's model simulator.
_CALL_PARAMETER: Final = "voiceguardDemoCall"
#: ``--calls`` allows 1 to this many repetitions of each scenario.
MAX_REPETITIONS: Final = 20

#: An ASGI application (what :func:`~voiceguard.server.create_app` returns is one).
_Asgi = Callable[
    [MutableMapping[str, Any], Callable[[], Any], Callable[[MutableMapping[str, Any]], Any]], Any
]


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """What one bridge did in one run of one scenario (all of the run's calls).

    Attributes:
        scenario: The scenario's name.
        repetition: The repetition, from 0 (``voiceguard demo --calls N`` plays each scenario
            *N* times).
        bridge: ``"naive"`` or ``"guarded"``.
        calls: Calls made.
        violations: The scenario's rules the bridge broke, in words.
        model_errors: The ``error`` events the model simulator sent, counted by code (without
            the cancels that crossed ``response.done``).
        crossed_cancels: Cancels that crossed ``response.done`` on the wire, the one race no
            bridge can close (see :meth:`voiceguard.sim.scenarios.ScenarioRun.crossed_cancels`);
            reported, not counted as a problem.
        false_barge_ins: Interruptions of the bot while the caller was silent.
        truncations_beyond_heard: ``conversation.item.truncate`` events that point past the
            audio of that item the caller had heard.
        cross_call_actions: Calls the bridge hung up with no reason of their own.
        barge_in_latencies: Seconds from the onset of each barge-in to the ``clear`` that
            stopped the bot's audio on the phone.
        barge_ins_without_clear: Barge-ins after which no ``clear`` came.
        calls_ended_cleanly: Calls that ended as the script meant, with nothing of them left
            running.
    """

    scenario: str
    repetition: int
    bridge: str
    calls: int
    violations: tuple[str, ...]
    model_errors: Mapping[str, int]
    crossed_cancels: int
    false_barge_ins: int
    truncations_beyond_heard: int
    cross_call_actions: int
    barge_in_latencies: tuple[float, ...]
    barge_ins_without_clear: int
    calls_ended_cleanly: int

    @property
    def problems(self) -> int:
        """Everything that went wrong, added up (0 for a bridge that behaved)."""
        return (
            len(self.violations)
            + sum(self.model_errors.values())
            + self.false_barge_ins
            + self.truncations_beyond_heard
            + self.cross_call_actions
            + (self.calls - self.calls_ended_cleanly)
        )

    def summary(self) -> str:
        """``"ok"``, or what went wrong in a few words."""
        if not self.problems:
            return "ok"
        counts = (
            (len(self.violations), "rule broken", "rules broken"),
            (sum(self.model_errors.values()), "model error", "model errors"),
            (self.false_barge_ins, "false barge-in", "false barge-ins"),
            (self.truncations_beyond_heard, "truncation beyond heard", "truncations beyond heard"),
            (self.cross_call_actions, "call cut by another call", "calls cut by another call"),
            (
                self.calls - self.calls_ended_cleanly,
                "call not ended cleanly",
                "calls not ended cleanly",
            ),
        )
        return "FAILED: " + ", ".join(
            f"{count} {one if count == 1 else many}" for count, one, many in counts if count
        )

    def to_json(self) -> dict[str, Any]:
        """The outcome as JSON-ready data (latencies in milliseconds)."""
        return {
            "scenario": self.scenario,
            "repetition": self.repetition,
            "bridge": self.bridge,
            "calls": self.calls,
            "violations": list(self.violations),
            "model_errors": dict(sorted(self.model_errors.items())),
            "crossed_cancels": self.crossed_cancels,
            "false_barge_ins": self.false_barge_ins,
            "truncations_beyond_heard": self.truncations_beyond_heard,
            "cross_call_actions": self.cross_call_actions,
            "barge_in_latency_ms": [round(s * 1000) for s in self.barge_in_latencies],
            "barge_ins_without_clear": self.barge_ins_without_clear,
            "calls_ended_cleanly": self.calls_ended_cleanly,
            "problems": self.problems,
        }


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeMeasures:
    """One bridge's measures, added up over every run (the columns of the demo's table).

    Attributes:
        bridge: ``"naive"`` or ``"guarded"``.
        runs: Scenario runs played.
        runs_failed: Runs with at least one problem (see :attr:`RunOutcome.problems`).
        calls: Calls made.
        scenario_violations: Scenario rules broken (expectations that did not hold).
        false_barge_ins: Interruptions of the bot while the caller was silent.
        model_errors: Protocol ``error`` events from the model, counted by code.
        crossed_cancels: Cancels that crossed ``response.done`` on the wire (not problems).
        truncations_beyond_heard: Truncates that point past the audio the caller had heard.
        cross_call_actions: Calls hung up by the bridge with no reason of their own.
        barge_in_latencies: Seconds from each barge-in's onset to the phone's ``clear``.
        barge_ins_without_clear: Barge-ins after which no ``clear`` came.
        calls_ended_cleanly: Calls that ended as their script meant, with nothing left running.
    """

    bridge: str
    runs: int
    runs_failed: int
    calls: int
    scenario_violations: int
    false_barge_ins: int
    model_errors: Mapping[str, int]
    crossed_cancels: int
    truncations_beyond_heard: int
    cross_call_actions: int
    barge_in_latencies: tuple[float, ...]
    barge_ins_without_clear: int
    calls_ended_cleanly: int

    @classmethod
    def total(cls, bridge: str, outcomes: Sequence[RunOutcome]) -> BridgeMeasures:
        """Add up the outcomes of *bridge* among *outcomes*.

        Args:
            bridge: ``"naive"`` or ``"guarded"``.
            outcomes: Outcomes of any bridge; only those of *bridge* count.

        Returns:
            The totals.
        """
        mine = [o for o in outcomes if o.bridge == bridge]
        errors: Counter[str] = Counter()
        for outcome in mine:
            errors.update(outcome.model_errors)
        return cls(
            bridge=bridge,
            runs=len(mine),
            runs_failed=sum(1 for o in mine if o.problems),
            calls=sum(o.calls for o in mine),
            scenario_violations=sum(len(o.violations) for o in mine),
            false_barge_ins=sum(o.false_barge_ins for o in mine),
            model_errors=dict(sorted(errors.items())),
            crossed_cancels=sum(o.crossed_cancels for o in mine),
            truncations_beyond_heard=sum(o.truncations_beyond_heard for o in mine),
            cross_call_actions=sum(o.cross_call_actions for o in mine),
            barge_in_latencies=tuple(s for o in mine for s in o.barge_in_latencies),
            barge_ins_without_clear=sum(o.barge_ins_without_clear for o in mine),
            calls_ended_cleanly=sum(o.calls_ended_cleanly for o in mine),
        )

    @property
    def model_errors_total(self) -> int:
        """All protocol errors from the model."""
        return sum(self.model_errors.values())

    @property
    def latency_median(self) -> float | None:
        """The median barge-in reaction latency in seconds (None without a barge-in)."""
        return statistics.median(self.barge_in_latencies) if self.barge_in_latencies else None

    @property
    def latency_p95(self) -> float | None:
        """The 95th percentile (nearest rank) of the barge-in reaction latency, in seconds."""
        return _percentile(self.barge_in_latencies, 0.95)

    @property
    def problems(self) -> int:
        """Everything that went wrong, added up; 0 means the bridge behaved in every call."""
        return (
            self.scenario_violations
            + self.false_barge_ins
            + self.model_errors_total
            + self.truncations_beyond_heard
            + self.cross_call_actions
            + (self.calls - self.calls_ended_cleanly)
        )

    def to_json(self) -> dict[str, Any]:
        """The measures as JSON-ready data (latencies in milliseconds)."""

        def ms(seconds: float | None) -> int | None:
            return None if seconds is None else round(seconds * 1000)

        return {
            "runs": self.runs,
            "runs_failed": self.runs_failed,
            "calls": self.calls,
            "scenario_violations": self.scenario_violations,
            "false_barge_ins": self.false_barge_ins,
            "model_errors": self.model_errors_total,
            "model_errors_by_code": dict(self.model_errors),
            "crossed_cancels": self.crossed_cancels,
            "truncations_beyond_heard": self.truncations_beyond_heard,
            "cross_call_actions": self.cross_call_actions,
            "barge_in_latency_ms": {
                "median": ms(self.latency_median),
                "p95": ms(self.latency_p95),
                "barge_ins": len(self.barge_in_latencies) + self.barge_ins_without_clear,
                "cleared": len(self.barge_in_latencies),
            },
            "calls_ended_cleanly": self.calls_ended_cleanly,
            "problems": self.problems,
        }


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DemoReport:
    """The result of :func:`run_demo`: every run's outcome and the two bridges' totals.

    Attributes:
        scenarios: The scenarios played, by name.
        repetitions: How many times each scenario was played through each bridge.
        seed: The seed the runs were played with.
        outcomes: Every run's outcome, in the order the runs were started.
        wall_seconds: How long the demo took, in seconds of real time.
    """

    scenarios: tuple[str, ...]
    repetitions: int
    seed: int
    outcomes: tuple[RunOutcome, ...]
    wall_seconds: float
    _totals: dict[str, BridgeMeasures] = field(default_factory=dict, repr=False, compare=False)

    def measures(self, bridge: str) -> BridgeMeasures:
        """The totals of one bridge.

        Args:
            bridge: ``"naive"`` or ``"guarded"``.

        Returns:
            Its measures, added up over its runs.
        """
        if bridge not in self._totals:
            self._totals[bridge] = BridgeMeasures.total(bridge, self.outcomes)
        return self._totals[bridge]

    @property
    def naive(self) -> BridgeMeasures:
        """The naive bridge's totals."""
        return self.measures("naive")

    @property
    def guarded(self) -> BridgeMeasures:
        """The guarded bridge's totals (the reference server)."""
        return self.measures("guarded")

    @property
    def ok(self) -> bool:
        """True when the guarded bridge had no problem at all (``voiceguard demo`` exits 0)."""
        return self.guarded.problems == 0

    def to_json(self) -> dict[str, Any]:
        """Everything in the report as JSON-ready data (what ``voiceguard demo --json`` prints)."""
        return {
            "ok": self.ok,
            "scenarios": list(self.scenarios),
            "repetitions": self.repetitions,
            "seed": self.seed,
            "wall_seconds": round(self.wall_seconds, 1),
            "bridges": {name: self.measures(name).to_json() for name in _BRIDGES},
            "runs": [o.to_json() for o in self.outcomes],
        }

    def render(self) -> str:
        """The side-by-side table, and a line for each run that failed and why."""
        naive, guarded = self.naive, self.guarded

        def latency(m: BridgeMeasures) -> str:
            if m.latency_median is None or m.latency_p95 is None:
                return "-"
            return f"{m.latency_median * 1000:.0f} / {m.latency_p95 * 1000:.0f} ms"

        rows = [
            ("", "naive", "guarded"),
            (
                "scenario rules broken",
                str(naive.scenario_violations),
                str(guarded.scenario_violations),
            ),
            (
                "false barge-ins (bot cut off, caller silent)",
                str(naive.false_barge_ins),
                str(guarded.false_barge_ins),
            ),
            (
                "protocol errors from the model",
                str(naive.model_errors_total),
                str(guarded.model_errors_total),
            ),
            (
                "cancels that crossed response.done (harmless race)",
                str(naive.crossed_cancels),
                str(guarded.crossed_cancels),
            ),
            (
                "truncations beyond what the caller heard",
                str(naive.truncations_beyond_heard),
                str(guarded.truncations_beyond_heard),
            ),
            (
                "calls hung up by another call's timer",
                str(naive.cross_call_actions),
                str(guarded.cross_call_actions),
            ),
            ("barge-in reaction latency, median / p95", latency(naive), latency(guarded)),
            (
                "calls that ended cleanly",
                f"{naive.calls_ended_cleanly}/{naive.calls}",
                f"{guarded.calls_ended_cleanly}/{guarded.calls}",
            ),
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [
            f"{len(self.scenarios)} scenario{'s' if len(self.scenarios) != 1 else ''}"
            f"{f' x {self.repetitions}' if self.repetitions > 1 else ''}, each played through "
            "both bridges at once, in real time over 127.0.0.1 "
            f"({self.wall_seconds:.1f} s)",
            "",
        ]
        for label, left, right in rows:
            lines.append(
                f"  {label.ljust(widths[0])}   {left.rjust(widths[1])}   {right.rjust(widths[2])}"
            )
        for measures in (naive, guarded):
            failed = [o for o in self.outcomes if o.bridge == measures.bridge and o.problems]
            lines.append("")
            if not failed:
                lines.append(f"{measures.bridge}: every run behaved")
                continue
            lines.append(f"{measures.bridge}: {len(failed)} of {measures.runs} runs went wrong")
            for outcome in failed:
                lines.append(f"  {_run_label(outcome, self.repetitions)}: {_why(outcome)}")
        lines.append("")
        if self.ok:
            lines.append("The guarded bridge had no problem in any call.")
        else:
            lines.append(f"The guarded bridge had {guarded.problems} problem(s): see above.")
        return "\n".join(lines)


def _run_label(outcome: RunOutcome, repetitions: int) -> str:
    if repetitions > 1:
        return f"{outcome.scenario} #{outcome.repetition + 1}"
    return outcome.scenario


def _why(outcome: RunOutcome) -> str:
    """What went wrong in a run, in one line."""
    parts = [*outcome.violations]
    if outcome.model_errors:
        parts.append(
            "model errors "
            + ", ".join(f"{code} x{count}" for code, count in sorted(outcome.model_errors.items()))
        )
    for count, what in (
        (outcome.false_barge_ins, "false barge-in"),
        (outcome.truncations_beyond_heard, "truncation beyond what was heard"),
        (outcome.cross_call_actions, "call hung up by another call's timer"),
        (outcome.calls - outcome.calls_ended_cleanly, "call not ended cleanly"),
    ):
        if count:
            parts.append(f"{what} x{count}")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# Measuring one run


def _call_key_of(path: str) -> str:
    values = parse_qs(urlsplit(path).query).get(_CALL_PARAMETER, [""])
    return values[0]


def _cut_by_another_call(record: CallRecord, own: Sequence[ConnectionRecord]) -> bool:
    """The bridge hung up although nothing in this call asked it to."""
    if record.ended_by != "bot":
        return False
    asked = any(c.sent("response.function_call_arguments.done") for c in own)
    dropped = any(c.dropped for c in own)
    return not (asked or dropped)


def _barge_in_latencies(record: CallRecord) -> tuple[list[float], int]:
    """Seconds from each barge-in's onset to the ``clear``, and the barge-ins with no clear."""
    latencies: list[float] = []
    missed = 0
    for start, end in record.spoke:
        if record.heard_between(start, start + 0.06) < _BARGE_IN_OVERLAP:
            continue  # the bot was not speaking: not a barge-in
        clear = next((c for c in record.clears if start <= c <= end + _SPEECH_TAIL), None)
        if clear is None:
            missed += 1
        else:
            latencies.append(clear - start)
    return latencies, missed


# --------------------------------------------------------------------------------------------
# Running the calls


class _Run:
    """One scenario played through one bridge: its model simulator and its calls' bookkeeping."""

    def __init__(
        self, *, scenario: Scenario, bridge: str, repetition: int, seed: int, number: int
    ) -> None:
        self.scenario = scenario
        self.bridge = bridge
        self.repetition = repetition
        self.seed = seed + repetition
        self.id = f"{bridge}-{number}"
        self.simulator = scenario.make_simulator()
        if self.seed:
            self.simulator.seed += self.seed
        self.port = 0
        self.started: set[str] = set()
        self.finished: set[str] = set()

    @property
    def running(self) -> int:
        """The run's calls whose bridge is still at work."""
        return len(self.started - self.finished)

    def call_key(self, number: int) -> str:
        return f"{self.id}.{number}"

    def caller(self, number: int) -> CallerSimulator:
        """The scenario's caller for call *number*, tagged with the call's routing key."""
        base = self.scenario.make_caller(number)
        return CallerSimulator(
            script=base.script,
            echo=base.echo,
            noise_dbfs=base.noise_dbfs,
            custom_parameters={**base.custom_parameters, _CALL_PARAMETER: self.call_key(number)},
            account_sid=base.account_sid,
            call_sid=base.call_sid,
            stream_sid=base.stream_sid,
            max_duration=base.max_duration,
            seed=base.seed + 1009 * self.seed,
        )

    def measure(self, played: ScenarioRun) -> RunOutcome:
        false_barge_ins = truncations = cut = clean = missed = 0
        latencies: list[float] = []
        for number, record in enumerate(played.calls):
            key = self.call_key(number)
            own = [c for c in played.connections if _call_key_of(c.path) == key]
            false_barge_ins += _false_barge_ins(record, own)
            truncations += _truncations_beyond_heard(record, own)
            was_cut = _cut_by_another_call(record, own)
            cut += was_cut
            heard, not_cleared = _barge_in_latencies(record)
            latencies += heard
            missed += not_cleared
            if not was_cut and key in self.finished and not any(c.open for c in own):
                clean += 1
        errors = Counter(code or "null" for code in played.error_codes(crossed=False))
        return RunOutcome(
            scenario=self.scenario.name,
            repetition=self.repetition,
            bridge=self.bridge,
            calls=len(played.calls),
            violations=played.violations(),
            model_errors=dict(sorted(errors.items())),
            crossed_cancels=played.crossed_cancels(),
            false_barge_ins=false_barge_ins,
            truncations_beyond_heard=truncations,
            cross_call_actions=cut,
            barge_in_latencies=tuple(latencies),
            barge_ins_without_clear=missed,
            calls_ended_cleanly=clean,
        )


def _start_key(text: object) -> str | None:
    """The routing key in Twilio's ``start`` message, or None for any other message."""
    if not isinstance(text, str) or '"start"' not in text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("event") != "start":
        return None
    start = data.get("start")
    params = start.get("customParameters") if isinstance(start, dict) else None
    key = params.get(_CALL_PARAMETER) if isinstance(params, dict) else None
    return key if isinstance(key, str) else None


class _Calls:
    """Every run of the demo, by the routing key of its calls."""

    def __init__(self, runs: Sequence[_Run]) -> None:
        self.runs = {run.id: run for run in runs}

    def run_of(self, key: str) -> _Run:
        run = self.runs.get(key.rpartition(".")[0])
        if run is None:
            raise LookupError(f"no demo run for call {key!r}")
        return run

    def started(self, key: str) -> None:
        self.run_of(key).started.add(key)

    def finished(self, key: str) -> None:
        self.run_of(key).finished.add(key)

    def connect_model(self, key: str) -> AbstractAsyncContextManager[Transport]:
        """Open the model connection of call *key*: its run's simulator, over a WebSocket."""
        from voiceguard.transports.websocket import connect_websocket  # noqa: PLC0415 - optional dep

        run = self.run_of(key)
        url = f"ws://{_HOST}:{run.port}/v1/realtime?model=gpt-realtime&{_CALL_PARAMETER}={key}"
        return connect_websocket(url, headers={"Authorization": "Bearer demo-needs-no-key"})


@final
class _Tap:
    """The naive bridge's end of a media stream: passes everything through and notes the call's
    routing key when Twilio's ``start`` goes by."""

    __slots__ = ("_calls", "_inner", "key")

    def __init__(self, inner: WebSocketTransport, calls: _Calls) -> None:
        self._inner = inner
        self._calls = calls
        self.key: str | None = None

    async def send(self, message: str) -> None:
        await self._inner.send(message)

    async def receive(self) -> str:
        text = await self._inner.receive()
        if self.key is None and (key := _start_key(text)) is not None:
            self.key = key
            self._calls.started(key)
        return text

    def __aiter__(self) -> _Tap:
        return self

    async def __anext__(self) -> str:
        try:
            return await self.receive()
        except TransportClosed:
            raise StopAsyncIteration from None

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        await self._inner.aclose(code, reason)

    async def abort(self) -> None:
        await self._inner.abort()


def _naive_handler(calls: _Calls) -> Callable[[WebSocketTransport], Any]:
    """The naive side's server: one :class:`NaiveBridge` shared by every call, as in the sample."""
    naive = NaiveBridge()

    async def handle(websocket: WebSocketTransport) -> None:
        tap = _Tap(websocket, calls)
        try:
            await naive(tap, lambda: calls.connect_model(tap.key or ""))
        finally:
            if tap.key is not None:
                calls.finished(tap.key)

    return handle


def _guarded_app(calls: _Calls, trace_dir: str | None = None) -> _Asgi:
    """The reference server's app, each call's model routed to its run's simulator."""
    from voiceguard.server import ServerConfig, create_app  # noqa: PLC0415 - the server extra

    def connect(start: StreamStarted) -> AbstractAsyncContextManager[Transport]:
        return calls.connect_model(start.custom_parameters.get(_CALL_PARAMETER, ""))

    # The demo's audio is synthetic, so its traces keep it: they can be replayed.
    config = ServerConfig(max_calls=10_000, trace_dir=trace_dir, trace_audio=True)
    app: _Asgi = create_app(config, connect_model=connect)

    async def counted(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Any],
        send: Callable[[MutableMapping[str, Any]], Any],
    ) -> None:
        # Notes when the server's work for a call starts and ends, for the run's bookkeeping.
        if scope.get("type") != "websocket":
            await app(scope, receive, send)
            return
        key: str | None = None

        async def tap() -> Any:
            nonlocal key
            message = await receive()
            if key is None and message.get("type") == "websocket.receive":
                key = _start_key(message.get("text"))
                if key is not None:
                    calls.started(key)
            return message

        try:
            await app(scope, tap, send)
        finally:
            if key is not None:
                calls.finished(key)

    return counted


async def _play(run: _Run, media_url: str) -> RunOutcome:
    """Make the run's calls to the bridge at *media_url*; measure what the bridge did."""
    scenario = run.scenario
    records: list[CallRecord] = []
    async with run.simulator.running(host=_HOST) as address:
        run.port = address.port
        started_at = anyio.current_time()
        for number in range(scenario.calls):
            if number:
                await anyio.sleep(scenario.between_calls)
            records.append(await run.caller(number).call(media_url))
        with anyio.move_on_after(_GRACE):
            while run.running or run.simulator.statistics().connections_open:
                await anyio.sleep(0.05)
        # Measured before the simulator stops: it closes every connection when it stops.
        played = ScenarioRun(
            scenario=scenario,
            simulator=run.simulator,
            calls=tuple(records),
            leftover_tasks=run.running,
            started_at=started_at,
        )
        return run.measure(played)


async def run_demo(
    scenarios: Sequence[str] | None = None,
    *,
    repetitions: int = 1,
    seed: int = 0,
    progress: Callable[[RunOutcome, int, int], object] | None = None,
    trace_dir: str | os.PathLike[str] | None = None,
) -> DemoReport:
    """Play scenarios through the naive bridge and the guarded reference server, side by side.

    Everything runs in this event loop, on 127.0.0.1, in real time: the reference server
    (:func:`~voiceguard.server.create_app` under uvicorn), a :class:`NaiveBridge` served with
    :func:`~voiceguard.transports.websocket.serve_websocket`, and for each run a
    :class:`~voiceguard.sim.realtime.RealtimeSimulator` of its own and the scenario's callers.
    Up to 10 runs (each scenario through each bridge, each repetition) are played at the same
    time, so the default demo (20 runs) takes about as long as two of its longest scenarios
    (about 30 s); more runs wait for a free slot (``repetitions=N`` takes about *N* times as
    long). The callers
    carry a routing key in ``start.customParameters``, which both bridges' model connections use
    to reach their run's simulator.

    Needs the asyncio backend (uvicorn) and ``pip install 'voiceguard[server]'``.

    Args:
        scenarios: Names from :data:`~voiceguard.sim.scenarios.SCENARIOS`; None plays them all.
        repetitions: How many times each scenario is played through each bridge, 1 to 20.
        seed: Varies the generated audio, line noise and ids; repetition *r* uses ``seed + r``.
            0 plays the scenarios exactly as defined.
        progress: Called as ``progress(outcome, done, total)`` after each run.
        trace_dir: Write a trace of each guarded call there, with its audio (see
            :mod:`voiceguard.observe.trace`), named ``<scenario>-<call>.jsonl`` (``-r<N>`` added for
            repetition *N* > 0); replay one with ``voiceguard replay``.

    Returns:
        Every run's outcome and each bridge's totals.

    Raises:
        ValueError: On an unknown scenario or a repetition count out of range.
        ImportError: Without the server extra.
    """
    chosen = tuple(SCENARIOS) if scenarios is None else tuple(dict.fromkeys(scenarios))
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown or not chosen:
        raise ValueError(
            f"scenarios = {list(scenarios or [])!r}; allowed: names from {', '.join(SCENARIOS)}"
        )
    count: object = repetitions  # checked as what it is: callers may not be type-checked
    if not (isinstance(count, int) and 1 <= count <= MAX_REPETITIONS):
        raise ValueError(
            f"repetitions = {repetitions!r}; allowed: an integer from 1 to {MAX_REPETITIONS}"
        )
    from voiceguard.server import serving  # noqa: PLC0415 - the server extra
    from voiceguard.transports.websocket import serve_websocket  # noqa: PLC0415 - optional dep

    runs = [
        _Run(
            scenario=SCENARIOS[name],
            bridge=bridge,
            repetition=repetition,
            seed=seed,
            number=number,
        )
        for number, (repetition, name, bridge) in enumerate(
            (r, n, b) for r in range(repetitions) for n in chosen for b in _BRIDGES
        )
    ]
    calls = _Calls(runs)
    outcomes: list[RunOutcome | None] = [None] * len(runs)
    done = 0
    limiter = anyio.CapacityLimiter(_CONCURRENT_RUNS)
    began = time.monotonic()

    async def play(index: int, url: str) -> None:
        nonlocal done
        async with limiter:
            if index < _CONCURRENT_RUNS:
                # Staggered starts: twenty calls opening in the same instant would compete for
                # the one event loop in their first, most timing-sensitive seconds (the echo).
                await anyio.sleep(index * _STAGGER)
            outcome = await _play(runs[index], url)
        outcomes[index] = outcome
        done += 1
        if progress is not None:
            progress(outcome, done, len(runs))

    async with anyio.create_task_group() as servers:
        naive_port = await servers.start(
            lambda task_status: serve_websocket(
                _naive_handler(calls), host=_HOST, port=0, task_status=task_status
            )
        )
        traces = None if trace_dir is None else Path(trace_dir)
        before = set(traces.glob("*.jsonl")) if traces is not None and traces.is_dir() else set()
        guarded_app = _guarded_app(calls, None if traces is None else str(traces))
        async with serving(guarded_app, host=_HOST) as guarded_port:
            urls = {
                "naive": f"ws://{_HOST}:{naive_port}/media-stream",
                "guarded": f"ws://{_HOST}:{guarded_port}/media-stream",
            }
            async with anyio.create_task_group() as players:
                for index, run in enumerate(runs):
                    players.start_soon(play, index, urls[run.bridge])
        servers.cancel_scope.cancel()
    if traces is not None:
        _name_traces(traces, calls, before)
    return DemoReport(
        scenarios=chosen,
        repetitions=repetitions,
        seed=seed,
        outcomes=tuple(o for o in outcomes if o is not None),
        wall_seconds=time.monotonic() - began,
    )


def _name_traces(directory: Path, calls: _Calls, before: set[Path]) -> None:
    """Rename the traces written in this demo after their scenario and call number."""
    for path in sorted(set(directory.glob("*.jsonl")) - before):
        key = None
        with path.open(encoding="utf-8") as file:
            for _, line in zip(range(3), file, strict=False):
                record = json.loads(line) if line.strip() else {}
                if isinstance(record, dict) and record.get("k") == "in":
                    key = _start_key(json.dumps(record.get("msg")))
                    break
        if key is None:
            continue
        try:
            run = calls.run_of(key)
        except LookupError:
            continue
        number = key.rpartition(".")[2]
        suffix = f"-r{run.repetition}" if run.repetition else ""
        target = directory / f"{run.scenario.name}-{number}{suffix}.jsonl"
        if not target.exists():
            path.rename(target)


# --------------------------------------------------------------------------------------------
# The command line


def _repetitions(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_REPETITIONS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: an integer from 1 to {MAX_REPETITIONS} "
            "(how many times each scenario is played)"
        )
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: an integer from 0 to {2**31 - 1}"
        )
    return value


def _missing_server_extra() -> str | None:
    """The first package of the server extra that is not installed, or None."""
    import importlib.util  # noqa: PLC0415

    for name in ("starlette", "uvicorn", "websockets"):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def _demo_command(args: argparse.Namespace) -> int:
    missing = _missing_server_extra()
    if missing is not None:
        print(
            f"voiceguard demo needs the server extra ({missing} is missing): "
            "pip install 'voiceguard[server]'",
            file=sys.stderr,
        )
        return 2
    import logging  # noqa: PLC0415

    # The table is the demo's output; the bridges' and servers' own logs would drown it.
    for name in ("voiceguard", "uvicorn", "websockets"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    names = tuple(args.scenario) if args.scenario else tuple(SCENARIOS)
    total = len(names) * args.calls * len(_BRIDGES)
    width = len(str(total))
    print(
        f"voiceguard demo: {len(names)} scenario{'s' if len(names) != 1 else ''}"
        f"{f' x {args.calls}' if args.calls > 1 else ''} through a naive bridge and the guarded "
        "reference server, both at once, in real time on 127.0.0.1 (about 30 s) ...",
        file=sys.stderr,
        flush=True,
    )

    def progress(outcome: RunOutcome, done: int, total: int) -> None:
        label = _run_label(outcome, args.calls)
        print(
            f"[{done:>{width}}/{total}] {label:<32} {outcome.bridge:<8} {outcome.summary()}",
            file=sys.stderr,
            flush=True,
        )

    async def main() -> DemoReport:
        return await run_demo(
            names,
            repetitions=args.calls,
            seed=args.seed,
            progress=progress,
            trace_dir=args.trace,
        )

    try:
        report = anyio.run(main, backend="asyncio")
    except KeyboardInterrupt:
        print("voiceguard demo: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print()
        print(report.render())
    if args.trace:
        print(
            f"traces of the guarded calls are in {args.trace}; replay one with: "
            f"voiceguard replay {Path(args.trace) / (names[0] + '-0.jsonl')} "
            "--timeline timeline.html",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``voiceguard demo`` with the command line's subcommands.

    Args:
        commands: The subcommands of the ``voiceguard`` parser.
    """
    demo = commands.add_parser(
        "demo",
        help="run the scenario library through a naive bridge and the guarded server, "
        "side by side (no key, no network)",
        description=(
            "Start a simulated OpenAI Realtime server, the guarded reference server, a naive "
            "bridge written like the popular Twilio sample, and simulated callers, all on "
            "127.0.0.1; play every scenario through both bridges at once, in real time over "
            "real sockets; print what each bridge did to the calls, side by side. No API key and "
            "no network needed. Exits 0 when the guarded bridge had no problem, 1 when it had. "
            "Needs: pip install 'voiceguard[server]'."
        ),
    )
    demo.add_argument(
        "--calls",
        type=_repetitions,
        default=1,
        metavar="N",
        help=f"play each scenario N times through each bridge, 1 to {MAX_REPETITIONS} (default: 1)",
    )
    demo.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        metavar="NAME",
        help="play only this scenario (repeatable); one of: " + ", ".join(SCENARIOS),
    )
    demo.add_argument(
        "--json", action="store_true", help="print the results as JSON (progress stays on stderr)"
    )
    demo.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="vary the generated audio, line noise and ids; 0 plays the scenarios as defined "
        "(default: 0)",
    )
    demo.add_argument(
        "--trace",
        metavar="DIR",
        help="write a trace of each guarded call to DIR (<scenario>-<call>.jsonl, audio kept), "
        "for voiceguard replay",
    )
    demo.set_defaults(handler=_demo_command)
