"""What the demo measures: per run (:class:`RunOutcome`), per bridge (:class:`BridgeMeasures`).

The per-call measures come from the simulator's records: :func:`cut_by_another_call` and
:func:`barge_in_latencies` here, the false barge-ins and the truncations past what was heard in
:mod:`voiceguard.sim.measures`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from voiceguard.sim.caller import CallRecord
from voiceguard.sim.realtime import ConnectionRecord

__all__ = (
    "BRIDGES",
    "BridgeMeasures",
    "RunOutcome",
    "barge_in_latencies",
    "cut_by_another_call",
)

#: The bridges the demo plays every scenario through, in the order it reports them.
BRIDGES: Final = ("naive", "guarded")
#: An interruption this long after the caller stopped talking is still the caller's.
_SPEECH_TAIL: Final = 1.0
#: Bot audio heard in the 60 ms after the caller starts talking that makes it a barge-in.
_BARGE_IN_OVERLAP: Final = 0.04


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
        cut_by: For the calls of :attr:`cross_call_actions` whose cause is known, whose timer
            hung them up: the other call, as ``"<scenario> call <n>"`` (n from 1). It belongs to
            another run, often of another scenario: the runs are played at the same time.
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
    cut_by: tuple[str, ...] = ()

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
            "cut_by": list(self.cut_by),
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


def cut_by_another_call(record: CallRecord, own: Sequence[ConnectionRecord]) -> bool:
    """Whether the bridge hung up a call although nothing in that call asked it to.

    A call hung up by the bot (the bridge closed the stream) is its own when the model asked for
    it (an ``end_call`` function call) or its model connection dropped; otherwise something else,
    such as another call's leaked hang-up timer, cut it (counted in
    :attr:`~voiceguard.demo.RunOutcome.cross_call_actions`).

    Args:
        record: What the caller of the call heard and did.
        own: The call's model connections, as the model simulator recorded them.

    Returns:
        True if the call was cut by something not its own.
    """
    if record.ended_by != "bot":
        return False
    asked = any(c.sent("response.function_call_arguments.done") for c in own)
    dropped = any(c.dropped for c in own)
    return not (asked or dropped)


def barge_in_latencies(record: CallRecord) -> tuple[list[float], int]:
    """Seconds from each barge-in's onset to the ``clear``, and the barge-ins with no clear.

    A caller's turn is a barge-in when at least 40 ms of bot audio was heard in its first 60 ms;
    its ``clear`` is the first one from the turn's onset to a second after the turn ended.

    Args:
        record: What the caller of the call heard and did.

    Returns:
        The latencies in seconds of the barge-ins that were cleared, and how many were not.
    """
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
