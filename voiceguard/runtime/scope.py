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

The scope composes parts of its own: its lifetime (the task group, the state, the close
callbacks), its table of timers, and the books of what they did; the identity and state values
are in ``voiceguard.runtime.identity``. Everything public is importable from here.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable
from typing import Any, final

import anyio
import anyio.abc

from voiceguard.config import CallScopeConfig
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import CallScopeError, ConfigError
from voiceguard.runtime._ledger import CallScopeStatistics, ScopeLedger, describe_scope
from voiceguard.runtime._lifetime import CURRENT_SCOPE, ScopeLifetime, callable_name
from voiceguard.runtime._timer import CallScopedTimer, TimerTable
from voiceguard.runtime.identity import CallIdentity, CallScopeState

__all__ = (
    "CallIdentity",
    "CallScope",
    "CallScopeState",
    "CallScopeStatistics",
    "CallScopedTimer",
    "TimerCallback",
    "current_call_scope",
)

#: The type of a timer's callback, a plain or ``async`` function of no arguments. Whatever it
#: returns is ignored; if it returns an awaitable, the awaitable is awaited. Use
#: :func:`functools.partial` or a closure to pass arguments.
TimerCallback = Callable[[], object]


def current_call_scope() -> CallScope | None:
    """The :class:`~voiceguard.runtime.scope.CallScope` whose ``async with`` block (or task) runs.

    None outside any call scope.

    Set while the block runs, and seen by the tasks and timers the scope starts (they copy the
    context when they start). Nested scopes: the innermost.

    .. versionadded:: 0.1.0
    """
    return CURRENT_SCOPE.get()


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

    __slots__ = ("_config", "_identity", "_ledger", "_lifetime", "_timers")

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
        self._lifetime = ScopeLifetime(self, self._finished)
        self._timers = TimerTable()
        self._ledger = ScopeLedger(sink)

    def __repr__(self) -> str:
        return f"<CallScope {self._identity} {self._lifetime.state.value}>"

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
        return self._lifetime.state

    @property
    def closing(self) -> bool:
        """True from the moment the scope starts to close, and forever after.

        This is the flag the timers check at fire time. It is set before anything is cancelled.
        """
        return self._lifetime.state in (CallScopeState.CLOSING, CallScopeState.CLOSED)

    @property
    def closed(self) -> bool:
        """True once the block has been left and every task of the scope has finished."""
        return self._lifetime.state is CallScopeState.CLOSED

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
        await self._lifetime.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> bool | None:
        """Close the scope: closing flag, cancel everything, close callbacks, wait for tasks."""
        grace = self._config.shutdown_grace
        return await self._lifetime.leave(exc_type, exc, traceback, grace=grace)

    def close(self) -> None:
        """End the call: set the closing flag, then cancel every timer and child task.

        The body of the ``async with`` block is cancelled too (at its next checkpoint) and the
        block is left without an error. Calling it again, or on a closed scope, does nothing.
        It may be called from anywhere in the event loop, including a timer's callback (which is
        how the ready-made hang-up timers end a call). Closing a scope that was never entered marks
        it closed.
        """
        self._lifetime.close()

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
        self._lifetime.add_callback(callback)

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
        task_group = self._lifetime.require_open(f"start task {name or callable_name(func)!r}")
        task_group.start_soon(self._run_child, func, args, name=name or callable_name(func))

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
        task_group = self._lifetime.require_open(f"start task {name or callable_name(func)!r}")
        name = name or callable_name(func)
        return await task_group.start(self._start_child, func, args, name=name)

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
        if error_ends_call is None:
            error_ends_call = self._config.timer_error_ends_call
        return self._timers.make(
            self, self._ledger, name, delay, callback, error_ends_call=error_ends_call
        )

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
        self._lifetime.require_open(f"start timer {name!r}")
        new = self.timer(name, delay, callback, error_ends_call=error_ends_call)
        new.start()
        return new

    def pending_timers(self) -> tuple[CallScopedTimer, ...]:
        """The timers that are armed and may still fire, soonest first.

        Empty once the scope is closing: no timer of a closing scope can fire.
        """
        return self._timers.pending()

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
        state = self._lifetime.state
        if state is CallScopeState.NEW:
            raise CallScopeError(
                f"cannot arm timer {name!r}: {self._describe()} has not been entered yet "
                "(arm timers inside `async with scope:`)"
            )
        if state is CallScopeState.CLOSING:
            return self.refuse(name, Reason.CLOSING)
        if state is CallScopeState.CLOSED:
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
        return self._ledger.refuse(name, reason, self._identity)

    def statistics(self) -> CallScopeStatistics:
        """An immutable snapshot of the scope's timer and task counts."""
        pending = self._timers.count_pending()
        return self._ledger.statistics(self._identity, self._lifetime.state, pending)

    # --- internals --------------------------------------------------------------------------

    def _describe(self) -> str:
        return describe_scope(self._identity)

    def _finished(self) -> None:
        """The scope has closed: armings still pending were cancelled with it."""
        self._timers.close(self._ledger)
        self._ledger.log_closed(self._identity)

    async def _run_child(
        self, func: Callable[..., Awaitable[object]], args: tuple[object, ...]
    ) -> None:
        self._ledger.tasks += 1
        try:
            await func(*args)
        finally:
            self._ledger.tasks -= 1

    async def _start_child(
        self,
        func: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        *,
        task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        self._ledger.tasks += 1
        try:
            await func(*args, task_status=task_status)
        finally:
            self._ledger.tasks -= 1
