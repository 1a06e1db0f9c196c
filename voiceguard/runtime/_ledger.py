"""The books of a call scope: what its timers and tasks did, and how the scope names itself.

:class:`ScopeLedger` counts every arming of the scope's timers and how it ended (each ends exactly
one way: fired, cancelled or suppressed), the refused armings and the running tasks, passes every
timer decision to the scope's sink, and gives the snapshot :class:`CallScopeStatistics`. The
helpers below name a scope the same way in every log record and error.
"""

from __future__ import annotations

import enum
import logging
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, final

import anyio
from typing_extensions import assert_never

from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import CallScopeError
from voiceguard.runtime.identity import CallIdentity, CallScopeState

__all__ = (
    "Arming",
    "ArmingOutcome",
    "CallScopeStatistics",
    "ScopeLedger",
    "describe_scope",
    "log_fields",
    "not_open",
)

logger = logging.getLogger("voiceguard.timers")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallScopeStatistics:
    """An immutable snapshot of what the timers and tasks of one :class:`CallScope` did.

    Every arming of a timer ends exactly one way, so once the scope has closed
    ``armed == fired + cancelled + suppressed_total`` and ``pending == 0``.

    Attributes:
        identity: The scope's identity when the snapshot was taken.
        state: The scope's state when the snapshot was taken.
        armed: How many times a timer was armed (:meth:`CallScopedTimer.start`, or
            :meth:`CallScopedTimer.restart` of a timer that was not pending).
        restarted: How many times a pending timer was moved to a new deadline in place
            (:meth:`CallScopedTimer.restart`); such a restart is not a new arming.
        fired: How many armings ran their callback.
        failed: How many of those callbacks raised an exception (counted in *fired* too).
        cancelled: How many armings were cancelled: by :meth:`CallScopedTimer.cancel`, by a newer
            timer of the same name, or because the scope closed while they were pending.
        suppressed: Armings whose delay was up but whose callback did not run, by reason
            (:attr:`~voiceguard.Reason.CLOSING`, :attr:`~voiceguard.Reason.STALE_CALL`,
            :attr:`~voiceguard.Reason.SCOPE_CLOSED`). Only reasons that occurred are present.
        refused: Requests to arm that were refused (see :meth:`CallScope.decide_arm` and
            :meth:`CallScope.refuse`), by reason. Only reasons that occurred are present.
        pending: Timers that are armed and may still fire.
        tasks: Tasks of the scope (timer tasks and tasks started with
            :meth:`CallScope.start_soon` / :meth:`CallScope.start`) that have not finished.

    .. versionadded:: 0.1.0
    """

    identity: CallIdentity
    state: CallScopeState
    armed: int
    restarted: int
    fired: int
    failed: int
    cancelled: int
    suppressed: Mapping[Reason, int]
    refused: Mapping[Reason, int]
    pending: int
    tasks: int

    @property
    def suppressed_total(self) -> int:
        """The number of suppressed fires, whatever the reason."""
        return sum(self.suppressed.values())

    @property
    def refused_total(self) -> int:
        """The number of refused armings, whatever the reason."""
        return sum(self.refused.values())


@final
class ArmingOutcome(enum.Enum):
    """How one arming of a timer ended."""

    FIRED = "FIRED"
    CANCELLED = "CANCELLED"
    SUPPRESSED = "SUPPRESSED"


@final
class Arming:
    """One arming of a timer: its deadline, the identity it acts for, and how it ended."""

    __slots__ = ("deadline", "identity", "outcome", "wake")

    def __init__(self, deadline: float, identity: CallIdentity) -> None:
        self.deadline = deadline
        self.identity = identity
        self.outcome: ArmingOutcome | None = None
        # The cancel scope the timer task sleeps in; cancelled to wake it early (an earlier
        # deadline, or a cancel). None until the task has started sleeping.
        self.wake: anyio.CancelScope | None = None

    def settled(self) -> bool:
        """True once the arming has ended."""
        # A method, not an attribute test, so that type checkers do not assume it cannot change
        # across an await.
        return self.outcome is not None


@final
class ScopeLedger:
    """The counts of one scope's timers and tasks, and its decision sink.

    Args:
        sink: Called with every timer decision of the scope, if given.

    Attributes:
        armed: Timer armings.
        restarted: Pending timers moved to a new deadline in place.
        fired: Armings that ran their callback.
        failed: Callbacks that raised.
        cancelled: Armings cancelled.
        suppressed: Armings whose callback did not run when their delay was up, by reason.
        refused: Refused armings, by reason.
        tasks: Tasks of the scope that have not finished.
    """

    __slots__ = (
        "_sink",
        "armed",
        "cancelled",
        "failed",
        "fired",
        "refused",
        "restarted",
        "suppressed",
        "tasks",
    )

    def __init__(self, sink: Callable[[Decision], None] | None) -> None:
        self._sink = sink
        self.armed = 0
        self.restarted = 0
        self.fired = 0
        self.failed = 0
        self.cancelled = 0
        self.suppressed: dict[Reason, int] = {}
        self.refused: dict[Reason, int] = {}
        self.tasks = 0

    def resolve(self, arm: Arming, outcome: ArmingOutcome, reason: Reason | None = None) -> bool:
        """End *arm* with *outcome* and count it; False if it had already ended."""
        if arm.outcome is not None:
            return False
        arm.outcome = outcome
        match outcome:
            case ArmingOutcome.FIRED:
                self.fired += 1
            case ArmingOutcome.CANCELLED:
                self.cancelled += 1
            case ArmingOutcome.SUPPRESSED:
                if reason is not None:
                    self.suppressed[reason] = self.suppressed.get(reason, 0) + 1
            case _:
                assert_never(outcome)
        return True

    def record(self, decision: Decision) -> None:
        """Pass a timer decision to the sink."""
        if self._sink is not None:
            self._sink(decision)

    def refuse(self, name: str, reason: Reason, identity: CallIdentity) -> Decision:
        """Count, log and pass on a refused arming (see ``CallScope.refuse``)."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        decision = Decision(
            action=Action.TIMER, verdict=Verdict.SUPPRESS, reason=reason, detail=name
        )
        logger.log(
            logging.INFO,
            "timer %r not armed: %s (%s)",
            name,
            reason.value,
            identity,
            extra=log_fields(identity, name, reason),
        )
        self.record(decision)
        return decision

    def statistics(
        self, identity: CallIdentity, state: CallScopeState, pending: int
    ) -> CallScopeStatistics:
        """The snapshot of the counts, for a scope with *identity* in *state*."""
        return CallScopeStatistics(
            identity=identity,
            state=state,
            armed=self.armed,
            restarted=self.restarted,
            fired=self.fired,
            failed=self.failed,
            cancelled=self.cancelled,
            suppressed=types.MappingProxyType(dict(self.suppressed)),
            refused=types.MappingProxyType(dict(self.refused)),
            pending=pending,
            tasks=self.tasks,
        )

    def log_closed(self, identity: CallIdentity) -> None:
        """Log the counts of a scope that has just closed."""
        logger.debug(
            "call scope closed: %d armed, %d fired, %d cancelled, %d suppressed (%s)",
            self.armed,
            self.fired,
            self.cancelled,
            sum(self.suppressed.values()),
            identity,
            extra=log_fields(identity, None, None),
        )


def log_fields(identity: CallIdentity, timer: str | None, reason: Reason | None) -> dict[str, Any]:
    """The fields of a scope's log records: the identity, the timer and the reason, if any."""
    return {
        "call_sid": identity.call_sid,
        "stream_sid": identity.stream_sid,
        "generation": identity.generation,
        "timer": timer,
        "reason": None if reason is None else reason.value,
    }


def describe_scope(identity: CallIdentity) -> str:
    """How errors name the scope of *identity*."""
    return f"CallScope for call {identity.call_sid} (generation {identity.generation})"


def not_open(what: str, identity: CallIdentity, state: CallScopeState) -> CallScopeError:
    """The error for doing *what* on a scope that is not open."""
    if state is CallScopeState.NEW:
        problem = "has not been entered yet (use `async with scope:`)"
    elif state is CallScopeState.CLOSING:
        problem = "is closing"
    else:
        problem = "has closed"
    return CallScopeError(f"cannot {what}: {describe_scope(identity)} {problem}")
