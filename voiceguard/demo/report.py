"""The demo's report: every run's outcome, each bridge's totals, and the side-by-side table.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any, final

from voiceguard.config import CalibrationConfig
from voiceguard.demo.measures import BRIDGES, BridgeMeasures, RunOutcome

__all__ = ("DemoReport", "run_label")


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
            "bridges": {name: self.measures(name).to_json() for name in BRIDGES},
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
            f"{f' x {self.repetitions}' if self.repetitions > 1 else ''} "
            f"({naive.calls} call{'s' if naive.calls != 1 else ''} per bridge), each played "
            "through both bridges at once, in real time over 127.0.0.1 "
            f"({self.wall_seconds:.1f} s)",
            "",
        ]
        for label, left, right in rows:
            lines.append(
                f"  {label.ljust(widths[0])}   {left.rjust(widths[1])}   {right.rjust(widths[2])}"
            )
        lines.append("")
        lines.extend(self._notes())
        for measures in (naive, guarded):
            failed = [o for o in self.outcomes if o.bridge == measures.bridge and o.problems]
            lines.append("")
            if not failed:
                lines.append(f"{measures.bridge}: every run behaved")
                continue
            lines.append(f"{measures.bridge}: {len(failed)} of {measures.runs} runs went wrong")
            for outcome in failed:
                lines.append(f"  {run_label(outcome, self.repetitions)}: {_why(outcome)}")
        lines.append("")
        if self.ok:
            lines.append("The guarded bridge had no problem in any call.")
        else:
            lines.append(f"The guarded bridge had {guarded.problems} problem(s): see above.")
        return "\n".join(lines)

    def _notes(self) -> list[str]:
        """What the table does not say by itself: why the figures are what they are."""
        several = sorted(
            {(o.scenario, o.calls) for o in self.outcomes if o.repetition == 0 and o.calls > 1}
        )
        defer = CalibrationConfig().max_defer
        runs = self.repetitions
        notes = [
            (
                "calls: a scenario may make several calls, one after the other"
                + (
                    " ("
                    + ", ".join(f"{name} makes {calls}" for name, calls in several)
                    + "), so there are more calls than scenarios."
                    if several
                    else "."
                )
            ),
            "barge-in reaction latency: the naive bridge clears the phone at the first "
            "speech_started, for any sound, the bot's own echo included (its false barge-ins "
            "above); the guarded bridge first tells the caller from the echo of the bot's voice, "
            f"and waits up to {defer * 1000:.0f} ms while the two overlap: a slower reaction "
            "and a higher p95, the price of not letting the echo cut the bot off.",
            "calls hung up by another call's timer: the naive bridge's hang-up fallback is not "
            "scoped to its call; it hangs up whichever call is on the line when it fires, which "
            "may belong to any scenario played at the same time. It is counted in the row of the "
            "call hung up; the runs below name the scenario whose timer it was.",
            f"run to run: these figures come from {runs} run{'s' if runs != 1 else ''} of each "
            "scenario through each bridge (--calls N plays each N times). Everything runs in "
            "real time on this machine, all runs sharing one event loop, so when each message "
            "arrives varies by milliseconds with the machine's load; the naive bridge's faults "
            "hang on that timing (which race it loses, which call its leaked timer hits), so "
            "its figures change from run to run. The guarded bridge's decisions are meant not "
            "to; its latencies vary too. --seed N varies the audio, noise and ids as well.",
        ]
        lines = ["Notes:"]
        for note in notes:
            lines.extend(
                textwrap.wrap(note, width=100, initial_indent="  - ", subsequent_indent="    ")
            )
        return lines


def run_label(outcome: RunOutcome, repetitions: int) -> str:
    """The name of a run in the demo's output: its scenario, numbered when each is repeated.

    Args:
        outcome: The run's outcome.
        repetitions: How many times each scenario is played.

    Returns:
        ``"<scenario>"``, or ``"<scenario> #<n>"`` (from 1) when *repetitions* is over 1.
    """
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
    whose = f" (the timer of {', '.join(outcome.cut_by)})" if outcome.cut_by else ""
    for count, what, detail in (
        (outcome.false_barge_ins, "false barge-in", ""),
        (outcome.truncations_beyond_heard, "truncation beyond what was heard", ""),
        (outcome.cross_call_actions, "call hung up by another call's timer", whose),
        (outcome.calls - outcome.calls_ended_cleanly, "call not ended cleanly", ""),
    ):
        if count:
            parts.append(f"{what} x{count}{detail}")
    return "; ".join(parts)
