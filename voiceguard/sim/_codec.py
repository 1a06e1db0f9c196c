"""Conversions between the Realtime session audio formats and 8 kHz mu-law (private).

The simulator thinks in 8 kHz mu-law (what Twilio carries and what
:class:`~voiceguard.sim.vad.EnergyVad` consumes). A session may use ``audio/pcma`` or 24 kHz
``audio/pcm``; these helpers convert at the edge. The A-law encoder picks the nearest code, which
is close to but not bit-exact with G.711 at segment boundaries; good enough for a simulator.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from voiceguard.audio import decode_ulaw, encode_ulaw
from voiceguard.protocol import AudioFormat

__all__ = ("from_ulaw", "ms_of", "to_ulaw")


def _alaw_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(
        seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0))
    )
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ALAW_DECODE: Final = _alaw_table()
_ALAW_ORDER: Final = np.argsort(_ALAW_DECODE, kind="stable")
_ALAW_SORTED: Final = _ALAW_DECODE[_ALAW_ORDER].astype(np.int32)


def _alaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    values = pcm.astype(np.int32)
    index = np.clip(np.searchsorted(_ALAW_SORTED, values), 1, 255)
    left = _ALAW_SORTED[index - 1]
    right = _ALAW_SORTED[index]
    nearest = np.where(values - left <= right - values, index - 1, index)
    return _ALAW_ORDER[nearest].astype(np.uint8).tobytes()


def ms_of(num_bytes: int, fmt: AudioFormat) -> float:
    """Duration in ms of *num_bytes* of audio in *fmt*."""
    return num_bytes / fmt.bytes_per_ms


def to_ulaw(audio: bytes, fmt: AudioFormat) -> bytes:
    """Convert whole samples of *fmt* audio to 8 kHz mu-law (a trailing odd byte is dropped)."""
    if fmt.encoding == "audio/pcmu":
        return audio
    if fmt.encoding == "audio/pcma":
        return encode_ulaw(_ALAW_DECODE[np.frombuffer(audio, dtype=np.uint8)])
    usable = len(audio) - len(audio) % 2
    pcm = np.frombuffer(audio[:usable], dtype="<i2")
    step = max(1, fmt.sample_rate // 8000)
    return encode_ulaw(pcm[::step].astype(np.int16))


def from_ulaw(audio: bytes, fmt: AudioFormat) -> bytes:
    """Convert 8 kHz mu-law to *fmt* (24 kHz PCM by repeating samples)."""
    if fmt.encoding == "audio/pcmu":
        return audio
    pcm = decode_ulaw(audio)
    if fmt.encoding == "audio/pcma":
        return _alaw_encode(pcm)
    factor = max(1, fmt.sample_rate // 8000)
    return np.repeat(pcm, factor).astype("<i2").tobytes()
