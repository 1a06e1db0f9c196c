"""Call scopes and call-scoped timers: a timer of one call can never act in another.

A phone bot arms timers all the time: a hang-up fallback when it says goodbye, a watchdog when the
caller stops talking, an idle ladder, a maximum call duration. The classic bug is a timer that
outlives its call: a fallback armed during call A fires during call B and hangs B up. Flags checked
at fire time (``if self.closing: return``, ``if self.call_sid != expected: return``) catch the cases
someone thought of. This module makes the leak impossible by construction and keeps the fire-time
check as defence in depth:

* A :class:`CallScope` is an async context manager that owns one anyio task group, the call's
  :class:`CallIdentity` and a *closing* flag.
* A :class:`CallScopedTimer` can only be made by a scope (:meth:`CallScope.timer`). Its task is a
  child of the scope's task group, so when the call ends every timer of the call is cancelled.
* When a timer's delay is up it re-checks that its scope is open, not closing, and that the call
  identity it captured when it was armed is still the scope's identity. If not, the callback does
  not run; the timer records a suppressed :class:`~voiceguard.Decision` with reason
  :attr:`~voiceguard.Reason.CLOSING`, :attr:`~voiceguard.Reason.STALE_CALL` or
  :attr:`~voiceguard.Reason.SCOPE_CLOSED`, logs it and counts it.
* :meth:`CallScope.pending_timers` and :meth:`CallScope.statistics` let tests and servers assert
  that a finished call left nothing behind.

Time is anyio's clock (:func:`anyio.current_time`), the event loop's monotonic clock, never wall
time, so the timers run in virtual time under :class:`trio.testing.MockClock`.

Everything here runs on asyncio and trio through anyio. Scopes and timers are not thread-safe: use
them from the event loop that runs the call.

Ready-made timers for a phone call built on this module are in :mod:`voiceguard.runtime.timers`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextvars
import enum
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, final

import anyio
import anyio.abc

from voiceguard.config import CallScopeConfig
from voiceguard.config._checks import check_number
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import CallScopeError, ConfigError

__all__ = (
    "CallIdentity",
    "CallScope",
    "CallScopeState",
    "CallScopeStatistics",
    "CallScopedTimer",
    "TimerCallback",
    "current_call_scope",
)

logger = logging.getLogger("voiceguard.timers")

#: The type of a timer's callback, a plain or ``async`` function of no arguments. Whatever it
#: returns is ignored; if it returns an awaitable, the awaitable is awaited. Use
#: :func:`functools.partial` or a closure to pass arguments.
TimerCallback = Callable[[], object]

#: The longest delay a timer accepts, in seconds: one day. No phone call lasts that long; a larger
#: value is a unit mistake (milliseconds passed as seconds).
_MAX_DELAY = 86_400.0


@final
class CallScopeState(enum.Enum):
    """Where a :class:`CallScope` is in its life. It only moves forward."""

    #: Created, not entered yet. Timers may be made, not armed.
    NEW = "NEW"
    #: Inside ``async with``: timers may be armed and tasks started.
    OPEN = "OPEN"
    #: :meth:`CallScope.close` was called or the block is being left: nothing new starts, timers
    #: and tasks are being cancelled, the close callbacks run.
    CLOSING = "CLOSING"
    #: The block has been left; every task of the call has finished.
    CLOSED = "CLOSED"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallIdentity:
    """Who a call is: what a timer captures when it is armed and compares when it fires.

    Attributes:
        call_sid: Twilio's call SID (``CA...``), or ``None`` while it is not known yet.
        stream_sid: Twilio's media stream SID (``MZ...``), or ``None`` while it is not known yet.
        generation: Counts the identity changes of one scope (see :meth:`CallScope.rebind`), so
            two identities with the same SIDs are still told apart.

    .. versionadded:: 0.1.0
    """

    call_sid: str | None = None
    stream_sid: str | None = None
    generation: int = 0

    def __str__(self) -> str:
        return f"call {self.call_sid} stream {self.stream_sid} generation {self.generation}"


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


class _Outcome(enum.Enum):
    FIRED = "FIRED"
    CANCELLED = "CANCELLED"
    SUPPRESSED = "SUPPRESSED"


class _Arm:
    """One arming of a timer: its deadline, the identity it acts for, and how it ended."""

    __slots__ = ("deadline", "identity", "outcome", "wake")

    def __init__(self, deadline: float, identity: CallIdentity) -> None:
        self.deadline = deadline
        self.identity = identity
        self.outcome: _Outcome | None = None
        # The cancel scope the timer task sleeps in; cancelled to wake it early (an earlier
        # deadline, or a cancel). None until the task has started sleeping.
        self.wake: anyio.CancelScope | None = None

    def settled(self) -> bool:
        # A method, not an attribute test, so that type checkers do not assume it cannot change
        # across an await.
        return self.outcome is not None


class _Counters:
    __slots__ = (
        "armed",
        "cancelled",
        "failed",
        "fired",
        "refused",
        "restarted",
        "suppressed",
        "tasks",
    )

    def __init__(self) -> None:
        self.armed = 0
        self.restarted = 0
        self.fired = 0
        self.failed = 0
        self.cancelled = 0
        self.suppressed: dict[Reason, int] = {}
        self.refused: dict[Reason, int] = {}
        self.tasks = 0


def _log_extra(identity: CallIdentity, timer: str | None, reason: Reason | None) -> dict[str, Any]:
    return {
        "call_sid": identity.call_sid,
        "stream_sid": identity.stream_sid,
        "generation": identity.generation,
        "timer": timer,
        "reason": None if reason is None else reason.value,
    }


_CURRENT: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "voiceguard_call_scope", default=None
)


def current_call_scope() -> CallScope | None:
    """The :class:`~voiceguard.runtime.scope.CallScope` whose ``async with`` block (or task) runs.

    None outside any call scope.

    Set while the block runs, and seen by the tasks and timers the scope starts (they copy the
    context when they start). Nested scopes: the innermost.

    .. versionadded:: 0.1.0
    """
    return _CURRENT.get()


@final
class CallScope:
    """The lifetime of one call: a task group, the call's identity and a closing flag.

    Use it as an async context manager around everything a call does; make the call's timers with
    :meth:`timer` or :meth:`call_later` and its tasks with :meth:`start_soon` or :meth:`start`::

        async with CallScope(call_sid=call_sid, stream_sid=stream_sid) as scope:
            fallback = scope.timer("hangup_fallback", 6.0, twilio.close)
            scope.on_close(send_final_clear)
            ...  # the call
        assert scope.pending_timers() == ()

    Leaving the block (normally, by an exception, or after :meth:`close`) sets the closing flag
    first, then cancels every timer and child task, then runs the close callbacks under a shielded
    :func:`anyio.move_on_after` bounded by
    :attr:`~voiceguard.config.CallScopeConfig.shutdown_grace`, then waits for the tasks to finish.
    An exception from the body or from a task leaves the block inside an exception group, as with
    any anyio task group.

    A scope is entered once. Make a new scope for every call.

    Args:
        call_sid: Twilio's call SID, if known.
        stream_sid: Twilio's stream SID, if known.
        generation: The initial generation of the identity.
        config: Shutdown grace and timer error policy; the defaults when omitted.
        sink: Called with every timer decision of the call (each time a timer's delay is up:
            allowed or suppressed; each refused arming), for metrics and traces. It must not
            raise.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_config",
        "_counters",
        "_current_token",
        "_identity",
        "_on_close",
        "_sink",
        "_state",
        "_task_group",
        "_timers",
    )

    def __init__(
        self,
        *,
        call_sid: str | None = None,
        stream_sid: str | None = None,
        generation: int = 0,
        config: CallScopeConfig | None = None,
        sink: Callable[[Decision], None] | None = None,
    ) -> None:
        self._identity = CallIdentity(
            call_sid=call_sid, stream_sid=stream_sid, generation=generation
        )
        self._config = CallScopeConfig() if config is None else config
        self._state = CallScopeState.NEW
        self._task_group: anyio.abc.TaskGroup | None = None
        self._timers: dict[str, CallScopedTimer] = {}
        self._on_close: list[TimerCallback] = []
        self._counters = _Counters()
        self._sink = sink
        self._current_token: contextvars.Token[CallScope | None] | None = None

    def __repr__(self) -> str:
        return f"<CallScope {self._identity} {self._state.value}>"

    # --- identity and state -------------------------------------------------------------------

    @property
    def identity(self) -> CallIdentity:
        """The call's current identity."""
        return self._identity

    @property
    def config(self) -> CallScopeConfig:
        """The scope's configuration."""
        return self._config

    @property
    def state(self) -> CallScopeState:
        """Where the scope is in its life."""
        return self._state

    @property
    def closing(self) -> bool:
        """True from the moment the scope starts to close, and forever after.

        This is the flag the timers check at fire time. It is set before anything is cancelled.
        """
        return self._state in (CallScopeState.CLOSING, CallScopeState.CLOSED)

    @property
    def closed(self) -> bool:
        """True once the block has been left and every task of the scope has finished."""
        return self._state is CallScopeState.CLOSED

    def rebind(self, *, call_sid: str | None, stream_sid: str | None) -> CallIdentity:
        """Give the scope a new identity, with the next generation number.

        Timers armed before this call keep the identity they captured: when their delay is up
        they are suppressed with :attr:`~voiceguard.Reason.STALE_CALL` instead of acting for the
        new identity. Restart a timer to arm it for the new identity. Use this when one scope
        really must outlive a change of call or stream (a reused handler object); the normal
        pattern is one scope per call.

        Args:
            call_sid: The new call SID.
            stream_sid: The new stream SID.

        Returns:
            The new identity.

        Raises:
            CallScopeError: If the scope is closing or closed.
        """
        if self.closing:
            raise CallScopeError(
                f"cannot rebind {self._describe()} to call {call_sid}: the scope "
                f"{'has closed' if self.closed else 'is closing'}; make a new CallScope for the "
                "new call"
            )
        self._identity = CallIdentity(
            call_sid=call_sid, stream_sid=stream_sid, generation=self._identity.generation + 1
        )
        return self._identity

    # --- entering and leaving -------------------------------------------------------------------

    async def __aenter__(self) -> CallScope:
        """Open the scope: start its task group.

        Raises:
            CallScopeError: If the scope was entered before (it is open or closing), or has
                already closed.
        """
        if self._state is CallScopeState.OPEN:
            raise CallScopeError(
                f"{self._describe()} is already open: a CallScope is entered once "
                "(make a new CallScope for each call)"
            )
        if self._state is CallScopeState.CLOSING:
            raise CallScopeError(
                f"{self._describe()} was already entered and is closing: a CallScope is entered "
                "once (make a new CallScope for each call)"
            )
        if self._state is CallScopeState.CLOSED:
            raise CallScopeError(
                f"{self._describe()} has already closed and cannot be re-entered "
                "(make a new CallScope for each call)"
            )
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._state = CallScopeState.OPEN
        self._current_token = _CURRENT.set(self)
        logger.debug("call scope opened", extra=_log_extra(self._identity, None, None))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> bool | None:
        """Close the scope: closing flag, cancel everything, close callbacks, wait for tasks."""
        task_group = self._task_group
        if task_group is None:
            raise CallScopeError(f"{self._describe()} was left without being entered")
        self._begin_closing()
        try:
            await self._run_close_callbacks()
        finally:
            try:
                suppress = await task_group.__aexit__(exc_type, exc, traceback)
            finally:
                self._finish()
                token, self._current_token = self._current_token, None
                if token is not None:
                    try:
                        _CURRENT.reset(token)
                    except ValueError:  # left in another context than it was entered in
                        _CURRENT.set(None)
        return suppress

    def close(self) -> None:
        """End the call: set the closing flag, then cancel every timer and child task.

        The body of the ``async with`` block is cancelled too (at its next checkpoint) and the
        block is left without an error. Calling it again, or on a closed scope, does nothing.
        It may be called from anywhere in the event loop, including a timer's callback (which is
        how the ready-made hang-up timers end a call). Closing a scope that was never entered marks
        it closed.
        """
        if self._state is CallScopeState.NEW:
            self._state = CallScopeState.CLOSED
            self._finish()
            return
        if self._state is CallScopeState.OPEN:
            self._begin_closing()

    def on_close(self, callback: TimerCallback) -> None:
        """Register a callback to run when the scope closes, for final sends.

        Close callbacks run after the timers and tasks have been cancelled, last registered
        first, all together under one shielded :func:`anyio.move_on_after` of
        :attr:`~voiceguard.config.CallScopeConfig.shutdown_grace` seconds: a Twilio ``clear`` or a
        last ``response.cancel`` still goes out, and a peer that does not answer cannot hold the
        call open. A callback that raises is logged and the others still run; callbacks still
        waiting when the grace runs out are skipped (and logged).

        Args:
            callback: A plain or ``async`` function of no arguments.

        Raises:
            CallScopeError: If the scope is already closing or closed.
        """
        if self.closing:
            raise CallScopeError(
                f"cannot register a close callback on {self._describe()}: the scope "
                f"{'has closed' if self.closed else 'is closing'}"
            )
        self._on_close.append(callback)

    def grace_period(self, seconds: float | None = None) -> anyio.CancelScope:
        """A shielded :func:`anyio.move_on_after` for a final send outside the close callbacks.

        ``with scope.grace_period(): await twilio.send(clear)`` sends even while the call is
        being cancelled, and gives up after the grace.

        Args:
            seconds: The grace in seconds;
                :attr:`~voiceguard.config.CallScopeConfig.shutdown_grace` when omitted.

        Returns:
            A cancel scope to use as a (synchronous) context manager; check its
            ``cancelled_caught`` to learn whether the grace ran out.
        """
        grace = self._config.shutdown_grace if seconds is None else seconds
        return anyio.move_on_after(grace, shield=True)

    # --- tasks ------------------------------------------------------------------------------

    def start_soon(
        self, func: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> None:
        """Start ``func(*args)`` as a child task of the call (cancelled when the call ends).

        Args:
            func: An async function.
            *args: Positional arguments for *func*.
            name: A name for the task, for debugging.

        Raises:
            CallScopeError: If the scope is not open (not entered yet, closing or closed).
        """
        task_group = self._require_open(f"start task {name or _qualname(func)!r}")
        task_group.start_soon(self._run_child, func, args, name=name or _qualname(func))

    async def start(
        self, func: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> Any:
        """Start ``func(*args, task_status=...)`` as a child task and wait until it is ready.

        The function calls ``task_status.started(value)`` when it is ready; *value* is returned
        (see :meth:`anyio.abc.TaskGroup.start`).

        Args:
            func: An async function that takes a ``task_status`` keyword argument.
            *args: Positional arguments for *func*.
            name: A name for the task, for debugging.

        Returns:
            The value the task passed to ``task_status.started()``.

        Raises:
            CallScopeError: If the scope is not open (not entered yet, closing or closed).
        """
        task_group = self._require_open(f"start task {name or _qualname(func)!r}")
        return await task_group.start(self._start_child, func, args, name=name or _qualname(func))

    # --- timers -----------------------------------------------------------------------------

    def timer(
        self,
        name: str,
        delay: float,
        callback: TimerCallback,
        *,
        error_ends_call: bool | None = None,
    ) -> CallScopedTimer:
        """Make a timer of this call (not armed yet: call :meth:`CallScopedTimer.start`).

        Names are unique within a scope: making a timer with the name of an existing one replaces
        it. The old timer is cancelled and can no longer be used, so a second hang-up attempt
        cannot leave two fallbacks behind.

        Args:
            name: The timer's name, used in logs, decisions and :meth:`pending_timers`.
            delay: Seconds from arming to firing (``0 <= delay <= 86400``).
            callback: A plain or ``async`` function of no arguments.
            error_ends_call: Whether an exception from *callback* ends the call (the exception
                leaves the ``async with`` block) instead of being logged;
                :attr:`~voiceguard.config.CallScopeConfig.timer_error_ends_call` when omitted.

        Returns:
            The new timer.

        Raises:
            CallScopeError: If the scope is closing or closed.
            ConfigError: If *delay* is out of range.
        """
        if self.closing:
            raise CallScopeError(
                f"cannot make timer {name!r} on {self._describe()}: the scope "
                f"{'has closed' if self.closed else 'is closing'}"
            )
        if not name:
            raise ConfigError("CallScope.timer(name)", name, "a non-empty str")
        new = CallScopedTimer._create(
            scope=self,
            name=name,
            delay=delay,
            callback=callback,
            error_ends_call=(
                self._config.timer_error_ends_call if error_ends_call is None else error_ends_call
            ),
        )
        old = self._timers.get(name)
        if old is not None:
            old._detach()
        self._timers[name] = new
        return new

    def call_later(
        self,
        name: str,
        delay: float,
        callback: TimerCallback,
        *,
        error_ends_call: bool | None = None,
    ) -> CallScopedTimer:
        """Make a timer with :meth:`timer` and start it at once.

        Takes the same arguments as :meth:`timer`.

        Returns:
            The armed timer.

        Raises:
            CallScopeError: If the scope is not open.
            ConfigError: If *delay* is out of range.
        """
        self._require_open(f"start timer {name!r}")
        new = self.timer(name, delay, callback, error_ends_call=error_ends_call)
        new.start()
        return new

    def pending_timers(self) -> tuple[CallScopedTimer, ...]:
        """The timers that are armed and may still fire, soonest first.

        Empty once the scope is closing: no timer of a closing scope can fire.
        """
        pending = [timer for timer in self._timers.values() if timer.pending]
        pending.sort(key=lambda timer: timer._sort_key())
        return tuple(pending)

    def decide_arm(self, name: str) -> Decision:
        """May a timer named *name* be armed now?

        For code that arms timers in answer to events that can race with the end of the call (a
        ``speech_stopped`` handled after the ``stop`` that closed the call): ask first instead of
        catching :class:`~voiceguard.CallScopeError`. A refusal is logged and counted in
        :attr:`CallScopeStatistics.refused`. The ready-made timers of
        :mod:`voiceguard.runtime.timers` use it.

        Args:
            name: The timer's name, for the log and the decision's ``detail``.

        Returns:
            Allowed (:attr:`~voiceguard.Reason.OK`) while the scope is open; suppressed with
            :attr:`~voiceguard.Reason.CLOSING` while it closes and
            :attr:`~voiceguard.Reason.SCOPE_CLOSED` after.

        Raises:
            CallScopeError: If the scope has not been entered yet (a bug, not a race).
        """
        if self._state is CallScopeState.NEW:
            raise CallScopeError(
                f"cannot arm timer {name!r}: {self._describe()} has not been entered yet "
                "(arm timers inside `async with scope:`)"
            )
        if self._state is CallScopeState.CLOSING:
            return self.refuse(name, Reason.CLOSING)
        if self._state is CallScopeState.CLOSED:
            return self.refuse(name, Reason.SCOPE_CLOSED)
        return Decision(action=Action.TIMER, verdict=Verdict.ALLOW, reason=Reason.OK, detail=name)

    def refuse(self, name: str, reason: Reason) -> Decision:
        """Record that arming the timer *name* was refused, and return the decision.

        The refusal is logged on the ``voiceguard.runtime.scope`` logger with the call identity and
        counted in :attr:`CallScopeStatistics.refused`. For timers with their own policy (the
        ready-made hang-up fallback refuses a second arming with
        :attr:`~voiceguard.Reason.HANGUP_PENDING`).

        Args:
            name: The timer's name.
            reason: Why it was refused.

        Returns:
            A suppressed :attr:`~voiceguard.Action.TIMER` decision with *reason* and the timer's
            name as ``detail``.
        """
        counters = self._counters
        counters.refused[reason] = counters.refused.get(reason, 0) + 1
        decision = Decision(
            action=Action.TIMER, verdict=Verdict.SUPPRESS, reason=reason, detail=name
        )
        logger.log(
            logging.INFO,
            "timer %r not armed: %s (%s)",
            name,
            reason.value,
            self._identity,
            extra=_log_extra(self._identity, name, reason),
        )
        if self._sink is not None:
            self._sink(decision)
        return decision

    def statistics(self) -> CallScopeStatistics:
        """An immutable snapshot of the scope's timer and task counts."""
        counters = self._counters
        return CallScopeStatistics(
            identity=self._identity,
            state=self._state,
            armed=counters.armed,
            restarted=counters.restarted,
            fired=counters.fired,
            failed=counters.failed,
            cancelled=counters.cancelled,
            suppressed=types.MappingProxyType(dict(counters.suppressed)),
            refused=types.MappingProxyType(dict(counters.refused)),
            pending=sum(1 for timer in self._timers.values() if timer.pending),
            tasks=counters.tasks,
        )

    # --- internals --------------------------------------------------------------------------

    def _describe(self) -> str:
        return (
            f"CallScope for call {self._identity.call_sid} (generation {self._identity.generation})"
        )

    def _require_open(self, what: str) -> anyio.abc.TaskGroup:
        if self._state is CallScopeState.OPEN and self._task_group is not None:
            return self._task_group
        if self._state is CallScopeState.NEW:
            problem = "has not been entered yet (use `async with scope:`)"
        elif self._state is CallScopeState.CLOSING:
            problem = "is closing"
        else:
            problem = "has closed"
        raise CallScopeError(f"cannot {what}: {self._describe()} {problem}")

    def _begin_closing(self) -> None:
        # The order is the point: the flag first, so that a timer whose delay is already up sees
        # it; then the cancellation of every timer and task.
        if self._state is CallScopeState.OPEN:
            self._state = CallScopeState.CLOSING
            logger.debug("call scope closing", extra=_log_extra(self._identity, None, None))
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    async def _run_close_callbacks(self) -> None:
        callbacks = self._on_close[::-1]
        self._on_close.clear()
        if not callbacks:
            return
        done = 0
        with anyio.move_on_after(self._config.shutdown_grace, shield=True) as grace:
            for callback in callbacks:
                try:
                    result = callback()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception(
                        "close callback %s failed (%s)",
                        _qualname(callback),
                        self._identity,
                        extra=_log_extra(self._identity, None, None),
                    )
                done += 1
        if grace.cancelled_caught:
            logger.warning(
                "shutdown grace of %gs ran out: %d of %d close callbacks did not finish (%s)",
                self._config.shutdown_grace,
                len(callbacks) - done,
                len(callbacks),
                self._identity,
                extra=_log_extra(self._identity, None, None),
            )

    def _finish(self) -> None:
        self._state = CallScopeState.CLOSED
        self._task_group = None
        # Armings whose task never got to record its own end were cancelled with the scope.
        for timer in self._timers.values():
            arm = timer._arm
            if arm is not None and arm.outcome is None:
                self._resolve(arm, _Outcome.CANCELLED)
        self._timers.clear()
        self._on_close.clear()
        counters = self._counters
        logger.debug(
            "call scope closed: %d armed, %d fired, %d cancelled, %d suppressed (%s)",
            counters.armed,
            counters.fired,
            counters.cancelled,
            sum(counters.suppressed.values()),
            self._identity,
            extra=_log_extra(self._identity, None, None),
        )

    def _resolve(self, arm: _Arm, outcome: _Outcome, reason: Reason | None = None) -> bool:
        if arm.outcome is not None:
            return False
        arm.outcome = outcome
        counters = self._counters
        if outcome is _Outcome.FIRED:
            counters.fired += 1
        elif outcome is _Outcome.CANCELLED:
            counters.cancelled += 1
        elif reason is not None:
            counters.suppressed[reason] = counters.suppressed.get(reason, 0) + 1
        return True

    async def _run_child(
        self, func: Callable[..., Awaitable[object]], args: tuple[object, ...]
    ) -> None:
        self._counters.tasks += 1
        try:
            await func(*args)
        finally:
            self._counters.tasks -= 1

    async def _start_child(
        self,
        func: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        *,
        task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        self._counters.tasks += 1
        try:
            await func(*args, task_status=task_status)
        finally:
            self._counters.tasks -= 1


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
        "_name",
        "_replaced",
        "_scope",
    )

    _arm: _Arm | None
    _callback: TimerCallback
    _delay: float
    _error_ends_call: bool
    _last_decision: Decision | None
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
        name: str,
        delay: float,
        callback: TimerCallback,
        error_ends_call: bool,
    ) -> CallScopedTimer:
        self = object.__new__(cls)
        check_number(self, "delay", delay, low=0, high=_MAX_DELAY, unit="seconds")
        self._scope = scope
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
        return f"<CallScopedTimer {self._name!r} {status} of {self._scope._identity}>"

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
        return arm is not None and arm.outcome is None and self._scope._state is CallScopeState.OPEN

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
            raise CallScopeError(
                f"timer {self._name!r} of {self._scope._describe()} is already pending "
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
        arm.identity = self._scope._identity
        self._scope._counters.restarted += 1
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
        self._scope._resolve(arm, _Outcome.CANCELLED)
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
        if self._replaced:
            raise CallScopeError(
                f"cannot {what} timer {self._name!r}: it was replaced by a newer timer of the "
                f"same name in {self._scope._describe()}"
            )
        self._scope._require_open(f"{what} timer {self._name!r}")

    def _detach(self) -> None:
        self.cancel()
        self._replaced = True

    def _arm_new(self, seconds: float) -> None:
        scope = self._scope
        task_group = scope._require_open(f"start timer {self._name!r}")
        arm = _Arm(anyio.current_time() + seconds, scope._identity)
        self._arm = arm
        scope._counters.armed += 1
        task_group.start_soon(self._run, arm, name=f"voiceguard timer {self._name!r}")

    async def _run(self, arm: _Arm) -> None:
        scope = self._scope
        scope._counters.tasks += 1
        try:
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
                scope._resolve(arm, _Outcome.CANCELLED)
                raise
            # No checkpoint since the sleep ended: what we check now is what the callback sees.
            if self._check_fire(arm):
                await self._fire()
        finally:
            scope._counters.tasks -= 1

    def _check_fire(self, arm: _Arm) -> bool:
        scope = self._scope
        state = scope._state
        if state is CallScopeState.CLOSED:
            reason = Reason.SCOPE_CLOSED
        elif state is CallScopeState.CLOSING:
            reason = Reason.CLOSING
        elif arm.identity != scope._identity:
            reason = Reason.STALE_CALL
        else:
            scope._resolve(arm, _Outcome.FIRED)
            decision = self._last_decision = Decision(
                action=Action.TIMER, verdict=Verdict.ALLOW, reason=Reason.OK, detail=self._name
            )
            if scope._sink is not None:
                scope._sink(decision)
            logger.debug(
                "timer %r fired (%s)",
                self._name,
                arm.identity,
                extra=_log_extra(arm.identity, self._name, None),
            )
            return True
        scope._resolve(arm, _Outcome.SUPPRESSED, reason)
        decision = self._last_decision = Decision(
            action=Action.TIMER, verdict=Verdict.SUPPRESS, reason=reason, detail=self._name
        )
        if scope._sink is not None:
            scope._sink(decision)
        # The record names the identity the timer was armed for: that is the call it belongs to.
        logger.log(
            logging.INFO,
            "timer %r suppressed: %s (armed for %s, scope is %s, %s)",
            self._name,
            reason.value,
            arm.identity,
            state.value,
            scope._identity,
            extra=_log_extra(arm.identity, self._name, reason),
        )
        return False

    async def _fire(self) -> None:
        scope = self._scope
        identity = scope._identity
        try:
            result = self._callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            scope._counters.failed += 1
            logger.exception(
                "timer %r callback failed (%s)%s",
                self._name,
                identity,
                "; ending the call" if self._error_ends_call else "",
                extra=_log_extra(identity, self._name, None),
            )
            if self._error_ends_call:
                scope.close()
                raise


def _qualname(func: object) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)
