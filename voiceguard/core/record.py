"""Counting and logging of decisions, shared by the guards (invariant 7 of the design page)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import final

from voiceguard.decisions import Decision, Reason, Verdict

__all__ = ("DecisionCounts", "DecisionSink", "TimerSink")

#: A callable that receives every decision a guard makes (for metrics, traces, tests).
DecisionSink = Callable[[Decision], None]
#: A callable told of each of the call's own timers as it fires (for call traces): its name
#: (``watchdog``, ``idle_prompt``, ``idle_hangup``, ``max_duration``, ``max_duration_hard``,
#: ``hangup_fallback``), the time, and the idle prompt's number (None for the others).
TimerSink = Callable[[str, float, int | None], None]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionCounts:
    """An immutable snapshot of how often a guard decided what.

    Attributes:
        total: Decisions made.
        by_verdict: Decisions per :class:`~voiceguard.Verdict`.
        by_reason: Decisions per ``(verdict, reason)`` pair.
    """

    total: int
    by_verdict: Mapping[Verdict, int]
    by_reason: Mapping[tuple[Verdict, Reason], int]

    def count(self, verdict: Verdict, reason: Reason | None = None) -> int:
        """How many decisions had *verdict* (and *reason*, when given)."""
        if reason is None:
            return self.by_verdict.get(verdict, 0)
        return self.by_reason.get((verdict, reason), 0)


class Recorder:
    """Counts every decision, logs it, and passes it to an optional sink.

    Allowed decisions are logged at DEBUG; suppressed and deferred ones at INFO (one line each),
    with structured ``extra`` fields: ``call_sid``, ``stream_sid``, ``guard``, ``action``,
    ``verdict``, ``reason``, ``response_id``, ``item_id``, ``t`` (the monotonic time).
    """

    __slots__ = ("_counts", "_guard", "_identity", "_logger", "_sink")

    def __init__(
        self,
        *,
        guard: str,
        logger: logging.Logger,
        sink: DecisionSink | None,
        identity: Callable[[], tuple[str | None, str | None]],
    ) -> None:
        self._guard = guard
        self._logger = logger
        self._sink = sink
        self._identity = identity
        self._counts: Counter[tuple[Verdict, Reason]] = Counter()

    def record(self, decision: Decision, now: float) -> Decision:
        self._counts[decision.verdict, decision.reason] += 1
        level = logging.DEBUG if decision.allowed else logging.INFO
        if self._logger.isEnabledFor(level):
            call_sid, stream_sid = self._identity()
            self._logger.log(
                level,
                "%s: %s",
                self._guard,
                decision,
                extra={
                    "call_sid": call_sid,
                    "stream_sid": stream_sid,
                    "guard": self._guard,
                    "action": decision.action.value,
                    "verdict": decision.verdict.value,
                    "reason": decision.reason.value,
                    "response_id": decision.response_id,
                    "item_id": decision.item_id,
                    "t": now,
                },
            )
        if self._sink is not None:
            self._sink(decision)
        return decision

    def snapshot(self) -> DecisionCounts:
        by_verdict: Counter[Verdict] = Counter()
        for (verdict, _), n in self._counts.items():
            by_verdict[verdict] += n
        return DecisionCounts(
            total=sum(self._counts.values()),
            by_verdict=MappingProxyType(dict(by_verdict)),
            by_reason=MappingProxyType(dict(self._counts)),
        )
