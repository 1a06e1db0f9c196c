"""Decorators for a bot's own handlers: timers of the current call."""

from __future__ import annotations

from collections.abc import Callable

from voiceguard.errors import CallScopeError
from voiceguard.runtime.scope import CallScope, CallScopedTimer, TimerCallback, current_call_scope

__all__ = ("call_timer",)


def call_timer(
    delay: float,
    *,
    name: str | None = None,
    scope: CallScope | None = None,
    error_ends_call: bool | None = None,
) -> Callable[[TimerCallback], CallScopedTimer]:
    """Make the decorated function a timer of the current call (not armed yet).

    The timer belongs to the :class:`~voiceguard.runtime.scope.CallScope` running where the
    decorator is applied (:func:`~voiceguard.current_call_scope`), or to *scope*: when the call
    ends it is cancelled, and if it is due while the call closes, or the call's identity changed
    since it was armed, the function does not run (the decision is logged and counted). A hang-up
    fallback of one call can never hang up another::

        async with CallScope(call_sid=call_sid) as scope:

            @call_timer(6.0)
            async def hang_up_fallback() -> None:
                await twilio_ws.close()

            ...
            hang_up_fallback.start()  # when the goodbye is on its way

    Args:
        delay: Seconds from :meth:`~voiceguard.runtime.scope.CallScopedTimer.start` to the call.
        name: The timer's name in logs and statistics; the function's name by default. A second
            timer of the same name in the same call replaces the first.
        scope: The call scope; the current one by default.
        error_ends_call: Whether an exception from the function ends the call; the scope's
            configuration decides by default.

    Returns:
        A decorator that turns a plain or ``async`` function of no arguments into a
        :class:`~voiceguard.runtime.scope.CallScopedTimer`.

    Raises:
        CallScopeError: When applied outside any call scope with no *scope* given, or on a
            scope that is closing or closed.
    """

    def decorate(function: TimerCallback) -> CallScopedTimer:
        target = scope if scope is not None else current_call_scope()
        if target is None:
            raise CallScopeError(
                f"call_timer: no call scope is running where {_name(function)} is decorated; "
                "decorate it inside `async with CallScope(...)` or pass scope="
            )
        return target.timer(
            name if name is not None else _name(function),
            delay,
            function,
            error_ends_call=error_ends_call,
        )

    return decorate


def _name(function: object) -> str:
    return str(getattr(function, "__name__", None) or type(function).__name__)
