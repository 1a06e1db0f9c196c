"""What the calibration gate heard and played: the last 10 s of both directions of one call.

:class:`LineHistory` keeps the energy envelope (dBFS per 20 ms frame) of the caller's channel and
of the bot's audio as it was handed to the phone, on one frame clock (the count of caller frames),
and the caller's last raw frames for the spectral check. The learners and the judgements of the
gate read windows of it (:func:`window`); only the gate writes to it.
"""

from __future__ import annotations

import math
from typing import Final, final

import numpy as np
import numpy.typing as npt

from voiceguard.audio import FRAME_BYTES, FRAME_SECONDS, SILENCE_DBFS, decode_ulaw

__all__ = (
    "BLOCK",
    "BOT_ACTIVE_DBFS",
    "DECODE",
    "MASK",
    "RING",
    "LineHistory",
    "frames_of",
    "window",
)

RING: Final = 512  # frames of history kept (10.24 s); a power of two
MASK: Final = RING - 1
BLOCK: Final = 5  # frames between noise-floor and echo-path updates (100 ms)
BOT_ACTIVE_DBFS: Final = -60.0  # outbound frames louder than this are bot speech

#: The linear sample of each mu-law code, and its power relative to full scale (the tables of
#: :mod:`voiceguard.audio`, built from its decoder).
DECODE: Final = decode_ulaw(bytes(range(256)))
DECODE.flags.writeable = False
_POWER: Final = (DECODE.astype(np.float64) / 32768.0) ** 2
_POWER.flags.writeable = False
_INV_FRAME: Final = 1.0 / FRAME_BYTES
#: ``ndarray.sum`` without its Python-level wrapper (the same reduction, the same result).
_SUM: Final = np.add.reduce
_TINY: Final = 10.0 ** (SILENCE_DBFS / 10.0)

_RAW_RING: Final = 128  # raw mu-law frames kept for the spectral check (2.56 s); a power of two
_RAW_MASK: Final = _RAW_RING - 1
_SPECTRUM_FRAMES: Final = 8  # at most this many of the latest speech frames are analysed


def _codes(frame: bytes) -> npt.NDArray[np.uint8]:
    return np.frombuffer(frame, dtype=np.uint8)


def frames_of(seconds: float) -> int:
    """How many whole frames (at least one) make *seconds*."""
    return max(1, round(seconds / FRAME_SECONDS))


def window(ring: npt.NDArray[np.float64], end: int, length: int) -> npt.NDArray[np.float64]:
    """The *length* frames of *ring* ending before absolute frame *end* (oldest first)."""
    start = (end - length) & MASK
    if start + length <= RING:
        return ring[start : start + length]
    return np.concatenate((ring[start:], ring[: (start + length) & MASK]))


@final
class LineHistory:
    """The energy envelopes of both directions of a call, and the caller's last raw frames.

    Frame ``n`` of :attr:`in_db` is the ``n``-th caller frame; frame ``n`` of :attr:`out_db` is
    the bot audio handed to the phone while that caller frame arrived (silence when none was).
    Absolute frame numbers index both rings modulo :data:`RING`.

    The caller's frame energies are computed a block of :data:`BLOCK` frames at a time (one pass
    of numpy over the block rather than one per 20 ms frame), and whenever :attr:`in_db` or
    :meth:`last_power` is read before a block is complete: a reader always sees every frame
    pushed, with the values frame-by-frame computing gives. The bot's frames are computed as
    they come (a suppressed segment's watch reads them every frame).

    Attributes:
        out_db: Bot frame energies (dBFS) on the caller's frame clock, a ring of :data:`RING`.
        in_count: Caller frames seen.
        out_count: Bot frames seen.
        out_cursor: The frame the next bot frame goes to, at the earliest.
        last_bot_frame: The latest frame the bot's audio was louder than :data:`BOT_ACTIVE_DBFS`.
        caller_from: The first frame of the latest speech the gate judged to be the caller's, or
            ``None``.
        caller_to: The frame that speech ended at, or ``None`` while it goes on.
    """

    __slots__ = (
        "_in_db",
        "_last_power",
        "_out_rest",
        "_pending",
        "_raw",
        "caller_from",
        "caller_to",
        "in_count",
        "last_bot_frame",
        "out_count",
        "out_cursor",
        "out_db",
    )

    def __init__(self) -> None:
        self._in_db: npt.NDArray[np.float64] = np.full(RING, SILENCE_DBFS)
        self._pending = 0  # caller frames pushed whose energy is not computed yet
        self._last_power = 0.0
        self.out_db: npt.NDArray[np.float64] = np.full(RING, SILENCE_DBFS)
        self.in_count = 0
        self.out_count = 0
        self.out_cursor = 0
        self.last_bot_frame = -(10**9)
        self.caller_from: int | None = None
        self.caller_to: int | None = None
        self._out_rest = b""
        self._raw: list[bytes] = [b"\xff" * FRAME_BYTES] * _RAW_RING  # mu-law silence

    @property
    def in_db(self) -> npt.NDArray[np.float64]:
        """Caller frame energies (dBFS), a ring of :data:`RING` frames (read-only use)."""
        if self._pending:
            self._energies()
        return self._in_db

    def push_inbound(self, frame: bytes) -> None:
        """Record one caller frame of :data:`~voiceguard.audio.FRAME_BYTES` mu-law bytes."""
        n = self.in_count
        self._raw[n & _RAW_MASK] = frame
        self.out_db[(n + RING // 2) & MASK] = SILENCE_DBFS  # recycle the slot ahead
        self.in_count = n + 1
        self._pending += 1
        if self._pending == BLOCK:
            self._energies()

    def last_power(self) -> float:
        """The mean-square power (relative to full scale) of the latest caller frame."""
        if self._pending:
            self._energies()
        return self._last_power

    def _energies(self) -> None:
        """The energies of the caller frames pushed since the last time."""
        count, end = self._pending, self.in_count
        self._pending = 0
        ring, raw = self._in_db, self._raw
        if count == 1:  # read between blocks (a watched segment reads every frame)
            power = float(_SUM(_POWER.take(_codes(raw[(end - 1) & _RAW_MASK])))) * _INV_FRAME
            ring[(end - 1) & MASK] = 10.0 * math.log10(power) if power > _TINY else SILENCE_DBFS
            self._last_power = power
            return
        joined = b"".join([raw[i & _RAW_MASK] for i in range(end - count, end)])
        codes = np.frombuffer(joined, dtype=np.uint8).reshape(count, FRAME_BYTES)
        n = end - count
        log10 = math.log10
        power = 0.0
        for total in _SUM(_POWER.take(codes), axis=1).tolist():
            power = total * _INV_FRAME
            ring[n & MASK] = 10.0 * log10(power) if power > _TINY else SILENCE_DBFS
            n += 1
        self._last_power = power

    def push_outbound(self, audio: bytes | bytearray | memoryview) -> None:
        """Record the bot's audio as it is handed to the phone (any length; see the gate).

        Raises:
            TypeError: If *audio* is not bytes-like.
        """
        if type(audio) is bytes and len(audio) == FRAME_BYTES and not self._out_rest:
            # The hot path: one whole frame.
            power = float(_SUM(_POWER.take(_codes(audio)))) * _INV_FRAME
            slot = max(self.out_cursor, self.in_count)
            db = 10.0 * math.log10(power) if power > _TINY else SILENCE_DBFS
            self.out_db[slot & MASK] = db
            if db > BOT_ACTIVE_DBFS:
                self.last_bot_frame = slot
            self.out_count += 1
            self.out_cursor = slot + 1
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
        codes = np.frombuffer(data, dtype=np.uint8, count=whole).reshape(-1, FRAME_BYTES)
        slot = max(self.out_cursor, self.in_count)
        log10 = math.log10
        for total in _SUM(_POWER.take(codes), axis=1).tolist():
            power = total * _INV_FRAME
            db = 10.0 * log10(power) if power > _TINY else SILENCE_DBFS
            self.out_db[slot & MASK] = db
            if db > BOT_ACTIVE_DBFS:
                self.last_bot_frame = slot
            slot += 1
        self.out_count += whole // FRAME_BYTES
        self.out_cursor = slot

    def quietest_db(self) -> float:
        """The quietest caller frame of the history (dBFS): an upper bound of the noise floor
        (:data:`~voiceguard.audio.SILENCE_DBFS` before the first frame)."""
        if self.in_count == 0:
            return SILENCE_DBFS
        return float(window(self.in_db, self.in_count, min(self.in_count, RING)).min())

    def caller_spoke(self, onset: int) -> None:
        """The speech from frame *onset* on is the caller's, or may be (it is being judged):
        either way it teaches the echo path nothing, until :meth:`caller_cleared`."""
        self.caller_from = onset
        self.caller_to = None

    def caller_cleared(self) -> None:
        """The speech judged last was echo or noise after all: the echo path may learn from it."""
        self.caller_from = None
        self.caller_to = None

    def caller_ended(self) -> None:
        """The speech segment ended (``speech_stopped``): the caller's speech, if it was, too."""
        if self.caller_from is not None and self.caller_to is None:
            self.caller_to = self.in_count

    def caller_within(self, start: int) -> bool:
        """True if the caller's judged speech reaches into the frames from *start* on (speech
        whose end never came counts for one ring of history)."""
        if self.caller_from is None:
            return False
        end = self.caller_to if self.caller_to is not None else self.caller_from + RING
        return end > start and self.caller_from < self.in_count

    def speech_frames(self, evidence: npt.NDArray[np.bool_], end: int) -> npt.NDArray[np.uint8]:
        """The raw frames of the latest evidence frames of the window before *end*: one row
        per frame, each the frame before it and the frame itself (2 x 160 mu-law bytes).

        Args:
            evidence: One flag per frame of the window that ends before frame *end*.
            end: The absolute frame the window ends before.
        """
        index = np.flatnonzero(evidence)[-_SPECTRUM_FRAMES:] + (end - evidence.size)
        index = index[index > end - _RAW_RING]
        raw = self._raw
        joined = b"".join(raw[(i - 1) & _RAW_MASK] + raw[i & _RAW_MASK] for i in index.tolist())
        return np.frombuffer(joined, dtype=np.uint8).reshape(-1, 2 * FRAME_BYTES)
