"""The calibration gate's late barge-in watch: the caller inside a suppressed segment.

The server VAD raises one ``speech_started`` per segment. When the bot's echo or line noise opened
the segment and the gate suppressed it, a caller who starts talking before the segment ends gets
no ``speech_started`` of their own. So after a suppression :class:`LateBargeInWatch` looks at every
caller frame of the segment with a cheap test (the frame's power against the noise floor plus the
expected echo), and when that fires judges the last 200 ms in full: frames
:attr:`~voiceguard.CalibrationConfig.speech_margin_db` (plus 3 dB) above noise and echo for
:attr:`~voiceguard.CalibrationConfig.confirm_time`, and a speech-like spectrum.
"""

from __future__ import annotations

import math
from typing import Final, final

import numpy as np

from voiceguard.audio import FRAME_SECONDS
from voiceguard.config import CalibrationConfig
from voiceguard.core.guards._early_speech import EarlySpeech
from voiceguard.core.guards._echo_path import EchoPath, line_without_caller
from voiceguard.core.guards._line import BLOCK, LineHistory, frames_of, window
from voiceguard.core.guards._noise_floor import NoiseFloor
from voiceguard.core.guards._spectrum import noise_like, unvoiced

__all__ = ("LateBargeInWatch",)

_WATCH_WINDOW: Final = 10  # frames judged when the per-frame test fires (200 ms)
_WATCH_HISTORY: Final = 5  # the per-frame test needs confirm frames among the last 5
_WATCH_RETRY: Final = BLOCK  # frames between two full judgements of a watched segment
_WATCH_EXTRA_DB: Final = 3.0  # extra margin over speech_margin_db inside a suppressed segment
_WATCH_EXTRA_FRAMES: Final = 1  # frames of evidence needed beyond confirm_time


@final
class LateBargeInWatch:
    """Watches one suppressed segment at a time for the caller's own speech.

    Args:
        config: The gate's configuration.
        line: The call's history, read only.
        floor: The call's noise floor, read only.
        echo: The call's echo path, read only.
        early: The rule before calibration, for a segment watched before the floor is known.

    Attributes:
        onset: The first frame of the watched segment, or ``None`` when nothing is watched.
        late_count: Late barge-ins found so far.
        speech_from: Where the caller's speech of the last late barge-in began (the first of its
            evidence frames), or ``None``: none found yet, or found before calibration.
    """

    __slots__ = (
        "_config",
        "_early",
        "_echo",
        "_floor",
        "_hits",
        "_line",
        "_margin_ratio",
        "_min_power",
        "_needed",
        "_next",
        "late_count",
        "onset",
        "speech_from",
    )

    def __init__(
        self,
        config: CalibrationConfig,
        *,
        line: LineHistory,
        floor: NoiseFloor,
        echo: EchoPath,
        early: EarlySpeech,
    ) -> None:
        self._config = config
        self._line = line
        self._floor = floor
        self._echo = echo
        self._early = early
        self._margin_ratio = 10.0 ** ((config.speech_margin_db + _WATCH_EXTRA_DB) / 10.0)
        self._needed = frames_of(config.confirm_time) + _WATCH_EXTRA_FRAMES
        self._hits = 0
        self._next = 0
        self._min_power = math.inf
        self.onset: int | None = None
        self.late_count = 0
        self.speech_from: int | None = None

    def start(self, onset: int) -> None:
        """Watch the segment that began at frame *onset* (its ``speech_started`` was suppressed)."""
        self.onset = onset
        self._hits = 0
        self._next = self._line.in_count + 1
        self._min_power = math.inf

    def stop(self) -> None:
        """Stop watching (``speech_stopped``, or a new ``speech_started``)."""
        self.onset = None

    def frame(self, power: float, n: int) -> str | None:
        """One caller frame of the watched segment, of mean-square *power*, just before *n*.

        Returns:
            Why the segment now carries the caller's speech (a late barge-in; the watch ends),
            or ``None``.
        """
        if self._floor.calibrated_since is not None:
            reference = self._floor.power
        else:
            self._min_power = min(self._min_power, power)
            reference = self._min_power
        reference += self._echo.frame_power(n)
        hit = power >= reference * self._margin_ratio
        hits = ((self._hits << 1) | hit) & ((1 << _WATCH_HISTORY) - 1)
        self._hits = hits
        if not hit or n < self._next or hits.bit_count() < self._needed:
            return None
        self._next = n + _WATCH_RETRY
        assert self.onset is not None
        found = self._late_speech(max(self.onset, n - _WATCH_WINDOW), n)
        if found is None:
            return None
        detail, self.speech_from = found
        self.onset = None
        self.late_count += 1
        return detail

    def _late_speech(self, start: int, n: int) -> tuple[str, int | None] | None:
        """Why frames ``start..n`` of a watched segment are the caller's speech, and the frame
        where that speech began (``None`` before calibration), or ``None``."""
        cfg = self._config
        floor = self._floor.dbfs
        if self._floor.calibrated_since is None:
            if not cfg.allow_speech_before_calibration:
                return None
            early = self._early.find(start, n)
            return None if early is None else (f"late: {early}", None)
        width = n - start
        if (n - start) * FRAME_SECONDS + 1e-9 < cfg.min_speech_duration:
            return None
        assert floor is not None
        inbound = window(self._line.in_db, n, width)
        echo = self._echo.bound(n, width)
        above = inbound - line_without_caller(floor, echo) >= cfg.speech_margin_db + _WATCH_EXTRA_DB
        evidence = int(np.count_nonzero(above))
        if evidence < self._needed:
            return None
        frames = self._line.speech_frames(above, n)
        if noise_like(frames) is not None or unvoiced(frames, floor) is not None:
            return None
        detail = (
            f"late: {evidence} frames {cfg.speech_margin_db + _WATCH_EXTRA_DB:g} dB above noise "
            "and echo inside a suppressed segment"
        )
        return detail, n - width + int(np.flatnonzero(above)[0])
