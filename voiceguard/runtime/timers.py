"""Ready-made timers of a phone call, built on :class:`~voiceguard.runtime.scope.CallScope`.

Each is a small object bound to one call scope, with its own configuration:

======================================================  ====================================
timer                                                   armed / disarmed by the handler
======================================================  ====================================
:class:`HangupFallback` (6 s)                           armed when the goodbye's audio has
                                                        been handed to the phone; disarmed
                                                        when its mark comes back
:class:`ResponseWatchdog` (3 s)                         armed at the end of a caller's turn;
                                                        disarmed when a response starts
:class:`IdleLadder` (15 s, 10 s, 10 s)                  fed real speech; paused around tool
                                                        calls
:class:`MaxCallDuration` (25 min, hard 26 min)          started with the call
======================================================  ====================================

None of them sends anything to a peer. Each calls back into your code, which decides (the
watchdog's callback should go through a :class:`~voiceguard.ResponseCreateGuard`, the hang-up
callbacks close the call). Because they are
:class:`~voiceguard.runtime.scope.CallScopedTimer`\\ s, none of them can act after its call has
ended or for another call.

The methods that arm a timer in answer to an event (``arm``, ``start``) return a
:class:`~voiceguard.Decision`: an event handled while the call is already closing is an expected
race, so it is refused with :attr:`~voiceguard.Reason.CLOSING` (logged and counted by the scope),
not raised.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import final

from voiceguard.config import (
    HangupFallbackConfig,
    IdleLadderConfig,
    MaxCallDurationConfig,
    ResponseWatchdogConfig,
)
from voiceguard.decisions import Decision, Reason
from voiceguard.errors import CallScopeError
from voiceguard.runtime.scope import CallScope, CallScopedTimer, TimerCallback

__all__ = ("HangupFallback", "IdleLadder", "MaxCallDuration", "ResponseWatchdog")


@final
class HangupFallback:
    """Ends the call if the goodbye's mark never comes back.

    A polite hang-up lets the goodbye play to the end (Twilio echoes the ``mark`` sent after its
    last chunk) and then closes the call. If the mark is lost, the fallback closes the call
    anyway after :attr:`~voiceguard.config.HangupFallbackConfig.delay` seconds. Arm it when the
    goodbye's last audio has been handed to the phone, not when the model starts the goodbye:
    audio arrives faster than it plays, so only the phone's buffer is left to play then.

    There is one fallback per call: arming it again while it is pending is refused with
    :attr:`~voiceguard.Reason.HANGUP_PENDING` and keeps the first deadline, so a model that calls
    ``end_call`` twice cannot postpone the hang-up.

    Args:
        scope: The call.
        on_fallback: What to do when the mark did not come (a plain or ``async`` function of no
            arguments); :meth:`CallScope.close() <voiceguard.runtime.scope.CallScope.close>` when
            omitted.
        config: The delay; the defaults when omitted.
        name: The timer's name in the scope.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_config", "_scope", "_timer")

    def __init__(
        self,
        scope: CallScope,
        on_fallback: TimerCallback | None = None,
        *,
        config: HangupFallbackConfig | None = None,
        name: str = "hangup_fallback",
    ) -> None:
        self._scope = scope
        self._config = HangupFallbackConfig() if config is None else config
        self._timer = scope.timer(
            name, self._config.delay, scope.close if on_fallback is None else on_fallback
        )

    @property
    def config(self) -> HangupFallbackConfig:
        """The fallback's configuration."""
        return self._config

    @property
    def timer(self) -> CallScopedTimer:
        """The underlying timer."""
        return self._timer

    @property
    def pending(self) -> bool:
        """True while the fallback is armed and may still fire."""
        return self._timer.pending

    def arm(self) -> Decision:
        """Arm the fallback: the goodbye has been handed to the phone.

        Returns:
            Allowed if it is now armed; suppressed with :attr:`~voiceguard.Reason.HANGUP_PENDING`
            if it already was (the first deadline stays), or with
            :attr:`~voiceguard.Reason.CLOSING` / :attr:`~voiceguard.Reason.SCOPE_CLOSED` if the
            call is already ending.

        Raises:
            CallScopeError: If the scope has not been entered yet.
        """
        decision = self._scope.decide_arm(self._timer.name)
        if not decision:
            return decision
        if self._timer.pending:
            return self._scope.refuse(self._timer.name, Reason.HANGUP_PENDING)
        self._timer.start()
        return decision

    def disarm(self) -> bool:
        """The goodbye's mark came back: the normal hang-up takes over.

        Returns:
            True if the fallback was pending.
        """
        return self._timer.cancel()


@final
class ResponseWatchdog:
    """Notices a caller's turn that got no response.

    Arm it at the end of every real caller turn (``input_audio_buffer.committed`` of a turn the
    calibration gate accepted) and disarm it when a response starts (``response.created``) or
    the caller starts speaking again. If nothing disarmed it within
    :attr:`~voiceguard.config.ResponseWatchdogConfig.delay` seconds, *on_timeout* runs once.

    The watchdog sends nothing itself: route its callback through the
    :class:`~voiceguard.ResponseCreateGuard`, which refuses a ``response.create`` while a
    response is active or in flight, the bot's audio is still playing, the greeting holds the
    line, a hang-up is pending or the call is closing. Disarmed, it is a no-op.

    Args:
        scope: The call.
        on_timeout: What to do for the unanswered turn (a plain or ``async`` function of no
            arguments).
        config: The delay; the defaults when omitted.
        name: The timer's name in the scope.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_config", "_scope", "_timer")

    def __init__(
        self,
        scope: CallScope,
        on_timeout: TimerCallback,
        *,
        config: ResponseWatchdogConfig | None = None,
        name: str = "response_watchdog",
    ) -> None:
        self._scope = scope
        self._config = ResponseWatchdogConfig() if config is None else config
        self._timer = scope.timer(name, self._config.delay, on_timeout)

    @property
    def config(self) -> ResponseWatchdogConfig:
        """The watchdog's configuration."""
        return self._config

    @property
    def timer(self) -> CallScopedTimer:
        """The underlying timer."""
        return self._timer

    @property
    def pending(self) -> bool:
        """True while the watchdog is armed and may still fire."""
        return self._timer.pending

    def arm(self) -> Decision:
        """A caller's turn ended: start waiting for its response.

        Arming a pending watchdog restarts its wait: the newest turn is the one waiting.

        Returns:
            Allowed if it is now armed; suppressed with :attr:`~voiceguard.Reason.CLOSING` or
            :attr:`~voiceguard.Reason.SCOPE_CLOSED` if the call is already ending.

        Raises:
            CallScopeError: If the scope has not been entered yet.
        """
        decision = self._scope.decide_arm(self._timer.name)
        if decision:
            self._timer.restart()
        return decision

    def disarm(self) -> bool:
        """A response started (or the caller speaks again): stop waiting.

        Returns:
            True if the watchdog was pending.
        """
        return self._timer.cancel()


@final
class IdleLadder:
    """Prompts a silent caller, then hangs up: prompt, prompt, hang up.

    The ladder counts silence. Each rung waits its delay from
    :attr:`~voiceguard.config.IdleLadderConfig.prompt_delays`; when it is up, the ladder calls
    ``on_prompt(n)`` (``n`` = 1 for the first prompt) and climbs to the next rung; after the
    last prompt it waits :attr:`~voiceguard.config.IdleLadderConfig.hangup_delay` and calls
    *on_hangup*. Feed it:

    * :meth:`caller_activity` when the caller really speaks: the ladder starts again from the
      bottom. Only for speech the calibration gate accepted: noise and echo that the gate
      rejected must not call it (pass the gate's decision and the ladder checks it for you),
      or a noisy line would never be hung up.
    * :meth:`bot_activity` when the bot starts or finishes speaking: the current rung starts its
      delay again, so silence is counted from the end of the bot's audio, but the ladder does not
      go back down. The bot saying the prompt does not undo the prompt.
    * :meth:`pause` / :meth:`resume` around a tool call (and anything else during which the caller
      is waiting for the bot): nothing fires while paused; :meth:`resume` gives the current rung
      its full delay again. Pauses nest.

    The ladder is armed by the first activity. After the hang-up rung it is finished and ignores
    activity.

    Args:
        scope: The call.
        on_prompt: Called with the prompt's number (1, 2, ...); a plain or ``async`` function.
        on_hangup: Called when the last rung is up (a plain or ``async`` function of no
            arguments); :meth:`CallScope.close() <voiceguard.runtime.scope.CallScope.close>` when
            omitted.
        config: The rungs; the defaults when omitted.
        name: The timer's name in the scope.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_active",
        "_config",
        "_finished",
        "_on_hangup",
        "_on_prompt",
        "_paused",
        "_rung",
        "_scope",
        "_timer",
    )

    def __init__(
        self,
        scope: CallScope,
        on_prompt: Callable[[int], object],
        on_hangup: TimerCallback | None = None,
        *,
        config: IdleLadderConfig | None = None,
        name: str = "idle_ladder",
    ) -> None:
        self._scope = scope
        self._config = IdleLadderConfig() if config is None else config
        self._on_prompt = on_prompt
        self._on_hangup = scope.close if on_hangup is None else on_hangup
        self._rung = 0
        self._paused = 0
        self._active = False
        self._finished = False
        self._timer = scope.timer(name, self._rung_delay(0), self._climb)

    @property
    def config(self) -> IdleLadderConfig:
        """The ladder's configuration."""
        return self._config

    @property
    def timer(self) -> CallScopedTimer:
        """The underlying timer."""
        return self._timer

    @property
    def rung(self) -> int:
        """How many prompts have been given since the caller last spoke (0 at the bottom)."""
        return self._rung

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and the matching :meth:`resume`."""
        return self._paused > 0

    @property
    def finished(self) -> bool:
        """True once the hang-up rung has fired."""
        return self._finished

    @property
    def pending(self) -> bool:
        """True while a rung is armed and may still fire."""
        return self._timer.pending

    def caller_activity(self, decision: Decision | None = None) -> bool:
        """The caller spoke: back to the bottom rung, counting silence from now.

        Args:
            decision: The calibration gate's decision about this speech, if there is one. A
                decision that does not allow it (noise, echo, not calibrated) is ignored.

        Returns:
            True if the activity counted, False if it was ignored (a rejected decision, the
            ladder finished, or the call is closing).

        Raises:
            CallScopeError: If the scope has not been entered yet.
        """
        if decision is not None and not decision:
            return False
        if self._finished:
            return False
        self._rung = 0
        self._active = True
        return self._arm()

    def bot_activity(self) -> bool:
        """The bot started or stopped speaking: the current rung counts from now.

        Returns:
            True if the activity counted, False if it was ignored (the ladder finished, or the
            call is closing).

        Raises:
            CallScopeError: If the scope has not been entered yet.
        """
        if self._finished:
            return False
        self._active = True
        return self._arm()

    def pause(self) -> None:
        """Stop counting silence (a tool call started). Pauses nest."""
        self._paused += 1
        self._timer.cancel()

    def resume(self) -> None:
        """Count silence again (a tool call ended): the current rung gets its full delay.

        Raises:
            CallScopeError: If there is no matching :meth:`pause`.
        """
        if self._paused == 0:
            raise CallScopeError(
                f"IdleLadder {self._timer.name!r}: resume() without a matching pause()"
            )
        self._paused -= 1
        if self._paused == 0 and self._active and not self._finished:
            self._arm()

    def cancel(self) -> bool:
        """Disarm the ladder until the next activity (for example, while a hang-up is pending).

        Returns:
            True if a rung was pending.
        """
        self._active = False
        return self._timer.cancel()

    def _rung_delay(self, rung: int) -> float:
        prompts = self._config.prompt_delays
        if rung < len(prompts):
            return prompts[rung]
        hangup = self._config.hangup_delay
        return 0.0 if hangup is None else hangup

    def _has_rung(self, rung: int) -> bool:
        return rung < len(self._config.prompt_delays) or (
            rung == len(self._config.prompt_delays) and self._config.hangup_delay is not None
        )

    def _arm(self) -> bool:
        if not self._scope.decide_arm(self._timer.name):
            return False
        if self._paused or not self._has_rung(self._rung):
            self._timer.cancel()
            return True
        self._timer.restart(self._rung_delay(self._rung))
        return True

    async def _climb(self) -> None:
        rung = self._rung
        if rung < len(self._config.prompt_delays):
            self._rung = rung + 1
            if self._has_rung(self._rung):
                # Armed before the prompt runs: a prompt that fails must not stop the ladder.
                self._timer.start(self._rung_delay(self._rung))
            result = self._on_prompt(rung + 1)
        else:
            self._finished = True
            self._active = False
            result = self._on_hangup()
        if inspect.isawaitable(result):
            await result


@final
class MaxCallDuration:
    """Ends calls that run too long: a polite limit, then optionally a hard one.

    :meth:`start` it when the call starts. After
    :attr:`~voiceguard.config.MaxCallDurationConfig.limit` seconds *on_limit* runs (say
    goodbye, then hang up politely, for example with a :class:`HangupFallback`). After
    :attr:`~voiceguard.config.MaxCallDurationConfig.hard_limit` seconds, if the call is still
    there, *on_hard_limit* runs: by default the call scope is closed.

    Args:
        scope: The call.
        on_limit: The polite limit's action (a plain or ``async`` function of no arguments).
        on_hard_limit: The hard limit's action;
            :meth:`CallScope.close() <voiceguard.runtime.scope.CallScope.close>` when omitted.
        config: The limits; the defaults when omitted.
        name: The polite timer's name in the scope; the hard one is named ``name + ".hard"``.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_config", "_hard_timer", "_limit_timer", "_scope")

    def __init__(
        self,
        scope: CallScope,
        on_limit: TimerCallback,
        on_hard_limit: TimerCallback | None = None,
        *,
        config: MaxCallDurationConfig | None = None,
        name: str = "max_call_duration",
    ) -> None:
        self._scope = scope
        self._config = MaxCallDurationConfig() if config is None else config
        self._limit_timer = scope.timer(name, self._config.limit, on_limit)
        hard = self._config.hard_limit
        self._hard_timer = (
            None
            if hard is None
            else scope.timer(
                f"{name}.hard", hard, scope.close if on_hard_limit is None else on_hard_limit
            )
        )

    @property
    def config(self) -> MaxCallDurationConfig:
        """The limits."""
        return self._config

    @property
    def timer(self) -> CallScopedTimer:
        """The polite limit's timer."""
        return self._limit_timer

    @property
    def hard_timer(self) -> CallScopedTimer | None:
        """The hard limit's timer, or ``None`` if there is no hard limit."""
        return self._hard_timer

    @property
    def pending(self) -> bool:
        """True while either limit may still fire."""
        return self._limit_timer.pending or (
            self._hard_timer is not None and self._hard_timer.pending
        )

    def start(self) -> Decision:
        """Start counting the call's duration from now.

        Starting it again while it runs changes nothing: the duration counts from the first
        start.

        Returns:
            Allowed if the limits are armed (or already were); suppressed with
            :attr:`~voiceguard.Reason.CLOSING` or :attr:`~voiceguard.Reason.SCOPE_CLOSED` if
            the call is already ending.

        Raises:
            CallScopeError: If the scope has not been entered yet.
        """
        decision = self._scope.decide_arm(self._limit_timer.name)
        if not decision or self.pending:
            return decision
        self._limit_timer.start()
        if self._hard_timer is not None:
            self._hard_timer.start()
        return decision

    def cancel(self) -> bool:
        """Stop both limits.

        Returns:
            True if either was pending.
        """
        polite = self._limit_timer.cancel()
        hard = self._hard_timer is not None and self._hard_timer.cancel()
        return polite or hard
