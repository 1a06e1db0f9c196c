"""Call-scoped timers: a timer of one call can only act inside it.

:class:`CallScopedTimer` is re-exported by :mod:`voiceguard.runtime.scope`, whose scopes make
them (:meth:`~voiceguard.runtime.scope.CallScope.timer`); :class:`TimerTable` is a scope's table of
its timers by name.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Final, final

import anyio

from voiceguard.config._checks import check_number
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import CallScopeError
from voiceguard.runtime._ledger import (
    Arming,
    ArmingOutcome,
    ScopeLedger,
    describe_scope,
    log_fields,
    not_open,
)
from voiceguard.runtime.identity import CallIdentity, CallScopeState

if TYPE_CHECKING:
    from voiceguard.runtime.scope import CallScope, TimerCallback

__all__ = ("CallScopedTimer", "TimerTable")

logger = logging.getLogger("voiceguard.timers")

#: The longest delay a timer accepts, in seconds: one day. No phone call lasts that long; a larger
#: value is a unit mistake (milliseconds passed as seconds).
_MAX_DELAY: Final = 86_400.0


@final
class CallScopedTimer:
    """A timer that belongs to one call and can act only inside it.

    Made by :meth:`CallScope.timer` or :meth:`CallScope.call_later`, never directly. Arming it
    (:meth:`start`, :meth:`restart`) captures the scope's current :class:`CallIdentity` and
    starts a child task of the scope's task group that sleeps until the deadline. Then, with no
    checkpoint in between, it checks the scope:

    ========================================  =============================================
    at fire time                              what happens
    ========================================  =============================================
    scope open, identity unchanged            the callback runs (:attr:`last_decision`
                                              allows, reason :attr:`~voiceguard.Reason.OK`)
    scope closing                             suppressed, :attr:`~voiceguard.Reason.CLOSING`
    scope closed                              suppressed,
                                              :attr:`~voiceguard.Reason.SCOPE_CLOSED`
    identity changed since arming             suppressed,
                                              :attr:`~voiceguard.Reason.STALE_CALL`
    ========================================  =============================================

    A suppressed fire is logged on the ``voiceguard.runtime.scope`` logger with the fields
    ``call_sid``, ``stream_sid``, ``generation``, ``timer`` and ``reason`` and counted in
    :meth:`CallScope.statistics`. A callback that raises is logged with the call identity and
    counted as failed; it ends the call only if the timer was made with ``error_ends_call``.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_arm",
        "_callback",
        "_delay",
        "_error_ends_call",
        "_last_decision",
        "_ledger",
        "_name",
        "_replaced",
        "_scope",
    )

    _arm: Arming | None
    _callback: TimerCallback
    _delay: float
    _error_ends_call: bool
    _last_decision: Decision | None
    _ledger: ScopeLedger
    _name: str
    _replaced: bool
    _scope: CallScope

    def __init__(self) -> None:
        """Not for use: timers are made by :meth:`CallScope.timer` or :meth:`CallScope.call_later`.

        Raises:
            CallScopeError: Always.
        """
        raise CallScopeError(
            "a CallScopedTimer belongs to a call: make it with CallScope.timer() or "
            "CallScope.call_later(), not CallScopedTimer()"
        )

    @classmethod
    def _create(
        cls,
        *,
        scope: CallScope,
        ledger: ScopeLedger,
        name: str,
        delay: float,
        callback: TimerCallback,
        error_ends_call: bool,
    ) -> CallScopedTimer:
        self = object.__new__(cls)
        check_number(self, "delay", delay, low=0, high=_MAX_DELAY, unit="seconds")
        self._scope = scope
        self._ledger = ledger
        self._name = name
        self._delay = float(delay)
        self._callback = callback
        self._error_ends_call = error_ends_call
        self._arm = None
        self._replaced = False
        self._last_decision = None
        return self

    def __repr__(self) -> str:
        status = f"pending until {self.deadline:.3f}" if self.pending else "idle"
        return f"<CallScopedTimer {self._name!r} {status} of {self._scope.identity}>"

    @property
    def name(self) -> str:
        """The timer's name, unique within its scope."""
        return self._name

    @property
    def delay(self) -> float:
        """The default delay in seconds, used when :meth:`start` / :meth:`restart` get none."""
        return self._delay

    @property
    def scope(self) -> CallScope:
        """The scope the timer belongs to."""
        return self._scope

    @property
    def pending(self) -> bool:
        """True while the timer is armed and may still fire.

        False once it fired, was suppressed or cancelled, and as soon as its scope starts closing.
        """
        arm = self._arm
        return arm is not None and arm.outcome is None and self._scope.state is CallScopeState.OPEN

    @property
    def deadline(self) -> float | None:
        """When a pending timer fires, in :func:`anyio.current_time` seconds; else ``None``."""
        return self._arm.deadline if self.pending and self._arm is not None else None

    @property
    def identity(self) -> CallIdentity | None:
        """The call identity a pending timer captured when it was armed; else ``None``."""
        return self._arm.identity if self.pending and self._arm is not None else None

    @property
    def replaced(self) -> bool:
        """True once a newer timer of the same name replaced this one in its scope."""
        return self._replaced

    @property
    def last_decision(self) -> Decision | None:
        """What happened the last time the timer's delay was up.

        A :attr:`~voiceguard.Verdict.ALLOW` decision if the callback ran, a
        :attr:`~voiceguard.Verdict.SUPPRESS` decision with the reason if it did not, ``None`` if
        the timer never reached its deadline. The decision's ``detail`` is the timer's name.
        """
        return self._last_decision

    def start(self, delay: float | None = None) -> None:
        """Arm the timer for the scope's current identity.

        Args:
            delay: Seconds until it fires; :attr:`delay` when omitted.

        Raises:
            CallScopeError: If the timer is already pending (use :meth:`restart`), was replaced
                by a newer timer of the same name, or its scope is not open (not entered yet,
                closing or closed).
            ConfigError: If *delay* is out of range.
        """
        self._require_usable("start")
        if self.pending:
            scope = describe_scope(self._scope.identity)
            raise CallScopeError(
                f"timer {self._name!r} of {scope} is already pending "
                f"(deadline {self.deadline:.3f}); use restart() to re-arm it"
            )
        self._arm_new(self._checked_delay(delay))

    def restart(self, delay: float | None = None) -> None:
        """Arm the timer again from now, for the scope's current identity.

        A pending timer is moved to the new deadline in place (no second task, no duplicate
        fire); an idle one is started.

        Args:
            delay: Seconds until it fires; :attr:`delay` when omitted.

        Raises:
            CallScopeError: If the timer was replaced by a newer timer of the same name, or its
                scope is not open.
            ConfigError: If *delay* is out of range.
        """
        self._require_usable("restart")
        seconds = self._checked_delay(delay)
        arm = self._arm
        if arm is None or not self.pending:
            self._arm_new(seconds)
            return
        deadline = anyio.current_time() + seconds
        earlier = deadline < arm.deadline
        arm.deadline = deadline
        arm.identity = self._scope.identity
        self._ledger.restarted += 1
        if earlier and arm.wake is not None:
            arm.wake.cancel()

    def cancel(self) -> bool:
        """Disarm the timer. Safe to call at any time, any number of times.

        Returns:
            True if the timer was pending (and now will not fire), False otherwise.
        """
        arm = self._arm
        if arm is None or not self.pending:
            return False
        self._ledger.resolve(arm, ArmingOutcome.CANCELLED)
        if arm.wake is not None:
            arm.wake.cancel()
        return True

    # --- internals --------------------------------------------------------------------------

    def _sort_key(self) -> float:
        return self._arm.deadline if self._arm is not None else float("inf")

    def _checked_delay(self, delay: float | None) -> float:
        if delay is None:
            return self._delay
        check_number(self, "delay", delay, low=0, high=_MAX_DELAY, unit="seconds")
        return float(delay)

    def _require_usable(self, what: str) -> None:
        scope = self._scope
        if self._replaced:
            raise CallScopeError(
                f"cannot {what} timer {self._name!r}: it was replaced by a newer timer of the "
                f"same name in {describe_scope(scope.identity)}"
            )
        if scope.state is not CallScopeState.OPEN:
            raise not_open(f"{what} timer {self._name!r}", scope.identity, scope.state)

    def _detach(self) -> None:
        self.cancel()
        self._replaced = True

    def _arm_new(self, seconds: float) -> None:
        scope = self._scope
        if scope.state is not CallScopeState.OPEN:
            raise not_open(f"start timer {self._name!r}", scope.identity, scope.state)
        arm = Arming(anyio.current_time() + seconds, scope.identity)
        self._arm = arm
        self._ledger.armed += 1
        # A child task of the call, counted in the scope's tasks while it runs.
        scope.start_soon(self._run, arm, name=f"voiceguard timer {self._name!r}")

    async def _run(self, arm: Arming) -> None:
        try:
            while True:
                if arm.settled():
                    return  # cancelled (or replaced) while waiting
                deadline = arm.deadline
                if anyio.current_time() >= deadline:
                    break
                wake = arm.wake = anyio.CancelScope()
                with wake:
                    await anyio.sleep_until(deadline)
                if arm.settled():
                    return
                if not wake.cancel_called and arm.deadline <= deadline:
                    break  # slept to a deadline nobody moved
        except BaseException:
            # Only a cancellation can get here: the scope is closing.
            self._ledger.resolve(arm, ArmingOutcome.CANCELLED)
            raise
        # No checkpoint since the sleep ended: what we check now is what the callback sees.
        if self._check_fire(arm):
            await self._fire()

    def _check_fire(self, arm: Arming) -> bool:
        scope, ledger = self._scope, self._ledger
        state = scope.state
        if state is CallScopeState.CLOSED:
            reason = Reason.SCOPE_CLOSED
        elif state is CallScopeState.CLOSING:
            reason = Reason.CLOSING
        elif arm.identity != scope.identity:
            reason = Reason.STALE_CALL
        else:
            ledger.resolve(arm, ArmingOutcome.FIRED)
            decision = self._last_decision = Decision(
                action=Action.TIMER, verdict=Verdict.ALLOW, reason=Reason.OK, detail=self._name
            )
            ledger.record(decision)
            logger.debug(
                "timer %r fired (%s)",
                self._name,
                arm.identity,
                extra=log_fields(arm.identity, self._name, None),
            )
            return True
        ledger.resolve(arm, ArmingOutcome.SUPPRESSED, reason)
        decision = self._last_decision = Decision(
            action=Action.TIMER, verdict=Verdict.SUPPRESS, reason=reason, detail=self._name
        )
        ledger.record(decision)
        # The record names the identity the timer was armed for: that is the call it belongs to.
        logger.log(
            logging.INFO,
            "timer %r suppressed: %s (armed for %s, scope is %s, %s)",
            self._name,
            reason.value,
            arm.identity,
            state.value,
            scope.identity,
            extra=log_fields(arm.identity, self._name, reason),
        )
        return False

    async def _fire(self) -> None:
        scope = self._scope
        identity = scope.identity
        try:
            result = self._callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._ledger.failed += 1
            logger.exception(
                "timer %r callback failed (%s)%s",
                self._name,
                identity,
                "; ending the call" if self._error_ends_call else "",
                extra=log_fields(identity, self._name, None),
            )
            if self._error_ends_call:
                scope.close()
                raise


@final
class TimerTable:
    """The timers of one scope, by name (a new timer replaces the one of the same name)."""

    __slots__ = ("_timers",)

    def __init__(self) -> None:
        self._timers: dict[str, CallScopedTimer] = {}

    def make(
        self,
        scope: CallScope,
        ledger: ScopeLedger,
        name: str,
        delay: float,
        callback: TimerCallback,
        *,
        error_ends_call: bool,
    ) -> CallScopedTimer:
        """A new timer of *scope*, not armed; an older timer of the same name is cancelled for good.

        Raises:
            ConfigError: If *delay* is out of range (nothing is replaced then).
        """
        new = CallScopedTimer._create(
            scope=scope,
            ledger=ledger,
            name=name,
            delay=delay,
            callback=callback,
            error_ends_call=error_ends_call,
        )
        old = self._timers.get(name)
        if old is not None:
            old._detach()
        self._timers[name] = new
        return new

    def pending(self) -> tuple[CallScopedTimer, ...]:
        """The timers that may still fire, soonest first."""
        pending = [timer for timer in self._timers.values() if timer.pending]
        pending.sort(key=lambda timer: timer._sort_key())
        return tuple(pending)

    def count_pending(self) -> int:
        """How many timers may still fire."""
        return sum(1 for timer in self._timers.values() if timer.pending)

    def close(self, ledger: ScopeLedger) -> None:
        """The scope closed: armings whose task never got to record its end were cancelled."""
        for timer in self._timers.values():
            arm = timer._arm
            if arm is not None and arm.outcome is None:
                ledger.resolve(arm, ArmingOutcome.CANCELLED)
        self._timers.clear()
