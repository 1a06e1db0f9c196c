"""Synthetic 8 kHz mu-law audio for the simulators: speech-like signals, noise, tones, silence.

We have no speech synthesizer here, and a test should not need one: the server VAD (and
:class:`~voiceguard.sim.vad.EnergyVad`, which emulates it) reacts to energy over time, not to
words. :func:`speech_like` makes voiced, formant-shaped syllables (about four a second,
with short dips between them that never last long enough to end a turn), which every energy VAD
takes for speech. Everything is deterministic for a given ``seed``.

All functions return whole 20 ms frames of mu-law bytes (160 bytes each), ready for a Twilio
``media`` payload or a Realtime ``audio/pcmu`` delta.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from voiceguard.audio import FRAME_BYTES, SAMPLE_RATE, decode_ulaw, encode_ulaw

__all__ = (
    "SILENCE_BYTE",
    "attenuate",
    "frames_for",
    "line_noise",
    "mix",
    "silence",
    "speech_like",
    "tone",
)

#: The mu-law byte of a zero sample.
SILENCE_BYTE: Final = 0xFF
_FULL_SCALE: Final = 32768.0


def frames_for(duration: float) -> int:
    """Number of 20 ms frames that cover *duration* seconds (rounded up, at least 0).

    Args:
        duration: Seconds of audio.

    Returns:
        The number of frames.

    Raises:
        ValueError: If *duration* is negative or not finite.
    """
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration = {duration!r}; allowed: a finite number of seconds >= 0")
    return math.ceil(round(duration * SAMPLE_RATE / FRAME_BYTES, 9))


def silence(duration: float) -> bytes:
    """Digital silence.

    Args:
        duration: Seconds (rounded up to whole 20 ms frames).

    Returns:
        mu-law bytes.
    """
    return bytes([SILENCE_BYTE]) * (frames_for(duration) * FRAME_BYTES)


def _scale_to(pcm: npt.NDArray[np.float64], level_dbfs: float) -> npt.NDArray[np.float64]:
    power = float(np.mean(pcm**2)) if pcm.size else 0.0
    if power <= 0.0:
        return pcm
    target = _FULL_SCALE * 10.0 ** (level_dbfs / 20.0)
    scaled: npt.NDArray[np.float64] = pcm * (target / math.sqrt(power))
    return scaled


def _to_ulaw(pcm: npt.NDArray[np.float64]) -> bytes:
    return encode_ulaw(np.clip(np.round(pcm), -32768, 32767).astype(np.int16))


def _band_noise(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """White noise band-limited to roughly 300-3400 Hz (a telephone voice band)."""
    white = rng.standard_normal(n + 64)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(white.size, d=1.0 / SAMPLE_RATE)
    # A voice-like tilt: flat from 300 Hz, falling above 1 kHz.
    shape = np.where(freqs < 300.0, 0.0, 1.0) / np.sqrt(1.0 + (freqs / 1000.0) ** 2)
    shaped = np.asarray(np.fft.irfft(spectrum * shape, n=white.size), dtype=np.float64)
    return shaped[32 : 32 + n]


#: Vowel-like formant pairs (F1, F2) in Hz; each syllable picks one.
_VOWELS: Final = ((730, 1090), (530, 1840), (270, 2290), (570, 840), (300, 870), (660, 1720))


def speech_like(
    duration: float,
    *,
    level_dbfs: float = -20.0,
    seed: int = 0,
    syllables_per_second: float = 4.0,
) -> bytes:
    """A speech-like signal: voiced syllables with a pitch, formants and a little breath.

    Each syllable is a harmonic series on a gliding pitch (90-220 Hz, as a voice), its harmonics
    weighted by two vowel formants chosen per syllable, plus 10 % breath noise, under a syllable
    envelope. Like speech, and unlike line noise or a click, its spectrum is far from flat and
    most of its energy lies in the voice band; a voice-activity detector and the calibration
    gate both take it for a talker. It is not intelligible.

    Args:
        duration: Seconds (rounded up to whole 20 ms frames).
        level_dbfs: RMS level over the whole signal, in dBFS (telephone speech is typically
            -25 to -15).
        seed: Seed of the pitch, vowels and breath noise; the same seed gives the same bytes.
        syllables_per_second: Syllable rate of the envelope.

    Returns:
        mu-law bytes.

    Raises:
        ValueError: If *duration* is negative or *syllables_per_second* is not positive.
    """
    if not syllables_per_second > 0:
        raise ValueError(f"syllables_per_second = {syllables_per_second!r}; allowed: a number > 0")
    n = frames_for(duration) * FRAME_BYTES
    if n == 0:
        return b""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    # Syllables: raised-cosine bursts whose dips keep 15% of the amplitude, with a little jitter
    # in the rate so the pattern is not a pure tone of the envelope.
    jitter = 1.0 + 0.15 * np.sin(2 * np.pi * 0.37 * t + rng.uniform(0, 2 * np.pi))
    phase = np.cumsum(jitter) * syllables_per_second / SAMPLE_RATE
    envelope = 0.15 + 0.85 * (0.5 - 0.5 * np.cos(2 * np.pi * phase))
    syllable = np.floor(phase).astype(np.int64)
    # Pitch: a speaker's base, an intonation glide per syllable and a slow drift.
    base = rng.uniform(90.0, 220.0)
    glides = rng.uniform(-0.12, 0.12, size=int(syllable[-1]) + 2)
    f0 = (
        base
        * (1.0 + glides[syllable] * (phase - syllable))
        * (1.0 + 0.03 * np.sin(2 * np.pi * 0.5 * t))
    )
    pitch_phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    vowels = np.asarray(_VOWELS, dtype=np.float64)[
        rng.integers(0, len(_VOWELS), size=int(syllable[-1]) + 2)
    ]
    f1, f2 = vowels[syllable, 0], vowels[syllable, 1]
    voiced = np.zeros(n)
    for k in range(1, 3400 // 90 + 1):
        freq = k * f0
        weight = (
            np.exp(-(((freq - f1) / 120.0) ** 2))
            + 0.6 * np.exp(-(((freq - f2) / 180.0) ** 2))
            + 0.05 / k
        )
        voiced += np.where(freq < 3400.0, weight, 0.0) * np.sin(k * pitch_phase)
    voiced /= np.sqrt(np.mean(voiced**2)) + 1e-12
    breath = _band_noise(n, rng)
    breath /= np.sqrt(np.mean(breath**2)) + 1e-12
    signal = voiced + 0.1 * breath
    # Fade in and out over 20 ms so the onset is clean.
    ramp = min(n // 2, FRAME_BYTES)
    fade = np.ones(n)
    fade[:ramp] = np.linspace(0.0, 1.0, ramp)
    fade[n - ramp :] = np.linspace(1.0, 0.0, ramp)
    return _to_ulaw(_scale_to(signal * envelope * fade, level_dbfs))


def line_noise(duration: float, *, level_dbfs: float = -60.0, seed: int = 0) -> bytes:
    """Stationary line noise (white, full band).

    Args:
        duration: Seconds (rounded up to whole 20 ms frames).
        level_dbfs: RMS level in dBFS.
        seed: Seed of the noise.

    Returns:
        mu-law bytes.
    """
    n = frames_for(duration) * FRAME_BYTES
    if n == 0:
        return b""
    rng = np.random.default_rng(seed)
    return _to_ulaw(_scale_to(rng.standard_normal(n), level_dbfs))


def tone(duration: float, *, frequency: float = 440.0, level_dbfs: float = -20.0) -> bytes:
    """A sine tone.

    Args:
        duration: Seconds (rounded up to whole 20 ms frames).
        frequency: Hz, below 4000.
        level_dbfs: RMS level in dBFS.

    Returns:
        mu-law bytes.

    Raises:
        ValueError: If *frequency* is not between 0 and 4000 Hz.
    """
    if not 0 < frequency < SAMPLE_RATE / 2:
        raise ValueError(f"frequency = {frequency!r}; allowed: 0 < frequency < 4000")
    n = frames_for(duration) * FRAME_BYTES
    t = np.arange(n) / SAMPLE_RATE
    return _to_ulaw(_scale_to(np.sin(2 * np.pi * frequency * t), level_dbfs))


def attenuate(audio: bytes, db: float) -> bytes:
    """mu-law audio made *db* decibels quieter.

    Args:
        audio: mu-law bytes.
        db: Attenuation in dB (negative values amplify, with clipping).

    Returns:
        mu-law bytes of the same length.
    """
    if not audio:
        return b""
    pcm = decode_ulaw(audio).astype(np.float64) * 10.0 ** (-db / 20.0)
    return _to_ulaw(pcm)


def mix(*signals: bytes) -> bytes:
    """Sum mu-law signals sample by sample (with clipping); shorter ones are padded with silence.

    Args:
        *signals: mu-law byte strings.

    Returns:
        mu-law bytes as long as the longest input.
    """
    length = max((len(s) for s in signals), default=0)
    if length == 0:
        return b""
    total = np.zeros(length)
    for signal in signals:
        if signal:
            total[: len(signal)] += decode_ulaw(signal).astype(np.float64)
    return _to_ulaw(total)
