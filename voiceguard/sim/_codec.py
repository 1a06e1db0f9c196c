"""Conversions between the Realtime session audio formats and 8 kHz mu-law (private).

The simulator thinks in 8 kHz mu-law (what Twilio carries and what
:class:`~voiceguard.sim.vad.EnergyVad` consumes). A session may use ``audio/pcma`` or 24 kHz
``audio/pcm``; these helpers convert at the edge. The A-law encoder picks the nearest code, which
is close to but not bit-exact with G.711 at segment boundaries; good enough for a simulator.
"""

from __future__ import annotations

import numpy as np

from voiceguard.audio import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from voiceguard.protocol import AudioFormat

__all__ = ("from_ulaw", "ms_of", "to_ulaw")


def ms_of(num_bytes: int, fmt: AudioFormat) -> float:
    """Duration in ms of *num_bytes* of audio in *fmt*."""
    return num_bytes / fmt.bytes_per_ms


def to_ulaw(audio: bytes, fmt: AudioFormat) -> bytes:
    """Convert whole samples of *fmt* audio to 8 kHz mu-law (a trailing odd byte is dropped)."""
    if fmt.encoding == "audio/pcmu":
        return audio
    if fmt.encoding == "audio/pcma":
        return encode_ulaw(decode_alaw(audio))
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
        return encode_alaw(pcm)
    factor = max(1, fmt.sample_rate // 8000)
    return np.repeat(pcm, factor).astype("<i2").tobytes()
