"""The calibration gate's rule before calibration: speech no echo of the bot can explain.

Without a noise floor the quietest frame heard so far bounds it from above. Frames no echo of the
bot can reach (before its first audio since
:attr:`~voiceguard.CalibrationConfig.max_echo_delay` before the onset) cannot be echo, so
speech-like frames there that rise above that bound, and last until the bot starts, are the
caller: a caller who talks first is heard even if the bot starts over them
(:attr:`~voiceguard.CalibrationConfig.allow_speech_before_calibration`).
"""

from __future__ import annotations

from typing import final

import numpy as np

from voiceguard.audio import FRAME_SECONDS
from voiceguard.config import CalibrationConfig
from voiceguard.core.guards._echo_path import EchoPath
from voiceguard.core.guards._line import BOT_ACTIVE_DBFS, RING, LineHistory, frames_of, window
from voiceguard.core.guards._spectrum import noise_like, unvoiced

__all__ = ("EarlySpeech",)


@final
class EarlySpeech:
    """Finds the caller's speech on a line whose noise floor is not known yet.

    Args:
        config: The gate's configuration.
        line: The call's history, read only.
        echo: The call's echo path (for the longest echo delay).

    Attributes:
        unvoiced: Set by :meth:`find` when the frames would have been speech but for a voiced
            frame (``None`` otherwise): a word's first consonant, or a cough.
    """

    __slots__ = ("_config", "_confirm_frames", "_echo", "_line", "unvoiced")

    def __init__(self, config: CalibrationConfig, line: LineHistory, echo: EchoPath) -> None:
        self._config = config
        self._line = line
        self._echo = echo
        self._confirm_frames = frames_of(config.confirm_time)
        self.unvoiced: str | None = None

    def echo_free_end(self, onset: int, n: int) -> int:
        """The end of the frames from *onset* on (up to *n*) that no echo of the bot can reach.

        That is the first frame the bot played from ``max_echo_delay`` before *onset* on (an
        echo never comes before the audio it echoes), or *n* when the bot has not played since.
        Bot audio queued for later does not count: it has not played yet.
        """
        line = self._line
        start = max(onset - self._echo.max_lag - 2, n - RING // 2)
        if line.last_bot_frame < start or start >= n:
            return n
        active = np.flatnonzero(window(line.out_db, n, n - start) > BOT_ACTIVE_DBFS)
        if active.size == 0:
            return n
        return max(onset, start + int(active[0]))

    def find(self, onset: int, n: int) -> str | None:
        """Why frames ``onset..n`` are the caller's speech, or ``None`` (see the module)."""
        cfg = self._config
        line = self._line
        self.unvoiced = None
        end = self.echo_free_end(onset, n)
        if end - onset < self._confirm_frames:
            return None
        if (end - onset) * FRAME_SECONDS + 1e-9 < cfg.min_speech_duration:
            return None
        quietest = line.quietest_db()
        width = min(end - onset, RING // 4)
        inbound = window(line.in_db, end, width)
        evidence = inbound - quietest >= cfg.speech_margin_db
        count = int(np.count_nonzero(evidence))
        if count < self._confirm_frames or not evidence[-(self._confirm_frames + 1) :].any():
            return None
        frames = line.speech_frames(evidence, end)
        if noise_like(frames) is not None:
            return None
        self.unvoiced = unvoiced(frames, quietest)
        if self.unvoiced is not None:
            return None
        return (
            f"{count} speech frames {cfg.speech_margin_db:g} dB above the quietest frame "
            "before any bot audio could echo them (cannot be echo); noise floor not known yet"
        )
