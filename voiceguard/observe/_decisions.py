"""The decisions of a call trace and of its replay, and where they differ.

What :func:`~voiceguard.observe.replay.replay` returns, and what the timeline draws; re-exported by
:mod:`voiceguard.observe.replay`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, final

from voiceguard.config import BridgeConfig
from voiceguard.observe.trace import Trace

__all__ = ("DecisionDifference", "ReplayResult", "TraceDecision", "start_time")


def start_time(trace: Trace) -> float:
    """The time of the trace's first record (its clock's zero for display), or 0."""
    return float(trace.records[0]["t"]) if trace.records else 0.0


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TraceDecision:
    """One decision of a trace or of its replay.

    Attributes:
        t: The monotonic time of the input that led to it, in the trace's clock.
        guard: ``calibration_gate``, ``cancel_arbiter`` or ``response_create_guard``.
        action: The :class:`~voiceguard.Action` value.
        verdict: The :class:`~voiceguard.Verdict` value.
        reason: The :class:`~voiceguard.Reason` value.
        response_id: The response it is about, if any.
        item_id: The conversation item it is about, if any.
        detail: The guard's explanation.
    """

    t: float
    guard: str
    action: str
    verdict: str
    reason: str
    response_id: str | None = None
    item_id: str | None = None
    detail: str = ""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TraceDecision:
        """From a trace's ``decision`` record."""
        return cls(
            t=float(record["t"]),
            guard=str(record["guard"]),
            action=str(record["action"]),
            verdict=str(record["verdict"]),
            reason=str(record["reason"]),
            response_id=record.get("response_id"),
            item_id=record.get("item_id"),
            detail=str(record.get("detail") or ""),
        )

    @property
    def key(self) -> tuple[object, ...]:
        """What must match for two decisions to be the same (the detail text may differ)."""
        return (
            round(self.t, 6),
            self.action,
            self.verdict,
            self.reason,
            self.response_id,
            self.item_id,
        )

    def describe(self, t0: float = 0.0) -> str:
        """One line: time, guard, action, verdict, reason, ids and detail."""
        parts = [
            f"{self.t - t0:8.3f} s",
            f"{self.guard:<21}",
            f"{self.action:<8}",
            f"{self.verdict:<8}",
            self.reason,
        ]
        if self.response_id:
            parts.append(f"response={self.response_id}")
        if self.item_id:
            parts.append(f"item={self.item_id}")
        if self.detail:
            parts.append(f"({self.detail})")
        return "  ".join(parts)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionDifference:
    """A place where the replay decided differently from the recording.

    Attributes:
        recorded: The recorded decision, or None if the replay made an extra one.
        replayed: The replayed decision, or None if the replay did not make the recorded one.
    """

    recorded: TraceDecision | None
    replayed: TraceDecision | None

    @property
    def t(self) -> float:
        """When (the trace's clock)."""
        either = self.recorded if self.recorded is not None else self.replayed
        assert either is not None
        return either.t


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """What a replay decided, next to what was recorded.

    Attributes:
        trace: The trace replayed.
        config: The configuration the replay ran with.
        config_changed: True if it differs from the recorded one.
        recorded: The recorded decisions.
        replayed: The replay's decisions.
        differences: Where they differ, in time order (empty: identical).
        sent: The control messages the replay sent (``(t, type)``; audio frames and marks left
            out).
        gate: The replayed calibration gate's final estimates (noise floor, echo delay and
            return loss).
    """

    trace: Trace
    config: BridgeConfig
    config_changed: bool
    recorded: Sequence[TraceDecision]
    replayed: Sequence[TraceDecision]
    differences: Sequence[DecisionDifference]
    sent: Sequence[tuple[float, str]]
    gate: Mapping[str, float | None]

    @property
    def identical(self) -> bool:
        """True if every replayed decision matches the recorded one."""
        return not self.differences

    def render(self) -> str:
        """The replay as text: every decision with its reason, differences flagged ``!``."""
        t0 = start_time(self.trace)
        differing_recorded = {id(d.recorded) for d in self.differences if d.recorded is not None}
        differing_replayed = {id(d.replayed) for d in self.differences if d.replayed is not None}
        lines = [
            f"trace {self.trace.path} (call {self.trace.call_sid or '?'}): "
            f"{len(self.recorded)} decisions recorded, {len(self.replayed)} replayed"
            + (" with a changed configuration" if self.config_changed else ""),
        ]
        for decision in self.replayed:
            flag = "!" if id(decision) in differing_replayed else " "
            lines.append(f"{flag} {decision.describe(t0)}")
        if self.differences:
            lines.append("")
            lines.append(f"{len(self.differences)} difference(s) from the recording:")
            for diff in self.differences:
                if diff.recorded is not None and id(diff.recorded) in differing_recorded:
                    lines.append(f"  recorded: {diff.recorded.describe(t0)}")
                else:
                    lines.append(f"  recorded: {'':>8}   (nothing)")
                if diff.replayed is not None:
                    lines.append(f"  replayed: {diff.replayed.describe(t0)}")
                else:
                    lines.append(f"  replayed: {'':>8}   (nothing)")
            if not self.config_changed:
                lines.append("the replay is not deterministic: please report this trace")
        else:
            lines.append("")
            lines.append("replayed decisions are identical to the recorded ones")
        return "\n".join(lines)
