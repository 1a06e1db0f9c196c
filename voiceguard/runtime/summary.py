"""What one call did: :class:`CallSummary`, built by :func:`call_summary` when the call ends.

:class:`~voiceguard.MediaHandler` returns one from ``run()``; the server logs it and counts it
in its metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, final

from voiceguard.core.guards.calibration import CalibrationStatistics
from voiceguard.core.playout import PlayoutStatistics
from voiceguard.core.record import DecisionCounts
from voiceguard.core.state import CallStateStatistics
from voiceguard.observe.metrics import CallMetrics, call_metrics
from voiceguard.runtime.scope import CallScope, CallScopeStatistics

if TYPE_CHECKING:
    from voiceguard.core.bridge import BridgeCore
    from voiceguard.core.state import AssistantItem
    from voiceguard.protocol import StreamStarted

__all__ = ("CallSummary",)  # the rest serves the handler


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallSummary:
    """What happened in one call, for logs, metrics and tests.

    Attributes:
        call_sid: Twilio's call SID, if the stream started.
        stream_sid: Twilio's stream SID, if the stream started.
        ended_by: Why the call ended (``"twilio stop"``, ``"phone closed"``,
            ``"model closed"``, ``"hang-up: goodbye played"``, ...).
        duration: Seconds from Twilio's ``start`` to the end.
        bad_messages: Malformed messages per peer (``"twilio"``, ``"realtime"``).
        model_errors: ``error`` events from the model, per code.
        state: The call state's counters.
        cancels: The cancel arbiter's decisions.
        creates: The create guard's decisions.
        gate: The calibration gate's statistics.
        playout: The playout buffer's counters.
        timers: The call scope's timer statistics (``pending`` is 0 after every call).
        metrics: The call's guarded actions counted for metrics (barge-ins, cancels, creates,
            timers, truncations, reaction latencies); None if the stream never started.
    """

    call_sid: str | None
    stream_sid: str | None
    ended_by: str
    duration: float
    bad_messages: MappingProxyType[str, int]
    model_errors: MappingProxyType[str, int]
    state: CallStateStatistics | None
    cancels: DecisionCounts | None
    creates: DecisionCounts | None
    gate: CalibrationStatistics | None
    playout: PlayoutStatistics | None
    timers: CallScopeStatistics | None
    metrics: CallMetrics | None = None


def call_summary(
    core: BridgeCore | None,
    *,
    start: StreamStarted | None,
    ended_by: str,
    duration: float,
    bad: Mapping[str, int],
    model_errors: Mapping[str, int],
    scope: CallScope | None,
    reactions: Sequence[float],
    unheard_at_truncation: Sequence[float],
) -> CallSummary:
    """The :class:`CallSummary` of a call; *core* is None for a call that never started."""
    return CallSummary(
        call_sid=start.call_sid if start is not None else None,
        stream_sid=start.stream_sid if start is not None else None,
        ended_by=ended_by,
        duration=duration,
        bad_messages=MappingProxyType(dict(bad)),
        model_errors=MappingProxyType(dict(model_errors)),
        state=core.state.statistics() if core is not None else None,
        cancels=core.cancels.statistics() if core is not None else None,
        creates=core.creates.statistics() if core is not None else None,
        gate=core.gate.statistics() if core is not None else None,
        playout=core.playout.statistics() if core is not None else None,
        timers=scope.statistics() if scope is not None else None,
        metrics=call_metrics(
            core,
            barge_in_reactions=reactions,
            unheard_at_truncation=unheard_at_truncation,
        )
        if core is not None
        else None,
    )


@final
class CallMeasures:
    """What a call's sent messages say of its guards: how fast each barge-in silenced the bot
    (``speech_started`` in, ``clear`` out), and how much sent audio was not yet confirmed
    played at each truncation (the most by which the heard position can be wrong).

    Attributes:
        reactions: Seconds from each ``speech_started`` to the ``clear`` it caused.
        unheard_at_truncation: Milliseconds of sent, unconfirmed audio at each truncation.
    """

    def __init__(self) -> None:
        self._since: float | None = None
        self.reactions: list[float] = []
        self.unheard_at_truncation: list[float] = []

    def speech_started(self, now: float) -> None:
        """The model said the caller started speaking."""
        self._since = now

    def sent(
        self, kind: object, message: Mapping[str, Any], now: float, item: AssistantItem | None
    ) -> None:
        """A message went out at *now*; *item*: the bot's item on the phone, if any."""
        if kind == "clear" and self._since is not None:
            self.reactions.append(now - self._since)
            self._since = None
        elif kind == "conversation.item.truncate":
            end_ms = message.get("audio_end_ms")
            same = item is not None and item.item_id == message.get("item_id")
            if item is not None and same and isinstance(end_ms, int):
                self.unheard_at_truncation.append(max(0.0, item.sent_ms - end_ms))


def trace_gate(gate: CalibrationStatistics) -> dict[str, float | None]:
    """What a trace's end record keeps of the gate: the noise floor and the echo path."""
    return {
        "noise_floor_dbfs": gate.noise_floor_dbfs,
        "echo_delay_ms": gate.echo_delay_ms,
        "echo_return_loss_db": gate.echo_return_loss_db,
        "echo_confidence": gate.echo_confidence,
    }
