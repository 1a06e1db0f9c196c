"""Validated, frozen configuration.

Every config class is a frozen, slotted, keyword-only dataclass that checks its values when it is
built (and again on :func:`dataclasses.replace`). A bad value raises
:class:`~voiceguard.ConfigError` naming the field, the value and the allowed range::

    >>> CancelConfig(cooldown=-1)
    Traceback (most recent call last):
    ...
    voiceguard.errors.ConfigError: CancelConfig.cooldown = -1 is not allowed;
    allowed: a number, 0 <= value <= 10 (seconds)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import final

from voiceguard.audio import PCMU, AudioFormat
from voiceguard.errors import ConfigError

__all__ = (
    "BridgeConfig",
    "CalibrationConfig",
    "CallScopeConfig",
    "CancelConfig",
    "CreateConfig",
    "HandlerConfig",
    "HangupFallbackConfig",
    "IdleLadderConfig",
    "MaxCallDurationConfig",
    "PlayoutConfig",
    "ResponseWatchdogConfig",
    "StateConfig",
)


def _check_number(
    owner: object,
    name: str,
    value: object,
    *,
    low: float,
    high: float,
    unit: str = "",
    integer: bool = False,
    low_open: bool = False,
) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (``low < value`` when *low_open*).

    ``bool`` is refused where a number is expected, and so is NaN.
    """
    field = f"{type(owner).__name__}.{name}"
    kind = "an integer" if integer else "a number"
    low_op = "<" if low_open else "<="
    allowed = f"{kind}, {low:g} {low_op} value <= {high:g}" + (f" ({unit})" if unit else "")
    if integer:
        ok_type = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok_type:
        raise ConfigError(field, value, allowed)
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        raise ConfigError(field, value, allowed)
    too_low = number <= low if low_open else number < low
    if too_low or number > high:
        raise ConfigError(field, value, allowed)


def _check_optional_number(
    owner: object, name: str, value: object, *, low: float, high: float, unit: str = ""
) -> None:
    """Like :func:`_check_number`, but ``None`` (meaning "off") is allowed too."""
    if value is None:
        return
    try:
        _check_number(owner, name, value, low=low, high=high, unit=unit)
    except ConfigError as exc:
        raise ConfigError(exc.field, exc.value, f"None (off) or {exc.allowed}") from None


def _check_bool(owner: object, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{type(owner).__name__}.{name}", value, "True or False")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StateConfig:
    """Configuration of :class:`~voiceguard.CallState`.

    Attributes:
        finished_responses: How many finished response ids to remember (oldest forgotten first).
            A late ``response.done`` or audio delta of a forgotten response can no longer be
            recognised as stale, so keep this well above the number of responses that can be
            in flight at once. Default 64.
    """

    finished_responses: int = 64

    def __post_init__(self) -> None:
        _check_number(
            self, "finished_responses", self.finished_responses, low=1, high=100_000, integer=True
        )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CancelConfig:
    """Configuration of :class:`~voiceguard.CancelArbiter`.

    Attributes:
        cooldown: Seconds after a cancel during which no other cancel is allowed (a burst of
            ``speech_started`` events must cause one cancel, not several). Default 0.2 s.
    """

    cooldown: float = 0.2

    def __post_init__(self) -> None:
        _check_number(self, "cooldown", self.cooldown, low=0, high=10, unit="seconds")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CreateConfig:
    """Configuration of :class:`~voiceguard.ResponseCreateGuard`.

    Attributes:
        max_deferred: How many deferred creates may wait at once. Automatic creates coalesce into
            one entry, so this bounds the explicit ones. Past it a deferred request is dropped with
            :attr:`~voiceguard.Reason.QUEUE_FULL`. Default 8.
        deferred_ttl: Seconds a deferred create may wait before it is dropped as outdated, or
            ``None`` to keep it until it can be sent or the call ends. Default 30 s.
        require_calibration: Refuse creates other than the greeting until the calibration gate
            reports the line calibrated. Default off.
    """

    max_deferred: int = 8
    deferred_ttl: float | None = 30.0
    require_calibration: bool = False

    def __post_init__(self) -> None:
        _check_number(self, "max_deferred", self.max_deferred, low=0, high=1000, integer=True)
        _check_optional_number(
            self, "deferred_ttl", self.deferred_ttl, low=0, high=3600, unit="seconds"
        )
        _check_bool(self, "require_calibration", self.require_calibration)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PlayoutConfig:
    """Configuration of :class:`~voiceguard.PlayoutBuffer`.

    Attributes:
        chunk_ms: Audio per ``media`` message, each followed by a ``mark``. The heard position is
            known to this precision, and a resumed false interruption repeats at most this much;
            each chunk costs two WebSocket messages. Default 100 ms (20 messages a second).
        lead: How far ahead of real time the phone's buffer may be filled, in seconds. A smaller
            lead stops the bot faster on a barge-in (Twilio ``clear`` flushes it anyway); a
            larger one rides out network jitter. Default 0.3 s.
        audio_format: The session's output audio format. Default G.711 mu-law at 8 kHz.
    """

    chunk_ms: float = 100.0
    lead: float = 0.3
    audio_format: AudioFormat = PCMU

    def __post_init__(self) -> None:
        _check_number(self, "chunk_ms", self.chunk_ms, low=10, high=1000, unit="ms")
        _check_number(self, "lead", self.lead, low=0, high=10, unit="seconds")
        if not isinstance(self.audio_format, AudioFormat):
            raise ConfigError(
                f"{type(self).__name__}.audio_format",
                self.audio_format,
                "a voiceguard.audio.AudioFormat",
            )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeConfig:
    """Configuration of :class:`~voiceguard.BridgeCore`, the reference bridge's decisions.

    Attributes:
        instructions: The model's instructions for the call (``session.instructions``).
        voice: The model's voice, or ``None`` for the server's default.
        greeting: Instructions for the greeting the bot says first, or ``None`` to wait for the
            caller to speak first.
        silence_duration_ms: The server VAD's ``silence_duration_ms``: how long the caller must
            be silent for the turn to end. Default 500 ms (the server's default).
        confirm_barge_in: Seconds the caller's speech must go on after an allowed
            ``speech_started`` before the response is cancelled. Until then the bot is only
            paused (its audio is cleared from the phone at once), so a false interruption can
            resume it. Default 0.6 s.
        min_barge_in_speech: Speech shorter than this (seconds, from the server VAD's segment
            minus its padding and silence) that ends before the confirmation is taken for a
            false interruption (a cough, a click) and the bot resumes. Default 0.2 s.
        delete_echo_turns: Delete from the conversation a caller turn the gate judged to be echo
            or noise (it is never answered either way). Default on.
        idle_prompt: Instructions for the response that asks a silent caller whether they are
            still there (each prompt of the idle ladder).
        time_limit_goodbye: Instructions for the goodbye at the call's polite time limit (the
            model is asked to call ``end_call`` after it).
        calibration: The calibration gate's configuration.
        cancel: The cancel arbiter's configuration.
        create: The create guard's configuration.
        playout: The playout buffer's configuration.
    """

    instructions: str | None = None
    voice: str | None = None
    greeting: str | None = "Greet the caller briefly and ask how you can help."
    silence_duration_ms: int = 500
    confirm_barge_in: float = 0.6
    min_barge_in_speech: float = 0.2
    delete_echo_turns: bool = True
    idle_prompt: str = (
        "The caller has been silent for a while. Briefly ask if they are still there."
    )
    time_limit_goodbye: str = (
        "The call has reached its time limit. Say a short, friendly goodbye, then call end_call."
    )
    # A lambda: CalibrationConfig is defined further down this module.
    calibration: CalibrationConfig = field(default_factory=lambda: CalibrationConfig())  # noqa: PLW0108
    cancel: CancelConfig = field(default_factory=CancelConfig)
    create: CreateConfig = field(default_factory=CreateConfig)
    playout: PlayoutConfig = field(default_factory=PlayoutConfig)

    def __post_init__(self) -> None:
        for name in ("instructions", "voice", "greeting"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{type(self).__name__}.{name}", value, "a string or None")
        for name in ("idle_prompt", "time_limit_goodbye"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{type(self).__name__}.{name}", value, "a non-empty string")
        _check_number(
            self,
            "silence_duration_ms",
            self.silence_duration_ms,
            low=0,
            high=10_000,
            integer=True,
            unit="ms",
        )
        _check_number(
            self, "confirm_barge_in", self.confirm_barge_in, low=0, high=5, unit="seconds"
        )
        _check_number(
            self, "min_barge_in_speech", self.min_barge_in_speech, low=0, high=5, unit="seconds"
        )
        _check_bool(self, "delete_echo_turns", self.delete_echo_turns)
        for name, kind in (
            ("calibration", CalibrationConfig),
            ("cancel", CancelConfig),
            ("create", CreateConfig),
            ("playout", PlayoutConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(
                    f"{type(self).__name__}.{name}", getattr(self, name), f"a {kind.__name__}"
                )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerConfig:
    """Configuration of :class:`~voiceguard.MediaHandler`: the bridge and the call's limits.

    Attributes:
        bridge: What the bridge says and how it reacts.
        scope: The call scope's shutdown grace and timer error policy.
        watchdog: The response watchdog's delay.
        hangup: The hang-up fallback's delay.
        idle: The idle ladder's rungs (prompt, prompt, hang up on a silent caller).
        max_duration: The call's polite and hard time limits.
        start_timeout: Seconds to wait for Twilio's ``start`` before giving up on the stream
            (no model session is opened before it). Default 10 s.
        max_bad_messages: Malformed messages (from both peers together) a call tolerates; past
            this the call ends. Each one is logged and counted. Default 100.
    """

    # Lambdas: these config classes are defined further down this module.
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    scope: CallScopeConfig = field(default_factory=lambda: CallScopeConfig())  # noqa: PLW0108
    watchdog: ResponseWatchdogConfig = field(
        default_factory=lambda: ResponseWatchdogConfig()  # noqa: PLW0108
    )
    hangup: HangupFallbackConfig = field(
        default_factory=lambda: HangupFallbackConfig()  # noqa: PLW0108
    )
    idle: IdleLadderConfig = field(default_factory=lambda: IdleLadderConfig())  # noqa: PLW0108
    max_duration: MaxCallDurationConfig = field(
        default_factory=lambda: MaxCallDurationConfig()  # noqa: PLW0108
    )
    start_timeout: float = 10.0
    max_bad_messages: int = 100

    def __post_init__(self) -> None:
        for name, kind in (
            ("bridge", BridgeConfig),
            ("scope", CallScopeConfig),
            ("watchdog", ResponseWatchdogConfig),
            ("hangup", HangupFallbackConfig),
            ("idle", IdleLadderConfig),
            ("max_duration", MaxCallDurationConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(
                    f"{type(self).__name__}.{name}", getattr(self, name), f"a {kind.__name__}"
                )
        _check_number(
            self,
            "start_timeout",
            self.start_timeout,
            low=0,
            high=600,
            unit="seconds",
            low_open=True,
        )
        _check_number(
            self, "max_bad_messages", self.max_bad_messages, low=0, high=1_000_000, integer=True
        )


# --- timers (CallScope, CallScopedTimer and the ready-made call timers) ---


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
        _check_number(self, "shutdown_grace", self.shutdown_grace, low=0, high=30, unit="seconds")
        _check_bool(self, "timer_error_ends_call", self.timer_error_ends_call)


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
        _check_number(self, "delay", self.delay, low=0, high=120, unit="seconds", low_open=True)


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
        _check_number(self, "delay", self.delay, low=0, high=60, unit="seconds", low_open=True)


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
            _check_number(
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
        _check_number(self, "limit", self.limit, low=0, high=86_400, unit="seconds", low_open=True)
        _check_optional_number(
            self, "hard_limit", self.hard_limit, low=0, high=86_400, unit="seconds"
        )
        if self.hard_limit is not None and self.hard_limit < self.limit:
            raise ConfigError(
                f"{type(self).__name__}.hard_limit",
                self.hard_limit,
                f"None (off) or a number, limit ({self.limit:g}) <= value <= 86400 (seconds)",
            )


# --- calibration (CalibrationGate) ---


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationConfig:
    """Configuration of :class:`~voiceguard.CalibrationGate`.

    The defaults were chosen from measurements on the project's labelled barge-in corpus
    (``benchmarks/bargein_quality.py``; see the performance page), not guessed.

    Attributes:
        require_calibration: Suppress ``speech_started`` with
            :attr:`~voiceguard.Reason.NOT_CALIBRATED` until the noise floor is known, except
            speech that :attr:`allow_speech_before_calibration` lets through. Off: judge against
            whatever floor estimate there is. Default on.
        allow_speech_before_calibration: Before the noise floor is known, allow a
            ``speech_started`` that cannot be echo (the bot has sent no audio within
            :attr:`max_echo_delay` before the onset) and whose frames rise
            :attr:`speech_margin_db` above the quietest frame heard so far for
            :attr:`confirm_time`, with the spectrum of speech rather than noise. Off: nothing
            is allowed before calibration while :attr:`require_calibration` is on. Default on.
        min_calibration_time: Seconds of caller audio needed before the noise floor can be
            reported stable. Default 0.4 s.
        max_calibration_time: Seconds of caller audio after which the gate calibrates on the
            estimate it has, stable or not. Default 3 s.
        calibration_stable_db: How far (dB) the successive noise-floor estimates may wander and
            still count as stable. Default 3 dB.
        max_echo_delay: Longest echo delay searched, in seconds (the echo comes back after the
            phone network's round trip and the playout lead). Default 0.8 s.
        speech_margin_db: How far (dB) a frame must rise above the noise floor plus the predicted
            echo to count as the caller's own speech. Default 6 dB.
        noise_margin_db: A ``speech_started`` whose audio never rises this far (dB) above the
            noise floor is suppressed with :attr:`~voiceguard.Reason.BELOW_NOISE_FLOOR`.
            Default 6 dB.
        confirm_time: Seconds of caller speech (frames past :attr:`speech_margin_db`) needed to
            allow a barge-in. Default 0.06 s.
        max_defer: Longest a ``speech_started`` may stay deferred
            (:attr:`~voiceguard.Reason.DOUBLE_TALK`) while evidence accumulates, in seconds;
            then it is suppressed. Default 0.3 s.
        retry_interval: Seconds between re-judgements of a deferred ``speech_started``.
            Default 0.06 s.
        min_speech_duration: Seconds speech must have lasted (from its onset) before it may
            count as a barge-in; 0 turns the rule off. Default 0.
        require_user_has_spoken: Suppress barge-ins with
            :attr:`~voiceguard.Reason.USER_NOT_SPOKEN` until the caller has spoken once (the
            caller of the gate says so). Default off.
        unknown_echo_return_loss_db: Echo return loss (dB) assumed while the echo path is still
            unknown. Default 6 dB (the echo may be nearly as loud as the bot).
        prefix_padding_ms: The session's ``server_vad`` ``prefix_padding_ms``, used to find the
            speech onset from a ``speech_started`` event's ``audio_start_ms``. Default 300.
        watch_suppressed_speech: After suppressing a ``speech_started``, keep judging the
            caller's frames until ``speech_stopped``, and report the caller's own speech inside
            that segment as a late barge-in
            (:meth:`~voiceguard.CalibrationGate.poll_barge_in`). Default on.
    """

    require_calibration: bool = True
    allow_speech_before_calibration: bool = True
    min_calibration_time: float = 0.4
    max_calibration_time: float = 3.0
    calibration_stable_db: float = 3.0
    max_echo_delay: float = 0.8
    speech_margin_db: float = 6.0
    noise_margin_db: float = 6.0
    confirm_time: float = 0.06
    max_defer: float = 0.3
    retry_interval: float = 0.06
    min_speech_duration: float = 0.0
    require_user_has_spoken: bool = False
    unknown_echo_return_loss_db: float = 6.0
    prefix_padding_ms: int = 300
    watch_suppressed_speech: bool = True

    def __post_init__(self) -> None:
        _check_bool(self, "require_calibration", self.require_calibration)
        _check_bool(self, "allow_speech_before_calibration", self.allow_speech_before_calibration)
        _check_bool(self, "watch_suppressed_speech", self.watch_suppressed_speech)
        _check_number(
            self, "min_calibration_time", self.min_calibration_time, low=0, high=60, unit="seconds"
        )
        _check_number(
            self,
            "max_calibration_time",
            self.max_calibration_time,
            low=self.min_calibration_time,
            high=600,
            unit="seconds",
        )
        _check_number(
            self,
            "calibration_stable_db",
            self.calibration_stable_db,
            low=0,
            high=40,
            low_open=True,
            unit="dB",
        )
        _check_number(
            self, "max_echo_delay", self.max_echo_delay, low=0.02, high=2.0, unit="seconds"
        )
        _check_number(self, "speech_margin_db", self.speech_margin_db, low=0, high=60, unit="dB")
        _check_number(self, "noise_margin_db", self.noise_margin_db, low=0, high=60, unit="dB")
        _check_number(self, "confirm_time", self.confirm_time, low=0.02, high=2.0, unit="seconds")
        _check_number(self, "max_defer", self.max_defer, low=0, high=5.0, unit="seconds")
        _check_number(
            self, "retry_interval", self.retry_interval, low=0.02, high=1.0, unit="seconds"
        )
        _check_number(
            self, "min_speech_duration", self.min_speech_duration, low=0, high=5.0, unit="seconds"
        )
        _check_bool(self, "require_user_has_spoken", self.require_user_has_spoken)
        _check_number(
            self,
            "unknown_echo_return_loss_db",
            self.unknown_echo_return_loss_db,
            low=-20,
            high=60,
            unit="dB",
        )
        _check_number(
            self,
            "prefix_padding_ms",
            self.prefix_padding_ms,
            low=0,
            high=10_000,
            integer=True,
            unit="ms",
        )
