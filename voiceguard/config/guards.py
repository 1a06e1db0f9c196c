"""Configuration of the guards, the call state and the playout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import final

from voiceguard.audio import PCMU, AudioFormat
from voiceguard.config._checks import check_bool, check_number, check_optional_number
from voiceguard.errors import ConfigError

__all__ = (
    "CalibrationConfig",
    "CancelConfig",
    "CreateConfig",
    "PlayoutConfig",
    "StateConfig",
)


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
        check_number(
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
        check_number(self, "cooldown", self.cooldown, low=0, high=10, unit="seconds")


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
        check_number(self, "max_deferred", self.max_deferred, low=0, high=1000, integer=True)
        check_optional_number(
            self, "deferred_ttl", self.deferred_ttl, low=0, high=3600, unit="seconds"
        )
        check_bool(self, "require_calibration", self.require_calibration)


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
            larger one rides out network jitter. Default 0.3 s. ``math.inf`` hands the phone
            all audio at once, as it comes (the middleware does this for a bot that forwards
            the model's audio itself: its flow does not change, and a pause still rewinds to
            the heard position).
        audio_format: The session's output audio format. Default G.711 mu-law at 8 kHz.
    """

    chunk_ms: float = 100.0
    lead: float = 0.3
    audio_format: AudioFormat = PCMU

    def __post_init__(self) -> None:
        check_number(self, "chunk_ms", self.chunk_ms, low=10, high=1000, unit="ms")
        if self.lead != math.inf:
            try:
                check_number(self, "lead", self.lead, low=0, high=10, unit="seconds")
            except ConfigError as exc:
                raise ConfigError(exc.field, exc.value, exc.allowed + ", or math.inf") from None
        if not isinstance(self.audio_format, AudioFormat):
            raise ConfigError(
                f"{type(self).__name__}.audio_format",
                self.audio_format,
                "a voiceguard.audio.AudioFormat",
            )


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
        listen_when_unsure: While the echo path is not known, a ``speech_started`` that the
            bot's echo might explain is not suppressed on that weak evidence: it is deferred
            with :attr:`~voiceguard.Reason.ECHO_UNCERTAIN`, the bot pauses, and the gate listens
            for speech where no echo of the bot can reach (an echo ends with the bot's audio,
            a caller goes on). Off: such a ``speech_started`` is suppressed as
            :attr:`~voiceguard.Reason.ECHO_SUSPECTED`. Default on.
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
    listen_when_unsure: bool = True

    def __post_init__(self) -> None:
        check_bool(self, "require_calibration", self.require_calibration)
        check_bool(self, "allow_speech_before_calibration", self.allow_speech_before_calibration)
        check_bool(self, "watch_suppressed_speech", self.watch_suppressed_speech)
        check_bool(self, "listen_when_unsure", self.listen_when_unsure)
        check_number(
            self, "min_calibration_time", self.min_calibration_time, low=0, high=60, unit="seconds"
        )
        check_number(
            self,
            "max_calibration_time",
            self.max_calibration_time,
            low=self.min_calibration_time,
            high=600,
            unit="seconds",
        )
        check_number(
            self,
            "calibration_stable_db",
            self.calibration_stable_db,
            low=0,
            high=40,
            low_open=True,
            unit="dB",
        )
        check_number(
            self, "max_echo_delay", self.max_echo_delay, low=0.02, high=2.0, unit="seconds"
        )
        check_number(self, "speech_margin_db", self.speech_margin_db, low=0, high=60, unit="dB")
        check_number(self, "noise_margin_db", self.noise_margin_db, low=0, high=60, unit="dB")
        check_number(self, "confirm_time", self.confirm_time, low=0.02, high=2.0, unit="seconds")
        check_number(self, "max_defer", self.max_defer, low=0, high=5.0, unit="seconds")
        check_number(
            self, "retry_interval", self.retry_interval, low=0.02, high=1.0, unit="seconds"
        )
        check_number(
            self, "min_speech_duration", self.min_speech_duration, low=0, high=5.0, unit="seconds"
        )
        check_bool(self, "require_user_has_spoken", self.require_user_has_spoken)
        check_number(
            self,
            "unknown_echo_return_loss_db",
            self.unknown_echo_return_loss_db,
            low=-20,
            high=60,
            unit="dB",
        )
        check_number(
            self,
            "prefix_padding_ms",
            self.prefix_padding_ms,
            low=0,
            high=10_000,
            integer=True,
            unit="ms",
        )
