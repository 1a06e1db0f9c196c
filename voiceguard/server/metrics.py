"""The reference server's Prometheus metrics: calls, refusals, bad messages, guard decisions.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, final

from voiceguard.decisions import Reason, Verdict

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from voiceguard.runtime.handler import CallSummary

__all__ = ("ServerMetrics",)


def _end_reason(ended_by: str) -> str:
    """A bounded label for a call's end (no codes, exception texts or numbers)."""
    if ended_by.startswith("model connection failed"):
        return "model connection failed"
    if ended_by.startswith("model timeout"):
        return "model timeout"
    if ended_by.startswith("no start within"):
        return "no start"
    if ended_by.startswith("more than") and "malformed" in ended_by:
        return "too many malformed messages"
    if ended_by.startswith("start refused"):
        return "start refused"
    return re.sub(r"\s*\([^)]*\)", "", ended_by).strip()[:60] or "ended"


@final
class ServerMetrics:
    """An app's Prometheus metrics, in a registry of its own (what ``GET /metrics`` shows).

    The names, labels and meanings are listed in the server's docs (``docs/server.md``).
    Needs ``prometheus_client`` (the ``server`` extra).

    Attributes:
        registry: The registry every metric is in.
    """

    def __init__(self) -> None:
        from prometheus_client import (  # noqa: PLC0415 - the server extra
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.started = Counter(
            "voiceguard_calls_started",
            "Calls started: media streams past Twilio's start and the server's checks.",
            registry=registry,
        )
        self.active = Gauge("voiceguard_calls_active", "Calls in progress.", registry=registry)
        self.ended = Counter(
            "voiceguard_calls_ended",
            "Calls ended, by why they ended.",
            ["reason"],
            registry=registry,
        )
        self.refused = Counter(
            "voiceguard_requests_refused",
            "Webhooks and media streams refused before a call started.",
            ["endpoint", "reason"],
            registry=registry,
        )
        self.pending = Gauge(
            "voiceguard_streams_pending",
            "Media streams accepted and waiting for Twilio's start (not counted as calls).",
            registry=registry,
        )
        _register_edge(registry)
        self.duration = Histogram(
            "voiceguard_call_duration_seconds",
            "Call duration, from Twilio's start to the end.",
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 3600),
            registry=registry,
        )
        self.bad_messages = Counter(
            "voiceguard_bad_messages",
            "Malformed or refused messages, by peer (twilio, realtime).",
            ["peer"],
            registry=registry,
        )
        self.model_errors = Counter(
            "voiceguard_model_errors",
            "Error events from the Realtime API, by error code.",
            ["code"],
            registry=registry,
        )
        self.decisions = Counter(
            "voiceguard_guard_decisions",
            "Guard decisions, by guard, verdict and reason.",
            ["guard", "verdict", "reason"],
            registry=registry,
        )
        self.barge_ins = Counter(
            "voiceguard_barge_ins",
            "Caller speech starts, by outcome: allowed (the bot paused), suppressed (echo or "
            "noise), false_resumed (allowed, then the speech vanished and the bot resumed).",
            ["outcome"],
            registry=registry,
        )
        self.cancels = Counter(
            "voiceguard_cancels",
            "response.cancel, by outcome: sent, or suppressed by the cancel arbiter.",
            ["outcome"],
            registry=registry,
        )
        self.creates = Counter(
            "voiceguard_creates",
            "response.create, by outcome: sent, deferred (held until the running response "
            "ended), or dropped by the create guard.",
            ["outcome"],
            registry=registry,
        )
        self.timers = Counter(
            "voiceguard_timers",
            "Call-scoped timers, by outcome: armed, fired, or suppressed (due after its call "
            "closed or for another call).",
            ["outcome"],
            registry=registry,
        )
        self.truncations = Counter(
            "voiceguard_truncations",
            "conversation.item.truncate messages sent (the model forgets what was not heard).",
            registry=registry,
        )
        self.unheard = Histogram(
            "voiceguard_truncation_unheard_ms",
            "Audio sent to the phone past a truncation point and not yet confirmed played by a "
            "mark: the most by which the heard position can be wrong, in ms.",
            buckets=(0, 20, 50, 100, 200, 400, 800, 1600, 3200),
            registry=registry,
        )
        self.reaction = Histogram(
            "voiceguard_barge_in_reaction_seconds",
            "From a speech_started reaching the bridge to the Twilio clear that silences the "
            "bot, for each allowed barge-in.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=registry,
        )

    def record(self, summary: CallSummary, refused: Mapping[str, int]) -> None:
        """Count a call that ended.

        Args:
            summary: What the call's handler returned.
            refused: Messages from Twilio the phone transport refused, by why.
        """
        self.ended.labels(_end_reason(summary.ended_by)).inc()
        if summary.call_sid is not None:
            self.duration.observe(summary.duration)
        for peer, count in summary.bad_messages.items():
            self.bad_messages.labels(peer).inc(count)
        if sum(refused.values()):
            self.bad_messages.labels("twilio").inc(sum(refused.values()))
        for code, count in summary.model_errors.items():
            self.model_errors.labels(code).inc(count)
        for guard, counts in (
            ("cancel_arbiter", summary.cancels),
            ("response_create_guard", summary.creates),
        ):
            if counts is None:
                continue
            for (verdict, reason), count in counts.by_reason.items():
                self.decisions.labels(guard, verdict.value, reason.value).inc(count)
        if summary.gate is not None:
            for reason, count in summary.gate.decisions.items():
                judged = Verdict.ALLOW if reason is Reason.OK else Verdict.SUPPRESS
                self.decisions.labels("calibration_gate", judged.value, reason.value).inc(count)
        m = summary.metrics
        if m is None:
            return
        for counter, outcomes in (
            (
                self.barge_ins,
                {
                    "allowed": m.barge_ins_allowed,
                    "suppressed": m.barge_ins_suppressed,
                    "false_resumed": m.barge_ins_false_resumed,
                },
            ),
            (self.cancels, {"sent": m.cancels_sent, "suppressed": m.cancels_suppressed}),
            (
                self.creates,
                {
                    "sent": m.creates_sent,
                    "deferred": m.creates_deferred,
                    "dropped": m.creates_dropped,
                },
            ),
            (
                self.timers,
                {
                    "armed": m.timers_armed,
                    "fired": m.timers_fired,
                    "suppressed": m.timers_suppressed,
                },
            ),
        ):
            for outcome, count in outcomes.items():
                counter.labels(outcome).inc(count)
        self.truncations.inc(m.truncations)
        for ms in m.unheard_at_truncation_ms:
            self.unheard.observe(ms)
        for seconds in m.barge_in_reaction:
            self.reaction.observe(seconds)


def _register_edge(registry: CollectorRegistry) -> None:
    """Show the connections this process closed at its edge (:mod:`voiceguard.server.edge`)."""
    from prometheus_client.core import CounterMetricFamily  # noqa: PLC0415 - the server extra

    from voiceguard.server.edge import DROPPED  # noqa: PLC0415 - imports uvicorn

    class EdgeCollector:
        def collect(self) -> Iterator[CounterMetricFamily]:
            family = CounterMetricFamily(
                "voiceguard_connections_closed",
                "Connections this process closed before a request or a call (no request head "
                "in time, too many waiting) and accept() calls that failed, by reason.",
                labels=["reason"],
            )
            for reason in ("no request", "too many waiting", "accept failed"):
                family.add_metric([reason], DROPPED[reason])
            yield family

    registry.register(EdgeCollector())
