"""CalibrationGate: may a ``speech_started`` count as the caller barging in?

Phone lines have no echo canceller. The bot's own voice comes back on the caller's channel after
the network's round trip, line noise trips the server VAD at the start of a call, and a bridge
that cancels the bot on every ``input_audio_buffer.speech_started`` cuts itself off. The gate
listens to both directions of one call and judges each ``speech_started`` from the audio:

* **Noise floor.** From the caller's frames it tracks a low percentile of the frame energies over
  the last 3 s. The line counts as calibrated once that estimate is stable (successive estimates
  within :attr:`~voiceguard.CalibrationConfig.calibration_stable_db`, and enough frames
  sit near the floor to look like line noise rather than speech); a caller who talks first or the
  greeting's echo only delay it. After
  :attr:`~voiceguard.CalibrationConfig.max_calibration_time` it calibrates on what it has.
* **Echo path.** While the bot talks it correlates the caller channel's energy envelope with the
  bot's, over delays up to :attr:`~voiceguard.CalibrationConfig.max_echo_delay`, and keeps
  the delay and the echo return loss (how many dB quieter the echo is than the bot) up to date.
* **Judgement.** For the frames since the speech onset it predicts what the line would carry
  without the caller (noise floor plus the echo of what the bot said one delay earlier) and counts
  the frames that rise :attr:`~voiceguard.CalibrationConfig.speech_margin_db` above it.
  Enough of them: :attr:`~voiceguard.Verdict.ALLOW`. None, and the bot's echo explains the energy:
  suppress with :attr:`~voiceguard.Reason.ECHO_SUSPECTED`. Some but not enough while the bot
  talks: :attr:`~voiceguard.Verdict.DEFER` with :attr:`~voiceguard.Reason.DOUBLE_TALK` and a
  ``retry_at``; ask again with :meth:`CalibrationGate.recheck`.
* **Noise bursts.** Before allowing, it checks the spectrum of the frames that carried the
  evidence (only then, never per frame): as flat as white noise (clicks, crackle) or nearly all
  below 450 Hz (thumps) is noise, suppressed with :attr:`~voiceguard.Reason.BELOW_NOISE_FLOOR`.
* **Before calibration.** If the bot has sent no audio within
  :attr:`~voiceguard.CalibrationConfig.max_echo_delay`, nothing heard can be echo: speech-like
  frames above the quietest frame so far are allowed
  (:attr:`~voiceguard.CalibrationConfig.allow_speech_before_calibration`); otherwise
  :attr:`~voiceguard.Reason.NOT_CALIBRATED`.
* **Watching.** After a suppression it keeps judging the segment's frames until
  ``speech_stopped``; the caller's own speech in it becomes a late barge-in
  (:meth:`CalibrationGate.poll_barge_in`).

The gate is pure and per call: it never reads a clock (it is handed ``now``, and counts audio in
frames of 160 samples) and holds no global state. Feed it every inbound frame, every outbound
frame at the moment it is handed to the phone, and the speech events.
"""

from __future__ import annotations

import logging
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, final

import numpy as np
import numpy.typing as npt

from voiceguard.audio import (
    _DECODE,
    _POWER,
    FRAME_BYTES,
    FRAME_SECONDS,
    SAMPLE_RATE,
    SILENCE_DBFS,
    check_frame,
)
from voiceguard.config import CalibrationConfig
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import StateTransitionError

__all__ = ("CalibrationGate", "CalibrationStatistics")

logger = logging.getLogger("voiceguard.guards.calibration")

_RING: Final = 512  # frames of history kept (10.24 s); a power of two
_MASK: Final = _RING - 1
_BLOCK: Final = 5  # frames between noise-floor and echo-path updates (100 ms)
_FLOOR_WINDOW: Final = 150  # frames of history for the noise floor (3 s)
_ECHO_WINDOW: Final = 100  # frames of history for one echo-path update (2 s)
_FLOOR_PERCENTILE: Final = 0.10
_NOISE_CLUSTER_DB: Final = 3.0  # frames this close above the percentile look like line noise
_NOISE_CLUSTER_SHARE: Final = 0.3
_BOT_ACTIVE_DBFS: Final = -60.0  # outbound frames louder than this are bot speech
_ECHO_CONVERGED: Final = 0.35  # correlation needed to trust the delay estimate
#: An echo is never louder than the audio it echoes (a passive line only loses level): a block
#: whose apparent echo return loss is below this (dB) is the caller talking over the bot, and the
#: echo path does not learn from it.
_MIN_ECHO_LOSS_DB: Final = 0.0
_ECHO_DISTINCT: Final = 0.2  # ... and how far the peak must stand above the median lag
_FLOOR_RISE_DB: Final = 0.5  # per block, once calibrated
_INV_FRAME: Final = 1.0 / FRAME_BYTES
#: ``ndarray.sum`` without its Python-level wrapper (the same reduction, the same result).
_SUM: Final = np.add.reduce
_TINY: Final = 10.0 ** (SILENCE_DBFS / 10.0)

# Spectral check of the frames that carry the candidate speech (run only when judging).
_RAW_RING: Final = 128  # raw mu-law frames kept for it (2.56 s); a power of two
_RAW_MASK: Final = _RAW_RING - 1
_SPECTRUM_FRAMES: Final = 8  # at most this many of the latest speech frames are analysed
_FFT_SIZE: Final = 256  # 160 samples, Hann window, zero-padded: 31.25 Hz bins
_HANN: Final = np.hanning(FRAME_BYTES)
_FREQS: Final = np.fft.rfftfreq(_FFT_SIZE, 1.0 / SAMPLE_RATE)
_SPEECH_BAND: Final = (_FREQS >= 300.0) & (_FREQS <= 3400.0)  # the telephone band
_LOW_BAND: Final = _FREQS < 450.0
#: Spectral flatness (geometric over arithmetic mean of the power spectrum, 300-3400 Hz) above
#: which audio is noise, not speech. Averaged periodograms of white noise over k frames have a
#: flatness near exp(digamma(k) - ln k): 0.56 for one frame, 0.84 for three, towards 1 for more;
#: voiced speech, with its harmonics and formants, stays far lower (typically 0.05-0.3).
_NOISE_FLATNESS: Final = 0.7
#: Share of the energy below 450 Hz above which audio is a low thump, not speech: telephone
#: speech is high-passed at 300 Hz and carries its formants (F1 300-900 Hz, F2 above 900 Hz) in
#: the band, so even a low male voice keeps well over 10 % of its energy above 450 Hz.
_LOW_SHARE: Final = 0.9

# Watching a suppressed segment for the caller's own speech.
_WATCH_WINDOW: Final = 10  # frames judged when the per-frame test fires (200 ms)
_WATCH_HISTORY: Final = 5  # the per-frame test needs confirm frames among the last 5
_WATCH_RETRY: Final = _BLOCK  # frames between two full judgements of a watched segment
_WATCH_EXTRA_DB: Final = 3.0  # extra margin over speech_margin_db inside a suppressed segment
_WATCH_EXTRA_FRAMES: Final = 1  # frames of evidence needed beyond confirm_time


def _noise_like(codes: npt.NDArray[np.uint8]) -> str | None:
    """Why the mu-law frames (one per row) sound like a noise burst rather than speech, or None.

    Two physical cues, measured on the average power spectrum of the frames: a spectrum as flat
    as white noise (clicks, crackle, hiss: no harmonics, no formants), or nearly all the energy
    below 450 Hz (handling thumps and bumps, where telephone speech has little).
    """
    if codes.shape[0] == 0:
        return None
    frames = _DECODE[codes] * _HANN
    power = np.square(np.abs(np.fft.rfft(frames, _FFT_SIZE, axis=1))).mean(axis=0)
    total = float(power.sum())
    if total <= 0.0:
        return None
    band = power[_SPEECH_BAND] + total * 1e-9
    flatness = float(np.exp(np.mean(np.log(band))) / np.mean(band))
    if codes.shape[0] >= 2 and flatness > _NOISE_FLATNESS:
        return f"noise burst: spectrum as flat as noise (flatness {flatness:.2f})"
    low = float(power[_LOW_BAND].sum()) / total
    if low > _LOW_SHARE:
        return f"noise burst: {100 * low:.0f} % of the energy below 450 Hz (a thump)"
    return None


def _median(values: npt.NDArray[np.float64]) -> float:
    """``numpy.median`` of a non-empty 1-D array without NaN, with less overhead (same value)."""
    half = values.size // 2
    if values.size % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2.0)


def _running_max(values: npt.NDArray[np.float64], span: int) -> npt.NDArray[np.float64]:
    """Maximum over each run of *span* consecutive values (``len(values) - span + 1`` results).

    Built by doubling (max of pairs, of quadruples, ...) so it costs a few vector operations
    instead of a ``span``-wide window.
    """
    result = values
    covered = 1
    while covered < span:
        step = min(covered, span - covered)
        result = np.maximum(result[:-step], result[step:])
        covered += step
    return result


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationStatistics:
    """An immutable snapshot of a :class:`CalibrationGate` (for logs and metrics).

    Attributes:
        calibrated: Whether the noise floor is known.
        calibrated_since: The ``now`` at which the gate calibrated, or ``None``.
        calibrated_on_timeout: True if it calibrated because
            :attr:`~voiceguard.CalibrationConfig.max_calibration_time` passed, not because
            the estimate was stable.
        noise_floor_dbfs: The current noise-floor estimate in dBFS (``None`` before the first
            200 ms of caller audio).
        echo_delay_ms: The estimated echo delay in ms, or ``None`` while unknown.
        echo_return_loss_db: The estimated echo return loss in dB (bot level minus echo level),
            or ``None`` while unknown.
        echo_confidence: Correlation (0 to 1) behind the delay estimate.
        inbound_frames: Caller frames seen.
        outbound_frames: Bot frames seen.
        deferrals: How many deferrals were returned.
        decisions: Final decisions so far (allowed or suppressed) per reason, late barge-ins
            (allowed, :attr:`~voiceguard.Reason.OK`) included.
        late_barge_ins: Late barge-ins found inside suppressed segments (see
            :meth:`CalibrationGate.poll_barge_in`).
    """

    calibrated: bool
    calibrated_since: float | None
    calibrated_on_timeout: bool
    noise_floor_dbfs: float | None
    echo_delay_ms: float | None
    echo_return_loss_db: float | None
    echo_confidence: float
    inbound_frames: int
    outbound_frames: int
    deferrals: int
    decisions: Mapping[Reason, int]
    late_barge_ins: int = 0


@final
class CalibrationGate:
    """Judges each ``speech_started`` of one call against the line's noise floor and echo.

    One gate per call; it must never see another call's frames. See the module documentation for
    how it decides.

    Args:
        config: Thresholds and options; the defaults come from the corpus measurements.

    Example:
        >>> gate = CalibrationGate()
        >>> gate.push_inbound(b"\\xff" * 160, now=0.02)
        >>> gate.judge_speech_started(now=0.02).reason
        <Reason.NOT_CALIBRATED: 'NOT_CALIBRATED'>
    """

    __slots__ = (
        "_calibrated_since",
        "_config",
        "_confirm_frames",
        "_corr",
        "_counts",
        "_deferrals",
        "_delay",
        "_echo_confidence",
        "_erl",
        "_erl_any",
        "_floor",
        "_floor_history",
        "_floor_power",
        "_in_count",
        "_in_db",
        "_last_bot_frame",
        "_late",
        "_late_count",
        "_margin_ratio",
        "_max_lag",
        "_out_count",
        "_out_cursor",
        "_out_db",
        "_out_rest",
        "_pending_deadline",
        "_pending_onset",
        "_pending_since",
        "_pending_user_has_spoken",
        "_raw",
        "_timed_out",
        "_watch_hits",
        "_watch_min_power",
        "_watch_next",
        "_watch_onset",
    )

    def __init__(self, config: CalibrationConfig | None = None) -> None:
        self._config = config if config is not None else CalibrationConfig()
        self._max_lag = max(1, round(self._config.max_echo_delay / FRAME_SECONDS))
        self._confirm_frames = max(1, round(self._config.confirm_time / FRAME_SECONDS))
        self._in_db: npt.NDArray[np.float64] = np.full(_RING, SILENCE_DBFS)
        self._out_db: npt.NDArray[np.float64] = np.full(_RING, SILENCE_DBFS)
        self._in_count = 0
        self._out_count = 0
        self._out_cursor = 0
        self._out_rest = b""
        self._last_bot_frame = -(10**9)
        self._floor: float | None = None
        self._floor_history: list[float] = []
        self._calibrated_since: float | None = None
        self._timed_out = False
        self._corr: npt.NDArray[np.float64] | None = None
        self._delay: int | None = None
        self._echo_confidence = 0.0
        self._erl: float | None = None
        self._erl_any: float | None = None
        self._counts: dict[Reason, int] = {}
        self._deferrals = 0
        self._pending_onset: int | None = None
        self._pending_since = 0.0
        self._pending_deadline: float | None = None
        self._pending_user_has_spoken = False
        self._margin_ratio = 10.0 ** ((self._config.speech_margin_db + _WATCH_EXTRA_DB) / 10.0)
        self._floor_power = 0.0
        self._raw: list[bytes] = [bytes(FRAME_BYTES)] * _RAW_RING
        self._watch_onset: int | None = None
        self._watch_hits = 0
        self._watch_next = 0
        self._watch_min_power = math.inf
        self._late: Decision | None = None
        self._late_count = 0

    # ------------------------------------------------------------------ feeding audio

    def push_inbound(self, frame: bytes | bytearray | memoryview, now: float) -> None:
        """Feed caller audio as it arrives from the phone (Twilio ``media``, decoded base64).

        Args:
            frame: 8 kHz mu-law audio; a positive multiple of 160 bytes (20 ms).
            now: Monotonic time in seconds (only recorded; the gate counts audio in frames).

        Raises:
            TypeError: If *frame* is not bytes-like.
            ValueError: If its length is not a positive multiple of 160 bytes.
        """
        if type(frame) is bytes and len(frame) == FRAME_BYTES:  # the hot path: one frame
            self._raw[self._in_count & _RAW_MASK] = frame
            self._push_in(float(_SUM(_POWER.take(np.frombuffer(frame, dtype=np.uint8)))), now)
            return
        size = check_frame(frame, what="inbound frame")
        data = bytes(frame)
        codes = np.frombuffer(data, dtype=np.uint8)
        for start in range(0, size, FRAME_BYTES):
            self._raw[self._in_count & _RAW_MASK] = data[start : start + FRAME_BYTES]
            self._push_in(float(_POWER.take(codes[start : start + FRAME_BYTES]).sum()), now)

    def _push_in(self, energy: float, now: float) -> None:
        """Record one inbound frame whose summed sample power is *energy*."""
        power = energy * _INV_FRAME
        n = self._in_count
        self._in_db[n & _MASK] = 10.0 * math.log10(power) if power > _TINY else SILENCE_DBFS
        self._out_db[(n + _RING // 2) & _MASK] = SILENCE_DBFS  # recycle the slot ahead
        n += 1
        self._in_count = n
        if n % _BLOCK == 0 and (self._calibrated_since is None or n % (2 * _BLOCK) == 0):
            self._update(now)
        if self._watch_onset is not None:
            self._watch_frame(power, n, now)

    def push_outbound(self, audio: bytes | bytearray | memoryview, now: float) -> None:
        """Feed the bot's audio at the moment it is handed to the phone.

        Audio of any length is accepted (a model's audio deltas are not frame-aligned); the
        remainder of a partial frame waits for the next call. The gate places each outbound frame
        at the current position of the inbound stream, or right after the previous outbound
        frame if that is later (the phone plays its buffer in order).

        Args:
            audio: 8 kHz mu-law audio.
            now: Monotonic time in seconds (only recorded).

        Raises:
            TypeError: If *audio* is not bytes-like.
        """
        if type(audio) is bytes and len(audio) == FRAME_BYTES and not self._out_rest:
            # The hot path: one whole frame.
            power = float(_SUM(_POWER.take(np.frombuffer(audio, dtype=np.uint8)))) * _INV_FRAME
            slot = max(self._out_cursor, self._in_count)
            db = 10.0 * math.log10(power) if power > _TINY else SILENCE_DBFS
            self._out_db[slot & _MASK] = db
            if db > _BOT_ACTIVE_DBFS:
                self._last_bot_frame = slot
            self._out_count += 1
            self._out_cursor = slot + 1
            return
        if not isinstance(audio, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"outbound audio must be mu-law bytes (bytes, bytearray or memoryview), "
                f"not {type(audio).__name__}"
            )
        data = self._out_rest + bytes(audio)
        whole = len(data) - len(data) % FRAME_BYTES
        self._out_rest = data[whole:]
        if not whole:
            return
        codes = np.frombuffer(data, dtype=np.uint8, count=whole)
        slot = max(self._out_cursor, self._in_count)
        for start in range(0, whole, FRAME_BYTES):
            power = float(_POWER.take(codes[start : start + FRAME_BYTES]).sum()) * _INV_FRAME
            db = 10.0 * math.log10(power) if power > _TINY else SILENCE_DBFS
            self._out_db[slot & _MASK] = db
            if db > _BOT_ACTIVE_DBFS:
                self._last_bot_frame = slot
            slot += 1
        self._out_count += whole // FRAME_BYTES
        self._out_cursor = slot

    # ------------------------------------------------------------------ learning

    def _window(
        self, ring: npt.NDArray[np.float64], end: int, length: int
    ) -> npt.NDArray[np.float64]:
        """The *length* frames of *ring* ending before absolute frame *end* (oldest first)."""
        start = (end - length) & _MASK
        if start + length <= _RING:
            return ring[start : start + length]
        return np.concatenate((ring[start:], ring[: (start + length) & _MASK]))

    def _update(self, now: float) -> None:
        """Every block of frames: update the noise floor, calibration and echo path."""
        n = self._in_count
        length = min(n, _FLOOR_WINDOW)
        history = self._window(self._in_db, n, length)
        if self._calibrated_since is not None and self._erl_any is not None:
            # Once the echo is known, frames the echo may have reached do not measure the floor.
            echo = self._echo_bound(n, length)
            quiet = history[echo < (self._floor if self._floor is not None else -200.0)]
            if quiet.size >= 20:
                history = quiet
        k = int(_FLOOR_PERCENTILE * (history.size - 1))
        estimate = float(np.partition(history, k)[k])
        if self._calibrated_since is None:
            self._floor = estimate
            self._floor_power = 10.0 ** (estimate / 10.0)
            self._floor_history.append(estimate)
            del self._floor_history[:-3]
            cfg = self._config
            seconds = n * FRAME_SECONDS
            near = np.count_nonzero(history <= estimate + _NOISE_CLUSTER_DB) / history.size
            stable = (
                seconds >= cfg.min_calibration_time
                and len(self._floor_history) == 3
                and max(self._floor_history) - min(self._floor_history) <= cfg.calibration_stable_db
                and near >= _NOISE_CLUSTER_SHARE
            )
            if stable or seconds >= cfg.max_calibration_time:
                self._calibrated_since = now
                self._timed_out = not stable
                logger.info(
                    "calibrated after %.2f s of caller audio%s: noise floor %.1f dBFS",
                    seconds,
                    " (upper bound reached)" if not stable else "",
                    estimate,
                )
        else:
            assert self._floor is not None
            self._floor = min(estimate, self._floor + _FLOOR_RISE_DB)
            self._floor_power = 10.0 ** (self._floor / 10.0)
        every = 2 * _BLOCK if self._delay is None else 3 * _BLOCK  # slower once converged
        if n % every == 0 and n - self._last_bot_frame <= _ECHO_WINDOW and n >= 25:
            self._learn_echo(n)

    def _learn_echo(self, n: int) -> None:
        """Correlate the inbound and outbound energy envelopes to find the echo delay and loss."""
        assert self._floor is not None
        width = min(n, _ECHO_WINDOW)
        lag = self._max_lag
        inbound = self._window(self._in_db, n, width)
        outbound = self._window(self._out_db, n, width + lag)
        x = np.maximum(inbound, self._floor + 3.0)
        y = np.maximum(outbound, _BOT_ACTIVE_DBFS)
        x = x - x.mean()
        x_norm = float(np.sqrt(x @ x))
        # Window k of y is the outbound envelope delayed by (lag - k) frames, aligned with
        # inbound. As x sums to zero, its dot product with a window needs no centring; the
        # centred norm of each window comes from running sums.
        sums = np.concatenate(((0.0,), np.cumsum(y)))
        squares = np.concatenate(((0.0,), np.cumsum(y * y)))
        window_sum = sums[width:] - sums[:-width]
        spread = squares[width:] - squares[:-width] - window_sum * window_sum / width
        row_norm = np.sqrt(np.maximum(spread, 0.0))
        dots = np.correlate(y, x, mode="valid")
        ref_any = _running_max(outbound, lag + 1)[-width:]
        block_any = self._loss(ref_any, inbound, lag)
        corr = (
            (dots / np.maximum(row_norm * x_norm, 1e-9))[::-1]  # index = delay
            if x_norm >= 1e-9
            else None
        )
        # Energy heard while the bot talks is its echo only if it follows the bot's envelope at
        # some delay: otherwise it is the caller talking over the bot (double talk), and taking
        # it for echo would hide the caller's speech behind it for the rest of the call.
        echo_like = corr is not None and float(np.max(corr)) >= _ECHO_CONVERGED
        if (
            block_any is not None
            and block_any[0] >= _MIN_ECHO_LOSS_DB
            and (block_any[1] == "bound" or echo_like)
        ):
            loss = block_any[0]
            self._erl_any = loss if self._erl_any is None else 0.7 * self._erl_any + 0.3 * loss
        if corr is None:
            return
        # Learn fast until the delay is known, then slowly: a block of double talk must not
        # move a delay that many blocks agreed on.
        rate = 0.3 if self._delay is None else 0.1
        self._corr = corr if self._corr is None else (1 - rate) * self._corr + rate * corr
        delay = int(np.argmax(self._corr))
        if self._delay is not None and self._corr[delay] < self._corr[self._delay] + 0.05:
            delay = self._delay  # hysteresis: keep the current delay unless clearly beaten
        self._echo_confidence = float(self._corr[delay])
        if delay >= len(self._corr) - 1:
            # A maximum at the far edge of the searched range is not a located peak: it is what
            # a caller who answers right after the bot looks like (their speech follows the bot
            # by about the longest delay searched). A real echo path lies inside the range.
            return
        if self._echo_confidence < _ECHO_CONVERGED or (
            self._echo_confidence - _median(self._corr) < _ECHO_DISTINCT
        ):
            return
        measured = self._loss(self._reference(n, width, delay), inbound, 2)
        block = None if measured is None else measured[0]
        if block is not None and block < _MIN_ECHO_LOSS_DB:
            # Louder than the bot itself: that is the caller talking over it, not its echo.
            return
        self._delay = delay
        if block is not None:
            self._erl = block if self._erl is None else 0.7 * self._erl + 0.3 * block

    def _loss(
        self, ref: npt.NDArray[np.float64], inbound: npt.NDArray[np.float64], spread: int
    ) -> tuple[float, Literal["visible", "bound"]] | None:
        """Echo return loss (dB) seen between a reference envelope and the inbound one.

        Uses the frames where the reference is bot speech. If the echo shows above the noise
        floor in enough of them, the loss is the median distance; if the bot has talked long
        enough for its echo to arrive (*spread* frames of delay uncertainty plus 0.5 s) and the
        echo still does not show, the echo is under the noise floor, which bounds the loss.
        Otherwise there is nothing to learn from yet (``None``).
        """
        assert self._floor is not None
        bot = ref > _BOT_ACTIVE_DBFS
        talking = int(np.count_nonzero(bot))
        visible = bot & (inbound > self._floor + 6.0)
        shown = int(np.count_nonzero(visible))
        if shown >= 10 and shown >= 0.3 * talking:
            return _median(ref[visible] - inbound[visible]), "visible"
        if talking >= spread + 25 and shown < 0.15 * talking:
            return _median(ref[bot]) - self._floor, "bound"
        return None

    def _reference(self, end: int, width: int, delay: int) -> npt.NDArray[np.float64]:
        """Outbound energy one echo delay earlier, widened by a frame each side (dB)."""
        out = self._window(self._out_db, end - delay + 1, width + 2)
        return np.maximum(np.maximum(out[:-2], out[1:-1]), out[2:])

    def _echo_bound(self, end: int, width: int) -> npt.NDArray[np.float64]:
        """Predicted echo level (dBFS) of the *width* frames before *end*."""
        cfg = self._config
        if self._delay is not None and self._erl is not None:
            return self._reference(end, width, self._delay) - self._erl
        out = self._window(self._out_db, end, width + self._max_lag)
        ref_any = _running_max(out, self._max_lag + 1)[-width:]
        erl = self._erl_any if self._erl_any is not None else cfg.unknown_echo_return_loss_db
        return ref_any - erl

    # ------------------------------------------------------------------ judging

    @property
    def calibrated(self) -> bool:
        """True once the noise floor is known."""
        return self._calibrated_since is not None

    @property
    def config(self) -> CalibrationConfig:
        """The gate's configuration."""
        return self._config

    def judge_speech_started(
        self, now: float, *, audio_start_ms: int | None = None, user_has_spoken: bool = False
    ) -> Decision:
        """Judge an ``input_audio_buffer.speech_started``: is it the caller barging in?

        Call it when the event arrives, after feeding the inbound audio received so far.

        Args:
            now: Monotonic time in seconds.
            audio_start_ms: The event's ``audio_start_ms``, if the gate has seen every inbound
                frame appended to the model's input buffer since the session began (then the
                gate looks at the audio from the onset on); otherwise the last 200 ms are judged.
            user_has_spoken: Whether the caller has spoken before in this call (only consulted
                with :attr:`~voiceguard.CalibrationConfig.require_user_has_spoken`).

        Returns:
            A :class:`~voiceguard.Decision` about :attr:`~voiceguard.Action.BARGE_IN`: allowed,
            suppressed with its reason, or deferred (:attr:`~voiceguard.Decision.retry_at` says
            when to call :meth:`recheck`). A new ``speech_started`` replaces a pending one, and
            ends the watch over the previous segment (see :meth:`poll_barge_in`).
        """
        cfg = self._config
        if audio_start_ms is not None:
            onset = (audio_start_ms + cfg.prefix_padding_ms) // round(FRAME_SECONDS * 1000)
            if audio_start_ms <= 0:  # the padding was cut at the start: onset is earlier
                onset = 0
            onset = min(max(onset, self._in_count - 25), self._in_count - 1)
        else:
            onset = self._in_count - 10
        self._pending_onset = max(0, onset)
        self._pending_since = now
        self._pending_user_has_spoken = user_has_spoken
        self._watch_onset = None
        self._late = None
        return self._judge(now)

    def recheck(self, now: float) -> Decision:
        """Judge the deferred ``speech_started`` again (at or after its ``retry_at``).

        Args:
            now: Monotonic time in seconds.

        Returns:
            The new decision (possibly another deferral).

        Raises:
            StateTransitionError: If no ``speech_started`` is deferred.
        """
        if self._pending_deadline is None:
            raise StateTransitionError(
                state="no speech_started deferred",
                event="recheck",
                detail="only a deferred judgement can be rechecked",
            )
        return self._judge(now)

    def speech_stopped(self, now: float) -> Decision | None:
        """Report ``input_audio_buffer.speech_stopped``.

        It also ends the watch over a suppressed segment (see :meth:`poll_barge_in`); a late
        barge-in found before the stop stays available to :meth:`poll_barge_in`.

        Args:
            now: Monotonic time in seconds.

        Returns:
            The final decision on a ``speech_started`` that was still deferred (suppressed with
            :attr:`~voiceguard.Reason.TOO_SHORT`: the speech ended before it was confirmed), or
            ``None`` if none was.
        """
        pending = self._pending_deadline is not None
        self._pending_deadline = None
        self._pending_onset = None
        self._watch_onset = None
        if not pending:
            return None
        return self._final(Verdict.SUPPRESS, Reason.TOO_SHORT, "speech stopped before confirmed")

    def poll_barge_in(self, now: float) -> Decision | None:
        """A late barge-in: the caller's own speech found inside a suppressed segment.

        The server VAD raises one ``speech_started`` per segment. When the bot's echo or line
        noise opened the segment and the gate suppressed it, a caller who starts talking before
        the segment ends gets no ``speech_started`` of their own. So after a suppression the gate
        keeps watching the caller's frames until :meth:`speech_stopped` or the next
        :meth:`judge_speech_started`, with the same test as a judgement (frames
        :attr:`~voiceguard.CalibrationConfig.speech_margin_db` above noise and echo for
        :attr:`~voiceguard.CalibrationConfig.confirm_time`, a speech-like spectrum). Call this
        after :meth:`push_inbound`; it costs nothing when there is no news.

        Args:
            now: Monotonic time in seconds.

        Returns:
            At most once per suppressed segment, an allowed :class:`~voiceguard.Decision`
            about :attr:`~voiceguard.Action.BARGE_IN` with :attr:`~voiceguard.Reason.OK`, to be
            treated as a barge-in; otherwise ``None``. Nothing is watched when
            :attr:`~voiceguard.CalibrationConfig.watch_suppressed_speech` is off, or after a
            suppression with :attr:`~voiceguard.Reason.USER_NOT_SPOKEN`.

        .. versionadded:: 0.1.0
        """
        late = self._late
        if late is not None:
            self._late = None
        return late

    def next_deadline(self) -> float | None:
        """When to call :meth:`recheck` for a deferred ``speech_started``, or ``None``."""
        return self._pending_deadline

    def _final(self, verdict: Verdict, reason: Reason, detail: str) -> Decision:
        self._pending_deadline = None
        self._counts[reason] = self._counts.get(reason, 0) + 1
        # DEBUG: the bridge and the middleware record each judgement once, at INFO when
        # suppressed, with the call's fields (guard "calibration_gate").
        if verdict is Verdict.SUPPRESS:
            logger.debug("speech_started suppressed: %s (%s)", reason.value, detail)
        else:
            logger.debug("speech_started allowed: %s", detail)
        return Decision(action=Action.BARGE_IN, verdict=verdict, reason=reason, detail=detail)

    def _suppress(self, reason: Reason, detail: str, onset: int) -> Decision:
        """Suppress the pending ``speech_started`` and watch its segment for the caller."""
        if self._config.watch_suppressed_speech:
            self._watch_onset = onset
            self._watch_hits = 0
            self._watch_next = self._in_count + 1
            self._watch_min_power = math.inf
        return self._final(Verdict.SUPPRESS, reason, detail)

    def _defer(self, now: float, reason: Reason, detail: str) -> Decision:
        cfg = self._config
        retry_at = min(now + cfg.retry_interval, self._pending_since + cfg.max_defer)
        retry_at = max(retry_at, now + 0.001)
        self._pending_deadline = retry_at
        self._deferrals += 1
        logger.debug("speech_started deferred: %s (%s)", reason.value, detail)
        return Decision(
            action=Action.BARGE_IN,
            verdict=Verdict.DEFER,
            reason=reason,
            retry_at=retry_at,
            detail=detail,
        )

    def _speech_frames(self, evidence: npt.NDArray[np.bool_], end: int) -> npt.NDArray[np.uint8]:
        """The raw frames (one per row) of the latest evidence frames of the window before *end*."""
        index = np.flatnonzero(evidence)[-_SPECTRUM_FRAMES:] + (end - evidence.size)
        index = index[index >= end - _RAW_RING]
        raw = b"".join(self._raw[i & _RAW_MASK] for i in index.tolist())
        return np.frombuffer(raw, dtype=np.uint8).reshape(-1, FRAME_BYTES)

    def _echo_free_end(self, onset: int, n: int) -> int:
        """The end of the frames from *onset* on (up to *n*) that no echo of the bot can reach.

        That is the first frame the bot played from ``max_echo_delay`` before *onset* on (an
        echo never comes before the audio it echoes), or *n* when the bot has not played since.
        Bot audio queued for later does not count: it has not played yet.
        """
        start = max(onset - self._max_lag - 2, n - _RING // 2)
        if self._last_bot_frame < start or start >= n:
            return n
        active = np.flatnonzero(self._window(self._out_db, n, n - start) > _BOT_ACTIVE_DBFS)
        if active.size == 0:
            return n
        return max(onset, start + int(active[0]))

    def _early_speech(self, onset: int, n: int) -> str | None:
        """Before calibration: why frames ``onset..n`` are the caller's speech, or ``None``.

        Without a noise floor the quietest frame heard so far bounds it from above. Frames no
        echo of the bot can reach (before its first audio since
        :attr:`~voiceguard.CalibrationConfig.max_echo_delay` before the onset) cannot be echo, so
        speech-like frames there that rise above that bound, and last until the bot starts, are
        the caller: a caller who talks first is heard even if the bot starts over them.
        """
        cfg = self._config
        end = self._echo_free_end(onset, n)
        if end - onset < self._confirm_frames:
            return None
        if (end - onset) * FRAME_SECONDS + 1e-9 < cfg.min_speech_duration:
            return None
        quietest = float(self._window(self._in_db, n, min(n, _RING)).min())
        width = min(end - onset, _RING // 4)
        inbound = self._window(self._in_db, end, width)
        evidence = inbound - quietest >= cfg.speech_margin_db
        count = int(np.count_nonzero(evidence))
        if count < self._confirm_frames or not evidence[-(self._confirm_frames + 1) :].any():
            return None
        if _noise_like(self._speech_frames(evidence, end)) is not None:
            return None
        return (
            f"{count} speech frames {cfg.speech_margin_db:g} dB above the quietest frame "
            "before any bot audio could echo them (cannot be echo); noise floor not known yet"
        )

    def _judge(self, now: float) -> Decision:
        cfg = self._config
        n = self._in_count
        onset = self._pending_onset if self._pending_onset is not None else n - 10
        early: str | None = None
        if not self.calibrated:
            if cfg.allow_speech_before_calibration:
                early = self._early_speech(onset, n)
            if early is None and cfg.require_calibration:
                return self._suppress(
                    Reason.NOT_CALIBRATED,
                    f"noise floor unknown after {n * FRAME_SECONDS:.2f} s of caller audio",
                    onset,
                )
        if cfg.require_user_has_spoken and not self._pending_user_has_spoken:
            return self._final(Verdict.SUPPRESS, Reason.USER_NOT_SPOKEN, "caller has not spoken")
        if early is not None:
            return self._final(Verdict.ALLOW, Reason.OK, early)
        width = max(1, min(n - onset, _RING // 4))
        floor = self._floor if self._floor is not None else SILENCE_DBFS
        inbound = self._window(self._in_db, n, width)
        echo = self._echo_bound(n, width)
        bot_talks = bool(np.any(echo > floor - 3.0))
        expected = 10.0 * np.log10(10.0 ** (floor / 10.0) + 10.0 ** (echo / 10.0))
        above = inbound - expected >= cfg.speech_margin_db
        evidence = int(np.count_nonzero(above))
        peak = float(inbound.max() - floor)
        timed_out = now - self._pending_since >= cfg.max_defer - 1e-9
        if peak < cfg.noise_margin_db:
            return self._suppress(
                Reason.BELOW_NOISE_FLOOR,
                f"peak {peak:.1f} dB above the noise floor ({floor:.1f} dBFS)",
                onset,
            )
        if evidence >= self._confirm_frames:
            lasted = (n - onset) * FRAME_SECONDS
            if lasted + 1e-9 < cfg.min_speech_duration:
                retry_at = now + (cfg.min_speech_duration - lasted)
                self._pending_deadline = retry_at
                self._deferrals += 1
                logger.debug("speech_started deferred: TOO_SHORT (lasted %.0f ms)", lasted * 1e3)
                return Decision(
                    action=Action.BARGE_IN,
                    verdict=Verdict.DEFER,
                    reason=Reason.TOO_SHORT,
                    retry_at=retry_at,
                    detail=f"speech lasted {lasted * 1000:.0f} ms so far",
                )
            if cfg.min_speech_duration > 0 and not above[-(self._confirm_frames + 1) :].any():
                return self._suppress(
                    Reason.TOO_SHORT,
                    f"energy gone before {cfg.min_speech_duration * 1000:.0f} ms",
                    onset,
                )
            burst = _noise_like(self._speech_frames(above, n))
            if burst is not None:
                return self._suppress(Reason.BELOW_NOISE_FLOOR, burst, onset)
            return self._final(
                Verdict.ALLOW,
                Reason.OK,
                f"{evidence} frames {cfg.speech_margin_db:g} dB above noise and echo",
            )
        if bot_talks:
            if evidence == 0 or timed_out:
                return self._suppress(
                    Reason.ECHO_SUSPECTED,
                    f"echo explains the energy ({evidence} caller frames)",
                    onset,
                )
            return self._defer(now, Reason.DOUBLE_TALK, f"{evidence} caller frames so far")
        if timed_out or (evidence == 0 and n - onset >= self._confirm_frames * 3):
            return self._suppress(
                Reason.BELOW_NOISE_FLOOR,
                f"only {evidence} frames {cfg.speech_margin_db:g} dB above the noise floor",
                onset,
            )
        return self._defer(now, Reason.TOO_SHORT, f"{evidence} speech frames so far")

    # ------------------------------------------------------------------ watching

    def _watch_frame(self, power: float, n: int, now: float) -> None:
        """One frame of a watched segment: a cheap test, and a full judgement when it fires."""
        if self.calibrated:
            reference = self._floor_power
        else:
            self._watch_min_power = min(self._watch_min_power, power)
            reference = self._watch_min_power
        if self._delay is not None and self._erl is not None:
            ring = self._out_db
            at = n - 1 - self._delay
            bot = max(ring[(at - 1) & _MASK], ring[at & _MASK], ring[(at + 1) & _MASK])
            if bot > _BOT_ACTIVE_DBFS:
                reference += 10.0 ** ((bot - self._erl) / 10.0)
        elif n - 1 - self._last_bot_frame <= self._max_lag + 1:
            bot = float(self._window(self._out_db, n, self._max_lag + 1).max())
            erl = (
                self._erl_any
                if self._erl_any is not None
                else self._config.unknown_echo_return_loss_db
            )
            reference += 10.0 ** ((bot - erl) / 10.0)
        hit = power >= reference * self._margin_ratio
        hits = ((self._watch_hits << 1) | hit) & ((1 << _WATCH_HISTORY) - 1)
        self._watch_hits = hits
        needed = self._confirm_frames + _WATCH_EXTRA_FRAMES
        if not hit or n < self._watch_next or hits.bit_count() < needed:
            return
        self._watch_next = n + _WATCH_RETRY
        assert self._watch_onset is not None
        start = max(self._watch_onset, n - _WATCH_WINDOW)
        detail = self._late_speech(start, n)
        if detail is None:
            return
        self._watch_onset = None
        self._late_count += 1
        self._late = self._final(Verdict.ALLOW, Reason.OK, detail)

    def _late_speech(self, start: int, n: int) -> str | None:
        """Why frames ``start..n`` of a watched segment are the caller's speech, or ``None``."""
        cfg = self._config
        if not self.calibrated:
            if not cfg.allow_speech_before_calibration:
                return None
            early = self._early_speech(start, n)
            return None if early is None else f"late: {early}"
        width = n - start
        if (n - start) * FRAME_SECONDS + 1e-9 < cfg.min_speech_duration:
            return None
        assert self._floor is not None
        inbound = self._window(self._in_db, n, width)
        echo = self._echo_bound(n, width)
        expected = 10.0 * np.log10(10.0 ** (self._floor / 10.0) + 10.0 ** (echo / 10.0))
        above = inbound - expected >= cfg.speech_margin_db + _WATCH_EXTRA_DB
        evidence = int(np.count_nonzero(above))
        if evidence < self._confirm_frames + _WATCH_EXTRA_FRAMES:
            return None
        if _noise_like(self._speech_frames(above, n)) is not None:
            return None
        return (
            f"late: {evidence} frames {cfg.speech_margin_db + _WATCH_EXTRA_DB:g} dB above noise "
            "and echo inside a suppressed segment"
        )

    # ------------------------------------------------------------------ reporting

    def statistics(self) -> CalibrationStatistics:
        """An immutable snapshot of what the gate has learned and decided."""
        return CalibrationStatistics(
            calibrated=self.calibrated,
            calibrated_since=self._calibrated_since,
            calibrated_on_timeout=self._timed_out,
            noise_floor_dbfs=self._floor,
            echo_delay_ms=None if self._delay is None else self._delay * FRAME_SECONDS * 1000,
            echo_return_loss_db=self._erl,
            echo_confidence=self._echo_confidence,
            inbound_frames=self._in_count,
            outbound_frames=self._out_count,
            deferrals=self._deferrals,
            decisions=types.MappingProxyType(dict(self._counts)),
            late_barge_ins=self._late_count,
        )

    def __repr__(self) -> str:
        floor = "unknown" if self._floor is None else f"{self._floor:.1f} dBFS"
        return (
            f"<CalibrationGate calibrated={self.calibrated} noise_floor={floor} "
            f"echo_delay_frames={self._delay}>"
        )
