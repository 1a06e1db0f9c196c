"""Per-call metrics: what the guards let through, held back and dropped, in one snapshot.

:class:`CallMetrics` is built from the call's :meth:`statistics` snapshots when the call ends
(:attr:`voiceguard.CallSummary.metrics`), plus two measurements only the media handler can take:
how fast the bot fell silent on a barge-in and how much unconfirmed audio a truncation had to
guess about. The reference server adds every call's snapshot to its Prometheus metrics
(``/metrics``); docs/observability.md lists them with a query each.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, final

from voiceguard.decisions import Reason, Verdict

if TYPE_CHECKING:
    from voiceguard.core.bridge import BridgeCore


class TimerCounts(Protocol):
    """The timer counters a call's metrics take.

    The turn engine's timer statistics have them, and so has
    :class:`~voiceguard.runtime.scope.CallScopeStatistics` (a call scope's timers).
    """

    @property
    def armed(self) -> int: ...
    @property
    def fired(self) -> int: ...
    @property
    def suppressed(self) -> Mapping[Reason, int]: ...


__all__ = ("CallMetrics", "call_metrics")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallMetrics:
    """An immutable snapshot of one call's guarded actions.

    Attributes:
        decisions: Every decision per ``(guard, verdict, reason)``; guards are
            ``calibration_gate``, ``cancel_arbiter`` and ``response_create_guard``.
        barge_ins_allowed: ``speech_started`` events (and late barge-ins) the calibration gate
            let through as the caller interrupting.
        barge_ins_suppressed: ``speech_started`` events judged to be echo or noise.
        barge_ins_false_resumed: Allowed barge-ins whose speech vanished before the
            confirmation, after which the bot resumed from where it was heard.
        cancels_sent: ``response.cancel`` messages sent.
        cancels_suppressed: Cancels the arbiter refused (no response, already sent, done, ...).
        creates_sent: ``response.create`` messages sent.
        creates_deferred: Creates held until the running response ended.
        creates_dropped: Creates refused or dropped (coalesced, expired, queue full, closing).
        timers_armed: The call's timers armed (the turn engine's deadlines: the watch over each
            create, the hang-up fallback, each idle rung, the time limits).
        timers_fired: Timers that came due and were acted on.
        timers_suppressed: Timers that came due but whose action a guard refused (an idle
            prompt while the bot's audio plays, a second re-send of a lost create).
        truncations: ``conversation.item.truncate`` messages sent.
        unheard_at_truncation_ms: For each truncation, the audio of the item that had been sent
            to the phone beyond the truncation point without a mark confirming it was played:
            the most by which the heard position can be wrong.
        barge_in_reaction: For each allowed barge-in that cleared the phone, the seconds from the
            ``speech_started`` event reaching the bridge to the Twilio ``clear`` being sent.
    """

    decisions: Mapping[tuple[str, Verdict, Reason], int]
    barge_ins_allowed: int
    barge_ins_suppressed: int
    barge_ins_false_resumed: int
    cancels_sent: int
    cancels_suppressed: int
    creates_sent: int
    creates_deferred: int
    creates_dropped: int
    timers_armed: int
    timers_fired: int
    timers_suppressed: int
    truncations: int
    unheard_at_truncation_ms: Sequence[float]
    barge_in_reaction: Sequence[float]


def call_metrics(
    core: BridgeCore,
    *,
    timers: TimerCounts | None = None,
    barge_in_reactions: Sequence[float] = (),
    unheard_at_truncation: Sequence[float] = (),
) -> CallMetrics:
    """Build a call's :class:`CallMetrics` from its bridge.

    Args:
        core: The call's bridge.
        timers: The timer counters to report; the call's own timers (the turn engine's
            deadlines: the watch over each create, the hang-up fallback, the idle ladder, the
            time limits) by default.
        barge_in_reactions: Measured barge-in reaction times, in seconds.
        unheard_at_truncation: Unconfirmed audio at each truncation, in ms.

    Returns:
        The snapshot.
    """
    decisions: dict[tuple[str, Verdict, Reason], int] = {}
    for guard, counts in (
        ("calibration_gate", core.barge_in_statistics()),
        ("cancel_arbiter", core.cancels.statistics()),
        ("response_create_guard", core.creates.statistics()),
    ):
        for (verdict, reason), n in counts.by_reason.items():
            decisions[guard, verdict, reason] = n

    def count(guard: str, verdict: Verdict) -> int:
        return sum(n for (g, v, _), n in decisions.items() if g == guard and v is verdict)

    state = core.state.statistics()
    if timers is None:
        timers = core.engine.deadlines.statistics()
    return CallMetrics(
        decisions=MappingProxyType(decisions),
        barge_ins_allowed=count("calibration_gate", Verdict.ALLOW),
        barge_ins_suppressed=count("calibration_gate", Verdict.SUPPRESS),
        barge_ins_false_resumed=core.false_interruptions,
        cancels_sent=state.cancels_sent,
        cancels_suppressed=count("cancel_arbiter", Verdict.SUPPRESS),
        creates_sent=state.creates_sent,
        creates_deferred=count("response_create_guard", Verdict.DEFER),
        creates_dropped=count("response_create_guard", Verdict.SUPPRESS),
        timers_armed=timers.armed,
        timers_fired=timers.fired,
        timers_suppressed=sum(timers.suppressed.values()),
        truncations=state.truncates_sent,
        unheard_at_truncation_ms=tuple(unheard_at_truncation),
        barge_in_reaction=tuple(barge_in_reactions),
    )
