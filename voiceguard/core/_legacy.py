"""Deprecated action types of 0.1, kept importable for one release.

The reference bridge asked its runtime to start and stop call-scoped timers and to tell the idle
ladder about activity. The call's timers are now deadlines of the turn engine, so the bridge
never returns these; they go away in the next release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias, final

__all__ = ("NoteActivity", "StartTimer", "StopTimer", "TimerName")

#: The call-scoped timers the 0.1 bridge asked for.
TimerName: TypeAlias = Literal["watchdog", "hangup_fallback"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StartTimer:
    """Deprecated: (re)start the call-scoped timer *timer*."""

    timer: TimerName


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StopTimer:
    """Deprecated: cancel the call-scoped timer *timer*."""

    timer: TimerName


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class NoteActivity:
    """Deprecated: tell the idle ladder that someone spoke."""

    who: Literal["caller", "bot"]
