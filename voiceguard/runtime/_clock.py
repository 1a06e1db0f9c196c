"""The running event loop's clock, looked up once per call; a sleep another task can cut short.

:func:`anyio.current_time` finds the running backend on every call (about 0.8 us on this
project's benchmark machine), and a call reads the time several times per message. The value
is the same: on asyncio it is the loop's :meth:`~asyncio.AbstractEventLoop.time`; on trio
(virtual clocks included) :func:`anyio.current_time` itself is kept.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import final

import anyio

__all__ = ("Alarm", "loop_clock")


def loop_clock() -> Callable[[], float]:
    """A function that returns what :func:`anyio.current_time` returns, in this event loop.

    Call it inside the loop; use what it returns only in that loop.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio (trio)
        return anyio.current_time
    clock = loop.time
    # anyio runs on asyncio here unless a loop of asyncio's runs beside another library's (as
    # trio-asyncio does): then the clocks differ, and anyio's own is kept.
    return clock if abs(clock() - anyio.current_time()) < 1e-3 else anyio.current_time


@final
class Alarm:
    """A task's sleep until a deadline, which other tasks can cut short (:meth:`wake`).

    A sleep that runs to its deadline costs no cancellation (an event waited for under
    :func:`anyio.move_on_after` would cancel the task each time); only :meth:`wake` cancels.

    Attributes:
        until: The deadline of the sleep under way (``inf``: none), ``-inf`` while awake.
    """

    __slots__ = ("_asleep", "until")

    def __init__(self) -> None:
        self._asleep: anyio.CancelScope | None = None
        self.until = math.inf

    async def sleep(self, deadline: float | None, now: float) -> None:
        """Sleep until *deadline* (for ever if None), *now* being the current time."""
        self.until = math.inf if deadline is None else deadline
        with anyio.CancelScope() as self._asleep:
            if deadline is None:
                await anyio.sleep_forever()
            else:
                await anyio.sleep(deadline - now)
        self._asleep = None
        self.until = -math.inf

    def wake(self) -> None:
        """End the sleep under way, if any."""
        if self._asleep is not None:
            self._asleep.cancel()
