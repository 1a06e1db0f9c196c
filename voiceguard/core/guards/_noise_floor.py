"""The calibration gate's noise floor learner: how loud the line is when nobody talks.

From the caller's frames :class:`NoiseFloor` tracks a low percentile of the frame energies over
the last 3 s. The line counts as calibrated once that estimate is stable (successive estimates
within :attr:`~voiceguard.CalibrationConfig.calibration_stable_db`, and enough frames sit near
the floor to look like line noise rather than speech), or when
:attr:`~voiceguard.CalibrationConfig.max_calibration_time` has passed. Once calibrated, the
frames the bot's echo may have reached no longer measure the floor, and the floor rises slowly.
"""

from __future__ import annotations

import logging
from typing import Final, final

import numpy as np

from voiceguard.audio import FRAME_SECONDS
from voiceguard.config import CalibrationConfig
from voiceguard.core.guards._echo_path import EchoPath
from voiceguard.core.guards._line import LineHistory, window

__all__ = ("NoiseFloor",)

logger = logging.getLogger("voiceguard.guards.calibration")

_FLOOR_WINDOW: Final = 150  # frames of history for the noise floor (3 s)
_FLOOR_PERCENTILE: Final = 0.10
_NOISE_CLUSTER_DB: Final = 3.0  # frames this close above the percentile look like line noise
_NOISE_CLUSTER_SHARE: Final = 0.3
_FLOOR_RISE_DB: Final = 0.5  # per block, once calibrated


@final
class NoiseFloor:
    """The noise floor of one call's line, and whether it is known yet.

    Args:
        config: The gate's configuration (the calibration times and stability).
        line: The call's history, read only.
        echo: The call's echo path, read only (to leave out frames its echo may have reached).

    Attributes:
        dbfs: The current estimate in dBFS, ``None`` before the first block of caller audio.
        power: The same as a linear power relative to full scale (0 before the first block).
        calibrated_since: The ``now`` at which the line calibrated, or ``None``.
        timed_out: True if it calibrated because the upper bound passed, not by stability.
    """

    __slots__ = (
        "_config",
        "_echo",
        "_history",
        "_line",
        "calibrated_since",
        "dbfs",
        "power",
        "timed_out",
    )

    def __init__(self, config: CalibrationConfig, line: LineHistory, echo: EchoPath) -> None:
        self._config = config
        self._line = line
        self._echo = echo
        self._history: list[float] = []
        self.dbfs: float | None = None
        self.power = 0.0
        self.calibrated_since: float | None = None
        self.timed_out = False

    @property
    def calibrated(self) -> bool:
        """True once the noise floor is known."""
        return self.calibrated_since is not None

    def update(self, now: float) -> float:
        """At a block boundary: a new estimate, and calibration once it is stable.

        Returns:
            The noise floor (dBFS) after the update.
        """
        n = self._line.in_count
        length = min(n, _FLOOR_WINDOW)
        history = window(self._line.in_db, n, length)
        if self.calibrated_since is not None and self._echo.erl_any is not None:
            # Once the echo is known, frames the echo may have reached do not measure the floor.
            echo = self._echo.bound(n, length)
            quiet = history[echo < (self.dbfs if self.dbfs is not None else -200.0)]
            if quiet.size >= 20:
                history = quiet
        k = int(_FLOOR_PERCENTILE * (history.size - 1))
        estimate = float(np.partition(history, k)[k])
        if self.calibrated_since is None:
            self.dbfs = estimate
            self.power = 10.0 ** (estimate / 10.0)
            self._history.append(estimate)
            del self._history[:-3]
            cfg = self._config
            seconds = n * FRAME_SECONDS
            near = np.count_nonzero(history <= estimate + _NOISE_CLUSTER_DB) / history.size
            stable = (
                seconds >= cfg.min_calibration_time
                and len(self._history) == 3
                and max(self._history) - min(self._history) <= cfg.calibration_stable_db
                and near >= _NOISE_CLUSTER_SHARE
            )
            if stable or seconds >= cfg.max_calibration_time:
                self.calibrated_since = now
                self.timed_out = not stable
                logger.info(
                    "calibrated after %.2f s of caller audio%s: noise floor %.1f dBFS",
                    seconds,
                    " (upper bound reached)" if not stable else "",
                    estimate,
                )
            return estimate
        assert self.dbfs is not None
        self.dbfs = min(estimate, self.dbfs + _FLOOR_RISE_DB)
        self.power = 10.0 ** (self.dbfs / 10.0)
        return self.dbfs
