"""The calibration gate's echo path learner: how late and how loud the bot comes back.

While the bot talks, :class:`EchoPath` correlates the caller channel's energy envelope with the
bot's over delays up to :attr:`~voiceguard.CalibrationConfig.max_echo_delay`, and keeps the delay
and the echo return loss (how many dB quieter the echo is than the bot) up to date. From them it
predicts the echo level of any stretch of the caller's channel (:meth:`EchoPath.bound`).
"""

from __future__ import annotations

import math
from typing import Final, Literal, final

import numpy as np
import numpy.typing as npt

from voiceguard.config import CalibrationConfig
from voiceguard.core.guards._line import (
    BLOCK,
    BOT_ACTIVE_DBFS,
    MASK,
    LineHistory,
    frames_of,
    window,
)

__all__ = ("EchoPath", "line_without_caller", "median", "running_max")

_ECHO_WINDOW: Final = 100  # frames of history for one echo-path update (2 s)
_ECHO_CONVERGED: Final = 0.35  # correlation needed to trust the delay estimate
#: An echo is never louder than the audio it echoes (a passive line only loses level): a block
#: whose apparent echo return loss is below this (dB) is the caller talking over the bot, and the
#: echo path does not learn from it.
_MIN_ECHO_LOSS_DB: Final = 0.0
_ECHO_DISTINCT: Final = 0.2  # ... and how far the peak must stand above the median lag
#: Spread (dB) between the quartiles of an echo's loss beyond which it is bound by its louder
#: returns (see :func:`_return_loss`). Chosen on the tuning corpus (4 and 6 tried, with the lower
#: quartile or the lower decile as the bound: 6 and the quartile gave the fewest errors).
_WIDE_LOSS_DB: Final = 6.0


def line_without_caller(floor: float, echo: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """What the line carries without the caller (dBFS): the noise floor plus the echo."""
    return np.asarray(
        10.0 * np.log10(10.0 ** (floor / 10.0) + 10.0 ** (echo / 10.0)), dtype=np.float64
    )


def median(values: npt.NDArray[np.float64]) -> float:
    """``numpy.median`` of a non-empty 1-D array without NaN, with less overhead (same value)."""
    half = values.size // 2
    if values.size % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2.0)


def row_medians(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``numpy.nanmedian(values, axis=1)`` of a 2-D array: each row's median of its values that
    are not NaN (NaN for a row of NaN only), the same values at a tenth of the cost (no
    per-row Python loop)."""
    ordered = np.sort(values, axis=1)  # NaN sort last
    count = np.count_nonzero(~np.isnan(values), axis=1)
    rows = np.arange(values.shape[0])
    low = ordered[rows, np.maximum((count - 1) // 2, 0)]
    high = ordered[rows, np.maximum(count // 2, 0)]
    out = np.where(count % 2 == 1, high, (low + high) / 2.0)
    out[count == 0] = np.nan
    return np.asarray(out, dtype=np.float64)


def running_max(values: npt.NDArray[np.float64], span: int) -> npt.NDArray[np.float64]:
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
class EchoPath:
    """The echo delay and return loss of one call's line, learnt from its two envelopes.

    Args:
        config: The gate's configuration (``max_echo_delay``, ``unknown_echo_return_loss_db``).
        line: The call's history, read only.

    Attributes:
        max_lag: The longest delay searched, in frames.
        delay: The echo delay in frames, or ``None`` while unknown.
        erl: The echo return loss (dB) at that delay, or ``None`` while unknown.
        erl_any: The echo return loss (dB) seen at any delay (a rougher estimate, known earlier),
            or ``None``.
        confidence: Correlation (0 to 1) behind the delay estimate.
    """

    __slots__ = (
        "_corr",
        "_line",
        "_unknown_erl",
        "confidence",
        "delay",
        "erl",
        "erl_any",
        "max_lag",
    )

    def __init__(self, config: CalibrationConfig, line: LineHistory) -> None:
        self._line = line
        self._unknown_erl = config.unknown_echo_return_loss_db
        self._corr: npt.NDArray[np.float64] | None = None
        self.max_lag = frames_of(config.max_echo_delay)
        self.delay: int | None = None
        self.erl: float | None = None
        self.erl_any: float | None = None
        self.confidence = 0.0

    def update(self, floor: float) -> None:
        """At a block boundary: learn from the last 2 s if it is time and the bot talked."""
        line = self._line
        n = line.in_count
        every = 2 * BLOCK if self.delay is None else 3 * BLOCK  # slower once converged
        if (
            n % every == 0
            and n - line.last_bot_frame <= _ECHO_WINDOW
            and n >= 25
            # The caller talking over the bot says nothing of the echo; taken for it, their
            # speech would become an echo path that hides them for the rest of the call.
            and not line.caller_within(n - _ECHO_WINDOW - self.max_lag)
        ):
            self._learn(n, floor)

    def _learn(self, n: int, floor: float) -> None:
        """Correlate the inbound and outbound energy envelopes to find the echo delay and loss."""
        line = self._line
        width = min(n, _ECHO_WINDOW)
        lag = self.max_lag
        inbound = window(line.in_db, n, width)
        outbound = window(line.out_db, n, width + lag)
        x = np.maximum(inbound, floor + 3.0)
        y = np.maximum(outbound, BOT_ACTIVE_DBFS)
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
        ref_any = running_max(outbound, lag + 1)[-width:]
        # The bot at each inbound frame's own time: an echo sounds while the bot talks; energy
        # that comes only once the bot has stopped is the caller answering it.
        concurrent = outbound[-width:] > BOT_ACTIVE_DBFS
        block_any = _loss(ref_any, inbound, lag, floor, concurrent)
        corr = (
            (dots / np.maximum(row_norm * x_norm, 1e-9))[::-1]  # index = delay
            if x_norm >= 1e-9
            else None
        )
        # Energy heard while the bot talks is its echo only if it follows the bot's envelope at
        # some delay: otherwise it is the caller talking over the bot (double talk), and taking
        # it for echo would hide the caller's speech behind it for the rest of the call. A peak
        # at the far edge of the searched delays, or one that does not stand out, is not a
        # delay: it is what a caller who answers right after the bot looks like.
        echo_like = corr is not None and _located(corr)
        if (
            block_any is not None
            and block_any[1] != "after"
            and block_any[0] >= _MIN_ECHO_LOSS_DB
            and (block_any[1] == "bound" or echo_like)
        ):
            loss = block_any[0]
            self.erl_any = loss if self.erl_any is None else 0.7 * self.erl_any + 0.3 * loss
        if corr is None:
            return
        # Learn fast until the delay is known, then slowly: a block of double talk must not
        # move a delay that many blocks agreed on.
        rate = 0.3 if self.delay is None else 0.1
        self._corr = corr if self._corr is None else (1 - rate) * self._corr + rate * corr
        delay = int(np.argmax(self._corr))
        if self.delay is not None and self._corr[delay] < self._corr[self.delay] + 0.05:
            delay = self.delay  # hysteresis: keep the current delay unless clearly beaten
        self.confidence = float(self._corr[delay])
        if delay >= len(self._corr) - 1:
            # A maximum at the far edge of the searched range is not a located peak: it is what
            # a caller who answers right after the bot looks like (their speech follows the bot
            # by about the longest delay searched). A real echo path lies inside the range.
            return
        if self.confidence < _ECHO_CONVERGED or (
            self.confidence - median(self._corr) < _ECHO_DISTINCT
        ):
            return
        measured = _loss(self._reference(n, width, delay), inbound, 2, floor, concurrent)
        if measured is not None and measured[1] == "after":
            # What follows the bot at that delay comes once it has stopped: the caller's
            # answer, not an echo path.
            return
        block = None if measured is None else measured[0]
        if block is not None and block < _MIN_ECHO_LOSS_DB:
            # Louder than the bot itself: that is the caller talking over it, not its echo.
            return
        self.delay = delay
        if block is not None:
            self.erl = block if self.erl is None else 0.7 * self.erl + 0.3 * block

    def _reference(self, end: int, width: int, delay: int) -> npt.NDArray[np.float64]:
        """Outbound energy one echo delay earlier, widened by a frame each side (dB)."""
        out = window(self._line.out_db, end - delay + 1, width + 2)
        return np.maximum(np.maximum(out[:-2], out[1:-1]), out[2:])

    def bound(self, end: int, width: int) -> npt.NDArray[np.float64]:
        """Predicted echo level (dBFS) of the *width* frames before *end*."""
        if self.delay is not None and self.erl is not None:
            return self._reference(end, width, self.delay) - self.erl
        out = window(self._line.out_db, end, width + self.max_lag)
        ref_any = running_max(out, self.max_lag + 1)[-width:]
        erl = self.erl_any if self.erl_any is not None else self._unknown_erl
        return ref_any - erl

    def frame_power(self, n: int) -> float:
        """The echo power (linear, relative to full scale) expected in the frame before *n*.

        0 when no bot audio can have reached it. Cheap: meant to be asked every frame.
        """
        ring = self._line.out_db
        if self.delay is not None and self.erl is not None:
            at = n - 1 - self.delay
            bot = max(ring[(at - 1) & MASK], ring[at & MASK], ring[(at + 1) & MASK])
            if bot > BOT_ACTIVE_DBFS:
                return float(10.0 ** ((bot - self.erl) / 10.0))
            return 0.0
        if n - 1 - self._line.last_bot_frame <= self.max_lag + 1:
            loudest = float(window(ring, n, self.max_lag + 1).max())
            erl = self.erl_any if self.erl_any is not None else self._unknown_erl
            return float(10.0 ** ((loudest - erl) / 10.0))
        return 0.0


def _loss(
    ref: npt.NDArray[np.float64],
    inbound: npt.NDArray[np.float64],
    spread: int,
    floor: float,
    concurrent: npt.NDArray[np.bool_],
) -> tuple[float, Literal["visible", "bound", "after"]] | None:
    """Echo return loss (dB) seen between a reference envelope and the inbound one.

    Uses the frames where the reference is bot speech. If the echo shows above the noise
    *floor* in enough of them (10: a canceller's residue shows only at the loud syllables), and
    mostly while the bot still talks (*concurrent*: the bot at each inbound frame's own time),
    the loss is the distance (:func:`_return_loss`); energy that shows mostly
    once the bot has stopped is the caller answering it (``(nan, "after")``): it says nothing
    of the echo's level, and its timing is not an echo delay. If the bot has
    talked long enough for its echo to arrive (*spread* frames of delay uncertainty plus 0.5 s)
    and the echo still does not show, the echo is under the noise floor, which bounds the loss.
    Otherwise there is nothing to learn from yet (``None``).
    """
    bot = ref > BOT_ACTIVE_DBFS
    talking = int(np.count_nonzero(bot))
    visible = bot & (inbound > floor + 6.0)
    shown = int(np.count_nonzero(visible))
    if shown >= 10:
        if np.count_nonzero(visible & concurrent) < 0.5 * shown:
            return math.nan, "after"
        return _return_loss(ref[visible] - inbound[visible]), "visible"
    if talking >= spread + 25 and shown < 0.15 * talking:
        return median(ref[bot]) - floor, "bound"
    return None


def _return_loss(losses: npt.NDArray[np.float64]) -> float:
    """The echo return loss (dB) of the frames where the echo showed.

    A plain echo comes back at a steady level: the median. An echo a handset or carrier
    canceller half removed (bursts at the bot's loud syllables, at a level that keeps changing),
    or one through clipping or an AGC, spreads over many dB: the median would put the predicted
    echo under its louder half, and each loud burst would then sound like the caller. Spread
    wider than :data:`_WIDE_LOSS_DB` between the quartiles, the echo is bound by its louder
    returns: the lower quartile of the loss.
    """
    size = losses.size
    low, high = (size - 1) // 4, (3 * (size - 1)) // 4
    part = np.partition(losses, (low, high))
    if float(part[high] - part[low]) > _WIDE_LOSS_DB:
        return float(part[low])
    return median(losses)


def _located(corr: npt.NDArray[np.float64]) -> bool:
    """True if *corr* (correlation per delay) peaks inside the range, high and distinct."""
    inside = corr[:-1]
    if inside.size == 0:
        return False
    peak = float(np.max(inside))
    return peak >= _ECHO_CONVERGED and peak - median(corr) >= _ECHO_DISTINCT
