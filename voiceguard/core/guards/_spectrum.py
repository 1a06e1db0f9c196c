"""The calibration gate's spectral checks: does a burst of energy sound like noise, not speech?

Run only on the few frames that carry the evidence of a judgement (never per frame). Each frame
comes with the one before it (two frames, 40 ms, per row): the spectrum is measured on the frame
itself, its periodicity over both (a low voice's pitch period is up to 16 ms long).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from voiceguard.audio import FRAME_BYTES, SAMPLE_RATE
from voiceguard.core.guards._line import DECODE

__all__ = ("noise_like", "periodicity", "unvoiced")

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
#: Pitch periods searched (samples at 8 kHz): 400 Hz down to 60 Hz.
_LAG_LOW: Final = 20
_LAG_HIGH: Final = 133
_PAIR: Final = 2 * FRAME_BYTES
_ACF_SIZE: Final = 512  # >= 320 + 133: no lag searched wraps around
#: Normalised autocorrelation at the pitch period above which a 40 ms stretch is voiced. On the
#: corpus clips, active speech frames have a median of 0.81 (a quarter below 0.65, a tenth below
#: 0.48: unvoiced consonants and pauses); coughs stay below 0.42 (99th percentile), typing below
#: 0.47: no harmonic source drives them. Chosen on the tuning corpus (0.5, 0.55 and 0.6 tried;
#: 0.5 gives the fewest false plus missed barge-ins).
_VOICED: Final = 0.5


def noise_like(codes: npt.NDArray[np.uint8]) -> str | None:
    """Why the mu-law frames (one per row, each after the frame before it) sound like a noise
    burst rather than speech, or None.

    Two physical cues, measured on the average power spectrum of the frames: a spectrum as flat
    as white noise (clicks, crackle, hiss: no harmonics, no formants), or nearly all the energy
    below 450 Hz (handling thumps and bumps, where telephone speech has little).
    """
    if codes.shape[0] == 0:
        return None
    frames = DECODE[codes[:, -FRAME_BYTES:]] * _HANN
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


def periodicity(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Per row of two mu-law frames: the normalised autocorrelation at the strongest pitch
    period between 60 and 400 Hz (near 1 for a voiced vowel, near 0 for noise)."""
    x = DECODE[codes].astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(x, _ACF_SIZE, axis=1)
    acf = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, _ACF_SIZE, axis=1)
    acf = acf[:, _LAG_LOW : _LAG_HIGH + 1]
    head = np.add.accumulate(x * x, axis=1)  # energy of x[:i + 1]
    total = head[:, -1:]
    # The energies of the two stretches each lag compares, x[:n - lag] and x[lag:]; at least
    # half the whole (a click near one end would otherwise correlate with next to nothing).
    early = head[:, _PAIR - 1 - _LAG_HIGH : _PAIR - _LAG_LOW][:, ::-1]
    late = total - head[:, _LAG_LOW - 1 : _LAG_HIGH]
    energy = np.maximum(np.sqrt(early * late), 0.5 * total + 1e-9)
    return np.asarray((acf / energy).max(axis=1), dtype=np.float64)


def unvoiced(codes: npt.NDArray[np.uint8], floor_dbfs: float) -> str | None:
    """Why the mu-law frames (rows as for :func:`noise_like`) cannot be speech yet: not one of
    them is voiced (coughs, typing, rustle; also the first consonant of a word), or None.

    Line noise at *floor_dbfs* lowers a voiced frame's periodicity by its share of the power,
    so the bar is lowered by as much (a vowel 10 dB above the noise still clears it); frames
    less than 3 dB above the noise do not count.
    """
    if codes.shape[0] == 0:
        return None
    last = DECODE[codes[:, -FRAME_BYTES:]].astype(np.float64) / 32768.0
    power = np.maximum(np.mean(last * last, axis=1), 1e-12)
    signal_share = np.maximum(1.0 - 10.0 ** (floor_dbfs / 10.0) / power, 0.0)
    score = periodicity(codes)
    # A frame less than 3 dB above the noise carries too little of a voice to show one.
    if bool(np.any((score >= _VOICED * signal_share) & (signal_share >= 0.5))):
        return None
    return f"no voiced frame (periodicity {float(score.max()):.2f}): a cough, typing or a rustle"
