"""The calibration gate's pause to listen: when the audio cannot tell the caller from the echo.

Early in a call the echo path is not known. A caller who speaks half a second into the greeting
sounds, to the energy envelopes alone, exactly like an echo half a second late: both start while
the bot talks, and nothing came back before. Suppressing would throw the caller's words away on
no evidence; allowing would let every early echo cut the bot off. So the gate asks the bot to
pause (:attr:`~voiceguard.Reason.ECHO_UNCERTAIN`) and listens: an echo ends within its delay of
the bot's last audio, a caller goes on talking.

:class:`EchoListen` does both halves:

* :meth:`EchoListen.echo_prediction`: before the echo path is learnt, what the line showed while
  the bot talked bounds the echo at each delay. Where the bot talked and nothing came back at a
  delay, the echo at that delay is at least that much quieter (a line that carries no echo is
  learnt as one). The prediction is the loudest echo any delay still allows.
* :meth:`EchoListen.start` / :meth:`EchoListen.judge`: the longest delay that could explain the
  onset, and then, once the bot's audio has stopped, the frames that no echo of it can reach.
"""

from __future__ import annotations

from typing import Final, final

import numpy as np
import numpy.typing as npt

from voiceguard.audio import SILENCE_DBFS
from voiceguard.config import CalibrationConfig
from voiceguard.core.guards._echo_path import EchoPath, row_medians
from voiceguard.core.guards._line import BOT_ACTIVE_DBFS, RING, LineHistory, frames_of, window
from voiceguard.core.guards._spectrum import noise_like, unvoiced

__all__ = ("EchoListen",)

_HISTORY: Final = 100  # frames before the onset that bound the echo at each delay (2 s)
_MIN_SHOWN: Final = 5  # frames of bot speech a delay needs before it is bounded
_SLACK: Final = 2  # frames of delay uncertainty (dispersion, frame alignment)
_VOWEL_WAIT: Final = 10  # frames an unvoiced start may wait for its vowel (200 ms)
#: Frames the bot may go on playing after the pause was asked for (its audio already on the
#: phone: a playout's lead is a few hundred ms) before the gate stops waiting for the pause and
#: judges as it would without one.
_PAUSE_GRACE: Final = 25
#: An echo this far (dB) above the margin over the floor would clearly show ...
_CLEAR_DB: Final = 6.0
#: ... so a frame this close (dB) to the floor where it would show says it is not there ...
_QUIET_DB: Final = 3.0
#: ... and this many such frames (and half of those where it would show) refute that delay.
_MISSING: Final = 3
#: Or, counting only the frames after the energy ended (the caller's own speech frames are
#: not held against the echo, so a short word interrupting the greeting is not lost), this many
#: such frames (120 ms) ...
_MISSING_AFTER: Final = 6
#: ... or this many when every frame after it where the echo would clearly sound is quiet (the
#: bot's pause can leave only a few such frames at the shortest delays).
_ALL_MISSING_AFTER: Final = 4


@final
class EchoListen:
    """Bounds the unknown echo from the line's history, and judges a pause to listen.

    Args:
        config: The gate's configuration.
        line: The call's history, read only.
        echo: The call's echo path, read only.

    Attributes:
        onset: The first frame of the segment listened to, or ``None``.
        lag: The longest echo delay (frames) that could explain the onset, slack included.
        asked: The frame at which the pause was asked for.
        heard_within: The longest echo delay (frames, slack included) that a pause which heard
            the echo end with the bot's audio left possible, or ``None`` before any did: the
            line carries an echo that late at most (the shortest such bound, over the call).
    """

    __slots__ = (
        "_config",
        "_confirm",
        "_echo",
        "_lags",
        "_line",
        "_proven",
        "asked",
        "heard_within",
        "lag",
        "onset",
    )

    def __init__(self, config: CalibrationConfig, line: LineHistory, echo: EchoPath) -> None:
        self._config = config
        self._line = line
        self._echo = echo
        self._confirm = frames_of(config.confirm_time)
        self.onset: int | None = None
        self.lag = 0
        self.asked = 0
        self.heard_within: int | None = None
        self._lags: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)  # delays that explain it
        self._proven: npt.NDArray[np.float64] = np.zeros(0)  # the loss proven at each delay

    # ------------------------------------------------------------------ the unknown echo

    def _lagged(
        self, onset: int, n: int, floor: float
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Per delay, the bot's level at each frame from *onset* to *n* (one row per delay), the
        loss that the line's history before *onset* proves at that delay, and the inbound."""
        line = self._line
        lags = self._echo.max_lag
        width = max(1, n - onset)
        history = max(0, min(_HISTORY, onset, RING // 2 - lags - width - 1))
        span = history + width
        out = window(line.out_db, n, span + lags)
        inbound = window(line.in_db, n, span)
        index = lags + np.arange(span)[None, :] - np.arange(lags + 1)[:, None]
        lagged = out[index]
        before = lagged[:, :history]
        heard = np.maximum(inbound[:history], floor)
        loud = before > np.maximum(BOT_ACTIVE_DBFS, before.max(initial=SILENCE_DBFS) - 20.0)
        shown = loud.sum(axis=1)
        loss = np.where(loud, before - heard, np.nan)
        proven = np.full(lags + 1, self._config.unknown_echo_return_loss_db)
        bounded = shown >= _MIN_SHOWN
        if bounded.any():
            # The median over the bot's loud frames: an echo that a canceller lets through only
            # at loud syllables still counts at its loud syllables.
            proven[bounded] = np.maximum(proven[bounded], row_medians(loss[bounded]))
        return lagged[:, history:], proven, inbound[history:]

    def echo_prediction(
        self, onset: int, n: int, floor: float, *, heard: bool = False
    ) -> npt.NDArray[np.float64]:
        """The loudest echo (dBFS) the line's history allows in frames *onset* to *n*, for a line
        whose echo delay is not known yet: at any delay, or (*heard*, once a pause heard the
        echo end) at the delays that pause left possible (:attr:`heard_within`)."""
        lagged, proven, _inbound = self._lagged(onset, n, floor)
        if heard and self.heard_within is not None:
            lagged, proven = lagged[: self.heard_within + 1], proven[: self.heard_within + 1]
        return np.asarray((lagged - proven[:, None]).max(axis=0), dtype=np.float64)

    # ------------------------------------------------------------------ listening

    def start(self, onset: int, n: int, floor: float) -> None:
        """Listen to the segment from *onset*: the bot is asked to pause at frame *n*."""
        self.onset = onset
        self.asked = n
        lagged, proven, inbound = self._lagged(onset, n, floor)
        if self._echo.delay is not None and self._echo.erl is not None:
            self._lags = np.array([self._echo.delay], dtype=np.intp)
            proven[self._echo.delay] = self._echo.erl
            self._proven = proven
            self.lag = self._echo.delay + _SLACK
            return
        margin = self._config.speech_margin_db
        speech = inbound >= floor + margin
        if speech.any():  # a frame at the floor is explained by any echo: it says nothing
            lagged, inbound = lagged[:, speech], inbound[speech]
        explains = (lagged - proven[:, None] >= inbound[None, :] - margin).any(axis=1)
        self._lags = np.flatnonzero(explains)
        self._proven = proven
        self.lag = int(self._lags[-1]) + _SLACK if self._lags.size else _SLACK

    def _refuted(self, n: int, reference: float) -> bool:
        """True if, at every delay that could explain the onset, the line went quiet where the
        echo of what the bot played would still sound clearly: whatever it was, not its echo."""
        onset = self.onset
        if onset is None or self._lags.size == 0 or n - onset < 2 * self._confirm:
            return False
        lagged, _proven, inbound = self._lagged(onset, n, reference)
        missing, shown = self._missing(lagged, inbound, reference)
        return bool(np.all((missing >= _MISSING) & (missing >= 0.5 * shown)))

    def _missing(
        self, lagged: npt.NDArray[np.float64], inbound: npt.NDArray[np.float64], reference: float
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Per delay that explains the onset: the frames where its echo would clearly sound
        while the line sits at the floor, and the frames where it would clearly sound."""
        echo = lagged[self._lags] - self._proven[self._lags][:, None]
        clear = echo >= reference + self._config.speech_margin_db + _CLEAR_DB
        missing = (clear & (inbound < reference + _QUIET_DB)[None, :]).sum(axis=1)
        return missing, clear.sum(axis=1)

    def absent_after(self, n: int, reference: float) -> str | None:
        """Why the segment was not the echo, if after its last speech frame the line stayed
        quiet at every delay that could explain the onset where that echo would still sound
        clearly (for :data:`_MISSING_AFTER` frames, or :data:`_ALL_MISSING_AFTER` and all of
        them): the speech ended before its echo would have. ``None`` if it did not, or if the
        energy was a noise burst (no voiced frame, or a noise-like spectrum)."""
        onset = self.onset
        if onset is None or self._lags.size == 0:
            return None
        lagged, _proven, inbound = self._lagged(onset, n, reference)
        speech = inbound >= reference + self._config.speech_margin_db
        loud = np.flatnonzero(speech)
        if loud.size == 0:
            return None
        rows = self._line.speech_frames(speech, n)
        if noise_like(rows) is not None or unvoiced(rows, reference) is not None:
            return None  # a noise burst (a cough, a key) is not the caller either
        after = int(loud[-1]) + 1
        missing, shown = self._missing(lagged[:, after:], inbound[after:], reference)
        every = (missing >= _ALL_MISSING_AFTER) & (missing == shown)
        if not np.all((missing >= _MISSING_AFTER) | every):
            return None
        return (
            "the bot paused to listen: the speech ended before its echo would have (the line "
            f"quiet for {int(missing.min()) * 20} ms or more where the echo would still sound)"
        )

    def stop(self) -> None:
        """Nothing is listened to any more."""
        self.onset = None

    def judge(self, n: int, reference: float) -> tuple[bool, str] | None:
        """The verdict of the pause at frame *n*, or ``None`` to keep listening.

        Args:
            n: The inbound frames seen.
            reference: The level (dBFS) the line carries without anyone: the noise floor, or
                the quietest frame before calibration.

        Returns:
            ``(True, why)`` when speech went on where no echo of the bot can reach (the caller),
            ``(False, why)`` when the energy ended with the bot's audio (its echo), or when the
            bot never paused (``why`` says so); ``None`` while it is too early to tell.
        """
        line = self._line
        last = line.last_bot_frame
        if last >= n - 2 and n - self.asked >= _PAUSE_GRACE:
            return False, "the bot did not pause: echo cannot be ruled out"
        if self._refuted(n, reference):
            return True, (
                "the bot paused to listen: the line went quiet where its echo would still "
                "sound, so the speech was not its echo"
            )
        free = max(last + 1 + self.lag, self.onset if self.onset is not None else 0)
        if n - free < self._confirm:
            return None
        frames = window(line.in_db, n, min(n - free, RING // 4))
        speech = frames - reference >= self._config.speech_margin_db
        count = int(np.count_nonzero(speech))
        if count >= self._confirm:
            rows = line.speech_frames(speech, n)
            burst = noise_like(rows)
            if burst is None:
                burst = unvoiced(rows, reference)
                if burst is not None and n - free < 3 * self._confirm + _VOWEL_WAIT:
                    return None  # a consonant so far: its vowel decides
            if burst is None:
                return True, (
                    f"the bot paused to listen: {count} speech frames after its echo "
                    f"({self.lag * 20} ms at most) would have ended"
                )
            return False, f"the bot paused to listen: {burst}"
        if count == 0 or n - free >= 3 * self._confirm:
            refuted = self.absent_after(n, reference)
            if refuted is not None:
                return True, refuted
            if self.heard_within is None or self.lag < self.heard_within:
                self.heard_within = self.lag
            return False, (
                f"the bot paused to listen: the energy ended within {self.lag * 20} ms of its "
                "audio (its echo)"
            )
        return None
