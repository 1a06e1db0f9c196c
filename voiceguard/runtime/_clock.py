"""The running event loop's clock, looked up once per call.

:func:`anyio.current_time` finds the running backend on every call (about 0.8 us on this
project's benchmark machine), and a call reads the time several times per message. The value
is the same: on asyncio it is the loop's :meth:`~asyncio.AbstractEventLoop.time`; on trio
(virtual clocks included) :func:`anyio.current_time` itself is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio

__all__ = ("loop_clock",)


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
