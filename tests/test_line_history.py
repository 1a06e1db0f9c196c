"""The gate's line history computes energies a block at a time: readers see frame-by-frame values.

A reference computes each frame's energy on its own, in the order the frames were pushed (the
bot's frames placed at the caller's frame count or after the previous bot frame, the slot half a
ring ahead recycled at each caller frame). The history must agree with it exactly, bit for bit,
whenever it is read, whatever the mix of pushes and reads.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from voiceguard.audio import FRAME_BYTES, SILENCE_DBFS, decode_ulaw
from voiceguard.core.guards._echo_path import row_medians
from voiceguard.core.guards._line import BOT_ACTIVE_DBFS, MASK, RING, LineHistory

_POWER = (decode_ulaw(bytes(range(256))).astype(np.float64) / 32768.0) ** 2
_TINY = 10.0 ** (SILENCE_DBFS / 10.0)


def _db(frame: bytes) -> float:
    power = float(_POWER.take(np.frombuffer(frame, dtype=np.uint8)).sum()) * (1.0 / FRAME_BYTES)
    return 10.0 * math.log10(power) if power > _TINY else SILENCE_DBFS


class Reference:
    """Frame by frame, as the history computed its envelopes before it batched them."""

    def __init__(self) -> None:
        self.in_db = np.full(RING, SILENCE_DBFS)
        self.out_db = np.full(RING, SILENCE_DBFS)
        self.in_count = 0
        self.cursor = 0
        self.last_bot = -(10**9)
        self.rest = b""

    def inbound(self, frame: bytes) -> None:
        n = self.in_count
        self.in_db[n & MASK] = _db(frame)
        self.out_db[(n + RING // 2) & MASK] = SILENCE_DBFS
        self.in_count = n + 1

    def outbound(self, audio: bytes) -> None:
        data = self.rest + audio
        whole = len(data) - len(data) % FRAME_BYTES
        self.rest = data[whole:]
        slot = max(self.cursor, self.in_count)
        for start in range(0, whole, FRAME_BYTES):
            db = _db(data[start : start + FRAME_BYTES])
            self.out_db[slot & MASK] = db
            if db > BOT_ACTIVE_DBFS:
                self.last_bot = slot
            slot += 1
        self.cursor = slot


def _frame(rng: np.random.Generator, kind: int) -> bytes:
    if kind == 0:
        return bytes([0xFF]) * FRAME_BYTES  # digital silence
    if kind == 1:  # quiet line noise
        return rng.integers(0xF0, 0x100, FRAME_BYTES, dtype=np.uint8).tobytes()
    return rng.integers(0, 256, FRAME_BYTES, dtype=np.uint8).tobytes()  # loud


@pytest.mark.parametrize("seed", range(6))
def test_every_read_sees_the_frame_by_frame_energies(seed: int) -> None:
    rng = np.random.default_rng(seed)
    line, ref = LineHistory(), Reference()
    checks = 0
    for _step in range(3000):
        action = rng.integers(0, 10)
        if action < 5:
            frame = _frame(rng, int(rng.integers(0, 3)))
            line.push_inbound(frame)
            ref.inbound(frame)
        elif action < 8:
            # The bot's audio: mostly whole frames as they play, sometimes odd lengths or a
            # burst of seconds at once (far ahead of the caller's frames).
            shape = rng.integers(0, 10)
            frames = 1 if shape < 7 else (int(rng.integers(2, 8)) if shape < 9 else 300)
            audio = b"".join(_frame(rng, int(rng.integers(0, 3))) for _ in range(frames))
            if shape == 8:
                audio = audio[: int(rng.integers(1, len(audio)))]
            line.push_outbound(audio)
            ref.outbound(audio)
        else:
            which = rng.integers(0, 3)
            if which == 0:
                assert np.array_equal(line.in_db, ref.in_db)
            elif which == 1:
                assert np.array_equal(line.out_db, ref.out_db)
            else:
                assert line.last_bot_frame == ref.last_bot
            checks += 1
        assert line.in_count == ref.in_count
        assert line.out_cursor == ref.cursor
    assert checks > 100
    assert np.array_equal(line.in_db, ref.in_db)
    assert np.array_equal(line.out_db, ref.out_db)
    assert line.last_bot_frame == ref.last_bot


def test_the_latest_caller_frames_power_is_there_before_its_block_is_complete() -> None:
    line = LineHistory()
    loud = bytes(range(256))[:FRAME_BYTES]
    line.push_inbound(bytes([0xFF]) * FRAME_BYTES)
    line.push_inbound(loud)
    power = float(_POWER.take(np.frombuffer(loud, dtype=np.uint8)).sum()) * (1.0 / FRAME_BYTES)
    assert line.last_power() == power
    assert line.in_db[1] == _db(loud)


def test_row_medians_are_numpys_nanmedian() -> None:
    """The same values (a zero may come out with the other sign, which compares equal)."""
    rng = np.random.default_rng(11)
    for _case in range(400):
        rows, cols = int(rng.integers(1, 45)), int(rng.integers(1, 120))
        values = np.round(rng.normal(-30.0, 15.0, size=(rows, cols)), int(rng.integers(0, 4)))
        values[rng.random((rows, cols)) < rng.random()] = np.nan
        values = values[np.count_nonzero(~np.isnan(values), axis=1) > 0]
        if values.size == 0:
            continue
        expected = np.nanmedian(values, axis=1)
        assert np.array_equal(row_medians(values), expected)
    only_nan = np.array([[np.nan, np.nan], [1.0, np.nan]])
    assert np.isnan(row_medians(only_nan)[0]) and row_medians(only_nan)[1] == 1.0
