"""The calibration gate's spectral check: does a burst of energy sound like noise, not speech?

Run only on the few frames that carry the evidence of a judgement (never per frame).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from voiceguard.audio import FRAME_BYTES, SAMPLE_RATE
from voiceguard.core.guards._line import DECODE

__all__ = ("noise_like",)

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


def noise_like(codes: npt.NDArray[np.uint8]) -> str | None:
    """Why the mu-law frames (one per row) sound like a noise burst rather than speech, or None.

    Two physical cues, measured on the average power spectrum of the frames: a spectrum as flat
    as white noise (clicks, crackle, hiss: no harmonics, no formants), or nearly all the energy
    below 450 Hz (handling thumps and bumps, where telephone speech has little).
    """
    if codes.shape[0] == 0:
        return None
    frames = DECODE[codes] * _HANN
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
