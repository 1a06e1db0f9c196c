"""The reference server's Prometheus metrics: calls, refusals, bad messages, guard decisions.

The guards' decisions are counted as they are made (:meth:`ServerMetrics.decided`, each call's
:data:`~voiceguard.DecisionSink`): ``voiceguard_guard_decisions_total`` and the barge-in, cancel
and create outcomes move while the call runs. What is known only when a call ends (why it
ended, its duration, its malformed messages and model errors, its timers, truncations and
reaction times) is added then (:meth:`ServerMetrics.record`).

With a *directory* (``voiceguard serve --workers N``), the metrics are prometheus_client's
multiprocess ones: each worker writes its own to files there and every worker's ``/metrics``
shows the sums of all of them.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, final

from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from voiceguard.runtime.handler import CallSummary

__all__ = ("MULTIPROCESS_ENV", "ServerMetrics")

#: The environment variable of prometheus_client's multiprocess mode: the directory its
#: processes write their metrics to. It must be set before ``prometheus_client`` is imported.
MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: The guard behind each kind of decision, as the logs and the metric labels name it.
_GUARDS: Final = {
    Action.BARGE_IN: "calibration_gate",
    Action.CANCEL: "cancel_arbiter",
    Action.CREATE: "response_create_guard",
}
#: The outcome counter (an attribute of ServerMetrics) and label each decision moves.
_OUTCOMES: Final = {
    (Action.BARGE_IN, Verdict.ALLOW): ("barge_ins", "allowed"),
    (Action.BARGE_IN, Verdict.SUPPRESS): ("barge_ins", "suppressed"),
    (Action.CANCEL, Verdict.ALLOW): ("cancels", "sent"),  # the arbiter counts it sent at once
    (Action.CANCEL, Verdict.SUPPRESS): ("cancels", "suppressed"),
    (Action.CREATE, Verdict.ALLOW): ("creates", "sent"),  # so does the create guard
    (Action.CREATE, Verdict.DEFER): ("creates", "deferred"),
    (Action.CREATE, Verdict.SUPPRESS): ("creates", "dropped"),
}
#: Every label of the outcome counters, shown (at 0) from the start.
_OUTCOME_LABELS: Final = {
    "barge_ins": ("allowed", "suppressed", "false_resumed"),
    "cancels": ("sent", "suppressed"),
    "creates": ("sent", "deferred", "dropped"),
    "timers": ("armed", "fired", "suppressed"),
}
#: The directory this process's multiprocess metrics were built for (at most one).
_MULTIPROCESS_BUILT: Final[list[str]] = []
_EDGE_REASONS: Final = ("no request", "too many waiting", "accept failed")
_EDGE_HELP: Final = (
    "Connections closed before a request or a call (no request head in time, too many "
    "waiting) and accept() calls that failed, by reason."
)


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

    Args:
        directory: None: this app's metrics alone, in memory. A directory: prometheus_client's
            multiprocess mode, shared with every process that writes there (the workers of
            ``voiceguard serve --workers N``); the registry shows the sums over all of them.
            :data:`MULTIPROCESS_ENV` must name it, and have named it when
            ``prometheus_client`` was imported.

    Raises:
        ConfigError: If *directory* is given but prometheus_client is not in multiprocess
            mode for it.
        RuntimeError: If this process built metrics for a directory before: each process
            writes one value per metric there, so a second set would overwrite the first's.

    Attributes:
        registry: What ``GET /metrics`` shows.
    """

    def __init__(self, *, directory: str | None = None) -> None:
        from prometheus_client import (  # noqa: PLC0415 - the server extra
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        # The registry each metric is in: this app's, or none with a directory, where each value
        # lives in this process's files and the registry's collector sums every process's.
        registry: CollectorRegistry | None
        if directory is None:
            self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
            registry = self.registry
        else:
            from prometheus_client.multiprocess import (  # noqa: PLC0415
                MultiProcessCollector,
            )

            _check_multiprocess(directory)
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]
            registry = None
        self.started = Counter(
            "voiceguard_calls_started",
            "Calls started: media streams past Twilio's start and the server's checks.",
            registry=registry,
        )
        self.active = Gauge(
            "voiceguard_calls_active",
            "Calls in progress.",
            registry=registry,
            multiprocess_mode="livesum",
        )
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
            multiprocess_mode="livesum",
        )
        if directory is None:
            _register_edge(self.registry)
        else:
            edge = Counter("voiceguard_connections_closed", _EDGE_HELP, ["reason"], registry=None)
            _count_edge(edge)
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
            "Guard decisions, by guard, verdict and reason, counted as they are made.",
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
        for name, outcomes in _OUTCOME_LABELS.items():
            for outcome in outcomes:
                getattr(self, name).labels(outcome)
        # The counters each kind of decision moves, found once (decisions come a few a second).
        self._moves: dict[tuple[Action, Verdict, Reason], tuple[Any, ...]] = {}

    def decided(self, decision: Decision) -> None:
        """Count one decision of a call's guards, as it is made.

        A :data:`~voiceguard.DecisionSink` for each call's
        :class:`~voiceguard.MediaHandler`: ``voiceguard_guard_decisions_total`` and the
        barge-in (allowed, suppressed), cancel and create outcomes. Decisions of other kinds
        (truncates and sends the bridge checks) are not counted here.

        Args:
            decision: The decision.
        """
        key = (decision.action, decision.verdict, decision.reason)
        moves = self._moves.get(key)
        if moves is None:
            moves = self._moves[key] = self._counters_of(*key)
        for counter in moves:
            counter.inc()

    def _counters_of(self, action: Action, verdict: Verdict, reason: Reason) -> tuple[Any, ...]:
        guard = _GUARDS.get(action)
        if guard is None:
            return ()
        moves: list[Any] = [self.decisions.labels(guard, verdict.value, reason.value)]
        outcome = _OUTCOMES.get((action, verdict))
        if outcome is not None:
            name, label = outcome
            moves.append(getattr(self, name).labels(label))
        return tuple(moves)

    def record(self, summary: CallSummary, refused: Mapping[str, int]) -> None:
        """Count what is known of a call once it ended.

        Why it ended, its duration, its malformed messages and model errors, its false
        barge-ins, timers and truncations, and the truncation and reaction histograms. Its
        decisions were counted as they were made (:meth:`decided`), and are not counted again.

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
        m = summary.metrics
        if m is None:
            return
        self.barge_ins.labels("false_resumed").inc(m.barge_ins_false_resumed)
        self.timers.labels("armed").inc(m.timers_armed)
        self.timers.labels("fired").inc(m.timers_fired)
        self.timers.labels("suppressed").inc(m.timers_suppressed)
        self.truncations.inc(m.truncations)
        for ms in m.unheard_at_truncation_ms:
            self.unheard.observe(ms)
        for seconds in m.barge_in_reaction:
            self.reaction.observe(seconds)


def _check_multiprocess(directory: str) -> None:
    """Refuse a *directory* prometheus_client does not write its values to, or a second set of
    metrics in this process."""
    from prometheus_client import values  # noqa: PLC0415 - the server extra

    if _MULTIPROCESS_BUILT:
        raise RuntimeError("ServerMetrics(directory=...) is built once per process")
    named = os.environ.get(MULTIPROCESS_ENV)
    if (
        named is None
        or not os.path.isdir(named)
        or not os.path.isdir(directory)
        or not os.path.samefile(named, directory)
        or not getattr(values.ValueClass, "_multiprocess", False)
    ):
        raise ConfigError(
            "ServerMetrics.directory",
            directory,
            f"the existing directory {MULTIPROCESS_ENV} named when prometheus_client was "
            "imported (its multiprocess mode)",
        )
    _MULTIPROCESS_BUILT.append(directory)


def _count_edge(counter: Any) -> None:
    """Count the connections closed at the edge in *counter* too (a multiprocess counter)."""
    from voiceguard.server.edge import DROP_SINKS  # noqa: PLC0415 - imports uvicorn

    children: dict[str, Any] = {reason: counter.labels(reason) for reason in _EDGE_REASONS}

    def count(reason: str) -> None:
        child = children.get(reason)
        if child is None:
            child = children[reason] = counter.labels(reason)
        child.inc()

    DROP_SINKS.append(count)


def _register_edge(registry: CollectorRegistry) -> None:
    """Show the connections this process closed at its edge (:mod:`voiceguard.server.edge`)."""
    from prometheus_client.core import CounterMetricFamily  # noqa: PLC0415 - the server extra

    from voiceguard.server.edge import DROPPED  # noqa: PLC0415 - imports uvicorn

    class EdgeCollector:
        def collect(self) -> Iterator[CounterMetricFamily]:
            family = CounterMetricFamily(
                "voiceguard_connections_closed", _EDGE_HELP, labels=["reason"]
            )
            for reason in _EDGE_REASONS:
                family.add_metric([reason], DROPPED[reason])
            yield family

    registry.register(EdgeCollector())
