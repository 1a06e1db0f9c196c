"""G.711 mu-law audio: conversion to and from linear PCM, and frame energy.

Twilio Media Streams carry 8 kHz, 8-bit G.711 mu-law audio in 20 ms frames of
:data:`FRAME_BYTES` bytes, one byte per sample. This module converts between mu-law and 16-bit
linear PCM with two lookup tables built once at import, bit-exact with the G.711 reference
implementation that Python's ``audioop`` module also follows (``ulaw2lin`` / ``lin2ulaw``, width
2), and measures frame energy in dBFS. Nothing here loops over samples in Python: a frame is
decoded or measured with one numpy table lookup.

Energy is the mean square of the samples relative to a full-scale square wave (``32768``): a
full-scale square wave is 0 dBFS, a full-scale sine about -3 dBFS. Digital silence is reported as
:data:`SILENCE_DBFS` rather than minus infinity, so the value is always a finite float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, final

import numpy as np
import numpy.typing as npt

from voiceguard.errors import LocalProtocolError

__all__ = (
    "FRAME_BYTES",
    "FRAME_SECONDS",
    "PCM24K",
    "PCMA",
    "PCMU",
    "SAMPLE_RATE",
    "SILENCE_DBFS",
    "AudioEncoding",
    "AudioFormat",
    "UlawConverter",
    "UlawUpsampler",
    "check_frame",
    "decode_alaw",
    "decode_ulaw",
    "encode_alaw",
    "encode_ulaw",
    "pcm_energy_dbfs",
    "power_to_dbfs",
    "ulaw_energy_dbfs",
    "ulaw_power",
)

#: Samples per second of Twilio's mu-law audio.
SAMPLE_RATE: Final = 8000
#: Bytes (and samples) in one 20 ms mu-law frame.
FRAME_BYTES: Final = 160
#: Duration of one frame in seconds.
FRAME_SECONDS: Final = FRAME_BYTES / SAMPLE_RATE
#: Level reported for digital silence (and the floor of every dBFS value in voiceguard).
SILENCE_DBFS: Final = -120.0

_FULL_SCALE: Final = 32768.0
_SILENCE_POWER: Final = 10.0 ** (SILENCE_DBFS / 10.0)
_BIAS: Final = 0x84
_CLIP: Final = 8159  # largest 14-bit magnitude the encoder represents


def _build_decode_table() -> npt.NDArray[np.int16]:
    """Decode table of G.711 (the reference ``ulaw2linear``), one entry per mu-law byte."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    mantissa = u & 0x0F
    exponent = (u >> 4) & 0x07
    t = ((mantissa << 3) + _BIAS) << exponent
    linear = np.where(u & 0x80, _BIAS - t, t - _BIAS)
    return linear.astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    """Encode table indexed by a 16-bit sample reinterpreted as unsigned (``x & 0xFFFF``).

    Follows the reference ``linear2ulaw`` on the 14 most significant bits, as ``audioop`` does:
    the magnitude is clipped to 8159, biased by 33, and split into a segment and 4 mantissa bits.
    """
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm) >> 2  # arithmetic shift to 14 bits
    negative = pcm < 0
    magnitude = np.minimum(np.where(negative, -pcm, pcm), _CLIP) + (_BIAS >> 2)
    # Segment: number of the highest set bit above bit 5 (segment ends 0x3F, 0x7F, ..., 0x1FFF).
    segment = np.zeros_like(magnitude)
    for seg, end in enumerate((0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)):
        segment = np.where(magnitude > end, seg + 1, segment)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)  # out of range: the maximum
    mask = np.where(negative, 0x7F, 0xFF)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


#: Decoded value (16-bit linear PCM) of each of the 256 mu-law bytes.
_DECODE: Final = _build_decode_table()
_DECODE.flags.writeable = False
#: mu-law byte of each 16-bit sample, indexed by ``sample & 0xFFFF``.
_ENCODE: Final = _build_encode_table()
_ENCODE.flags.writeable = False
#: Square of each decoded value, relative to full scale (so a frame's mean is its power).
_POWER: Final = (_DECODE.astype(np.float64) / _FULL_SCALE) ** 2
_POWER.flags.writeable = False


def check_frame(frame: object, *, what: str = "frame", multiple: int = FRAME_BYTES) -> int:
    """Check that *frame* is mu-law audio of a whole number of frames; return its length.

    Args:
        frame: The object to check; ``bytes``, ``bytearray`` or ``memoryview`` are accepted.
        what: How to name the frame in the error message (e.g. ``"inbound frame"``).
        multiple: The length must be a positive multiple of this many bytes.

    Returns:
        The length of *frame* in bytes (which is also its length in samples).

    Raises:
        TypeError: If *frame* is not a bytes-like object.
        ValueError: If its length is zero or not a multiple of *multiple*.
    """
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"{what} must be mu-law bytes (bytes, bytearray or memoryview), "
            f"not {type(frame).__name__}"
        )
    size = frame.nbytes if isinstance(frame, memoryview) else len(frame)
    if size == 0 or size % multiple:
        raise ValueError(
            f"{what} has {size} bytes; expected a positive multiple of {multiple} "
            f"({multiple} bytes = {multiple * 1000 // SAMPLE_RATE} ms of 8 kHz mu-law)"
        )
    return size


def decode_ulaw(data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """Decode mu-law bytes to 16-bit linear PCM samples.

    Args:
        data: mu-law audio, one byte per sample (any length).

    Returns:
        A new ``int16`` array with one sample per input byte.

    Raises:
        TypeError: If *data* is not bytes-like.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"mu-law data must be bytes-like, not {type(data).__name__}")
    return _DECODE[np.frombuffer(data, dtype=np.uint8)]


def encode_ulaw(samples: npt.ArrayLike) -> bytes:
    """Encode 16-bit linear PCM samples to mu-law bytes.

    Args:
        samples: Integer samples in ``-32768 .. 32767`` (an ``int16`` array, or anything numpy
            converts to integers in that range).

    Returns:
        One mu-law byte per sample.

    Raises:
        ValueError: If a sample is outside the 16-bit range, or the input is not integer.
    """
    array = np.asarray(samples)
    if array.dtype != np.int16:
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"PCM samples must be integers, not {array.dtype}")
        if array.size and (array.min() < -32768 or array.max() > 32767):
            raise ValueError("PCM samples must lie in -32768 .. 32767 (16-bit)")
        array = array.astype(np.int16)
    return _ENCODE[array.reshape(-1).view(np.uint16)].tobytes()


def power_to_dbfs(power: float) -> float:
    """Convert a mean-square power relative to full scale to dBFS.

    Args:
        power: Mean square of the samples divided by ``32768 ** 2``.

    Returns:
        ``10 * log10(power)``, never below :data:`SILENCE_DBFS`.
    """
    if power <= _SILENCE_POWER:
        return SILENCE_DBFS
    return 10.0 * math.log10(power)


def ulaw_power(frame: bytes | bytearray | memoryview) -> float:
    """Mean-square power of mu-law audio relative to full scale, without decoding to PCM.

    This is the per-frame hot path: one table lookup and one sum, no Python loop.

    Args:
        frame: mu-law audio, one byte per sample; must not be empty.

    Returns:
        The mean of the squared decoded samples divided by ``32768 ** 2`` (0 for silence).

    Raises:
        ValueError: If *frame* is empty.
    """
    codes = np.frombuffer(frame, dtype=np.uint8)
    if codes.size == 0:
        raise ValueError("cannot measure the energy of an empty frame")
    return float(_POWER[codes].sum()) / codes.size


def ulaw_energy_dbfs(frame: bytes | bytearray | memoryview) -> float:
    """Energy of mu-law audio in dBFS (see the module docstring for the reference level).

    Args:
        frame: mu-law audio, one byte per sample; must not be empty.

    Returns:
        The energy in dBFS, at least :data:`SILENCE_DBFS`.
    """
    return power_to_dbfs(ulaw_power(frame))


def pcm_energy_dbfs(samples: npt.ArrayLike) -> float:
    """Energy of 16-bit linear PCM samples in dBFS.

    Args:
        samples: Integer or float samples on the 16-bit scale; must not be empty.

    Returns:
        The energy in dBFS, at least :data:`SILENCE_DBFS`.

    Raises:
        ValueError: If *samples* is empty.
    """
    array = np.asarray(samples, dtype=np.float64)
    if array.size == 0:
        raise ValueError("cannot measure the energy of an empty frame")
    scaled = array / _FULL_SCALE
    return power_to_dbfs(float(np.dot(scaled.ravel(), scaled.ravel())) / array.size)


def _build_alaw_decode_table() -> npt.NDArray[np.int16]:
    """G.711 A-law: the 16-bit value of each of the 256 codes (ITU-T G.711, as audioop's)."""
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(
        seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0))
    )
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ALAW_DECODE: Final = _build_alaw_decode_table()
_ALAW_DECODE.flags.writeable = False
_ALAW_ORDER: Final = np.argsort(_ALAW_DECODE, kind="stable")
_ALAW_SORTED: Final = _ALAW_DECODE[_ALAW_ORDER].astype(np.int32)


def decode_alaw(data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """Decode G.711 A-law bytes to 16-bit linear PCM samples (one sample per byte).

    .. versionadded:: 0.2.0
    """
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def encode_alaw(samples: npt.ArrayLike) -> bytes:
    """Encode 16-bit linear PCM samples to A-law, each to the nearest code.

    Close to, but not bit-exact with, G.711 at segment boundaries.

    .. versionadded:: 0.2.0
    """
    values = np.asarray(samples).astype(np.int32).reshape(-1)
    index = np.clip(np.searchsorted(_ALAW_SORTED, values), 1, 255)
    left = _ALAW_SORTED[index - 1]
    right = _ALAW_SORTED[index]
    nearest = np.where(values - left <= right - values, index - 1, index)
    return _ALAW_ORDER[nearest].astype(np.uint8).tobytes()


# ============================================================================================
# Audio formats of a Realtime session

#: The three audio encodings of the GA API (``session.audio.*.format.type``).
AudioEncoding: TypeAlias = Literal["audio/pcmu", "audio/pcma", "audio/pcm"]

_G711_RATE: Final = 8000
_PCM_RATE: Final = 24000


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioFormat:
    """An audio format of a Realtime session, in GA terms.

    The beta names map as follows: ``"g711_ulaw"`` is :data:`PCMU`, ``"g711_alaw"`` is :data:`PCMA`
    and ``"pcm16"`` is :data:`PCM24K`.

    Attributes:
        encoding: ``"audio/pcmu"`` (G.711 µ-law), ``"audio/pcma"`` (G.711 A-law) or
            ``"audio/pcm"`` (16-bit little-endian PCM).
        sample_rate: Samples per second: 8000 for G.711; 24000 for PCM.

    Raises:
        LocalProtocolError: If the encoding is unknown, G.711 is not at 8000 Hz, or the PCM rate is
            not a positive multiple of 1000 Hz.
    """

    encoding: AudioEncoding
    sample_rate: int

    def __post_init__(self) -> None:
        rate: object = self.sample_rate  # checked at run time: callers may not be type-checked
        if not isinstance(rate, int) or isinstance(rate, bool):
            raise LocalProtocolError(f"sample_rate must be an integer, got {rate!r:.80}")
        if self.encoding in ("audio/pcmu", "audio/pcma"):
            if rate != _G711_RATE:
                raise LocalProtocolError(
                    f"{self.encoding} is always {_G711_RATE} Hz, got sample_rate={rate}"
                )
        elif self.encoding == "audio/pcm":
            if rate <= 0 or rate % 1000:
                raise LocalProtocolError(
                    f"audio/pcm sample_rate must be a positive multiple of 1000 Hz, got {rate}"
                )
        else:
            raise LocalProtocolError(
                f"unknown audio encoding {self.encoding!r}; "
                "expected 'audio/pcmu', 'audio/pcma' or 'audio/pcm'"
            )

    @property
    def sample_width(self) -> int:
        """The number of bytes per sample, 1 for G.711 and 2 for 16-bit PCM."""
        return 2 if self.encoding == "audio/pcm" else 1

    @property
    def bytes_per_ms(self) -> int:
        """The number of audio bytes per ms, 8 for G.711 at 8 kHz and 48 for PCM at 24 kHz."""
        return self.sample_rate // 1000 * self.sample_width

    def to_wire(self) -> dict[str, Any]:
        """The GA format object, e.g. ``{"type": "audio/pcmu"}`` or
        ``{"type": "audio/pcm", "rate": 24000}``."""
        if self.encoding == "audio/pcm":
            return {"type": self.encoding, "rate": self.sample_rate}
        return {"type": self.encoding}

    def to_beta(self) -> str:
        """The beta format string: ``"g711_ulaw"``, ``"g711_alaw"`` or ``"pcm16"``.

        Raises:
            LocalProtocolError: For PCM at a rate other than 24000 Hz (the beta API has none).
        """
        if self.encoding == "audio/pcmu":
            return "g711_ulaw"
        if self.encoding == "audio/pcma":
            return "g711_alaw"
        if self.sample_rate != _PCM_RATE:
            raise LocalProtocolError(
                f"the beta API has PCM only at {_PCM_RATE} Hz, got {self.sample_rate} Hz"
            )
        return "pcm16"


#: The G.711 µ-law format at 8 kHz, which Twilio speaks; use it both ways for a pass-through
#: bridge.
PCMU: Final = AudioFormat(encoding="audio/pcmu", sample_rate=_G711_RATE)
#: The G.711 A-law format at 8 kHz.
PCMA: Final = AudioFormat(encoding="audio/pcma", sample_rate=_G711_RATE)
#: The 16-bit PCM format at 24 kHz (the only PCM rate the API offers).
PCM24K: Final = AudioFormat(encoding="audio/pcm", sample_rate=_PCM_RATE)


# ============================================================================================
# Any session format to 8 kHz mu-law, as a stream

#: Taps of the anti-aliasing filter used when PCM is brought down to 8 kHz.
_DECIMATION_TAPS: Final = 31


def _lowpass(factor: int) -> npt.NDArray[np.float64]:
    """A windowed-sinc low-pass at 3.6 kHz for PCM at ``8000 * factor`` Hz (unit DC gain)."""
    n = np.arange(_DECIMATION_TAPS) - (_DECIMATION_TAPS - 1) / 2
    cutoff = 3600.0 / (8000.0 * factor)  # cycles per sample
    taps: npt.NDArray[np.float64] = 2 * cutoff * np.sinc(2 * cutoff * n)
    taps *= np.hamming(_DECIMATION_TAPS)
    return taps / float(taps.sum())


@final
class UlawConverter:
    """Turns a stream of audio in a session's format into 8 kHz mu-law, chunk by chunk.

    What the calibration gate measures is Twilio's 8 kHz mu-law. A bot whose model session is
    16-bit PCM at 24 kHz (most bots that resample the phone's audio) or G.711 A-law still gets its
    audio judged: feed each chunk as it goes by and measure what comes out. PCM is low-pass
    filtered before it is decimated (no aliasing into the band the gate measures), and the filter
    and the sample phase carry over from one chunk to the next, so chunk boundaries leave no trace.
    A trailing odd byte of 16-bit PCM waits for the next chunk.

    Args:
        fmt: The format of the audio fed in.

    .. versionadded:: 0.2.0
    """

    __slots__ = ("_factor", "_format", "_history", "_phase", "_rest", "_taps")

    def __init__(self, fmt: AudioFormat) -> None:
        self._format = fmt
        self._rest = b""
        self._phase = 0
        self._factor = max(1, fmt.sample_rate // SAMPLE_RATE)
        self._taps = _lowpass(self._factor) if self._factor > 1 else None
        self._history = np.zeros(_DECIMATION_TAPS - 1, dtype=np.float64)

    @property
    def format(self) -> AudioFormat:
        """The format of the audio fed in."""
        return self._format

    def feed(self, audio: bytes | bytearray | memoryview) -> bytes:
        """Convert the next chunk of the stream; returns the mu-law audio it completes."""
        encoding = self._format.encoding
        if encoding == "audio/pcmu":
            return bytes(audio)
        if encoding == "audio/pcma":
            return encode_ulaw(decode_alaw(audio))
        data = self._rest + bytes(audio)
        usable = len(data) - len(data) % 2
        self._rest = data[usable:]
        pcm = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64)
        if not pcm.size:
            return b""
        if self._taps is None:
            return encode_ulaw(pcm.astype(np.int16))
        padded = np.concatenate((self._history, pcm))
        self._history = padded[-(_DECIMATION_TAPS - 1) :]
        filtered = np.convolve(padded, self._taps, mode="valid")
        picked = filtered[self._phase :: self._factor]
        self._phase = (self._phase - filtered.size) % self._factor
        return encode_ulaw(np.clip(np.rint(picked), -32768, 32767).astype(np.int16))


@final
class UlawUpsampler:
    """Turns a stream of 8 kHz mu-law into 16-bit little-endian PCM at a multiple of 8 kHz.

    The other way from :class:`UlawConverter`: for a phone provider that plays linear PCM at
    16 kHz (Vonage), each sample is followed by ``factor - 1`` zeros and the result low-pass
    filtered (the same windowed sinc, scaled by the factor), the filter carrying over from one
    chunk to the next. At 8 kHz the mu-law is only expanded.

    Args:
        sample_rate: The PCM's rate: 8000, 16000, 24000, ...

    Raises:
        LocalProtocolError: If *sample_rate* is not a positive multiple of 8000.
    """

    __slots__ = ("_factor", "_history", "_taps")

    def __init__(self, sample_rate: int) -> None:
        rate: object = sample_rate
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0 or rate % SAMPLE_RATE:
            raise LocalProtocolError(
                f"sample_rate must be a positive multiple of {SAMPLE_RATE} Hz, got {rate!r:.80}"
            )
        self._factor = rate // SAMPLE_RATE
        self._taps = _lowpass(self._factor) * self._factor if self._factor > 1 else None
        self._history = np.zeros(_DECIMATION_TAPS - 1, dtype=np.float64)

    def feed(self, ulaw: bytes | bytearray | memoryview) -> bytes:
        """Convert the next chunk of the stream; returns its PCM, ``factor`` samples for each
        mu-law byte."""
        samples = decode_ulaw(ulaw)
        if self._taps is None or not samples.size:
            return samples.astype("<i2").tobytes()
        stuffed = np.zeros(samples.size * self._factor, dtype=np.float64)
        stuffed[:: self._factor] = samples
        padded = np.concatenate((self._history, stuffed))
        self._history = padded[-(_DECIMATION_TAPS - 1) :]
        filtered = np.convolve(padded, self._taps, mode="valid")
        return np.clip(np.rint(filtered), -32768, 32767).astype("<i2").tobytes()

    def reset(self) -> None:
        """Forget the stream so far (after the audio was cleared)."""
        self._history[:] = 0.0
