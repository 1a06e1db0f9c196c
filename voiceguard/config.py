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
from dataclasses import dataclass
from typing import final

from voiceguard.errors import ConfigError
from voiceguard.protocol.realtime import PCMU, AudioFormat

__all__ = ("CancelConfig", "CreateConfig", "PlayoutConfig", "StateConfig")


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
                "a voiceguard.protocol.AudioFormat",
            )


# --- timers (CallScope, CallScopedTimer and the ready-made call timers) ---


# --- calibration (CalibrationGate) ---
