"""The caller's script (speak, press a key, hang up) and the echo of the line."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import final

from voiceguard.audio import FRAME_SECONDS

__all__ = ("EchoPath", "HangUp", "PressDigit", "Speak")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Speak:
    """The caller says something.

    It starts at :attr:`at` seconds after the stream started, or once the caller has heard
    :attr:`after_heard` seconds of the bot's audio in total (whichever is given).

    Attributes:
        at: Start time, in seconds since ``start``.
        after_heard: Start once this many seconds of the bot's audio have played.
        duration: Seconds of speech-like signal (ignored when :attr:`audio` is given).
        level_dbfs: Level of the speech-like signal.
        audio: The exact audio to say, as 8 kHz mu-law; None generates a speech-like signal.
        text: What is said, for logs and readers of the scenario (the simulators do not
            recognise speech).
    """

    at: float | None = None
    after_heard: float | None = None
    duration: float = 1.5
    level_dbfs: float = -20.0
    audio: bytes | None = field(default=None, repr=False)
    text: str = ""

    def __post_init__(self) -> None:
        _check_trigger(self.at, self.after_heard)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PressDigit:
    """The caller presses a key (a Twilio ``dtmf`` message).

    Attributes:
        at: Time, in seconds since ``start``.
        after_heard: Or once this many seconds of the bot's audio have played.
        digit: ``0``-``9``, ``*`` or ``#``.
    """

    at: float | None = None
    after_heard: float | None = None
    digit: str = "1"

    def __post_init__(self) -> None:
        _check_trigger(self.at, self.after_heard)
        if self.digit not in tuple("0123456789*#"):
            raise ValueError(f"digit = {self.digit!r}; allowed: one of 0-9, * or #")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HangUp:
    """The caller hangs up: Twilio sends ``stop`` and closes the stream.

    Attributes:
        at: Time, in seconds since ``start``.
        after_heard: Or once this many seconds of the bot's audio have played.
    """

    at: float | None = None
    after_heard: float | None = None

    def __post_init__(self) -> None:
        _check_trigger(self.at, self.after_heard)


def _check_trigger(at: float | None, after_heard: float | None) -> None:
    if (at is None) == (after_heard is None):
        raise ValueError(f"at = {at!r}, after_heard = {after_heard!r}; allowed: exactly one given")
    value = at if at is not None else after_heard
    if value is None or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"trigger time {value!r}; allowed: a finite number of seconds >= 0")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EchoPath:
    """The phone line's echo of the bot's voice back into the caller's audio.

    Attributes:
        delay: Seconds from the bot's audio playing to its echo in the caller's frames
            (rounded to whole 20 ms frames).
        return_loss_db: Echo return loss: how many dB quieter the echo is than the audio played
            (6 to 12 dB is a bad line or a speakerphone; 20 to 30 dB a good handset).
    """

    delay: float = 0.1
    return_loss_db: float = 12.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay) and 0 <= self.delay <= 2.0):
            raise ValueError(f"delay = {self.delay!r}; allowed: 0 <= delay <= 2.0 seconds")
        if not (math.isfinite(self.return_loss_db) and self.return_loss_db >= 0):
            raise ValueError(f"return_loss_db = {self.return_loss_db!r}; allowed: a number >= 0")

    @property
    def frames(self) -> int:
        """The delay in whole 20 ms frames."""
        return round(self.delay / FRAME_SECONDS)
