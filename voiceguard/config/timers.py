"""Configuration of call scopes and of the call's timers (watchdog, hang-up, idle, limits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from voiceguard.config._checks import check_bool, check_number, check_optional_number
from voiceguard.errors import ConfigError

__all__ = (
    "CallScopeConfig",
    "HangupFallbackConfig",
    "IdleLadderConfig",
    "MaxCallDurationConfig",
    "ResponseWatchdogConfig",
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallScopeConfig:
    """Configuration of :class:`~voiceguard.runtime.scope.CallScope`.

    Attributes:
        shutdown_grace: Seconds the final sends of a call (its close callbacks: a Twilio
            ``clear``, a last ``response.cancel``) get, all together, under a shielded cancel
            scope when the call ends. Long enough for a few WebSocket sends over a slow link,
            short enough that a peer that stopped answering cannot hold a finished call open.
            Default 1 s.
        timer_error_ends_call: Whether an exception raised by a timer's callback ends the call
            (it leaves the scope's ``async with`` block) instead of being logged with the call
            identity. Default off: a failed re-prompt should not hang up on the caller. A timer
            can choose otherwise (``error_ends_call=`` of
            :meth:`~voiceguard.runtime.scope.CallScope.timer`).
    """

    shutdown_grace: float = 1.0
    timer_error_ends_call: bool = False

    def __post_init__(self) -> None:
        check_number(self, "shutdown_grace", self.shutdown_grace, low=0, high=30, unit="seconds")
        check_bool(self, "timer_error_ends_call", self.timer_error_ends_call)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HangupFallbackConfig:
    """Configuration of :class:`~voiceguard.runtime.timers.HangupFallback`.

    Attributes:
        delay: Seconds from arming the fallback (when the goodbye's last audio has been handed to
            the phone) to ending the call if the goodbye's mark has not come back by then. It
            covers the phone's playout buffer, the network and a slow mark, and is short enough
            that a lost mark does not leave the caller listening to silence. Default 6 s (the
            value of the production bot voiceguard grew out of).
    """

    delay: float = 6.0

    def __post_init__(self) -> None:
        check_number(self, "delay", self.delay, low=0, high=120, unit="seconds", low_open=True)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseWatchdogConfig:
    """Configuration of :class:`~voiceguard.runtime.timers.ResponseWatchdog`.

    Attributes:
        delay: Seconds from the end of a caller's turn to the watchdog firing if no response has
            started by then. The Realtime API normally starts a response well within a second,
            so 3 s means a lost turn rather than a slow one, and it is still short enough that
            the caller has not started to repeat themselves. Default 3 s.
    """

    delay: float = 3.0

    def __post_init__(self) -> None:
        check_number(self, "delay", self.delay, low=0, high=60, unit="seconds", low_open=True)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class IdleLadderConfig:
    """Configuration of :class:`~voiceguard.runtime.timers.IdleLadder`.

    Attributes:
        prompt_delays: Seconds of silence before each prompt ("Are you still there?"), the first
            counted from the last activity, each next one from the previous rung. Default
            ``(15.0, 10.0)``: 15 s lets a caller look up an order or card number without being
            nagged (Vocode and LiveKit Agents wait 15 s too); the second prompt comes sooner
            because the caller has been asked once already. At most 5 prompts.
        hangup_delay: Seconds after the last prompt before the ladder hangs up, or ``None`` to
            never hang up for silence. Default 10 s, so a silent line is released after 35 s of
            silence and two prompts instead of costing minutes of model time.
    """

    prompt_delays: tuple[float, ...] = (15.0, 10.0)
    hangup_delay: float | None = 10.0

    def __post_init__(self) -> None:
        delays: object = self.prompt_delays  # checked as what it is, not what it should be
        if not isinstance(delays, tuple) or len(delays) > 5:
            raise ConfigError(
                f"{type(self).__name__}.prompt_delays",
                delays,
                "a tuple of at most 5 numbers, 0 < each <= 3600",
            )
        for index, delay in enumerate(delays):
            check_number(
                self,
                f"prompt_delays[{index}]",
                delay,
                low=0,
                high=3600,
                unit="seconds",
                low_open=True,
            )
        hangup: object = self.hangup_delay
        if hangup is not None and (
            not isinstance(hangup, (int, float))
            or isinstance(hangup, bool)
            or not 0 < hangup <= 3600
        ):
            raise ConfigError(
                f"{type(self).__name__}.hangup_delay",
                hangup,
                "None (never hang up) or a number, 0 < value <= 3600 (seconds)",
            )
        if not self.prompt_delays and self.hangup_delay is None:
            raise ConfigError(
                f"{type(self).__name__}.hangup_delay",
                None,
                "a number of seconds when prompt_delays is empty (a ladder needs one rung)",
            )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MaxCallDurationConfig:
    """Configuration of :class:`~voiceguard.runtime.timers.MaxCallDuration`.

    Attributes:
        limit: Seconds from the start of the call to the polite limit (the bot says goodbye).
            Default 1500 s (25 minutes): service calls are normally over in a few minutes, and
            the OpenAI Realtime API ends a session after a fixed maximum (30 minutes for the
            first realtime models; check the limit of yours), so the goodbye must come before
            the model side disappears mid-sentence.
        hard_limit: Seconds from the start of the call to the hard limit (the call is ended
            without further ado), or ``None`` for none. At least *limit*. Default 1560 s: one
            minute for the goodbye.
    """

    limit: float = 1500.0
    hard_limit: float | None = 1560.0

    def __post_init__(self) -> None:
        check_number(self, "limit", self.limit, low=0, high=86_400, unit="seconds", low_open=True)
        check_optional_number(
            self, "hard_limit", self.hard_limit, low=0, high=86_400, unit="seconds"
        )
        if self.hard_limit is not None and self.hard_limit < self.limit:
            raise ConfigError(
                f"{type(self).__name__}.hard_limit",
                self.hard_limit,
                f"None (off) or a number, limit ({self.limit:g}) <= value <= 86400 (seconds)",
            )
