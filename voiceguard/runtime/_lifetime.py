"""The life of a call scope: entering it, and leaving it in order.

:class:`ScopeLifetime` is the part of :class:`~voiceguard.runtime.scope.CallScope` that owns its
anyio task group and its :class:`~voiceguard.runtime.identity.CallScopeState`, and leaves it always
the same way: the closing flag first, then the cancellation of every timer and task, then the
close callbacks (last registered first, under one shielded :func:`anyio.move_on_after` of the
shutdown grace), then the wait for the tasks.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, final

import anyio
import anyio.abc

from voiceguard.errors import CallScopeError
from voiceguard.runtime._ledger import describe_scope, log_fields, not_open
from voiceguard.runtime.identity import CallScopeState

if TYPE_CHECKING:
    from voiceguard.runtime.scope import CallScope, TimerCallback

__all__ = ("CURRENT_SCOPE", "ScopeLifetime", "callable_name")

logger = logging.getLogger("voiceguard.timers")

#: The scope whose ``async with`` block (or task) runs (see ``current_call_scope``).
CURRENT_SCOPE: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "voiceguard_call_scope", default=None
)


def callable_name(func: object) -> str:
    """A callable's qualified name, for task names and log records."""
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)


@final
class ScopeLifetime:
    """Where one scope is in its life, its task group and its close callbacks.

    Args:
        scope: The scope (made current while its block runs; its identity names it in logs).
        finish: Called once the scope has closed, to settle what is left of it.

    Attributes:
        state: Where the scope is in its life; it only moves forward.
    """

    __slots__ = ("_callbacks", "_finish", "_scope", "_task_group", "_token", "state")

    def __init__(self, scope: CallScope, finish: Callable[[], None]) -> None:
        self._scope = scope
        self._finish = finish
        self.state = CallScopeState.NEW
        self._task_group: anyio.abc.TaskGroup | None = None
        self._token: contextvars.Token[CallScope | None] | None = None
        self._callbacks: list[TimerCallback] = []

    def require_open(self, what: str) -> anyio.abc.TaskGroup:
        """The task group, to do *what* in.

        Raises:
            CallScopeError: If the scope is not open.
        """
        if self.state is CallScopeState.OPEN and self._task_group is not None:
            return self._task_group
        raise not_open(what, self._scope.identity, self.state)

    def add_callback(self, callback: TimerCallback) -> None:
        """Register a close callback (the scope checks that it is not closing)."""
        self._callbacks.append(callback)

    async def enter(self) -> None:
        """Open the scope (see ``CallScope.__aenter__``)."""
        describe = describe_scope(self._scope.identity)
        if self.state is CallScopeState.OPEN:
            raise CallScopeError(
                f"{describe} is already open: a CallScope is entered once "
                "(make a new CallScope for each call)"
            )
        if self.state is CallScopeState.CLOSING:
            raise CallScopeError(
                f"{describe} was already entered and is closing: a CallScope is entered "
                "once (make a new CallScope for each call)"
            )
        if self.state is CallScopeState.CLOSED:
            raise CallScopeError(
                f"{describe} has already closed and cannot be re-entered "
                "(make a new CallScope for each call)"
            )
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self.state = CallScopeState.OPEN
        self._token = CURRENT_SCOPE.set(self._scope)
        logger.debug("call scope opened", extra=log_fields(self._scope.identity, None, None))

    async def leave(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
        *,
        grace: float,
    ) -> bool | None:
        """Close the scope (see ``CallScope.__aexit__``)."""
        task_group = self._task_group
        if task_group is None:
            raise CallScopeError(
                f"{describe_scope(self._scope.identity)} was left without being entered"
            )
        self.begin_closing()
        try:
            await self._run_callbacks(grace)
        finally:
            try:
                suppress = await task_group.__aexit__(exc_type, exc, traceback)
            finally:
                self._closed()
                token, self._token = self._token, None
                if token is not None:
                    try:
                        CURRENT_SCOPE.reset(token)
                    except ValueError:  # left in another context than it was entered in
                        CURRENT_SCOPE.set(None)
        return suppress

    def close(self) -> None:
        """End the call now (see ``CallScope.close``)."""
        if self.state is CallScopeState.NEW:
            self.state = CallScopeState.CLOSED
            self._closed()
            return
        if self.state is CallScopeState.OPEN:
            self.begin_closing()

    def begin_closing(self) -> None:
        """The closing flag, then the cancellation of every timer and task."""
        # The order is the point: the flag first, so that a timer whose delay is already up sees
        # it; then the cancellation of every timer and task.
        if self.state is CallScopeState.OPEN:
            self.state = CallScopeState.CLOSING
            logger.debug("call scope closing", extra=log_fields(self._scope.identity, None, None))
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    def _closed(self) -> None:
        self.state = CallScopeState.CLOSED
        self._task_group = None
        self._finish()
        self._callbacks.clear()

    async def _run_callbacks(self, grace: float) -> None:
        """Run the close callbacks, last registered first, within *grace* seconds."""
        callbacks = self._callbacks[::-1]
        self._callbacks.clear()
        if not callbacks:
            return
        identity = self._scope.identity
        done = 0
        with anyio.move_on_after(grace, shield=True) as shield:
            for callback in callbacks:
                try:
                    result = callback()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception(
                        "close callback %s failed (%s)",
                        callable_name(callback),
                        identity,
                        extra=log_fields(identity, None, None),
                    )
                done += 1
        if shield.cancelled_caught:
            logger.warning(
                "shutdown grace of %gs ran out: %d of %d close callbacks did not finish (%s)",
                grace,
                len(callbacks) - done,
                len(callbacks),
                identity,
                extra=log_fields(identity, None, None),
            )
