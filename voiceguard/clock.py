"""Deprecated clocks: :class:`Clock`, :class:`SystemClock`, :class:`ManualClock`.

No API of voiceguard takes one: the sans-IO core is handed ``now`` (monotonic float seconds) with
every call, the anyio layers read :func:`anyio.current_time`, and
:class:`~voiceguard.middleware.GuardedCall` takes any ``clock()`` function. This module goes away
in the next release.

.. deprecated:: 0.2.0
"""

from __future__ import annotations

import math
import time
from typing import Protocol, final, runtime_checkable

from voiceguard._deprecated import warn_deprecated
from voiceguard.errors import VoiceguardError

warn_deprecated(
    "voiceguard.clock",
    "pass monotonic seconds (now) to the guards, or a clock() function to GuardedCall",
)

__all__ = ("Clock", "ClockError", "ManualClock", "SystemClock")


class ClockError(VoiceguardError, ValueError):
    """A :class:`ManualClock` was asked to move backwards."""


@runtime_checkable
class Clock(Protocol):
    """Anything that tells monotonic time in float seconds."""

    def now(self) -> float:
        """Return the current monotonic time in seconds."""
        ...


@final
class SystemClock:
    """The process's monotonic clock (:func:`time.monotonic`)."""

    __slots__ = ()

    def now(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


@final
class ManualClock:
    """A clock that moves only when told to, and never backwards.

    Args:
        start: The initial time in seconds.

    Raises:
        ClockError: If *start* is not a finite number.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        if not math.isfinite(start):
            raise ClockError(f"ManualClock start must be a finite number of seconds, got {start!r}")
        self._now = float(start)

    def now(self) -> float:
        """Return the current time."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by *seconds* and return the new time.

        Raises:
            ClockError: If *seconds* is negative or not finite; the clock is unchanged.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ClockError(
                f"ManualClock.advance({seconds!r}): a clock only moves forward; "
                "pass a finite number of seconds >= 0"
            )
        self._now += seconds
        return self._now

    def set(self, now: float) -> None:
        """Jump to the absolute time *now*.

        Raises:
            ClockError: If *now* is earlier than the current time or not finite.
        """
        if not math.isfinite(now) or now < self._now:
            raise ClockError(
                f"ManualClock.set({now!r}): the clock is at {self._now!r} and cannot go backwards"
            )
        self._now = float(now)

    def __repr__(self) -> str:
        return f"ManualClock(start={self._now!r})"
