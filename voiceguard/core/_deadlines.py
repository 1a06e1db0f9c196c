"""The call's own timers as deadlines: the hang-up fallback, the idle ladder, the time limits.

:class:`CallDeadlines` keeps the times at which each is due and says, at a tick, which are
(:meth:`CallDeadlines.due`); the turn engine acts on them. Nothing here sleeps: the driver wakes
the engine at :meth:`CallDeadlines.next_deadline` (through the engine's own ``next_deadline``), in
real time or in virtual time alike, and a timer of one call cannot outlive it because it is only
a number inside that call's engine.

The idle ladder counts silence only while the line is quiet: nobody speaks, no response runs or
is asked for, nothing plays on the phone and no tool runs. A bot talking for 40 seconds is not 40
seconds of silence.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import final

from voiceguard.config import TurnConfig
from voiceguard.decisions import Reason

__all__ = ("CallDeadlines", "CallTimer", "CallTimerStatistics", "earliest")


def earliest(a: float | None, b: float | None) -> float | None:
    """The earlier of two deadlines (None: nothing due). The engine asks its deadline after
    every message, so this is plain comparisons, not ``min`` over a generator."""
    if a is None:
        return b
    if b is None or a <= b:
        return a
    return b


@final
class CallTimer(enum.Enum):
    """A timer of the call that came due (the values are the names traces give them)."""

    #: The goodbye's mark never came back: hang up anyway.
    HANGUP_FALLBACK = "hangup_fallback"
    #: The caller has been silent for a rung of the idle ladder: ask whether they are there.
    IDLE_PROMPT = "idle_prompt"
    #: The caller stayed silent through every prompt: hang up.
    IDLE_HANGUP = "idle_hangup"
    #: The call reached its polite time limit: say goodbye.
    TIME_LIMIT = "max_duration"
    #: The call reached its hard time limit: hang up.
    HARD_TIME_LIMIT = "max_duration_hard"
    #: The call was asked to end soon (its server drains): say goodbye.
    WIND_UP = "wind_up"
    #: The call asked to end soon is still there at the end of its grace: hang up.
    WIND_UP_HARD = "wind_up_hard"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallTimerStatistics:
    """The call's own timers, counted (for the call's metrics).

    Attributes:
        armed: Deadlines set: a watch over each create sent, the hang-up fallback, each rung of
            the idle ladder, the time limits.
        fired: Deadlines that came due and were acted on.
        suppressed: Deadlines that came due but whose action a guard refused, by reason (an
            idle prompt while the bot's audio still plays, a re-send while a hang-up is
            pending, ...).
    """

    armed: int
    fired: int
    suppressed: Mapping[Reason, int]


@final
class CallDeadlines:
    """When each of the call's own timers is due.

    Args:
        config: The engine's configuration (its ``hangup_fallback``, ``idle`` and
            ``max_duration``).

    Attributes:
        ended: True once the call was ended (nothing is due after that).
        rung: Prompts given since the caller last spoke.
    """

    __slots__ = (
        "_armed",
        "_config",
        "_fallback_at",
        "_fired",
        "_goodbye_due",
        "_hard_due",
        "_quiet_since",
        "_started_at",
        "_suppressed",
        "_wind_up_at",
        "_wind_up_by",
        "_wound_up",
        "ended",
        "rung",
    )

    def __init__(self, config: TurnConfig) -> None:
        self._config = config
        self.ended = False
        self.rung = 0
        self._started_at: float | None = None
        self._quiet_since: float | None = None
        self._fallback_at: float | None = None
        self._goodbye_due = config.max_duration is not None
        self._hard_due = config.max_duration is not None and (
            config.max_duration.hard_limit is not None
        )
        self._wind_up_at: float | None = None
        self._wind_up_by: float | None = None
        self._wound_up = False
        self._armed = 0
        self._fired = 0
        self._suppressed: Counter[Reason] = Counter()

    def statistics(self) -> CallTimerStatistics:
        """An immutable snapshot of the counters."""
        return CallTimerStatistics(
            armed=self._armed,
            fired=self._fired,
            suppressed=MappingProxyType(dict(self._suppressed)),
        )

    def armed(self) -> None:
        """A deadline of the engine's own (the watch over a create) was set."""
        self._armed += 1

    def fired(self, refused: Reason | None = None) -> None:
        """A deadline came due; *refused*: the reason its action was not taken."""
        if refused is None:
            self._fired += 1
        else:
            self._suppressed[refused] += 1

    @property
    def fallback_armed(self) -> bool:
        """True once the hang-up fallback was armed."""
        return self._fallback_at is not None

    def call_started(self, now: float) -> None:
        """The call started: its time limits count from *now*."""
        if self._started_at is None:
            self._started_at = now
            self._armed += int(self._goodbye_due) + int(self._hard_due)

    def caller_spoke(self) -> None:
        """The caller really spoke: the idle ladder starts again from the bottom."""
        self.rung = 0

    def line(self, *, quiet: bool, now: float) -> None:
        """Whether the line is quiet now (silence is counted from when it became quiet)."""
        if not quiet:
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = now
            self._armed += int(self._idle_at() is not None)

    def arm_fallback(self, now: float) -> None:
        """The goodbye is all on the phone: hang up after the fallback delay at the latest."""
        if self._fallback_at is None and self._config.hangup_fallback is not None:
            self._fallback_at = now + self._config.hangup_fallback
            self._armed += 1

    def wind_up(self, now: float, within: float) -> None:
        """The call is to end soon: the goodbye is due at *now*, the hang-up by *now + within*
        (an earlier wind-up's deadline stands)."""
        if self.ended or self._wound_up:
            return
        self._wound_up = True
        self._wind_up_at = now
        self._wind_up_by = now + within
        self._armed += 2

    def _idle_at(self) -> float | None:
        idle = self._config.idle
        if idle is None or self._quiet_since is None:
            return None
        prompts = idle.prompt_delays
        if self.rung < len(prompts):
            return self._quiet_since + prompts[self.rung]
        if self.rung == len(prompts) and idle.hangup_delay is not None:
            return self._quiet_since + idle.hangup_delay
        return None

    def _limits(self) -> tuple[float | None, float | None]:
        limits = self._config.max_duration
        start = self._started_at
        if limits is None or start is None:
            return None, None
        polite = start + limits.limit if self._goodbye_due else None
        hard = start + limits.hard_limit if self._hard_due and limits.hard_limit else None
        return polite, hard

    def next_deadline(self) -> float | None:
        """When the next timer is due, or None."""
        if self.ended:
            return None
        polite, hard = self._limits()
        best = earliest(earliest(self._fallback_at, self._idle_at()), earliest(polite, hard))
        return earliest(best, earliest(self._wind_up_at, self._wind_up_by))

    def due(self, now: float) -> list[tuple[CallTimer, int]]:
        """The timers due at *now*, each once, with the idle prompt's number (1, 2, ...)."""
        if self.ended:
            return []
        out: list[tuple[CallTimer, int]] = []
        if self._fallback_at is not None and now >= self._fallback_at:
            self._fallback_at = None
            out.append((CallTimer.HANGUP_FALLBACK, 0))
        if self._wind_up_by is not None and now >= self._wind_up_by:
            self._wind_up_by = None
            out.append((CallTimer.WIND_UP_HARD, 0))
        if self._wind_up_at is not None and now >= self._wind_up_at:
            self._wind_up_at = None
            out.append((CallTimer.WIND_UP, 0))
        polite, hard = self._limits()
        if hard is not None and now >= hard:
            self._hard_due = False
            out.append((CallTimer.HARD_TIME_LIMIT, 0))
        if polite is not None and now >= polite:
            self._goodbye_due = False
            out.append((CallTimer.TIME_LIMIT, 0))
        idle_at = self._idle_at()
        if idle_at is not None and now >= idle_at:
            assert self._config.idle is not None
            self._quiet_since = now  # the next rung counts from here
            self._armed += 1
            if self.rung < len(self._config.idle.prompt_delays):
                self.rung += 1
                out.append((CallTimer.IDLE_PROMPT, self.rung))
            else:
                self.rung += 1
                out.append((CallTimer.IDLE_HANGUP, 0))
        return out
