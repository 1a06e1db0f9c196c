"""ResponseCreateGuard: may ``response.create`` be sent now; if not, drop it or hold it?"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, final

from voiceguard.config import CreateConfig
from voiceguard.core.record import DecisionCounts, DecisionSink, Recorder
from voiceguard.core.state import CallState
from voiceguard.decisions import Action, CreateOrigin, CreatePolicy, Decision, Reason, Verdict

__all__ = (
    "CalibrationStatus",
    "CreateOrigin",
    "CreatePolicy",
    "CreateRequest",
    "ReleasedCreate",
    "ResponseCreateGuard",
)

logger = logging.getLogger("voiceguard.guards.create")


class CalibrationStatus(Protocol):
    """Anything that says whether the line is calibrated (e.g. the calibration gate)."""

    @property
    def calibrated(self) -> bool:
        """True once the line's noise floor is known."""
        ...


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CreateRequest:
    """A request to send ``response.create``.

    Attributes:
        origin: Explicit or automatic (automatic ones coalesce while waiting).
        policy: Drop or defer when it cannot be sent now.
        greeting: True for the call's greeting: allowed through the greeting lock, and it takes
            the lock until its ``response.done``.
        require_playback_idle: Also wait until the bot's audio has finished playing on the phone
            (``response.done`` is not the end of playback). Use it for watchdogs and idle prompts.
        response: The ``response`` object to send with the create (instructions, metadata, ...).
        label: A short name for logs (``"turn"``, ``"watchdog"``, ``"tool_result"``, ...).
    """

    origin: CreateOrigin = CreateOrigin.EXPLICIT
    policy: CreatePolicy = CreatePolicy.DEFER
    greeting: bool = False
    require_playback_idle: bool = False
    response: Mapping[str, Any] | None = field(default=None, compare=False)
    label: str = ""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasedCreate:
    """A deferred create that may be sent now (it is already counted as in flight).

    Attributes:
        request: The request that was held.
        decision: The allowing decision.
    """

    request: CreateRequest
    decision: Decision


@dataclass(slots=True)
class _Held:
    request: CreateRequest
    since: float


#: Reasons a create may wait for; every other blocking reason drops it.
_DEFERRABLE = frozenset(
    {
        Reason.GREETING_LOCK,
        Reason.CREATE_IN_FLIGHT,
        Reason.RESPONSE_ACTIVE,
        Reason.AUDIO_PLAYING,
        Reason.NOT_CALIBRATED,
    }
)


@final
class ResponseCreateGuard:
    """Sends ``response.create`` only when the server will accept it and the call wants it.

    A create is refused while the call is closing or hanging up, while the greeting holds the
    line (except for the greeting itself), while a create is in flight or a response is active,
    optionally while the bot's audio still plays or the line is not calibrated. A refused request
    is dropped or deferred by its :class:`CreatePolicy`; deferred requests are released one at a
    time by :meth:`release` (call it after every observed event), re-checked against the same
    rules, explicit ones in order, automatic ones coalesced into one.

    Args:
        state: The call's state (read, and updated when a create is allowed).
        config: Queue bound, time to live, calibration requirement.
        calibration: Consulted when ``config.require_calibration`` is on.
        on_decision: Called with every decision.

    Decisions (action :attr:`~voiceguard.Action.CREATE`):

    ===================================  ==========================================================
    verdict / reason                     when
    ===================================  ==========================================================
    ALLOW ``OK``                         nothing stands in the way
    ALLOW ``FORCED_GREETING``            the greeting, under its own lock
    SUPPRESS ``CLOSING``                 the call is closing (never deferred)
    SUPPRESS ``HANGUP_PENDING``          a hang-up started (never deferred)
    DEFER/SUPPRESS ``GREETING_LOCK``     the greeting holds the line
    DEFER/SUPPRESS ``CREATE_IN_FLIGHT``  a create was sent and its response is not created yet
    DEFER/SUPPRESS ``RESPONSE_ACTIVE``   a response is active (or being cancelled)
    DEFER/SUPPRESS ``AUDIO_PLAYING``     ``require_playback_idle`` and the bot is still heard
    DEFER/SUPPRESS ``NOT_CALIBRATED``    ``require_calibration`` and the line is not calibrated
    SUPPRESS ``COALESCED``               an automatic create is already waiting; merged into it
    SUPPRESS ``QUEUE_FULL``              ``max_deferred`` creates are already waiting
    SUPPRESS ``EXPIRED``                 a deferred create waited longer than ``deferred_ttl``
    SUPPRESS ``TURN_ANSWERED``           (turn engine) a held retry of a turn that got its answer
    SUPPRESS ``RETRIED_ONCE``            (turn engine) the turn was already sent once more after
                                         its response was lost
    ===================================  ==========================================================

    DEFER or SUPPRESS follows the request's policy.
    """

    __slots__ = ("_calibration", "_config", "_held", "_recorder", "_state")

    def __init__(
        self,
        state: CallState,
        *,
        config: CreateConfig | None = None,
        calibration: CalibrationStatus | None = None,
        on_decision: DecisionSink | None = None,
    ) -> None:
        self._state = state
        self._config = config if config is not None else CreateConfig()
        self._calibration = calibration
        self._held: deque[_Held] = deque()
        self._recorder = Recorder(
            guard="response_create_guard",
            logger=logger,
            sink=on_decision,
            identity=lambda: (state.call_sid, state.stream_sid),
        )

    @property
    def config(self) -> CreateConfig:
        """The guard's configuration."""
        return self._config

    def pending(self) -> tuple[CreateRequest, ...]:
        """The deferred requests, in the order they will be released."""
        return tuple(held.request for held in self._held)

    def decide(self, request: CreateRequest, now: float) -> Decision:
        """Answer "may I send this create now?" without changing anything."""
        reason = self._blocking_reason(request)
        if reason is None:
            ok = Reason.FORCED_GREETING if request.greeting else Reason.OK
            return self._decision(request, Verdict.ALLOW, ok)
        if request.policy is CreatePolicy.DEFER and reason in _DEFERRABLE:
            return self._decision(request, Verdict.DEFER, reason)
        return self._decision(request, Verdict.SUPPRESS, reason)

    def request(self, request: CreateRequest, now: float) -> Decision:
        """Decide, count and log; allowed creates are recorded as sent, deferred ones held.

        On :attr:`~voiceguard.Verdict.ALLOW` the caller must send the create now (the state
        already counts it as in flight). Deferred ones come back from :meth:`release`.
        """
        decision = self.decide(request, now)
        if decision.allowed:
            self._state.create_sent(now=now, greeting=request.greeting)
        elif decision.deferred:
            if request.origin is CreateOrigin.AUTOMATIC and any(
                held.request.origin is CreateOrigin.AUTOMATIC for held in self._held
            ):
                decision = self._decision(
                    request, Verdict.SUPPRESS, Reason.COALESCED, "an automatic create is waiting"
                )
            elif len(self._held) >= self._config.max_deferred:
                decision = self._decision(
                    request,
                    Verdict.SUPPRESS,
                    Reason.QUEUE_FULL,
                    f"{len(self._held)} creates already waiting",
                )
            else:
                self._held.append(_Held(request, now))
        return self._recorder.record(decision, now)

    def release(self, now: float) -> ReleasedCreate | None:
        """Release the first deferred create if it may be sent now.

        Call it after every event observed into the state (``response.done`` above all). Held
        creates are dropped when the call is closing or hanging up, or when they outlived
        ``deferred_ttl``; each drop is a recorded SUPPRESS decision. At most one create is
        released per call, since it is in flight from that moment on.

        Returns:
            The released request and its decision (send it now), or ``None``.
        """
        ttl = self._config.deferred_ttl
        while self._held:
            held = self._held[0]
            if ttl is not None and now - held.since > ttl:
                self._held.popleft()
                self._recorder.record(
                    self._decision(
                        held.request,
                        Verdict.SUPPRESS,
                        Reason.EXPIRED,
                        f"waited {now - held.since:.1f} s",
                    ),
                    now,
                )
                continue
            decision = self.decide(held.request, now)
            if decision.deferred:
                return None
            self._held.popleft()
            if decision.allowed:
                self._state.create_sent(now=now, greeting=held.request.greeting)
                self._recorder.record(decision, now)
                return ReleasedCreate(request=held.request, decision=decision)
            self._recorder.record(decision, now)  # suppressed now: closing, hang-up, ...
        return None

    def drop_pending(self, now: float, *, reason: Reason = Reason.CLOSING) -> int:
        """Drop every deferred create (e.g. at call end), recording each. Returns how many."""
        dropped = 0
        while self._held:
            held = self._held.popleft()
            self._recorder.record(self._decision(held.request, Verdict.SUPPRESS, reason), now)
            dropped += 1
        return dropped

    def withdraw(self, label: str, now: float, *, reason: Reason) -> int:
        """Drop the deferred creates labelled *label*, recording each with *reason*.

        For a request that became moot while it waited (a retry of a turn that got its answer).
        Returns how many were dropped.

        .. versionadded:: 0.2.0
        """
        kept: deque[_Held] = deque()
        dropped = 0
        for held in self._held:
            if held.request.label == label:
                self._recorder.record(self._decision(held.request, Verdict.SUPPRESS, reason), now)
                dropped += 1
            else:
                kept.append(held)
        self._held = kept
        return dropped

    def refuse(
        self, request: CreateRequest, now: float, *, reason: Reason, detail: str = ""
    ) -> Decision:
        """Record *request* as suppressed for a reason the caller found (it is not sent).

        For policies above the guard's own rules (the turn engine's one re-send per turn), so
        that every create decision is counted in one place.

        .. versionadded:: 0.2.0
        """
        return self._recorder.record(self._decision(request, Verdict.SUPPRESS, reason, detail), now)

    def statistics(self) -> DecisionCounts:
        """Counts of every decision made so far, by verdict and reason."""
        return self._recorder.snapshot()

    def _blocking_reason(self, request: CreateRequest) -> Reason | None:
        state = self._state
        if state.closing:
            return Reason.CLOSING
        if state.hangup_pending:
            return Reason.HANGUP_PENDING
        if state.greeting_lock and not request.greeting:
            return Reason.GREETING_LOCK
        if state.create_in_flight:
            return Reason.CREATE_IN_FLIGHT
        if state.response_active:
            return Reason.RESPONSE_ACTIVE
        if request.require_playback_idle and state.audio_playing:
            return Reason.AUDIO_PLAYING
        if (
            self._config.require_calibration
            and not request.greeting
            and self._calibration is not None
            and not self._calibration.calibrated
        ):
            return Reason.NOT_CALIBRATED
        return None

    def _decision(
        self, request: CreateRequest, verdict: Verdict, reason: Reason, detail: str = ""
    ) -> Decision:
        label = request.label or request.origin.value.lower()
        return Decision(
            action=Action.CREATE,
            verdict=verdict,
            reason=reason,
            response_id=self._state.active_response_id,
            detail=f"{label}: {detail}" if detail else label,
        )
